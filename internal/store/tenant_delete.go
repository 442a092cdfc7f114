package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// This file holds the deletion of a whole tenant: its state, kept on the tenant's own item,
// and the removal of everything the tenant owns in an order that lets an interrupted deletion
// be run again until it is done. Package fleet runs the steps; docs/architecture.md ("Deleting
// a tenant") explains the order.

// TenantStatus says whether a tenant is in use, being deleted or gone.
type TenantStatus string

const (
	TenantActive   TenantStatus = "active"
	TenantDeleting TenantStatus = "deleting"
	TenantDeleted  TenantStatus = "deleted"
)

// TenantDeletion is how far a tenant's deletion has come.
type TenantDeletion struct {
	TenantID string       `json:"tenantId"`
	Status   TenantStatus `json:"status"`
	// Since is when the deletion began; zero while the tenant is active.
	Since time.Time `json:"since,omitzero"`
	// CredentialsRemovedAt is when the tenant's last enrollment token and agent credential were
	// removed: from then on no agent of the tenant can start a request.
	CredentialsRemovedAt *time.Time `json:"credentialsRemovedAt,omitempty"`
	// EarliestFinish is the first moment the deletion may remove the tenant's API keys and the
	// tenant itself (package fleet sets it).
	EarliestFinish *time.Time `json:"earliestFinish,omitempty"`
	// Removed counts what was removed so far, by kind.
	Removed Removed `json:"removed"`
}

// Removed counts removed items by kind: agents, tasks, runs, logChunks, snapshots, queues, ...
// Items of a kind the deletion does not know count under their "entity", or as "other".
type Removed map[string]int64

// Add adds the counts of o; a kind with nothing removed stays out.
func (r Removed) Add(o Removed) {
	for k, v := range o {
		if v != 0 {
			r[k] += v
		}
	}
}

// removedKinds names, for each item type, what Removed counts it as.
var removedKinds = map[string]string{
	entityAPIKey: "apiKeys", entityEnroll: "enrollmentTokens", entityAgentCred: "agentCredentials",
	entityAgent: "agents", entityRepository: "repositories", entityPolicy: "policies", entityPolicyName: "policyNames",
	entityAssignment: "assignments", entitySlot: "slots", entityOverdue: "overdueChecks", entityTask: "tasks",
	entityRun: "runs", entityLog: "logChunks", entitySnapshot: "snapshots", entityRetries: "retryBudgets",
	entityCapacity: "capacityItems", entityCounts: "counterItems", entityOutbox: "events",
	entityChannel: "notificationChannels", entityDelivery: "deliveries", entitySentEvent: "sentEvents",
	entityStreak: "failureStreaks", entityConfirm: "emailConfirmations", entityAudit: "auditEntries",
	entityListing: "listings", entityListRun: "listingUploads", entityDirChunk: "listingChunks",
}

func removedKind(entity string) string {
	if k, ok := removedKinds[entity]; ok {
		return k
	}
	if entity == "" {
		return "other"
	}
	return entity
}

// tenantDeletionItem is the deletion's state on the tenant item. While the tenant is being
// deleted, the item is in GSI1 under TENANTS#DELETING; the lease names the one pass at work.
type tenantDeletionItem struct {
	ID                   string           `json:"id"`
	DeletingSince        *time.Time       `json:"deletingSince"`
	CredentialsRemovedAt *time.Time       `json:"credentialsRemovedAt"`
	Removed              map[string]int64 `json:"removed"`
	Lease                string           `json:"deletionLease"`
	LeaseUntil           *time.Time       `json:"deletionLeaseUntil"`
}

func (it tenantDeletionItem) domain() TenantDeletion {
	d := TenantDeletion{TenantID: it.ID, Status: TenantActive, CredentialsRemovedAt: it.CredentialsRemovedAt, Removed: Removed{}}
	if it.DeletingSince != nil {
		d.Status, d.Since = TenantDeleting, it.DeletingSince.UTC()
	}
	for k, v := range it.Removed {
		d.Removed[k] = v
	}
	return d
}

func decodeTenantDeletion(m map[string]types.AttributeValue) (TenantDeletion, error) {
	var it tenantDeletionItem
	if err := unmarshal(m, &it); err != nil {
		return TenantDeletion{}, err
	}
	return it.domain(), nil
}

func checkTenantID(tenantID string) error {
	if !domain.ValidTenantID(tenantID) {
		return &domain.ValidationError{Fields: []domain.FieldError{{Field: "tenantId", Reason: "not a tenant ID"}}}
	}
	return nil
}

