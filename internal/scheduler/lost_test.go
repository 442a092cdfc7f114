package scheduler_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/reporting"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// host reports for one agent as the agent API does (package reporting), on the fixture's clock.
type host struct {
	f   *fixture
	a   domain.Agent
	api *reporting.Service
	c   reporting.Caller
}

func (f *fixture) host(a domain.Agent) *host {
	return &host{f: f, a: a, c: reporting.Caller{TenantID: f.tenant, AgentID: a.ID},
		api: &reporting.Service{Store: f.st, Now: f.clock.Now, Settings: reporting.Settings{HeartbeatInterval: time.Minute}}}
}

// start starts the task at now, as the agent does when its message arrives.
func (h *host) start(now time.Time, taskID string) domain.Run {
	h.f.t.Helper()
	return h.startFrom(now, taskID, "session-1", "m/1")
}

// startFrom starts the task at now from one agent process and one delivery of its message.
func (h *host) startFrom(now time.Time, taskID, session, delivery string) domain.Run {
	h.f.t.Helper()
	h.f.clock.Set(now)
	st, err := h.api.Start(h.f.ctx, h.c, taskID, reporting.StartRequest{AgentSession: session, DeliveryID: delivery})
	require.NoError(h.f.t, err)
	return st.Run
}

// beat sends a heartbeat at now that lists the given runs as running.
func (h *host) beat(now time.Time, running ...domain.Run) {
	h.f.t.Helper()
	h.f.clock.Set(now)
	hb := reporting.Heartbeat{AgentVersion: "1.0.0"}
	for _, r := range running {
		hb.RunningTasks = append(hb.RunningTasks, reporting.RunningTask{TaskID: r.TaskID, RunID: r.ID,
			Progress: &domain.Progress{PercentDone: 0.5, FilesDone: 10, TotalFiles: 20}})
	}
	_, err := h.api.Heartbeat(h.f.ctx, h.c, hb)
	require.NoError(h.f.t, err)
}

// lostEvents keeps the task.lost events of evs.
func lostEvents(evs []events.Event) []events.TaskLostData {
	var out []events.TaskLostData
	for _, ev := range only(evs, events.TypeTaskLost) {
		out = append(out, ev.Data.(events.TaskLostData))
	}
	return out
}

// runningBackup dispatches the backup of a fresh hourly policy on a fresh agent at base and
// starts it ten seconds later; the agent beats every minute.
func (f *fixture) runningBackup() (*host, domain.Policy, domain.Task, domain.Run) {
	f.t.Helper()
	a := f.agent(func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 60 })
	p := f.policy(nil)
	f.assign(p, a, base)
	require.Equal(f.t, 1, f.tick(base).Dispatched)
	tasks := f.tasks(a)
	require.Len(f.t, tasks, 1)
	require.Len(f.t, f.messages(a), 1)
	h := f.host(a)
	run := h.start(base.Add(10*time.Second), tasks[0].ID)
	return h, p, f.task(tasks[0].ID), run
}

