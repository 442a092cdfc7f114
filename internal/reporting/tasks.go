package reporting

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// StartRequest names one start of a task: which agent process asks, and from which delivery of
// the task's queue message. Together they tell the three reasons a start can come again apart:
//   - the same process repeats the same start (its first answer was lost): same session, same
//     delivery — the run it started is returned again;
//   - the same process got a second message for the task it runs (the scheduler may send a
//     task twice): same session, other delivery — refused with CodeTaskRunning;
//   - a new process got the message again after the old one died mid-run: other session — the
//     old run is recorded as interrupted and a new run starts, as a new attempt.
type StartRequest struct {
	// AgentSession is a random ID the agent picks each time its process starts.
	AgentSession string `json:"agentSession"`
	// DeliveryID identifies this delivery of the message, such as "<SQS message ID>/<receive
	// count>".
	DeliveryID string `json:"deliveryId"`
}

// Token limits of a start.
const (
	maxSessionLength  = 64
	maxDeliveryLength = 256
)

func (r StartRequest) validate() error {
	var p problems
	p.checkToken("agentSession", r.AgentSession, maxSessionLength)
	p.checkToken("deliveryId", r.DeliveryID, maxDeliveryLength)
	return p.err()
}

// Started is a task as it started.
type Started struct {
	Task domain.Task
	Run  domain.Run
	// Repeated is true when the start had been recorded before (same session and delivery).
	Repeated bool
	// Interrupted is the run this start replaced, when the task's previous run was cut short.
	Interrupted string
}

// MaxAttemptsListed is how many of a task's most recent attempts it lists.
const MaxAttemptsListed = 50

func notFound(what, id string) error { return fmt.Errorf("%s %s: %w", what, id, domain.ErrNotFound) }

// Start records that the caller starts a task: the task runs, under a new run. Another agent's
// task is domain.ErrNotFound; a task that must not run (finished, waiting for a retry, past its
// deadline, already running in the same process) is a *Refusal.
func (s *Service) Start(ctx context.Context, c Caller, taskID string, req StartRequest) (Started, error) {
	if err := req.validate(); err != nil {
		return Started{}, err
	}
	var out Started
	ch, err := s.Store.UpdateTaskRun(ctx, c.TenantID, taskID, "", func(t domain.Task, run *domain.Run) (store.TaskRunChange, error) {
		now := s.now()
		ch, st, err := decideStart(now, c, req, t, run, domain.NewID(now))
		if ch.NewRun != nil && ch.Task != nil {
			// The scheduler first looks for the new run in the agent's heartbeats when they must
			// have listed it.
			at := now.Add(domain.ListingGrace(s.Settings.heartbeatSeconds()))
			ch.Task.CheckRunningAt = &at
		}
		out = st
		return ch, err
	})
	if err != nil {
		return Started{}, err
	}
	if ch.Task != nil {
		out.Task = *ch.Task
	}
	if ch.NewRun != nil {
		out.Run = *ch.NewRun
		s.log().InfoContext(ctx, "task started", "tenant_id", c.TenantID, "agent_id", c.AgentID, "task_id", taskID,
			"run_id", out.Run.ID, "attempt", out.Run.Attempt, "interrupted_run_id", out.Interrupted)
	}
	return out, nil
}

