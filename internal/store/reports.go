package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// This file holds the writes behind agents' reports: a task and its runs changed together, the
// agent's hourly retry budget, a slot's last success and an agent's snapshot inventory.

// TaskRunChange is what one agent report does to a task and its runs. UpdateTaskRun writes all
// of it or nothing.
type TaskRunChange struct {
	// Task is the task as it is to be stored; nil leaves it as it is.
	Task *domain.Task
	// Run replaces the run that was read; nil leaves it as it is.
	Run *domain.Run
	// NewRun is a run to create.
	NewRun *domain.Run
	// Retry uses up one retry of the agent's budget for the hour that contains Retry.At.
	Retry *RetryUse
	// Requeue makes the task's slot due again; it comes only with a change of the task.
	Requeue *SlotRequeue
	// Events are recorded in the outbox with the change; they need a change of the task or a
	// run to go with.
	Events []events.Event
}

// RetryUse is one retry counted against an agent's hourly budget.
type RetryUse struct {
	At time.Time
	// Limit is the most retries the agent may use in that hour; the write fails (and the change
	// is decided again) when this one would go beyond it.
	Limit int
}

// maxTaskRunTries bounds how often UpdateTaskRun decides again after losing a race.
const maxTaskRunTries = 10

// UpdateTaskRun reads a task and one of its runs — runID, or the task's current run when runID
// is empty — and writes what decide makes of them, in one transaction that holds only while
// neither the task nor the run changed since they were read and the agent's retry budget allows
// the retry the change uses; a task that starts or stops occupying its agent changes the
// agent's capacity item in the same transaction. When another writer got in between (an operator cancelling the
// task, a log chunk counted on the run, another report), it reads both again and decides again.
// The run passed to decide is nil when it does not exist. An error from decide is returned as
// it is, and nothing is written.
//
// Unlike TransitionTask it does not apply the task state machine: the rules of an agent's
// reports go beyond it (a task whose run is started again stays running; a task whose agent
// shut down before finishing it is queued again), so decide applies them.
func (s *Store) UpdateTaskRun(ctx context.Context, tenantID, taskID, runID string, decide func(domain.Task, *domain.Run) (TaskRunChange, error)) (TaskRunChange, error) {
	for attempt := 0; ; attempt++ {
		ti, err := s.getTaskItem(ctx, tenantID, taskID)
		if err != nil {
			return TaskRunChange{}, err
		}
		id := runID
		if id == "" {
			id = ti.RunID
		}
		var ri *runItem
		if id != "" {
			var it runItem
			err := s.get(ctx, runKey(tenantID, id), &it)
			switch {
			case err == nil:
				ri = &it
			case !errors.Is(err, domain.ErrNotFound):
				return TaskRunChange{}, fmt.Errorf("get run %s: %w", id, err)
			}
		}
		var run *domain.Run
		if ri != nil {
			r := ri.Run
			run = &r
		}
		ch, err := decide(ti.Task, run)
		if err != nil {
			return TaskRunChange{}, err
		}
		items, err := s.taskRunWrites(tenantID, ti, ri, &ch)
		if err != nil {
			return TaskRunChange{}, fmt.Errorf("update task %s: %w", taskID, err)
		}
		if len(items) == 0 {
			return ch, nil
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if cancelReasons(err) != nil && attempt < maxTaskRunTries {
			if err := sleepBackoff(ctx, attempt); err != nil {
				return TaskRunChange{}, err
			}
			continue
		}
		if _, ok := cancelledByCondition(err); ok {
			return TaskRunChange{}, fmt.Errorf("update task %s: lost %d races: %w", taskID, maxTaskRunTries, domain.ErrConflict)
		}
		if err != nil {
			return TaskRunChange{}, fmt.Errorf("update task %s: %w", taskID, err)
		}
		return ch, nil
	}
}

// taskRunWrites turns a change into transaction actions. It completes ch with what is stored
// (identities, times), so the caller returns what was written.
func (s *Store) taskRunWrites(tenantID string, ti taskItem, ri *runItem, ch *TaskRunChange) ([]types.TransactWriteItem, error) {
	if ch.Task == nil && ch.Run == nil && ch.NewRun == nil {
		if ch.Retry != nil {
			return nil, errors.New("a retry is counted only with the task it schedules")
		}
		if ch.Requeue != nil {
			return nil, errRequeueAlone
		}
		if len(ch.Events) > 0 {
			return nil, errors.New("events are recorded only with the change they report")
		}
		return nil, nil
	}
	now := s.nowUTC()
	revIs := func(rev int64) (*string, map[string]types.AttributeValue) {
		return aws.String("rev = :rev"), map[string]types.AttributeValue{":rev": num(rev)}
	}
	var items []types.TransactWriteItem
	if ch.Task != nil {
		t := *ch.Task
		t.TenantID, t.ID, t.AgentID, t.UpdatedAt = tenantID, ti.ID, ti.AgentID, now
		settleRunningCheck(&t)
		m, err := marshal(newTaskItem(t, ti.Rev+1))
		if err != nil {
			return nil, err
		}
		cond, values := revIs(ti.Rev)
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: m, ConditionExpression: cond, ExpressionAttributeValues: values}})
		capacity, err := s.capacityUpdate(&ti.Task, t)
		if err != nil {
			return nil, err
		}
		if capacity != nil {
			items = append(items, types.TransactWriteItem{Update: capacity})
		}
		ch.Task = &t
	} else {
		// The change was decided on this state of the task; it must still hold.
		cond, values := revIs(ti.Rev)
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{TableName: &s.table, Key: ti.key.av(), ConditionExpression: cond, ExpressionAttributeValues: values}})
	}
	if ch.Run != nil {
		if ri == nil || ch.Run.ID != ri.ID {
			return nil, errors.New("only the run that was read can be replaced")
		}
		r := *ch.Run
		r.TenantID, r.AgentID, r.TaskID = tenantID, ri.AgentID, ri.TaskID
		m, err := marshal(newRunItem(r, ri.Rev+1))
		if err != nil {
			return nil, err
		}
		cond, values := revIs(ri.Rev)
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: m, ConditionExpression: cond, ExpressionAttributeValues: values}})
		ch.Run = &r
	}
	if ch.NewRun != nil {
		r := *ch.NewRun
		r.TenantID, r.AgentID, r.TaskID = tenantID, ti.AgentID, ti.ID
		if !domain.ValidID(r.ID) {
			return nil, fmt.Errorf("new run: invalid ID %q", r.ID)
		}
		m, err := marshal(newRunItem(r, 1))
		if err != nil {
			return nil, err
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: m, ConditionExpression: aws.String("attribute_not_exists(PK)")}})
		ch.NewRun = &r
	}
	if ch.Retry != nil {
		if ch.Retry.Limit <= 0 {
			return nil, errors.New("a retry budget of zero allows no retry")
		}
		items = append(items, s.useRetry(tenantID, ti.AgentID, *ch.Retry))
	}
	if ch.Requeue != nil {
		if ch.Task == nil {
			return nil, errRequeueAlone
		}
		u, err := s.requeueUpdate(tenantID, *ch.Requeue)
		if err != nil {
			return nil, err
		}
		items = append(items, types.TransactWriteItem{Update: u})
	}
	items = append(items, s.counterWrites(runChangeCounts(tenantID, ri, ch, now))...)
	return s.withEvents(items, ch.Events)
}