// A host destroyed mid-backup: its agent goes silent, is marked offline, and once it has been
// offline for the scheduler's grace, a tick fails the task as lost — once, with one event — and
// makes its slot due again, so the backup is dispatched anew when the agent is back.
func TestTaskOfAnAgentOfflinePastTheGraceIsLostAndItsSlotDueAgain(t *testing.T) {
	f := newFixture(t)
	f.config.OfflineGrace = 30 * time.Minute
	h, p, task, run := f.runningBackup()
	require.NotNil(t, task.CheckRunningAt, "the start sets when the scheduler first looks")
	assert.Equal(t, base.Add(10*time.Second+3*time.Minute), *task.CheckRunningAt, "three heartbeat intervals after the start")
	h.beat(base.Add(time.Minute), run)
	h.beat(base.Add(2*time.Minute), run)
	// The host is gone: nothing more from it.

	var evs []events.Event
	for _, at := range []time.Duration{4 * time.Minute, 6 * time.Minute, 20 * time.Minute, 35*time.Minute + 59*time.Second} {
		sum := f.tick(base.Add(at))
		assert.Zero(t, sum.TasksLost, "at +%s", at)
		evs = append(evs, f.events.take()...)
		assert.Equal(t, domain.TaskRunning, f.task(task.ID).Status, "at +%s: offline for less than the grace", at)
	}
	require.Equal(t, []events.EventType{events.TypeAgentOffline}, eventTypes(evs), "the agent went offline at +6m")
	agent, err := f.st.GetAgent(f.ctx, f.tenant, h.a.ID)
	require.NoError(t, err)
	require.Equal(t, base.Add(6*time.Minute), *agent.OfflineSince)

	lostAt := base.Add(36 * time.Minute)
	sum := f.tick(lostAt)
	assert.Equal(t, 1, sum.TasksLost)
	assert.Equal(t, 1, sum.Failed, "a lost task is a failed one")

	got := f.task(task.ID)
	assert.Equal(t, domain.TaskFailed, got.Status)
	assert.Equal(t, "agent lost: offline since 2037-05-04T02:06:00Z, more than 30m0s, while running the task; last listed at 2037-05-04T02:02:00Z", got.Error)
	assert.Equal(t, lostAt, *got.FinishedAt)
	assert.Nil(t, got.CheckRunningAt)
	require.Len(t, got.Attempts, 1)
	assert.Equal(t, domain.RunInterrupted, got.Attempts[0].Status, "nobody knows how the run ended")
	assert.Equal(t, got.Error, got.Attempts[0].Error)
	r, err := f.st.GetRun(f.ctx, f.tenant, run.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.RunInterrupted, r.Status)
	assert.Equal(t, lostAt, *r.LostAt)
	assert.Equal(t, lostAt, *r.FinishedAt)
	assert.Equal(t, base.Add(2*time.Minute), *r.LastListedAt)

	lost := lostEvents(f.events.take())
	require.Len(t, lost, 1, "exactly one event")
	assert.Equal(t, events.TaskLostData{TaskID: task.ID, AgentID: h.a.ID, PolicyID: p.ID, TaskType: domain.TaskBackup, Repository: "main",
		Attempts: 1, RunID: run.ID, Reason: events.LostAgentOffline, LastListedAt: base.Add(2 * time.Minute), Error: got.Error}, lost[0])

	sl := f.slot(p, h.a, domain.SlotBackup)
	assert.Equal(t, lostAt, *sl.NextRunAt, "due again at once, not at its next hour")
	active, err := f.st.ListActiveTasks(f.ctx, f.tenant, h.a.ID)
	require.NoError(t, err)
	assert.Empty(t, active, "the lost task no longer holds the agent")

	// While the agent stays offline the slot waits, and nothing is announced again.
	sum = f.tick(lostAt.Add(time.Minute))
	assert.Zero(t, sum.Dispatched)
	assert.Equal(t, 1, sum.Waiting["offline"])
	assert.Empty(t, lostEvents(f.events.take()))
	assert.Equal(t, "agent offline", f.slot(p, h.a, domain.SlotBackup).WaitReason)

	// The agent is back (a new host with the same identity): the backup goes out again.
	back := lostAt.Add(14 * time.Minute)
	h.beat(back)
	sum = f.tick(back.Add(time.Second))
	assert.Equal(t, 1, sum.Online)
	assert.Equal(t, 1, sum.Claimed)
	assert.Equal(t, 1, sum.Dispatched)
	tasks := f.tasks(h.a)
	require.Len(t, tasks, 2)
	assert.Equal(t, task.ID, tasks[0].ID)
	assert.Equal(t, domain.TaskQueued, tasks[1].Status)
	assert.Equal(t, p.ID, tasks[1].PolicyID)
	msgs := f.messages(h.a)
	require.Len(t, msgs, 1)
	assert.Equal(t, tasks[1].ID, msgs[0].TaskID)
	sl = f.slot(p, h.a, domain.SlotBackup)
	assert.Equal(t, tasks[1].ID, sl.LastTaskID)
	assert.Equal(t, base.Add(time.Hour), *sl.NextRunAt, "then back on its schedule")
	assert.Empty(t, lostEvents(f.events.take()))
}