// BeginTenantDeletion marks a tenant as being deleted and lists it among the tenants the
// scheduler carries deletions on for. Marking it again keeps the first time. A tenant that does
// not exist is domain.ErrNotFound.
func (s *Store) BeginTenantDeletion(ctx context.Context, tenantID string) (TenantDeletion, error) {
	if err := checkTenantID(tenantID); err != nil {
		return TenantDeletion{}, err
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table,
		Key:       tenantKey(tenantID).av(),
		UpdateExpression: aws.String("SET deletingSince = if_not_exists(deletingSince, :now), " +
			resources.AttrGSI1PK + " = :gpk, " + resources.AttrGSI1SK + " = :gsk"),
		ConditionExpression: aws.String("attribute_exists(PK)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": str(fmtTime(s.nowUTC())), ":gpk": str(deletingTenantsGSI1), ":gsk": str(tenantPK(tenantID)),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if conditionFailed(err) {
		return TenantDeletion{}, fmt.Errorf("delete tenant %q: %w", tenantID, domain.ErrNotFound)
	}
	if err != nil {
		return TenantDeletion{}, fmt.Errorf("delete tenant %q: %w", tenantID, err)
	}
	return decodeTenantDeletion(out.Attributes)
}

// GetTenantDeletion reads whether a tenant is being deleted and how far that has come. A
// tenant that does not exist is domain.ErrNotFound.
func (s *Store) GetTenantDeletion(ctx context.Context, tenantID string) (TenantDeletion, error) {
	var it tenantDeletionItem
	if err := s.get(ctx, tenantKey(tenantID), &it); err != nil {
		return TenantDeletion{}, fmt.Errorf("get tenant %q: %w", tenantID, err)
	}
	return it.domain(), nil
}

// DeletingTenants lists the IDs of the tenants being deleted. It spans tenants: it serves the
// scheduler, which carries every deletion on. The index is eventually consistent, so a tenant
// marked a moment ago may be missing.
func (s *Store) DeletingTenants(ctx context.Context) ([]string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(resources.GSI1),
		KeyConditionExpression:    aws.String(resources.AttrGSI1PK + " = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(deletingTenantsGSI1)},
	}
	var ids []string
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list tenants being deleted: %w", err)
		}
		for _, m := range out.Items {
			var it tenantDeletionItem
			if err := unmarshal(m, &it); err != nil {
				return nil, err
			}
			ids = append(ids, it.ID)
		}
		if out.LastEvaluatedKey == nil {
			return ids, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// LeaseTenantDeletion makes holder the one pass that carries a deletion on, until until (on the
// store's clock). It reports false, with the deletion's state, when another pass holds a lease
// that has not run out: two passes at once would only repeat each other's requests and count
// the same items twice. A tenant that is not being deleted is domain.ErrConflict; one that does
// not exist (any more) domain.ErrNotFound.
func (s *Store) LeaseTenantDeletion(ctx context.Context, tenantID, holder string, until time.Time) (TenantDeletion, bool, error) {
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        &s.table,
		Key:              tenantKey(tenantID).av(),
		UpdateExpression: aws.String("SET deletionLease = :h, deletionLeaseUntil = :until"),
		ConditionExpression: aws.String("attribute_exists(deletingSince) AND " +
			"(attribute_not_exists(deletionLeaseUntil) OR deletionLeaseUntil < :now OR deletionLease = :h)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":h": str(holder), ":until": str(fmtTime(until)), ":now": str(fmtTime(s.nowUTC())),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if conditionFailed(err) {
		d, err := s.GetTenantDeletion(ctx, tenantID)
		if err != nil {
			return TenantDeletion{}, false, err
		}
		if d.Status != TenantDeleting {
			return TenantDeletion{}, false, fmt.Errorf("tenant %q is not being deleted: %w", tenantID, domain.ErrConflict)
		}
		return d, false, nil
	}
	if err != nil {
		return TenantDeletion{}, false, fmt.Errorf("lease deletion of tenant %q: %w", tenantID, err)
	}
	d, err := decodeTenantDeletion(out.Attributes)
	return d, err == nil, err
}

// RecordTenantDeletion stores the progress of holder's pass: what it removed and when the
// credentials were gone (or that they are not, when a token turned up again). It is
// domain.ErrConflict when holder no longer holds the lease.
func (s *Store) RecordTenantDeletion(ctx context.Context, holder string, d TenantDeletion) error {
	removed, err := attributevalue.Marshal(map[string]int64(d.Removed))
	if err != nil {
		return err
	}
	set := "SET removed = :r REMOVE credentialsRemovedAt"
	values := map[string]types.AttributeValue{":r": removed, ":h": str(holder)}
	if d.CredentialsRemovedAt != nil {
		set = "SET removed = :r, credentialsRemovedAt = :c"
		values[":c"] = str(fmtTime(*d.CredentialsRemovedAt))
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: tenantKey(d.TenantID).av(),
		UpdateExpression: aws.String(set), ConditionExpression: aws.String("deletionLease = :h"),
		ExpressionAttributeValues: values,
	})
	if conditionFailed(err) {
		return fmt.Errorf("record deletion of tenant %q: another pass took over: %w", d.TenantID, domain.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("record deletion of tenant %q: %w", d.TenantID, err)
	}
	return nil
}

// ReleaseTenantDeletion ends holder's lease, so the next pass need not wait for it to run out.
// A lease holder no longer holds is left alone.
func (s *Store) ReleaseTenantDeletion(ctx context.Context, tenantID, holder string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: tenantKey(tenantID).av(),
		UpdateExpression:          aws.String("REMOVE deletionLease, deletionLeaseUntil"),
		ConditionExpression:       aws.String("deletionLease = :h"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": str(holder)},
	})
	if err != nil && !conditionFailed(err) {
		return fmt.Errorf("release deletion of tenant %q: %w", tenantID, err)
	}
	return nil
}

// FinishTenantDeletion removes the tenant item, the last of the tenant, while holder holds the
// deletion's lease (domain.ErrConflict otherwise). Its place in the index of deletions goes
// with it.
func (s *Store) FinishTenantDeletion(ctx context.Context, tenantID, holder string) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &s.table, Key: tenantKey(tenantID).av(),
		ConditionExpression:       aws.String("deletionLease = :h"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": str(holder)},
	})
	if conditionFailed(err) {
		return fmt.Errorf("finish deletion of tenant %q: another pass took over: %w", tenantID, domain.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("finish deletion of tenant %q: %w", tenantID, err)
	}
	return nil
}

// errSpent ends a call whose budget is spent; the exported methods report it as not done.
var errSpent = errors.New("time budget spent")

// deleteWorkers is how many partitions one call empties at once.
const deleteWorkers = 16

// eachPage runs a query page by page, handing each page's items to page, until the results
// end or until (on the real clock) has passed (errSpent). The first page is always read, so
// that every call makes progress however little time it has.
func (s *Store) eachPage(ctx context.Context, until time.Time, in *dynamodb.QueryInput, page func([]map[string]types.AttributeValue) error) error {
	for first := true; ; first = false {
		if !first && !until.IsZero() && !time.Now().Before(until) {
			return errSpent
		}
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return err
		}
		if err := page(out.Items); err != nil {
			return err
		}
		if out.LastEvaluatedKey == nil {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// keyItem is what deleting needs of an item: its key, its type, and the agent and policy it
// names (whose partitions may hold more of the tenant).
type keyItem struct {
	key
	Entity   string `json:"entity"`
	AgentID  string `json:"agentId"`
	PolicyID string `json:"policyId"`
}

// keysQuery reads the keys and types of a partition of the table (consistently) or of an
// index's partition.
func (s *Store) keysQuery(index, pkAttr, pk string) *dynamodb.QueryInput {
	// No placeholder is a prefix of another (as #p is of #pk): the embedded emulator replaces
	// placeholders as plain text.
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("#key = :pk"),
		ExpressionAttributeNames:  map[string]string{"#key": pkAttr, "#entity": "entity", "#agent": "agentId", "#policy": "policyId"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
		ProjectionExpression:      aws.String("PK, SK, #entity, #agent, #policy"),
		Limit:                     aws.Int32(500),
	}
	if index == "" {
		in.ConsistentRead = aws.Bool(true)
	} else {
		in.IndexName = aws.String(index)
	}
	return in
}

func decodeKeyItems(items []map[string]types.AttributeValue) ([]keyItem, error) {
	out := make([]keyItem, 0, len(items))
	for _, m := range items {
		var it keyItem
		if err := unmarshal(m, &it); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// deleteCounted deletes items and counts them in removed.
func (s *Store) deleteCounted(ctx context.Context, items []keyItem, removed Removed) error {
	keys := make([]key, len(items))
	for i, it := range items {
		keys[i] = it.key
	}
	if err := s.batchDelete(ctx, keys); err != nil {
		return err
	}
	for _, it := range items {
		removed[removedKind(it.Entity)]++
	}
	return nil
}

// DeleteTenantEnrollmentTokens removes the tenant's enrollment tokens, until until (on the real
// clock), so that no host can enroll any more. It reports what it removed and whether it got
// through all of them.
func (s *Store) DeleteTenantEnrollmentTokens(ctx context.Context, tenantID string, until time.Time) (Removed, bool, error) {
	removed := Removed{}
	if err := checkTenantID(tenantID); err != nil {
		return removed, false, err
	}
	err := s.eachPage(ctx, until, s.keysQuery(resources.GSI1, resources.AttrGSI1PK, tenantEnrollGSI1(tenantID)), func(page []map[string]types.AttributeValue) error {
		items, err := decodeKeyItems(page)
		if err != nil {
			return err
		}
		return s.deleteCounted(ctx, items, removed)
	})
	return finishStep(removed, err, "delete enrollment tokens of tenant %q", tenantID)
}

// DeleteTenantAgentCredentials removes the credentials of the tenant's agents, until until (on
// the real clock), so that no agent can authenticate any more. It reports what it removed and
// whether it got through all of them. Registering uses up a token in the very transaction that
// stores the agent and its credential, so once the tokens are gone, the agents it finds are all
// there will be.
func (s *Store) DeleteTenantAgentCredentials(ctx context.Context, tenantID string, until time.Time) (Removed, bool, error) {
	removed := Removed{}
	if err := checkTenantID(tenantID); err != nil {
		return removed, false, err
	}
	agents := s.keysQuery("", resources.AttrPK, tenantPK(tenantID))
	agents.KeyConditionExpression = aws.String("#key = :pk AND begins_with(SK, :agent)")
	agents.ExpressionAttributeValues[":agent"] = str(prefixAgent)
	err := s.eachPage(ctx, until, agents, func(page []map[string]types.AttributeValue) error {
		items, err := decodeKeyItems(page)
		if err != nil {
			return err
		}
		ids := make([]string, 0, len(items))
		for _, it := range items {
			ids = append(ids, strings.TrimPrefix(it.SK, prefixAgent))
		}
		return s.deleteAgentCredentials(ctx, tenantID, ids, removed)
	})
	return finishStep(removed, err, "delete agent credentials of tenant %q", tenantID)
}

// finishStep turns a step's error into its results: a spent budget is no error, only not done.
func finishStep(removed Removed, err error, format string, args ...any) (Removed, bool, error) {
	switch {
	case errors.Is(err, errSpent):
		return removed, false, nil
	case err != nil:
		return removed, false, fmt.Errorf(format+": %w", append(args, err)...)
	}
	return removed, true, nil
}

// deleteAgentCredentials removes the credentials of the tenant's agents. A credential is keyed
// by the agent ID alone; only one that names the tenant is removed.
func (s *Store) deleteAgentCredentials(ctx context.Context, tenantID string, agentIDs []string, removed Removed) error {
	keys := make([]key, 0, len(agentIDs))
	for _, a := range agentIDs {
		if domain.ValidID(a) {
			keys = append(keys, agentCredKey(a))
		}
	}
	var own []keyItem
	err := s.batchGet(ctx, keys, func(m map[string]types.AttributeValue) error {
		var it agentCredItem
		if err := unmarshal(m, &it); err != nil {
			return err
		}
		if it.TenantID == tenantID {
			own = append(own, keyItem{key: it.key, Entity: it.Entity})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.deleteCounted(ctx, own, removed)
}

// DataDeletion says what one call of DeleteTenantData does.
type DataDeletion struct {
	// Until ends the call (on the real clock).
	Until time.Time
	// Final removes the agent and policy items too. Until then they stay, and their partitions
	// are emptied on every call: a request in flight when the deletion began may still add to
	// them (an agent's snapshot report, a scheduler tick's overdue check), and only the agent
	// or the policy leads a later call to what it added.
	Final bool
	// Progress, when set, learns what each page removed.
	Progress func(Removed) error
}

// DeleteTenantData removes every item of the tenant's partitions but the tenant item (and,
// unless the call is final, its agents and policies), with the credentials of the agents it
// removes, and reports whether it got through all of them. API keys and enrollment tokens, keyed
// by their own IDs, have steps of their own. It reads the tenant's partition page by page; before the items of a page go, the
// partitions they lead to go: an agent's (snapshots, retry budgets), a policy's (assignments,
// slots, overdue checks), a run's (log chunks) and a notification channel's (deliveries, sent events, streaks, confirmations). An item is removed only after everything it
// leads to, so a deletion that stops anywhere leaves the way to what is left, and the next call
// finds it.
func (s *Store) DeleteTenantData(ctx context.Context, tenantID string, dd DataDeletion) (bool, error) {
	if err := checkTenantID(tenantID); err != nil {
		return false, err
	}
	until := dd.Until
	// The agent and policy partitions emptied so far: many tasks and runs name the same few.
	emptied := map[string]bool{}
	err := s.eachPage(ctx, until, s.keysQuery("", resources.AttrPK, tenantPK(tenantID)), func(page []map[string]types.AttributeValue) error {
		items, err := decodeKeyItems(page)
		if err != nil {
			return err
		}
		var own []keyItem
		var agents []string
		var parts []string
		lead := func(pk string, once bool) {
			if once {
				if emptied[pk] {
					return
				}
				emptied[pk] = true
			}
			parts = append(parts, pk)
		}
		for _, it := range items {
			if it.SK == skMeta {
				continue
			}
			kind, id, _ := strings.Cut(it.SK, "#")
			owner := kind+"#" == prefixAgent || kind+"#" == prefixPolicy
			if dd.Final || !owner {
				own = append(own, it)
			}
			switch kind + "#" {
			case prefixAgent:
				if domain.ValidID(id) {
					if dd.Final {
						agents = append(agents, id)
					}
					lead(agentPK(tenantID, id), true)
				}
			case prefixPolicy:
				if domain.ValidID(id) {
					lead(policyPK(tenantID, id), true)
				}
			case prefixRun:
				if domain.ValidID(id) {
					lead(runPK(tenantID, id), false)
				}
			case prefixChannel:
				if domain.ValidID(id) {
					lead(channelPK(tenantID, id), false)
				}
			}
			if domain.ValidID(it.AgentID) {
				lead(agentPK(tenantID, it.AgentID), true)
			}
			if domain.ValidID(it.PolicyID) {
				lead(policyPK(tenantID, it.PolicyID), true)
			}
		}
		removed := Removed{}
		err = s.emptyPartitions(ctx, until, parts, removed)
		if err == nil {
			err = s.deleteAgentCredentials(ctx, tenantID, agents, removed)
		}
		if err == nil {
			err = s.deleteCounted(ctx, own, removed)
		}
		if err != nil {
			// A partition emptied only in part is emptied again by the next call.
			for _, pk := range parts {
				delete(emptied, pk)
			}
		}
		if dd.Progress != nil && len(removed) > 0 {
			if perr := dd.Progress(removed); perr != nil {
				return errors.Join(err, perr)
			}
		}
		return err
	})
	_, done, err := finishStep(nil, err, "delete data of tenant %q", tenantID)
	return done, err
}

// emptyPartitions deletes every item of the partitions pks, several at once, counting them in
// removed. It stops at the first error, or when until has passed (errSpent).
func (s *Store) emptyPartitions(ctx context.Context, until time.Time, pks []string, removed Removed) error {
	if len(pks) == 0 {
		return nil
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan string)
	for range min(deleteWorkers, len(pks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pk := range work {
				counts := Removed{}
				err := s.eachPage(ctx, until, s.keysQuery("", resources.AttrPK, pk), func(page []map[string]types.AttributeValue) error {
					items, err := decodeKeyItems(page)
					if err != nil {
						return err
					}
					return s.deleteCounted(ctx, items, counts)
				})
				mu.Lock()
				removed.Add(counts)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, pk := range pks {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		work <- pk
	}
	close(work)
	wg.Wait()
	return firstErr
}

// DeleteTenantAPIKeys removes the tenant's API keys. A deletion removes them last but for the
// tenant item: until then, an admin key can look at the deletion and run it again.
func (s *Store) DeleteTenantAPIKeys(ctx context.Context, tenantID string) (Removed, error) {
	removed := Removed{}
	if err := checkTenantID(tenantID); err != nil {
		return removed, err
	}
	err := s.eachPage(ctx, time.Time{}, s.keysQuery(resources.GSI1, resources.AttrGSI1PK, tenantAPIKeysGSI1(tenantID)), func(page []map[string]types.AttributeValue) error {
		items, err := decodeKeyItems(page)
		if err != nil {
			return err
		}
		return s.deleteCounted(ctx, items, removed)
	})
	if err != nil {
		return removed, fmt.Errorf("delete API keys of tenant %q: %w", tenantID, err)
	}
	return removed, nil
}
