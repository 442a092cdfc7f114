package reporting

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

var (
	now    = time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	caller = Caller{TenantID: "acme", AgentID: "01JD00000000000000000AGENT"}
)

func runningTask() (domain.Task, domain.Run) {
	started := now.Add(-time.Hour)
	t := domain.Task{ID: "01JD000000000000000000TASK", TenantID: "acme", AgentID: caller.AgentID, Type: domain.TaskBackup,
		Status: domain.TaskRunning, Attempt: 1, MaxRetries: 2, RunID: "01JD0000000000000000000RUN", Deadline: now.Add(time.Hour), StartedAt: &started,
		Attempts: []domain.Attempt{{Number: 1, RunID: "01JD0000000000000000000RUN", StartedAt: &started, Status: domain.TaskRunning}}}
	r := domain.Run{ID: t.RunID, TenantID: "acme", AgentID: caller.AgentID, TaskID: t.ID, Attempt: 1, Status: domain.TaskRunning,
		StartedAt: started, AgentSession: "s1", DeliveryID: "m/1"}
	return t, r
}

func refusalCode(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Code
	}
	return ""
}

func TestDecideStart(t *testing.T) {
	task, run := runningTask()
	queued := task
	queued.Status, queued.RunID, queued.Attempts = domain.TaskQueued, "", nil

	t.Run("a queued task starts its first attempt", func(t *testing.T) {
		ch, st, err := decideStart(now, caller, StartRequest{"s1", "m/1"}, queued, nil, "01JD00000000000000000NEWRUN")
		require.NoError(t, err)
		require.NotNil(t, ch.Task)
		require.NotNil(t, ch.NewRun)
		assert.Nil(t, ch.Run)
		assert.Equal(t, domain.TaskRunning, ch.Task.Status)
		assert.Equal(t, 1, ch.NewRun.Attempt)
		assert.Equal(t, st.Run, *ch.NewRun)
	})
	t.Run("the same start again is the same run", func(t *testing.T) {
		ch, st, err := decideStart(now, caller, StartRequest{"s1", "m/1"}, task, &run, "unused")
		require.NoError(t, err)
		assert.Equal(t, store.TaskRunChange{}, ch)
		assert.True(t, st.Repeated)
		assert.Equal(t, run, st.Run)
	})
	t.Run("another delivery in the same session is refused", func(t *testing.T) {
		_, _, err := decideStart(now, caller, StartRequest{"s1", "m2/1"}, task, &run, "unused")
		assert.Equal(t, CodeTaskRunning, refusalCode(err))
	})
	t.Run("another session interrupts the run and starts the next attempt", func(t *testing.T) {
		ch, st, err := decideStart(now, caller, StartRequest{"s2", "m/2"}, task, &run, "01JD00000000000000000NEWRUN")
		require.NoError(t, err)
		require.NotNil(t, ch.Run)
		assert.Equal(t, domain.RunInterrupted, ch.Run.Status)
		assert.Equal(t, &now, ch.Run.FinishedAt)
		assert.Equal(t, 2, ch.NewRun.Attempt)
		assert.Equal(t, run.ID, st.Interrupted)
		require.Len(t, ch.Task.Attempts, 2)
		assert.Equal(t, domain.RunInterrupted, ch.Task.Attempts[0].Status)
		assert.Equal(t, 2, ch.Task.Attempts[1].Number)
		assert.Equal(t, run.StartedAt, *ch.Task.StartedAt, "the task keeps its first start")
		assert.Equal(t, domain.TaskRunning, task.Attempts[0].Status, "the task read must not be changed in place")
	})
	t.Run("another agent's task is not found", func(t *testing.T) {
		_, _, err := decideStart(now, Caller{TenantID: "acme", AgentID: "01JD000000000000000000OTHER"}, StartRequest{"s1", "m/1"}, queued, nil, "x")
		assert.ErrorIs(t, err, domain.ErrNotFound)
		assert.Empty(t, refusalCode(err))
	})
	for _, s := range []domain.TaskStatus{domain.TaskSucceeded, domain.TaskPartial, domain.TaskFailed, domain.TaskCancelled, domain.TaskExpired} {
		done := queued
		done.Status = s
		_, _, err := decideStart(now, caller, StartRequest{"s1", "m/1"}, done, nil, "x")
		assert.Equal(t, CodeTaskFinished, refusalCode(err), "status %s", s)
		assert.ErrorIs(t, err, domain.ErrConflict, "a refusal is a conflict for callers that do not know its code")
	}
	late := queued
	late.Deadline = now.Add(-time.Second)
	_, _, err := decideStart(now, caller, StartRequest{"s1", "m/1"}, late, nil, "x")
	assert.Equal(t, CodeTaskNotStartable, refusalCode(err))
}

