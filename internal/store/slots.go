package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// slotItem is a schedule slot. It is in the due index only while it has a next run time, and
// in its tenant's overdue index only while it counts as overdue (slotCounted).
type slotItem struct {
	key
	GSI1PK string `json:"GSI1PK,omitempty"`
	GSI1SK string `json:"GSI1SK,omitempty"`
	GSI2PK string `json:"GSI2PK,omitempty"`
	GSI2SK string `json:"GSI2SK,omitempty"`
	Entity string `json:"entity"`
	domain.Slot
}

func (it slotItem) domain() domain.Slot { return it.Slot }

// slotKinds are the kinds of slot a policy can have on an agent, one slot of each at most.
var slotKinds = []domain.SlotKind{domain.SlotBackup, domain.SlotForget, domain.SlotCheck, domain.SlotStats}

func newSlotItem(sl domain.Slot) slotItem {
	it := slotItem{key: slotKey(sl.TenantID, sl.PolicyID, sl.AgentID, sl.Kind), Entity: entitySlot, Slot: sl}
	if sl.NextRunAt != nil {
		it.GSI2PK = dueGSI2(shardOf(sl.TenantID, sl.PolicyID, sl.AgentID, string(sl.Kind)))
		it.GSI2SK = slotDueSK(sl.TenantID, sl.PolicyID, sl.AgentID, sl.Kind, *sl.NextRunAt)
	}
	if slotCounted(sl.Kind, sl.Overdue) {
		it.GSI1PK, it.GSI1SK = tenantOverdueGSI1(sl.TenantID), overdueSlotGSI1SK(sl.PolicyID, sl.AgentID)
	}
	return it
}

// overdueIndexSet is the update clause that puts a slot into its tenant's overdue index, with
// its values.
func overdueIndexSet(tenantID, policyID, agentID string) (string, map[string]types.AttributeValue) {
	return resources.AttrGSI1PK + " = :opk, " + resources.AttrGSI1SK + " = :osk", map[string]types.AttributeValue{
		":opk": str(tenantOverdueGSI1(tenantID)), ":osk": str(overdueSlotGSI1SK(policyID, agentID)),
	}
}

// overdueIndexRemove is the update clause that takes a slot out of the overdue index.
const overdueIndexRemove = "overdue, " + resources.AttrGSI1PK + ", " + resources.AttrGSI1SK

// slotsCounted reads which of the slots at keys exist and, for each, whether it counts as
// overdue.
func (s *Store) slotsCounted(ctx context.Context, keys []key) (map[key]bool, error) {
	out := make(map[key]bool, len(keys))
	err := s.batchGet(ctx, keys, func(m map[string]types.AttributeValue) error {
		var it slotItem
		if err := unmarshal(m, &it); err != nil {
			return err
		}
		out[it.key] = slotCounted(it.Kind, it.Overdue)
		return nil
	})
	return out, err
}

// slotWrite makes a write of a slot hold only while the slot is counted as overdue as it was
// read (was), and counts the difference to counted on counts. Only backup slots count.
func slotWrite(w types.TransactWriteItem, kind domain.SlotKind, was, counted bool, counts *tally) types.TransactWriteItem {
	if kind != domain.SlotBackup {
		return w
	}
	cond, values := slotCountedAs(was)
	switch {
	case w.Put != nil:
		w.Put.ConditionExpression, w.Put.ExpressionAttributeValues = aws.String(cond), values
	case w.Delete != nil:
		w.Delete.ConditionExpression, w.Delete.ExpressionAttributeValues = aws.String(cond), values
	}
	counts.overdue(was, counted)
	return w
}

// maxSlotTries bounds how often a slot write is read and tried again after the slot changed.
const maxSlotTries = 5

