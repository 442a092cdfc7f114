package scheduler_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/deadletter"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// A task whose message no agent ever completes ends failed, with the reason and an event, in
// the first tick after SQS moved its message to the dead-letter queue.
func TestTickFailsTasksWhoseMessagesWereDeadLettered(t *testing.T) {
	f := newFixture(t)
	a := f.agent(nil)
	p := f.policy(nil)
	f.assign(p, a, base)
	require.Equal(t, 1, f.tick(base).Dispatched)
	tasks := f.tasks(a)
	require.Len(t, tasks, 1)

	// An agent that crashes on the message every time: received, never deleted, until SQS
	// redrives it, and every copy of it SQS may hold, after MaxReceiveCount deliveries.
	for i, seen := 0, false; ; i++ {
		require.Less(t, i, 4*resources.MaxReceiveCount, "the message never left the task queue")
		out, err := f.sqs.ReceiveMessage(f.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(a.QueueURL), WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
		require.NoError(t, err)
		if len(out.Messages) == 0 && seen {
			break
		}
		seen = seen || len(out.Messages) > 0
		for _, m := range out.Messages {
			_, err := f.sqs.ChangeMessageVisibility(f.ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(a.QueueURL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
			require.NoError(t, err)
		}
	}
	require.Eventually(t, func() bool {
		dl, err := f.qm.DeadLetters(f.ctx, 10)
		require.NoError(t, err)
		return len(dl) > 0
	}, time.Minute, 200*time.Millisecond, "the message reaches the dead-letter queue")

	s := f.scheduler(f.qm)
	s.DeadLetters = &deadletter.Drainer{Queue: f.qm, Tasks: f.st}
	now := base.Add(time.Minute)
	f.clock.Set(now)
	sum, err := s.Tick(f.ctx, now)
	require.NoError(t, err)
	assert.Equal(t, 1, sum.DeadLettered)
	assert.Equal(t, 1, sum.Failed)

	task := f.task(tasks[0].ID)
	assert.Equal(t, domain.TaskFailed, task.Status)
	assert.Contains(t, task.Error, "dead-lettered")
	var failed []string
	for _, ev := range f.events.take() {
		if ev.Type == events.TypeTaskFailed {
			failed = append(failed, ev.Data.(events.TaskFailedData).TaskID)
		}
	}
	assert.Equal(t, []string{task.ID}, failed)
	dl, err := f.qm.DeadLetters(f.ctx, 10)
	require.NoError(t, err)
	assert.Empty(t, dl, "the dead letter is gone once its task is failed")
}