// decideStart decides what a start does to a task and its current run. runID is the ID a new run
// gets.
func decideStart(now time.Time, c Caller, req StartRequest, t domain.Task, run *domain.Run, runID string) (store.TaskRunChange, Started, error) {
	if t.AgentID != c.AgentID {
		return store.TaskRunChange{}, Started{}, notFound("task", t.ID)
	}
	switch t.Status {
	case domain.TaskPending, domain.TaskQueued:
		if now.After(t.Deadline) {
			return store.TaskRunChange{}, Started{}, refuse(CodeTaskNotStartable, "task %s had to start by %s", t.ID, t.Deadline.UTC().Format(time.RFC3339))
		}
		ch, st := startRun(now, req, t, nil, runID)
		return ch, st, nil
	case domain.TaskRunning:
		if run != nil && run.Status == domain.TaskRunning && run.AgentSession == req.AgentSession {
			if run.DeliveryID == req.DeliveryID {
				return store.TaskRunChange{}, Started{Task: t, Run: *run, Repeated: true}, nil
			}
			return store.TaskRunChange{}, Started{}, refuse(CodeTaskRunning,
				"this agent process already runs task %s (run %s), started from another delivery of its message", t.ID, run.ID)
		}
		ch, st := startRun(now, req, t, run, runID)
		return ch, st, nil
	case domain.TaskRetrying:
		at := "its next try"
		if t.NextRetryAt != nil {
			at = t.NextRetryAt.UTC().Format(time.RFC3339)
		}
		return store.TaskRunChange{}, Started{}, refuse(CodeTaskNotStartable, "task %s waits until %s; a new message comes then", t.ID, at)
	}
	if t.Status.Final() {
		return store.TaskRunChange{}, Started{}, refuse(CodeTaskFinished, "task %s is %s", t.ID, t.Status)
	}
	return store.TaskRunChange{}, Started{}, refuse(CodeTaskNotStartable, "task %s is %s", t.ID, t.Status)
}

// startRun starts a new run of t, recording prev as interrupted when it was still running.
func startRun(now time.Time, req StartRequest, t domain.Task, prev *domain.Run, runID string) (store.TaskRunChange, Started) {
	var ch store.TaskRunChange
	var st Started
	if prev != nil && prev.Status == domain.TaskRunning {
		old := *prev
		old.Status, old.FinishedAt = domain.RunInterrupted, &now
		old.Error = "interrupted: the agent restarted before this run reported a result"
		t.Attempts = finishAttempt(t.Attempts, old)
		ch.Run, st.Interrupted = &old, old.ID
	}
	n := nextAttempt(t)
	r := domain.Run{
		ID: runID, TenantID: t.TenantID, AgentID: t.AgentID, TaskID: t.ID, PolicyID: t.PolicyID, Type: t.Type,
		Attempt: n, Status: domain.TaskRunning, StartedAt: now, AgentSession: req.AgentSession, DeliveryID: req.DeliveryID,
	}
	t.Status, t.RunID, t.Attempt, t.Error = domain.TaskRunning, r.ID, n, ""
	t.NextRetryAt, t.FinishedAt = nil, nil
	if t.StartedAt == nil {
		t.StartedAt = &now
	}
	t.Attempts = append(t.Attempts, domain.Attempt{Number: n, RunID: r.ID, StartedAt: &now, Status: domain.TaskRunning})
	if len(t.Attempts) > MaxAttemptsListed {
		t.Attempts = t.Attempts[len(t.Attempts)-MaxAttemptsListed:]
	}
	ch.Task, ch.NewRun = &t, &r
	st.Task, st.Run = t, r
	return ch, st
}

// nextAttempt numbers a new start of t: the task's attempt, unless a run of that attempt started
// already, so every run has its own number.
func nextAttempt(t domain.Task) int {
	n := max(t.Attempt, 1)
	for _, a := range t.Attempts {
		if a.Number >= n {
			n = a.Number + 1
		}
	}
	return n
}

// finishAttempt records how a run ended in the task's list of attempts.
func finishAttempt(attempts []domain.Attempt, r domain.Run) []domain.Attempt {
	out := append([]domain.Attempt(nil), attempts...)
	msg := shorten(r.Error, attemptErrorBytes)
	for i := range out {
		if out[i].RunID == r.ID {
			out[i].Status, out[i].FinishedAt, out[i].Error = r.Status, r.FinishedAt, msg
			return out
		}
	}
	started := r.StartedAt
	return append(out, domain.Attempt{Number: r.Attempt, RunID: r.ID, StartedAt: &started, FinishedAt: r.FinishedAt, Status: r.Status, Error: msg})
}

