package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestRunsAreCreatedReadAndUpdated(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	task := f.task(tenant, a.ID, func(t *domain.Task) { t.PolicyID = f.id() })
	r := f.run(tenant, task, func(r *domain.Run) { r.AgentSession, r.DeliveryID = "session-1", "delivery-1" })
	got, err := f.st.GetRun(f.ctx, tenant, r.ID)
	require.NoError(t, err)
	assert.Equal(t, r, got)
	assert.Equal(t, tenant, got.TenantID)
	_, err = f.st.GetRun(f.ctx, tenant, f.id())
	assert.ErrorIs(t, err, domain.ErrNotFound)
	_, err = f.st.CreateRun(f.ctx, tenant, r)
	assert.ErrorIs(t, err, domain.ErrConflict, "an ID in use")
	_, err = f.st.CreateRun(f.ctx, tenant, domain.Run{ID: f.id(), AgentID: a.ID, TaskID: "not-an-id"})
	var ve *domain.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, []domain.FieldError{{Field: "taskId", Reason: "must be an ID"}}, ve.Fields)

	updated, err := f.st.UpdateRun(f.ctx, tenant, r.ID, func(r *domain.Run) error {
		r.Progress = &domain.Progress{PercentDone: 0.5, FilesDone: 10}
		r.ID, r.AgentID = f.id(), f.id() // a change cannot move the run
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, r.ID, updated.ID)
	assert.Equal(t, a.ID, updated.AgentID)
	got, err = f.st.GetRun(f.ctx, tenant, r.ID)
	require.NoError(t, err)
	assert.Equal(t, updated, got)
	assert.Equal(t, 0.5, got.Progress.PercentDone)

	refused := errors.New("no")
	_, err = f.st.UpdateRun(f.ctx, tenant, r.ID, func(r *domain.Run) error {
		r.Status = domain.TaskFailed
		return refused
	})
	assert.ErrorIs(t, err, refused)
	got, err = f.st.GetRun(f.ctx, tenant, r.ID)
	require.NoError(t, err)
	assert.Equal(t, updated, got, "an abandoned change writes nothing")
	_, err = f.st.UpdateRun(f.ctx, tenant, f.id(), func(*domain.Run) error { return nil })
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

func TestListRunsFiltersByAgentPolicyStatusAndTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.tenant("other")
	a := f.agent(tenant)
	b := f.agent(tenant)
	p, q := f.id(), f.id()
	var all []domain.Run
	at := func(i int) time.Time { return f.now.Add(time.Duration(i) * time.Minute) }
	for i := range 9 {
		agent := []string{a.ID, b.ID}[i%2]
		policy := []string{p, q, ""}[i%3]
		status := []domain.TaskStatus{domain.TaskSucceeded, domain.TaskFailed}[i%2]
		task := f.task(tenant, agent, func(t *domain.Task) { t.PolicyID = policy })
		all = append(all, f.run(tenant, task, func(r *domain.Run) { r.ID, r.Status = domain.NewID(at(i)), status }))
	}
	theirs := f.agent("other")
	f.run("other", f.task("other", theirs.ID, func(t *domain.Task) { t.PolicyID = p }))
	where := func(keep func(domain.Run) bool) []string {
		var out []string
		for _, r := range all {
			if keep(r) {
				out = append(out, r.ID)
			}
		}
		return reversed(out)
	}
	cases := []struct {
		name   string
		filter store.RunFilter
		want   []string
	}{
		{"all", store.RunFilter{}, where(func(domain.Run) bool { return true })},
		{"agent a", store.RunFilter{AgentID: a.ID}, where(func(r domain.Run) bool { return r.AgentID == a.ID })},
		{"policy p", store.RunFilter{PolicyID: p}, where(func(r domain.Run) bool { return r.PolicyID == p })},
		{"agent b, policy q", store.RunFilter{AgentID: b.ID, PolicyID: q}, where(func(r domain.Run) bool { return r.AgentID == b.ID && r.PolicyID == q })},
		{"failed", store.RunFilter{Status: domain.TaskFailed}, where(func(r domain.Run) bool { return r.Status == domain.TaskFailed })},
		{"since minute 4", store.RunFilter{Since: at(4)}, where(func(r domain.Run) bool { return r.ID >= all[4].ID })},
		{"policy p since minute 2, succeeded", store.RunFilter{PolicyID: p, Since: at(2), Status: domain.TaskSucceeded},
			where(func(r domain.Run) bool {
				return r.PolicyID == p && r.ID >= all[2].ID && r.Status == domain.TaskSucceeded
			})},
		{"agent a since minute 3", store.RunFilter{AgentID: a.ID, Since: at(3)}, where(func(r domain.Run) bool { return r.AgentID == a.ID && r.ID >= all[3].ID })},
		{"since tomorrow", store.RunFilter{Since: at(24 * 60)}, nil},
	}
	for _, c := range cases {
		got, _, err := f.st.ListRuns(f.ctx, tenant, c.filter, store.Page{})
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, nilIfEmpty(idsOf(got, runID)), "%s, newest first", c.name)
		paged, _ := walk(t, 2, func(pg store.Page) ([]domain.Run, string, error) { return f.st.ListRuns(f.ctx, tenant, c.filter, pg) })
		assert.Equal(t, c.want, nilIfEmpty(idsOf(paged, runID)), "%s, two per page", c.name)
	}
}

