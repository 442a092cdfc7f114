package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/deadletter"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
)

var drainedAt = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// fakeQueue hands out its messages in receives of up to the asked number and records deletes.
type fakeQueue struct {
	waiting    []queue.Message
	receives   int
	deleted    []string
	receiveErr error
	deleteErr  error
}

func (q *fakeQueue) ReceiveDeadLetters(_ context.Context, maxMessages int32, _ time.Duration) ([]queue.Message, error) {
	q.receives++
	if q.receiveErr != nil {
		return nil, q.receiveErr
	}
	n := min(int(maxMessages), len(q.waiting))
	got := q.waiting[:n]
	q.waiting = q.waiting[n:]
	return got, nil
}

func (q *fakeQueue) DeleteDeadLetter(_ context.Context, receiptHandle string) error {
	if q.deleteErr != nil {
		return q.deleteErr
	}
	q.deleted = append(q.deleted, receiptHandle)
	return nil
}

// fakeTasks keeps tasks in a map and follows the state machine as the store does.
type fakeTasks struct {
	tasks         map[string]domain.Task
	getErr        error
	transitionErr error
}

func (f *fakeTasks) GetTask(_ context.Context, _, taskID string) (domain.Task, error) {
	if f.getErr != nil {
		return domain.Task{}, f.getErr
	}
	t, ok := f.tasks[taskID]
	if !ok {
		return domain.Task{}, fmt.Errorf("get task %s: %w", taskID, domain.ErrNotFound)
	}
	return t, nil
}

func (f *fakeTasks) TransitionTaskWith(_ context.Context, _, taskID string, to domain.TaskStatus, change func(*domain.Task), announce func(domain.Task) []events.Event) (domain.Task, []events.Event, error) {
	if f.transitionErr != nil {
		return domain.Task{}, nil, f.transitionErr
	}
	t, ok := f.tasks[taskID]
	if !ok {
		return domain.Task{}, nil, domain.ErrNotFound
	}
	if !domain.CanTransition(t.Status, to) {
		return t, nil, &domain.TransitionError{TaskID: taskID, Current: t.Status, To: to}
	}
	change(&t)
	t.Status = to
	f.tasks[taskID] = t
	return t, announce(t), nil
}

// queuedTask returns a queued check task of agent, and the body of its message.
func queuedTask(t *testing.T, agent string) (domain.Task, string) {
	t.Helper()
	task := domain.Task{
		ID: domain.NewID(drainedAt), TenantID: "acme", AgentID: agent, Repository: "main", Type: domain.TaskCheck,
		Status: domain.TaskQueued, Attempt: 1, NotBefore: drainedAt.Add(-time.Hour), Deadline: drainedAt.Add(time.Hour),
	}
	m, err := events.NewTaskMessage(task, nil)
	require.NoError(t, err)
	body, err := m.Encode()
	require.NoError(t, err)
	return task, string(body)
}

func message(i int, body string) queue.Message {
	return queue.Message{ID: fmt.Sprintf("msg-%d", i), ReceiptHandle: fmt.Sprintf("receipt-%d", i), Body: body}
}

func drainer(q *fakeQueue, tasks *fakeTasks) *deadletter.Drainer {
	return &deadletter.Drainer{Queue: q, Tasks: tasks}
}

func TestTheFailureNamesTheLatestReasonTheTaskRecords(t *testing.T) {
	runID := domain.NewID(drainedAt)
	long := strings.Repeat("é", 2000)
	tests := []struct {
		name   string
		change func(*domain.Task)
		want   string
	}{
		{"nothing reported", func(*domain.Task) {}, "dead-lettered after 5 deliveries: the agent never completed it"},
		{"the task's own error", func(t *domain.Task) { t.Error = "repository is locked" },
			"dead-lettered after 5 deliveries: repository is locked"},
		{"the latest attempt with an error", func(t *domain.Task) {
			t.Status, t.RunID = domain.TaskRunning, runID
			t.Attempts = []domain.Attempt{
				{Number: 1, Status: domain.RunInterrupted, Error: "first interruption"},
				{Number: 2, Status: domain.RunInterrupted, Error: "interrupted: the agent restarted before this run reported a result"},
				{Number: 3, RunID: runID, Status: domain.TaskRunning},
			}
		}, "dead-lettered after 5 deliveries: interrupted: the agent restarted before this run reported a result"},
		{"a long reason is cut", func(t *domain.Task) { t.Error = long },
			"dead-lettered after 5 deliveries: " + long[:1020] + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, body := queuedTask(t, domain.NewID(drainedAt))
			tt.change(&task)
			tasks := &fakeTasks{tasks: map[string]domain.Task{task.ID: task}}
			q := &fakeQueue{waiting: []queue.Message{message(1, body)}}

			sum, err := drainer(q, tasks).Drain(context.Background(), drainedAt)
			require.NoError(t, err)
			got := tasks.tasks[task.ID]
			assert.Equal(t, domain.TaskFailed, got.Status)
			assert.Equal(t, tt.want, got.Error)
			require.NotNil(t, got.FinishedAt)
			assert.Equal(t, drainedAt, *got.FinishedAt)
			for _, a := range got.Attempts {
				assert.NotEqual(t, domain.TaskRunning, a.Status, "attempt %d still running", a.Number)
			}
			// The failure's task.failed is recorded with it, naming the same reason.
			require.Len(t, sum.Events, 1)
			assert.Equal(t, events.TypeTaskFailed, sum.Events[0].Type)
			assert.Equal(t, tt.want, sum.Events[0].Data.(events.TaskFailedData).Error)
			sum.Events = nil
			assert.Equal(t, deadletter.Summary{Received: 1, Failed: 1, FailedTasks: []domain.Task{got}}, sum)
			assert.Equal(t, []string{"receipt-1"}, q.deleted)
		})
	}
}

