// Package store keeps restic-monitor's state in one DynamoDB table. It owns the key design
// (keys.go), the conversion between items and domain types, and the translation of DynamoDB
// errors into domain sentinels: callers never see an SDK type. Every method takes the tenant
// first and builds every key from it; the only tenant-less reads are the credential lookups
// that discover the tenant, and the scheduler's due-index query and list of tenants being
// deleted, which span tenants by design.
package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// Store is the DynamoDB single-table store.
type Store struct {
	db    *auditedDB
	table string
	// Now is the clock; tests replace it.
	Now func() time.Time
	// AuditRetention is how long audit entries are kept (0: DefaultAuditRetention).
	AuditRetention time.Duration
}

// New returns a store on the named table.
func New(db *dynamodb.Client, table string) *Store {
	s := &Store{table: table, Now: time.Now}
	s.db = &auditedDB{Client: db, s: s}
	return s
}

// Table returns the table's name.
func (s *Store) Table() string { return s.table }

// Page asks for one page of a listing.
type Page struct {
	// Limit is the most items to return (1–100; 0 means 50).
	Limit int
	// Cursor continues a previous listing; empty starts at the beginning.
	Cursor string
}

const (
	defaultPageLimit = 50
	maxPageLimit     = 100
)

func (p Page) limit() int32 {
	switch {
	case p.Limit <= 0:
		return defaultPageLimit
	case p.Limit > maxPageLimit:
		return maxPageLimit
	}
	return int32(p.Limit)
}

// Items use the domain types' JSON names as attribute names, and times in a fixed-width UTC
// form so that comparing two stored times as strings compares them as times.
func marshal(v any) (map[string]types.AttributeValue, error) {
	return attributevalue.MarshalMapWithOptions(v, func(o *attributevalue.EncoderOptions) {
		o.TagKey = "json"
		o.EncodeTime = func(t time.Time) (types.AttributeValue, error) { return str(fmtTime(t)), nil }
	})
}

// fmtTime formats a time as items store it.
func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func unmarshal(m map[string]types.AttributeValue, v any) error {
	return attributevalue.UnmarshalMapWithOptions(m, v, func(o *attributevalue.DecoderOptions) { o.TagKey = "json" })
}

func (k key) av() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		resources.AttrPK: &types.AttributeValueMemberS{Value: k.PK},
		resources.AttrSK: &types.AttributeValueMemberS{Value: k.SK},
	}
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v int64) types.AttributeValue  { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }

// conditionFailed reports whether err is a failed condition on a single write.
func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// cancelReasons returns the per-action reasons of a cancelled transaction, or nil.
func cancelReasons(err error) []types.CancellationReason {
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		return tc.CancellationReasons
	}
	return nil
}

// cancelledByCondition reports whether a transaction was cancelled because a condition failed
// (rather than throttling or a conflicting transaction), and which actions failed it.
func cancelledByCondition(err error) ([]int, bool) {
	reasons := cancelReasons(err)
	var failed []int
	for i, r := range reasons {
		if aws.ToString(r.Code) == "ConditionalCheckFailed" {
			failed = append(failed, i)
		}
	}
	return failed, len(failed) > 0
}

// get reads one item into v; a missing item is domain.ErrNotFound.
func (s *Store) get(ctx context.Context, k key, v any) error {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: k.av(), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return err
	}
	if out.Item == nil {
		return domain.ErrNotFound
	}
	return unmarshal(out.Item, v)
}

// putNew writes an item that must not exist yet; an existing one is domain.ErrConflict.
func (s *Store) putNew(ctx context.Context, item any) error {
	m, err := marshal(item)
	if err != nil {
		return err
	}
	write := stamp(m)
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           &s.table,
		Item:                m,
		ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if conditionFailed(err) {
		if s.landed(ctx, keyOf(m), write) {
			return nil
		}
		return domain.ErrConflict
	}
	return err
}

// attrWrite holds a random ID that every conditional put stamps its item with. The SDK retries a
// request whose answer was lost; when the lost attempt wrote the item, the retry's condition
// fails on that very write. Finding the attempt's own write ID on the item tells such a retry
// from a real conflict. Comparing the items' contents instead would not: two writers racing to
// write the same thing (the same transition at the same instant) would both see "their" item
// and both report a win.
const attrWrite = "writeId"