func TestAppendLogStoresChunksOnceAndCountsThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	r := f.run(tenant, f.task(tenant, a.ID))
	other := f.run(tenant, f.task(tenant, a.ID))

	expires := f.now.Add(7 * 24 * time.Hour)
	chunks := map[int64][]string{
		2: {"third"},
		0: {"first line", "second line"},
		1: {strings.Repeat("x", 1000)},
		3: {"ünïcödé", ""},
	}
	for _, seq := range []int64{2, 0, 3, 1} {
		stored, err := f.st.AppendLog(f.ctx, tenant, domain.LogChunk{RunID: r.ID, Seq: seq, Lines: chunks[seq], Bytes: 999999, ExpiresAt: expires})
		require.NoError(t, err, "chunk %d", seq)
		assert.True(t, stored, "chunk %d", seq)
	}
	stored, err := f.st.AppendLog(f.ctx, tenant, domain.LogChunk{RunID: r.ID, Seq: 1, Lines: []string{"a different chunk 1"}, ExpiresAt: expires})
	require.NoError(t, err)
	assert.False(t, stored, "a sequence number already stored")
	f.chunk(tenant, other.ID, 0, "another run")

	wantBytes := int64(len("third") + len("first line") + len("second line") + 1000 + len("ünïcödé"))
	run, err := f.st.GetRun(f.ctx, tenant, r.ID)
	require.NoError(t, err)
	assert.Equal(t, wantBytes, run.LogBytes, "counted from the lines, not from what the sender claims, and once")
	assert.Equal(t, int64(6), run.LogLines)
	_, usage, err := f.st.GetTenant(f.ctx, tenant)
	require.NoError(t, err)
	assert.Equal(t, store.TenantUsage{LogBytes: wantBytes + int64(len("another run")), LogLines: 7}, usage, "the tenant counts every run")

	listed, _, err := f.st.ListLog(f.ctx, tenant, r.ID, store.Page{})
	require.NoError(t, err)
	require.Len(t, listed, 4)
	for i, c := range listed {
		assert.Equal(t, int64(i), c.Seq, "in sequence order")
		assert.Equal(t, chunks[int64(i)], c.Lines, "chunk %d decompresses to its lines", i)
		assert.Equal(t, r.ID, c.RunID)
		assert.Equal(t, tenant, c.TenantID)
		assert.Equal(t, f.now, c.CreatedAt)
		assert.Equal(t, expires, c.ExpiresAt)
	}
	assert.Equal(t, int64(1000), listed[1].Bytes)
	paged, pages := walk(t, 3, func(p store.Page) ([]domain.LogChunk, string, error) { return f.st.ListLog(f.ctx, tenant, r.ID, p) })
	assert.Equal(t, listed, paged, "three chunks per page")
	assert.Equal(t, 2, pages)
	empty, next, err := f.st.ListLog(f.ctx, tenant, f.id(), store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []domain.LogChunk{}, empty, "a run without a log")
	assert.Empty(t, next)

	raw := f.rawItem("TENANT#"+tenant+"#RUN#"+r.ID, "LOG#0000000000")
	require.NotNil(t, raw)
	ttl, ok := raw[resources.AttrTTL].(*types.AttributeValueMemberN)
	require.True(t, ok, "a log chunk carries the TTL attribute: %v", raw[resources.AttrTTL])
	assert.Equal(t, fmt.Sprint(expires.Unix()), ttl.Value)
	_, compressed := raw["lines"].(*types.AttributeValueMemberB)
	assert.True(t, compressed, "lines are stored compressed")

	var ve *domain.ValidationError
	_, err = f.st.AppendLog(f.ctx, tenant, domain.LogChunk{RunID: r.ID, Seq: 9, ExpiresAt: expires})
	require.ErrorAs(t, err, &ve, "no lines")
	assert.Equal(t, "lines", ve.Fields[0].Field)
	_, err = f.st.AppendLog(f.ctx, tenant, domain.LogChunk{RunID: r.ID, Seq: -1, Lines: []string{"x"}, ExpiresAt: expires})
	require.ErrorAs(t, err, &ve, "a negative sequence number")
	assert.Equal(t, "seq", ve.Fields[0].Field)
	_, err = f.st.AppendLog(f.ctx, tenant, domain.LogChunk{RunID: r.ID, Seq: 9, Lines: []string{"x"}})
	require.ErrorAs(t, err, &ve, "no expiry: the chunk would never expire")
	assert.Equal(t, "expiresAt", ve.Fields[0].Field)
	_, err = f.st.AppendLog(f.ctx, tenant, domain.LogChunk{RunID: f.id(), Seq: 0, Lines: []string{"x"}, ExpiresAt: expires})
	assert.ErrorIs(t, err, domain.ErrNotFound, "an unknown run")
	_, usage, err = f.st.GetTenant(f.ctx, tenant)
	require.NoError(t, err)
	assert.Equal(t, int64(7), usage.LogLines, "refused chunks count nothing")
}