// shorten cuts s to at most maxBytes bytes on a character boundary, marking the cut.
func shorten(s string, maxBytes int) string {
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

// ProgressReport is a running task's latest progress.
type ProgressReport struct {
	RunID    string          `json:"runId"`
	Progress domain.Progress `json:"progress"`
}

// ProgressReply tells the agent whether an operator cancelled the task meanwhile.
type ProgressReply struct {
	CancelRequested bool
}

// Progress stores a running task's progress on its run.
func (s *Service) Progress(ctx context.Context, c Caller, taskID string, rep ProgressReport) (ProgressReply, error) {
	var p problems
	p.checkID("runId", rep.RunID)
	checkProgress(&p, "progress", rep.Progress)
	if err := p.err(); err != nil {
		return ProgressReply{}, err
	}
	t, err := s.Store.GetTask(ctx, c.TenantID, taskID)
	if err != nil {
		return ProgressReply{}, err
	}
	if t.AgentID != c.AgentID {
		return ProgressReply{}, notFound("task", taskID)
	}
	_, err = s.Store.UpdateRun(ctx, c.TenantID, rep.RunID, func(r *domain.Run) error {
		if r.AgentID != c.AgentID || r.TaskID != t.ID {
			return notFound("run", rep.RunID)
		}
		switch {
		case r.Status == domain.TaskRunning:
		case r.LostAt != nil && r.Status == domain.RunInterrupted:
			// Given up as lost, yet its agent is back and still runs it: let it finish, so that
			// its result — a snapshot, perhaps — is still recorded.
		case r.Status == domain.RunInterrupted:
			return refuse(CodeRunSuperseded, "run %s was interrupted: task %s was started again", r.ID, t.ID)
		default:
			return refuse(CodeRunFinished, "run %s ended %s", r.ID, r.Status)
		}
		r.Progress = cleanProgress(rep.Progress)
		return nil
	})
	if err != nil {
		return ProgressReply{}, err
	}
	return ProgressReply{CancelRequested: t.Status == domain.TaskCancelled}, nil
}

// Outcome is how a run ended, as the agent saw it.
type Outcome string

const (
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomePartial is a backup that finished but could not read some files (restic exit 3).
	OutcomePartial Outcome = "partial"
	OutcomeFailed  Outcome = "failed"
	// OutcomeCancelled is a run the agent stopped: because an operator cancelled the task, or
	// because the agent is shutting down (the task is then queued again).
	OutcomeCancelled Outcome = "cancelled"
)

// Result is how a run ended.
type Result struct {
	RunID    string          `json:"runId"`
	Outcome  Outcome         `json:"outcome"`
	ExitCode *int            `json:"exitCode,omitempty"`
	Summary  *domain.Summary `json:"summary,omitempty"`
	// UnreadablePaths lists what a partial backup could not read.
	UnreadablePaths []string `json:"unreadablePaths,omitempty"`
	Error           string   `json:"error,omitempty"`
	// Retryable says whether trying again may succeed: true for a network failure or a locked
	// repository, false for a wrong password or a missing repository.
	Retryable bool `json:"retryable,omitempty"`
	// Stats and Locks are the repository's health, reported by a stats task and by a check
	// whose message asked for it; for other task types they are ignored. The agent's
	// reportedAt and agentId are replaced by the run's end and agent.
	Stats *domain.RepoStats `json:"stats,omitempty"`
	Locks *domain.LockInfo  `json:"locks,omitempty"`
	// RestoreTarget is the directory a restore wrote into.
	RestoreTarget string `json:"restoreTarget,omitempty"`
}

// Result limits. They keep a run, and a task with its listed attempts, within DynamoDB's item
// size whatever characters the agent sends.
const (
	MaxUnreadablePaths     = 1000
	MaxUnreadablePathBytes = 128 << 10
	MaxErrorChars          = 8192
	MaxErrorBytes          = 16 << 10
	// MaxDurationSeconds bounds restic's reported duration (about 31 years).
	MaxDurationSeconds = 1e9
	// MaxCompressionRatio bounds restic's reported compression ratio.
	MaxCompressionRatio = 1_000_000
	// attemptErrorBytes is how much of a run's error each listed attempt repeats.
	attemptErrorBytes = 1024
)

var snapshotIDPattern = regexp.MustCompile(`^[0-9a-f]{8,64}$`)

func (r Result) validate() error {
	var p problems
	p.checkID("runId", r.RunID)
	if r.RestoreTarget != "" {
		if reason := domain.TargetProblem(r.RestoreTarget); reason != "" {
			p.add("restoreTarget", "%s", reason)
		}
	}
	switch r.Outcome {
	case OutcomeSucceeded, OutcomePartial, OutcomeFailed, OutcomeCancelled:
	case "":
		p.add("outcome", "must not be empty")
	default:
		p.add("outcome", "must be one of succeeded, partial, failed, cancelled")
	}
	if r.ExitCode != nil && (*r.ExitCode < -1 || *r.ExitCode > 255) {
		p.add("exitCode", "must be between -1 (killed by a signal) and 255")
	}
	if r.Summary != nil && r.Summary.SnapshotID != "" && !snapshotIDPattern.MatchString(r.Summary.SnapshotID) {
		p.add("summary.snapshotId", "must be a restic snapshot ID (8–64 hexadecimal digits)")
	}
	if r.Summary != nil && (r.Summary.DurationSeconds < 0 || r.Summary.DurationSeconds > MaxDurationSeconds) {
		p.add("summary.durationSeconds", "must be between 0 and %g", float64(MaxDurationSeconds))
	}
	size := 0
	for _, path := range r.UnreadablePaths {
		size += len(path)
	}
	switch {
	case len(r.UnreadablePaths) > MaxUnreadablePaths:
		p.add("unreadablePaths", "at most %d paths (got %d): list the first ones", MaxUnreadablePaths, len(r.UnreadablePaths))
	case size > MaxUnreadablePathBytes:
		p.add("unreadablePaths", "at most %d bytes in all (got %d): list the first ones", MaxUnreadablePathBytes, size)
	default:
		for i, path := range r.UnreadablePaths {
			checkPath(&p, fmt.Sprintf("unreadablePaths[%d]", i), path)
		}
	}
	if r.Stats != nil {
		if c := r.Stats.CompressionRatio; math.IsNaN(c) || c < 0 || c > MaxCompressionRatio {
			p.add("stats.compressionRatio", "must be between 0 and %d", MaxCompressionRatio)
		}
		for _, f := range []struct {
			name string
			n    uint64
		}{{"rawDataSize", r.Stats.RawDataSize}, {"uncompressedSize", r.Stats.UncompressedSize}, {"fileCount", r.Stats.FileCount}, {"snapshotsCount", r.Stats.SnapshotsCount}, {"blobCount", r.Stats.BlobCount}} {
			if f.n > math.MaxInt64 {
				p.add("stats."+f.name, "must be at most %d", int64(math.MaxInt64))
			}
		}
	}
	if r.Locks != nil {
		switch {
		case r.Locks.Count < 0:
			p.add("locks.count", "must not be negative")
		case r.Locks.Stale < 0 || r.Locks.Stale > r.Locks.Count:
			p.add("locks.stale", "must be between 0 and locks.count (%d)", r.Locks.Count)
		}
	}
	p.checkText("error", r.Error, MaxErrorChars, true)
	if len(r.Error) > MaxErrorBytes {
		p.add("error", "must be at most %d bytes long (got %d)", MaxErrorBytes, len(r.Error))
	}
	return p.err()
}

// ResultReply is the task and run as recorded.
type ResultReply struct {
	Task domain.Task
	Run  domain.Run
	// Repeated is true when the same result had been recorded before.
	Repeated bool
}

// Result records how a run ended and what follows for its task:
//   - succeeded or partial: the run and the task end so; a succeeded backup, forget or check of
//     a policy moves its slot's last success forward;
//   - failed and retryable, with tries left in the task's and the agent's hourly budgets: the
//     task waits for its next try (retrying, with the next try's time), which the scheduler
//     sends; otherwise the task fails for good, saying why it was not retried;
//   - cancelled while an operator cancelled the task: the run ends cancelled; cancelled while
//     the task was still wanted: the agent is shutting down, the run is interrupted and the task
//     queued again, to start anew when its message comes back.
//
// A task already cancelled by an operator stays cancelled whatever its run's outcome. A run the
// scheduler gave up as lost (its agent stayed offline, or stopped listing it) keeps its task
// failed: its result, reported once the agent is back, is recorded on the run alone — a
// succeeded backup still moves its slot's last success, for the snapshot exists. Sending the
// same result again changes nothing and answers the same; a different result for a run that
// ended is a *Refusal.
func (s *Service) Result(ctx context.Context, c Caller, taskID string, res Result) (ResultReply, error) {
	if err := res.validate(); err != nil {
		return ResultReply{}, err
	}
	budget := s.Settings.retryBudget()
	var out ResultReply
	rc := runContext{s: s, c: c}
	ch, err := s.Store.UpdateTaskRun(ctx, c.TenantID, taskID, res.RunID, func(t domain.Task, run *domain.Run) (store.TaskRunChange, error) {
		used := func() (int, error) { return s.Store.RetriesThisHour(ctx, c.TenantID, c.AgentID, s.now()) }
		now := s.now()
		ch, reply, err := decideResult(now, c, res, t, run, retryRules{policy: s.Settings.retry(), budget: budget, rnd: s.rand, used: used})
		out = reply
		if err != nil {
			return ch, err
		}
		ch.Events, err = resultEvents(ctx, now, t, ch, &rc)
		return ch, err
	})
	if err != nil {
		return ResultReply{}, err
	}
	if ch.Task != nil {
		out.Task = *ch.Task
	}
	if ch.Run != nil {
		out.Run = *ch.Run
	}
	if !out.Repeated {
		s.log().InfoContext(ctx, "task result", "tenant_id", c.TenantID, "agent_id", c.AgentID, "task_id", taskID,
			"run_id", out.Run.ID, "run_status", string(out.Run.Status), "task_status", string(out.Task.Status))
	}
	// Also for a repeated result, so that a crash between the two writes loses nothing.
	if err := s.markSlot(ctx, out.Task, out.Run); err != nil {
		return ResultReply{}, err
	}
	if err := s.recordHealth(ctx, out.Task, out.Run, res); err != nil {
		return ResultReply{}, err
	}
	return out, nil
}

// recordHealth stores what a finished check or stats run says about its repository's health:
// a check's outcome (cancelled and interrupted runs say nothing), the stats and the locks. Like
// markSlot it runs for a repeated result too, and writing it again changes nothing.
func (s *Service) recordHealth(ctx context.Context, t domain.Task, r domain.Run, res Result) error {
	if (t.Type != domain.TaskCheck && t.Type != domain.TaskStats) || r.FinishedAt == nil {
		return nil
	}
	rep := store.HealthReport{Repository: t.Repository, At: *r.FinishedAt, AgentID: r.AgentID, Locks: res.Locks}
	if r.Status == domain.TaskSucceeded {
		rep.Stats = res.Stats
	}
	if t.Type == domain.TaskCheck {
		switch r.Status {
		case domain.TaskSucceeded, domain.TaskFailed:
			rep.Check = &domain.CheckResult{
				At: r.FinishedAt.UTC(), OK: r.Status == domain.TaskSucceeded, RunID: r.ID, AgentID: r.AgentID,
				Error: shorten(r.Error, attemptErrorBytes),
			}
		}
	}
	if rep.Stats == nil && rep.Locks == nil && rep.Check == nil {
		return nil
	}
	repo, err := s.Store.GetRepository(ctx, t.TenantID, t.Repository)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return nil // a task for a repository the tenant does not define: no health to keep
	case err != nil:
		return err
	}
	rep.OverdueAfter = repo.OverdueAfter()
	return s.Store.RecordHealth(ctx, t.TenantID, rep)
}