// newWriteID returns a write ID no other write has.
func newWriteID() string { return fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64()) }

// stamp gives an item about to be put a write ID of its own and returns it.
func stamp(item map[string]types.AttributeValue) string {
	id := newWriteID()
	item[attrWrite] = str(id)
	return id
}

// keyOf returns the primary key of an item.
func keyOf(item map[string]types.AttributeValue) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{resources.AttrPK: item[resources.AttrPK], resources.AttrSK: item[resources.AttrSK]}
}

// landed reports whether the item at key k is the one written with write ID write.
func (s *Store) landed(ctx context.Context, k map[string]types.AttributeValue, write string) bool {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.table, Key: k, ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String("#w"), ExpressionAttributeNames: map[string]string{"#w": attrWrite},
	})
	if err != nil || out.Item == nil {
		return false
	}
	got, ok := out.Item[attrWrite].(*types.AttributeValueMemberS)
	return ok && got.Value == write
}

// missingOr tells a failed condition on a missing item (ErrNotFound) from one on an item that
// exists but did not match (otherwise).
func (s *Store) missingOr(ctx context.Context, k key, otherwise error) error {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: k.av(), ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("PK")})
	if err != nil {
		return err
	}
	if out.Item == nil {
		return domain.ErrNotFound
	}
	return otherwise
}

// deleteExisting deletes an item that must exist.
func (s *Store) deleteExisting(ctx context.Context, k key) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: k.av(), ConditionExpression: aws.String("attribute_exists(PK)")})
	if conditionFailed(err) {
		return domain.ErrNotFound
	}
	return err
}

// cursor is what a page token carries: only sort keys. The partition keys are rebuilt from the
// tenant on every call, so a token cannot reach another tenant's items.
type cursor struct {
	PK  string `json:"p,omitempty"` // only for index listings
	SK  string `json:"s"`
	GSK string `json:"g,omitempty"`
}

