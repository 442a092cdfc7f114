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

// taskItem is a task with its index keys, which follow from its state:
//   - GSI1 lists the agent's tasks;
//   - GSI2 (the due index) holds the task while the scheduler has something to do with it at a
//     time: send it (pending, at NotBefore), retry it (retrying, at NextRetryAt), expire it
//     (queued, at Deadline) or check that its agent still runs it (running, at CheckRunningAt);
//   - GSI3 holds the task while it occupies the agent (pending, queued, running); recounting an
//     agent's capacity item reads it (capacity.go).
type taskItem struct {
	key
	GSI1PK string `json:"GSI1PK"`
	GSI1SK string `json:"GSI1SK"`
	GSI2PK string `json:"GSI2PK,omitempty"`
	GSI2SK string `json:"GSI2SK,omitempty"`
	GSI3PK string `json:"GSI3PK,omitempty"`
	GSI3SK string `json:"GSI3SK,omitempty"`
	Entity string `json:"entity"`
	// Rev increases with every write, so concurrent transitions cannot both win.
	Rev int64 `json:"rev"`
	domain.Task
}

func (it taskItem) domain() domain.Task { return it.Task }

func newTaskItem(t domain.Task, rev int64) taskItem {
	it := taskItem{
		key:    taskKey(t.TenantID, t.ID),
		GSI1PK: agentTasksGSI1(t.TenantID, t.AgentID), GSI1SK: prefixTask + t.ID,
		Entity: entityTask, Rev: rev, Task: t,
	}
	if at, ok := taskDueAt(t); ok {
		it.GSI2PK = dueGSI2(shardOf(t.TenantID, t.ID))
		it.GSI2SK = taskDueSK(t.TenantID, t.ID, at)
	}
	if t.Status.Active() {
		it.GSI3PK, it.GSI3SK = agentActiveGSI3(t.TenantID, t.AgentID), prefixTask+t.ID
	}
	return it
}

// taskDueAt says when the scheduler must next look at a task, if ever.
func taskDueAt(t domain.Task) (time.Time, bool) {
	switch t.Status {
	case domain.TaskPending:
		return t.NotBefore, true
	case domain.TaskRetrying:
		if t.NextRetryAt != nil {
			return *t.NextRetryAt, true
		}
		return t.NotBefore, true
	case domain.TaskQueued:
		return t.Deadline, true
	case domain.TaskRunning:
		// Set by whoever starts the task (the agent API) and moved on by the scheduler.
		if t.CheckRunningAt != nil {
			return *t.CheckRunningAt, true
		}
	}
	return time.Time{}, false
}

// validateNewTask checks a task before it is first stored: what domain.Task.Validate checks, and
// a known status, from which the task's index keys follow. A task of another status would be
// neither due nor active nor ever allowed a transition.
func validateNewTask(t domain.Task) error {
	err := t.Validate()
	if t.Status.Valid() {
		return err
	}
	bad := domain.FieldError{Field: "status", Reason: "must be a task status"}
	var ve *domain.ValidationError
	switch {
	case errors.As(err, &ve):
		ve.Fields = append(ve.Fields, bad)
		return ve
	case err != nil:
		return err
	}
	return &domain.ValidationError{Fields: []domain.FieldError{bad}}
}

// CreateTask stores a new task; an active one joins its agent's capacity item in the same
// transaction.
func (s *Store) CreateTask(ctx context.Context, tenantID string, t domain.Task) (domain.Task, error) {
	t.TenantID = tenantID
	if err := validateNewTask(t); err != nil {
		return domain.Task{}, err
	}
	now := s.nowUTC()
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	t.UpdatedAt = now
	capacity, err := s.capacityUpdate(nil, t)
	if err != nil {
		return domain.Task{}, fmt.Errorf("create task: %w", err)
	}
	m, err := marshal(newTaskItem(t, 1))
	if err != nil {
		return domain.Task{}, fmt.Errorf("create task: %w", err)
	}
	write := stamp(m)
	put := types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: m, ConditionExpression: aws.String("attribute_not_exists(PK)")}}
	if err := s.commitTask(ctx, put, keyOf(m), write, capacity); err != nil {
		return domain.Task{}, fmt.Errorf("create task: %w", err)
	}
	return t, nil
}

// GetTask reads a task.
func (s *Store) GetTask(ctx context.Context, tenantID, taskID string) (domain.Task, error) {
	it, err := s.getTaskItem(ctx, tenantID, taskID)
	return it.Task, err
}

func (s *Store) getTaskItem(ctx context.Context, tenantID, taskID string) (taskItem, error) {
	var it taskItem
	if err := s.get(ctx, taskKey(tenantID, taskID), &it); err != nil {
		return taskItem{}, fmt.Errorf("get task %s: %w", taskID, err)
	}
	return it, nil
}

// TaskFilter narrows a listing of tasks. Empty fields match everything; From and To bound the
// creation time.
type TaskFilter struct {
	AgentID  string
	Status   domain.TaskStatus
	Type     domain.TaskType
	From, To time.Time
}

