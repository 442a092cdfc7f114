package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/backoff"
	"github.com/restic-monitor/restic-monitor/agent/internal/client"
	"github.com/restic-monitor/restic-monitor/agent/internal/runner"
	"github.com/restic-monitor/restic-monitor/agent/internal/spool"
	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/restic"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
)

// Why a running task was stopped before restic finished.
var (
	errShutdown       = errors.New("the agent is shutting down")
	errOperatorCancel = errors.New("an operator cancelled the task")
	errSuperseded     = errors.New("the task was started again elsewhere")
)

// task is one task message being worked on.
type task struct {
	msg       events.TaskMessage
	log       *slog.Logger
	startedAt time.Time

	// messageID is the SQS message the task runs from; receipt is its newest receipt handle.
	messageID string

	mu       sync.Mutex
	receipt  string
	runID    string
	progress *domain.Progress
	cancel   context.CancelCauseFunc
	// progressSeen is set when progress changed since it was last sent.
	progressSeen bool
}

func (t *task) setReceipt(r string) {
	t.mu.Lock()
	t.receipt = r
	t.mu.Unlock()
}

func (t *task) receiptHandle() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.receipt
}

func (t *task) setProgress(p domain.Progress) {
	t.mu.Lock()
	t.progress, t.progressSeen = &p, true
	t.mu.Unlock()
}

// takeProgress returns the progress when it changed since the last call.
func (t *task) takeProgress() (domain.Progress, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.progressSeen || t.progress == nil {
		return domain.Progress{}, false
	}
	t.progressSeen = false
	return *t.progress, true
}

func (t *task) stop(cause error) {
	t.mu.Lock()
	cancel := t.cancel
	t.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}

// claim registers a task as being worked on, or returns the task already registered under
// its ID: the same message delivered again while it runs.
func (d *Daemon) claim(t *task) (*task, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.running[t.msg.TaskID]; ok {
		return cur, false
	}
	d.running[t.msg.TaskID] = t
	d.Metrics.SetRunning(len(d.running))
	return t, true
}

func (d *Daemon) unclaim(t *task) {
	d.mu.Lock()
	delete(d.running, t.msg.TaskID)
	d.Metrics.SetRunning(len(d.running))
	d.mu.Unlock()
	d.markDirty()
}

