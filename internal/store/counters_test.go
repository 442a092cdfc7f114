package store_test

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// counts reads a tenant's counters as the overview does at the fixture's present.
func (f *fixture) counts(tenant string) store.Counts {
	f.t.Helper()
	c, err := f.st.Counts(f.ctx, tenant, store.RunWindowStart(f.now))
	require.NoError(f.t, err)
	return c
}

// recountAgrees rebuilds a tenant's counters from its items and checks that they said what the
// writes had counted.
func (f *fixture) recountAgrees(tenant string) store.Counts {
	f.t.Helper()
	kept := f.counts(tenant)
	recounted, err := f.st.Recount(f.ctx, tenant)
	require.NoError(f.t, err)
	assert.Equal(f.t, recounted, kept, "the counters the writes kept (got) against a recount of the items (want)")
	assert.Equal(f.t, recounted, f.counts(tenant), "the counters after the recount")
	return kept
}

func agents(online, offline, backingOff int64) store.AgentCounts {
	return store.AgentCounts{Online: online, Offline: offline, BackingOff: backingOff}
}

func TestCountersFollowAgents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	other := f.tenant("beta")
	assert.Equal(t, store.Counts{RunsSince: store.RunWindowStart(f.now)}, f.counts(tenant), "a new tenant counts nothing")

	a := f.agent(tenant)
	b := f.agent(tenant)
	f.agent(tenant, offline)
	f.agent(other)
	assert.Equal(t, agents(2, 1, 0), f.counts(tenant).Agents, "registered")
	assert.Equal(t, int64(3), f.counts(tenant).Agents.Total())
	assert.Equal(t, agents(1, 0, 0), f.counts(other).Agents, "the other tenant's agent")

	until := f.now.Add(time.Hour)
	backingOff, err := f.st.ModifyAgent(f.ctx, tenant, b.ID, func(a *domain.Agent) error { a.BackoffUntil = &until; return nil })
	require.NoError(t, err)
	assert.Equal(t, agents(2, 1, 1), f.counts(tenant).Agents, "b backs off")
	_, err = f.st.ModifyAgent(f.ctx, tenant, b.ID, func(a *domain.Agent) error { a.Labels = map[string]string{"env": "prod"}; return nil })
	require.NoError(t, err)
	assert.Equal(t, agents(2, 1, 1), f.counts(tenant).Agents, "a change that is not counted")

	changed, err := f.st.SetAgentOffline(f.ctx, backingOff, f.now)
	require.NoError(t, err)
	assert.False(t, changed, "read before its labels changed")
	current, err := f.st.GetAgent(f.ctx, tenant, b.ID)
	require.NoError(t, err)
	changed, err = f.st.SetAgentOffline(f.ctx, current, f.now)
	require.NoError(t, err)
	require.True(t, changed)
	assert.Equal(t, agents(1, 2, 0), f.counts(tenant).Agents, "an agent offline no longer counts as backing off")
	changed, err = f.st.SetAgentOffline(f.ctx, current, f.now)
	require.NoError(t, err)
	assert.False(t, changed, "a second scheduler")
	assert.Equal(t, agents(1, 2, 0), f.counts(tenant).Agents)

	// A heartbeat brings it back online with its backoff reported again.
	_, err = f.st.ModifyAgent(f.ctx, tenant, b.ID, func(a *domain.Agent) error { a.Status = domain.AgentOnline; return nil })
	require.NoError(t, err)
	assert.Equal(t, agents(2, 1, 1), f.counts(tenant).Agents, "back online, still backing off")
	_, err = f.st.ModifyAgent(f.ctx, tenant, b.ID, func(a *domain.Agent) error { a.BackoffUntil = nil; return nil })
	require.NoError(t, err)
	assert.Equal(t, agents(2, 1, 0), f.counts(tenant).Agents, "its backoff over")

	stale := a
	stale.Status = domain.AgentOffline
	stale.Version--
	_, err = f.st.UpdateAgent(f.ctx, tenant, stale)
	assert.ErrorIs(t, err, domain.ErrConflict)
	assert.Equal(t, agents(2, 1, 0), f.counts(tenant).Agents, "a write that lost counts nothing")

	require.NoError(t, f.st.DeleteAgent(f.ctx, tenant, a.ID))
	assert.Equal(t, agents(1, 1, 0), f.counts(tenant).Agents, "deleted")
	assert.ErrorIs(t, f.st.DeleteAgent(f.ctx, tenant, a.ID), domain.ErrNotFound)
	assert.Equal(t, agents(1, 1, 0), f.counts(tenant).Agents, "deleted once")
	f.recountAgrees(tenant)
	f.recountAgrees(other)
}