// markSlot moves a policy slot's last success forward after a successful run of its task.
func (s *Service) markSlot(ctx context.Context, t domain.Task, r domain.Run) error {
	if r.Status != domain.TaskSucceeded || t.PolicyID == "" || r.FinishedAt == nil {
		return nil
	}
	var kind domain.SlotKind
	switch t.Type {
	case domain.TaskBackup:
		kind = domain.SlotBackup
	case domain.TaskForget:
		kind = domain.SlotForget
	case domain.TaskCheck:
		kind = domain.SlotCheck
	case domain.TaskStats:
		kind = domain.SlotStats
	default:
		return nil
	}
	return s.Store.MarkSlotSucceeded(ctx, t.TenantID, t.PolicyID, t.AgentID, kind, *r.FinishedAt)
}

// retryRules decide whether a failed task is tried again.
type retryRules struct {
	policy schedule.RetryPolicy
	budget int
	rnd    func() float64
	// used returns how many retries the agent used this hour.
	used func() (int, error)
}

// decideResult decides what a result does to a run and its task.
func decideResult(now time.Time, c Caller, res Result, t domain.Task, run *domain.Run, rules retryRules) (store.TaskRunChange, ResultReply, error) {
	if t.AgentID != c.AgentID {
		return store.TaskRunChange{}, ResultReply{}, notFound("task", t.ID)
	}
	if run == nil || run.AgentID != c.AgentID || run.TaskID != t.ID {
		return store.TaskRunChange{}, ResultReply{}, notFound("run", res.RunID)
	}
	if run.Status != domain.TaskRunning {
		switch {
		case sameResult(run.Status, res.Outcome):
			return store.TaskRunChange{}, ResultReply{Task: t, Run: *run, Repeated: true}, nil
		case run.Status == domain.RunInterrupted && run.LostAt != nil:
			ch, reply := lateResult(now, res, t, *run)
			return ch, reply, nil
		case run.Status == domain.RunInterrupted:
			return store.TaskRunChange{}, ResultReply{}, refuse(CodeRunSuperseded, "run %s was interrupted: task %s was started again", run.ID, t.ID)
		}
		return store.TaskRunChange{}, ResultReply{}, refuse(CodeResultConflict, "run %s already ended %s", run.ID, run.Status)
	}

	r := finishedRun(now, res, *run)
	// Only the task's current run decides the task; an operator's cancellation stands.
	decides := t.Status == domain.TaskRunning && t.RunID == r.ID
	var ch store.TaskRunChange
	switch res.Outcome {
	case OutcomeSucceeded, OutcomePartial:
		r.Status = domain.TaskStatus(res.Outcome)
		if decides {
			t.Status, t.FinishedAt, t.Error = r.Status, &now, r.Error
		}
	case OutcomeFailed:
		r.Status = domain.TaskFailed
		if r.Error == "" {
			r.Error = "the agent reported a failure without a message"
		}
		if decides {
			retry, why, err := retryDecision(t, r, res.Retryable, rules)
			if err != nil {
				return store.TaskRunChange{}, ResultReply{}, err
			}
			if retry {
				next := now.Add(schedule.RetryDelay(failedAttempts(t, r.ID)+1, rules.policy, rules.rnd))
				t.Status, t.NextRetryAt, t.Attempt, t.Error = domain.TaskRetrying, &next, r.Attempt+1, r.Error
				ch.Retry = &store.RetryUse{At: now, Limit: rules.budget}
			} else {
				t.Status, t.FinishedAt, t.NextRetryAt, t.Error = domain.TaskFailed, &now, nil, r.Error+" ("+why+")"
			}
		}
	case OutcomeCancelled:
		if decides {
			// The agent stopped the run on its own, which it does only when it shuts down; the
			// message goes back to the queue, so the task waits there to be started anew.
			r.Status = domain.RunInterrupted
			if r.Error == "" {
				r.Error = "interrupted: the agent shut down before the run finished"
			}
			t.Status = domain.TaskQueued
		} else {
			r.Status = domain.TaskCancelled
		}
	}
	t.Attempts = finishAttempt(t.Attempts, r)
	ch.Task, ch.Run = &t, &r
	return ch, ResultReply{Task: t, Run: r}, nil
}

