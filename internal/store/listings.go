package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// A snapshot listing is stored in three kinds of items (keys.go):
//
//   - the chunks of each directory, in the partition of the ls run that uploaded them, so
//     that a listing is one partition and a tenant's deletion finds it through the run;
//   - while the run uploads, its counters (bytes, chunks, entries, the last upload counted)
//     beside the agent, which also enforce the listing's size cap;
//   - once the run finished, the snapshot's listing item beside the agent, pointing at the run:
//     a reader sees the old listing until the new one is complete, then the new one; the old
//     run's chunks are deleted then (their TTL catches what a failed deletion leaves).

type listingItem struct {
	key
	Entity string `json:"entity"`
	TTL    int64  `json:"ttl"`
	domain.Listing
}

type dirChunkItem struct {
	key
	Entity  string `json:"entity"`
	TTL     int64  `json:"ttl"`
	Dir     string `json:"dir"`
	Dirs    bool   `json:"dirs"`
	Seq     int    `json:"seq"`
	Count   int    `json:"count"`
	Entries []byte `json:"entries"`
}

// maxChunkItemBytes keeps a chunk's item below DynamoDB's 400 KB.
const maxChunkItemBytes = 350 << 10

// EncodedChunk is one directory chunk compressed for storing.
type EncodedChunk struct {
	domain.DirChunk
	data []byte
}

// Size is the chunk's compressed size.
func (c EncodedChunk) Size() int64 { return int64(len(c.data)) }

// EncodeChunk compresses a chunk's entries (without their paths, which follow from the
// directory). A chunk too large for one item is a *domain.ValidationError.
func EncodeChunk(c domain.DirChunk) (EncodedChunk, error) {
	entries := make([]domain.ListingEntry, len(c.Entries))
	for i, e := range c.Entries {
		e.Path = ""
		entries[i] = e
	}
	raw, err := json.Marshal(entries)
	if err != nil {
		return EncodedChunk{}, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return EncodedChunk{}, err
	}
	if err := zw.Close(); err != nil {
		return EncodedChunk{}, err
	}
	if buf.Len()+len(c.Dir) > maxChunkItemBytes {
		return EncodedChunk{}, &domain.ValidationError{Fields: []domain.FieldError{{Field: "chunks", Reason: fmt.Sprintf("a chunk of %s compresses to %d bytes, more than %d", c.Dir, buf.Len(), maxChunkItemBytes)}}}
	}
	return EncodedChunk{DirChunk: c, data: buf.Bytes()}, nil
}

// ListingUpload is one upload of an ls run: its number and what it adds.
type ListingUpload struct {
	// Listing names the run, the snapshot and the listed path, and when the listing expires.
	Listing domain.Listing
	Seq     int64
	Chunks  []EncodedChunk
	// MaxBytes caps the listing's compressed size.
	MaxBytes int64
}

// UploadOutcome says what an upload did.
type UploadOutcome struct {
	// Repeated is true when the upload had been counted before (its chunks were written again).
	Repeated bool
	// Truncated is true when the listing reached its cap: these chunks and any later ones are
	// not stored.
	Truncated bool
	Listing   domain.Listing
}

