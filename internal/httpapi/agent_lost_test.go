package httpapi_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// These tests give a running task up as lost with the real scheduler's tick, and then let its
// agent — back after all — report through the agent API.

// lostEvents collects the task.lost events a tick emits.
type lostEvents struct {
	mu   sync.Mutex
	lost []events.TaskLostData
}

func (l *lostEvents) Emit(_ context.Context, evs []events.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range evs {
		if _, err := ev.Encode(); err != nil {
			return err
		}
		if d, ok := ev.Data.(events.TaskLostData); ok {
			l.lost = append(l.lost, d)
		}
	}
	return nil
}

func (l *lostEvents) of(taskID string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, d := range l.lost {
		if d.TaskID == taskID {
			n++
		}
	}
	return n
}

// offlineGrace is the scheduler's in these tests.
const offlineGrace = 30 * time.Minute

// tick runs a scheduler tick at the harness's time against st (the harness's store, or one that
// wraps it).
func (h *harness) tick(st scheduler.Store, emitted *lostEvents) scheduler.Summary {
	h.t.Helper()
	s := &scheduler.Scheduler{Store: st, Sender: h.deps.Dispatcher, Emitter: emitted, Config: scheduler.Config{OfflineGrace: offlineGrace}}
	sum, err := s.Tick(context.Background(), h.clock)
	require.NoError(h.t, err)
	require.Zero(h.t, sum.Errors)
	return sum
}

// silentBackup is a policy's backup that host a started and listed in one heartbeat, after
// which the host fell silent until the scheduler took it offline. It returns the task, the
// run and the policy.
func (f *agentFixture) silentBackup(a host) (domain.Task, started, string) {
	h := f.h
	ctx := context.Background()
	policyID := domain.NewID(h.clock)
	next := h.clock.Add(24 * time.Hour)
	task := f.queuedTask(a.ID, func(t *domain.Task) { t.PolicyID, t.Trigger = policyID, "schedule" })
	require.NoError(h.t, h.store.PutSlot(ctx, f.tenant, domain.Slot{PolicyID: policyID, AgentID: a.ID, Kind: domain.SlotBackup, NextRunAt: &next, LastTaskID: task.ID}))
	st := f.start(a, task.ID, "s1", "m/1", 201)
	h.clock = h.clock.Add(time.Minute)
	res := h.call("POST", "/v1/agent/heartbeat", a.Credential, map[string]any{
		"runningTasks": []map[string]any{{"taskId": task.ID, "runId": st.RunID, "progress": map[string]any{"percentDone": 0.2}}},
	})
	statusIs(h.t, 200, res, "heartbeat")
	return task, st, policyID
}

// takeOffline moves the clock past the agent's silence and lets a tick mark it offline.
func (h *harness) takeOffline(emitted *lostEvents, agentID, tenant string) time.Time {
	h.t.Helper()
	h.clock = h.clock.Add(4 * time.Minute)
	require.Equal(h.t, 1, h.tick(h.store, emitted).Offline)
	a, err := h.store.GetAgent(context.Background(), tenant, agentID)
	require.NoError(h.t, err)
	return *a.OfflineSince
}

var lateSummary = map[string]any{"snapshotId": "9f8e7d6c5b4a3921", "filesNew": 12, "dataAdded": 1 << 20, "totalFilesProcessed": 40, "durationSeconds": 2400}

