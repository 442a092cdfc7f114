package daemon

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/client"
	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
)

// pollRetry shapes the wait after a failed receive: the queue or its credentials are away.
var pollRetry = schedule.RetryPolicy{Base: time.Second, Factor: 2, Cap: time.Minute}

// poll long-polls the queue until ctx ends, asking for no more messages than there are free
// slots, and hands each message to its own handler.
func (d *Daemon) poll(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		if until, _, backingOff := d.backoff.Until(d.now()); backingOff {
			d.setState(stateBackoff)
			d.Metrics.SetBackoff(until, true)
			sleep(ctx, until.Sub(d.now()))
			d.Metrics.SetBackoff(time.Time{}, false)
			d.setState(d.activeState())
			d.heartbeatSoon()
			continue
		}
		n := d.slots.acquire(queue.MaxReceiveMessages)
		if n == 0 {
			d.slots.wait(ctx)
			continue
		}
		msgs, err := d.Queue.Receive(ctx, int32(n), d.Config.Queue.Wait.D())
		if err != nil {
			d.slots.release(n)
			if ctx.Err() != nil {
				return
			}
			failures++
			d.Metrics.PollError()
			d.setLastError("receive from the task queue: " + err.Error())
			wait := schedule.RetryDelay(failures, pollRetry, d.rand)
			d.Log.Warn("receive failed", "error", err.Error(), "retry_in", wait.String())
			sleep(ctx, wait)
			continue
		}
		failures = 0
		d.slots.release(n - len(msgs))
		for _, msg := range msgs {
			d.tasks.Add(1)
			go func() {
				defer d.tasks.Done()
				defer d.slots.release(1)
				d.handle(msg)
			}()
		}
	}
}

// deliveryID names one delivery of a message for the API's start.
func deliveryID(msg queue.Message) string {
	return msg.ID + "/" + strconv.Itoa(msg.ReceiveCount)
}

// rejectDelay is how long a rejected message stays hidden before it is received again: a few
// seconds, growing by one with each receive, so that it reaches the dead-letter queue after its
// few receives, and a queue without one is not read in a tight loop.
func rejectDelay(receiveCount int) time.Duration {
	return min(time.Duration(max(receiveCount, 1))*time.Second, 5*time.Minute)
}

// maxRemembered bounds the set of rejected messages remembered so each is reported once.
const maxRemembered = 1000

// reject handles a message that can never run here: not JSON, an unknown type or version, a
// missing field, or addressed to another tenant or agent. The agent reports it against its task
// when the task is (probably) its own, and leaves the message to be received again until SQS
// moves it to the dead-letter queue. It is never deleted, so nothing is lost.
func (d *Daemon) reject(msg queue.Message, err error, foreign bool) {
	d.Metrics.Rejected()
	var rej *events.RejectError
	taskID := ""
	if errors.As(err, &rej) {
		taskID = rej.ID
	}
	log := d.Log.With("message_id", msg.ID, "receive_count", msg.ReceiveCount)
	if taskID != "" {
		log = log.With("task_id", taskID)
	}
	log.Warn("rejected a task message; it is left for the dead-letter queue", "reason", err.Error())

	d.mu.Lock()
	first := !d.rejected[msg.ID]
	if first {
		if len(d.rejected) >= maxRemembered {
			clear(d.rejected)
		}
		d.rejected[msg.ID] = true
	}
	d.mu.Unlock()
	// A foreign message's task belongs to another agent: reporting against it would be refused
	// (not found) and says nothing to anyone.
	if first && taskID != "" && !foreign {
		d.reportRejection(msg, taskID, err, log)
	}
	if err := d.Queue.ExtendVisibility(d.reports, msg.ReceiptHandle, rejectDelay(msg.ReceiveCount)); err != nil && !errors.Is(err, queue.ErrNotInFlight) {
		log.Warn("could not delay the rejected message", "error", err.Error())
	}
}

// reportRejection records the rejection as the failed result of the task, so operators see why
// it never ran.
func (d *Daemon) reportRejection(msg queue.Message, taskID string, reason error, log *slog.Logger) {
	st, err := d.API.Start(d.reports, taskID, client.StartRequest{AgentSession: d.session, DeliveryID: deliveryID(msg)})
	if err != nil {
		if !errors.Is(err, client.ErrConflict) && !errors.Is(err, client.ErrNotFound) {
			d.Metrics.APIError("start")
		}
		return
	}
	_, err = d.API.Result(d.reports, taskID, client.Result{
		RunID: st.RunID, Outcome: client.OutcomeFailed,
		Error: truncate("the agent cannot run this task message: "+reason.Error(), maxErrorChars),
	})
	if err != nil {
		d.Metrics.APIError("result")
		log.Warn("could not report the rejection", "error", err.Error())
	}
}

// decode reads and checks a message body: a valid task message addressed to this agent.
func (d *Daemon) decode(msg queue.Message) (m events.TaskMessage, foreign bool, err error) {
	m, err = events.DecodeTask([]byte(msg.Body))
	if err != nil {
		return m, false, err
	}
	if err := events.Verify(m, d.Credentials.TenantID, d.Credentials.AgentID); err != nil {
		return m, true, err
	}
	return m, false, nil
}