func TestAMessageIsKeptWhenItsTaskCannotBeReadOrWritten(t *testing.T) {
	for name, tasks := range map[string]*fakeTasks{
		"read fails":  {getErr: errors.New("throttled")},
		"write fails": {transitionErr: errors.New("throttled")},
	} {
		t.Run(name, func(t *testing.T) {
			task, body := queuedTask(t, domain.NewID(drainedAt))
			tasks.tasks = map[string]domain.Task{task.ID: task}
			q := &fakeQueue{waiting: []queue.Message{message(1, body)}}

			sum, err := drainer(q, tasks).Drain(context.Background(), drainedAt)
			require.NoError(t, err, "single dead letters do not fail the drain")
			assert.Equal(t, deadletter.Summary{Received: 1, Errors: 1}, sum)
			assert.Empty(t, q.deleted, "deleted before the task's failure was stored")
			assert.Equal(t, domain.TaskQueued, tasks.tasks[task.ID].Status)
		})
	}
}

func TestAMessageThatCannotBeDeletedIsCountedAsAnError(t *testing.T) {
	task, body := queuedTask(t, domain.NewID(drainedAt))
	tasks := &fakeTasks{tasks: map[string]domain.Task{task.ID: task}}
	q := &fakeQueue{waiting: []queue.Message{message(1, body)}, deleteErr: queue.ErrNotInFlight}

	sum, err := drainer(q, tasks).Drain(context.Background(), drainedAt)
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Errors)
	assert.Zero(t, sum.Failed)
	assert.Equal(t, domain.TaskFailed, tasks.tasks[task.ID].Status, "the failure is stored; the next drain finds it final")
}

func TestDeadLettersThatCanNeverFailATaskAreDeleted(t *testing.T) {
	agent := domain.NewID(drainedAt)
	gone, goneBody := queuedTask(t, agent)
	final, finalBody := queuedTask(t, agent)
	final.Status = domain.TaskSucceeded
	other, otherBody := queuedTask(t, agent)
	other.AgentID = domain.NewID(drainedAt.Add(time.Second))
	tasks := &fakeTasks{tasks: map[string]domain.Task{final.ID: final, other.ID: other}}
	q := &fakeQueue{waiting: []queue.Message{
		message(1, goneBody), message(2, finalBody), message(3, otherBody), message(4, "not a task"),
	}}

	sum, err := drainer(q, tasks).Drain(context.Background(), drainedAt)
	require.NoError(t, err)
	assert.Equal(t, deadletter.Summary{Received: 4, Gone: 1, AlreadyFinal: 1, Dropped: 2}, sum)
	assert.Equal(t, []string{"receipt-1", "receipt-2", "receipt-3", "receipt-4"}, q.deleted)
	assert.Equal(t, final, tasks.tasks[final.ID], "an ended task is left as it was")
	assert.Equal(t, other, tasks.tasks[other.ID], "another agent's task is left as it was")
	assert.NotContains(t, tasks.tasks, gone.ID)
}

func TestDrainStopsAtTheBatchLimitOrWhenTheQueueIsEmpty(t *testing.T) {
	waiting := func(n int) []queue.Message {
		msgs := make([]queue.Message, n)
		for i := range msgs {
			msgs[i] = message(i, "garbage")
		}
		return msgs
	}
	tests := []struct {
		name                       string
		messages, maxBatches       int
		wantReceived, wantReceives int
	}{
		{"empty queue: one receive", 0, 0, 0, 1},
		{"three letters: a second receive finds none", 3, 0, 3, 2},
		{"more than the limit allows", 25, 2, 20, 2},
		{"the default limit", 150, 0, 10 * deadletter.DefaultMaxBatches, deadletter.DefaultMaxBatches},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQueue{waiting: waiting(tt.messages)}
			d := drainer(q, &fakeTasks{})
			d.MaxBatches = tt.maxBatches
			sum, err := d.Drain(context.Background(), drainedAt)
			require.NoError(t, err)
			assert.Equal(t, tt.wantReceived, sum.Received)
			assert.Equal(t, tt.wantReceived, sum.Dropped)
			assert.Equal(t, tt.wantReceives, q.receives)
			assert.Len(t, q.waiting, tt.messages-tt.wantReceived)
		})
	}
}

func TestDrainFailsWhenTheQueueCannotBeRead(t *testing.T) {
	q := &fakeQueue{receiveErr: queue.ErrNoDeadLetterQueue}
	_, err := drainer(q, &fakeTasks{}).Drain(context.Background(), drainedAt)
	require.ErrorIs(t, err, queue.ErrNoDeadLetterQueue)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q = &fakeQueue{waiting: []queue.Message{message(1, "garbage")}}
	_, err = drainer(q, &fakeTasks{}).Drain(ctx, drainedAt)
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, q.receives)
}