// handle works on one received message from decoding to deleting it.
func (d *Daemon) handle(msg queue.Message) {
	m, foreign, err := d.decode(msg)
	if err != nil {
		d.reject(msg, err, foreign)
		return
	}
	t := &task{msg: m, messageID: msg.ID, receipt: msg.ReceiptHandle, startedAt: d.now(),
		log: d.Log.With("task_id", m.TaskID, "task_type", string(m.TaskType), "message_id", msg.ID)}
	cur, ok := d.claim(t)
	switch {
	case !ok && cur.messageID == msg.ID:
		// The message came back while this process works on it (its visibility lapsed): only
		// the newest receipt handle can extend or delete it.
		cur.setReceipt(msg.ReceiptHandle)
		cur.log.Info("task message delivered again while it runs; keeping the newest delivery")
		return
	case !ok:
		// Another message for the task: SQS may hold a message twice, and a task may be sent
		// again. The task runs from its own message, which stays until the task is done, so the
		// copy goes; kept, it would never be extended or deleted, and would come back.
		t.log.Info("another message for a task this process runs; deleting it", "running_message_id", cur.messageID)
		d.deleteMessage(t)
		return
	}
	defer d.unclaim(t)

	now := d.now()
	switch {
	case now.After(m.Deadline):
		t.log.Warn("the task's deadline passed before it started; dropping its message", "deadline", m.Deadline)
		d.Metrics.TaskFinished(string(m.TaskType), "expired", m.PolicyID, 0, 0, now)
		d.deleteMessage(t)
		return
	case now.Before(m.NotBefore):
		wait := min(m.NotBefore.Sub(now), queue.MaxVisibility)
		t.log.Info("task is not due yet; hiding its message until then", "not_before", m.NotBefore)
		d.setVisibility(t, wait)
		return
	}
	if item, ok := d.Spool.Find(spool.ResultKey(m.TaskID)); ok {
		// An earlier process finished the task but could not deliver the result.
		t.log.Info("delivering the result an earlier run left in the spool")
		stop := d.keepInvisible(t)
		defer stop()
		var res client.Result
		if err := item.Decode(&res); err != nil {
			t.log.Error("spooled result is unreadable; dropping it", "error", err.Error())
			_ = d.Spool.Remove(item.Key)
			return
		}
		t.runID = res.RunID
		d.deliverResult(t, item.Key, res)
		return
	}
	if d.pollCtx.Err() != nil {
		d.setVisibility(t, 0)
		return
	}
	st, err := d.API.Start(d.reports, m.TaskID, client.StartRequest{AgentSession: d.session, DeliveryID: deliveryID(msg)})
	switch code := client.RefusalCode(err); {
	case code == client.CodeTaskFinished || code == client.CodeTaskNotStartable:
		t.log.Info("the control plane says the task is not to run; deleting its message", "reason", err.Error())
		d.deleteMessage(t)
		return
	case code == client.CodeTaskRunning:
		t.log.Info("the task already runs in this agent from another delivery")
		return
	case errors.Is(err, client.ErrNotFound):
		t.log.Warn("the control plane does not know the task; leaving its message for the dead-letter queue")
		d.setVisibility(t, rejectDelay(msg.ReceiveCount))
		return
	case errors.Is(err, client.ErrUnauthorized):
		d.setVisibility(t, 0)
		d.fatal(ErrCredentialsRejected)
		return
	case err != nil:
		d.Metrics.APIError("start")
		d.setLastError("start task: " + err.Error())
		wait := schedule.RetryDelay(max(msg.ReceiveCount, 1), pollRetry, d.rand)
		t.log.Warn("could not start the task; its message comes back later", "error", err.Error(), "retry_in", wait.String())
		d.setVisibility(t, wait)
		return
	}
	t.mu.Lock()
	t.runID = st.RunID
	t.mu.Unlock()
	t.log = t.log.With("run_id", st.RunID, "attempt", st.Attempt)
	if st.InterruptedRunID != "" {
		t.log.Info("task started again after an interrupted run", "interrupted_run_id", st.InterruptedRunID)
	} else {
		t.log.Info("task started")
	}
	d.setState(stateRunning)
	stop := d.keepInvisible(t)
	defer stop()
	res, cause := d.execute(t)
	d.finish(t, res, cause)
}

// execute runs the task, trying a transient failure again after a jittered, growing delay
// within the configured number of retries. cause says why it was stopped early, if it was.
func (d *Daemon) execute(t *task) (runner.Result, error) {
	ctx, cancel := context.WithCancelCause(d.taskCtx)
	defer cancel(nil)
	t.mu.Lock()
	t.cancel = cancel
	t.mu.Unlock()

	logs := d.newLogStream(t)
	defer logs.close()
	progressDone := d.reportProgress(ctx, t)
	defer progressDone()
	hooks := runner.Hooks{
		Progress:      t.setProgress,
		Line:          func(l restic.Line) { logs.add(l.Text) },
		ResticStarted: func(string) { d.Metrics.ResticStarted() },
		UploadListing: func(ctx context.Context, b runner.ListingBatch) (bool, error) {
			reply, err := d.API.UploadListing(ctx, t.msg.TaskID, client.ListingUpload{
				RunID: t.runID, SnapshotID: b.SnapshotID, Path: b.Path, Seq: b.Seq, Chunks: b.Chunks, Done: b.Done,
			})
			if err != nil {
				d.Metrics.APIError("listing")
			}
			return reply.Truncated, err
		},
	}
	policy := backoff.Policy{Base: d.Config.Retry.Base.D(), Factor: 2, Cap: d.Config.Retry.Cap.D()}
	for tries := 1; ; tries++ {
		res := d.Runner.Run(ctx, t.msg, d.limits(), hooks)
		for _, line := range res.Details {
			logs.add("restic-monitor: " + line)
		}
		if ctx.Err() != nil {
			return cancelled(res, context.Cause(ctx)), context.Cause(ctx)
		}
		if res.Status != domain.TaskFailed || !res.Transient {
			return res, nil
		}
		retry, wait := backoff.Retry(tries, d.Config.Retry.MaxRetries, policy, d.rand)
		if !retry {
			return res, nil
		}
		if runner.Locked(res) {
			logs.add("restic-monitor: the repository is locked; removing stale locks (locks of running restic processes stay)")
			if err := d.Runner.Unlock(ctx, t.msg, hooks); err != nil {
				logs.add("restic-monitor: could not remove stale locks: " + err.Error())
			}
		}
		logs.add(fmt.Sprintf("restic-monitor: try %d failed (%s); trying again in %s", tries, firstLine(res.Error), wait.Round(time.Second)))
		t.log.Warn("task failed in a way that may pass; trying again", "try", tries, "retry_in", wait.String(), "error", firstLine(res.Error))
		if !sleep(ctx, wait) {
			return cancelled(res, context.Cause(ctx)), context.Cause(ctx)
		}
	}
}

