package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// A tenant's counters sum up its fleet for the overview, so that reading them costs the same
// whatever the fleet's size. They live in the tenant's own partition (SK COUNTS#...), so one
// Query reads them all and deleting the tenant's partition removes them:
//
//	COUNTS#AGENTS           online, offline, backingOff
//	COUNTS#OVERDUE          slots: backup slots marked overdue
//	COUNTS#RUNS#<hour>      succeeded, partial, failed, running, other: runs whose ID was made in
//	                        that hour (UTC, yyyy-mm-ddThh), by their current status; TTL two days on
//
// A counter changes only in the transaction that makes the conditional write of the item whose
// state it counts, with the difference between the state the write's condition holds the item to
// and the state it writes. So a write that loses its race counts nothing, a write sent twice
// counts once (the second attempt fails its condition), and a change that is stored was counted.

const (
	prefixCounts     = "COUNTS#"
	skCountsAgents   = "COUNTS#AGENTS"
	skCountsOverdue  = "COUNTS#OVERDUE"
	prefixCountsRuns = "COUNTS#RUNS#"
	entityCounts     = "counts"

	// hourLayout names a run bucket's hour.
	hourLayout = "2006-01-02T15"
)

// Counter attributes.
const (
	cntOnline     = "online"
	cntOffline    = "offline"
	cntBackingOff = "backingOff"
	cntSucceeded  = "succeeded"
	cntPartial    = "partial"
	cntFailed     = "failed"
	cntRunning    = "running"
	cntOther      = "other"
	cntSlots      = "slots"
)

// RunWindow is how far back, from the start of the current hour, the run counters are summed.
const RunWindow = 24 * time.Hour

// runBucketTTL is how long after its hour DynamoDB may remove a run bucket. It is longer than
// the window plus the counting horizon (runCounted), so no write ever goes to a bucket that
// expired.
const runBucketTTL = 48 * time.Hour

// RunWindowStart is the first hour whose runs count at now: the runs counted are those whose ID
// was made in the current hour or the 24 before it.
func RunWindowStart(now time.Time) time.Time {
	return now.UTC().Truncate(time.Hour).Add(-RunWindow)
}

// runCounted reports whether a change of a run started in hour is counted at now. A run that
// started before the window never comes back into it, so its changes are not counted; one more
// hour is kept, for a writer whose clock is behind the reader's.
func runCounted(hour, now time.Time) bool {
	return !hour.Before(RunWindowStart(now).Add(-time.Hour))
}

func runBucketSK(hour time.Time) string { return prefixCountsRuns + hour.UTC().Format(hourLayout) }

// runHour is the hour a run is counted in: the hour its ID was made.
func runHour(runID string) time.Time { return domain.IDTime(runID).Truncate(time.Hour) }

// agentCounted is what an agent adds to the agent counters. An agent backing off is one that is
// online and reported a backoff in its last heartbeat: a heartbeat replaces the backoff (none
// when the agent reports none, or the time it reported has passed), so an agent whose backoff
// expired counts as backing off until its next heartbeat, at most one heartbeat interval; an
// agent that goes offline no longer counts as backing off.
func agentCounted(a *domain.Agent) map[string]int64 {
	switch {
	case a == nil:
		return nil
	case a.Status != domain.AgentOnline:
		return map[string]int64{cntOffline: 1}
	case a.BackoffUntil != nil:
		return map[string]int64{cntOnline: 1, cntBackingOff: 1}
	}
	return map[string]int64{cntOnline: 1}
}

// agentCountedAs is the condition that the stored agent counts as a does.
func agentCountedAs(a domain.Agent) (string, map[string]string, map[string]types.AttributeValue) {
	names := map[string]string{"#cStatus": "status", "#cBackoff": "backoffUntil"}
	values := map[string]types.AttributeValue{":cOnline": str(string(domain.AgentOnline))}
	switch {
	case a.Status != domain.AgentOnline:
		delete(names, "#cBackoff")
		return "#cStatus <> :cOnline", names, values
	case a.BackoffUntil != nil:
		return "#cStatus = :cOnline AND attribute_exists(#cBackoff)", names, values
	}
	return "#cStatus = :cOnline AND attribute_not_exists(#cBackoff)", names, values
}

