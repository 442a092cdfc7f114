package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func TestStartRunsAQueuedTaskOnce(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)

	st := f.start(a, task.ID, "session-1", "msg-1/1", 201)

	assert.Equal(t, started{TaskID: task.ID, RunID: st.RunID, Attempt: 1}, st)
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskRunning, got.Status)
	assert.Equal(t, st.RunID, got.RunID)
	require.NotNil(t, got.StartedAt)
	assert.Equal(t, h.clock, *got.StartedAt)
	require.Len(t, got.Attempts, 1)
	assert.Equal(t, domain.Attempt{Number: 1, RunID: st.RunID, StartedAt: got.StartedAt, Status: domain.TaskRunning}, got.Attempts[0])
	run := f.run(st.RunID)
	assert.Equal(t, domain.TaskRunning, run.Status)
	assert.Equal(t, task.ID, run.TaskID)
	assert.Equal(t, a.ID, run.AgentID)
	assert.Equal(t, 1, run.Attempt)
	assert.Equal(t, domain.TaskBackup, run.Type)
	assert.Equal(t, "session-1", run.AgentSession)
	assert.Equal(t, "msg-1/1", run.DeliveryID)

	// The same start again (its answer was lost): the same run, nothing new.
	again := f.start(a, task.ID, "session-1", "msg-1/1", 200)
	assert.Equal(t, started{TaskID: task.ID, RunID: st.RunID, Attempt: 1, Repeated: true}, again)

	// A second message for the task, in the process that runs it: refused, nothing new.
	res := h.call("POST", "/v1/agent/tasks/"+task.ID+"/start", a.Credential, map[string]any{"agentSession": "session-1", "deliveryId": "msg-2/1"})
	statusIs(t, 409, res, "a duplicate message")
	assert.Equal(t, "task_running", errorCode(t, res))
	assert.Len(t, f.runsOf(a.ID), 1, "one run, however often the task is started")
	assert.Equal(t, got, f.task(task.ID))

	// A task still pending (the scheduler crashed before marking it queued) starts too.
	pending := f.queuedTask(a.ID, func(t *domain.Task) { t.Status = domain.TaskPending })
	f.start(a, pending.ID, "session-1", "msg-3/1", 201)
}

// Two deliveries of one task reach the same process at once: exactly one starts it.
func TestConcurrentStartsOfOneTaskMakeOneRun(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)
	const n = 4
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res := h.call("POST", "/v1/agent/tasks/"+task.ID+"/start", a.Credential, map[string]any{"agentSession": "s", "deliveryId": fmt.Sprintf("m%d/1", i)})
			statuses[i] = res.Status
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	assert.Equal(t, map[int]int{201: 1, 409: n - 1}, count, "statuses: got %v", statuses)
	assert.Len(t, f.runsOf(a.ID), 1)
}

// The agent was killed mid-backup; after its restart the message comes again. The old run is
// recorded as interrupted, a new attempt runs, and the old process's late reports are refused.
func TestStartAfterACrashInterruptsTheRunAndStartsANewAttempt(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)
	first := f.start(a, task.ID, "before-crash", "msg-1/1", 201)
	h.clock = h.clock.Add(15 * time.Minute)

	second := f.start(a, task.ID, "after-reboot", "msg-1/2", 201)

	assert.NotEqual(t, first.RunID, second.RunID)
	assert.Equal(t, 2, second.Attempt)
	assert.Equal(t, first.RunID, second.InterruptedRunID)
	old := f.run(first.RunID)
	assert.Equal(t, domain.RunInterrupted, old.Status)
	require.NotNil(t, old.FinishedAt)
	assert.Equal(t, h.clock, *old.FinishedAt)
	assert.Contains(t, old.Error, "interrupted")
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskRunning, got.Status)
	assert.Equal(t, second.RunID, got.RunID)
	assert.Equal(t, 2, got.Attempt)
	require.Len(t, got.Attempts, 2)
	assert.Equal(t, domain.RunInterrupted, got.Attempts[0].Status)
	assert.Equal(t, first.RunID, got.Attempts[0].RunID)
	assert.Equal(t, domain.TaskRunning, got.Attempts[1].Status)

	// The old process was not dead after all: its reports are refused, nothing changes.
	res := h.call("POST", "/v1/agent/tasks/"+task.ID+"/result", a.Credential, map[string]any{"runId": first.RunID, "outcome": "succeeded"})
	statusIs(t, 409, res, "the superseded run's result")
	assert.Equal(t, "run_superseded", errorCode(t, res))
	res = h.call("POST", "/v1/agent/tasks/"+task.ID+"/progress", a.Credential, map[string]any{"runId": first.RunID, "progress": map[string]any{"percentDone": 0.5}})
	statusIs(t, 409, res, "the superseded run's progress")
	assert.Equal(t, "run_superseded", errorCode(t, res))
	assert.Equal(t, old, f.run(first.RunID))

	// The new run finishes: one run succeeded and the interrupted attempt, nothing else.
	out := f.result(a, task.ID, map[string]any{"runId": second.RunID, "outcome": "succeeded", "exitCode": 0}, 200)
	assert.Equal(t, domain.TaskSucceeded, out.TaskStatus)
	runs := f.runsOf(a.ID)
	require.Len(t, runs, 2)
	statuses := map[string]domain.TaskStatus{}
	for _, r := range runs {
		statuses[r.ID] = r.Status
	}
	assert.Equal(t, map[string]domain.TaskStatus{first.RunID: domain.RunInterrupted, second.RunID: domain.TaskSucceeded}, statuses)
}