func TestNextAttemptNumbersEveryRunApart(t *testing.T) {
	cases := []struct {
		name     string
		attempt  int
		listed   []int
		wantNext int
	}{
		{"a new task", 1, nil, 1},
		{"an operator's task without a number", 0, nil, 1},
		{"the retry the scheduler sent", 2, []int{1}, 2},
		{"a restart of attempt 1", 1, []int{1}, 2},
		{"a restart after a retry was interrupted", 2, []int{1, 2}, 3},
	}
	for _, tc := range cases {
		task := domain.Task{Attempt: tc.attempt}
		for _, n := range tc.listed {
			task.Attempts = append(task.Attempts, domain.Attempt{Number: n})
		}
		assert.Equal(t, tc.wantNext, nextAttempt(task), tc.name)
	}
}

func rules(used int, budget int) retryRules {
	return retryRules{policy: schedule.DefaultRetryPolicy(), budget: budget, rnd: func() float64 { return 0.5 },
		used: func() (int, error) { return used, nil }}
}

func TestDecideResult(t *testing.T) {
	task, run := runningTask()
	fail := Result{RunID: run.ID, Outcome: OutcomeFailed, Error: "connection refused", Retryable: true}

	t.Run("a retryable failure with tries left retries after the backoff", func(t *testing.T) {
		ch, _, err := decideResult(now, caller, fail, task, &run, rules(0, 20))
		require.NoError(t, err)
		assert.Equal(t, domain.TaskRetrying, ch.Task.Status)
		// 2 minutes with equal jitter at 0.5: 1m + 30s.
		assert.Equal(t, now.Add(90*time.Second), *ch.Task.NextRetryAt)
		assert.Equal(t, 2, ch.Task.Attempt)
		require.NotNil(t, ch.Retry)
		assert.Equal(t, 20, ch.Retry.Limit)
		assert.Equal(t, domain.TaskFailed, ch.Run.Status)
	})
	t.Run("the second failure waits twice as long", func(t *testing.T) {
		second, r2 := task, run
		r2.ID, r2.Attempt = "01JD00000000000000000RUN02", 2
		second.RunID, second.Attempt = r2.ID, 2
		second.Attempts = []domain.Attempt{{Number: 1, RunID: run.ID, Status: domain.TaskFailed}, {Number: 2, RunID: r2.ID, Status: domain.TaskRunning}}
		ch, _, err := decideResult(now, caller, fail, second, &r2, rules(0, 20))
		require.NoError(t, err)
		assert.Equal(t, now.Add(3*time.Minute), *ch.Task.NextRetryAt)
	})
	t.Run("interrupted attempts are no failures", func(t *testing.T) {
		after, r3 := task, run
		r3.ID, r3.Attempt = "01JD00000000000000000RUN03", 3
		after.RunID, after.Attempt, after.MaxRetries = r3.ID, 3, 1
		after.Attempts = []domain.Attempt{{Number: 1, Status: domain.RunInterrupted}, {Number: 2, Status: domain.RunInterrupted}, {Number: 3, RunID: r3.ID, Status: domain.TaskRunning}}
		ch, _, err := decideResult(now, caller, fail, after, &r3, rules(0, 20))
		require.NoError(t, err)
		assert.Equal(t, domain.TaskRetrying, ch.Task.Status)
		assert.Equal(t, now.Add(90*time.Second), *ch.Task.NextRetryAt, "the first failure's delay")
	})
	t.Run("a permanent failure is final", func(t *testing.T) {
		perm := fail
		perm.Retryable = false
		ch, _, err := decideResult(now, caller, perm, task, &run, rules(0, 20))
		require.NoError(t, err)
		assert.Equal(t, domain.TaskFailed, ch.Task.Status)
		assert.Nil(t, ch.Retry)
		assert.Contains(t, ch.Task.Error, "permanent")
	})
	t.Run("a spent agent budget is final", func(t *testing.T) {
		ch, _, err := decideResult(now, caller, fail, task, &run, rules(20, 20))
		require.NoError(t, err)
		assert.Equal(t, domain.TaskFailed, ch.Task.Status)
		assert.Contains(t, ch.Task.Error, "used its 20 retries")
	})
	t.Run("a failure to read the budget is returned", func(t *testing.T) {
		broken := rules(0, 20)
		boom := errors.New("throttled")
		broken.used = func() (int, error) { return 0, boom }
		_, _, err := decideResult(now, caller, fail, task, &run, broken)
		assert.ErrorIs(t, err, boom)
	})
	t.Run("cancelled while wanted is an agent shutdown", func(t *testing.T) {
		ch, _, err := decideResult(now, caller, Result{RunID: run.ID, Outcome: OutcomeCancelled}, task, &run, rules(0, 20))
		require.NoError(t, err)
		assert.Equal(t, domain.TaskQueued, ch.Task.Status)
		assert.Equal(t, domain.RunInterrupted, ch.Run.Status)
	})
	t.Run("an operator's cancellation stands whatever the outcome", func(t *testing.T) {
		cancelled := task
		cancelled.Status = domain.TaskCancelled
		ch, _, err := decideResult(now, caller, Result{RunID: run.ID, Outcome: OutcomeSucceeded}, cancelled, &run, rules(0, 20))
		require.NoError(t, err)
		assert.Equal(t, domain.TaskCancelled, ch.Task.Status)
		assert.Equal(t, domain.TaskSucceeded, ch.Run.Status)
		assert.Equal(t, domain.TaskSucceeded, ch.Task.Attempts[0].Status)
	})
	t.Run("a run of another task is not found", func(t *testing.T) {
		foreign := run
		foreign.TaskID = "01JD0000000000000000OTHERT"
		_, _, err := decideResult(now, caller, fail, task, &foreign, rules(0, 20))
		assert.ErrorIs(t, err, domain.ErrNotFound)
		_, _, err = decideResult(now, caller, fail, task, nil, rules(0, 20))
		assert.ErrorIs(t, err, domain.ErrNotFound)
	})
	t.Run("a result for an ended run", func(t *testing.T) {
		for _, tc := range []struct {
			status  domain.TaskStatus
			outcome Outcome
			code    string
		}{
			{domain.TaskSucceeded, OutcomeSucceeded, ""},
			{domain.RunInterrupted, OutcomeCancelled, ""},
			{domain.TaskCancelled, OutcomeCancelled, ""},
			{domain.TaskSucceeded, OutcomeFailed, CodeResultConflict},
			{domain.RunInterrupted, OutcomeSucceeded, CodeRunSuperseded},
		} {
			ended := run
			ended.Status = tc.status
			ch, reply, err := decideResult(now, caller, Result{RunID: run.ID, Outcome: tc.outcome}, task, &ended, rules(0, 20))
			if tc.code == "" {
				require.NoError(t, err, "%s after %s", tc.outcome, tc.status)
				assert.True(t, reply.Repeated)
				assert.Nil(t, ch.Task)
				continue
			}
			assert.Equal(t, tc.code, refusalCode(err), "%s after %s", tc.outcome, tc.status)
		}
	})
	t.Run("a run given up as lost takes its late result, its task stays failed", func(t *testing.T) {
		lostAt := now.Add(-10 * time.Minute)
		failed := task
		failed.Status, failed.FinishedAt, failed.Error = domain.TaskFailed, &lostAt, "agent lost: offline since …"
		lost := run
		lost.Status, lost.FinishedAt, lost.LostAt, lost.Error = domain.RunInterrupted, &lostAt, &lostAt, failed.Error
		exit := 0
		res := Result{RunID: run.ID, Outcome: OutcomeSucceeded, ExitCode: &exit, Summary: &domain.Summary{SnapshotID: "4f8a2c1e", DurationSeconds: 3600.0004}}

		ch, reply, err := decideResult(now, caller, res, failed, &lost, rules(0, 20))
		require.NoError(t, err)
		assert.Nil(t, ch.Task, "the task is not written")
		assert.Nil(t, ch.Retry)
		require.NotNil(t, ch.Run)
		assert.Equal(t, domain.TaskSucceeded, ch.Run.Status)
		assert.Equal(t, now, *ch.Run.FinishedAt)
		assert.Equal(t, lostAt, *ch.Run.LostAt, "it stays marked as given up")
		assert.Equal(t, &domain.Summary{SnapshotID: "4f8a2c1e", DurationSeconds: 3600}, ch.Run.Summary)
		assert.Empty(t, ch.Run.Error)
		assert.Equal(t, domain.TaskFailed, reply.Task.Status)
		assert.False(t, reply.Repeated)

		// A late failure is recorded as one; a late cancellation is what the lost run says.
		ch, _, err = decideResult(now, caller, Result{RunID: run.ID, Outcome: OutcomeFailed}, failed, &lost, rules(0, 20))
		require.NoError(t, err)
		assert.Equal(t, domain.TaskFailed, ch.Run.Status)
		assert.NotEmpty(t, ch.Run.Error)
		ch, reply, err = decideResult(now, caller, Result{RunID: run.ID, Outcome: OutcomeCancelled}, failed, &lost, rules(0, 20))
		require.NoError(t, err)
		assert.True(t, reply.Repeated)
		assert.Nil(t, ch.Run)
	})
}