func encodeCursor(last map[string]types.AttributeValue, gsiSK string) string {
	if last == nil {
		return ""
	}
	var c cursor
	if v, ok := last[resources.AttrSK].(*types.AttributeValueMemberS); ok {
		c.SK = v.Value
	}
	if gsiSK != "" {
		if v, ok := last[gsiSK].(*types.AttributeValueMemberS); ok {
			c.GSK = v.Value
		}
		if v, ok := last[resources.AttrPK].(*types.AttributeValueMemberS); ok {
			c.PK = v.Value
		}
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(token string) (cursor, error) {
	var c cursor
	if len(token) > 2048 {
		return c, domain.ErrInvalidCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || json.Unmarshal(b, &c) != nil || c.SK == "" {
		return c, domain.ErrInvalidCursor
	}
	// DynamoDB refuses a start key longer than its key limits with a ValidationException; a
	// forged cursor must be the caller's mistake (400), not the service's (500).
	if len(c.SK) > maxSortKeyBytes || len(c.GSK) > maxSortKeyBytes || len(c.PK) > maxPartitionKeyBytes {
		return c, domain.ErrInvalidCursor
	}
	return c, nil
}

// DynamoDB's key size limits.
const (
	maxPartitionKeyBytes = 2048
	maxSortKeyBytes      = 1024
)

// listing is one Query over a partition of the table or of an index.
type listing struct {
	index  string // "" for the table
	pk     string // partition value
	prefix string // sort-key prefix; every returned item's sort key starts with it
	// from and to bound the sort key (inclusive) instead of prefix, when set.
	from, to string
	filter   string
	names    map[string]string
	values   map[string]types.AttributeValue
	reverse  bool
}

func (l listing) keyAttrs() (pk, sk string) {
	switch l.index {
	case resources.GSI1:
		return resources.AttrGSI1PK, resources.AttrGSI1SK
	case resources.GSI2:
		return resources.AttrGSI2PK, resources.AttrGSI2SK
	case resources.GSI3:
		return resources.AttrGSI3PK, resources.AttrGSI3SK
	}
	return resources.AttrPK, resources.AttrSK
}

// query runs one page of a listing and decodes its items with decode.
func (s *Store) query(ctx context.Context, l listing, page Page, decode func(map[string]types.AttributeValue) error) (string, error) {
	pkAttr, skAttr := l.keyAttrs()
	names := map[string]string{"#pk": pkAttr, "#sk": skAttr}
	values := map[string]types.AttributeValue{":pk": str(l.pk)}
	cond := "#pk = :pk"
	switch {
	case l.from != "" || l.to != "":
		cond += " AND #sk BETWEEN :from AND :to"
		values[":from"], values[":to"] = str(l.from), str(l.to)
	case l.prefix != "":
		cond += " AND begins_with(#sk, :prefix)"
		values[":prefix"] = str(l.prefix)
	}
	for k, v := range l.names {
		names[k] = v
	}
	for k, v := range l.values {
		values[k] = v
	}
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		Limit:                     aws.Int32(page.limit()),
		ScanIndexForward:          aws.Bool(!l.reverse),
	}
	if l.index != "" {
		in.IndexName = aws.String(l.index)
	}
	if l.filter != "" {
		in.FilterExpression = aws.String(l.filter)
	}
	if page.Cursor != "" {
		c, err := decodeCursor(page.Cursor)
		if err != nil {
			return "", err
		}
		start, err := l.startKey(c)
		if err != nil {
			return "", err
		}
		in.ExclusiveStartKey = start
	}
	if l.from > l.to && l.to != "" {
		// A range that ends before it starts holds nothing; DynamoDB refuses to query it.
		return "", nil
	}
	// With a filter, a page may come back short or empty while more items exist; keep reading
	// until the page is full or the partition ends, so callers get what Limit promises.
	want := int(page.limit())
	got := 0
	var last map[string]types.AttributeValue
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return "", err
		}
		for _, item := range out.Items {
			if err := decode(item); err != nil {
				return "", err
			}
			got++
			last = item
		}
		if out.LastEvaluatedKey == nil {
			return "", nil
		}
		if got >= want {
			var gsk string
			if l.index != "" {
				gsk = skAttr
			}
			// The cursor names the last item returned: resuming after it reads exactly what
			// this page did not return, and the item carries every key the cursor needs.
			return encodeCursor(last, gsk), nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
		in.Limit = aws.Int32(int32(want - got))
	}
}

// startKey rebuilds a query's ExclusiveStartKey from a cursor, refusing keys outside the listing.
func (l listing) startKey(c cursor) (map[string]types.AttributeValue, error) {
	pkAttr, skAttr := l.keyAttrs()
	inRange := func(v string) bool {
		if l.from != "" || l.to != "" {
			return v >= l.from && v <= l.to
		}
		return strings.HasPrefix(v, l.prefix)
	}
	if l.index == "" {
		if !inRange(c.SK) {
			return nil, domain.ErrInvalidCursor
		}
		return key{l.pk, c.SK}.av(), nil
	}
	if c.GSK == "" || !inRange(c.GSK) {
		return nil, domain.ErrInvalidCursor
	}
	// An index's start key also names the base-table key of the last item. That key only
	// positions the read inside the index partition, which is rebuilt from the tenant, so a
	// forged one cannot reach another tenant's items.
	if c.PK == "" {
		return nil, domain.ErrInvalidCursor
	}
	return map[string]types.AttributeValue{
		pkAttr:           str(l.pk),
		skAttr:           str(c.GSK),
		resources.AttrPK: str(c.PK),
		resources.AttrSK: str(c.SK),
	}, nil
}

// nowUTC returns the store's clock in UTC.
func (s *Store) nowUTC() time.Time { return s.Now().UTC() }

// ttlAt converts a time to the TTL attribute's epoch seconds.
func ttlAt(t time.Time) int64 { return t.Unix() }

// list runs one page of a listing of items of type I and converts each to a domain value.
func list[I, D any](ctx context.Context, s *Store, l listing, page Page, conv func(I) D) ([]D, string, error) {
	out := []D{}
	next, err := s.query(ctx, l, page, func(m map[string]types.AttributeValue) error {
		var it I
		if err := unmarshal(m, &it); err != nil {
			return err
		}
		out = append(out, conv(it))
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// sleepBackoff waits before retry attempt (0-based): 25 ms doubling, capped at 1 s, with jitter.
func sleepBackoff(ctx context.Context, attempt int) error {
	d := min(25*time.Millisecond<<attempt, time.Second)
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