func TestStartRefusesTasksThatMustNotRun(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	retryAt := h.clock.Add(time.Hour)
	cases := []struct {
		name   string
		change func(*domain.Task)
		code   string
	}{
		{"succeeded", func(t *domain.Task) { t.Status = domain.TaskSucceeded }, "task_finished"},
		{"partial", func(t *domain.Task) { t.Status = domain.TaskPartial }, "task_finished"},
		{"failed", func(t *domain.Task) { t.Status = domain.TaskFailed }, "task_finished"},
		{"cancelled", func(t *domain.Task) { t.Status = domain.TaskCancelled }, "task_finished"},
		{"expired", func(t *domain.Task) { t.Status = domain.TaskExpired }, "task_finished"},
		{"retrying", func(t *domain.Task) { t.Status, t.NextRetryAt = domain.TaskRetrying, &retryAt }, "task_not_startable"},
		{"past its deadline", func(t *domain.Task) {
			t.NotBefore, t.Deadline = t.NotBefore.Add(-2*time.Hour), t.NotBefore.Add(-time.Minute)
		}, "task_not_startable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := f.queuedTask(a.ID, tc.change)
			res := h.call("POST", "/v1/agent/tasks/"+task.ID+"/start", a.Credential, map[string]any{"agentSession": "s", "deliveryId": "d"})
			statusIs(t, 409, res, tc.name)
			assert.Equal(t, tc.code, errorCode(t, res))
			assert.Equal(t, task.Status, f.task(task.ID).Status)
		})
	}
	assert.Empty(t, f.runsOf(a.ID), "no refused start may create a run")
}

// Agent b (and an agent of another tenant) on agent a's task or run: 404 every time, as for a
// task that does not exist, and nothing of a's changes.
func TestAnAgentCannotTouchAnotherAgentsTasksOrRuns(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	other := newAgentFixture(h, "other")
	a, b, x := f.enroll("a"), f.enroll("b"), other.enroll("x")
	running := f.queuedTask(a.ID)
	st := f.start(a, running.ID, "sa", "d1", 201)
	queued := f.queuedTask(a.ID)
	own := f.queuedTask(b.ID)
	ownRun := f.start(b, own.ID, "sb", "d2", 201)
	require.Equal(t, 201, h.call("POST", "/v1/agent/runs/"+st.RunID+"/logs", a.Credential, map[string]any{"seq": 0, "lines": []string{"a's line"}}).Status)
	before := func() []any {
		return []any{f.task(running.ID), f.task(queued.ID), f.run(st.RunID), f.runsOf(a.ID), f.task(own.ID), f.run(ownRun.RunID)}
	}
	want := before()

	calls := []struct{ name, path string }{
		{"start a's queued task", "/v1/agent/tasks/" + queued.ID + "/start"},
		{"start a's running task", "/v1/agent/tasks/" + running.ID + "/start"},
		{"progress on a's task", "/v1/agent/tasks/" + running.ID + "/progress"},
		{"result for a's task", "/v1/agent/tasks/" + running.ID + "/result"},
		{"progress on its own task with a's run", "/v1/agent/tasks/" + own.ID + "/progress"},
		{"result for its own task with a's run", "/v1/agent/tasks/" + own.ID + "/result"},
		{"log on a's run", "/v1/agent/runs/" + st.RunID + "/logs"},
	}
	bodies := map[string]map[string]any{
		"start":    {"agentSession": "sa", "deliveryId": "d1"},
		"progress": {"runId": st.RunID, "progress": map[string]any{"percentDone": 1}},
		"result":   {"runId": st.RunID, "outcome": "failed", "error": "sabotage"},
		"logs":     {"seq": 1, "lines": []string{"injected"}},
	}
	for _, intruder := range []host{b, x} {
		for _, c := range calls {
			kind := c.path[strings.LastIndex(c.path, "/")+1:]
			res := h.call("POST", c.path, intruder.Credential, bodies[kind])
			statusIs(t, 404, res, c.name, " by ", intruder.ID)
			assert.Equal(t, "not_found", errorCode(t, res))
		}
	}
	assert.Equal(t, want, before(), "nothing of a's (or b's own task) may change")
	chunks, _, err := h.store.ListLog(context.Background(), "acme", st.RunID, storePage(10))
	require.NoError(t, err)
	require.Len(t, chunks, 1)
	assert.Equal(t, []string{"a's line"}, chunks[0].Lines)

	// A task that does not exist answers the same.
	missing := domain.NewID(h.clock)
	res := h.call("POST", "/v1/agent/tasks/"+missing+"/start", b.Credential, bodies["start"])
	statusIs(t, 404, res, "a missing task")
	assert.Equal(t, "not_found", errorCode(t, res))
}