func TestCountersFollowRunsOfTheLastDay(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant)
	runs := func() store.RunCounts { return f.counts(tenant).Runs }

	tk := f.task(tenant, a.ID)
	r := f.run(tenant, tk)
	assert.Equal(t, store.RunCounts{Running: 1}, runs(), "started")
	_, err := f.st.UpdateRun(f.ctx, tenant, r.ID, func(r *domain.Run) error { r.Progress = &domain.Progress{PercentDone: 0.5}; return nil })
	require.NoError(t, err)
	assert.Equal(t, store.RunCounts{Running: 1}, runs(), "progress is not counted")
	_, err = f.st.UpdateRun(f.ctx, tenant, r.ID, func(r *domain.Run) error { r.Status = domain.TaskSucceeded; return nil })
	require.NoError(t, err)
	assert.Equal(t, store.RunCounts{Succeeded: 1}, runs(), "a run that ends moves from running to its outcome")

	// The agent's reports start and end runs together with their tasks.
	start := func(taskID string) domain.Run {
		ch, err := f.st.UpdateTaskRun(f.ctx, tenant, taskID, "", func(task domain.Task, prev *domain.Run) (store.TaskRunChange, error) {
			var ch store.TaskRunChange
			if prev != nil && prev.Status == domain.TaskRunning {
				old := *prev
				old.Status = domain.RunInterrupted
				ch.Run = &old
			}
			run := domain.Run{ID: f.id(), Type: task.Type, Attempt: 1, Status: domain.TaskRunning, StartedAt: f.now}
			task.Status, task.RunID = domain.TaskRunning, run.ID
			ch.Task, ch.NewRun = &task, &run
			return ch, nil
		})
		require.NoError(t, err)
		return *ch.NewRun
	}
	finish := func(taskID string, status domain.TaskStatus) {
		_, err := f.st.UpdateTaskRun(f.ctx, tenant, taskID, "", func(task domain.Task, run *domain.Run) (store.TaskRunChange, error) {
			r := *run
			r.Status = status
			task.Status = status
			return store.TaskRunChange{Task: &task, Run: &r}, nil
		})
		require.NoError(t, err)
	}
	var tasks []domain.Task
	for range 5 {
		tk := f.task(tenant, a.ID)
		tasks = append(tasks, tk)
		start(tk.ID)
	}
	assert.Equal(t, store.RunCounts{Succeeded: 1, Running: 5}, runs())
	finish(tasks[0].ID, domain.TaskSucceeded)
	finish(tasks[1].ID, domain.TaskPartial)
	finish(tasks[2].ID, domain.TaskFailed)
	finish(tasks[3].ID, domain.TaskCancelled)
	assert.Equal(t, store.RunCounts{Succeeded: 2, Partial: 1, Failed: 1, Other: 1, Running: 1}, runs())
	// Started again: its running run is interrupted (other) and a new one runs, in one write.
	start(tasks[4].ID)
	assert.Equal(t, store.RunCounts{Succeeded: 2, Partial: 1, Failed: 1, Other: 2, Running: 1}, runs())

	// Runs count by the hour they started in: the current hour and the 24 before it.
	first := f.now
	f.now = first.Add(24 * time.Hour)
	assert.Equal(t, store.RunCounts{Succeeded: 2, Partial: 1, Failed: 1, Other: 2, Running: 1}, runs(), "a day later, in the 24th hour back")
	later := f.run(tenant, f.task(tenant, a.ID))
	f.now = first.Add(25 * time.Hour)
	assert.Equal(t, store.RunCounts{Running: 1}, runs(), "a day and an hour later, only the later run")
	assert.Equal(t, store.RunWindowStart(f.now), f.counts(tenant).RunsSince)
	assert.Equal(t, first.Truncate(time.Hour).Add(time.Hour), f.counts(tenant).RunsSince)

	// A run that started before the window ends without being counted anywhere.
	f.now = first.Add(27 * time.Hour)
	finish(tasks[4].ID, domain.TaskSucceeded)
	_, err = f.st.UpdateRun(f.ctx, tenant, later.ID, func(r *domain.Run) error { r.Status = domain.TaskFailed; return nil })
	require.NoError(t, err)
	assert.Equal(t, store.RunCounts{Failed: 1}, runs())
	f.recountAgrees(tenant)
}