// cancelled turns the result of a run stopped on purpose into a cancelled one. A backup that
// was interrupted but had already saved its snapshot keeps it.
func cancelled(res runner.Result, cause error) runner.Result {
	if res.Status == domain.TaskSucceeded || res.Status == domain.TaskPartial {
		return res
	}
	res.Status, res.Transient = domain.TaskCancelled, false
	msg := "cancelled: " + cause.Error()
	if res.Error != "" {
		msg += "\n" + res.Error
	}
	res.Error = msg
	return res
}

// finish reports the result and disposes of the message: deleted once the result is stored,
// handed back to the queue when the control plane wants the task run again.
func (d *Daemon) finish(t *task, res runner.Result, cause error) {
	dur := d.now().Sub(t.startedAt)
	if errors.Is(cause, errSuperseded) {
		t.log.Warn("the task was started again by another agent process; dropping this run's result")
		return
	}
	if t.msg.TaskType == domain.TaskSnapshots && res.Status == domain.TaskSucceeded {
		if err := d.reportSnapshots(t, res); err != nil {
			res.Status, res.Transient = domain.TaskFailed, true
			res.Error = "the inventory could not be delivered: " + err.Error()
		}
	}
	out := resultBody(t.runID, res)
	key := spool.ResultKey(t.msg.TaskID)
	// The result is written to disk before it is sent: from here on a crash, a reboot or an
	// unreachable API loses nothing.
	payload, err := json.Marshal(out)
	if err == nil {
		err = d.Spool.Put(spool.Item{Key: key, Kind: spool.KindResult, TaskID: t.msg.TaskID, RunID: t.runID, Payload: payload})
	}
	if err != nil {
		t.log.Error("could not spool the result; sending it directly", "error", err.Error())
	}
	d.recordOutcome(t, res, dur)
	d.deliverResult(t, key, out)
}

// recordOutcome updates metrics, the agent's backoff and its last error.
func (d *Daemon) recordOutcome(t *task, res runner.Result, dur time.Duration) {
	var added uint64
	if res.Summary != nil {
		added = res.Summary.DataAdded
	}
	d.Metrics.TaskFinished(string(t.msg.TaskType), string(res.Status), t.msg.PolicyID, dur, added, d.now())
	log := t.log.With("status", string(res.Status), "duration", dur.Round(time.Millisecond).String())
	switch res.Status {
	case domain.TaskSucceeded, domain.TaskPartial:
		d.backoff.Success()
		d.setLastError("")
		log.Info("task finished")
	case domain.TaskFailed:
		d.setLastError(firstLine(res.Error))
		d.heartbeatSoon()
		log.Warn("task failed", "error", firstLine(res.Error), "transient", res.Transient)
		if res.Transient && d.backoff.Failure(d.now(), "tasks keep failing: "+firstLine(res.Error)) {
			until, _, _ := d.backoff.Until(d.now())
			d.Log.Warn("backing off: no new tasks for a while", "until", until)
			d.Metrics.SetBackoff(until, true)
			d.heartbeatSoon()
		}
	default:
		log.Info("task cancelled")
	}
}

