package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// This file keeps each agent's capacity item: the agent's active tasks (pending, queued,
// running) and the backoff it asked for, on one small item, so the scheduler learns what
// occupies 100 agents with one BatchGetItem instead of one Query each.
//
// The active tasks are a string set of "<type>#<task ID>" entries, the type being the one the
// task counts against (domain.LimitType). Every write that makes a task active or ends that is
// one transaction with the ADD or DELETE of its entry (capacityUpdate), so the task and the set
// never disagree; adding or removing an entry twice changes nothing.
//
// An item is trusted only when it is counted: written whole from the agent's tasks, at
// registration, by Import or by RecountCapacity. A change on an agent without an item (one
// registered before capacity items existed) creates an item that is not counted, since the
// tasks it had before are missing from it; GetCapacities recounts such an item, and a missing
// one, before it answers.

// capacityItem is an agent's capacity item. Rev moves with every change to it, so a recount,
// which reads the agent's tasks before it writes, holds only while no change came in between.
type capacityItem struct {
	key
	Entity        string     `json:"entity"`
	TenantID      string     `json:"tenantId"`
	AgentID       string     `json:"agentId"`
	Active        stringSet  `json:"active,omitempty"`
	Counted       bool       `json:"counted,omitempty"`
	Rev           int64      `json:"rev"`
	BackoffUntil  *time.Time `json:"backoffUntil,omitempty"`
	BackoffReason string     `json:"backoffReason,omitempty"`
}

// stringSet is stored as a DynamoDB string set, whose members ADD and DELETE change one by one.
// DynamoDB stores no empty set: an empty one must be nil, which omitempty leaves out.
type stringSet []string

func (s stringSet) MarshalDynamoDBAttributeValue() (types.AttributeValue, error) {
	if len(s) == 0 {
		return nil, errors.New("an empty string set cannot be stored")
	}
	return &types.AttributeValueMemberSS{Value: s}, nil
}

func (s *stringSet) UnmarshalDynamoDBAttributeValue(av types.AttributeValue) error {
	switch v := av.(type) {
	case *types.AttributeValueMemberSS:
		*s = v.Value
	case *types.AttributeValueMemberNULL:
		*s = nil
	default:
		return fmt.Errorf("want a string set, got %T", av)
	}
	return nil
}

// Capacity is what occupies an agent, as its capacity item records it.
type Capacity struct {
	// Active are the agent's pending, queued and running tasks, in no particular order.
	Active []ActiveTask
	// BackoffUntil and BackoffReason are the backoff of the agent's latest heartbeat; they are
	// written in the same transaction as the agent's own copy.
	BackoffUntil  *time.Time
	BackoffReason string
}

// ActiveTask is a task that occupies an agent.
type ActiveTask struct {
	ID string
	// Type is the type the task counts against (domain.LimitType).
	Type domain.TaskType
}

func (it capacityItem) capacity() Capacity {
	c := Capacity{BackoffUntil: it.BackoffUntil, BackoffReason: it.BackoffReason}
	for _, e := range it.Active {
		if t, ok := parseEntry(e); ok {
			c.Active = append(c.Active, t)
		}
	}
	return c
}

// activeEntry is a task's entry in its agent's set of active tasks.
func activeEntry(t domain.Task) string {
	return string(domain.LimitType(t.Type, t.Params)) + "#" + t.ID
}

// everyEntry lists every entry a task could have been added as, so that removing them all
// takes the task out of the set whatever type it was counted as when it was added.
func everyEntry(taskID string) []string {
	out := make([]string, len(domain.TaskTypes))
	for i, tt := range domain.TaskTypes {
		out[i] = string(tt) + "#" + taskID
	}
	return out
}

func parseEntry(e string) (ActiveTask, bool) {
	tt, id, ok := strings.Cut(e, "#")
	return ActiveTask{ID: id, Type: domain.TaskType(tt)}, ok && id != ""
}

// countedCapacity is the counted capacity item of agent a whose active tasks are active.
func countedCapacity(a domain.Agent, active []domain.Task) capacityItem {
	it := capacityItem{
		key: capacityKey(a.TenantID, a.ID), Entity: entityCapacity, TenantID: a.TenantID, AgentID: a.ID,
		Counted: true, Rev: 1, BackoffUntil: a.BackoffUntil, BackoffReason: a.BackoffReason,
	}
	for _, t := range active {
		it.Active = append(it.Active, activeEntry(t))
	}
	return it
}

// capacityUpdate is the transaction action that keeps the capacity item of a task's agent in
// step with a write of the task: before is the task as stored (nil for a new one), after the
// task as written. It is nil when the write does not change whether the task occupies its
// agent. A task's type is fixed while it is active: its entry could not change in the same
// update that keeps it.
func (s *Store) capacityUpdate(before *domain.Task, after domain.Task) (*types.Update, error) {
	was := before != nil && before.Status.Active()
	switch is := after.Status.Active(); {
	case was && is:
		if activeEntry(*before) != activeEntry(after) {
			return nil, fmt.Errorf("task %s: an active task keeps its type and parameters", after.ID)
		}
		return nil, nil
	case is:
		return s.addActive(after.TenantID, after.AgentID, []domain.Task{after}), nil
	case was:
		return s.removeActive(after.TenantID, after.AgentID, after.ID), nil
	}
	return nil, nil
}