func TestCountersFollowOverdueSlots(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant)
	b := f.agent(tenant)
	p := f.policy(tenant, "nightly", "main-repo")
	q := f.policy(tenant, "hourly", "main-repo")
	next := ptr(f.now.Add(time.Hour))
	backup := []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: next}, {Kind: domain.SlotForget, NextRunAt: next}}
	require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, backup))
	require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, b.ID, backup))
	require.NoError(t, f.st.Assign(f.ctx, tenant, q.ID, a.ID, backup))
	overdue := func() int64 { return f.counts(tenant).OverdueSlots }
	listed := func(limit int) ([]string, bool) {
		slots, more, err := f.st.ListOverdueSlots(f.ctx, tenant, limit)
		require.NoError(t, err)
		names := []string{}
		for _, sl := range slots {
			names = append(names, sl.PolicyID+"/"+sl.AgentID)
		}
		return names, more
	}
	announce := func(policyID, agentID string) store.OverdueCheck {
		c := store.OverdueCheck{TenantID: tenant, PolicyID: policyID, AgentID: agentID, Kind: domain.SlotBackup, PlannedAt: f.now, CheckAt: f.now}
		require.NoError(t, f.st.WatchSlot(f.ctx, c))
		announced, err := f.st.AnnounceOverdue(f.ctx, c, nil, f.now.Add(time.Hour))
		require.NoError(t, err)
		require.True(t, announced)
		c.Announced = true
		return c
	}

	pa := announce(p.ID, a.ID)
	assert.Equal(t, int64(1), overdue())
	announced, err := f.st.AnnounceOverdue(f.ctx, store.OverdueCheck{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, PlannedAt: f.now}, nil, f.now)
	require.NoError(t, err)
	assert.False(t, announced)
	assert.Equal(t, int64(1), overdue(), "announced once")
	pb := announce(p.ID, b.ID)
	announce(q.ID, a.ID)
	assert.Equal(t, int64(3), overdue())
	// The list is by policy (IDs sort by creation), then agent.
	names, more := listed(10)
	assert.Equal(t, []string{p.ID + "/" + a.ID, p.ID + "/" + b.ID, q.ID + "/" + a.ID}, names)
	assert.False(t, more)
	names, more = listed(2)
	assert.Equal(t, []string{p.ID + "/" + a.ID, p.ID + "/" + b.ID}, names)
	assert.True(t, more, "a page of two of three")

	require.NoError(t, f.st.MarkSlotSucceeded(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup, f.now.Add(time.Minute)))
	assert.Equal(t, int64(2), overdue(), "a success ends the overdue state")
	require.NoError(t, f.st.MarkSlotSucceeded(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup, f.now.Add(2*time.Minute)))
	assert.Equal(t, int64(2), overdue(), "counted off once")
	ended, err := f.st.EndOverdueCheck(f.ctx, pa, true)
	require.NoError(t, err)
	assert.True(t, ended, "the recovery")
	assert.Equal(t, int64(2), overdue())
	// A check the scheduler ends without a success (its policy was disabled, say) takes the
	// mark it set with it.
	ended, err = f.st.EndOverdueCheck(f.ctx, pb, false)
	require.NoError(t, err)
	assert.True(t, ended)
	assert.Equal(t, int64(1), overdue())
	names, _ = listed(10)
	assert.Equal(t, []string{q.ID + "/" + a.ID}, names)

	slot := func(policyID, agentID string) domain.Slot {
		sl, err := f.st.GetSlot(f.ctx, tenant, policyID, agentID, domain.SlotBackup)
		require.NoError(t, err)
		return sl
	}
	// Assigning again writes the slots as given, mark included.
	qa := slot(q.ID, a.ID)
	require.NoError(t, f.st.Assign(f.ctx, tenant, q.ID, a.ID, []domain.Slot{qa}))
	assert.Equal(t, int64(1), overdue(), "kept")
	qa.Overdue = false
	require.NoError(t, f.st.Assign(f.ctx, tenant, q.ID, a.ID, []domain.Slot{qa}))
	assert.Equal(t, int64(0), overdue(), "cleared")
	qa.Overdue = true
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, qa))
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, qa))
	assert.Equal(t, int64(1), overdue(), "put twice, counted once")
	forget := slot(q.ID, a.ID)
	forget.Kind, forget.Overdue = domain.SlotForget, true
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, forget))
	assert.Equal(t, int64(1), overdue(), "only backups count")
	require.NoError(t, f.st.Unassign(f.ctx, tenant, q.ID, a.ID))
	assert.Equal(t, int64(0), overdue(), "unassigned")

	pb2 := slot(p.ID, b.ID)
	pb2.Overdue = true
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, pb2))
	require.NoError(t, f.st.Assign(f.ctx, tenant, q.ID, b.ID, []domain.Slot{{Kind: domain.SlotBackup, Overdue: true}}))
	assert.Equal(t, int64(2), overdue())
	require.NoError(t, f.st.DeleteAgent(f.ctx, tenant, b.ID))
	assert.Equal(t, int64(0), overdue(), "its agent deleted")

	pa2 := slot(p.ID, a.ID)
	pa2.Overdue = true
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, pa2))
	assert.Equal(t, int64(1), overdue())
	require.NoError(t, f.st.DeletePolicy(f.ctx, tenant, p.ID))
	assert.Equal(t, int64(0), overdue(), "its policy deleted")
	names, more = listed(10)
	assert.Empty(t, names)
	assert.False(t, more)
	f.recountAgrees(tenant)
}

