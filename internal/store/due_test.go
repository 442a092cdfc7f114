package store_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func offline(a *domain.Agent) { a.Status = domain.AgentOffline }

func TestQueryDueFindsWhatIsDueAcrossShardsAndTenants(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	acme, beta := f.tenant("acme"), f.tenant("beta")
	f.repo(acme, "main-repo")
	f.repo(beta, "main-repo")
	var want []string
	slot := func(tenant string, at *time.Time, isDue bool) {
		a := f.agent(tenant, offline)
		p := f.policy(tenant, "policy-"+a.ID, "main-repo")
		require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: at}}))
		if isDue {
			want = append(want, fmt.Sprintf("slot %s/%s/backup", p.ID, a.ID))
		}
	}
	for _, tenant := range []string{acme, beta} {
		slot(tenant, ptr(f.now.Add(-time.Hour)), true)
		slot(tenant, ptr(f.now), true) // due at this very instant
		slot(tenant, ptr(f.now.Add(time.Nanosecond)), false)
		slot(tenant, ptr(f.now.Add(time.Hour)), false)
		slot(tenant, nil, false)
	}

	a := f.agent(acme, offline)
	task := func(status domain.TaskStatus, mod func(*domain.Task), isDue bool) {
		tk := f.task(acme, a.ID, func(t *domain.Task) {
			t.Status = status
			mod(t)
		})
		if isDue {
			want = append(want, fmt.Sprintf("task %s %s", tk.ID, status))
		}
	}
	past, future := f.now.Add(-time.Minute), f.now.Add(time.Minute)
	task(domain.TaskPending, func(t *domain.Task) { t.NotBefore, t.Deadline = past, future }, true)
	task(domain.TaskPending, func(t *domain.Task) { t.NotBefore, t.Deadline = future, future.Add(time.Hour) }, false)
	task(domain.TaskQueued, func(t *domain.Task) { t.NotBefore, t.Deadline = past.Add(-time.Hour), past }, true)
	task(domain.TaskQueued, func(t *domain.Task) { t.NotBefore, t.Deadline = past, future }, false)
	task(domain.TaskRetrying, func(t *domain.Task) { t.NotBefore, t.NextRetryAt = past.Add(-time.Hour), &past }, true)
	task(domain.TaskRetrying, func(t *domain.Task) { t.NotBefore, t.NextRetryAt = past, &future }, false)
	task(domain.TaskRetrying, func(t *domain.Task) { t.NotBefore, t.Deadline = past, future }, true)
	for _, s := range []domain.TaskStatus{domain.TaskRunning, domain.TaskSucceeded, domain.TaskPartial, domain.TaskFailed, domain.TaskCancelled, domain.TaskExpired} {
		task(s, func(t *domain.Task) { t.NotBefore, t.Deadline = past.Add(-time.Hour), past }, false)
	}

	silent := f.agent(acme, func(a *domain.Agent) { a.LastSeenAt = ptr(f.now.Add(-3 * time.Minute)) })
	want = append(want, "agent "+silent.ID)
	f.agent(acme, func(a *domain.Agent) { a.LastSeenAt = ptr(f.now.Add(-3*time.Minute + time.Second)) }) // one second left
	back := f.agent(acme, func(a *domain.Agent) {
		a.LastSeenAt, a.OfflineSince = ptr(f.now.Add(-time.Second)), ptr(f.now.Add(-time.Hour))
	})
	want = append(want, "agent "+back.ID)

	assert.ElementsMatch(t, want, dueNames(f.due(f.now)))

	_, _, err := f.st.QueryDue(f.ctx, resources.DueShards, f.now, store.Page{})
	assert.Error(t, err, "a shard out of range")
	_, _, err = f.st.QueryDue(f.ctx, -1, f.now, store.Page{})
	assert.Error(t, err, "a negative shard")
	_, _, err = f.st.QueryDue(f.ctx, 0, f.now, store.Page{Cursor: "%%%"})
	assert.ErrorIs(t, err, domain.ErrInvalidCursor)
}

func TestQueryDuePagesThroughAShardOldestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	// Forty slots due a minute apart, in creation order unlike due order.
	for i := range 40 {
		p := f.policy(tenant, fmt.Sprintf("policy-%02d", i), "main-repo")
		at := f.now.Add(-time.Duration((i*7)%40+1) * time.Minute)
		require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &at}}))
	}
	st, reqs := counted(f)
	total := 0
	for shard := range resources.DueShards {
		whole, _, err := f.st.QueryDue(f.ctx, shard, f.now, store.Page{Limit: 100})
		require.NoError(t, err)
		times := make([]time.Time, len(whole))
		for i, d := range whole {
			require.NotNil(t, d.Slot)
			times[i] = *d.Slot.NextRunAt
		}
		assert.True(t, sort.SliceIsSorted(times, func(i, j int) bool { return times[i].Before(times[j]) }), "shard %d oldest first: %v", shard, times)
		reqs.take()
		paged, pages := walk(t, 2, func(p store.Page) ([]store.Due, string, error) { return st.QueryDue(f.ctx, shard, f.now, p) })
		assert.Equal(t, dueNames(whole), dueNames(paged), "shard %d, two per page", shard)
		assert.Equal(t, max((len(whole)+1)/2, 1), pages, "shard %d: a last page only when entries are left", shard)
		assert.Equal(t, map[string]int{"Query": pages}, reqs.take(), "shard %d: one request per page", shard)

		// The entry a cursor names may have moved on (a tick claims what it read) by the time
		// the next page is read.
		moved, pages := walk(t, 2, func(p store.Page) ([]store.Due, string, error) {
			due, next, err := st.QueryDue(f.ctx, shard, f.now, p)
			if len(due) > 0 {
				sl := *due[len(due)-1].Slot
				sl.NextRunAt = ptr(f.now.Add(time.Hour))
				require.NoError(t, f.st.PutSlot(f.ctx, tenant, sl))
			}
			return due, next, err
		})
		assert.Equal(t, dueNames(whole), dueNames(moved), "shard %d, two per page, each page's last entry moving on", shard)
		assert.Equal(t, map[string]int{"Query": pages}, reqs.take(), "shard %d: one request per page", shard)
		total += len(whole)
	}
	assert.Equal(t, 40, total)
}

// dueSlots creates n slots of one policy each on agent a, due a minute ago, and returns them.
func (f *fixture) dueSlots(tenant, agentID string, n int) []domain.Slot {
	f.t.Helper()
	var slots []domain.Slot
	due := f.now.Add(-time.Minute)
	for range n {
		p := f.policy(tenant, fmt.Sprintf("policy-%d", f.ids.Load()+1), "main-repo")
		require.NoError(f.t, f.st.Assign(f.ctx, tenant, p.ID, agentID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &due}}))
		sl, err := f.st.GetSlot(f.ctx, tenant, p.ID, agentID, domain.SlotBackup)
		require.NoError(f.t, err)
		slots = append(slots, sl)
	}
	return slots
}

func (f *fixture) claim(sl domain.Slot, next time.Time) store.Claim {
	tk := newTask(f.id(), sl.AgentID, *sl.NextRunAt)
	tk.PolicyID, tk.Trigger = sl.PolicyID, "schedule"
	return store.Claim{Slot: sl, Next: next, Task: tk}
}

