package deadletter_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/deadletter"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
	"github.com/restic-monitor/restic-monitor/internal/testenv/queuetest"
)

// deployment is a table and a queue stage of one test's own: the dead-letter queue, one agent's
// queue redriving to it, and a drainer over both.
type deployment struct {
	cfg    aws.Config
	names  resources.Names
	store  *store.Store
	queues *queue.Manager
	// sender puts messages on the agent's queue.
	sender  *queue.Manager
	agentQ  queue.AgentQueue
	tenant  string
	agent   string
	drainer *deadletter.Drainer
	logs    *bytes.Buffer
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	cfg := testenv.AWS(t)
	ctx := context.Background()
	names := resources.Names{Stage: "d" + testenv.UniqueName("")[:8]}
	d := &deployment{
		cfg:    cfg,
		names:  names,
		store:  store.New(dynamodb.NewFromConfig(cfg), testenv.Table(t, cfg)),
		queues: queue.New(sqs.NewFromConfig(cfg), names),
		tenant: "acme",
		agent:  domain.NewID(time.Now()),
		logs:   &bytes.Buffer{},
	}
	d.sender = d.queues
	_, err := d.queues.EnsureDeadLetterQueue(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.queues.DeleteDeadLetterQueue(context.Background()) })
	d.agentQ, err = d.queues.Ensure(ctx, d.tenant, d.agent)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.queues.Delete(context.Background(), d.tenant, d.agent) })
	// The agent itself, with its (empty) capacity item, which the tasks below join and leave.
	now := time.Now().UTC()
	require.NoError(t, d.store.Import(ctx, store.Bulk{Agents: []domain.Agent{{
		ID: d.agent, TenantID: d.tenant, Hostname: "host", OS: "linux", Arch: "amd64", AgentVersion: "1.0.0",
		Status: domain.AgentOnline, LastSeenAt: &now, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60,
		QueueURL: d.agentQ.URL, CreatedAt: now, UpdatedAt: now, Version: 1,
	}}}, 1))
	d.drainer = &deadletter.Drainer{
		Queue: d.queues, Tasks: d.store, Log: slog.New(slog.NewJSONHandler(d.logs, nil)),
	}
	return d
}

// task stores a check task of the deployment's agent in status and returns it with the body of
// its message.
func (d *deployment) task(t *testing.T, status domain.TaskStatus, change func(*domain.Task)) (domain.Task, string) {
	t.Helper()
	now := time.Now().UTC()
	task := domain.Task{
		ID: domain.NewID(now), AgentID: d.agent, Repository: "main", Type: domain.TaskCheck, Status: status,
		Attempt: 1, MaxRetries: 2, NotBefore: now, Deadline: now.Add(time.Hour), Trigger: "operator",
	}
	if change != nil {
		change(&task)
	}
	stored, err := d.store.CreateTask(context.Background(), d.tenant, task)
	require.NoError(t, err)
	m, err := events.NewTaskMessage(stored, nil)
	require.NoError(t, err)
	body, err := m.Encode()
	require.NoError(t, err)
	return stored, string(body)
}

// active lists the IDs of the tasks the agent's capacity item holds.
func (d *deployment) active(t *testing.T) []string {
	t.Helper()
	ref := store.AgentRef{TenantID: d.tenant, AgentID: d.agent}
	c, err := d.store.GetCapacities(t.Context(), []store.AgentRef{ref})
	require.NoError(t, err)
	ids := []string{}
	for _, a := range c[ref].Active {
		ids = append(ids, a.ID)
	}
	return ids
}

// sendTwice makes the deployment put every message on the agent's queue twice, as an SDK retry
// of a send whose answer was lost does.
func (d *deployment) sendTwice() {
	d.sender = queue.New(sqs.NewFromConfig(d.cfg, queuetest.SendBatchesTwice), d.names)
}

// deadLetter puts bodies on the agent's queue and receives them without deleting them, as an
// agent that cannot finish them does, until the queue gives them up to the dead-letter queue.
// It returns the message IDs of every copy of them SQS held.
func (d *deployment) deadLetter(t *testing.T, bodies ...string) []string {
	t.Helper()
	ctx := t.Context()
	msgs := make([]queue.Outgoing, len(bodies))
	for i, b := range bodies {
		msgs[i] = queue.Outgoing{ID: fmt.Sprintf("m%d", i), Body: b}
	}
	failures, err := d.sender.SendBatch(ctx, d.agentQ.URL, msgs)
	require.NoError(t, err)
	require.Empty(t, failures)

	c := queue.NewConsumer(sqs.NewFromConfig(testenv.AWS(t)), d.agentQ.URL)
	ids := map[string]bool{}
	seen := map[string]bool{} // bodies
	// SQS may hold a message more than once; each copy is received until it is given up.
	for range resources.MaxReceiveCount * len(bodies) * 4 {
		got, err := c.Receive(ctx, queue.MaxReceiveMessages, time.Second)
		require.NoError(t, err)
		if len(got) == 0 && len(seen) == len(bodies) {
			break // every copy was received as often as the queue allows, and is gone
		}
		for _, m := range got {
			ids[m.ID], seen[m.Body] = true, true
			require.NoError(t, c.ExtendVisibility(ctx, m.ReceiptHandle, 0))
		}
	}
	require.Len(t, seen, len(bodies), "every message was received")
	var want []string
	for id := range ids {
		want = append(want, id)
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		dead, err := d.queues.DeadLetters(ctx, queue.MaxReceiveMessages)
		require.NoError(ct, err)
		var got []string
		for _, m := range dead {
			got = append(got, m.ID)
		}
		assert.ElementsMatch(ct, want, got)
	}, time.Minute, 100*time.Millisecond, "the messages reach the dead-letter queue")
	return want
}