// TestConcurrentCountedWritesNeverMiscount races writers over the same items: whatever wins,
// the counters say what the items say.
func TestConcurrentCountedWritesNeverMiscount(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	const writers = 6
	race := func(do func(w int)) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				do(w)
			}()
		}
		wg.Wait()
	}

	var registered []domain.Agent
	var mu sync.Mutex
	race(func(int) {
		a := f.agent(tenant)
		mu.Lock()
		registered = append(registered, a)
		mu.Unlock()
	})
	assert.Equal(t, agents(writers, 0, 0), f.counts(tenant).Agents)

	// Heartbeats with and without backoffs, and schedulers taking agents offline from what they
	// read, all on the same two agents.
	race(func(w int) {
		rnd := rand.New(rand.NewPCG(uint64(w), 7))
		for i := range 8 {
			a := registered[i%2]
			if rnd.IntN(3) == 0 {
				read, err := f.st.GetAgent(f.ctx, tenant, a.ID)
				require.NoError(t, err)
				if read.Status == domain.AgentOnline {
					_, err = f.st.SetAgentOffline(f.ctx, read, f.now)
					require.NoError(t, err)
				}
				continue
			}
			_, err := f.st.ModifyAgent(f.ctx, tenant, a.ID, func(a *domain.Agent) error {
				a.Status, a.BackoffUntil = domain.AgentOnline, nil
				if rnd.IntN(2) == 0 {
					a.BackoffUntil = ptr(f.now.Add(time.Hour))
				}
				return nil
			})
			if err != nil && !errors.Is(err, domain.ErrConflict) {
				require.NoError(t, err)
			}
		}
	})
	c := f.recountAgrees(tenant)
	assert.Equal(t, int64(writers), c.Agents.Total())

	// One run, ended by several reports at once.
	run := f.run(tenant, f.task(tenant, registered[0].ID))
	outcomes := []domain.TaskStatus{domain.TaskSucceeded, domain.TaskFailed, domain.TaskPartial, domain.TaskCancelled, domain.RunInterrupted, domain.TaskSucceeded}
	race(func(w int) {
		_, err := f.st.UpdateRun(f.ctx, tenant, run.ID, func(r *domain.Run) error { r.Status = outcomes[w]; return nil })
		require.NoError(t, err)
	})
	c = f.recountAgrees(tenant)
	runs := c.Runs
	assert.Equal(t, int64(1), runs.Succeeded+runs.Failed+runs.Partial+runs.Running+runs.Other, "one run: %+v", runs)

	// One overdue check, judged by several schedulers at once, and successes racing them.
	p := f.policy(tenant, "nightly", "main-repo")
	for _, a := range registered[:2] {
		require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: ptr(f.now.Add(time.Hour))}}))
	}
	checks := make([]store.OverdueCheck, 2)
	for i, a := range registered[:2] {
		checks[i] = store.OverdueCheck{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, PlannedAt: f.now, CheckAt: f.now}
		require.NoError(t, f.st.WatchSlot(f.ctx, checks[i]))
	}
	var announcedFirst atomic.Int32
	race(func(w int) {
		announced, err := f.st.AnnounceOverdue(f.ctx, checks[0], nil, f.now.Add(time.Hour))
		require.NoError(t, err)
		if announced {
			announcedFirst.Add(1)
		}
		if w%2 == 0 {
			_, err = f.st.AnnounceOverdue(f.ctx, checks[1], nil, f.now.Add(time.Hour))
		} else {
			err = f.st.MarkSlotSucceeded(f.ctx, tenant, p.ID, registered[1].ID, domain.SlotBackup, f.now.Add(time.Duration(w)*time.Minute))
		}
		require.NoError(t, err)
	})
	assert.Equal(t, int32(1), announcedFirst.Load(), "of several schedulers, one announces")
	c = f.recountAgrees(tenant)
	assert.GreaterOrEqual(t, c.OverdueSlots, int64(1))
}