// resultBody is the API's form of a result.
func resultBody(runID string, res runner.Result) client.Result {
	out := client.Result{
		RunID: runID, ExitCode: res.ExitCode, Summary: res.Summary, Retryable: res.Transient, RestoreTarget: res.RestoreTarget,
		Error: truncate(res.Error, maxErrorChars), Stats: res.Stats, Locks: res.Locks,
	}
	switch res.Status {
	case domain.TaskSucceeded:
		out.Outcome = client.OutcomeSucceeded
	case domain.TaskPartial:
		out.Outcome = client.OutcomePartial
		out.UnreadablePaths = res.Unreadable
		if len(out.UnreadablePaths) > maxUnreadable {
			out.UnreadablePaths = out.UnreadablePaths[:maxUnreadable]
		}
	case domain.TaskCancelled:
		out.Outcome = client.OutcomeCancelled
	default:
		out.Outcome = client.OutcomeFailed
	}
	if out.ExitCode != nil && (*out.ExitCode < -1 || *out.ExitCode > 255) {
		out.ExitCode = nil
	}
	return out
}

// API limits of a result.
const (
	maxErrorChars = 8192
	maxUnreadable = 1000
)

// resultRetry shapes the wait between tries to deliver a result.
var resultRetry = schedule.RetryPolicy{Base: 2 * time.Second, Factor: 2, Cap: time.Minute}

// deliverResult sends a spooled result until the API takes it, then removes it from the spool
// and disposes of the message as the recorded task says. It gives up only when the agent stops:
// the result stays spooled and is delivered by the next process.
func (d *Daemon) deliverResult(t *task, key string, res client.Result) {
	for n := 1; ; n++ {
		// The run's log goes first, so that a run recorded as finished has its whole log.
		err := d.flushRunLog(d.reports, res.RunID)
		var reply client.ResultReply
		if err == nil {
			reply, err = d.API.Result(d.reports, t.msg.TaskID, res)
		}
		code := client.RefusalCode(err)
		switch {
		case err == nil:
			_ = d.Spool.Remove(key)
			if reply.TaskStatus == domain.TaskQueued {
				// The control plane wants the task run again (this agent is shutting down):
				// the message goes back to the queue at once.
				t.log.Info("result stored; handing the message back to the queue", "task_status", string(reply.TaskStatus))
				d.setVisibility(t, 0)
			} else {
				t.log.Info("result stored", "task_status", string(reply.TaskStatus))
				d.deleteMessage(t)
			}
			return
		case code == client.CodeRunSuperseded:
			t.log.Warn("the run was superseded by a newer start; dropping its result")
			_ = d.Spool.Remove(key)
			return
		case code == client.CodeResultConflict || errors.Is(err, client.ErrNotFound):
			t.log.Warn("the control plane cannot take this result; dropping it and the message", "error", err.Error())
			_ = d.Spool.Remove(key)
			d.deleteMessage(t)
			return
		case errors.Is(err, client.ErrUnauthorized):
			d.fatal(ErrCredentialsRejected)
			return
		case client.Permanent(err):
			t.log.Error("the control plane refused the result; leaving the message for the dead-letter queue", "error", err.Error())
			_ = d.Spool.Remove(key)
			return
		}
		d.Metrics.APIError("result")
		d.setLastError("deliver result: " + err.Error())
		wait := schedule.RetryDelay(n, resultRetry, d.rand)
		t.log.Warn("result not delivered yet; it is spooled and sent again", "error", err.Error(), "retry_in", wait.String())
		if !sleep(d.reports, wait) {
			return
		}
	}
}

