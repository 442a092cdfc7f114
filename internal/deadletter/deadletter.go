// Package deadletter turns the deployment's dead letters into failed tasks. Every agent queue
// hands a message it has delivered resources.MaxReceiveCount times to the deployment's one
// dead-letter queue; Drainer.Drain, run from every scheduler tick, reads that queue, fails each
// message's task with the reason and deletes the message once that is stored. Reading one queue
// costs one request a tick when it is empty, however many agents there are.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// Queue is the deployment's dead-letter queue. *queue.Manager is one.
type Queue interface {
	ReceiveDeadLetters(ctx context.Context, maxMessages int32, wait time.Duration) ([]queue.Message, error)
	DeleteDeadLetter(ctx context.Context, receiptHandle string) error
}

// Tasks reads tasks and moves them between states. *store.Store is one.
type Tasks interface {
	GetTask(ctx context.Context, tenantID, taskID string) (domain.Task, error)
	TransitionTaskWith(ctx context.Context, tenantID, taskID string, to domain.TaskStatus, change func(*domain.Task), announce func(domain.Task) []events.Event) (domain.Task, []events.Event, error)
}

// DefaultMaxBatches is how many receives of up to 10 dead letters one Drain makes unless the
// Drainer says otherwise: 100 dead letters a tick is far more than a healthy fleet produces,
// and what is left waits for the next tick.
const DefaultMaxBatches = 10

// receiveWait is how long each receive waits for a first message. A long poll, however short,
// asks every SQS server; a short poll samples some and may miss the few messages there are.
const receiveWait = time.Second

// previewBytes is how much of a body that is not a task message is logged.
const previewBytes = 100

// maxReasonBytes bounds the reason copied into the failed task, which also goes into its list
// of attempts; the full text stays where the agent reported it.
const maxReasonBytes = 1024

// neverCompleted is the reason given when the task carries none the agent reported.
const neverCompleted = "the agent never completed it"

// Drainer drains the dead-letter queue into the task store.
type Drainer struct {
	Queue Queue
	Tasks Tasks
	Log   *slog.Logger
	// MaxBatches bounds the receives of one Drain; 0 means DefaultMaxBatches.
	MaxBatches int
}

// Summary counts what one Drain did with the dead letters it received.
type Summary struct {
	// Received counts the dead letters received; each is counted in one of the others.
	Received int `json:"received"`
	// Failed counts tasks moved to failed.
	Failed int `json:"failed"`
	// AlreadyFinal counts dead letters of tasks that had ended already; they are deleted and
	// the tasks left as they were.
	AlreadyFinal int `json:"alreadyFinal"`
	// Gone counts dead letters of tasks that no longer exist; they are deleted.
	Gone int `json:"gone"`
	// Dropped counts dead letters that are not task messages, or name another agent's task;
	// they can never succeed and are deleted.
	Dropped int `json:"dropped"`
	// Errors counts dead letters left in the queue because reading or writing the task or
	// deleting the message failed; they come back after the queue's visibility timeout.
	Errors int `json:"errors"`
	// FailedTasks are the tasks moved to failed, as stored, for announcing them.
	FailedTasks []domain.Task `json:"-"`
	// Events are the task.failed events recorded with them.
	Events []events.Event `json:"-"`
}

// Drain receives up to MaxBatches batches of dead letters, stopping early when the queue has
// none left, and deals with each: a task message fails its task (unless the task has ended
// already) with the reason, and anything else is dropped. A message is deleted only after its
// task's new state is stored, so a failure leaves it for the next Drain. now is when the tasks
// finish.
//
// Drain returns an error only when it could not receive from the queue (or ctx ended); failures
// of single dead letters are logged and counted in Errors.
func (d *Drainer) Drain(ctx context.Context, now time.Time) (Summary, error) {
	var sum Summary
	batches := d.MaxBatches
	if batches <= 0 {
		batches = DefaultMaxBatches
	}
	for range batches {
		if err := ctx.Err(); err != nil {
			return sum, fmt.Errorf("drain dead letters: %w", err)
		}
		msgs, err := d.Queue.ReceiveDeadLetters(ctx, queue.MaxReceiveMessages, receiveWait)
		if err != nil {
			return sum, fmt.Errorf("drain dead letters: %w", err)
		}
		if len(msgs) == 0 {
			return sum, nil
		}
		for _, msg := range msgs {
			sum.Received++
			d.handle(ctx, now.UTC(), msg, &sum)
		}
	}
	return sum, nil
}