func TestStartRefusesBadInput(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)
	path := "/v1/agent/tasks/" + task.ID + "/start"
	cases := []struct {
		name, path string
		body       any
		status     int
		field      string
	}{
		{"task ID not an ID", "/v1/agent/tasks/not-an-id/start", map[string]any{"agentSession": "s", "deliveryId": "d"}, 400, "taskId"},
		{"task ID too long", "/v1/agent/tasks/" + task.ID + "0/start", map[string]any{"agentSession": "s", "deliveryId": "d"}, 400, "taskId"},
		{"no session", path, map[string]any{"deliveryId": "d"}, 422, "agentSession"},
		{"no delivery", path, map[string]any{"agentSession": "s"}, 422, "deliveryId"},
		{"delivery with a space", path, map[string]any{"agentSession": "s", "deliveryId": "a b"}, 422, "deliveryId"},
		{"session too long", path, map[string]any{"agentSession": strings.Repeat("s", 65), "deliveryId": "d"}, 422, "agentSession"},
		{"wrong type", path, `{"agentSession":1,"deliveryId":"d"}`, 400, "agentSession"},
		{"unknown field", path, `{"agentSession":"s","deliveryId":"d","attempt":3}`, 400, "attempt"},
		{"not JSON", path, `agentSession=s`, 400, ""},
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
	assert.Equal(t, domain.TaskQueued, f.task(task.ID).Status)
}

func TestProgressIsStoredOnTheRunAndSaysWhenToStop(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	t1, t2 := f.queuedTask(a.ID), f.queuedTask(a.ID)
	s1, s2 := f.start(a, t1.ID, "s", "d1", 201), f.start(a, t2.ID, "s", "d2", 201)
	progress := map[string]any{"percentDone": 0.4, "totalFiles": 100, "filesDone": 40, "totalBytes": 1000, "bytesDone": 400, "secondsLeft": 30, "currentFiles": []string{"/srv/a"}}

	res := h.call("POST", "/v1/agent/tasks/"+t1.ID+"/progress", a.Credential, map[string]any{"runId": s1.RunID, "progress": progress})

	statusIs(t, 200, res, "progress")
	assert.JSONEq(t, `{"cancelRequested":false}`, res.Body)
	assert.Equal(t, &domain.Progress{PercentDone: 0.4, TotalFiles: 100, FilesDone: 40, TotalBytes: 1000, BytesDone: 400, SecondsLeft: 30, CurrentFiles: []string{"/srv/a"}}, f.run(s1.RunID).Progress)

	// The run of another task of the same agent is not this task's run.
	res = h.call("POST", "/v1/agent/tasks/"+t1.ID+"/progress", a.Credential, map[string]any{"runId": s2.RunID, "progress": progress})
	statusIs(t, 404, res, "another task's run")
	assert.Nil(t, f.run(s2.RunID).Progress)

	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"percent above one", map[string]any{"runId": s1.RunID, "progress": map[string]any{"percentDone": 1.5}}, "progress.percentDone"},
		{"negative percent", map[string]any{"runId": s1.RunID, "progress": map[string]any{"percentDone": -0.1}}, "progress.percentDone"},
		{"too many current files", map[string]any{"runId": s1.RunID, "progress": map[string]any{"currentFiles": make([]string, 21)}}, "progress.currentFiles"},
		{"no run", map[string]any{"progress": map[string]any{}}, "runId"},
		{"run not an ID", map[string]any{"runId": "r1", "progress": map[string]any{}}, "runId"},
	}
	for _, tc := range cases {
		res := h.call("POST", "/v1/agent/tasks/"+t1.ID+"/progress", a.Credential, tc.body)
		statusIs(t, 422, res, tc.name)
		assert.Contains(t, res.ErrorFields(t), tc.field, tc.name)
	}
	res = h.call("POST", "/v1/agent/tasks/"+t1.ID+"/progress", a.Credential, `{"runId":"`+s1.RunID+`","progress":{"filesDone":"many"}}`)
	statusIs(t, 400, res, "wrong type")
	assert.Contains(t, res.ErrorFields(t), "progress.filesDone")

	f.result(a, t1.ID, map[string]any{"runId": s1.RunID, "outcome": "succeeded"}, 200)
	res = h.call("POST", "/v1/agent/tasks/"+t1.ID+"/progress", a.Credential, map[string]any{"runId": s1.RunID, "progress": progress})
	statusIs(t, 409, res, "progress after the result")
	assert.Equal(t, "run_finished", errorCode(t, res))
}