// deleteSlots deletes the slots at keys (missing ones are skipped), counting those marked
// overdue off the tenant's counter. Each delete holds only while the slot is marked as read, in
// transactions of up to 99 deletes and the counter; the slots of a transaction cancelled because
// one of them changed meanwhile are read and deleted again.
func (s *Store) deleteSlots(ctx context.Context, tenantID string, keys []key) error {
	for attempt := 0; len(keys) > 0; attempt++ {
		if attempt >= maxSlotTries {
			return fmt.Errorf("delete slots: %d kept changing: %w", len(keys), domain.ErrConflict)
		}
		stored, err := s.slotsCounted(ctx, keys)
		if err != nil {
			return fmt.Errorf("delete slots: %w", err)
		}
		// A transaction may name an item once: a key named twice is deleted once.
		present := make([]key, 0, len(stored))
		seen := make(map[key]bool, len(stored))
		for _, k := range keys {
			if _, ok := stored[k]; ok && !seen[k] {
				seen[k] = true
				present = append(present, k)
			}
		}
		var retry []key
		for start := 0; start < len(present); start += txLimit(ctx) - 1 {
			chunk := present[start:min(start+txLimit(ctx)-1, len(present))]
			counts := newTally(tenantID)
			items := make([]types.TransactWriteItem, 0, len(chunk)+1)
			for _, k := range chunk {
				kind := slotKindOf(k.SK)
				items = append(items, slotWrite(types.TransactWriteItem{Delete: &types.Delete{TableName: &s.table, Key: k.av()}}, kind, stored[k], false, counts))
			}
			err := s.transact(ctx, append(items, s.counterWrites(counts)...))
			if _, ok := cancelledByCondition(err); ok {
				retry = append(retry, chunk...)
				continue
			}
			if err != nil {
				return fmt.Errorf("delete slots: %w", err)
			}
		}
		keys = retry
	}
	return nil
}

// slotKindOf returns the kind of slot a slot's sort key names.
func slotKindOf(sk string) domain.SlotKind {
	return domain.SlotKind(sk[strings.LastIndexByte(sk, '#')+1:])
}

// GetSlot reads one schedule slot.
func (s *Store) GetSlot(ctx context.Context, tenantID, policyID, agentID string, kind domain.SlotKind) (domain.Slot, error) {
	var it slotItem
	if err := s.get(ctx, slotKey(tenantID, policyID, agentID, kind), &it); err != nil {
		return domain.Slot{}, fmt.Errorf("get slot %s/%s/%s: %w", policyID, agentID, kind, err)
	}
	return it.Slot, nil
}

// ListPolicySlots lists a policy's schedule slots, on every agent it is assigned to.
func (s *Store) ListPolicySlots(ctx context.Context, tenantID, policyID string, page Page) ([]domain.Slot, string, error) {
	slots, next, err := list(ctx, s, listing{pk: policyPK(tenantID, policyID), prefix: prefixSlot}, page, slotItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list slots of policy %s: %w", policyID, err)
	}
	return slots, next, nil
}

// PutSlot writes a slot as it is, replacing what was stored, and counts a change of its overdue
// mark.
func (s *Store) PutSlot(ctx context.Context, tenantID string, sl domain.Slot) error {
	sl.TenantID = tenantID
	m, err := marshal(newSlotItem(sl))
	if err != nil {
		return err
	}
	k := slotKey(tenantID, sl.PolicyID, sl.AgentID, sl.Kind)
	for attempt := 0; attempt < maxSlotTries; attempt++ {
		stored, err := s.slotsCounted(ctx, []key{k})
		if err != nil {
			return fmt.Errorf("put slot: %w", err)
		}
		counts := newTally(tenantID)
		w := slotWrite(types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: m}}, sl.Kind, stored[k], slotCounted(sl.Kind, sl.Overdue), counts)
		failed, err := s.writeCounted(ctx, w, counts)
		if err != nil {
			return fmt.Errorf("put slot: %w", err)
		}
		if !failed {
			return nil
		}
	}
	return fmt.Errorf("put slot: it kept changing: %w", domain.ErrConflict)
}

// Due is one entry of the due index: a slot whose next run time has come, a task the scheduler
// must send, retry or expire, an agent that went silent (or came back), or a slot's overdue
// check. Exactly one is set.
type Due struct {
	Slot *domain.Slot
	Task *domain.Task
	// Agent is an online agent whose heartbeats have stopped for three intervals, or one that
	// came back while the scheduler still counts it offline.
	Agent *domain.Agent
	Check *OverdueCheck
	// Outbox is an event recorded and not yet published.
	Outbox *OutboxEntry
	// Health is a repository whose check may be overdue.
	Health *HealthDue
}