// UploadListingChunks counts an upload against the run's listing and, unless that takes the
// listing past its cap, writes its chunks. The counters are updated first, conditionally on the
// upload not having been counted and on the room left, so an upload sent again is counted once
// and its chunks (same keys) are simply written again.
func (s *Store) UploadListingChunks(ctx context.Context, tenantID string, up ListingUpload) (UploadOutcome, error) {
	if err := checkTenantID(tenantID); err != nil {
		return UploadOutcome{}, err
	}
	l := up.Listing
	var size, entries int64
	for _, c := range up.Chunks {
		size += c.Size()
		entries += int64(len(c.Entries))
	}
	k := listingRunKey(tenantID, l.AgentID, l.RunID)
	out := UploadOutcome{}
	if size <= up.MaxBytes {
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.table, Key: k.av(),
			UpdateExpression: aws.String("SET entity = :e, #ttl = :ttl, tenantId = :t, agentId = :a, snapshotId = :snap, #path = :path, taskId = :task, runId = :run, " +
				"expiresAt = :exp, truncated = if_not_exists(truncated, :f), lastUpload = :seq, " +
				"#bytes = if_not_exists(#bytes, :zero) + :b, chunks = if_not_exists(chunks, :zero) + :c, entries = if_not_exists(entries, :zero) + :n"),
			ConditionExpression: aws.String("attribute_not_exists(PK) OR (lastUpload < :seq AND truncated = :f AND #bytes <= :room)"),
			ExpressionAttributeNames: map[string]string{
				"#ttl": resources.AttrTTL, "#path": "path", "#bytes": "bytes",
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":e": str(entityListRun), ":ttl": num(ttlAt(l.ExpiresAt)), ":t": str(tenantID), ":a": str(l.AgentID),
				":snap": str(l.SnapshotID), ":path": str(l.Path), ":task": str(l.TaskID), ":run": str(l.RunID),
				":exp": str(fmtTime(l.ExpiresAt)), ":f": &types.AttributeValueMemberBOOL{Value: false}, ":seq": num(up.Seq),
				":zero": num(0), ":b": num(size), ":c": num(int64(len(up.Chunks))), ":n": num(entries), ":room": num(up.MaxBytes - size),
			},
		})
		switch {
		case err == nil:
			if err := s.putChunks(ctx, tenantID, l, up.Chunks); err != nil {
				return UploadOutcome{}, fmt.Errorf("store listing chunks of run %s: %w", l.RunID, err)
			}
			cur, err := s.listingRun(ctx, tenantID, l.AgentID, l.RunID)
			out.Listing = cur
			return out, err
		case !conditionFailed(err):
			return UploadOutcome{}, fmt.Errorf("count listing upload %d of run %s: %w", up.Seq, l.RunID, err)
		}
	}
	cur, err := s.listingRun(ctx, tenantID, l.AgentID, l.RunID)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		// The very first upload is over the cap on its own.
		cur = l
	case err != nil:
		return UploadOutcome{}, err
	case cur.Truncated:
		return UploadOutcome{Truncated: true, Listing: cur}, nil
	case cur.LastUpload >= up.Seq:
		if err := s.putChunks(ctx, tenantID, l, up.Chunks); err != nil {
			return UploadOutcome{}, fmt.Errorf("store listing chunks of run %s: %w", l.RunID, err)
		}
		return UploadOutcome{Repeated: true, Listing: cur}, nil
	}
	// Past the cap: what fits of this upload is stored, and the listing is truncated from here on.
	fit, room := 0, up.MaxBytes-cur.Bytes
	for _, c := range up.Chunks {
		if c.Size() > room {
			break
		}
		room -= c.Size()
		fit++
	}
	if fit > 0 && fit < len(up.Chunks) {
		part := up
		part.Chunks = up.Chunks[:fit]
		out, err := s.UploadListingChunks(ctx, tenantID, part)
		if err != nil {
			return UploadOutcome{}, err
		}
		cur = out.Listing
	}
	cur.Truncated = true
	if err := s.putListingRun(ctx, tenantID, cur); err != nil {
		return UploadOutcome{}, err
	}
	return UploadOutcome{Truncated: true, Listing: cur}, nil
}

func (s *Store) putChunks(ctx context.Context, tenantID string, l domain.Listing, chunks []EncodedChunk) error {
	reqs := make([]types.WriteRequest, 0, len(chunks))
	for _, c := range chunks {
		item, err := marshal(dirChunkItem{
			key: dirChunkKey(tenantID, l.RunID, c.Dir, c.Dirs, c.Seq), Entity: entityDirChunk, TTL: ttlAt(l.ExpiresAt),
			Dir: c.Dir, Dirs: c.Dirs, Seq: c.Seq, Count: len(c.Entries), Entries: c.data,
		})
		if err != nil {
			return err
		}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	return s.batchWrite(ctx, reqs)
}

func (s *Store) listingRun(ctx context.Context, tenantID, agentID, runID string) (domain.Listing, error) {
	var it listingItem
	if err := s.get(ctx, listingRunKey(tenantID, agentID, runID), &it); err != nil {
		return domain.Listing{}, err
	}
	return it.Listing, nil
}

func (s *Store) putListingRun(ctx context.Context, tenantID string, l domain.Listing) error {
	item, err := marshal(listingItem{key: listingRunKey(tenantID, l.AgentID, l.RunID), Entity: entityListRun, TTL: ttlAt(l.ExpiresAt), Listing: l})
	if err != nil {
		return err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item})
	return err
}

// FinishListing makes the run's uploaded listing the snapshot's listing, replacing the one
// before, whose chunks it then deletes. Finishing a run again changes nothing; a run that
// uploaded nothing is domain.ErrNotFound.
func (s *Store) FinishListing(ctx context.Context, tenantID, agentID, runID string, listedAt time.Time) (domain.Listing, error) {
	l, err := s.listingRun(ctx, tenantID, agentID, runID)
	if err != nil {
		return domain.Listing{}, fmt.Errorf("listing of run %s: %w", runID, err)
	}
	l.ListedAt = listedAt.UTC()
	prev, err := s.getListing(ctx, tenantID, agentID, l.SnapshotID)
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		return domain.Listing{}, err
	}
	if err == nil && prev.RunID == runID {
		return prev, nil
	}
	item, err := marshal(listingItem{key: listingKey(tenantID, agentID, l.SnapshotID), Entity: entityListing, TTL: ttlAt(l.ExpiresAt), Listing: l})
	if err != nil {
		return domain.Listing{}, err
	}
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item}); err != nil {
		return domain.Listing{}, fmt.Errorf("store listing of snapshot %s: %w", l.SnapshotID, err)
	}
	if prev.RunID != "" {
		if err := s.deleteChunks(ctx, tenantID, prev.RunID); err != nil {
			// The old chunks expire with their TTL.
			return l, nil
		}
	}
	return l, nil
}