// TestRecountEqualsTheCountersAfterRandomOperations drives a small fleet through a random
// sequence of the writes that count, and rebuilds the counters from the items at the end.
func TestRecountEqualsTheCountersAfterRandomOperations(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	policies := []domain.Policy{f.policy(tenant, "nightly", "main-repo"), f.policy(tenant, "hourly", "main-repo")}
	var live []domain.Agent
	var runs []domain.Run
	pick := func() (domain.Agent, bool) {
		if len(live) == 0 {
			return domain.Agent{}, false
		}
		return live[rnd.IntN(len(live))], true
	}
	statuses := []domain.TaskStatus{domain.TaskRunning, domain.TaskSucceeded, domain.TaskPartial, domain.TaskFailed, domain.TaskCancelled, domain.RunInterrupted}
	var done []string
	for step := range 80 {
		f.now = f.now.Add(time.Duration(rnd.IntN(90)) * time.Minute)
		op := rnd.IntN(10)
		a, ok := pick()
		if !ok || op == 0 {
			mod := func(*domain.Agent) {}
			if rnd.IntN(3) == 0 {
				mod = offline
			}
			live = append(live, f.agent(tenant, mod))
			done = append(done, "register")
			continue
		}
		switch op {
		case 1:
			_, err := f.st.ModifyAgent(f.ctx, tenant, a.ID, func(a *domain.Agent) error {
				a.Status, a.BackoffUntil = domain.AgentOnline, nil
				if rnd.IntN(2) == 0 {
					a.BackoffUntil = ptr(f.now.Add(time.Hour))
				}
				return nil
			})
			require.NoError(t, err, "step %d", step)
			done = append(done, "heartbeat")
		case 2:
			read, err := f.st.GetAgent(f.ctx, tenant, a.ID)
			require.NoError(t, err)
			if read.Status == domain.AgentOnline {
				_, err := f.st.SetAgentOffline(f.ctx, read, f.now)
				require.NoError(t, err, "step %d", step)
			}
			done = append(done, "offline")
		case 3:
			if rnd.IntN(3) == 0 {
				require.NoError(t, f.st.DeleteAgent(f.ctx, tenant, a.ID), "step %d", step)
				live = removeAgent(live, a.ID)
				done = append(done, "delete agent")
			}
		case 4, 5:
			runs = append(runs, f.run(tenant, f.task(tenant, a.ID), func(r *domain.Run) { r.Status = statuses[rnd.IntN(2)] }))
			done = append(done, "start run")
		case 6:
			if len(runs) > 0 {
				r := runs[rnd.IntN(len(runs))]
				_, err := f.st.UpdateRun(f.ctx, tenant, r.ID, func(r *domain.Run) error { r.Status = statuses[rnd.IntN(len(statuses))]; return nil })
				require.NoError(t, err, "step %d", step)
				done = append(done, "end run")
			}
		case 7:
			p := policies[rnd.IntN(len(policies))]
			require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: ptr(f.now.Add(time.Hour))}}), "step %d", step)
			done = append(done, "assign")
		case 8:
			p := policies[rnd.IntN(len(policies))]
			c := store.OverdueCheck{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, PlannedAt: f.now, CheckAt: f.now}
			sl, err := f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup)
			if errors.Is(err, domain.ErrNotFound) {
				require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: ptr(f.now.Add(time.Hour))}}), "step %d", step)
				sl, err = f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup)
			}
			require.NoError(t, err)
			require.NoError(t, f.st.WatchSlot(f.ctx, c))
			_, err = f.st.AnnounceOverdue(f.ctx, c, sl.LastSuccessAt, f.now.Add(time.Hour))
			require.NoError(t, err, "step %d", step)
			done = append(done, "announce")
		case 9:
			p := policies[rnd.IntN(len(policies))]
			if rnd.IntN(2) == 0 {
				require.NoError(t, f.st.MarkSlotSucceeded(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup, f.now), "step %d", step)
				done = append(done, "success")
			} else {
				err := f.st.Unassign(f.ctx, tenant, p.ID, a.ID)
				if !errors.Is(err, domain.ErrNotFound) {
					require.NoError(t, err, "step %d", step)
				}
				done = append(done, "unassign")
			}
		}
	}
	t.Logf("operations: %v", done)
	f.recountAgrees(tenant)
}