func TestClaimSlotsMovesSlotsOnAndCreatesTheirTasks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	slots := f.dueSlots(tenant, a.ID, 3)
	assert.Equal(t, []store.WaitResult{{Recorded: true}}, f.st.SetSlotWaits(f.ctx, []store.SlotWait{{Slot: slots[0], Reason: "agent busy"}}))
	got, err := f.st.GetSlot(f.ctx, tenant, slots[0].PolicyID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.Equal(t, "agent busy", got.WaitReason)

	next := f.now.Add(24 * time.Hour)
	claims := []store.Claim{f.claim(slots[0], next), f.claim(slots[1], next), f.claim(slots[2], time.Time{})}
	claims[1].CheckAt = f.now.Add(2 * time.Hour)
	f.now = f.now.Add(time.Second)
	results := f.st.ClaimSlots(f.ctx, claims)
	assert.Equal(t, []store.ClaimResult{{Won: true}, {Won: true}, {Won: true}}, results)

	for i, c := range claims {
		sl, err := f.st.GetSlot(f.ctx, tenant, c.Slot.PolicyID, a.ID, domain.SlotBackup)
		require.NoError(t, err)
		want := c.Slot
		want.LastDispatchedAt, want.LastTaskID, want.WaitReason = &f.now, c.Task.ID, ""
		if c.Next.IsZero() {
			want.NextRunAt = nil
		} else {
			want.NextRunAt = &next
		}
		assert.Equal(t, want, sl, "slot %d", i)
		tk, err := f.st.GetTask(f.ctx, tenant, c.Task.ID)
		require.NoError(t, err, "the task of claim %d", i)
		assert.Equal(t, tenant, tk.TenantID)
		assert.Equal(t, domain.TaskPending, tk.Status)
		assert.Equal(t, c.Slot.PolicyID, tk.PolicyID)
	}
	dueNow := dueNames(f.due(f.now))
	assert.Len(t, dueNow, 3, "the three pending tasks: %v", dueNow)
	for _, name := range dueNow {
		assert.Contains(t, name, "task ", "claimed slots are not due until their next run")
	}
	dueLater := dueNames(f.due(next))
	assert.Contains(t, dueLater, fmt.Sprintf("slot %s/%s/backup", slots[0].PolicyID, a.ID))
	assert.Contains(t, dueLater, fmt.Sprintf("check %s/%s/backup", slots[1].PolicyID, a.ID), "the claim that asked for a check")
	assert.NotContains(t, dueLater, fmt.Sprintf("slot %s/%s/backup", slots[2].PolicyID, a.ID), "a slot without a next run leaves the index")

	// Claiming the same runs again loses: the slots moved on.
	results = f.st.ClaimSlots(f.ctx, []store.Claim{f.claim(slots[0], next), f.claim(slots[1], next)})
	assert.Equal(t, []store.ClaimResult{{}, {}}, results)
	// Recording a wait for a run that moved on changes nothing.
	assert.Equal(t, []store.WaitResult{{}}, f.st.SetSlotWaits(f.ctx, []store.SlotWait{{Slot: slots[0], Reason: "too late"}}))
	got, err = f.st.GetSlot(f.ctx, tenant, slots[0].PolicyID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.Empty(t, got.WaitReason)
	noNext := domain.Slot{TenantID: tenant, PolicyID: slots[2].PolicyID, AgentID: a.ID, Kind: domain.SlotBackup}
	assert.Equal(t, []store.WaitResult{{}}, f.st.SetSlotWaits(f.ctx, []store.SlotWait{{Slot: noNext, Reason: "no next run"}}))
}

func TestClaimSlotsDecidesEachClaimWhenOneIsLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	// 60 claims of two actions each: more than one transaction holds.
	slots := f.dueSlots(tenant, a.ID, 60)
	next := f.now.Add(time.Hour)
	// Two slots moved on since they were read, one in each transaction.
	for _, i := range []int{10, 55} {
		moved := slots[i]
		moved.NextRunAt = &next
		require.NoError(t, f.st.PutSlot(f.ctx, tenant, moved))
	}
	claims := make([]store.Claim, len(slots))
	for i, sl := range slots {
		claims[i] = f.claim(sl, next)
	}
	// One claim cannot be built at all.
	claims[20].Task.Deadline = claims[20].Task.NotBefore

	st, reqs := counted(f)
	results := st.ClaimSlots(f.ctx, claims)
	require.Len(t, results, len(claims))
	assert.Equal(t, map[string]int{"TransactWriteItems": 4}, reqs.take(), "each transaction is tried again once, without its lost claim")
	for i, r := range results {
		_, err := f.st.GetTask(f.ctx, tenant, claims[i].Task.ID)
		switch i {
		case 10, 55:
			assert.Equal(t, store.ClaimResult{}, r, "claim %d lost", i)
			assert.ErrorIs(t, err, domain.ErrNotFound, "claim %d made no task", i)
		case 20:
			assert.False(t, r.Won)
			var ve *domain.ValidationError
			assert.ErrorAs(t, r.Err, &ve, "claim %d", i)
			assert.ErrorIs(t, err, domain.ErrNotFound, "claim %d made no task", i)
		default:
			assert.Equal(t, store.ClaimResult{Won: true}, r, "claim %d", i)
			assert.NoError(t, err, "claim %d made its task", i)
		}
	}
	tasks, _ := walk(t, 100, func(p store.Page) ([]domain.Task, string, error) {
		return f.st.ListTasks(f.ctx, tenant, store.TaskFilter{}, p)
	})
	assert.Len(t, tasks, 57)
	assert.ElementsMatch(t, idsOf(tasks, taskID), activeIDs(t, f, tenant, a.ID))
}

func TestConcurrentClaimsWinEachSlotOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	slots := f.dueSlots(tenant, a.ID, 30)
	next := f.now.Add(time.Hour)

	const schedulers = 3
	results := make([][]store.ClaimResult, schedulers)
	start := make(chan struct{})
	done := make(chan struct{})
	for s := range schedulers {
		claims := make([]store.Claim, len(slots))
		for i, sl := range slots {
			claims[i] = f.claim(sl, next)
		}
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			results[s] = f.st.ClaimSlots(f.ctx, claims)
		}()
	}
	close(start)
	for range schedulers {
		<-done
	}
	for i := range slots {
		won := 0
		for s := range schedulers {
			require.NoError(t, results[s][i].Err, "scheduler %d, slot %d", s, i)
			if results[s][i].Won {
				won++
			}
		}
		assert.Equal(t, 1, won, "slot %d is won exactly once", i)
	}
	tasks, _ := walk(t, 100, func(p store.Page) ([]domain.Task, string, error) {
		return f.st.ListTasks(f.ctx, tenant, store.TaskFilter{}, p)
	})
	perPolicy := map[string]int{}
	for _, tk := range tasks {
		perPolicy[tk.PolicyID]++
	}
	for _, sl := range slots {
		assert.Equal(t, 1, perPolicy[sl.PolicyID], "one task for slot %s", sl.PolicyID)
	}
	assert.Len(t, tasks, len(slots))
	assert.ElementsMatch(t, idsOf(tasks, taskID), activeIDs(t, f, tenant, a.ID), "each won claim's task counts once, the lost ones not at all")
}