// QueryDue returns the entries of one due-index shard that are due at or before now, oldest
// first, at most limit of them, with a cursor for the rest. It spans tenants: it serves the
// scheduler, which acts on every tenant's behalf.
//
// The cursor is the sort key of the last entry returned: due-index sort keys are unique, so the
// next page is the key range from there on, less that entry. Unlike the cursors of the other
// listings, it does not depend on the shape of DynamoDB's LastEvaluatedKey for an index, which
// the embedded emulator gets wrong (it leaves out the index's keys); for the same reason, a
// response DynamoDB cut short (at 1 MB) is continued from the last entry read, not from its
// LastEvaluatedKey. A page is one request: it reads the entry at the cursor, the page, and one
// entry more, which tells whether another page follows.
func (s *Store) QueryDue(ctx context.Context, shard int, now time.Time, page Page) ([]Due, string, error) {
	if shard < 0 || shard >= resources.DueShards {
		return nil, "", fmt.Errorf("query due: shard %d out of range", shard)
	}
	from, to := "0", fmtTime(now)+"#~"
	seen := "" // the sort key of an entry read before, which the range starts with
	if page.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(page.Cursor)
		if err != nil || len(b) == 0 || len(b) > maxSortKeyBytes || string(b) < from {
			return nil, "", fmt.Errorf("query due shard %d: %w", shard, domain.ErrInvalidCursor)
		}
		from, seen = string(b), string(b)
	}
	if from > to {
		return nil, "", nil
	}
	want := int(page.limit())
	var due []Due
	last := ""
	for {
		limit := want - len(due) + 1
		if seen != "" {
			limit++
		}
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                &s.table,
			IndexName:                aws.String(resources.GSI2),
			KeyConditionExpression:   aws.String("#pk = :pk AND #sk BETWEEN :from AND :to"),
			ExpressionAttributeNames: map[string]string{"#pk": resources.AttrGSI2PK, "#sk": resources.AttrGSI2SK},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": str(dueGSI2(shard)), ":from": str(from), ":to": str(to),
			},
			Limit: aws.Int32(int32(limit)),
		})
		if err != nil {
			return nil, "", fmt.Errorf("query due shard %d: %w", shard, err)
		}
		for _, m := range out.Items {
			sk, _ := m[resources.AttrGSI2SK].(*types.AttributeValueMemberS)
			if sk == nil || (seen != "" && sk.Value == seen) {
				continue
			}
			if len(due) == want {
				// More entries are due than the page holds.
				return due, base64.RawURLEncoding.EncodeToString([]byte(last)), nil
			}
			d, err := decodeDue(m)
			if err != nil {
				return nil, "", fmt.Errorf("query due shard %d: %w", shard, err)
			}
			if d != nil {
				due = append(due, *d)
			}
			last = sk.Value
		}
		if out.LastEvaluatedKey == nil {
			return due, "", nil
		}
		if last == "" || last == seen {
			// Nothing new came back, yet DynamoDB says more may follow: reading on from the
			// same place could only repeat this response.
			return nil, "", fmt.Errorf("query due shard %d: a response cut short before its first new entry", shard)
		}
		from, seen = last, last
	}
}

// decodeDue reads one due-index entry; an item of a kind the scheduler does not handle is nil.
func decodeDue(m map[string]types.AttributeValue) (*Due, error) {
	var head struct {
		Entity string `json:"entity"`
	}
	if err := unmarshal(m, &head); err != nil {
		return nil, err
	}
	switch head.Entity {
	case entitySlot:
		var it slotItem
		if err := unmarshal(m, &it); err != nil {
			return nil, err
		}
		return &Due{Slot: &it.Slot}, nil
	case entityHealth:
		var it healthItem
		if err := unmarshal(m, &it); err != nil {
			return nil, err
		}
		if h, ok := it.due(); ok {
			return &Due{Health: &h}, nil
		}
		return nil, nil
	case entityTask:
		var it taskItem
		if err := unmarshal(m, &it); err != nil {
			return nil, err
		}
		return &Due{Task: &it.Task}, nil
	case entityAgent:
		var it agentItem
		if err := unmarshal(m, &it); err != nil {
			return nil, err
		}
		a := it.domain()
		return &Due{Agent: &a}, nil
	case entityOverdue:
		var it overdueCheckItem
		if err := unmarshal(m, &it); err != nil {
			return nil, err
		}
		return &Due{Check: &it.OverdueCheck}, nil
	case entityOutbox:
		var it outboxItem
		if err := unmarshal(m, &it); err != nil {
			return nil, err
		}
		e, err := it.entry()
		if err != nil {
			return nil, err
		}
		return &Due{Outbox: &e}, nil
	}
	return nil, nil
}