func removeAgent(agents []domain.Agent, id string) []domain.Agent {
	out := agents[:0]
	for _, a := range agents {
		if a.ID != id {
			out = append(out, a)
		}
	}
	return out
}

// TestCountedWritesWhoseAnswerWasLostCountOnce loses the first answer to each counted
// transaction: the SDK sends it again, and the change must be counted once.
func TestCountedWritesWhoseAnswerWasLostCountOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	loser := &answerLoser{lose: map[string]int{}}
	flaky := store.New(dynamodb.NewFromConfig(f.cfg, loser.option), f.st.Table())
	flaky.Now = f.st.Now
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")

	loser.next("TransactWriteItems")
	a, err := flaky.RegisterAgent(f.ctx, tenant, f.token(tenant).ID, newAgent(f.id(), f.now))
	require.NoError(t, err, "RegisterAgent")
	loser.next("TransactWriteItems")
	off := a
	off.Status = domain.AgentOffline
	_, err = flaky.UpdateAgent(f.ctx, tenant, off)
	require.NoError(t, err, "UpdateAgent")
	assert.Equal(t, agents(0, 1, 0), f.counts(tenant).Agents)

	tk := f.task(tenant, a.ID)
	loser.next("TransactWriteItems")
	r, err := flaky.CreateRun(f.ctx, tenant, domain.Run{ID: f.id(), AgentID: a.ID, TaskID: tk.ID, Type: domain.TaskBackup, Attempt: 1, Status: domain.TaskRunning, StartedAt: f.now})
	require.NoError(t, err, "CreateRun")
	loser.next("TransactWriteItems")
	_, err = flaky.UpdateRun(f.ctx, tenant, r.ID, func(r *domain.Run) error { r.Status = domain.TaskFailed; return nil })
	require.NoError(t, err, "UpdateRun")
	assert.Equal(t, store.RunCounts{Failed: 1}, f.counts(tenant).Runs)

	p := f.policy(tenant, "nightly", "main-repo")
	loser.next("TransactWriteItems")
	require.NoError(t, flaky.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, Overdue: true}}), "Assign")
	assert.Equal(t, int64(1), f.counts(tenant).OverdueSlots)
	loser.next("TransactWriteItems")
	require.NoError(t, flaky.MarkSlotSucceeded(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup, f.now), "MarkSlotSucceeded")
	assert.Equal(t, int64(0), f.counts(tenant).OverdueSlots)
	c := store.OverdueCheck{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, PlannedAt: f.now.Add(time.Hour), CheckAt: f.now}
	require.NoError(t, flaky.WatchSlot(f.ctx, c))
	loser.next("TransactWriteItems")
	announced, err := flaky.AnnounceOverdue(f.ctx, c, &f.now, f.now.Add(time.Hour))
	require.NoError(t, err, "AnnounceOverdue")
	assert.True(t, announced, "this scheduler announced it")
	assert.Equal(t, int64(1), f.counts(tenant).OverdueSlots)

	assert.Equal(t, 7, loser.lost, "every counted write lost its first answer")
	f.recountAgrees(tenant)
}

