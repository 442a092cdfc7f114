package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestTasksAreCreatedAndRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)

	tk := newTask(f.id(), a.ID, f.now)
	tk.Params = domain.TaskParams{ReadDataSubset: "1/5"}
	created, err := f.st.CreateTask(f.ctx, tenant, tk)
	require.NoError(t, err)
	tk.TenantID, tk.CreatedAt, tk.UpdatedAt = tenant, f.now, f.now
	assert.Equal(t, tk, created)
	got, err := f.st.GetTask(f.ctx, tenant, tk.ID)
	require.NoError(t, err)
	assert.Equal(t, tk, got)
	_, err = f.st.GetTask(f.ctx, tenant, f.id())
	assert.ErrorIs(t, err, domain.ErrNotFound)

	_, err = f.st.CreateTask(f.ctx, tenant, tk)
	assert.ErrorIs(t, err, domain.ErrConflict, "an ID in use")

	var ve *domain.ValidationError
	bad := newTask(f.id(), a.ID, f.now)
	bad.Deadline = bad.NotBefore
	_, err = f.st.CreateTask(f.ctx, tenant, bad)
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "deadline", ve.Fields[0].Field)
	bad = newTask(f.id(), a.ID, f.now)
	bad.Status = "paused"
	_, err = f.st.CreateTask(f.ctx, tenant, bad)
	require.ErrorAs(t, err, &ve, "an unknown status")
	assert.Equal(t, "status", ve.Fields[0].Field)
}