// runChangeCounts is what a change does to the run counters: the run that was read moves from
// its status to the one written, and a new run counts with its status. Both may fall in one
// hour's bucket, which the tally merges.
func runChangeCounts(tenantID string, ri *runItem, ch *TaskRunChange, now time.Time) *tally {
	counts := newTally(tenantID)
	if ch.Run != nil && ri != nil {
		counts.run(ri.ID, ri.Status, ch.Run.Status, now)
	}
	if ch.NewRun != nil {
		counts.run(ch.NewRun.ID, "", ch.NewRun.Status, now)
	}
	return counts
}

// retryItem counts the retries an agent used in one hour; DynamoDB removes it a day later.
type retryItem struct {
	key
	Entity string `json:"entity"`
	Count  int    `json:"count"`
}

// useRetry is the transaction action that counts one retry, failing when the hour's budget is
// spent.
func (s *Store) useRetry(tenantID, agentID string, u RetryUse) types.TransactWriteItem {
	hour := u.At.UTC().Truncate(time.Hour)
	return types.TransactWriteItem{Update: &types.Update{
		TableName:           &s.table,
		Key:                 retryBudgetKey(tenantID, agentID, hour).av(),
		UpdateExpression:    aws.String("SET #n = if_not_exists(#n, :zero) + :one, entity = :entity, #ttl = :ttl"),
		ConditionExpression: aws.String("attribute_not_exists(#n) OR #n < :limit"),
		ExpressionAttributeNames: map[string]string{
			"#n": "count", "#ttl": resources.AttrTTL,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":zero": num(0), ":one": num(1), ":limit": num(int64(u.Limit)),
			":entity": str(entityRetries), ":ttl": num(ttlAt(hour.Add(25 * time.Hour))),
		},
	}}
}

