package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// This file holds the reads and writes that let one scheduler tick handle many due entries in
// few requests: batched reads of the agents, policies and slots they name, an agent's active
// tasks, sent tasks marked queued in shared transactions, and the overdue checks that watch
// planned runs.

// AgentRef names one agent.
type AgentRef struct{ TenantID, AgentID string }

// PolicyRef names one policy.
type PolicyRef struct{ TenantID, PolicyID string }

// SlotRef names one schedule slot.
type SlotRef struct {
	TenantID, PolicyID, AgentID string
	Kind                        domain.SlotKind
}

// maxBatchGetKeys is DynamoDB's limit on the keys of one BatchGetItem request.
const maxBatchGetKeys = 100

// batchGet reads the items at keys, 100 per request, asking again for what DynamoDB leaves
// unprocessed, and decodes each item found. Missing items are skipped.
func (s *Store) batchGet(ctx context.Context, keys []key, decode func(map[string]types.AttributeValue) error) error {
	seen := make(map[key]bool, len(keys))
	unique := keys[:0:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			unique = append(unique, k)
		}
	}
	for start := 0; start < len(unique); start += maxBatchGetKeys {
		chunk := unique[start:min(start+maxBatchGetKeys, len(unique))]
		avs := make([]map[string]types.AttributeValue, len(chunk))
		for i, k := range chunk {
			avs[i] = k.av()
		}
		pending := map[string]types.KeysAndAttributes{s.table: {Keys: avs, ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(pending) > 0; attempt++ {
			if attempt > 8 {
				return fmt.Errorf("batch get: %d keys left unprocessed", len(pending[s.table].Keys))
			}
			out, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return err
			}
			for _, m := range out.Responses[s.table] {
				if err := decode(m); err != nil {
					return err
				}
			}
			pending = out.UnprocessedKeys
			if len(pending) > 0 {
				if err := sleepBackoff(ctx, attempt); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// GetAgents reads many agents at once. Agents that do not exist are missing from the result.
func (s *Store) GetAgents(ctx context.Context, refs []AgentRef) (map[AgentRef]domain.Agent, error) {
	keys := make([]key, len(refs))
	for i, r := range refs {
		keys[i] = agentKey(r.TenantID, r.AgentID)
	}
	out := make(map[AgentRef]domain.Agent, len(refs))
	err := s.batchGet(ctx, keys, func(m map[string]types.AttributeValue) error {
		var it agentItem
		if err := unmarshal(m, &it); err != nil {
			return err
		}
		a := it.domain()
		out[AgentRef{a.TenantID, a.ID}] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get agents: %w", err)
	}
	return out, nil
}

// GetPolicies reads many policies at once. Policies that do not exist are missing from the
// result.
func (s *Store) GetPolicies(ctx context.Context, refs []PolicyRef) (map[PolicyRef]domain.Policy, error) {
	keys := make([]key, len(refs))
	for i, r := range refs {
		keys[i] = policyKey(r.TenantID, r.PolicyID)
	}
	out := make(map[PolicyRef]domain.Policy, len(refs))
	err := s.batchGet(ctx, keys, func(m map[string]types.AttributeValue) error {
		var it policyItem
		if err := unmarshal(m, &it); err != nil {
			return err
		}
		out[PolicyRef{it.TenantID, it.ID}] = it.Policy
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get policies: %w", err)
	}
	return out, nil
}

// GetSlots reads many schedule slots at once. Slots that do not exist are missing from the
// result.
func (s *Store) GetSlots(ctx context.Context, refs []SlotRef) (map[SlotRef]domain.Slot, error) {
	keys := make([]key, len(refs))
	for i, r := range refs {
		keys[i] = slotKey(r.TenantID, r.PolicyID, r.AgentID, r.Kind)
	}
	out := make(map[SlotRef]domain.Slot, len(refs))
	err := s.batchGet(ctx, keys, func(m map[string]types.AttributeValue) error {
		var it slotItem
		if err := unmarshal(m, &it); err != nil {
			return err
		}
		out[SlotRef{it.TenantID, it.PolicyID, it.AgentID, it.Kind}] = it.Slot
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get slots: %w", err)
	}
	return out, nil
}

// ListActiveTasks returns an agent's pending, queued and running tasks with only their ID,
// type, parameters and status: what a capacity check needs.
func (s *Store) ListActiveTasks(ctx context.Context, tenantID, agentID string) ([]domain.Task, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(resources.GSI3),
		KeyConditionExpression:    aws.String("GSI3PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(agentActiveGSI3(tenantID, agentID))},
		ProjectionExpression:      aws.String("#id, #type, #params, #status"),
		ExpressionAttributeNames:  map[string]string{"#id": "id", "#type": "type", "#params": "params", "#status": "status"},
	}
	var tasks []domain.Task
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list active tasks of agent %s: %w", agentID, err)
		}
		for _, m := range out.Items {
			var t domain.Task
			if err := unmarshal(m, &t); err != nil {
				return nil, err
			}
			t.TenantID, t.AgentID = tenantID, agentID
			tasks = append(tasks, t)
		}
		if out.LastEvaluatedKey == nil {
			return tasks, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// MarkTasksQueued records that the messages of tasks were sent: each task moves from the state
// it has in the slice (pending or retrying) to queued, taking the slice's NotBefore and Deadline,
// which its message carried. A retry occupies its agent again, so it rejoins the agent's
// capacity item in the same transaction. The tasks share transactions of up to 100 actions; when
// one is cancelled, its tasks are marked one by one. The result has one entry per task: nil, a
// *domain.TransitionError when the task had moved on meanwhile (its agent may already have
// started it), or the error that prevented the write.
func (s *Store) MarkTasksQueued(ctx context.Context, tasks []domain.Task) []error {
	errs := make([]error, len(tasks))
	updates := make([]*types.Update, len(tasks))
	for i, t := range tasks {
		updates[i], errs[i] = s.queuedUpdate(t)
	}
	for _, chunk := range packQueued(tasks, errs) {
		if len(chunk) > 1 {
			err := s.transact(ctx, s.queuedActions(tasks, updates, chunk))
			if err == nil {
				continue
			}
			if cancelReasons(err) == nil {
				for _, i := range chunk {
					errs[i] = fmt.Errorf("mark task %s queued: %w", tasks[i].ID, err)
				}
				continue
			}
		}
		for _, i := range chunk {
			errs[i] = s.markQueued(ctx, tasks[i], updates[i])
		}
	}
	return errs
}

// rejoins reports whether a task, as read, starts occupying its agent again when it is queued.
func rejoins(t domain.Task) bool { return !t.Status.Active() }

// packQueued splits the tasks that can be marked (by index) into the groups that share a
// transaction: one action per task, and one per agent whose retries rejoin its capacity item.
func packQueued(tasks []domain.Task, errs []error) [][]int {
	var chunks [][]int
	var cur []int
	n := 0
	agents := map[AgentRef]bool{} // agents with a capacity update in the current group
	for i, t := range tasks {
		if errs[i] != nil {
			continue
		}
		ref := AgentRef{t.TenantID, t.AgentID}
		if cost := 1 + b2i(rejoins(t) && !agents[ref]); n+cost > maxTransactionActions {
			chunks = append(chunks, cur)
			cur, n, agents = nil, 0, map[AgentRef]bool{}
		}
		n += 1 + b2i(rejoins(t) && !agents[ref])
		if rejoins(t) {
			agents[ref] = true
		}
		cur = append(cur, i)
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// queuedActions are the updates of the tasks at idx and one capacity update per agent whose
// retries rejoin it.
func (s *Store) queuedActions(tasks []domain.Task, updates []*types.Update, idx []int) []types.TransactWriteItem {
	var items []types.TransactWriteItem
	var order []AgentRef
	rejoining := map[AgentRef][]domain.Task{}
	for _, i := range idx {
		t := tasks[i]
		items = append(items, types.TransactWriteItem{Update: updates[i]})
		if rejoins(t) {
			ref := AgentRef{t.TenantID, t.AgentID}
			if _, ok := rejoining[ref]; !ok {
				order = append(order, ref)
			}
			rejoining[ref] = append(rejoining[ref], t)
		}
	}
	for _, ref := range order {
		items = append(items, types.TransactWriteItem{Update: s.addActive(ref.TenantID, ref.AgentID, rejoining[ref])})
	}
	return items
}

// queuedUpdate is the conditional update that moves t from its state to queued. Index keys
// follow from the new state as newTaskItem derives them.
func (s *Store) queuedUpdate(t domain.Task) (*types.Update, error) {
	if !domain.CanTransition(t.Status, domain.TaskQueued) {
		return nil, &domain.TransitionError{TaskID: t.ID, Current: t.Status, To: domain.TaskQueued}
	}
	q := t
	q.Status = domain.TaskQueued
	it := newTaskItem(q, 0)
	return &types.Update{
		TableName: &s.table,
		Key:       taskKey(t.TenantID, t.ID).av(),
		UpdateExpression: aws.String("SET #status = :queued, notBefore = :nb, #deadline = :dl, updatedAt = :now, rev = rev + :one, " +
			"GSI2PK = :g2pk, GSI2SK = :g2sk, GSI3PK = :g3pk, GSI3SK = :g3sk, #w = :w REMOVE nextRetryAt"),
		ConditionExpression:      aws.String("#status = :from"),
		ExpressionAttributeNames: map[string]string{"#status": "status", "#deadline": "deadline", "#w": attrWrite},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":w":      str(newWriteID()),
			":queued": str(string(domain.TaskQueued)), ":from": str(string(t.Status)),
			":nb": str(fmtTime(t.NotBefore)), ":dl": str(fmtTime(t.Deadline)), ":now": str(fmtTime(s.nowUTC())), ":one": num(1),
			":g2pk": str(it.GSI2PK), ":g2sk": str(it.GSI2SK), ":g3pk": str(it.GSI3PK), ":g3sk": str(it.GSI3SK),
		},
	}, nil
}

// markQueued runs one task's queued update on its own (with its capacity update, for a retry).
func (s *Store) markQueued(ctx context.Context, t domain.Task, u *types.Update) error {
	var capacity *types.Update
	if rejoins(t) {
		capacity = s.addActive(t.TenantID, t.AgentID, []domain.Task{t})
	}
	write := u.ExpressionAttributeValues[":w"].(*types.AttributeValueMemberS).Value
	err := s.commitTask(ctx, types.TransactWriteItem{Update: u}, u.Key, write, capacity)
	if err == nil {
		return nil
	}
	if !errors.Is(err, domain.ErrConflict) {
		return fmt.Errorf("mark task %s queued: %w", t.ID, err)
	}
	current, gerr := s.GetTask(ctx, t.TenantID, t.ID)
	if gerr != nil {
		return gerr
	}
	return &domain.TransitionError{TaskID: t.ID, Current: current.Status, To: domain.TaskQueued}
}

// OverdueCheck watches a planned run of one slot. When CheckAt comes, the scheduler looks
// whether the slot succeeded since the run was planned: if so, it removes the check (the next
// run dispatched leaves a new one); if not, it marks the slot overdue and announces it
// (Announced), and looks again later, until the slot succeeds again: then it announces the
// recovery and removes the check.
type OverdueCheck struct {
	TenantID  string          `json:"tenantId"`
	PolicyID  string          `json:"policyId"`
	AgentID   string          `json:"agentId"`
	Kind      domain.SlotKind `json:"kind"`
	PlannedAt time.Time       `json:"plannedAt"`
	CheckAt   time.Time       `json:"checkAt"`
	Announced bool            `json:"announced,omitempty"`
}

// Ref names the slot the check watches.
func (c OverdueCheck) Ref() SlotRef { return SlotRef{c.TenantID, c.PolicyID, c.AgentID, c.Kind} }

type overdueCheckItem struct {
	key
	GSI2PK string `json:"GSI2PK"`
	GSI2SK string `json:"GSI2SK"`
	Entity string `json:"entity"`
	OverdueCheck
}

// overdueCheckUpdate writes a slot's check. With keep, a check that exists is left as it is
// (only a missing one is created), so the check goes on watching the oldest run not yet seen to
// succeed: a slot whose runs keep failing is judged on the first of them, however often it is
// dispatched. Without keep, the check moves to c's run and time. Announced is never cleared
// (it is set when c has it).
func (s *Store) overdueCheckUpdate(c OverdueCheck, keep bool) *types.Update {
	set := "SET #entity = :entity, tenantId = :t, policyId = :p, agentId = :a, #kind = :k, plannedAt = :planned, checkAt = :at, " +
		resources.AttrGSI2PK + " = :gpk, " + resources.AttrGSI2SK + " = :gsk"
	if keep {
		set = "SET #entity = :entity, tenantId = :t, policyId = :p, agentId = :a, #kind = :k, " +
			"plannedAt = if_not_exists(plannedAt, :planned), checkAt = if_not_exists(checkAt, :at), " +
			resources.AttrGSI2PK + " = :gpk, " + resources.AttrGSI2SK + " = if_not_exists(" + resources.AttrGSI2SK + ", :gsk)"
	}
	values := map[string]types.AttributeValue{
		":entity": str(entityOverdue), ":t": str(c.TenantID), ":p": str(c.PolicyID), ":a": str(c.AgentID), ":k": str(string(c.Kind)),
		":planned": str(fmtTime(c.PlannedAt)), ":at": str(fmtTime(c.CheckAt)),
		":gpk": str(dueGSI2(shardOf(c.TenantID, c.PolicyID, c.AgentID, string(c.Kind)))),
		":gsk": str(overdueCheckDueSK(c.TenantID, c.PolicyID, c.AgentID, c.Kind, c.CheckAt)),
	}
	if c.Announced {
		set += ", announced = :true"
		values[":true"] = &types.AttributeValueMemberBOOL{Value: true}
	}
	return &types.Update{
		TableName:                 &s.table,
		Key:                       overdueCheckKey(c.TenantID, c.PolicyID, c.AgentID, c.Kind).av(),
		UpdateExpression:          aws.String(set),
		ExpressionAttributeNames:  map[string]string{"#entity": "entity", "#kind": "kind"},
		ExpressionAttributeValues: values,
	}
}

// WatchSlot makes sure a slot's run is watched: it creates the slot's overdue check for c
// unless the slot has one already (see OverdueCheck).
func (s *Store) WatchSlot(ctx context.Context, c OverdueCheck) error {
	u := s.overdueCheckUpdate(c, true)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression,
		ExpressionAttributeNames: u.ExpressionAttributeNames, ExpressionAttributeValues: u.ExpressionAttributeValues,
	})
	if err != nil {
		return fmt.Errorf("watch slot %s/%s/%s: %w", c.PolicyID, c.AgentID, c.Kind, err)
	}
	return nil
}

// checkUnchanged is the condition that a check still watches the run it was read with.
func checkUnchanged(c OverdueCheck) (string, map[string]types.AttributeValue) {
	return "plannedAt = :readPlanned", map[string]types.AttributeValue{":readPlanned": str(fmtTime(c.PlannedAt))}
}

// AnnounceOverdue marks the slot c watches overdue and the check announced, to be looked at
// again at recheckAt, in one transaction that also counts the slot as overdue (and puts it in
// its tenant's overdue index). It reports false, changing nothing, when the check was announced
// already, watches another run by now, or the slot recorded a success other than lastSuccess
// since it was read: so of two schedulers looking at the same check, one announces. The events
// evs are recorded with the announcement.
func (s *Store) AnnounceOverdue(ctx context.Context, c OverdueCheck, lastSuccess *time.Time, recheckAt time.Time, evs ...events.Event) (bool, error) {
	slotCond := "attribute_exists(PK) AND attribute_not_exists(lastSuccessAt)"
	slotValues := map[string]types.AttributeValue{":true": &types.AttributeValueMemberBOOL{Value: true}}
	if lastSuccess != nil {
		slotCond = "lastSuccessAt = :ls"
		slotValues[":ls"] = str(fmtTime(*lastSuccess))
	}
	set := "SET overdue = :true"
	if slotCounted(c.Kind, true) {
		index, values := overdueIndexSet(c.TenantID, c.PolicyID, c.AgentID)
		set += ", " + index
		maps.Copy(slotValues, values)
	}
	next := c
	next.CheckAt, next.Announced = recheckAt, true
	check := s.overdueCheckUpdate(next, false)
	cond, values := checkUnchanged(c)
	check.ConditionExpression = aws.String(cond + " AND attribute_not_exists(announced)")
	maps.Copy(check.ExpressionAttributeValues, values)
	write := newWriteID()
	*check.UpdateExpression += ", #w = :w"
	check.ExpressionAttributeNames["#w"], check.ExpressionAttributeValues[":w"] = attrWrite, str(write)
	sk := slotKey(c.TenantID, c.PolicyID, c.AgentID, c.Kind)
	// The slot is normally not marked yet (a success clears the mark, and a check ends only
	// after one), so that is tried first; a slot marked already is marked again without being
	// counted twice.
	marked := false
	for attempt := 0; attempt < maxSlotTries; attempt++ {
		counted, countedValues := slotCountedAs(marked)
		values := maps.Clone(slotValues)
		maps.Copy(values, countedValues)
		counts := newTally(c.TenantID)
		counts.overdue(slotCounted(c.Kind, marked), slotCounted(c.Kind, true))
		items, err := s.withEvents(append([]types.TransactWriteItem{
			{Update: &types.Update{
				TableName: &s.table, Key: sk.av(),
				UpdateExpression:          aws.String(set),
				ConditionExpression:       aws.String(slotCond + " AND " + counted),
				ExpressionAttributeValues: values,
			}},
			{Update: check},
		}, s.counterWrites(counts)...), evs)
		if err != nil {
			return false, fmt.Errorf("announce slot %s/%s/%s overdue: %w", c.PolicyID, c.AgentID, c.Kind, err)
		}
		err = s.transact(ctx, items)
		failed, ok := cancelledByCondition(err)
		if !ok {
			if err != nil {
				return false, fmt.Errorf("announce slot %s/%s/%s overdue: %w", c.PolicyID, c.AgentID, c.Kind, err)
			}
			return true, nil
		}
		if s.landed(ctx, check.Key, write) {
			// An earlier attempt of this very announcement, whose answer was lost, made it.
			return true, nil
		}
		if !slices.Equal(failed, []int{0}) {
			return false, nil // the check moved on, or it and the slot both did
		}
		sl, err := s.GetSlot(ctx, c.TenantID, c.PolicyID, c.AgentID, c.Kind)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("announce slot %s/%s/%s overdue: %w", c.PolicyID, c.AgentID, c.Kind, err)
		case sl.Overdue == marked || !sameTime(sl.LastSuccessAt, lastSuccess):
			return false, nil // not the mark: the slot succeeded since it was read
		}
		marked = sl.Overdue
	}
	return false, fmt.Errorf("announce slot %s/%s/%s overdue: the slot kept changing: %w", c.PolicyID, c.AgentID, c.Kind, domain.ErrConflict)
}

// sameTime reports whether two optional times are both absent or equal.
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// RecheckOverdue moves an announced check to look again at recheckAt, unless it watches
// another run by now.
func (s *Store) RecheckOverdue(ctx context.Context, c OverdueCheck, recheckAt time.Time) error {
	next := c
	next.CheckAt = recheckAt
	u := s.overdueCheckUpdate(next, false)
	cond, values := checkUnchanged(c)
	for k, v := range values {
		u.ExpressionAttributeValues[k] = v
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression, ConditionExpression: aws.String(cond),
		ExpressionAttributeNames: u.ExpressionAttributeNames, ExpressionAttributeValues: u.ExpressionAttributeValues,
	})
	if err != nil && !conditionFailed(err) {
		return fmt.Errorf("recheck slot %s/%s/%s: %w", c.PolicyID, c.AgentID, c.Kind, err)
	}
	return nil
}

// EndOverdueCheck removes a check whose run succeeded (or whose slot is gone). It reports
// whether it removed it; a check that watches another run by now is left, and of two schedulers
// ending the same check, one removes it. When announced is true, only a check that had been
// announced is removed, so the caller that removes it announces the recovery once.
//
// A check that was announced marked its slot overdue; a slot that still has the mark when the
// check ends (the scheduler found it on time again without a success, or its policy was
// disabled) loses it in the same transaction, and is counted off. The events evs are recorded
// with the removal of the check.
func (s *Store) EndOverdueCheck(ctx context.Context, c OverdueCheck, announced bool, evs ...events.Event) (bool, error) {
	checkKey := overdueCheckKey(c.TenantID, c.PolicyID, c.AgentID, c.Kind).av()
	if c.Announced || announced {
		cond, values := checkUnchanged(c)
		values[":true"] = &types.AttributeValueMemberBOOL{Value: true}
		marked, markedValues := slotCountedAs(true)
		counts := newTally(c.TenantID)
		counts.overdue(slotCounted(c.Kind, true), false)
		items, err := s.withEvents(append([]types.TransactWriteItem{
			{Delete: &types.Delete{TableName: &s.table, Key: checkKey, ConditionExpression: aws.String(cond + " AND announced = :true"), ExpressionAttributeValues: values}},
			{Update: &types.Update{
				TableName: &s.table, Key: slotKey(c.TenantID, c.PolicyID, c.AgentID, c.Kind).av(),
				UpdateExpression:    aws.String("REMOVE " + overdueIndexRemove),
				ConditionExpression: aws.String(marked), ExpressionAttributeValues: markedValues,
			}},
		}, s.counterWrites(counts)...), evs)
		if err != nil {
			return false, fmt.Errorf("end overdue check of slot %s/%s/%s: %w", c.PolicyID, c.AgentID, c.Kind, err)
		}
		err = s.transact(ctx, items)
		if err == nil {
			return true, nil
		}
		if _, ok := cancelledByCondition(err); !ok {
			return false, fmt.Errorf("end overdue check of slot %s/%s/%s: %w", c.PolicyID, c.AgentID, c.Kind, err)
		}
		// The slot has no mark (a success cleared it) or is gone, or the check is not as read:
		// removing the check alone decides.
	}
	cond, values := checkUnchanged(c)
	if announced {
		cond += " AND announced = :true"
		values[":true"] = &types.AttributeValueMemberBOOL{Value: true}
	}
	var err error
	if len(evs) == 0 {
		_, err = s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: &s.table, Key: checkKey,
			ConditionExpression: aws.String(cond), ExpressionAttributeValues: values,
		})
	} else {
		var items []types.TransactWriteItem
		items, err = s.withEvents([]types.TransactWriteItem{{Delete: &types.Delete{
			TableName: &s.table, Key: checkKey, ConditionExpression: aws.String(cond), ExpressionAttributeValues: values,
		}}}, evs)
		if err != nil {
			return false, fmt.Errorf("end overdue check of slot %s/%s/%s: %w", c.PolicyID, c.AgentID, c.Kind, err)
		}
		err = s.transact(ctx, items)
		if _, ok := cancelledByCondition(err); ok {
			return false, nil
		}
	}
	if conditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("end overdue check of slot %s/%s/%s: %w", c.PolicyID, c.AgentID, c.Kind, err)
	}
	return true, nil
}

// SetAgentOffline records that an agent, as read (a), went silent: at now it becomes offline,
// with OfflineSince now, and leaves the due index until a heartbeat brings it back. It reports
// false, changing nothing, when the agent changed since it was read (a heartbeat came in, or
// another scheduler took it offline first), so of two schedulers, one makes the change. The
// events evs are recorded with the change.
func (s *Store) SetAgentOffline(ctx context.Context, a domain.Agent, now time.Time, evs ...events.Event) (bool, error) {
	off := a
	off.Status = domain.AgentOffline
	counts := newTally(a.TenantID)
	counts.agent(&a, &off)
	return s.updateAgentIfUnchanged(ctx, a, counts, evs,
		"#status = :offline, offlineSince = :at", resources.AttrGSI2PK+", "+resources.AttrGSI2SK,
		map[string]string{"#status": "status"},
		map[string]types.AttributeValue{":offline": str(string(domain.AgentOffline)), ":at": str(fmtTime(now))})
}

// ClearAgentOffline records that the return of an agent, as read (a), was announced: its
// OfflineSince goes, and it sits in the due index at the time it would turn silent. It reports
// false, changing nothing, when the agent changed since it was read. The events evs are recorded
// with the change.
func (s *Store) ClearAgentOffline(ctx context.Context, a domain.Agent, evs ...events.Event) (bool, error) {
	back := a
	back.OfflineSince = nil
	it := newAgentItem(back)
	if it.GSI2PK == "" {
		return false, fmt.Errorf("clear offline mark of agent %s: the agent is not online", a.ID)
	}
	return s.updateAgentIfUnchanged(ctx, a, nil, evs,
		resources.AttrGSI2PK+" = :gpk, "+resources.AttrGSI2SK+" = :gsk", "offlineSince",
		nil, map[string]types.AttributeValue{":gpk": str(it.GSI2PK), ":gsk": str(it.GSI2SK)})
}

// updateAgentIfUnchanged sets and removes attributes of an agent whose stored version is still
// a's, moving it to the next version. It reports false, changing nothing, when the version moved
// on. Unlike UpdateAgent it writes only what changes, in one request (in a transaction with the
// counters when counts changes them: the version condition holds the agent to a, so counts is
// the change from a, or with the outbox items of evs), and a writer that lost never takes the
// winner's write for its own.
func (s *Store) updateAgentIfUnchanged(ctx context.Context, a domain.Agent, counts *tally, evs []events.Event, set, remove string, names map[string]string, values map[string]types.AttributeValue) (bool, error) {
	expr := "SET " + set + ", #version = #version + :one, updatedAt = :now, #w = :w"
	if remove != "" {
		expr += " REMOVE " + remove
	}
	allNames := map[string]string{"#version": "version", "#w": attrWrite}
	for k, v := range names {
		allNames[k] = v
	}
	write := newWriteID()
	values[":read"], values[":one"], values[":now"], values[":w"] = num(a.Version), num(1), str(fmtTime(s.nowUTC())), str(write)
	k := agentKey(a.TenantID, a.ID).av()
	var err error
	if (counts == nil || counts.empty()) && len(evs) == 0 {
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &s.table,
			Key:                       k,
			UpdateExpression:          aws.String(expr),
			ConditionExpression:       aws.String("#version = :read"),
			ExpressionAttributeNames:  allNames,
			ExpressionAttributeValues: values,
		})
	} else {
		items, werr := s.withEvents(append([]types.TransactWriteItem{{Update: &types.Update{
			TableName:                 &s.table,
			Key:                       k,
			UpdateExpression:          aws.String(expr),
			ConditionExpression:       aws.String("#version = :read"),
			ExpressionAttributeNames:  allNames,
			ExpressionAttributeValues: values,
		}}}, s.counterWrites(counts)...), evs)
		if werr != nil {
			return false, fmt.Errorf("update agent %s: %w", a.ID, werr)
		}
		err = s.transact(ctx, items)
		if _, ok := cancelledByCondition(err); ok {
			return s.landed(ctx, k, write), nil
		}
	}
	if conditionFailed(err) {
		// Lost, unless an earlier attempt of this very update, whose answer was lost, made it:
		// then this writer made the change and must report it, or nobody would.
		return s.landed(ctx, k, write), nil
	}
	if err != nil {
		return false, fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	return true, nil
}