// finishedRun is run as res reports its end at now, its status still to be decided.
func finishedRun(now time.Time, res Result, run domain.Run) domain.Run {
	r := run
	r.FinishedAt, r.ExitCode, r.Summary, r.UnreadablePaths, r.Error = &now, res.ExitCode, res.Summary, res.UnreadablePaths, res.Error
	r.RestoreTarget = res.RestoreTarget
	if r.Summary != nil {
		sum := *r.Summary
		sum.DurationSeconds = roundTo(sum.DurationSeconds, 1e3)
		r.Summary = &sum
	}
	return r
}

// lateResult records the real outcome of a run the scheduler gave up as lost, reported by its
// agent once it was back. The task stays as it is — failed, and its slot perhaps run again
// meanwhile — so nothing but the run changes, and the task cannot come back to life. A cancelled
// outcome never gets here: it is what the lost run records already (interrupted).
func lateResult(now time.Time, res Result, t domain.Task, run domain.Run) (store.TaskRunChange, ResultReply) {
	r := finishedRun(now, res, run)
	switch res.Outcome {
	case OutcomeSucceeded, OutcomePartial:
		r.Status = domain.TaskStatus(res.Outcome)
	default:
		r.Status = domain.TaskFailed
		if r.Error == "" {
			r.Error = "the agent reported a failure without a message"
		}
	}
	return store.TaskRunChange{Run: &r}, ResultReply{Task: t, Run: r}
}