func TestOverdueChecksWatchOneRunUntilItSucceeds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	p := f.policy(tenant, "nightly", "main-repo")
	require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: ptr(f.now.Add(time.Hour))}}))
	name := fmt.Sprintf("check %s/%s/backup", p.ID, a.ID)
	planned, checkAt := f.now, f.now.Add(time.Hour)
	c := store.OverdueCheck{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, PlannedAt: planned, CheckAt: checkAt}
	readCheck := func(at time.Time) *store.OverdueCheck {
		t.Helper()
		for _, d := range f.due(at) {
			if d.Check != nil {
				return d.Check
			}
		}
		return nil
	}

	require.NoError(t, f.st.WatchSlot(f.ctx, c))
	later := c
	later.PlannedAt, later.CheckAt = planned.Add(24*time.Hour), checkAt.Add(24*time.Hour)
	require.NoError(t, f.st.WatchSlot(f.ctx, later), "a later run while the first is watched")
	assert.Empty(t, dueNames(f.due(checkAt.Add(-time.Second))))
	got := readCheck(checkAt)
	require.NotNil(t, got, "due at its check time")
	assert.Equal(t, c, *got, "the first run stays watched")
	assert.Equal(t, c.Ref(), store.SlotRef{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup})

	recheck := checkAt.Add(time.Hour)
	announced, err := f.st.AnnounceOverdue(f.ctx, c, nil, recheck)
	require.NoError(t, err)
	assert.True(t, announced)
	sl, err := f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.True(t, sl.Overdue)
	announced, err = f.st.AnnounceOverdue(f.ctx, c, nil, recheck)
	require.NoError(t, err)
	assert.False(t, announced, "of two schedulers, one announces")
	assert.NotContains(t, dueNames(f.due(recheck.Add(-time.Second))), name, "looked at again at the recheck time")
	got = readCheck(recheck)
	require.NotNil(t, got)
	assert.Equal(t, store.OverdueCheck{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, PlannedAt: planned, CheckAt: recheck, Announced: true}, *got)

	again := recheck.Add(time.Hour)
	require.NoError(t, f.st.RecheckOverdue(f.ctx, *got, again))
	assert.Equal(t, again, readCheck(again).CheckAt)
	other := *got
	other.PlannedAt = planned.Add(-time.Hour)
	require.NoError(t, f.st.RecheckOverdue(f.ctx, other, again.Add(time.Hour)), "a check read for another run")
	assert.Equal(t, again, readCheck(again).CheckAt, "is left as it is")

	ended, err := f.st.EndOverdueCheck(f.ctx, other, false)
	require.NoError(t, err)
	assert.False(t, ended, "a check read for another run is not ended")
	ended, err = f.st.EndOverdueCheck(f.ctx, c, true)
	require.NoError(t, err)
	assert.True(t, ended, "the announced check ends")
	assert.Nil(t, readCheck(again.Add(time.Hour)))
	ended, err = f.st.EndOverdueCheck(f.ctx, c, true)
	require.NoError(t, err)
	assert.False(t, ended, "of two schedulers, one ends it")

	// An unannounced check ends only when not asked for an announced one.
	require.NoError(t, f.st.WatchSlot(f.ctx, c))
	ended, err = f.st.EndOverdueCheck(f.ctx, c, true)
	require.NoError(t, err)
	assert.False(t, ended)
	ended, err = f.st.EndOverdueCheck(f.ctx, c, false)
	require.NoError(t, err)
	assert.True(t, ended)
}

func TestSlotSuccessesMoveForwardAndEndOverdue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	p := f.policy(tenant, "nightly", "main-repo")
	require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: ptr(f.now.Add(time.Hour))}}))
	c := store.OverdueCheck{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, PlannedAt: f.now, CheckAt: f.now}
	require.NoError(t, f.st.WatchSlot(f.ctx, c))
	announced, err := f.st.AnnounceOverdue(f.ctx, c, nil, f.now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, announced)

	success := f.now.Add(10 * time.Minute)
	require.NoError(t, f.st.MarkSlotSucceeded(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup, success))
	sl, err := f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.Equal(t, success, *sl.LastSuccessAt)
	assert.False(t, sl.Overdue, "a success ends the overdue state")
	require.NoError(t, f.st.MarkSlotSucceeded(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup, success.Add(-time.Minute)))
	sl, err = f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.Equal(t, success, *sl.LastSuccessAt, "an earlier success does not move it back")

	// A check that was read before the success cannot be announced again.
	fresh := c
	fresh.PlannedAt = f.now.Add(time.Minute)
	ended, err := f.st.EndOverdueCheck(f.ctx, c, true)
	require.NoError(t, err)
	require.True(t, ended)
	require.NoError(t, f.st.WatchSlot(f.ctx, fresh))
	announced, err = f.st.AnnounceOverdue(f.ctx, fresh, nil, f.now.Add(time.Hour))
	require.NoError(t, err)
	assert.False(t, announced, "the slot succeeded since the check was read without a success")
	announced, err = f.st.AnnounceOverdue(f.ctx, fresh, ptr(success.Add(-time.Hour)), f.now.Add(time.Hour))
	require.NoError(t, err)
	assert.False(t, announced, "the slot succeeded since the check was read with an older success")
	announced, err = f.st.AnnounceOverdue(f.ctx, fresh, &success, f.now.Add(time.Hour))
	require.NoError(t, err)
	assert.True(t, announced, "read with the slot's last success")

	gone := f.id()
	require.NoError(t, f.st.MarkSlotSucceeded(f.ctx, tenant, p.ID, gone, domain.SlotBackup, success), "a slot that is gone")
	_, err = f.st.GetSlot(f.ctx, tenant, p.ID, gone, domain.SlotBackup)
	assert.ErrorIs(t, err, domain.ErrNotFound, "is not brought back")
}

func TestAgentsGoOfflineAndComeBackOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	silentAt := a.LastSeenAt.Add(3 * time.Minute)
	assert.NotContains(t, dueNames(f.due(silentAt.Add(-time.Second))), "agent "+a.ID)
	assert.Contains(t, dueNames(f.due(silentAt)), "agent "+a.ID, "due when three heartbeats are missed")

	f.now = silentAt
	changed, err := f.st.SetAgentOffline(f.ctx, a, silentAt)
	require.NoError(t, err)
	assert.True(t, changed)
	changed, err = f.st.SetAgentOffline(f.ctx, a, silentAt)
	require.NoError(t, err)
	assert.False(t, changed, "of two schedulers, one takes it offline")
	off, err := f.st.GetAgent(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.AgentOffline, off.Status)
	assert.Equal(t, silentAt, *off.OfflineSince)
	assert.Equal(t, a.Version+1, off.Version)
	assert.Empty(t, dueNames(f.due(silentAt.Add(24*time.Hour))), "an offline agent is not due")
	_, err = f.st.ClearAgentOffline(f.ctx, off)
	assert.Error(t, err, "an agent that is still offline")

	// A heartbeat brings it back; the scheduler finds it at once.
	f.now = silentAt.Add(time.Hour)
	heard := off
	heard.Status, heard.LastSeenAt = domain.AgentOnline, ptr(f.now)
	back, err := f.st.UpdateAgent(f.ctx, tenant, heard)
	require.NoError(t, err)
	assert.Contains(t, dueNames(f.due(f.now)), "agent "+a.ID, "due at once to announce its return")

	changed, err = f.st.ClearAgentOffline(f.ctx, back)
	require.NoError(t, err)
	assert.True(t, changed)
	changed, err = f.st.ClearAgentOffline(f.ctx, back)
	require.NoError(t, err)
	assert.False(t, changed, "of two schedulers, one announces the return")
	got, err := f.st.GetAgent(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Nil(t, got.OfflineSince)
	assert.Equal(t, domain.AgentOnline, got.Status)
	assert.NotContains(t, dueNames(f.due(f.now.Add(3*time.Minute-time.Second))), "agent "+a.ID)
	assert.Contains(t, dueNames(f.due(f.now.Add(3*time.Minute))), "agent "+a.ID, "due again when it next goes silent")

	changed, err = f.st.SetAgentOffline(f.ctx, newAgent(f.id(), f.now), f.now)
	require.NoError(t, err)
	assert.False(t, changed, "an agent that does not exist")
}