// addActive is the update that adds tasks, all of one agent, to the agent's active tasks. A
// transaction may act on an item only once, so all the tasks of one agent that a transaction
// makes active share one.
func (s *Store) addActive(tenantID, agentID string, tasks []domain.Task) *types.Update {
	entries := make([]string, len(tasks))
	for i, t := range tasks {
		entries[i] = activeEntry(t)
	}
	return s.membershipUpdate(tenantID, agentID, "ADD #active :entries, #rev :one", entries)
}

// removeActive is the update that takes a task out of its agent's active tasks.
func (s *Store) removeActive(tenantID, agentID, taskID string) *types.Update {
	return s.membershipUpdate(tenantID, agentID, "ADD #rev :one DELETE #active :entries", everyEntry(taskID))
}

func (s *Store) membershipUpdate(tenantID, agentID, change string, entries []string) *types.Update {
	return &types.Update{
		TableName: &s.table,
		Key:       capacityKey(tenantID, agentID).av(),
		// The identity is for an item this update creates: one of an agent never counted.
		UpdateExpression:         aws.String("SET entity = :entity, tenantId = :t, agentId = :a " + change),
		ExpressionAttributeNames: map[string]string{"#active": "active", "#rev": "rev"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":entity": str(entityCapacity), ":t": str(tenantID), ":a": str(agentID), ":one": num(1),
			":entries": &types.AttributeValueMemberSS{Value: entries},
		},
	}
}

// backoffUpdate is the transaction action that copies an agent's backoff to its capacity item.
func (s *Store) backoffUpdate(a domain.Agent) *types.Update {
	set := []string{"entity = :entity", "tenantId = :t", "agentId = :a"}
	var remove []string
	values := map[string]types.AttributeValue{":entity": str(entityCapacity), ":t": str(a.TenantID), ":a": str(a.ID), ":one": num(1)}
	if a.BackoffUntil != nil {
		set = append(set, "backoffUntil = :until")
		values[":until"] = str(fmtTime(*a.BackoffUntil))
	} else {
		remove = append(remove, "backoffUntil")
	}
	if a.BackoffUntil != nil && a.BackoffReason != "" {
		set = append(set, "backoffReason = :reason")
		values[":reason"] = str(a.BackoffReason)
	} else {
		remove = append(remove, "backoffReason")
	}
	return &types.Update{
		TableName:                 &s.table,
		Key:                       capacityKey(a.TenantID, a.ID).av(),
		UpdateExpression:          aws.String(updateExpression(set, remove) + " ADD #rev :one"),
		ExpressionAttributeNames:  map[string]string{"#rev": "rev"},
		ExpressionAttributeValues: values,
	}
}

// updateExpression joins the SET and REMOVE clauses of an update, leaving out an empty one.
func updateExpression(set, remove []string) string {
	var clauses []string
	if len(set) > 0 {
		clauses = append(clauses, "SET "+strings.Join(set, ", "))
	}
	if len(remove) > 0 {
		clauses = append(clauses, "REMOVE "+strings.Join(remove, ", "))
	}
	return strings.Join(clauses, " ")
}

// sameBackoff reports whether two versions of an agent ask for the same backoff.
func sameBackoff(a, b domain.Agent) bool {
	switch {
	case a.BackoffUntil == nil || b.BackoffUntil == nil:
		return a.BackoffUntil == nil && b.BackoffUntil == nil
	}
	return a.BackoffUntil.Equal(*b.BackoffUntil) && a.BackoffReason == b.BackoffReason
}

// recountConcurrency bounds the recounts GetCapacities runs at once.
const recountConcurrency = 8