// retryDecision says whether a task whose run r failed is tried again, and if not, why.
func retryDecision(t domain.Task, r domain.Run, retryable bool, rules retryRules) (bool, string, error) {
	if !retryable {
		return false, "not retried: the error is permanent", nil
	}
	tries := failedAttempts(t, r.ID) + 1
	if tries > t.MaxRetries {
		return false, fmt.Sprintf("not retried: %d of %d tries failed", tries, t.MaxRetries+1), nil
	}
	used, err := rules.used()
	if err != nil {
		return false, "", err
	}
	// Interrupted attempts are not failures: a host that rebooted does not use up its retries.
	counted := t
	counted.Attempt = tries
	if !schedule.RetryAllowed(counted, used, rules.budget) {
		return false, fmt.Sprintf("not retried: the agent used its %d retries for this hour", rules.budget), nil
	}
	return true, "", nil
}

// failedAttempts counts the task's failed attempts other than run's.
func failedAttempts(t domain.Task, runID string) int {
	n := 0
	for _, a := range t.Attempts {
		if a.Status == domain.TaskFailed && a.RunID != runID {
			n++
		}
	}
	return n
}

// sameResult reports whether a run that ended with status already records outcome.
func sameResult(status domain.TaskStatus, outcome Outcome) bool {
	if outcome == OutcomeCancelled {
		return status == domain.TaskCancelled || status == domain.RunInterrupted
	}
	return status == domain.TaskStatus(outcome)
}