func TestListTasksFiltersByAgentStatusTypeAndTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.tenant("other")
	a := f.agent(tenant)
	b := f.agent(tenant)
	theirs := f.agent("other")

	// One task a minute, alternating agents, types and statuses.
	var all []domain.Task
	at := func(i int) time.Time { return f.now.Add(time.Duration(i) * time.Minute) }
	for i := range 8 {
		agent := []string{a.ID, b.ID}[i%2]
		typ := []domain.TaskType{domain.TaskBackup, domain.TaskBackup, domain.TaskCheck}[i%3]
		status := []domain.TaskStatus{domain.TaskPending, domain.TaskQueued, domain.TaskSucceeded, domain.TaskFailed}[i%4]
		all = append(all, f.task(tenant, agent, func(t *domain.Task) { t.ID, t.Type, t.Status = domain.NewID(at(i)), typ, status }))
	}
	f.task("other", theirs.ID)
	where := func(keep func(domain.Task) bool) []string {
		var out []string
		for _, tk := range all {
			if keep(tk) {
				out = append(out, tk.ID)
			}
		}
		return reversed(out)
	}

	cases := []struct {
		name   string
		filter store.TaskFilter
		want   []string
	}{
		{"all", store.TaskFilter{}, where(func(domain.Task) bool { return true })},
		{"agent a", store.TaskFilter{AgentID: a.ID}, where(func(t domain.Task) bool { return t.AgentID == a.ID })},
		{"queued", store.TaskFilter{Status: domain.TaskQueued}, where(func(t domain.Task) bool { return t.Status == domain.TaskQueued })},
		{"checks", store.TaskFilter{Type: domain.TaskCheck}, where(func(t domain.Task) bool { return t.Type == domain.TaskCheck })},
		{"minutes 2 to 5", store.TaskFilter{From: at(2), To: at(5)}, where(func(t domain.Task) bool { return t.ID >= all[2].ID && t.ID <= all[5].ID })},
		{"from minute 6", store.TaskFilter{From: at(6)}, where(func(t domain.Task) bool { return t.ID >= all[6].ID })},
		{"up to minute 1", store.TaskFilter{To: at(1)}, where(func(t domain.Task) bool { return t.ID <= all[1].ID })},
		{"agent b, backups, minutes 1 to 7", store.TaskFilter{AgentID: b.ID, Type: domain.TaskBackup, From: at(1), To: at(7)},
			where(func(t domain.Task) bool {
				return t.AgentID == b.ID && t.Type == domain.TaskBackup && t.ID >= all[1].ID && t.ID <= all[7].ID
			})},
		{"agent a, failed", store.TaskFilter{AgentID: a.ID, Status: domain.TaskFailed}, nil},
		{"an unknown agent", store.TaskFilter{AgentID: f.id()}, nil},
		{"a range that ends before it starts", store.TaskFilter{From: at(5), To: at(2)}, nil},
		{"agent a, a range that ends before it starts", store.TaskFilter{AgentID: a.ID, From: at(5), To: at(2)}, nil},
	}
	for _, c := range cases {
		got, _, err := f.st.ListTasks(f.ctx, tenant, c.filter, store.Page{})
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, nilIfEmpty(idsOf(got, taskID)), "%s, newest first", c.name)
		paged, _ := walk(t, 2, func(p store.Page) ([]domain.Task, string, error) { return f.st.ListTasks(f.ctx, tenant, c.filter, p) })
		assert.Equal(t, c.want, nilIfEmpty(idsOf(paged, taskID)), "%s, two per page", c.name)
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestTransitionTaskFollowsTheStateMachine(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	tk := f.task(tenant, a.ID)

	runID := f.id()
	steps := []struct {
		to     domain.TaskStatus
		change func(*domain.Task)
	}{
		{domain.TaskQueued, nil},
		{domain.TaskRunning, func(t *domain.Task) { t.RunID, t.StartedAt = runID, ptr(f.now) }},
		{domain.TaskSucceeded, func(t *domain.Task) { t.FinishedAt = ptr(f.now) }},
	}
	for _, s := range steps {
		f.now = f.now.Add(time.Minute)
		moved, err := f.st.TransitionTask(f.ctx, tenant, tk.ID, s.to, s.change)
		require.NoError(t, err, "to %s", s.to)
		assert.Equal(t, s.to, moved.Status)
		assert.Equal(t, f.now, moved.UpdatedAt)
		got, err := f.st.GetTask(f.ctx, tenant, tk.ID)
		require.NoError(t, err)
		assert.Equal(t, moved, got)
	}
	done, err := f.st.GetTask(f.ctx, tenant, tk.ID)
	require.NoError(t, err)
	assert.Equal(t, runID, done.RunID, "changes are written with the transition")

	for _, to := range []domain.TaskStatus{domain.TaskRunning, domain.TaskCancelled, domain.TaskQueued, domain.TaskSucceeded} {
		got, err := f.st.TransitionTask(f.ctx, tenant, tk.ID, to, func(t *domain.Task) { t.Error = "overwritten" })
		var te *domain.TransitionError
		require.ErrorAs(t, err, &te, "succeeded to %s", to)
		assert.ErrorIs(t, err, domain.ErrInvalidTransition)
		assert.Equal(t, domain.TransitionError{TaskID: tk.ID, Current: domain.TaskSucceeded, To: to}, *te)
		assert.Equal(t, done, got, "the refusal returns the task as it is")
	}
	after, err := f.st.GetTask(f.ctx, tenant, tk.ID)
	require.NoError(t, err)
	assert.Equal(t, done, after, "refused transitions change nothing")

	_, err = f.st.TransitionTask(f.ctx, tenant, f.id(), domain.TaskQueued, nil)
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

// race runs one TransitionTask per target at once and returns their errors.
func race(f *fixture, tenant, taskID string, targets []domain.TaskStatus) []error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, len(targets))
	for i, to := range targets {
		wg.Go(func() {
			<-start
			_, errs[i] = f.st.TransitionTask(f.ctx, tenant, taskID, to, func(t *domain.Task) { t.Error = fmt.Sprintf("writer %d", i) })
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func TestRacingTransitionsHaveExactlyOneWinner(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	running := func() domain.Task {
		return f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskRunning })
	}

	cases := map[string][]domain.TaskStatus{
		"succeeded against cancelled":  {domain.TaskSucceeded, domain.TaskCancelled},
		"eight writers, the same move": {domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded},
		"every final state":            {domain.TaskSucceeded, domain.TaskPartial, domain.TaskFailed, domain.TaskCancelled},
	}
	for name, targets := range cases {
		for round := range 5 {
			tk := running()
			errs := race(f, tenant, tk.ID, targets)
			winner := -1
			for i, err := range errs {
				if err == nil {
					require.Equal(t, -1, winner, "%s, round %d: writers %d and %d both won", name, round, winner, i)
					winner = i
				}
			}
			require.NotEqual(t, -1, winner, "%s, round %d: nobody won: %v", name, round, errs)
			for i, err := range errs {
				if i == winner {
					continue
				}
				var te *domain.TransitionError
				require.ErrorAs(t, err, &te, "%s, round %d, writer %d", name, round, i)
				assert.Equal(t, targets[winner], te.Current, "%s, round %d: a loser learns the state it lost to", name, round)
			}
			got, err := f.st.GetTask(f.ctx, tenant, tk.ID)
			require.NoError(t, err)
			assert.Equal(t, targets[winner], got.Status, "%s, round %d", name, round)
			assert.Equal(t, fmt.Sprintf("writer %d", winner), got.Error, "%s, round %d: the winner's change, never a loser's", name, round)
		}
	}
}

func TestTransitionTaskWithoutChangesStillHasOneWinner(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	for round := range 5 {
		tk := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskQueued })
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 6)
		for i := range errs {
			wg.Go(func() {
				<-start
				// The same move, the same (fixed) clock, no change: every writer writes the
				// very same item.
				_, errs[i] = f.st.TransitionTask(f.ctx, tenant, tk.ID, domain.TaskRunning, nil)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
			} else {
				assert.ErrorIs(t, err, domain.ErrInvalidTransition, "round %d", round)
			}
		}
		assert.Equal(t, 1, wins, "round %d: %v", round, errs)
	}
}

func TestActiveTasksFollowTheirStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	other := f.agent(tenant)
	f.task(tenant, other.ID)

	count := func() int {
		t.Helper()
		n, err := f.st.CountActiveTasks(f.ctx, tenant, a.ID)
		require.NoError(t, err)
		return n
	}
	assert.Equal(t, 0, count())
	backup := f.task(tenant, a.ID)
	check := f.task(tenant, a.ID, func(t *domain.Task) {
		t.Type, t.Params = domain.TaskCheck, domain.TaskParams{ReadDataSubset: "10%"}
	})
	f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskRetrying })
	f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskFailed })
	assert.Equal(t, 2, count(), "pending tasks count; retrying and final ones do not")

	active, err := f.st.ListActiveTasks(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.ElementsMatch(t, []domain.Task{
		{ID: backup.ID, TenantID: tenant, AgentID: a.ID, Type: domain.TaskBackup, Status: domain.TaskPending},
		{ID: check.ID, TenantID: tenant, AgentID: a.ID, Type: domain.TaskCheck, Status: domain.TaskPending, Params: check.Params},
	}, active)

	for _, s := range []struct {
		to   domain.TaskStatus
		want int
	}{{domain.TaskQueued, 2}, {domain.TaskRunning, 2}, {domain.TaskRetrying, 1}, {domain.TaskQueued, 2}, {domain.TaskCancelled, 1}} {
		_, err := f.st.TransitionTask(f.ctx, tenant, backup.ID, s.to, nil)
		require.NoError(t, err)
		assert.Equal(t, s.want, count(), "the backup %s", s.to)
	}
	active, err = f.st.ListActiveTasks(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{check.ID}, idsOf(active, taskID))
}

func TestMarkTasksQueuedMovesEachTaskOnlyFromItsState(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant, func(a *domain.Agent) { a.Status = domain.AgentOffline })

	// More tasks than one transaction takes.
	var tasks []domain.Task
	for i := range 105 {
		status := domain.TaskPending
		if i%10 == 3 {
			status = domain.TaskRetrying
		}
		tasks = append(tasks, f.task(tenant, a.ID, func(t *domain.Task) {
			t.Status = status
			if status == domain.TaskRetrying {
				t.NextRetryAt = ptr(f.now.Add(time.Minute))
			}
		}))
	}
	// One task moved on since it was read; one was read in a state that cannot be queued.
	_, err := f.st.TransitionTask(f.ctx, tenant, tasks[50].ID, domain.TaskRunning, nil)
	require.NoError(t, err)
	started, err := f.st.TransitionTask(f.ctx, tenant, tasks[60].ID, domain.TaskRunning, nil)
	require.NoError(t, err)
	tasks[60] = started

	deadline := f.now.Add(2 * time.Hour)
	send := make([]domain.Task, len(tasks))
	for i, tk := range tasks {
		tk.NotBefore, tk.Deadline = f.now.Add(time.Second), deadline
		send[i] = tk
	}
	f.now = f.now.Add(time.Minute)
	errs := f.st.MarkTasksQueued(f.ctx, send)
	require.Len(t, errs, len(send))
	for i, err := range errs {
		got, gerr := f.st.GetTask(f.ctx, tenant, tasks[i].ID)
		require.NoError(t, gerr)
		if i == 50 || i == 60 {
			var te *domain.TransitionError
			require.ErrorAs(t, err, &te, "task %d", i)
			assert.Equal(t, domain.TransitionError{TaskID: tasks[i].ID, Current: domain.TaskRunning, To: domain.TaskQueued}, *te, "task %d", i)
			assert.Equal(t, domain.TaskRunning, got.Status, "task %d is left as it is", i)
			continue
		}
		require.NoError(t, err, "task %d", i)
		assert.Equal(t, domain.TaskQueued, got.Status, "task %d", i)
		assert.Equal(t, send[i].NotBefore, got.NotBefore, "task %d takes its message's times", i)
		assert.Equal(t, deadline, got.Deadline, "task %d", i)
		assert.Nil(t, got.NextRetryAt, "task %d", i)
		assert.Equal(t, f.now, got.UpdatedAt, "task %d", i)
	}
	n, err := f.st.CountActiveTasks(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, len(tasks), n, "queued and running tasks stay active")
	assert.ElementsMatch(t, idsOf(tasks, taskID), activeIDs(t, f, tenant, a.ID), "the retries rejoined the agent's capacity item")
	assert.Empty(t, dueNames(f.due(deadline.Add(-time.Second))), "queued tasks are due only at their deadline")
	assert.Len(t, dueNames(f.due(deadline)), len(tasks)-2, "then all of them are")
}