func TestBatchReadsSpanTenantsAndSkipWhatIsMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var agentRefs []store.AgentRef
	var policyRefs []store.PolicyRef
	var slotRefs []store.SlotRef
	wantAgents := map[store.AgentRef]domain.Agent{}
	wantPolicies := map[store.PolicyRef]domain.Policy{}
	wantSlots := map[store.SlotRef]domain.Slot{}
	for _, tenant := range []string{f.tenant("acme"), f.tenant("beta")} {
		f.repo(tenant, "main-repo")
		for range 3 {
			a := f.agent(tenant, offline)
			ar := store.AgentRef{TenantID: tenant, AgentID: a.ID}
			agentRefs = append(agentRefs, ar, ar)
			wantAgents[ar] = a
		}
		for _, sl := range f.dueSlots(tenant, agentRefs[len(agentRefs)-1].AgentID, 60) {
			pr := store.PolicyRef{TenantID: tenant, PolicyID: sl.PolicyID}
			p, err := f.st.GetPolicy(f.ctx, tenant, sl.PolicyID)
			require.NoError(t, err)
			policyRefs = append(policyRefs, pr)
			wantPolicies[pr] = p
			sr := store.SlotRef{TenantID: tenant, PolicyID: sl.PolicyID, AgentID: sl.AgentID, Kind: sl.Kind}
			slotRefs = append(slotRefs, sr, store.SlotRef{TenantID: tenant, PolicyID: sl.PolicyID, AgentID: sl.AgentID, Kind: domain.SlotCheck})
			wantSlots[sr] = sl
		}
	}
	agentRefs = append(agentRefs, store.AgentRef{TenantID: "acme", AgentID: f.id()}, store.AgentRef{TenantID: "beta", AgentID: agentRefs[0].AgentID})
	policyRefs = append(policyRefs, store.PolicyRef{TenantID: "acme", PolicyID: f.id()}, store.PolicyRef{TenantID: "beta", PolicyID: policyRefs[0].PolicyID})

	agents, err := f.st.GetAgents(f.ctx, agentRefs)
	require.NoError(t, err)
	assert.Equal(t, wantAgents, agents)
	policies, err := f.st.GetPolicies(f.ctx, policyRefs)
	require.NoError(t, err)
	assert.Equal(t, wantPolicies, policies, "more than one request's worth, across tenants")
	slots, err := f.st.GetSlots(f.ctx, slotRefs)
	require.NoError(t, err)
	assert.Equal(t, wantSlots, slots)

	none, err := f.st.GetAgents(f.ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, none)
}

func TestImportReadsLikeAFleetBuiltOneCallAtATime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var b store.Bulk
	due := f.now.Add(-time.Minute)
	for _, tenant := range []string{f.tenant("acme"), f.tenant("beta")} {
		f.repo(tenant, "main-repo")
		for i := range 20 {
			a := newAgent(f.id(), f.now)
			a.TenantID, a.Status, a.Version = tenant, domain.AgentOffline, 1
			p := newPolicy(f.id(), fmt.Sprintf("policy-%d", i), "main-repo")
			p.TenantID, p.Version = tenant, 1
			tk := newTask(f.id(), a.ID, f.now.Add(-time.Minute))
			tk.TenantID, tk.PolicyID = tenant, p.ID
			b.Agents = append(b.Agents, a)
			b.Policies = append(b.Policies, p)
			b.Assignments = append(b.Assignments, domain.Assignment{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, CreatedAt: f.now})
			b.Slots = append(b.Slots, domain.Slot{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, NextRunAt: &due})
			b.Tasks = append(b.Tasks, tk)
		}
	}
	require.NoError(t, f.st.Import(f.ctx, b, 4))

	for i, a := range b.Agents {
		got, err := f.st.GetAgent(f.ctx, a.TenantID, a.ID)
		require.NoError(t, err)
		assert.Equal(t, a, got)
		cred, err := f.st.LookupAgentCredential(f.ctx, a.ID)
		require.NoError(t, err)
		assert.Equal(t, a.TenantID, cred.TenantID)
		policies, _, err := f.st.ListAgentPolicies(f.ctx, a.TenantID, a.ID, store.Page{})
		require.NoError(t, err)
		assert.Equal(t, []string{b.Policies[i].ID}, policies)
		n, err := f.st.CountActiveTasks(f.ctx, a.TenantID, a.ID)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
	}
	for _, p := range b.Policies {
		got, err := f.st.GetPolicy(f.ctx, p.TenantID, p.ID)
		require.NoError(t, err)
		assert.Equal(t, p, got)
		_, err = f.st.CreatePolicy(f.ctx, p.TenantID, newPolicy(f.id(), p.Name, "main-repo"))
		assert.ErrorIs(t, err, domain.ErrConflict, "imported policies hold their names")
	}
	tasks, _ := walk(t, 100, func(p store.Page) ([]domain.Task, string, error) {
		return f.st.ListTasks(f.ctx, "acme", store.TaskFilter{}, p)
	})
	assert.Len(t, tasks, 20)
	assert.Len(t, dueNames(f.due(f.now)), 80, "every slot and pending task is due")
	require.NoError(t, f.st.Import(f.ctx, store.Bulk{}, 0), "nothing to import")
}