// roundTo rounds x to the nearest 1/perUnit (roundTo(x, 1000) to thousandths). Reported
// fractions are rounded so that no value is too small for a DynamoDB number (which ends at
// 1e-130).
func roundTo(x, perUnit float64) float64 { return math.Round(x*perUnit) / perUnit }

// resultEvents are the events a result's change records: how the run ended (run.succeeded,
// run.partial, run.failed or check.failed, and repository.locked), and task.failed when the
// task, as read in t, fails for good with it.
func resultEvents(ctx context.Context, now time.Time, t domain.Task, ch store.TaskRunChange, rc *runContext) ([]events.Event, error) {
	var evs []events.Event
	if ch.Run != nil {
		info, err := rc.get(ctx, t)
		if err != nil {
			return nil, err
		}
		evs = append(evs, events.NewRunEnded(now, *ch.Run, info)...)
	}
	if ch.Task != nil && ch.Task.Status == domain.TaskFailed && t.Status != domain.TaskFailed {
		evs = append(evs, events.NewTaskFailed(now, *ch.Task))
	}
	return evs, nil
}

// runContext reads, once per result, what a run's events say beside the run: the agent's
// hostname and the policy's name.
type runContext struct {
	s    *Service
	c    Caller
	done bool
	info events.RunContext
}

func (rc *runContext) get(ctx context.Context, t domain.Task) (events.RunContext, error) {
	if rc.done {
		return rc.info, nil
	}
	rc.info.Repository = t.Repository
	a, err := rc.s.Store.GetAgent(ctx, rc.c.TenantID, rc.c.AgentID)
	if err != nil {
		return events.RunContext{}, fmt.Errorf("read agent %s for its events: %w", rc.c.AgentID, err)
	}
	rc.info.Hostname = a.Hostname
	if t.PolicyID != "" {
		p, err := rc.s.Store.GetPolicy(ctx, rc.c.TenantID, t.PolicyID)
		switch {
		case err == nil:
			rc.info.PolicyName = p.Name
		case !errors.Is(err, domain.ErrNotFound):
			return events.RunContext{}, fmt.Errorf("read policy %s for its events: %w", t.PolicyID, err)
		}
	}
	rc.done = true
	return rc.info, nil
}