// ListTasks lists the tenant's tasks, newest first.
func (s *Store) ListTasks(ctx context.Context, tenantID string, f TaskFilter, page Page) ([]domain.Task, string, error) {
	l := listing{pk: tenantPK(tenantID), reverse: true, names: map[string]string{}, values: map[string]types.AttributeValue{}}
	if f.AgentID != "" {
		l.index, l.pk = resources.GSI1, agentTasksGSI1(tenantID, f.AgentID)
	}
	timeRange(&l, prefixTask, f.From, f.To)
	var conds []string
	if f.Status != "" {
		conds = append(conds, "#status = :status")
		l.names["#status"], l.values[":status"] = "status", str(string(f.Status))
	}
	if f.Type != "" {
		conds = append(conds, "#type = :type")
		l.names["#type"], l.values[":type"] = "type", str(string(f.Type))
	}
	l.filter = joinAnd(conds)
	tasks, next, err := list(ctx, s, l, page, taskItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	return tasks, next, nil
}

// timeRange bounds a listing of time-ordered IDs under prefix by creation time.
func timeRange(l *listing, prefix string, from, to time.Time) {
	if from.IsZero() && to.IsZero() {
		l.prefix = prefix
		return
	}
	l.from = prefix + domain.IDAt(from)
	l.to = prefix + "~"
	if !to.IsZero() {
		l.to = prefix + domain.IDAt(to.Add(time.Millisecond))
	}
}

// CountActiveTasks counts an agent's pending, queued and running tasks.
func (s *Store) CountActiveTasks(ctx context.Context, tenantID, agentID string) (int, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(resources.GSI3),
		KeyConditionExpression:    aws.String("GSI3PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(agentActiveGSI3(tenantID, agentID))},
		Select:                    types.SelectCount,
	}
	total := 0
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("count active tasks of agent %s: %w", agentID, err)
		}
		total += int(out.Count)
		if out.LastEvaluatedKey == nil {
			return total, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// TransitionTask moves a task to state to, applying change (which may be nil) to the task
// before it is written. The move happens only if the task's current state allows it
// (domain.CanTransition); otherwise the result is a *domain.TransitionError and nothing is
// written. Two concurrent transitions cannot both win: each write is conditional on the task's
// revision, and the loser re-reads and re-checks.
func (s *Store) TransitionTask(ctx context.Context, tenantID, taskID string, to domain.TaskStatus, change func(*domain.Task)) (domain.Task, error) {
	t, _, err := s.TransitionTaskWith(ctx, tenantID, taskID, to, change, nil)
	return t, err
}

// TransitionTaskWith is TransitionTask that records, with the task's write, the events announce
// (which may be nil) makes of the task as it is to be stored, and returns them.
func (s *Store) TransitionTaskWith(ctx context.Context, tenantID, taskID string, to domain.TaskStatus, change func(*domain.Task), announce func(domain.Task) []events.Event) (domain.Task, []events.Event, error) {
	for attempt := 0; ; attempt++ {
		it, err := s.getTaskItem(ctx, tenantID, taskID)
		if err != nil {
			return domain.Task{}, nil, err
		}
		if !domain.CanTransition(it.Status, to) {
			return it.Task, nil, &domain.TransitionError{TaskID: taskID, Current: it.Status, To: to}
		}
		t := it.Task
		if change != nil {
			change(&t)
		}
		t.Status, t.UpdatedAt = to, s.nowUTC()
		t.TenantID, t.ID, t.AgentID = tenantID, taskID, it.AgentID
		settleRunningCheck(&t)
		var evs []events.Event
		if announce != nil {
			evs = announce(t)
		}
		err = s.putTask(ctx, it, t, evs)
		if errors.Is(err, domain.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return domain.Task{}, nil, fmt.Errorf("move task %s to %s: %w", taskID, to, err)
		}
		return t, evs, nil
	}
}

// putTask writes t over the task as it was read (before), and keeps its agent's capacity item
// in step, recording evs in the same transaction.
func (s *Store) putTask(ctx context.Context, before taskItem, t domain.Task, evs []events.Event) error {
	capacity, err := s.capacityUpdate(&before.Task, t)
	if err != nil {
		return err
	}
	m, err := marshal(newTaskItem(t, before.Rev+1))
	if err != nil {
		return err
	}
	write := stamp(m)
	put := types.TransactWriteItem{Put: &types.Put{
		TableName: &s.table, Item: m, ConditionExpression: aws.String("rev = :rev"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":rev": num(before.Rev)},
	}}
	return s.commitTask(ctx, put, keyOf(m), write, capacity, evs...)
}

// commitTask carries out one conditional write of a task item — the Put or Update in w, which
// stamps the item with write ID write — and, in the same transaction, capacity, the update of
// the agent's capacity item (nil when the write leaves it as it is), and the outbox items of
// evs. A failed condition is domain.ErrConflict, unless the item at k is this very write's,
// from an attempt whose answer was lost.
func (s *Store) commitTask(ctx context.Context, w types.TransactWriteItem, k map[string]types.AttributeValue, write string, capacity *types.Update, evs ...events.Event) error {
	var err error
	switch {
	case capacity != nil || len(evs) > 0:
		items := []types.TransactWriteItem{w}
		if capacity != nil {
			items = append(items, types.TransactWriteItem{Update: capacity})
		}
		if items, err = s.withEvents(items, evs); err != nil {
			return err
		}
		err = s.transact(ctx, items)
	case w.Put != nil:
		p := w.Put
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: p.TableName, Item: p.Item, ConditionExpression: p.ConditionExpression,
			ExpressionAttributeNames: p.ExpressionAttributeNames, ExpressionAttributeValues: p.ExpressionAttributeValues,
		})
	default:
		u := w.Update
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression, ConditionExpression: u.ConditionExpression,
			ExpressionAttributeNames: u.ExpressionAttributeNames, ExpressionAttributeValues: u.ExpressionAttributeValues,
		})
	}
	// Only the task's own write has a condition.
	if _, failed := cancelledByCondition(err); failed || conditionFailed(err) {
		if s.landed(ctx, k, write) {
			return nil
		}
		return domain.ErrConflict
	}
	return err
}