// RetriesThisHour returns how many retries the agent used in the hour that contains at.
func (s *Store) RetriesThisHour(ctx context.Context, tenantID, agentID string, at time.Time) (int, error) {
	var it retryItem
	err := s.get(ctx, retryBudgetKey(tenantID, agentID, at.UTC().Truncate(time.Hour)), &it)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read retry budget of agent %s: %w", agentID, err)
	}
	return it.Count, nil
}

// MarkSlotSucceeded records that a policy×agent slot's task succeeded at at: the slot's last
// success moves forward (never back) and it is no longer overdue (nor counted so). A slot that
// no longer exists (the policy was unassigned) or already knows of a later success is left
// alone, so the call can be repeated.
func (s *Store) MarkSlotSucceeded(ctx context.Context, tenantID, policyID, agentID string, kind domain.SlotKind, at time.Time) error {
	k := slotKey(tenantID, policyID, agentID, kind)
	// Most slots that succeed were not overdue: that is tried first, and needs no counter.
	marked := false
	for attempt := 0; attempt < maxSlotTries; attempt++ {
		counted, values := slotCountedAs(marked)
		values[":at"] = str(fmtTime(at))
		counts := newTally(tenantID)
		counts.overdue(slotCounted(kind, marked), false)
		failed, err := s.writeCounted(ctx, types.TransactWriteItem{Update: &types.Update{
			TableName:                 &s.table,
			Key:                       k.av(),
			UpdateExpression:          aws.String("SET lastSuccessAt = :at REMOVE " + overdueIndexRemove),
			ConditionExpression:       aws.String("attribute_exists(PK) AND (attribute_not_exists(lastSuccessAt) OR lastSuccessAt < :at) AND " + counted),
			ExpressionAttributeValues: values,
		}}, counts)
		if err != nil {
			return fmt.Errorf("mark slot %s/%s/%s succeeded: %w", policyID, agentID, kind, err)
		}
		if !failed {
			return nil
		}
		sl, err := s.GetSlot(ctx, tenantID, policyID, agentID, kind)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			return nil
		case err != nil:
			return err
		case sl.LastSuccessAt != nil && !sl.LastSuccessAt.Before(at):
			return nil // it knows of this success or a later one
		}
		marked = sl.Overdue
	}
	return fmt.Errorf("mark slot %s/%s/%s succeeded: the slot kept changing: %w", policyID, agentID, kind, domain.ErrConflict)
}

// ReplaceSnapshots records an agent's complete inventory of one repository: the reported
// snapshots are stored (replacing earlier reports of them) and the agent's snapshots of that
// repository that the report no longer holds — forgotten since — are removed. It returns how
// many were removed.
func (s *Store) ReplaceSnapshots(ctx context.Context, tenantID, agentID, repository string, snaps []domain.Snapshot) (int, error) {
	keep := make(map[key]bool, len(snaps))
	for i := range snaps {
		snaps[i].Repository = repository
		keep[snapshotKey(tenantID, agentID, snaps[i].Time, snaps[i].ID)] = true
	}
	if err := s.PutSnapshots(ctx, tenantID, agentID, snaps); err != nil {
		return 0, err
	}
	l := listing{pk: agentPK(tenantID, agentID), prefix: prefixSnap, filter: "repository = :repo",
		values: map[string]types.AttributeValue{":repo": str(repository)}}
	var stale []key
	cursor := ""
	for {
		page, next, err := list(ctx, s, l, Page{Limit: maxPageLimit, Cursor: cursor}, func(it snapshotItem) key { return it.key })
		if err != nil {
			return 0, fmt.Errorf("list snapshots of agent %s: %w", agentID, err)
		}
		for _, k := range page {
			if !keep[k] {
				stale = append(stale, k)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if err := s.batchDelete(ctx, stale); err != nil {
		return 0, fmt.Errorf("remove forgotten snapshots of agent %s: %w", agentID, err)
	}
	return len(stale), nil
}
