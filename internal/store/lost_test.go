package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestRunningTasksAreDueAtTheirCheckTimeOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant, offline)
	check := f.now.Add(3 * time.Minute)
	watched := f.task(tenant, a.ID, func(t *domain.Task) { t.Status, t.CheckRunningAt = domain.TaskRunning, &check })

	assert.Empty(t, dueNames(f.due(check.Add(-time.Nanosecond))), "not before its check time")
	assert.Equal(t, []string{"task " + watched.ID + " running"}, dueNames(f.due(check)))

	// Moved on, as the scheduler does when the agent still lists it.
	later := check.Add(4 * time.Minute)
	_, err := f.st.UpdateTaskRun(f.ctx, tenant, watched.ID, "", func(tk domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
		tk.CheckRunningAt = &later
		return store.TaskRunChange{Task: &tk}, nil
	})
	require.NoError(t, err)
	assert.Empty(t, dueNames(f.due(later.Add(-time.Nanosecond))))
	assert.Len(t, dueNames(f.due(later)), 1)

	// A task that ends leaves the index and forgets its check time, however it ends.
	ended, err := f.st.TransitionTask(f.ctx, tenant, watched.ID, domain.TaskCancelled, nil)
	require.NoError(t, err)
	assert.Nil(t, ended.CheckRunningAt, "got %v", ended.CheckRunningAt)
	assert.Equal(t, ended, mustTask(f, tenant, watched.ID), "what TransitionTask returns is what it stored")
	assert.Empty(t, dueNames(f.due(later.Add(time.Hour))))

	other := f.task(tenant, a.ID, func(t *domain.Task) { t.Status, t.CheckRunningAt = domain.TaskRunning, &check })
	ch, err := f.st.UpdateTaskRun(f.ctx, tenant, other.ID, "", func(tk domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
		tk.Status, tk.FinishedAt = domain.TaskSucceeded, ptr(f.now)
		return store.TaskRunChange{Task: &tk}, nil
	})
	require.NoError(t, err)
	assert.Nil(t, ch.Task.CheckRunningAt)
	assert.Equal(t, *ch.Task, mustTask(f, tenant, other.ID))
	assert.Empty(t, dueNames(f.due(later.Add(time.Hour))))
}

