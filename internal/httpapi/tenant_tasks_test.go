package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv/queuetest"
)

// drainTaskQueue takes the task messages waiting in an agent's queue, each once however often
// SQS delivers it.
func drainTaskQueue(t *testing.T, h *harness, queueURL string) []events.TaskMessage {
	t.Helper()
	return h.inbox(queueURL).Take()
}

// TestTenantRunTaskNowSendsEveryType runs every task type now. The API sends every message
// twice, as the SDK does when it retries a send whose answer was lost: each task still arrives,
// nothing else does, and each is queued once.
func TestTenantRunTaskNowSendsEveryType(t *testing.T) {
	h := newHarness(t, queuetest.SendBatchesTwice)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	inbox := h.inbox(a.QueueURL)
	w.repository("repo-main")
	p := w.policy("nightly", "repo-main")
	w.assign(p.ID, a.ID)

	cases := map[domain.TaskType]struct {
		body  map[string]any
		check func(t *testing.T, m events.TaskMessage)
	}{
		domain.TaskBackup: {map[string]any{"policyId": p.ID}, func(t *testing.T, m events.TaskMessage) {
			require.NotNil(t, m.Backup)
			assert.Equal(t, []string{"/data"}, m.Backup.Paths)
		}},
		domain.TaskForget: {map[string]any{"policyId": p.ID, "params": map[string]any{"prune": true}}, func(t *testing.T, m events.TaskMessage) {
			require.NotNil(t, m.Retention, "the retention comes from the policy")
			assert.Equal(t, 7, m.Retention.KeepDaily)
			assert.True(t, m.Prune)
		}},
		domain.TaskCheck: {map[string]any{"repository": "repo-main", "params": map[string]any{"readDataSubset": "1/5"}}, func(t *testing.T, m events.TaskMessage) {
			assert.Equal(t, "1/5", m.ReadDataSubset)
		}},
		domain.TaskPrune:     {map[string]any{"policyId": p.ID}, nil},
		domain.TaskUnlock:    {map[string]any{"repository": "repo-main"}, nil},
		domain.TaskSnapshots: {map[string]any{"repository": "repo-main"}, nil},
		domain.TaskRestore: {map[string]any{"repository": "repo-main", "params": map[string]any{
			"snapshotId": "latest", "target": "/srv/restore", "includePaths": []string{"/data/www"}, "verify": true,
		}}, func(t *testing.T, m events.TaskMessage) {
			require.NotNil(t, m.Restore)
			assert.Equal(t, events.RestoreSpec{SnapshotID: "latest", Target: "/srv/restore", IncludePaths: []string{"/data/www"}, Verify: true}, *m.Restore)
		}},
	}
	for typ, tc := range cases {
		body := map[string]any{"type": typ, "agentId": a.ID}
		for k, v := range tc.body {
			body[k] = v
		}
		res := h.call(http.MethodPost, "/v1/tasks", w.operator, body)
		tenantStatus(t, http.StatusCreated, res, typ)
		var task domain.Task
		res.JSON(t, &task)
		assert.Equal(t, domain.TaskQueued, task.Status, typ)
		assert.Equal(t, "operator", task.Trigger, typ)
		assert.Equal(t, "repo-main", task.Repository, typ)
		assert.Equal(t, h.clock.Add(time.Hour), task.Deadline, "%s: start within an hour by default", typ)
		assert.Equal(t, "/v1/tasks/"+task.ID, res.Header["Location"])

		m := inbox.RequireTasks(task.ID)[0]
		assert.Equal(t, typ, m.TaskType)
		assert.Equal(t, a.ID, m.AgentID)
		if tc.check != nil {
			tc.check(t, m)
		}
		stored, err := h.store.GetTask(context.Background(), w.id, task.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.TaskQueued, stored.Status, typ)
	}

	res := h.call(http.MethodPost, "/v1/tasks", w.operator, map[string]any{"type": "check", "agentId": a.ID, "repository": "repo-main", "startWithin": "3h"})
	tenantStatus(t, http.StatusCreated, res)
	var task domain.Task
	res.JSON(t, &task)
	assert.Equal(t, h.clock.Add(3*time.Hour), task.Deadline)
	inbox.RequireTasks(task.ID)

	tasks, _, err := h.store.ListTasks(context.Background(), w.id, store.TaskFilter{}, store.Page{})
	require.NoError(t, err)
	assert.Len(t, tasks, len(cases)+1, "one task for each request, however often its message was sent")
}