func TestShortenCutsOnACharacterBoundary(t *testing.T) {
	assert.Equal(t, "short", shorten("short", 10))
	got := shorten(strings.Repeat("𝄞", 10), 10)
	assert.LessOrEqual(t, len(got), 10)
	assert.True(t, utf8.ValidString(got), "got %q", got)
	assert.True(t, strings.HasSuffix(got, "…"), "got %q", got)
}

func TestRoundToKeepsReportedFractionsStorable(t *testing.T) {
	assert.Zero(t, roundTo(1e-300, 1e6))
	assert.Equal(t, 0.25, roundTo(0.25, 1e6))
	assert.Equal(t, 12.346, roundTo(12.3456, 1e3))
}

func TestResultRefusesHealthThatCannotBe(t *testing.T) {
	runID := domain.NewID(time.Now())
	for name, tc := range map[string]struct {
		res  Result
		want string
	}{
		"more stale locks than locks": {Result{RunID: runID, Outcome: OutcomeSucceeded, Locks: &domain.LockInfo{Count: 1, Stale: 2}}, "locks.stale"},
		"negative lock count":         {Result{RunID: runID, Outcome: OutcomeSucceeded, Locks: &domain.LockInfo{Count: -1}}, "locks.count"},
		"negative compression ratio":  {Result{RunID: runID, Outcome: OutcomeSucceeded, Stats: &domain.RepoStats{CompressionRatio: -1}}, "stats.compressionRatio"},
		"size beyond a number":        {Result{RunID: runID, Outcome: OutcomeSucceeded, Stats: &domain.RepoStats{RawDataSize: 1 << 63}}, "stats.rawDataSize"},
	} {
		err := tc.res.validate()
		var ve *domain.ValidationError
		require.ErrorAs(t, err, &ve, name)
		require.Len(t, ve.Fields, 1, name)
		assert.Equal(t, tc.want, ve.Fields[0].Field, name)
	}
	ok := Result{RunID: runID, Outcome: OutcomeSucceeded, Locks: &domain.LockInfo{Count: 2, Stale: 1}, Stats: &domain.RepoStats{RawDataSize: 10, CompressionRatio: 2.5}}
	assert.NoError(t, ok.validate())
}