func TestConcurrentLogsAndRunUpdatesLoseNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	r := f.run(tenant, f.task(tenant, a.ID))

	const chunks, updates = 20, 5
	var wg sync.WaitGroup
	errs := make(chan error, chunks+updates)
	for i := range chunks {
		wg.Go(func() {
			_, err := f.st.AppendLog(f.ctx, tenant, domain.LogChunk{RunID: r.ID, Seq: int64(i), Lines: []string{"0123456789"}, ExpiresAt: f.now.Add(time.Hour)})
			errs <- err
		})
	}
	for i := range updates {
		wg.Go(func() {
			_, err := f.st.UpdateRun(f.ctx, tenant, r.ID, func(r *domain.Run) error {
				r.Progress = &domain.Progress{FilesDone: uint64(i + 1)}
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := f.st.GetRun(f.ctx, tenant, r.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(chunks*10), got.LogBytes, "no update wrote back counters it read before a chunk came in")
	assert.Equal(t, int64(chunks), got.LogLines)
	require.NotNil(t, got.Progress)
}

func TestSnapshotsAreListedNewestFirstAndReplaced(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	other := f.agent(tenant)

	// More than one batch of writes, reported oldest first.
	var snaps []domain.Snapshot
	for i := range 30 {
		repo := []string{"main-repo", "offsite-repo"}[i%2]
		snaps = append(snaps, domain.Snapshot{ID: fmt.Sprintf("%08x", i+1), ShortID: fmt.Sprintf("%08x", i+1), Repository: repo,
			Time: f.now.Add(time.Duration(i) * time.Hour), Hostname: "db-1", Paths: []string{"/home"}})
	}
	require.NoError(t, f.st.PutSnapshots(f.ctx, tenant, a.ID, snaps))
	require.NoError(t, f.st.PutSnapshots(f.ctx, tenant, other.ID, snaps[:1]))
	want := make([]string, len(snaps))
	for i, s := range snaps {
		want[len(snaps)-1-i] = s.ID
	}
	snapID := func(s domain.Snapshot) string { return s.ID }
	listed, _, err := f.st.ListSnapshots(f.ctx, tenant, a.ID, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, want, idsOf(listed, snapID), "newest first")
	first := snaps[0]
	first.TenantID, first.AgentID = tenant, a.ID
	assert.Equal(t, first, listed[len(listed)-1])
	paged, _ := walk(t, 7, func(p store.Page) ([]domain.Snapshot, string, error) {
		return f.st.ListSnapshots(f.ctx, tenant, a.ID, p)
	})
	assert.Equal(t, want, idsOf(paged, snapID), "seven per page")

	// Reporting a snapshot again replaces it, also twice in one report.
	again := snaps[3]
	again.Tags = []string{"kept"}
	twice := again
	twice.Tags = []string{"kept", "twice"}
	require.NoError(t, f.st.PutSnapshots(f.ctx, tenant, a.ID, []domain.Snapshot{again, twice}))
	listed, _, err = f.st.ListSnapshots(f.ctx, tenant, a.ID, store.Page{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, listed, 30)
	assert.Equal(t, []string{"kept", "twice"}, listed[len(listed)-4].Tags, "the last report of a snapshot counts")

	var ve *domain.ValidationError
	err = f.st.PutSnapshots(f.ctx, tenant, a.ID, []domain.Snapshot{{ID: "feedface", Repository: "main-repo", Time: f.now.Add(-time.Hour)}, {ID: "NOT-HEX", Repository: "main-repo", Time: f.now}})
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "id", ve.Fields[0].Field)
	listed, _, err = f.st.ListSnapshots(f.ctx, tenant, a.ID, store.Page{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, listed, 30, "a report with an invalid snapshot stores none of them")
	require.NoError(t, f.st.PutSnapshots(f.ctx, tenant, a.ID, nil), "an empty report")

	// The main repository's inventory now holds only its two newest snapshots and a new one.
	var mainRepo []domain.Snapshot
	for _, s := range snaps {
		if s.Repository == "main-repo" {
			mainRepo = append(mainRepo, s)
		}
	}
	keep := append(mainRepo[len(mainRepo)-2:], domain.Snapshot{ID: "abcdef01", Time: f.now.Add(100 * time.Hour), Hostname: "db-1"})
	removed, err := f.st.ReplaceSnapshots(f.ctx, tenant, a.ID, "main-repo", keep)
	require.NoError(t, err)
	assert.Equal(t, len(mainRepo)-2, removed)
	listed, _, err = f.st.ListSnapshots(f.ctx, tenant, a.ID, store.Page{Limit: 100})
	require.NoError(t, err)
	byRepo := map[string]int{}
	for _, s := range listed {
		byRepo[s.Repository]++
	}
	assert.Equal(t, map[string]int{"main-repo": 3, "offsite-repo": 15}, byRepo, "the other repository's snapshots stay")
	assert.Equal(t, "abcdef01", listed[0].ID)
	theirs, _, err := f.st.ListSnapshots(f.ctx, tenant, other.ID, store.Page{})
	require.NoError(t, err)
	assert.Len(t, theirs, 1, "another agent's snapshots stay")
}

func TestUpdateTaskRunWritesTaskAndRunTogether(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	task := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskQueued })

	// A start: the task runs, with a new run.
	runID := f.id()
	calls := 0
	ch, err := f.st.UpdateTaskRun(f.ctx, tenant, task.ID, "", func(tk domain.Task, r *domain.Run) (store.TaskRunChange, error) {
		calls++
		assert.Nil(t, r, "the task has no run yet")
		assert.Equal(t, domain.TaskQueued, tk.Status)
		tk.Status, tk.RunID, tk.StartedAt = domain.TaskRunning, runID, ptr(f.now)
		return store.TaskRunChange{Task: &tk, NewRun: &domain.Run{ID: runID, Type: tk.Type, Attempt: 1, Status: domain.TaskRunning, StartedAt: f.now}}, nil
	})
	require.NoError(t, err)
	assert.Equal(t, 1, calls)
	assert.Equal(t, tenant, ch.NewRun.TenantID, "the change comes back as stored")
	assert.Equal(t, task.ID, ch.NewRun.TaskID)
	assert.Equal(t, a.ID, ch.NewRun.AgentID)
	got, err := f.st.GetTask(f.ctx, tenant, task.ID)
	require.NoError(t, err)
	assert.Equal(t, *ch.Task, got)
	run, err := f.st.GetRun(f.ctx, tenant, runID)
	require.NoError(t, err)
	assert.Equal(t, *ch.NewRun, run)

	// A result, racing an operator's cancellation and a log chunk: decided again on what won.
	f.now = f.now.Add(time.Minute)
	calls = 0
	ch, err = f.st.UpdateTaskRun(f.ctx, tenant, task.ID, runID, func(tk domain.Task, r *domain.Run) (store.TaskRunChange, error) {
		calls++
		if calls == 1 {
			_, err := f.st.TransitionTask(f.ctx, tenant, task.ID, domain.TaskCancelled, nil)
			require.NoError(t, err)
			f.chunk(tenant, runID, 0, "late line")
		}
		require.NotNil(t, r)
		done := *r
		done.Status, done.FinishedAt = domain.TaskSucceeded, ptr(f.now)
		if tk.Status == domain.TaskRunning {
			tk.Status = domain.TaskSucceeded
		}
		return store.TaskRunChange{Task: &tk, Run: &done}, nil
	})
	require.NoError(t, err)
	assert.Equal(t, 2, calls, "the first decision was made on a task and run that changed")
	got, err = f.st.GetTask(f.ctx, tenant, task.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.TaskCancelled, got.Status, "the cancellation stands")
	run, err = f.st.GetRun(f.ctx, tenant, runID)
	require.NoError(t, err)
	assert.Equal(t, domain.TaskSucceeded, run.Status)
	assert.Equal(t, int64(1), run.LogLines, "the chunk counted meanwhile is kept")

	// Decisions that write nothing, or cannot be written.
	before, err := f.st.GetTask(f.ctx, tenant, task.ID)
	require.NoError(t, err)
	refused := errors.New("refused")
	_, err = f.st.UpdateTaskRun(f.ctx, tenant, task.ID, runID, func(t domain.Task, r *domain.Run) (store.TaskRunChange, error) {
		t.Status = domain.TaskFailed
		return store.TaskRunChange{Task: &t}, refused
	})
	assert.ErrorIs(t, err, refused)
	_, err = f.st.UpdateTaskRun(f.ctx, tenant, task.ID, runID, func(domain.Task, *domain.Run) (store.TaskRunChange, error) {
		return store.TaskRunChange{}, nil
	})
	assert.NoError(t, err, "no change")
	_, err = f.st.UpdateTaskRun(f.ctx, tenant, task.ID, runID, func(domain.Task, *domain.Run) (store.TaskRunChange, error) {
		return store.TaskRunChange{Retry: &store.RetryUse{At: f.now, Limit: 5}}, nil
	})
	assert.Error(t, err, "a retry without the task it schedules")
	_, err = f.st.UpdateTaskRun(f.ctx, tenant, task.ID, runID, func(t domain.Task, r *domain.Run) (store.TaskRunChange, error) {
		other := *r
		other.ID = f.id()
		return store.TaskRunChange{Run: &other}, nil
	})
	assert.Error(t, err, "replacing a run that was not read")
	after, err := f.st.GetTask(f.ctx, tenant, task.ID)
	require.NoError(t, err)
	assert.Equal(t, before, after, "none of them changed the task")

	_, err = f.st.UpdateTaskRun(f.ctx, tenant, f.id(), "", func(domain.Task, *domain.Run) (store.TaskRunChange, error) {
		t.Error("decide is not called for a task that does not exist")
		return store.TaskRunChange{}, nil
	})
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

func TestRetriesAreCountedAgainstTheAgentsHourlyBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	hour := f.now.Truncate(time.Hour)

	retry := func(limit int) (calls int, ch store.TaskRunChange) {
		t.Helper()
		task := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskRunning })
		ch, err := f.st.UpdateTaskRun(f.ctx, tenant, task.ID, "", func(t domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
			calls++
			if calls == 1 {
				t.Status, t.NextRetryAt = domain.TaskRetrying, ptr(f.now.Add(time.Minute))
				return store.TaskRunChange{Task: &t, Retry: &store.RetryUse{At: f.now, Limit: limit}}, nil
			}
			// Decided again: the budget is spent, so the task fails for good.
			t.Status = domain.TaskFailed
			return store.TaskRunChange{Task: &t}, nil
		})
		require.NoError(t, err)
		return calls, ch
	}
	used := func(at time.Time) int {
		t.Helper()
		n, err := f.st.RetriesThisHour(f.ctx, tenant, a.ID, at)
		require.NoError(t, err)
		return n
	}

	assert.Equal(t, 0, used(f.now))
	for i := range 2 {
		calls, ch := retry(2)
		assert.Equal(t, 1, calls, "retry %d fits the budget", i)
		assert.Equal(t, domain.TaskRetrying, ch.Task.Status)
	}
	assert.Equal(t, 2, used(f.now))
	assert.Equal(t, 2, used(hour.Add(59*time.Minute)), "the same hour")
	calls, ch := retry(2)
	assert.Equal(t, 2, calls, "the third retry does not fit, and the change is decided again")
	assert.Equal(t, domain.TaskFailed, ch.Task.Status)
	assert.Equal(t, 2, used(f.now), "a refused retry is not counted")
	assert.Equal(t, 0, used(hour.Add(time.Hour)), "the next hour has its own budget")
	assert.Equal(t, 0, used(hour.Add(-time.Second)), "and so had the one before")

	raw := f.rawItem("TENANT#"+tenant+"#AGENT#"+a.ID, "RETRIES#"+hour.Format("2006-01-02T15"))
	require.NotNil(t, raw)
	ttl, ok := raw[resources.AttrTTL].(*types.AttributeValueMemberN)
	require.True(t, ok, "the budget carries the TTL attribute")
	assert.Equal(t, fmt.Sprint(hour.Add(25*time.Hour).Unix()), ttl.Value)

	task := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskRunning })
	_, err := f.st.UpdateTaskRun(f.ctx, tenant, task.ID, "", func(t domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
		t.Status = domain.TaskRetrying
		return store.TaskRunChange{Task: &t, Retry: &store.RetryUse{At: f.now}}, nil
	})
	assert.Error(t, err, "a budget of zero")
}