func TestImportSetsTheCountersToWhatItWrote(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	p := newPolicy(f.id(), "nightly", "main-repo")
	p.TenantID = tenant
	b := store.Bulk{Policies: []domain.Policy{p}}
	for i := range 5 {
		a := newAgent(f.id(), f.now)
		a.TenantID, a.Version = tenant, 1
		if i == 0 {
			a.Status = domain.AgentOffline
		}
		b.Agents = append(b.Agents, a)
		b.Assignments = append(b.Assignments, domain.Assignment{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, CreatedAt: f.now})
		b.Slots = append(b.Slots, domain.Slot{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, Overdue: i < 2})
		b.Runs = append(b.Runs, domain.Run{ID: f.id(), TenantID: tenant, AgentID: a.ID, TaskID: f.id(), Type: domain.TaskBackup, Attempt: 1,
			Status: domain.TaskSucceeded, StartedAt: f.now})
	}
	// What the tenant counted before is replaced, not added to.
	f.agent(tenant)
	require.NoError(t, f.st.Import(f.ctx, b, 2))
	c := f.counts(tenant)
	assert.Equal(t, agents(4, 1, 0), c.Agents)
	assert.Equal(t, int64(2), c.OverdueSlots)
	assert.Equal(t, store.RunCounts{Succeeded: 5}, c.Runs)
	slots, more, err := f.st.ListOverdueSlots(f.ctx, tenant, 10)
	require.NoError(t, err)
	assert.Len(t, slots, 2)
	assert.False(t, more)
	// The agent registered before the import is counted by a recount.
	recounted, err := f.st.Recount(f.ctx, tenant)
	require.NoError(t, err)
	assert.Equal(t, agents(5, 1, 0), recounted.Agents)
}