// Claim moves a due slot to its next run time and creates the task for the run it claims. It
// wins only if the slot still has the next run time it was read with, so two schedulers that
// read the same slot cannot both create a task.
type Claim struct {
	// Slot is the slot as read from the due index; its NextRunAt is the condition.
	Slot domain.Slot
	// Next is the slot's next run time after this one; zero when the schedule has none, which
	// takes the slot out of the due index.
	Next time.Time
	// Task is the task to create; it is usually pending, to be sent afterwards.
	Task domain.Task
	// CheckAt, when set, watches the claimed run: unless an earlier run of the slot is watched
	// already, the scheduler looks at CheckAt whether it succeeded (an OverdueCheck for the run
	// planned at Slot.NextRunAt).
	CheckAt time.Time
}

// ClaimResult says how one claim ended.
type ClaimResult struct {
	Won bool
	// Err is set when the claim could not be decided (not when another scheduler won it).
	Err error
}

// maxTransactionActions is DynamoDB's limit on the actions of one transaction.
const maxTransactionActions = 100

// maxConflictTries bounds how often a shared transaction is tried again when another
// transaction on the same items was in progress (which decides nothing about who wins).
const maxConflictTries = 3

// ClaimSlots decides a batch of claims with as few requests as it can: claims share
// transactions of up to 100 actions (two or three per claim, and one per agent for its capacity
// item, which the claims of one agent share); a claim another scheduler won cancels its shared
// transaction, which is then tried again without it, so one lost claim does not lose the others.
func (s *Store) ClaimSlots(ctx context.Context, claims []Claim) []ClaimResult {
	results := make([]ClaimResult, len(claims))
	actions := make([][]types.TransactWriteItem, len(claims))
	for i, c := range claims {
		actions[i], results[i].Err = s.claimActions(c)
	}
	out := make([]outcome, len(claims))
	build := func(live []int) ([]types.TransactWriteItem, []int) { return s.withCapacity(claims, actions, live) }
	for _, chunk := range packClaims(claims) {
		var live []int
		for _, i := range chunk {
			if results[i].Err == nil {
				live = append(live, i)
			}
		}
		s.transactUnits(ctx, live, build, out)
	}
	for i, o := range out {
		switch {
		case results[i].Err != nil:
		case o.err != nil:
			results[i].Err = fmt.Errorf("claim slot: %w", o.err)
		default:
			results[i].Won = o.done
		}
	}
	return results
}

// GroupClaims splits claims into groups that ClaimSlots decides in one transaction each. An
// agent's claims stay in one group as far as a transaction holds them, so groups claimed in
// parallel do not contend for an agent's capacity item.
func GroupClaims(claims []Claim) [][]Claim {
	chunks := packClaims(claims)
	out := make([][]Claim, len(chunks))
	for i, chunk := range chunks {
		for _, j := range chunk {
			out[i] = append(out[i], claims[j])
		}
	}
	return out
}

// claimActionCount is the number of actions claimActions builds for c, less its agent's
// capacity update.
func claimActionCount(c Claim) int {
	if c.CheckAt.IsZero() {
		return 2
	}
	return 3
}

// packClaims splits the claims (by index) into the groups that share a transaction: whole
// agents, in the order they come, while they fit in 100 actions. An agent whose claims alone
// need more takes as many transactions as they fill.
func packClaims(claims []Claim) [][]int {
	var order []AgentRef
	byAgent := map[AgentRef][]int{}
	for i, c := range claims {
		ref := AgentRef{c.Slot.TenantID, c.Slot.AgentID}
		if _, ok := byAgent[ref]; !ok {
			order = append(order, ref)
		}
		byAgent[ref] = append(byAgent[ref], i)
	}
	var chunks [][]int
	var cur []int
	n := 0
	flush := func() {
		if len(cur) > 0 {
			chunks = append(chunks, cur)
		}
		cur, n = nil, 0
	}
	for _, ref := range order {
		idx := byAgent[ref]
		cost := 1 // the agent's capacity update
		for _, i := range idx {
			cost += claimActionCount(claims[i])
		}
		if n+cost > maxTransactionActions {
			flush()
		}
		if cost <= maxTransactionActions {
			cur, n = append(cur, idx...), n+cost
			continue
		}
		n = 1
		for _, i := range idx {
			c := claimActionCount(claims[i])
			if n+c > maxTransactionActions {
				flush()
				n = 1
			}
			cur, n = append(cur, i), n+c
		}
	}
	flush()
	return chunks
}