// beatFrom sends a heartbeat every minute from from to to (inclusive), listing running.
func (h *host) beatFrom(from, to time.Duration, running ...domain.Run) {
	h.f.t.Helper()
	for at := from; at <= to; at += time.Minute {
		h.beat(base.Add(at), running...)
	}
}

// leftOut runs a backup whose agent lists it in two heartbeats and then beats on without it,
// until a tick records that the heartbeats leave it out (at +6m).
func (f *fixture) leftOut() (*host, domain.Policy, domain.Task, domain.Run) {
	f.t.Helper()
	h, p, task, run := f.runningBackup()
	h.beatFrom(time.Minute, 2*time.Minute, run)
	h.beatFrom(3*time.Minute, 4*time.Minute)

	sum := f.tick(base.Add(4*time.Minute + time.Second))
	assert.Zero(f.t, sum.TasksLost, "two heartbeats without it are within the grace")
	got := f.task(task.ID)
	assert.Equal(f.t, domain.TaskRunning, got.Status)
	assert.Equal(f.t, base.Add(6*time.Minute), *got.CheckRunningAt, "looked at again one heartbeat after the grace ends")

	h.beatFrom(5*time.Minute, 6*time.Minute) // the first at the very end of the grace
	sum = f.tick(base.Add(6*time.Minute + time.Second))
	assert.Zero(f.t, sum.TasksLost, "left out, but the agent may yet get the message back")
	got = f.task(task.ID)
	assert.Equal(f.t, domain.TaskRunning, got.Status)
	assert.Equal(f.t, base.Add(12*time.Minute), *got.CheckRunningAt, "one heartbeat after the redelivery window")
	r, err := f.st.GetRun(f.ctx, f.tenant, run.ID)
	require.NoError(f.t, err)
	require.NotNil(f.t, r.UnlistedAt)
	assert.Equal(f.t, base.Add(6*time.Minute), *r.UnlistedAt, "the heartbeat that left it out")
	return h, p, task, run
}

// An agent that keeps beating but whose heartbeats no longer list a task it ran (it dropped
// it) loses the task: not at the first heartbeats that leave it out (three intervals of
// grace), nor while a restarted agent could still get the message back (the redelivery
// window), but at the first heartbeat after both.
func TestTaskALiveAgentStopsListingIsLostAfterTheGraceNotBefore(t *testing.T) {
	f := newFixture(t)
	h, p, task, _ := f.leftOut()
	h.beatFrom(7*time.Minute, 11*time.Minute)
	assert.Zero(t, f.tick(base.Add(11*time.Minute+time.Second)).TasksLost, "within the window")
	assert.Equal(t, domain.TaskRunning, f.task(task.ID).Status)

	h.beat(base.Add(12 * time.Minute))
	lostAt := base.Add(12*time.Minute + time.Second)
	sum := f.tick(lostAt)
	assert.Equal(t, 1, sum.TasksLost)
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskFailed, got.Status)
	assert.Equal(t, "agent lost: its heartbeats stopped listing the task: last listed at 2037-05-04T02:02:00Z, "+
		"left out since 2037-05-04T02:06:00Z, last heartbeat at 2037-05-04T02:12:00Z", got.Error)
	lost := lostEvents(f.events.take())
	require.Len(t, lost, 1)
	assert.Equal(t, events.LostNotListed, lost[0].Reason)
	assert.Equal(t, lostAt, *f.slot(p, h.a, domain.SlotBackup).NextRunAt)

	// The agent is online: the next tick runs the backup again.
	sum = f.tick(lostAt.Add(time.Minute))
	assert.Equal(t, 1, sum.Dispatched)
	assert.Len(t, f.tasks(h.a), 2)
}