// An operator cancels a running task: the agent learns it from its next progress report (and
// heartbeat), stops restic and reports the run cancelled; the task stays cancelled and its
// message, should it come again, is not run.
func TestOperatorCancellationReachesTheAgent(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)
	st := f.start(a, task.ID, "s", "d1", 201)
	_, err := h.store.TransitionTask(context.Background(), "acme", task.ID, domain.TaskCancelled, func(t *domain.Task) { t.Error = "cancelled by an operator" })
	require.NoError(t, err)

	res := h.call("POST", "/v1/agent/tasks/"+task.ID+"/progress", a.Credential, map[string]any{"runId": st.RunID, "progress": map[string]any{"percentDone": 0.7}})
	statusIs(t, 200, res, "progress of a cancelled task")
	assert.JSONEq(t, `{"cancelRequested":true}`, res.Body)

	out := f.result(a, task.ID, map[string]any{"runId": st.RunID, "outcome": "cancelled", "exitCode": 130}, 200)

	assert.Equal(t, resultAnswer{TaskStatus: domain.TaskCancelled, RunStatus: domain.TaskCancelled, Attempt: 1}, out)
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskCancelled, got.Status)
	assert.Equal(t, "cancelled by an operator", got.Error)
	require.Len(t, got.Attempts, 1)
	assert.Equal(t, domain.TaskCancelled, got.Attempts[0].Status)
	run := f.run(st.RunID)
	assert.Equal(t, domain.TaskCancelled, run.Status)
	require.NotNil(t, run.ExitCode)
	assert.Equal(t, 130, *run.ExitCode)

	res = h.call("POST", "/v1/agent/tasks/"+task.ID+"/start", a.Credential, map[string]any{"agentSession": "s2", "deliveryId": "d1/2"})
	statusIs(t, 409, res, "the cancelled task's message again")
	assert.Equal(t, "task_finished", errorCode(t, res))
}

// The agent shuts down mid-run: it reports the run cancelled and lets the message return to the
// queue. The run is interrupted, the task queued again, and its next start is a new attempt that
// does not count against the task's retries.
func TestShutdownQueuesTheTaskAgain(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID, func(t *domain.Task) { t.MaxRetries = 1 })
	first := f.start(a, task.ID, "s1", "m/1", 201)

	body := map[string]any{"runId": first.RunID, "outcome": "cancelled", "exitCode": 130}
	out := f.result(a, task.ID, body, 200)

	assert.Equal(t, resultAnswer{TaskStatus: domain.TaskQueued, RunStatus: domain.RunInterrupted, Attempt: 1}, out)
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskQueued, got.Status)
	require.Len(t, got.Attempts, 1)
	assert.Equal(t, domain.RunInterrupted, got.Attempts[0].Status)
	assert.Equal(t, domain.RunInterrupted, f.run(first.RunID).Status)
	again := f.result(a, task.ID, body, 200)
	assert.True(t, again.Repeated, "the same result twice is fine")

	h.clock = h.clock.Add(time.Minute)
	second := f.start(a, task.ID, "s2", "m/2", 201)
	assert.Equal(t, 2, second.Attempt)
	assert.Empty(t, second.InterruptedRunID, "the first run had already ended")

	// One failure so far: with one retry allowed, the task is tried again.
	failed := f.result(a, task.ID, map[string]any{"runId": second.RunID, "outcome": "failed", "error": "connection reset", "retryable": true}, 200)
	assert.Equal(t, domain.TaskRetrying, failed.TaskStatus, "an interrupted attempt must not use up a retry")
}