// runCountAttr is the counter a run of status s adds to.
func runCountAttr(s domain.TaskStatus) string {
	switch s {
	case domain.TaskSucceeded:
		return cntSucceeded
	case domain.TaskPartial:
		return cntPartial
	case domain.TaskFailed:
		return cntFailed
	case domain.TaskRunning:
		return cntRunning
	}
	return cntOther
}

// slotCounted reports whether a slot counts as overdue: a backup slot the scheduler marked
// overdue. Only such slots are in the overdue index.
func slotCounted(kind domain.SlotKind, overdue bool) bool {
	return kind == domain.SlotBackup && overdue
}

// slotCountedAs is the condition that a stored slot is marked overdue (or not), with the name
// of its value.
func slotCountedAs(counted bool) (string, map[string]types.AttributeValue) {
	values := map[string]types.AttributeValue{":cOverdue": &types.AttributeValueMemberBOOL{Value: true}}
	if counted {
		return "overdue = :cOverdue", values
	}
	return "(attribute_not_exists(overdue) OR overdue <> :cOverdue)", values
}

// counterRef names one counter item of a tenant.
type counterRef struct {
	sk  string
	ttl int64 // epoch seconds; 0 for none
}

// tally collects what one write changes on a tenant's counters, merged per counter item: a
// transaction may name each item only once.
type tally struct {
	tenant string
	deltas map[counterRef]map[string]int64
}

func newTally(tenantID string) *tally {
	return &tally{tenant: tenantID, deltas: map[counterRef]map[string]int64{}}
}

func (t *tally) add(ref counterRef, counts map[string]int64, sign int64) {
	if len(counts) == 0 {
		return
	}
	d := t.deltas[ref]
	if d == nil {
		d = map[string]int64{}
		t.deltas[ref] = d
	}
	for attr, n := range counts {
		d[attr] += sign * n
	}
}

// agent counts an agent stored as from (nil: it did not exist) becoming to (nil: deleted).
func (t *tally) agent(from, to *domain.Agent) {
	ref := counterRef{sk: skCountsAgents}
	t.add(ref, agentCounted(from), -1)
	t.add(ref, agentCounted(to), 1)
}

// run counts a run whose status goes from one to the other ("" when it did not exist).
func (t *tally) run(runID string, from, to domain.TaskStatus, now time.Time) {
	hour := runHour(runID)
	if hour.IsZero() || !runCounted(hour, now) || from == to {
		return
	}
	ref := counterRef{sk: runBucketSK(hour), ttl: ttlAt(hour.Add(runBucketTTL))}
	if from != "" {
		t.add(ref, map[string]int64{runCountAttr(from): 1}, -1)
	}
	if to != "" {
		t.add(ref, map[string]int64{runCountAttr(to): 1}, 1)
	}
}

// overdue counts a slot going from counted as overdue or not to counted or not.
func (t *tally) overdue(from, to bool) {
	ref := counterRef{sk: skCountsOverdue}
	if from {
		t.add(ref, map[string]int64{cntSlots: 1}, -1)
	}
	if to {
		t.add(ref, map[string]int64{cntSlots: 1}, 1)
	}
}

// empty reports whether the tally changes nothing.
func (t *tally) empty() bool {
	for _, d := range t.deltas {
		for _, n := range d {
			if n != 0 {
				return false
			}
		}
	}
	return true
}