// withCapacity returns the actions of the claims at idx followed by one capacity update per
// agent, adding the tasks the claims create, and for each action the claim it belongs to (-1
// for a capacity update).
func (s *Store) withCapacity(claims []Claim, actions [][]types.TransactWriteItem, idx []int) ([]types.TransactWriteItem, []int) {
	var items []types.TransactWriteItem
	var owners []int
	var order []AgentRef
	tasks := map[AgentRef][]domain.Task{}
	for _, i := range idx {
		items = append(items, actions[i]...)
		for range actions[i] {
			owners = append(owners, i)
		}
		t := claims[i].Task
		if !t.Status.Active() {
			continue
		}
		ref := AgentRef{claims[i].Slot.TenantID, claims[i].Slot.AgentID}
		if _, ok := tasks[ref]; !ok {
			order = append(order, ref)
		}
		tasks[ref] = append(tasks[ref], t)
	}
	for _, ref := range order {
		items = append(items, types.TransactWriteItem{Update: s.addActive(ref.TenantID, ref.AgentID, tasks[ref])})
		owners = append(owners, -1)
	}
	return items, owners
}

// claimActions builds a claim's transaction actions. The slot is updated, not replaced, so what
// others write to it meanwhile (the agent API records its last success) is kept.
func (s *Store) claimActions(c Claim) ([]types.TransactWriteItem, error) {
	sl := c.Slot
	if sl.NextRunAt == nil {
		return nil, fmt.Errorf("claim slot %s/%s: slot is not due", sl.PolicyID, sl.AgentID)
	}
	if err := validateNewTask(c.Task); err != nil {
		return nil, err
	}
	if c.Task.AgentID != sl.AgentID {
		return nil, fmt.Errorf("claim slot %s/%s: the task is for agent %s", sl.PolicyID, sl.AgentID, c.Task.AgentID)
	}
	now := s.nowUTC()
	values := map[string]types.AttributeValue{
		":expected": str(fmtTime(*sl.NextRunAt)),
		":now":      str(fmtTime(now)),
		":task":     str(c.Task.ID),
	}
	update := "SET lastDispatchedAt = :now, lastTaskId = :task"
	remove := " REMOVE waitReason"
	if c.Next.IsZero() {
		remove += ", nextRunAt, " + resources.AttrGSI2PK + ", " + resources.AttrGSI2SK
	} else {
		next := sl
		next.NextRunAt = &c.Next
		it := newSlotItem(next)
		update += ", nextRunAt = :next, " + resources.AttrGSI2PK + " = :gpk, " + resources.AttrGSI2SK + " = :gsk"
		values[":next"], values[":gpk"], values[":gsk"] = str(fmtTime(c.Next)), str(it.GSI2PK), str(it.GSI2SK)
	}
	t := c.Task
	t.TenantID = sl.TenantID
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	t.UpdatedAt = now
	task, err := marshal(newTaskItem(t, 1))
	if err != nil {
		return nil, err
	}
	actions := []types.TransactWriteItem{
		{Update: &types.Update{
			TableName: &s.table, Key: slotKey(sl.TenantID, sl.PolicyID, sl.AgentID, sl.Kind).av(),
			UpdateExpression:          aws.String(update + remove),
			ConditionExpression:       aws.String("nextRunAt = :expected"),
			ExpressionAttributeValues: values,
		}},
		{Put: &types.Put{TableName: &s.table, Item: task, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
	}
	if !c.CheckAt.IsZero() {
		actions = append(actions, types.TransactWriteItem{Update: s.overdueCheckUpdate(OverdueCheck{
			TenantID: sl.TenantID, PolicyID: sl.PolicyID, AgentID: sl.AgentID, Kind: sl.Kind,
			PlannedAt: *sl.NextRunAt, CheckAt: c.CheckAt,
		}, true)})
	}
	return actions, nil
}

// SlotWait is why a due slot was not dispatched, to be recorded on it.
type SlotWait struct {
	// Slot is the slot as read from the due index; its NextRunAt is the condition.
	Slot   domain.Slot
	Reason string
	// CheckAt, when set, watches the run the slot waits with, in the same write: unless an
	// earlier run of the slot is watched already, the scheduler looks at CheckAt whether it
	// succeeded (an OverdueCheck for the run planned at Slot.NextRunAt, as WatchSlot makes).
	CheckAt time.Time
}

// WaitResult says how recording one wait ended.
type WaitResult struct {
	// Recorded is false, with no error, when the slot moved on since it was read (or has no next
	// run): nothing was written, the check neither.
	Recorded bool
	Err      error
}

// waitActionCount is the number of actions slotWaitActions builds for w.
func waitActionCount(w SlotWait) int {
	if w.CheckAt.IsZero() {
		return 1
	}
	return 2
}

// packWaits splits waits (by index) into the groups that share a transaction: in the order they
// come, while they fit in 100 actions, and never two of one slot, since a transaction may act on
// an item only once.
func packWaits(waits []SlotWait) [][]int {
	var chunks [][]int
	var cur []int
	n := 0
	slots := map[SlotRef]bool{}
	for i, w := range waits {
		ref := SlotRef{w.Slot.TenantID, w.Slot.PolicyID, w.Slot.AgentID, w.Slot.Kind}
		cost := waitActionCount(w)
		if len(cur) > 0 && (n+cost > maxTransactionActions || slots[ref]) {
			chunks = append(chunks, cur)
			cur, n, slots = nil, 0, map[SlotRef]bool{}
		}
		cur, n, slots[ref] = append(cur, i), n+cost, true
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// GroupWaits splits waits into the groups that SetSlotWaits records in one request each.
func GroupWaits(waits []SlotWait) [][]SlotWait {
	chunks := packWaits(waits)
	out := make([][]SlotWait, len(chunks))
	for i, chunk := range chunks {
		for _, j := range chunk {
			out[i] = append(out[i], waits[j])
		}
	}
	return out
}

// SetSlotWaits records why due slots were not dispatched, keeping them due, with as few
// requests as it can: the waits share transactions of up to 100 actions (one per wait, and one
// more for a wait that watches its run). Each wait holds only while its slot still has the next
// run time it was read with; a slot that moved on meanwhile is left as it is, and its wait
// cancels the shared transaction, which is then tried again without it. A lone wait that
// watches nothing is a plain conditional update.
func (s *Store) SetSlotWaits(ctx context.Context, waits []SlotWait) []WaitResult {
	results := make([]WaitResult, len(waits))
	out := make([]outcome, len(waits))
	build := func(live []int) ([]types.TransactWriteItem, []int) {
		var items []types.TransactWriteItem
		var owners []int
		for _, i := range live {
			actions := s.slotWaitActions(waits[i])
			items = append(items, actions...)
			for range actions {
				owners = append(owners, i)
			}
		}
		return items, owners
	}
	for _, chunk := range packWaits(waits) {
		var live []int
		for _, i := range chunk {
			if waits[i].Slot.NextRunAt != nil {
				live = append(live, i)
			}
		}
		if len(live) == 1 && waits[live[0]].CheckAt.IsZero() {
			out[live[0]] = s.setSlotWait(ctx, waits[live[0]])
			continue
		}
		s.transactUnits(ctx, live, build, out)
	}
	for i, o := range out {
		results[i] = WaitResult{Recorded: o.done}
		if o.err != nil {
			results[i].Err = fmt.Errorf("record slot wait: %w", o.err)
		}
	}
	return results
}

// slotWaitUpdate is the conditional update that records a wait on its slot.
func (s *Store) slotWaitUpdate(w SlotWait) *types.Update {
	sl := w.Slot
	return &types.Update{
		TableName:                 &s.table,
		Key:                       slotKey(sl.TenantID, sl.PolicyID, sl.AgentID, sl.Kind).av(),
		UpdateExpression:          aws.String("SET waitReason = :r"),
		ConditionExpression:       aws.String("nextRunAt = :expected"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":r": str(w.Reason), ":expected": str(fmtTime(*sl.NextRunAt))},
	}
}

// slotWaitActions are a wait's transaction actions: the wait, and the watch of its run.
func (s *Store) slotWaitActions(w SlotWait) []types.TransactWriteItem {
	actions := []types.TransactWriteItem{{Update: s.slotWaitUpdate(w)}}
	if !w.CheckAt.IsZero() {
		sl := w.Slot
		actions = append(actions, types.TransactWriteItem{Update: s.overdueCheckUpdate(OverdueCheck{
			TenantID: sl.TenantID, PolicyID: sl.PolicyID, AgentID: sl.AgentID, Kind: sl.Kind,
			PlannedAt: *sl.NextRunAt, CheckAt: w.CheckAt,
		}, true)})
	}
	return actions
}

// setSlotWait records one wait that watches nothing, in one conditional update.
func (s *Store) setSlotWait(ctx context.Context, w SlotWait) outcome {
	u := s.slotWaitUpdate(w)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression,
		ConditionExpression: u.ConditionExpression, ExpressionAttributeValues: u.ExpressionAttributeValues,
	})
	switch {
	case conditionFailed(err):
		return outcome{}
	case err != nil:
		return outcome{err: err}
	}
	return outcome{done: true}
}