func TestNoteRunListedRecordsTheListingOnTheAgentsRunningRunOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	task := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskRunning })
	run := f.run(tenant, task)
	at := f.now.Add(time.Minute)

	noted, err := f.st.NoteRunListed(f.ctx, tenant, a.ID, task.ID, run.ID, at, nil)
	require.NoError(t, err)
	assert.True(t, noted)
	got, err := f.st.GetRun(f.ctx, tenant, run.ID)
	require.NoError(t, err)
	require.NotNil(t, got.LastListedAt)
	assert.Equal(t, at, *got.LastListedAt)
	assert.Nil(t, got.Progress, "a listing without progress leaves it")

	progress := &domain.Progress{PercentDone: 0.25, TotalFiles: 40, FilesDone: 10, CurrentFiles: []string{"/srv/a b"}}
	noted, err = f.st.NoteRunListed(f.ctx, tenant, a.ID, task.ID, run.ID, at.Add(time.Minute), progress)
	require.NoError(t, err)
	assert.True(t, noted)
	got, err = f.st.GetRun(f.ctx, tenant, run.ID)
	require.NoError(t, err)
	assert.Equal(t, at.Add(time.Minute), *got.LastListedAt)
	assert.Equal(t, progress, got.Progress)

	// The run's revision moved: an update decided on the run as read before decides again.
	calls := 0
	_, err = f.st.UpdateRun(f.ctx, tenant, run.ID, func(r *domain.Run) error {
		calls++
		if calls == 1 {
			_, err := f.st.NoteRunListed(f.ctx, tenant, a.ID, task.ID, run.ID, at.Add(2*time.Minute), nil)
			require.NoError(t, err)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 2, calls, "the listing in between made the update read the run again")

	other := f.agent(tenant)
	for name, call := range map[string]func() (bool, error){
		"another agent's run":  func() (bool, error) { return f.st.NoteRunListed(f.ctx, tenant, other.ID, task.ID, run.ID, at, nil) },
		"another task's run":   func() (bool, error) { return f.st.NoteRunListed(f.ctx, tenant, a.ID, f.id(), run.ID, at, nil) },
		"a run that is absent": func() (bool, error) { return f.st.NoteRunListed(f.ctx, tenant, a.ID, task.ID, f.id(), at, nil) },
	} {
		noted, err := call()
		require.NoError(t, err, name)
		assert.False(t, noted, name)
	}
	_, err = f.st.UpdateRun(f.ctx, tenant, run.ID, func(r *domain.Run) error {
		r.Status = domain.RunInterrupted
		return nil
	})
	require.NoError(t, err)
	noted, err = f.st.NoteRunListed(f.ctx, tenant, a.ID, task.ID, run.ID, at.Add(time.Hour), progress)
	require.NoError(t, err)
	assert.False(t, noted, "a run that no longer runs")
	got, err = f.st.GetRun(f.ctx, tenant, run.ID)
	require.NoError(t, err)
	assert.Equal(t, at.Add(2*time.Minute), *got.LastListedAt, "left as it was")
	_, err = f.st.GetRun(f.ctx, "beta", run.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

func TestUpdateTaskRunRequeuesTheSlotItFreesInTheSameTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	p := f.policy(tenant, "nightly", "main-repo")
	tomorrow := f.now.Add(20 * time.Hour)
	require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &tomorrow}}))
	task := f.task(tenant, a.ID, func(t *domain.Task) { t.Status, t.PolicyID = domain.TaskRunning, p.ID })
	sl := slotOf(f, tenant, p.ID, a.ID)
	sl.LastTaskID = task.ID
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, sl))

	fail := func(rq store.SlotRequeue, interfere func()) (int, error) {
		calls := 0
		_, err := f.st.UpdateTaskRun(f.ctx, tenant, task.ID, "", func(tk domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
			calls++
			if tk.Status != domain.TaskRunning {
				return store.TaskRunChange{}, nil
			}
			current := slotOf(f, tenant, p.ID, a.ID)
			if calls == 1 && interfere != nil {
				interfere()
			}
			tk.Status = domain.TaskFailed
			ch := store.TaskRunChange{Task: &tk}
			if current.LastTaskID == task.ID {
				rq.Slot = current
				ch.Requeue = &rq
			}
			return ch, nil
		})
		return calls, err
	}

	// A requeue that comes alone, or for a slot that is not due, is refused before any write.
	_, err := f.st.UpdateTaskRun(f.ctx, tenant, task.ID, "", func(domain.Task, *domain.Run) (store.TaskRunChange, error) {
		return store.TaskRunChange{Requeue: &store.SlotRequeue{Slot: sl, At: f.now}}, nil
	})
	assert.Error(t, err, "a requeue without the task change")
	_, err = f.st.UpdateTaskRun(f.ctx, tenant, task.ID, "", func(tk domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
		notDue := sl
		notDue.NextRunAt = nil
		tk.Status = domain.TaskFailed
		return store.TaskRunChange{Task: &tk, Requeue: &store.SlotRequeue{Slot: notDue, At: f.now}}, nil
	})
	assert.Error(t, err, "a requeue of a slot that is not due")
	assert.Equal(t, domain.TaskRunning, mustTask(f, tenant, task.ID).Status, "neither wrote the task")

	// The slot is claimed for another task between the read and the write: decided again, the
	// task fails without touching the slot, which belongs to the newer task now.
	newer := f.id()
	calls, err := fail(store.SlotRequeue{At: f.now}, func() {
		claimed := slotOf(f, tenant, p.ID, a.ID)
		claimed.LastTaskID = newer
		require.NoError(t, f.st.PutSlot(f.ctx, tenant, claimed))
	})
	require.NoError(t, err)
	assert.Equal(t, 2, calls)
	assert.Equal(t, domain.TaskFailed, mustTask(f, tenant, task.ID).Status)
	got := slotOf(f, tenant, p.ID, a.ID)
	assert.Equal(t, tomorrow, *got.NextRunAt, "the newer task's slot keeps its time")
	assert.Equal(t, newer, got.LastTaskID)

	// A slot that still names the task is due at once, in the same write as the task.
	task = f.task(tenant, a.ID, func(t *domain.Task) { t.Status, t.PolicyID = domain.TaskRunning, p.ID })
	got.LastTaskID, got.WaitReason = task.ID, "agent offline"
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, got))
	calls, err = fail(store.SlotRequeue{At: f.now}, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, calls)
	assert.Equal(t, domain.TaskFailed, mustTask(f, tenant, task.ID).Status)
	got = slotOf(f, tenant, p.ID, a.ID)
	assert.Equal(t, f.now, *got.NextRunAt)
	assert.Empty(t, got.WaitReason, "the scheduler records anew why it waits")
	assert.Contains(t, dueNames(f.due(f.now)), "slot "+p.ID+"/"+a.ID+"/backup", "it is in the due index at once")
}

func slotOf(f *fixture, tenant, policyID, agentID string) domain.Slot {
	f.t.Helper()
	sl, err := f.st.GetSlot(f.ctx, tenant, policyID, agentID, domain.SlotBackup)
	require.NoError(f.t, err)
	return sl
}

func mustTask(f *fixture, tenant, id string) domain.Task {
	f.t.Helper()
	tk, err := f.st.GetTask(f.ctx, tenant, id)
	require.NoError(f.t, err)
	return tk
}
