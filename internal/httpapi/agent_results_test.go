package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func TestSucceededBackupEndsTheTaskAndMarksItsSlot(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	ctx := context.Background()
	policyID := domain.NewID(h.clock)
	next := h.clock.Add(time.Hour)
	require.NoError(t, h.store.PutSlot(ctx, "acme", domain.Slot{PolicyID: policyID, AgentID: a.ID, Kind: domain.SlotBackup, NextRunAt: &next, Overdue: true}))
	task := f.queuedTask(a.ID, func(t *domain.Task) { t.PolicyID = policyID })
	st := f.start(a, task.ID, "s", "d", 201)
	h.clock = h.clock.Add(20 * time.Minute)
	summary := map[string]any{"snapshotId": "1a2b3c4d5e6f7a8b", "filesNew": 3, "filesChanged": 1, "filesUnmodified": 96, "dirsNew": 1,
		"dataAdded": 4096, "totalFilesProcessed": 100, "totalBytesProcessed": 1 << 20, "durationSeconds": 12.5}
	body := map[string]any{"runId": st.RunID, "outcome": "succeeded", "exitCode": 0, "summary": summary}

	out := f.result(a, task.ID, body, 200)

	assert.Equal(t, resultAnswer{TaskStatus: domain.TaskSucceeded, RunStatus: domain.TaskSucceeded, Attempt: 1}, out)
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskSucceeded, got.Status)
	require.NotNil(t, got.FinishedAt)
	assert.Equal(t, h.clock, *got.FinishedAt)
	require.Len(t, got.Attempts, 1)
	assert.Equal(t, domain.TaskSucceeded, got.Attempts[0].Status)
	run := f.run(st.RunID)
	assert.Equal(t, domain.TaskSucceeded, run.Status)
	require.NotNil(t, run.Summary)
	assert.Equal(t, domain.Summary{SnapshotID: "1a2b3c4d5e6f7a8b", FilesNew: 3, FilesChanged: 1, FilesUnmodified: 96, DirsNew: 1,
		DataAdded: 4096, TotalFilesProcessed: 100, TotalBytesProcessed: 1 << 20, DurationSeconds: 12.5}, *run.Summary)
	require.NotNil(t, run.ExitCode)
	assert.Equal(t, 0, *run.ExitCode)
	slot, err := h.store.GetSlot(ctx, "acme", policyID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	require.NotNil(t, slot.LastSuccessAt)
	assert.Equal(t, h.clock, *slot.LastSuccessAt)
	assert.False(t, slot.Overdue, "a success clears overdue")
	assert.Equal(t, next, *slot.NextRunAt, "the schedule is the scheduler's")

	// The same result again (the agent's spool delivering it twice): fine, nothing changes.
	h.clock = h.clock.Add(time.Minute)
	again := f.result(a, task.ID, body, 200)
	assert.True(t, again.Repeated)
	assert.Equal(t, run, f.run(st.RunID))
	slot2, err := h.store.GetSlot(ctx, "acme", policyID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.Equal(t, slot, slot2, "a repeated result does not move the last success")

	// A different result for the same run is a conflict.
	res := h.call("POST", "/v1/agent/tasks/"+task.ID+"/result", a.Credential, map[string]any{"runId": st.RunID, "outcome": "failed", "error": "x"})
	statusIs(t, 409, res, "a different result")
	assert.Equal(t, "result_conflict", errorCode(t, res))
	assert.Equal(t, got, f.task(task.ID))
}

func TestPartialBackupListsTheUnreadablePaths(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	policyID := domain.NewID(h.clock)
	require.NoError(t, h.store.PutSlot(context.Background(), "acme", domain.Slot{PolicyID: policyID, AgentID: a.ID, Kind: domain.SlotBackup}))
	task := f.queuedTask(a.ID, func(t *domain.Task) { t.PolicyID = policyID })
	st := f.start(a, task.ID, "s", "d", 201)
	paths := []string{"/srv/secret.key", "/srv/data/locked.db"}

	out := f.result(a, task.ID, map[string]any{"runId": st.RunID, "outcome": "partial", "exitCode": 3, "unreadablePaths": paths,
		"error": "2 files could not be read", "summary": map[string]any{"snapshotId": "abcdef12", "filesNew": 5}}, 200)

	assert.Equal(t, domain.TaskPartial, out.TaskStatus)
	assert.Equal(t, domain.TaskPartial, out.RunStatus)
	run := f.run(st.RunID)
	assert.Equal(t, paths, run.UnreadablePaths)
	assert.Equal(t, "2 files could not be read", run.Error)
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskPartial, got.Status)
	assert.Equal(t, "2 files could not be read", got.Error)
	slot, err := h.store.GetSlot(context.Background(), "acme", policyID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.Nil(t, slot.LastSuccessAt, "an incomplete snapshot is no success")
}

// A retryable failure waits for its next try, further each time, until the task's tries are
// spent; the attempts stay listed on the task.
func TestFailedTaskBacksOffUntilItsRetriesAreSpent(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	ctx := context.Background()
	task := f.queuedTask(a.ID, func(t *domain.Task) { t.MaxRetries = 2 })
	base := h.deps.Settings.Retry.Base

	for try := 1; try <= 3; try++ {
		st := f.start(a, task.ID, "s", "m/"+string(rune('0'+try)), 201)
		require.Equal(t, try, st.Attempt)
		out := f.result(a, task.ID, map[string]any{"runId": st.RunID, "outcome": "failed", "exitCode": 1,
			"error": "Fatal: unable to open repository: connection refused", "retryable": true}, 200)
		got := f.task(task.ID)
		require.Len(t, got.Attempts, try)
		if try == 3 {
			assert.Equal(t, domain.TaskFailed, out.TaskStatus)
			assert.Nil(t, out.NextRetryAt)
			assert.Equal(t, domain.TaskFailed, got.Status)
			assert.Nil(t, got.NextRetryAt)
			assert.Contains(t, got.Error, "connection refused")
			assert.Contains(t, got.Error, "3 of 3 tries failed")
			for i, at := range got.Attempts {
				assert.Equal(t, domain.TaskFailed, at.Status, "attempt %d", i+1)
				assert.Equal(t, i+1, at.Number)
				assert.Contains(t, at.Error, "connection refused")
			}
			break
		}
		// Equal jitter: between half the delay and the delay, which doubles with each failure.
		delay := base << (try - 1)
		assert.Equal(t, domain.TaskRetrying, out.TaskStatus)
		assert.Equal(t, domain.TaskFailed, out.RunStatus)
		require.NotNil(t, out.NextRetryAt)
		assert.WithinRange(t, *out.NextRetryAt, h.clock.Add(delay/2), h.clock.Add(delay), "next try after failure %d", try)
		assert.Equal(t, domain.TaskRetrying, got.Status)
		assert.Equal(t, *out.NextRetryAt, *got.NextRetryAt)
		assert.Equal(t, try+1, got.Attempt, "the next message carries the next attempt")

		// Its old message must not run it early.
		res := h.call("POST", "/v1/agent/tasks/"+task.ID+"/start", a.Credential, map[string]any{"agentSession": "s", "deliveryId": "stale"})
		statusIs(t, 409, res, "a start while waiting for a retry")
		assert.Equal(t, "task_not_startable", errorCode(t, res))

		// The scheduler sends it again when its time comes.
		h.clock = *got.NextRetryAt
		_, err := h.store.TransitionTask(ctx, "acme", task.ID, domain.TaskQueued, nil)
		require.NoError(t, err)
	}
	retries, err := h.store.RetriesThisHour(ctx, "acme", a.ID, h.clock)
	require.NoError(t, err)
	assert.Positive(t, retries)
}

// The agent's hourly budget bounds retries across its tasks; the next hour brings a new one.
func TestAgentHourlyRetryBudgetFailsTasksForGoodWhenSpent(t *testing.T) {
	h := newHarness(t)
	h.deps.Settings.AgentHourlyRetryBudget = 2
	h.rebuildAgentAPI()
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	var lastTask string
	fail := func(i int) resultAnswer {
		task := f.queuedTask(a.ID)
		lastTask = task.ID
		st := f.start(a, task.ID, "s", "d"+string(rune('a'+i)), 201)
		return f.result(a, task.ID, map[string]any{"runId": st.RunID, "outcome": "failed", "error": "repository locked", "retryable": true}, 200)
	}
	assert.Equal(t, domain.TaskRetrying, fail(0).TaskStatus)
	assert.Equal(t, domain.TaskRetrying, fail(1).TaskStatus)

	spent := fail(2)

	assert.Equal(t, domain.TaskFailed, spent.TaskStatus, "the third retry in one hour is over budget")
	last := f.task(lastTask)
	assert.Contains(t, last.Error, "used its 2 retries for this hour")
	require.Len(t, last.Attempts, 1, "the attempt is listed on the failed task")
	assert.Equal(t, domain.TaskFailed, last.Attempts[0].Status)

	h.clock = h.clock.Add(time.Hour)
	assert.Equal(t, domain.TaskRetrying, fail(3).TaskStatus, "a new hour, a new budget")
}

// restic's exit code 12 (wrong password) can never succeed by trying again.
func TestWrongPasswordFailsWithoutRetry(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)
	st := f.start(a, task.ID, "s", "d", 201)

	out := f.result(a, task.ID, map[string]any{"runId": st.RunID, "outcome": "failed", "exitCode": 12,
		"error": "Fatal: wrong password or no key found", "retryable": false}, 200)

	assert.Equal(t, domain.TaskFailed, out.TaskStatus)
	assert.Nil(t, out.NextRetryAt)
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskFailed, got.Status)
	assert.Nil(t, got.NextRetryAt)
	assert.Contains(t, got.Error, "Fatal: wrong password or no key found")
	assert.Contains(t, got.Error, "permanent")
	require.Len(t, got.Attempts, 1)
	assert.Equal(t, 3, got.MaxRetries, "retries were left, and not used")
	run := f.run(st.RunID)
	assert.Equal(t, domain.TaskFailed, run.Status)
	require.NotNil(t, run.ExitCode)
	assert.Equal(t, 12, *run.ExitCode)
	retries, err := h.store.RetriesThisHour(context.Background(), "acme", a.ID, h.clock)
	require.NoError(t, err)
	assert.Zero(t, retries, "no retry was counted")
}