// An agent that crashed and came back without the task gets its message again once the queue's
// visibility timeout has passed, and starts the task anew: the task goes on, never lost.
func TestRestartedAgentThatStartsTheTaskAgainKeepsIt(t *testing.T) {
	f := newFixture(t)
	h, _, task, first := f.leftOut()
	second := h.startFrom(base.Add(9*time.Minute), task.ID, "session-2", "m/2")
	require.NotEqual(t, first.ID, second.ID)
	h.beatFrom(10*time.Minute, 20*time.Minute, second)
	for _, at := range []time.Duration{12 * time.Minute, 16 * time.Minute, 20 * time.Minute} {
		assert.Zero(t, f.tick(base.Add(at+time.Second)).TasksLost, "at +%s", at)
	}
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskRunning, got.Status)
	assert.Equal(t, second.ID, got.RunID)
	require.Len(t, got.Attempts, 2)
	assert.Equal(t, domain.RunInterrupted, got.Attempts[0].Status, "the crashed process's run")
	assert.Equal(t, domain.TaskRunning, got.Attempts[1].Status)
	assert.Empty(t, lostEvents(f.events.take()))
}

// Heartbeats that list the task, however irregular within the grace, keep it running; the
// scheduler looks at it once every few heartbeats, not at every one.
func TestHeartbeatsThatListATaskKeepItRunning(t *testing.T) {
	f := newFixture(t)
	h, _, task, run := f.runningBackup()
	checks := map[time.Time]bool{}
	at := base.Add(10 * time.Second)
	for minute := 1; minute <= 60; minute++ {
		now := base.Add(time.Duration(minute) * time.Minute)
		// Every third heartbeat is 50 seconds late, and one in five leaves the task out (a
		// heartbeat built just before a status change, say).
		beat := now
		if minute%3 == 0 {
			beat = beat.Add(50 * time.Second)
		}
		if minute%5 == 0 {
			h.beat(beat)
		} else {
			h.beat(beat, run)
		}
		at = beat.Add(time.Second)
		sum := f.tick(at)
		require.Zero(t, sum.TasksLost, "minute %d", minute)
		checks[*f.task(task.ID).CheckRunningAt] = true
	}
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskRunning, got.Status)
	assert.True(t, got.CheckRunningAt.After(at), "always looked at again later")
	assert.Empty(t, lostEvents(f.events.take()))
	t.Logf("one running task over an hour of one-minute heartbeats: the scheduler moved its check %d times", len(checks)-1)
	assert.Less(t, len(checks), 30, "the check moves every few heartbeats, not at each")
}

// A task whose agent was deleted while it ran is lost at the next look, and its slot, gone with
// the agent, is left alone.
func TestTaskOfADeletedAgentIsLost(t *testing.T) {
	f := newFixture(t)
	h, _, task, _ := f.runningBackup()
	require.NoError(t, f.st.DeleteAgent(f.ctx, f.tenant, h.a.ID))
	sum := f.tick(base.Add(4 * time.Minute))
	assert.Equal(t, 1, sum.TasksLost)
	got := f.task(task.ID)
	assert.Equal(t, domain.TaskFailed, got.Status)
	assert.Contains(t, got.Error, "the agent was deleted")
	lost := lostEvents(f.events.take())
	require.Len(t, lost, 1)
	assert.Equal(t, events.LostAgentDeleted, lost[0].Reason)
	assert.Empty(t, dueTasks(t, f, base.Add(24*time.Hour)), "the task is not looked at again")
}

// dueTasks lists the tasks in the due index at now.
func dueTasks(t *testing.T, f *fixture, now time.Time) []domain.Task {
	t.Helper()
	var tasks []domain.Task
	for shard := range resources.DueShards {
		due, _, err := f.st.QueryDue(f.ctx, shard, now, store.Page{Limit: 100})
		require.NoError(t, err)
		for _, d := range due {
			if d.Task != nil {
				tasks = append(tasks, *d.Task)
			}
		}
	}
	return tasks
}