// deleteChunks deletes every directory chunk of a run.
func (s *Store) deleteChunks(ctx context.Context, tenantID, runID string) error {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(runPK(tenantID, runID)), ":p": str(prefixDirChunk)},
		ProjectionExpression:      aws.String("PK, SK"),
	}
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return err
		}
		keys := make([]key, 0, len(out.Items))
		for _, m := range out.Items {
			var k key
			if err := unmarshal(m, &k); err != nil {
				return err
			}
			keys = append(keys, k)
		}
		if err := s.batchDelete(ctx, keys); err != nil {
			return err
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func (s *Store) getListing(ctx context.Context, tenantID, agentID, snapshotID string) (domain.Listing, error) {
	var it listingItem
	if err := s.get(ctx, listingKey(tenantID, agentID, snapshotID), &it); err != nil {
		return domain.Listing{}, err
	}
	return it.Listing, nil
}

// GetListing returns the agent's listing of the snapshot whose ID is or starts with ref. No
// listing is domain.ErrNotFound; a prefix of several listed snapshots is a
// *domain.ValidationError on snapshotId. Expired listings DynamoDB has not removed yet are not
// found either.
func (s *Store) GetListing(ctx context.Context, tenantID, agentID, ref string) (domain.Listing, error) {
	if err := checkTenantID(tenantID); err != nil {
		return domain.Listing{}, err
	}
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(agentPK(tenantID, agentID)), ":p": str(prefixListing + ref)},
		Limit:                     aws.Int32(2),
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return domain.Listing{}, fmt.Errorf("get listing %s of agent %s: %w", ref, agentID, err)
	}
	switch len(out.Items) {
	case 0:
		return domain.Listing{}, domain.ErrNotFound
	case 1:
	default:
		return domain.Listing{}, &domain.ValidationError{Fields: []domain.FieldError{{Field: "snapshotId", Reason: "the prefix matches several listed snapshots: give more of the ID"}}}
	}
	var it listingItem
	if err := unmarshal(out.Items[0], &it); err != nil {
		return domain.Listing{}, err
	}
	if !it.ExpiresAt.After(s.nowUTC()) {
		return domain.Listing{}, domain.ErrNotFound
	}
	return it.Listing, nil
}

// chunksPerQuery is how many chunks one query reads: a page (100 entries at most) lies in one
// chunk or spans two.
const chunksPerQuery = 2

// ListDirectory returns a page of the entries of directory dir in listing l: its subdirectories
// first, then the rest, each by name. found is false when the listing holds no directory dir.
// The cursor names a chunk and a position in it.
func (s *Store) ListDirectory(ctx context.Context, tenantID string, l domain.Listing, dir string, page Page) (entries []domain.ListingEntry, next string, found bool, err error) {
	if err := checkTenantID(tenantID); err != nil {
		return nil, "", false, err
	}
	prefix := dirChunkPrefix(dir)
	from, offset := prefix, 0
	if page.Cursor != "" {
		sk, off, ok := decodeDirCursor(page.Cursor)
		if !ok || !strings.HasPrefix(sk, prefix) {
			return nil, "", false, domain.ErrInvalidCursor
		}
		from, offset = sk, off
	}
	limit := int(page.limit())
	entries = []domain.ListingEntry{}
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("PK = :pk AND SK BETWEEN :from AND :to"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(runPK(tenantID, l.RunID)), ":from": str(from), ":to": str(prefix + "~"),
		},
		Limit: aws.Int32(chunksPerQuery),
	}
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, "", false, fmt.Errorf("list directory %s of snapshot %s: %w", dir, l.SnapshotID, err)
		}
		for _, m := range out.Items {
			found = true
			var it dirChunkItem
			if err := unmarshal(m, &it); err != nil {
				return nil, "", false, err
			}
			chunk, err := decodeEntries(it.Entries)
			if err != nil {
				return nil, "", false, fmt.Errorf("chunk %s of snapshot %s: %w", it.SK, l.SnapshotID, err)
			}
			for i := min(offset, len(chunk)); i < len(chunk); i++ {
				if len(entries) == limit {
					return entries, encodeDirCursor(it.SK, i), true, nil
				}
				e := chunk[i]
				e.Path = domain.JoinPath(it.Dir, e.Name)
				entries = append(entries, e)
			}
			offset = 0
		}
		if len(out.LastEvaluatedKey) == 0 {
			return entries, "", found, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func decodeEntries(data []byte) ([]domain.ListingEntry, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var out []domain.ListingEntry
	return out, json.Unmarshal(raw, &out)
}

func encodeDirCursor(sk string, offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(sk + "|" + strconv.Itoa(offset)))
}

func decodeDirCursor(c string) (string, int, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", 0, false
	}
	sk, off, ok := strings.Cut(string(raw), "|")
	n, err := strconv.Atoi(off)
	if !ok || err != nil || n < 0 || n > domain.MaxChunkEntries {
		return "", 0, false
	}
	return sk, n, true
}