// drain runs one Drain at now and checks that the dead-letter queue is empty afterwards.
func (d *deployment) drain(t *testing.T, now time.Time) deadletter.Summary {
	t.Helper()
	sum, err := d.drainer.Drain(t.Context(), now)
	require.NoError(t, err)
	left, err := d.queues.DeadLetters(t.Context(), queue.MaxReceiveMessages)
	require.NoError(t, err)
	assert.Empty(t, left, "the dead-letter queue is empty after the drain")
	return sum
}

// TestADeadLetteredTaskFailsWithTheReason dead-letters two tasks' messages, each sent twice as
// an SDK retry does: each task fails once, with its reason, and the second copy finds it failed.
func TestADeadLetteredTaskFailsWithTheReason(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	d.sendTwice()
	never, neverBody := d.task(t, domain.TaskQueued, nil)
	runID := domain.NewID(time.Now())
	crashing, crashingBody := d.task(t, domain.TaskRunning, func(task *domain.Task) {
		started := time.Now().UTC()
		task.Attempt, task.RunID, task.StartedAt = 2, runID, &started
		task.Attempts = []domain.Attempt{
			{Number: 1, Status: domain.RunInterrupted, Error: "interrupted: the agent restarted before this run reported a result"},
			{Number: 2, RunID: runID, StartedAt: &started, Status: domain.TaskRunning},
		}
	})
	d.deadLetter(t, neverBody, crashingBody)
	assert.ElementsMatch(t, []string{never.ID, crashing.ID}, d.active(t), "both tasks occupy the agent")

	now := time.Now().UTC().Truncate(time.Second)
	sum := d.drain(t, now)
	assert.Empty(t, d.active(t), "failed tasks leave the agent's capacity item")
	assert.Equal(t, 2, sum.Failed, "each task fails once")
	assert.GreaterOrEqual(t, sum.AlreadyFinal, 2, "the second copy of each finds its task failed")
	assert.Equal(t, sum.Failed+sum.AlreadyFinal, sum.Received)
	assert.Zero(t, sum.Errors)
	var failedIDs []string
	for _, task := range sum.FailedTasks {
		failedIDs = append(failedIDs, task.ID)
	}
	assert.ElementsMatch(t, []string{never.ID, crashing.ID}, failedIDs, "each failed task is announced once")

	got, err := d.store.GetTask(t.Context(), d.tenant, never.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.TaskFailed, got.Status)
	assert.Equal(t, "dead-lettered after 5 deliveries: the agent never completed it", got.Error)
	require.NotNil(t, got.FinishedAt)
	assert.True(t, now.Equal(*got.FinishedAt), "finished at %s, want %s", got.FinishedAt, now)

	got, err = d.store.GetTask(t.Context(), d.tenant, crashing.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.TaskFailed, got.Status)
	assert.Equal(t, "dead-lettered after 5 deliveries: interrupted: the agent restarted before this run reported a result", got.Error)
	require.Len(t, got.Attempts, 2)
	assert.Equal(t, domain.TaskFailed, got.Attempts[1].Status, "the running attempt ends with the task")
	assert.Equal(t, got.Error, got.Attempts[1].Error)

	logs := d.logs.String()
	assert.Contains(t, logs, `"task_id":"`+never.ID+`"`)
	assert.Contains(t, logs, `"tenant_id":"acme"`)

	// A later drain changes nothing, even should SQS deliver a copy again.
	again := d.drain(t, now)
	assert.Zero(t, again.Failed)
	assert.Equal(t, again.Received, again.AlreadyFinal)
}

func TestADeadLetterThatIsNoTaskMessageIsDropped(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	garbage := "this is not a task message, and a long one: " + strings.Repeat("x", 300)
	_, valid := d.task(t, domain.TaskQueued, nil)
	newer := strings.Replace(valid, `"schemaVersion":1`, `"schemaVersion":99`, 1)
	require.NotEqual(t, valid, newer)
	ids := d.deadLetter(t, garbage, newer)

	sum := d.drain(t, time.Now())
	assert.GreaterOrEqual(t, sum.Received, 2, "both messages, and any copy of them SQS held")
	assert.Equal(t, deadletter.Summary{Received: sum.Received, Dropped: sum.Received}, sum, "every one is dropped")
	logs := d.logs.String()
	for _, id := range ids {
		assert.Contains(t, logs, `"message_id":"`+id+`"`)
	}
	assert.Contains(t, logs, "this is not a task message, and a long one")
	assert.NotContains(t, logs, strings.Repeat("x", 200), "only the start of a body is logged")
}

func TestADeadLetterOfAFinishedTaskLeavesTheTaskAsItWas(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	finished := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	done, body := d.task(t, domain.TaskSucceeded, func(task *domain.Task) { task.FinishedAt = &finished })
	d.deadLetter(t, body)

	sum := d.drain(t, time.Now())
	assert.Positive(t, sum.Received)
	assert.Equal(t, deadletter.Summary{Received: sum.Received, AlreadyFinal: sum.Received}, sum)
	got, err := d.store.GetTask(t.Context(), d.tenant, done.ID)
	require.NoError(t, err)
	assert.Equal(t, done, got)
}