// keepInvisible extends the message's visibility now and then every third of the visibility
// timeout until stop is called, so the message is not delivered again while it is worked on.
func (d *Daemon) keepInvisible(t *task) (stop func()) {
	vis := d.Config.Queue.VisibilityTimeout.D()
	ctx, cancel := context.WithCancel(d.reports)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			err := d.Queue.ExtendVisibility(ctx, t.receiptHandle(), vis)
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, queue.ErrNotInFlight):
				t.log.Warn("the message is no longer in flight; it may be delivered again")
			case err != nil:
				d.Metrics.PollError()
				t.log.Warn("could not extend the message's visibility", "error", err.Error())
			}
			if !sleep(ctx, vis/3) {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func (d *Daemon) setVisibility(t *task, v time.Duration) {
	if err := d.Queue.ExtendVisibility(d.reports, t.receiptHandle(), v); err != nil && !errors.Is(err, queue.ErrNotInFlight) {
		t.log.Warn("could not change the message's visibility", "error", err.Error())
	}
}

func (d *Daemon) deleteMessage(t *task) {
	err := d.Queue.Delete(d.reports, t.receiptHandle())
	switch {
	case errors.Is(err, queue.ErrNotInFlight):
		// It comes back; the control plane then says the task is finished and it is deleted.
		t.log.Warn("the message was no longer in flight when deleted; it will be dropped when it comes back")
	case err != nil:
		t.log.Warn("could not delete the message; it will be dropped when it comes back", "error", err.Error())
	}
}

// reportProgress sends the task's progress to the API every ProgressInterval while it changes,
// and stops the task when the control plane asks (an operator cancelled it) or when another
// process took the task over.
func (d *Daemon) reportProgress(ctx context.Context, t *task) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sleep(ctx, d.ProgressInterval) {
			d.markDirty()
			p, changed := t.takeProgress()
			if !changed {
				continue
			}
			reply, err := d.API.Progress(ctx, t.msg.TaskID, client.ProgressReport{RunID: t.runID, Progress: clampProgress(p)})
			switch code := client.RefusalCode(err); {
			case err == nil && reply.CancelRequested:
				t.log.Info("an operator cancelled the task; interrupting restic")
				t.stop(errOperatorCancel)
				return
			case code == client.CodeRunSuperseded:
				t.stop(errSuperseded)
				return
			case err != nil && ctx.Err() == nil && !client.Permanent(err):
				d.Metrics.APIError("progress")
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// clampProgress keeps a progress report within what the API accepts.
func clampProgress(p domain.Progress) domain.Progress {
	p.PercentDone = min(max(p.PercentDone, 0), 1)
	if len(p.CurrentFiles) > 20 {
		p.CurrentFiles = p.CurrentFiles[:20]
	}
	files := p.CurrentFiles[:0:0]
	for _, f := range p.CurrentFiles {
		if f != "" && len(f) <= 4096 {
			files = append(files, f)
		}
	}
	p.CurrentFiles = files
	return p
}

// reportSnapshots sends a snapshots task's inventory.
func (d *Daemon) reportSnapshots(t *task, res runner.Result) error {
	rep := client.SnapshotReport{Repository: t.msg.Repository, Snapshots: []client.SnapshotInfo{}}
	for _, s := range res.Snapshots {
		rep.Snapshots = append(rep.Snapshots, client.SnapshotInfo{
			ID: s.ID, ShortID: s.ShortID, Time: s.Time, Hostname: s.Hostname, Paths: s.Paths, Tags: s.Tags,
			PolicyID: s.PolicyID, SizeBytes: s.SizeBytes,
		})
	}
	if len(rep.Snapshots) > 2000 {
		// The newest snapshots matter most; restic lists them oldest first.
		rep.Snapshots = rep.Snapshots[len(rep.Snapshots)-2000:]
	}
	err := d.API.ReportSnapshots(d.reports, rep)
	if err != nil {
		d.Metrics.APIError("snapshots")
	}
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// truncate cuts s to at most n characters, on a character boundary.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (d *Daemon) activeState() string {
	if d.slots.used() > 0 {
		return stateRunning
	}
	return stateIdle
}