// counterWrites are the transaction actions that apply a tally: one update per counter item
// that changes, in a fixed order.
func (s *Store) counterWrites(t *tally) []types.TransactWriteItem {
	if t == nil {
		return nil
	}
	refs := slices.SortedFunc(maps.Keys(t.deltas), func(a, b counterRef) int { return strings.Compare(a.sk, b.sk) })
	var items []types.TransactWriteItem
	for _, ref := range refs {
		d := t.deltas[ref]
		expr := "SET #entity = :entity"
		names := map[string]string{"#entity": "entity"}
		values := map[string]types.AttributeValue{":entity": str(entityCounts), ":zero": num(0)}
		changed := false
		for i, attr := range slices.Sorted(maps.Keys(d)) {
			if d[attr] == 0 {
				continue
			}
			changed = true
			n, v := fmt.Sprintf("#c%d", i), fmt.Sprintf(":d%d", i)
			expr += fmt.Sprintf(", %s = if_not_exists(%s, :zero) + %s", n, n, v)
			names[n], values[v] = attr, num(d[attr])
		}
		if !changed {
			continue
		}
		if ref.ttl != 0 {
			expr += ", #ttl = :ttl"
			names["#ttl"], values[":ttl"] = resources.AttrTTL, num(ref.ttl)
		}
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName: &s.table, Key: key{tenantPK(t.tenant), ref.sk}.av(),
			UpdateExpression: aws.String(expr), ExpressionAttributeNames: names, ExpressionAttributeValues: values,
		}})
	}
	return items
}

// maxTransactConflictTries bounds how often transact sends a transaction again that conflicted
// with another one in progress. Counted writes of one tenant share its counter items, so they
// meet more often than writes of unrelated items did.
const maxTransactConflictTries = 8

// transact runs a transaction, sending it again, after a pause, while it is cancelled only
// because another transaction on the same items was in progress: that decides nothing about
// its conditions.
func (s *Store) transact(ctx context.Context, items []types.TransactWriteItem) error {
	for attempt := 0; ; attempt++ {
		_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil || attempt >= maxTransactConflictTries || !onlyConflicted(err) {
			return err
		}
		if werr := sleepBackoff(ctx, attempt); werr != nil {
			return werr
		}
	}
}

// onlyConflicted reports whether a transaction was cancelled by a conflict with another
// transaction and by no failed condition.
func onlyConflicted(err error) bool {
	conflict := false
	for _, r := range cancelReasons(err) {
		switch aws.ToString(r.Code) {
		case "ConditionalCheckFailed":
			return false
		case "TransactionConflict":
			conflict = true
		}
	}
	return conflict
}

// Counts is what a tenant's counters say.
type Counts struct {
	Agents AgentCounts
	// Runs counts the runs whose ID was made since RunsSince (an hour's start), by status.
	Runs      RunCounts
	RunsSince time.Time
	// OverdueSlots counts the backup slots marked overdue.
	OverdueSlots int64
}

// AgentCounts counts agents by state; a backing-off agent is online too.
type AgentCounts struct {
	Online, Offline, BackingOff int64
}

// Total is the number of agents.
func (c AgentCounts) Total() int64 { return c.Online + c.Offline }

// RunCounts counts runs by status.
type RunCounts struct {
	Succeeded, Partial, Failed, Running, Other int64
}

// countsItem is any counter item; each kind uses some of the attributes.
type countsItem struct {
	key
	Entity     string `json:"entity"`
	Online     int64  `json:"online"`
	Offline    int64  `json:"offline"`
	BackingOff int64  `json:"backingOff"`
	Succeeded  int64  `json:"succeeded"`
	Partial    int64  `json:"partial"`
	Failed     int64  `json:"failed"`
	Running    int64  `json:"running"`
	Other      int64  `json:"other"`
	Slots      int64  `json:"slots"`
	TTL        int64  `json:"ttl,omitempty"`
}