// handle deals with one dead letter and counts the outcome in sum.
func (d *Drainer) handle(ctx context.Context, now time.Time, msg queue.Message, sum *Summary) {
	log := d.log().With("message_id", msg.ID)
	m, err := events.DecodeTask([]byte(msg.Body))
	if err != nil {
		log.WarnContext(ctx, "dropping a dead letter that is not a task message",
			"reason", err.Error(), "body_start", shorten(msg.Body, previewBytes), "body_bytes", len(msg.Body))
		d.delete(ctx, log, msg, &sum.Dropped, &sum.Errors)
		return
	}
	log = log.With("tenant_id", m.TenantID, "agent_id", m.AgentID, "task_id", m.TaskID)

	task, err := d.Tasks.GetTask(ctx, m.TenantID, m.TaskID)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		log.InfoContext(ctx, "deleting the dead letter of a task that no longer exists")
		d.delete(ctx, log, msg, &sum.Gone, &sum.Errors)
		return
	case err != nil:
		log.ErrorContext(ctx, "could not read the task of a dead letter; it is kept for the next drain", "error", err.Error())
		sum.Errors++
		return
	case task.AgentID != m.AgentID:
		// Only the control plane sends task messages, and always to the task's own agent.
		log.WarnContext(ctx, "dropping a dead letter that names another agent's task", "task_agent_id", task.AgentID)
		d.delete(ctx, log, msg, &sum.Dropped, &sum.Errors)
		return
	case task.Status.Final():
		log.InfoContext(ctx, "deleting the dead letter of a task that has ended", "status", string(task.Status))
		d.delete(ctx, log, msg, &sum.AlreadyFinal, &sum.Errors)
		return
	}

	why := fmt.Sprintf("dead-lettered after %d deliveries: %s", resources.MaxReceiveCount, shorten(lastReason(task), maxReasonBytes))
	failed, evs, err := d.Tasks.TransitionTaskWith(ctx, m.TenantID, m.TaskID, domain.TaskFailed, func(t *domain.Task) {
		t.FinishedAt, t.NextRetryAt, t.Error = &now, nil, why
		finishRunningAttempt(t, now, why)
	}, func(failed domain.Task) []events.Event { return []events.Event{events.NewTaskFailed(now, failed)} })
	var te *domain.TransitionError
	switch {
	case errors.As(err, &te):
		log.InfoContext(ctx, "deleting the dead letter of a task that ended meanwhile", "status", string(te.Current))
		d.delete(ctx, log, msg, &sum.AlreadyFinal, &sum.Errors)
		return
	case errors.Is(err, domain.ErrNotFound):
		log.InfoContext(ctx, "deleting the dead letter of a task that was deleted meanwhile")
		d.delete(ctx, log, msg, &sum.Gone, &sum.Errors)
		return
	case err != nil:
		log.ErrorContext(ctx, "could not fail the task of a dead letter; it is kept for the next drain", "error", err.Error())
		sum.Errors++
		return
	}
	log.WarnContext(ctx, "task failed: its message was dead-lettered", "status_was", string(task.Status), "reason", why)
	sum.FailedTasks = append(sum.FailedTasks, failed)
	sum.Events = append(sum.Events, evs...)
	d.delete(ctx, log, msg, &sum.Failed, &sum.Errors)
}

// delete removes a dealt-with dead letter and counts it in done, or in failed when SQS refused:
// the message then comes back, and the next drain finds its task ended.
func (d *Drainer) delete(ctx context.Context, log *slog.Logger, msg queue.Message, done, failed *int) {
	if err := d.Queue.DeleteDeadLetter(ctx, msg.ReceiptHandle); err != nil {
		log.ErrorContext(ctx, "could not delete a dead letter; it comes back to the next drain", "error", err.Error())
		*failed++
		return
	}
	*done++
}

func (d *Drainer) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// lastReason is the latest error the task records: the task's own, else that of its latest
// attempt that has one (a run interrupted by the agent's restart, say).
func lastReason(t domain.Task) string {
	if t.Error != "" {
		return t.Error
	}
	for i := len(t.Attempts) - 1; i >= 0; i-- {
		if t.Attempts[i].Error != "" {
			return t.Attempts[i].Error
		}
	}
	return neverCompleted
}

// finishRunningAttempt records the task's current attempt, if one is running, as failed for
// why, so the task's history does not show it running forever.
func finishRunningAttempt(t *domain.Task, now time.Time, why string) {
	for i := range t.Attempts {
		a := &t.Attempts[i]
		if a.Status == domain.TaskRunning && (t.RunID == "" || a.RunID == t.RunID) {
			a.Status, a.FinishedAt, a.Error = domain.TaskFailed, &now, why
		}
	}
}

// shorten cuts s to at most maxBytes bytes on a character boundary, marking the cut, and
// replaces invalid UTF-8 so that a log line or a stored error stays valid text.
func shorten(s string, maxBytes int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxBytes {
		return s
	}
	const mark = "…"
	cut := maxBytes - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