func TestResultRefusesBadInput(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)
	st := f.start(a, task.ID, "s", "d", 201)
	path := "/v1/agent/tasks/" + task.ID + "/result"
	ok := func(change func(map[string]any)) map[string]any {
		b := map[string]any{"runId": st.RunID, "outcome": "succeeded"}
		change(b)
		return b
	}
	cases := []struct {
		name   string
		path   string
		body   any
		status int
		field  string
	}{
		{"unknown outcome", path, ok(func(b map[string]any) { b["outcome"] = "done" }), 422, "outcome"},
		{"no outcome", path, ok(func(b map[string]any) { delete(b, "outcome") }), 422, "outcome"},
		{"no run", path, ok(func(b map[string]any) { delete(b, "runId") }), 422, "runId"},
		{"run not an ID", path, ok(func(b map[string]any) { b["runId"] = "latest" }), 422, "runId"},
		{"exit code out of range", path, ok(func(b map[string]any) { b["exitCode"] = 300 }), 422, "exitCode"},
		{"snapshot ID not hex", path, ok(func(b map[string]any) { b["summary"] = map[string]any{"snapshotId": "zzzzzzzz"} }), 422, "summary.snapshotId"},
		{"negative duration", path, ok(func(b map[string]any) { b["summary"] = map[string]any{"durationSeconds": -1} }), 422, "summary.durationSeconds"},
		{"too many unreadable paths", path, ok(func(b map[string]any) { b["unreadablePaths"] = strings.Split(strings.Repeat("/x,", 1001), ",")[:1001] }), 422, "unreadablePaths"},
		{"empty unreadable path", path, ok(func(b map[string]any) { b["unreadablePaths"] = []string{""} }), 422, "unreadablePaths[0]"},
		{"error too long", path, ok(func(b map[string]any) { b["error"] = strings.Repeat("e", 8193) }), 422, "error"},
		{"exit code a string", path, `{"runId":"` + st.RunID + `","outcome":"failed","exitCode":"12"}`, 400, "exitCode"},
		{"retryable a string", path, `{"runId":"` + st.RunID + `","outcome":"failed","retryable":"yes"}`, 400, "retryable"},
		{"negative count", path, `{"runId":"` + st.RunID + `","outcome":"succeeded","summary":{"filesNew":-1}}`, 400, "summary.filesNew"},
		{"unknown field", path, `{"runId":"` + st.RunID + `","outcome":"succeeded","taskStatus":"succeeded"}`, 400, "taskStatus"},
		{"task ID not an ID", "/v1/agent/tasks/x/result", ok(func(map[string]any) {}), 400, "taskId"},
		{"a run that does not exist", path, ok(func(b map[string]any) { b["runId"] = domain.NewID(h.clock) }), 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call("POST", tc.path, a.Credential, tc.body)
			statusIs(t, tc.status, res, tc.name)
			if tc.field != "" {
				assert.Contains(t, res.ErrorFields(t), tc.field)
			}
		})
	}
	assert.Equal(t, domain.TaskRunning, f.task(task.ID).Status, "no refused result may end the task")
	assert.Equal(t, domain.TaskRunning, f.run(st.RunID).Status)
}