// Counts reads a tenant's counters with one Query (the counter items are few and small: three
// kinds, and one run bucket per hour of the last two days or so) and sums the run buckets from
// since on.
func (s *Store) Counts(ctx context.Context, tenantID string, since time.Time) (Counts, error) {
	c := Counts{RunsSince: since.UTC()}
	items, err := s.counterItems(ctx, tenantID)
	if err != nil {
		return Counts{}, fmt.Errorf("read counters: %w", err)
	}
	first := runBucketSK(since)
	for _, it := range items {
		switch {
		case strings.HasPrefix(it.SK, prefixCountsRuns):
			// Buckets sort by hour; those DynamoDB has not removed yet are left out here.
			if it.SK >= first {
				c.Runs.Succeeded += it.Succeeded
				c.Runs.Partial += it.Partial
				c.Runs.Failed += it.Failed
				c.Runs.Running += it.Running
				c.Runs.Other += it.Other
			}
		case strings.HasPrefix(it.SK, skCountsAgents):
			c.Agents.Online += it.Online
			c.Agents.Offline += it.Offline
			c.Agents.BackingOff += it.BackingOff
		case strings.HasPrefix(it.SK, skCountsOverdue):
			c.OverdueSlots += it.Slots
		}
	}
	return c, nil
}

// counterItems reads all of a tenant's counter items.
func (s *Store) counterItems(ctx context.Context, tenantID string) ([]countsItem, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(tenantPK(tenantID)), ":prefix": str(prefixCounts)},
		ConsistentRead:            aws.Bool(true),
	}
	var items []countsItem
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, m := range out.Items {
			var it countsItem
			if err := unmarshal(m, &it); err != nil {
				return nil, err
			}
			items = append(items, it)
		}
		if out.LastEvaluatedKey == nil {
			return items, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// MaxOverdueListed is the most overdue slots ListOverdueSlots returns.
const MaxOverdueListed = 100

// ListOverdueSlots lists up to limit (at most MaxOverdueListed) of a tenant's backup slots
// marked overdue, by policy and then agent, from the sparse overdue index, and reports whether
// there are more. The index is eventually consistent: a slot marked or cleared a moment ago may
// be missing or still listed.
func (s *Store) ListOverdueSlots(ctx context.Context, tenantID string, limit int) ([]domain.Slot, bool, error) {
	limit = min(max(limit, 1), MaxOverdueListed)
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(resources.GSI1),
		KeyConditionExpression:    aws.String("GSI1PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(tenantOverdueGSI1(tenantID))},
		// One more than wanted tells whether there are more.
		Limit: aws.Int32(int32(limit + 1)),
	}
	var slots []domain.Slot
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, false, fmt.Errorf("list overdue slots: %w", err)
		}
		for _, m := range out.Items {
			var it slotItem
			if err := unmarshal(m, &it); err != nil {
				return nil, false, err
			}
			slots = append(slots, it.Slot)
		}
		if len(slots) > limit {
			return slots[:limit], true, nil
		}
		if out.LastEvaluatedKey == nil {
			return slots, false, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
		in.Limit = aws.Int32(int32(limit + 1 - len(slots)))
	}
}

// writeCounted makes one conditional write with the counter changes it causes: in a transaction
// when there are any, else as a single request. It reports whether the write's condition failed.
func (s *Store) writeCounted(ctx context.Context, w types.TransactWriteItem, counts *tally) (failed bool, err error) {
	if counts != nil && !counts.empty() {
		err := s.transact(ctx, append([]types.TransactWriteItem{w}, s.counterWrites(counts)...))
		if _, ok := cancelledByCondition(err); ok {
			return true, nil
		}
		return false, err
	}
	switch {
	case w.Put != nil:
		p := w.Put
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: p.TableName, Item: p.Item, ConditionExpression: p.ConditionExpression,
			ExpressionAttributeNames: p.ExpressionAttributeNames, ExpressionAttributeValues: p.ExpressionAttributeValues})
	case w.Update != nil:
		u := w.Update
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression,
			ConditionExpression: u.ConditionExpression, ExpressionAttributeNames: u.ExpressionAttributeNames, ExpressionAttributeValues: u.ExpressionAttributeValues})
	case w.Delete != nil:
		d := w.Delete
		_, err = s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: d.TableName, Key: d.Key, ConditionExpression: d.ConditionExpression,
			ExpressionAttributeNames: d.ExpressionAttributeNames, ExpressionAttributeValues: d.ExpressionAttributeValues})
	default:
		return false, fmt.Errorf("write counted: not a put, update or delete")
	}
	if conditionFailed(err) {
		return true, nil
	}
	return false, err
}