// An agent back after its task was given up as lost: its heartbeat and progress are taken
// (it may go on), its result is recorded on the run with the snapshot it made and moves the
// slot's last success, and the task stays failed, announced once.
func TestLateResultOfALostTaskIsRecordedOnItsRunOnly(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("web-1")
	emitted := &lostEvents{}
	task, st, policyID := f.silentBackup(a)
	offlineSince := h.takeOffline(emitted, a.ID, "acme")

	h.clock = offlineSince.Add(offlineGrace)
	sum := h.tick(h.store, emitted)
	require.Equal(t, 1, sum.TasksLost)
	failed := f.task(task.ID)
	require.Equal(t, domain.TaskFailed, failed.Status)
	require.Contains(t, failed.Error, "agent lost: offline since")
	lostAt := h.clock
	slot, err := h.store.GetSlot(context.Background(), "acme", policyID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	require.Equal(t, lostAt, *slot.NextRunAt, "the slot is due again")

	// The host comes back, still running restic.
	h.clock = h.clock.Add(10 * time.Minute)
	res := h.call("POST", "/v1/agent/heartbeat", a.Credential, map[string]any{
		"runningTasks": []map[string]any{{"taskId": task.ID, "runId": st.RunID, "progress": map[string]any{"percentDone": 0.9}}},
	})
	statusIs(t, 200, res, "heartbeat of the returning agent")
	var hb heartbeatAnswer
	res.JSON(t, &hb)
	assert.Empty(t, hb.CancelledTasks, "the run is not stopped: it may still make its snapshot")
	res = h.call("POST", "/v1/agent/tasks/"+task.ID+"/progress", a.Credential, map[string]any{"runId": st.RunID, "progress": map[string]any{"percentDone": 0.95}})
	statusIs(t, 200, res, "progress of the lost run")
	assert.JSONEq(t, `{"cancelRequested": false}`, res.Body)

	h.clock = h.clock.Add(5 * time.Minute)
	exit := 0
	body := map[string]any{"runId": st.RunID, "outcome": "succeeded", "exitCode": exit, "summary": lateSummary}
	out := f.result(a, task.ID, body, 200)
	assert.Equal(t, resultAnswer{TaskStatus: domain.TaskFailed, RunStatus: domain.TaskSucceeded, Attempt: 1}, out,
		"the agent learns the task is over, so it deletes the message")

	assert.Equal(t, failed, f.task(task.ID), "the task is not resurrected, nor written at all")
	run := f.run(st.RunID)
	assert.Equal(t, domain.TaskSucceeded, run.Status)
	require.NotNil(t, run.Summary)
	assert.Equal(t, "9f8e7d6c5b4a3921", run.Summary.SnapshotID)
	assert.Equal(t, h.clock, *run.FinishedAt)
	assert.Equal(t, lostAt, *run.LostAt, "it stays marked as given up")
	assert.Equal(t, 0.95, run.Progress.PercentDone)
	slot, err = h.store.GetSlot(context.Background(), "acme", policyID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	require.NotNil(t, slot.LastSuccessAt, "the snapshot exists: the slot succeeded")
	assert.Equal(t, h.clock, *slot.LastSuccessAt)

	// Delivered again by the spool: the same answer; another outcome: refused.
	again := f.result(a, task.ID, body, 200)
	assert.True(t, again.Repeated)
	res = h.call("POST", "/v1/agent/tasks/"+task.ID+"/result", a.Credential, map[string]any{"runId": st.RunID, "outcome": "failed", "error": "x"})
	statusIs(t, 409, res, "another outcome")
	assert.Equal(t, "result_conflict", errorCode(t, res))

	h.clock = h.clock.Add(time.Minute)
	sum = h.tick(h.store, emitted)
	assert.Zero(t, sum.TasksLost)
	assert.Equal(t, 1, emitted.of(task.ID), "announced once")
	assert.Equal(t, domain.TaskFailed, f.task(task.ID).Status)
}

// A cancelled outcome from the returning agent (it shut down) is the interruption the lost run
// records already: answered as a repeat, the task stays failed.
func TestLostTaskAbsorbsALateCancellation(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("web-1")
	emitted := &lostEvents{}
	task, st, _ := f.silentBackup(a)
	h.clock = h.takeOffline(emitted, a.ID, "acme").Add(offlineGrace)
	require.Equal(t, 1, h.tick(h.store, emitted).TasksLost)

	out := f.result(a, task.ID, map[string]any{"runId": st.RunID, "outcome": "cancelled"}, 200)
	assert.True(t, out.Repeated)
	assert.Equal(t, domain.TaskFailed, out.TaskStatus)
	assert.Equal(t, domain.RunInterrupted, f.run(st.RunID).Status)
}

// interleaved runs between, once, right after the tick decided about a task and before it
// writes the decision: what lands there is what a concurrent request would have written.
type interleaved struct {
	*store.Store
	once    sync.Once
	between func()
}

func (s *interleaved) UpdateTaskRun(ctx context.Context, tenantID, taskID, runID string, decide func(domain.Task, *domain.Run) (store.TaskRunChange, error)) (store.TaskRunChange, error) {
	return s.Store.UpdateTaskRun(ctx, tenantID, taskID, runID, func(t domain.Task, r *domain.Run) (store.TaskRunChange, error) {
		ch, err := decide(t, r)
		s.once.Do(s.between)
		return ch, err
	})
}

// The agent's result lands between the tick's decision that the task is lost and its write:
// the write fails on the task's revision, the tick decides again, and the result stands — no
// loss, no event, no second run of the slot.
func TestResultThatLandsWhileTheTickGivesTheTaskUpWins(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("web-1")
	emitted := &lostEvents{}
	task, st, policyID := f.silentBackup(a)
	h.clock = h.takeOffline(emitted, a.ID, "acme").Add(offlineGrace)

	var answer response
	racing := &interleaved{Store: h.store, between: func() {
		answer = h.call("POST", "/v1/agent/tasks/"+task.ID+"/result", a.Credential,
			map[string]any{"runId": st.RunID, "outcome": "succeeded", "exitCode": 0, "summary": lateSummary})
	}}
	sum := h.tick(racing, emitted)

	statusIs(t, 200, answer, "the result")
	assert.Zero(t, sum.TasksLost)
	assert.Zero(t, emitted.of(task.ID))
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskSucceeded, got.Status)
	assert.Empty(t, got.Error)
	run := f.run(st.RunID)
	assert.Equal(t, domain.TaskSucceeded, run.Status)
	assert.Nil(t, run.LostAt)
	slot, err := h.store.GetSlot(context.Background(), "acme", policyID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.Equal(t, h.clock.Add(24*time.Hour-35*time.Minute), *slot.NextRunAt, "the slot keeps its next run")
	require.NotNil(t, slot.LastSuccessAt)
}

// Results and the tick that gives their tasks up, run at the same time: whichever wins each
// task, the run ends with its real outcome once, and the task is either succeeded or failed
// with exactly one task.lost — never both, never neither.
func TestConcurrentResultsAndLossesAreEachCountedOnce(t *testing.T) {
	h := newHarness(t)
	emitted := &lostEvents{}
	type running struct {
		a      host
		f      *agentFixture
		task   domain.Task
		st     started
		policy string
	}
	f := newAgentFixture(h, "acme")
	var all []running
	for i := range 6 {
		a := f.enroll("web-" + string(rune('a'+i)))
		task, st, policy := f.silentBackup(a)
		all = append(all, running{a: a, f: f, task: task, st: st, policy: policy})
	}
	h.clock = h.clock.Add(4 * time.Minute)
	require.Equal(t, len(all), h.tick(h.store, emitted).Offline)
	h.clock = h.clock.Add(offlineGrace)

	// The results set off when the tick takes its first decision about one of the tasks, so
	// they meet the tick's writes rather than run before it has read the due index.
	gate := make(chan struct{})
	var open sync.Once
	racing := &interleaved{Store: h.store, between: func() { open.Do(func() { close(gate) }) }}
	var wg sync.WaitGroup
	answers := make([]response, len(all))
	var sum scheduler.Summary
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer open.Do(func() { close(gate) })
		s := &scheduler.Scheduler{Store: racing, Sender: h.deps.Dispatcher, Emitter: emitted, Config: scheduler.Config{OfflineGrace: offlineGrace}}
		var err error
		sum, err = s.Tick(context.Background(), h.clock)
		assert.NoError(t, err)
	}()
	for i, r := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			answers[i] = h.call("POST", "/v1/agent/tasks/"+r.task.ID+"/result", r.a.Credential,
				map[string]any{"runId": r.st.RunID, "outcome": "succeeded", "exitCode": 0, "summary": lateSummary})
		}()
	}
	wg.Wait()

	lost := 0
	for i, r := range all {
		statusIs(t, 200, answers[i], "result ", i)
		run := f.run(r.st.RunID)
		assert.Equal(t, domain.TaskSucceeded, run.Status, "task %d: the run records its real outcome", i)
		assert.Equal(t, "9f8e7d6c5b4a3921", run.Summary.SnapshotID, "task %d", i)
		got := f.task(r.task.ID)
		slot, err := h.store.GetSlot(context.Background(), "acme", r.policy, r.a.ID, domain.SlotBackup)
		require.NoError(t, err)
		require.NotNil(t, slot.LastSuccessAt, "task %d: the success counts for the slot either way", i)
		switch got.Status {
		case domain.TaskSucceeded:
			assert.Zero(t, emitted.of(r.task.ID), "task %d succeeded: not announced lost", i)
			assert.Nil(t, run.LostAt, "task %d", i)
			assert.True(t, slot.NextRunAt.After(h.clock), "task %d: no second run", i)
		case domain.TaskFailed:
			lost++
			assert.Equal(t, 1, emitted.of(r.task.ID), "task %d lost: announced once", i)
			assert.NotNil(t, run.LostAt, "task %d", i)
			assert.Equal(t, h.clock, *slot.NextRunAt, "task %d: its slot runs again", i)
		default:
			t.Errorf("task %d: got status %s, want succeeded or failed", i, got.Status)
		}
	}
	assert.Equal(t, lost, sum.TasksLost, "the tick counts what it wrote")
	t.Logf("of %d results racing the tick, %d landed first and %d after the task was given up", len(all), len(all)-lost, lost)
}