// GetCapacities reads the capacity of many agents at once, 100 per request. An agent whose item
// is missing or was never counted is recounted first (RecountCapacity), so an agent with active
// tasks never passes for an idle one. Agents whose capacity could not be read are missing from
// the result, and the error says why.
func (s *Store) GetCapacities(ctx context.Context, refs []AgentRef) (map[AgentRef]Capacity, error) {
	keys := make([]key, len(refs))
	for i, r := range refs {
		keys[i] = capacityKey(r.TenantID, r.AgentID)
	}
	out := make(map[AgentRef]Capacity, len(refs))
	err := s.batchGet(ctx, keys, func(m map[string]types.AttributeValue) error {
		var it capacityItem
		if err := unmarshal(m, &it); err != nil {
			return err
		}
		if it.Counted {
			out[AgentRef{it.TenantID, it.AgentID}] = it.capacity()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get capacities: %w", err)
	}
	var recount []AgentRef
	seen := map[AgentRef]bool{}
	for _, r := range refs {
		if _, ok := out[r]; !ok && !seen[r] {
			seen[r] = true
			recount = append(recount, r)
		}
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, recountConcurrency)
	)
	for _, r := range recount {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := s.RecountCapacity(ctx, r.TenantID, r.AgentID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			out[r] = c
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// maxRecountTries bounds how often RecountCapacity counts again after a change came in between.
const maxRecountTries = 10

// RecountCapacity rebuilds an agent's capacity item from its tasks and returns it. It serves
// agents whose item is missing or not counted, and repairs one that is wrong: tasks written by
// a version without capacity items, still running during an upgrade, are not on it. An agent
// that does not exist gets no item; what its tasks amount to is returned all the same.
//
// The candidates are the agent's tasks in its index of active tasks (GSI3), which may lag
// behind the table, and the tasks the item lists; each is read from the table itself, and only
// those that are active there are kept. The write holds only while the item has not changed
// since it was read, so a task that became active or ended meanwhile is never lost: the count
// starts over.
func (s *Store) RecountCapacity(ctx context.Context, tenantID, agentID string) (Capacity, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.recount(ctx, tenantID, agentID)
		if !errors.Is(err, domain.ErrConflict) || attempt >= maxRecountTries {
			if err != nil {
				return Capacity{}, fmt.Errorf("recount capacity of agent %s: %w", agentID, err)
			}
			return c, nil
		}
		if err := sleepBackoff(ctx, attempt); err != nil {
			return Capacity{}, err
		}
	}
}

func (s *Store) recount(ctx context.Context, tenantID, agentID string) (Capacity, error) {
	k := capacityKey(tenantID, agentID)
	var it capacityItem
	err := s.get(ctx, k, &it)
	exists := err == nil
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		return Capacity{}, err
	}
	var agent agentItem
	err = s.get(ctx, agentKey(tenantID, agentID), &agent)
	gone := errors.Is(err, domain.ErrNotFound)
	if err != nil && !gone {
		return Capacity{}, err
	}

	ids := map[string]bool{}
	for _, e := range it.Active {
		if t, ok := parseEntry(e); ok {
			ids[t.ID] = true
		}
	}
	indexed, err := s.ListActiveTasks(ctx, tenantID, agentID)
	if err != nil {
		return Capacity{}, err
	}
	for _, t := range indexed {
		ids[t.ID] = true
	}
	keys := make([]key, 0, len(ids))
	for id := range ids {
		keys = append(keys, taskKey(tenantID, id))
	}
	next := capacityItem{BackoffUntil: agent.BackoffUntil, BackoffReason: agent.BackoffReason}
	err = s.batchGet(ctx, keys, func(m map[string]types.AttributeValue) error {
		var t taskItem
		if err := unmarshal(m, &t); err != nil {
			return err
		}
		if t.AgentID == agentID && t.Status.Active() {
			next.Active = append(next.Active, activeEntry(t.Task))
		}
		return nil
	})
	if err != nil {
		return Capacity{}, err
	}

	if gone {
		// Nothing would ever remove an item of an agent that does not exist.
		return next.capacity(), nil
	}

	set := []string{"entity = :entity", "tenantId = :t", "agentId = :a", "counted = :true", "#rev = :next", "#w = :w"}
	var remove []string
	write := newWriteID()
	values := map[string]types.AttributeValue{
		":entity": str(entityCapacity), ":t": str(tenantID), ":a": str(agentID),
		":true": &types.AttributeValueMemberBOOL{Value: true}, ":next": num(it.Rev + 1), ":w": str(write),
	}
	if len(next.Active) > 0 {
		set = append(set, "#active = :active")
		values[":active"] = &types.AttributeValueMemberSS{Value: next.Active}
	} else {
		remove = append(remove, "#active")
	}
	if next.BackoffUntil != nil {
		set = append(set, "backoffUntil = :until")
		values[":until"] = str(fmtTime(*next.BackoffUntil))
	} else {
		remove = append(remove, "backoffUntil")
	}
	if next.BackoffUntil != nil && next.BackoffReason != "" {
		set = append(set, "backoffReason = :reason")
		values[":reason"] = str(next.BackoffReason)
	} else {
		next.BackoffReason = ""
		remove = append(remove, "backoffReason")
	}
	cond := "attribute_not_exists(#rev)"
	if exists {
		cond = "#rev = :read"
		values[":read"] = num(it.Rev)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       k.av(),
		UpdateExpression:          aws.String(updateExpression(set, remove)),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#active": "active", "#rev": "rev", "#w": attrWrite},
		ExpressionAttributeValues: values,
	})
	if conditionFailed(err) {
		if !s.landed(ctx, k.av(), write) {
			return Capacity{}, domain.ErrConflict
		}
	} else if err != nil {
		return Capacity{}, err
	}
	return next.capacity(), nil
}