func TestTenantRunTaskRefusesWhatCannotRun(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	w.repository("repo-main")
	w.repository("repo-other")
	p := w.policy("nightly", "repo-main")
	unassigned := w.policy("weekly", "repo-main")
	w.assign(p.ID, a.ID)
	missing := domain.NewID(h.clock)

	for name, tc := range map[string]struct {
		body   map[string]any
		fields []string
	}{
		"unknown type":              {map[string]any{"type": "defrag", "agentId": a.ID, "repository": "repo-main"}, []string{"type"}},
		"no agent":                  {map[string]any{"type": "check", "repository": "repo-main"}, []string{"agentId"}},
		"missing agent":             {map[string]any{"type": "check", "agentId": missing, "repository": "repo-main"}, []string{"agentId"}},
		"backup without policy":     {map[string]any{"type": "backup", "agentId": a.ID, "repository": "repo-main"}, []string{"policyId"}},
		"backup of unassigned":      {map[string]any{"type": "backup", "agentId": a.ID, "policyId": unassigned.ID}, []string{"agentId"}},
		"forget without policy":     {map[string]any{"type": "forget", "agentId": a.ID, "repository": "repo-main"}, []string{"policyId"}},
		"missing policy":            {map[string]any{"type": "prune", "agentId": a.ID, "policyId": missing}, []string{"policyId"}},
		"not a policy ID":           {map[string]any{"type": "prune", "agentId": a.ID, "policyId": "nightly"}, []string{"policyId"}},
		"no repository":             {map[string]any{"type": "unlock", "agentId": a.ID}, []string{"repository"}},
		"missing repository":        {map[string]any{"type": "unlock", "agentId": a.ID, "repository": "repo-gone"}, []string{"repository"}},
		"other repository":          {map[string]any{"type": "check", "agentId": a.ID, "policyId": p.ID, "repository": "repo-other"}, []string{"repository"}},
		"restore climbing target":   {map[string]any{"type": "restore", "agentId": a.ID, "repository": "repo-main", "params": map[string]any{"snapshotId": "latest", "target": "/srv/../etc"}}, []string{"params.target"}},
		"restore climbing path":     {map[string]any{"type": "restore", "agentId": a.ID, "repository": "repo-main", "params": map[string]any{"snapshotId": "latest", "includePaths": []string{"/srv/../etc"}}}, []string{"params.includePaths[0]"}},
		"ls without snapshot":       {map[string]any{"type": "ls", "agentId": a.ID, "repository": "repo-main", "params": map[string]any{"path": "/srv"}}, []string{"params.snapshotId"}},
		"ls of a relative path":     {map[string]any{"type": "ls", "agentId": a.ID, "repository": "repo-main", "params": map[string]any{"snapshotId": "latest", "path": "srv"}}, []string{"params.path"}},
		"ls with a target":          {map[string]any{"type": "ls", "agentId": a.ID, "repository": "repo-main", "params": map[string]any{"snapshotId": "latest", "target": "/srv"}}, []string{"params.target"}},
		"restore relative target":   {map[string]any{"type": "restore", "agentId": a.ID, "repository": "repo-main", "params": map[string]any{"snapshotId": "latest", "target": "restore"}}, []string{"params.target"}},
		"restore without snapshot":  {map[string]any{"type": "restore", "agentId": a.ID, "repository": "repo-main", "params": map[string]any{"target": "/srv"}}, []string{"params.snapshotId"}},
		"restore option-like ID":    {map[string]any{"type": "restore", "agentId": a.ID, "repository": "repo-main", "params": map[string]any{"snapshotId": "--help", "target": "/srv"}}, []string{"params.snapshotId"}},
		"parameter of another type": {map[string]any{"type": "backup", "agentId": a.ID, "policyId": p.ID, "params": map[string]any{"snapshotId": "latest", "prune": true}}, []string{"params.snapshotId", "params.prune"}},
		"bad read-data-subset":      {map[string]any{"type": "check", "agentId": a.ID, "repository": "repo-main", "params": map[string]any{"readDataSubset": "0/5"}}, []string{"params.readDataSubset"}},
		"start window too long":     {map[string]any{"type": "check", "agentId": a.ID, "repository": "repo-main", "startWithin": "30d"}, []string{"startWithin"}},
		"everything wrong": {map[string]any{"type": "restore", "agentId": "web-1", "repository": "a b", "startWithin": "x", "params": map[string]any{"target": "rel"}},
			[]string{"agentId", "repository", "startWithin", "params.snapshotId", "params.target"}},
	} {
		res := h.call(http.MethodPost, "/v1/tasks", w.operator, tc.body)
		tenantStatus(t, http.StatusUnprocessableEntity, res, name)
		assert.ElementsMatch(t, tc.fields, res.ErrorFields(t), name)
	}
	tasks, _, err := h.store.ListTasks(context.Background(), w.id, store.TaskFilter{}, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, tasks, "no refused task was stored")
	assert.Empty(t, drainTaskQueue(t, h, a.QueueURL), "nor sent")
}

func TestTenantRunTaskStaysPendingWhenTheQueueIsGone(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	w.repository("repo-main")
	require.NoError(t, h.queues.Delete(context.Background(), w.id, a.ID))

	res := h.call(http.MethodPost, "/v1/tasks", w.operator, map[string]any{"type": "unlock", "agentId": a.ID, "repository": "repo-main"})
	tenantStatus(t, http.StatusCreated, res)
	var task domain.Task
	res.JSON(t, &task)
	assert.Equal(t, domain.TaskPending, task.Status, "the scheduler sends pending tasks on its next tick")
	stored, err := h.store.GetTask(context.Background(), w.id, task.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.TaskPending, stored.Status)
}

func TestTenantTasksListGetCancel(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	b := w.agent("web-2", nil)
	w.repository("repo-main")

	run := func(agent, typ string) domain.Task {
		res := h.call(http.MethodPost, "/v1/tasks", w.operator, map[string]any{"type": typ, "agentId": agent, "repository": "repo-main"})
		tenantStatus(t, http.StatusCreated, res)
		var task domain.Task
		res.JSON(t, &task)
		h.clock = h.clock.Add(time.Minute)
		return task
	}
	t1 := run(a.ID, "check")
	t2 := run(a.ID, "unlock")
	t3 := run(b.ID, "check")
	h.inbox(a.QueueURL).RequireTasks(t1.ID, t2.ID)
	h.inbox(b.QueueURL).RequireTasks(t3.ID)

	taskIDs := func(path string) []string {
		t.Helper()
		res := h.call(http.MethodGet, path, w.viewer, nil)
		tenantStatus(t, http.StatusOK, res, path)
		var list struct{ Items []domain.Task }
		res.JSON(t, &list)
		out := []string{}
		for _, task := range list.Items {
			out = append(out, task.ID)
		}
		return out
	}
	assert.Equal(t, []string{t3.ID, t2.ID, t1.ID}, taskIDs("/v1/tasks"), "newest first")
	assert.Equal(t, []string{t2.ID, t1.ID}, taskIDs("/v1/tasks?agentId="+a.ID))
	assert.Equal(t, []string{t3.ID, t1.ID}, taskIDs("/v1/tasks?type=check"))
	assert.Equal(t, []string{t1.ID}, taskIDs("/v1/tasks?type=check&agentId="+a.ID))
	from, to := t1.CreatedAt.Add(30*time.Second).Format(time.RFC3339), t2.CreatedAt.Add(30*time.Second).Format(time.RFC3339)
	assert.Equal(t, []string{t2.ID}, taskIDs("/v1/tasks?from="+from+"&to="+to))
	assert.Equal(t, []string{t3.ID, t2.ID}, taskIDs("/v1/tasks?from="+from))
	assert.Equal(t, []string{t3.ID, t2.ID, t1.ID}, taskIDs("/v1/tasks?status=queued"))
	assert.Equal(t, []string{t1.ID}, taskIDs("/v1/tasks?limit=1&cursor="+firstPageCursor(t, h, w, "/v1/tasks?limit=2")))

	res := h.call(http.MethodGet, "/v1/tasks/"+t1.ID, w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var got domain.Task
	res.JSON(t, &got)
	assert.Equal(t, t1.ID, got.ID)
	assert.Equal(t, domain.TaskQueued, got.Status)

	// A queued task is cancelled at once; a finished one cannot be.
	res = h.call(http.MethodPost, "/v1/tasks/"+t1.ID+"/cancel", w.viewer, nil)
	tenantStatus(t, http.StatusForbidden, res)
	res = h.call(http.MethodPost, "/v1/tasks/"+t1.ID+"/cancel", w.operator, nil)
	tenantStatus(t, http.StatusOK, res)
	var cancelled domain.Task
	res.JSON(t, &cancelled)
	assert.Equal(t, domain.TaskCancelled, cancelled.Status)
	require.NotNil(t, cancelled.FinishedAt)
	assert.Equal(t, "cancelled by an operator", cancelled.Error)
	res = h.call(http.MethodPost, "/v1/tasks/"+t1.ID+"/cancel", w.operator, nil)
	tenantStatus(t, http.StatusConflict, res, "cancelled already")

	// A running task is marked cancelled; its agent learns of it when it next reports.
	_, err := h.store.TransitionTask(context.Background(), w.id, t2.ID, domain.TaskRunning, nil)
	require.NoError(t, err)
	res = h.call(http.MethodPost, "/v1/tasks/"+t2.ID+"/cancel", w.operator, nil)
	tenantStatus(t, http.StatusOK, res)
	_, err = h.store.TransitionTask(context.Background(), w.id, t2.ID, domain.TaskSucceeded, nil)
	var te *domain.TransitionError
	assert.ErrorAs(t, err, &te, "the agent's late result is refused")

	_, err = h.store.TransitionTask(context.Background(), w.id, t3.ID, domain.TaskRunning, nil)
	require.NoError(t, err)
	_, err = h.store.TransitionTask(context.Background(), w.id, t3.ID, domain.TaskSucceeded, nil)
	require.NoError(t, err)
	res = h.call(http.MethodPost, "/v1/tasks/"+t3.ID+"/cancel", w.operator, nil)
	tenantStatus(t, http.StatusConflict, res, "finished")
	res = h.call(http.MethodPost, "/v1/tasks/"+domain.NewID(h.clock)+"/cancel", w.operator, nil)
	tenantStatus(t, http.StatusNotFound, res)
	res = h.call(http.MethodGet, "/v1/tasks/"+domain.NewID(h.clock), w.viewer, nil)
	tenantStatus(t, http.StatusNotFound, res)
}

// nextCursor returns the cursor a listing's first page ends with.
func firstPageCursor(t *testing.T, h *harness, w *tenantWorld, path string) string {
	t.Helper()
	res := h.call(http.MethodGet, path, w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var page struct {
		NextCursor string `json:"nextCursor"`
	}
	res.JSON(t, &page)
	require.NotEmpty(t, page.NextCursor, "%s has no next page", path)
	return page.NextCursor
}

func TestTenantRunsAndLogs(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	b := w.agent("web-2", nil)
	w.repository("repo-main")
	p := w.policy("nightly", "repo-main")
	q := w.policy("hourly", "repo-main")
	old := w.run(a.ID, p.ID, domain.TaskSucceeded, h.clock.Add(-48*time.Hour))
	failed := w.run(a.ID, q.ID, domain.TaskFailed, h.clock.Add(-2*time.Hour))
	logged := w.run(b.ID, p.ID, domain.TaskSucceeded, h.clock.Add(-time.Hour),
		[]string{"open repository", "lock repository"}, []string{"load index files"}, []string{"processed 312 files", "snapshot 4f8a2c1e saved"})

	runIDsAt := func(path string) []string {
		t.Helper()
		res := h.call(http.MethodGet, path, w.viewer, nil)
		tenantStatus(t, http.StatusOK, res, path)
		var list struct{ Items []domain.Run }
		res.JSON(t, &list)
		return runIDs(list.Items)
	}
	assert.Equal(t, []string{logged.ID, failed.ID, old.ID}, runIDsAt("/v1/runs"))
	assert.Equal(t, []string{failed.ID, old.ID}, runIDsAt("/v1/runs?agentId="+a.ID))
	assert.Equal(t, []string{logged.ID, old.ID}, runIDsAt("/v1/runs?policyId="+p.ID))
	assert.Equal(t, []string{old.ID}, runIDsAt("/v1/runs?policyId="+p.ID+"&agentId="+a.ID))
	assert.Equal(t, []string{failed.ID}, runIDsAt("/v1/runs?status=failed"))
	assert.Equal(t, []string{logged.ID, failed.ID}, runIDsAt("/v1/runs?since="+h.clock.Add(-24*time.Hour).Format(time.RFC3339)))

	res := h.call(http.MethodGet, "/v1/runs/"+logged.ID, w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var got domain.Run
	res.JSON(t, &got)
	require.NotNil(t, got.Summary, "with restic's summary")
	assert.Equal(t, "4f8a2c1e9b7d", got.Summary.SnapshotID)
	assert.Equal(t, uint64(10), got.Summary.FilesNew)
	assert.Equal(t, int64(5), got.LogLines, "log ingestion is counted on the run")
	res = h.call(http.MethodGet, "/v1/runs/"+domain.NewID(h.clock), w.viewer, nil)
	tenantStatus(t, http.StatusNotFound, res)

	// The log, two chunks a page, in order.
	var lines []string
	path := "/v1/runs/" + logged.ID + "/logs?limit=2"
	for pages := 0; path != ""; pages++ {
		require.Less(t, pages, 3)
		res := h.call(http.MethodGet, path, w.viewer, nil)
		tenantStatus(t, http.StatusOK, res)
		var page struct {
			Items      []domain.LogChunk `json:"items"`
			NextCursor string            `json:"nextCursor"`
		}
		res.JSON(t, &page)
		for _, c := range page.Items {
			lines = append(lines, c.Lines...)
		}
		path = ""
		if page.NextCursor != "" {
			path = "/v1/runs/" + logged.ID + "/logs?limit=2&cursor=" + page.NextCursor
		}
	}
	assert.Equal(t, []string{"open repository", "lock repository", "load index files", "processed 312 files", "snapshot 4f8a2c1e saved"}, lines)

	res = h.call(http.MethodGet, "/v1/runs/"+old.ID+"/logs", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	assert.JSONEq(t, `{"items":[]}`, res.Body, "a run without log has an empty one")
	res = h.call(http.MethodGet, "/v1/runs/"+domain.NewID(h.clock)+"/logs", w.viewer, nil)
	tenantStatus(t, http.StatusNotFound, res)
}
