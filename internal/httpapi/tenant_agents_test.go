package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

type agentPage struct {
	Items      []domain.Agent `json:"items"`
	NextCursor string         `json:"nextCursor"`
}

func agentIDs(agents []domain.Agent) []string {
	out := make([]string, len(agents))
	for i, a := range agents {
		out[i] = a.ID
	}
	return out
}

func TestTenantAgentsListFiltersAndPages(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	web := w.agent("web-1", map[string]string{"env": "prod", "role": "web"})
	db := w.agent("db-1", map[string]string{"env": "prod"})
	dev := w.agent("dev-1", map[string]string{"env": "dev"})
	_, err := h.store.ModifyAgent(context.Background(), w.id, dev.ID, func(a *domain.Agent) error { a.Status = domain.AgentOffline; return nil })
	require.NoError(t, err)

	cases := map[string][]string{
		"/v1/agents":                              {web.ID, db.ID, dev.ID},
		"/v1/agents?status=online":                {web.ID, db.ID},
		"/v1/agents?status=offline":               {dev.ID},
		"/v1/agents?label=env:prod":               {web.ID, db.ID},
		"/v1/agents?label=role":                   {web.ID},
		"/v1/agents?label=env:dev":                {dev.ID},
		"/v1/agents?label=env:staging":            {},
		"/v1/agents?status=online&label=role:web": {web.ID},
	}
	for path, want := range cases {
		res := h.call(http.MethodGet, path, w.viewer, nil)
		tenantStatus(t, http.StatusOK, res, path)
		var got agentPage
		res.JSON(t, &got)
		assert.ElementsMatch(t, want, agentIDs(got.Items), path)
		assert.Empty(t, got.NextCursor, path)
		assert.NotContains(t, res.Body, "secretHash", path)
	}

	// Two pages of two, then one: the cursor continues where the page ended. (IDs made in the
	// same millisecond of the test clock sort at random, so the whole listing is the reference.)
	res := h.call(http.MethodGet, "/v1/agents", w.viewer, nil)
	var all agentPage
	res.JSON(t, &all)
	var seen []string
	path := "/v1/agents?limit=2"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3, "too many pages")
		res := h.call(http.MethodGet, path, w.viewer, nil)
		tenantStatus(t, http.StatusOK, res, path)
		var got agentPage
		res.JSON(t, &got)
		seen = append(seen, agentIDs(got.Items)...)
		if got.NextCursor == "" {
			break
		}
		path = "/v1/agents?limit=2&cursor=" + got.NextCursor
	}
	assert.Equal(t, agentIDs(all.Items), seen)
}

func TestTenantAgentGetPatchDelete(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", map[string]string{"env": "prod", "old": "x"})

	res := h.call(http.MethodGet, "/v1/agents/"+a.ID, w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var got domain.Agent
	res.JSON(t, &got)
	assert.Equal(t, a.Hostname, got.Hostname)
	assert.NotContains(t, res.Body, "secretHash")
	assert.NotContains(t, res.Body, a.SecretHash)

	// A merge patch sets one label, removes another and raises a limit; the rest stays.
	res = h.call(http.MethodPatch, "/v1/agents/"+a.ID, w.operator, map[string]any{
		"version": got.Version,
		"labels":  map[string]any{"site": "fra1", "old": nil},
		"limits":  map[string]any{"maxConcurrentTasks": 4, "perType": map[string]int{"backup": 2}},
	})
	tenantStatus(t, http.StatusOK, res)
	var patched domain.Agent
	res.JSON(t, &patched)
	assert.Equal(t, map[string]string{"env": "prod", "site": "fra1"}, patched.Labels)
	assert.Equal(t, 4, patched.Limits.MaxConcurrentTasks)
	assert.Equal(t, map[domain.TaskType]int{domain.TaskBackup: 2}, patched.Limits.PerType)
	assert.Equal(t, got.Version+1, patched.Version)
	assert.Equal(t, a.Hostname, patched.Hostname)
	stored, err := h.store.GetAgent(context.Background(), w.id, a.ID)
	require.NoError(t, err)
	assert.Equal(t, patched.Labels, stored.Labels)
	assert.Equal(t, a.SecretHash, stored.SecretHash, "a patch keeps the agent's credential")

	// The version read before the patch is stale now.
	res = h.call(http.MethodPatch, "/v1/agents/"+a.ID, w.operator, map[string]any{"version": got.Version, "labels": map[string]any{"env": "dev"}})
	tenantStatus(t, http.StatusConflict, res)
	// Without a version the patch could overwrite a change made meanwhile.
	res = h.call(http.MethodPatch, "/v1/agents/"+a.ID, w.operator, map[string]any{"labels": map[string]any{"env": "dev"}})
	tenantStatus(t, http.StatusUnprocessableEntity, res)
	assert.Equal(t, []string{"version"}, res.ErrorFields(t))
	// Only labels and limits are the operator's to change.
	res = h.call(http.MethodPatch, "/v1/agents/"+a.ID, w.operator, map[string]any{"version": patched.Version, "hostname": "evil"})
	tenantStatus(t, http.StatusBadRequest, res)
	assert.Equal(t, []string{"hostname"}, res.ErrorFields(t))
	// Invalid limits and labels are named, all at once.
	res = h.call(http.MethodPatch, "/v1/agents/"+a.ID, w.operator, map[string]any{
		"version": patched.Version, "labels": map[string]any{"bad key!": "x"}, "limits": map[string]any{"maxConcurrentTasks": 0, "cpuQuotaPercent": 101},
	})
	tenantStatus(t, http.StatusUnprocessableEntity, res)
	assert.ElementsMatch(t, []string{`labels["bad key!"]`, "limits.maxConcurrentTasks", "limits.cpuQuotaPercent"}, res.ErrorFields(t))
	stored, err = h.store.GetAgent(context.Background(), w.id, a.ID)
	require.NoError(t, err)
	assert.Equal(t, patched.Version, stored.Version, "refused patches change nothing")

	// Deleting takes the queue, the assignment and the slots with it.
	w.repository("repo-main")
	p := w.policy("nightly", "repo-main")
	w.assign(p.ID, a.ID)
	res = h.call(http.MethodDelete, "/v1/agents/"+a.ID, w.viewer, nil)
	tenantStatus(t, http.StatusForbidden, res)
	res = h.call(http.MethodDelete, "/v1/agents/"+a.ID, w.operator, nil)
	tenantStatus(t, http.StatusNoContent, res)
	assert.Empty(t, res.Body)
	_, err = h.store.GetAgent(context.Background(), w.id, a.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound)
	_, err = h.queues.Lookup(context.Background(), w.id, a.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound, "the agent's queue is deleted")
	_, err = h.store.GetSlot(context.Background(), w.id, p.ID, a.ID, domain.SlotBackup)
	assert.ErrorIs(t, err, domain.ErrNotFound)
	agents, _, err := h.store.ListPolicyAgents(context.Background(), w.id, p.ID, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, agents)
	res = h.call(http.MethodDelete, "/v1/agents/"+a.ID, w.operator, nil)
	tenantStatus(t, http.StatusNotFound, res)
	res = h.call(http.MethodGet, "/v1/agents/"+a.ID, w.viewer, nil)
	tenantStatus(t, http.StatusNotFound, res)
}

func TestTenantAgentSubresources(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	other := w.agent("web-2", nil)
	w.repository("repo-main")
	nightly := w.policy("nightly", "repo-main")
	hourly := w.policy("hourly", "repo-main")
	w.assign(nightly.ID, a.ID)
	w.assign(hourly.ID, a.ID, other.ID)

	res := h.call(http.MethodGet, "/v1/agents/"+a.ID+"/policies", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var policies struct{ Items []domain.Policy }
	res.JSON(t, &policies)
	assert.ElementsMatch(t, []string{nightly.ID, hourly.ID}, policyIDs(policies.Items))

	r1 := w.run(a.ID, nightly.ID, domain.TaskSucceeded, h.clock.Add(-2*time.Hour))
	r2 := w.run(a.ID, hourly.ID, domain.TaskFailed, h.clock.Add(-time.Hour))
	w.run(other.ID, hourly.ID, domain.TaskSucceeded, h.clock.Add(-time.Hour))

	res = h.call(http.MethodGet, "/v1/agents/"+a.ID+"/runs", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var runs struct{ Items []domain.Run }
	res.JSON(t, &runs)
	assert.Equal(t, []string{r2.ID, r1.ID}, runIDs(runs.Items), "newest first, this agent's only")
	res = h.call(http.MethodGet, "/v1/agents/"+a.ID+"/runs?status=failed", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	res.JSON(t, &runs)
	assert.Equal(t, []string{r2.ID}, runIDs(runs.Items))
	res = h.call(http.MethodGet, "/v1/agents/"+a.ID+"/runs?policyId="+nightly.ID, w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	res.JSON(t, &runs)
	assert.Equal(t, []string{r1.ID}, runIDs(runs.Items))

	res = h.call(http.MethodGet, "/v1/agents/"+a.ID+"/tasks", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var tasks struct{ Items []domain.Task }
	res.JSON(t, &tasks)
	assert.Len(t, tasks.Items, 2)
	for _, task := range tasks.Items {
		assert.Equal(t, a.ID, task.AgentID)
	}
	res = h.call(http.MethodGet, "/v1/agents/"+a.ID+"/tasks?type=restore", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	res.JSON(t, &tasks)
	assert.Empty(t, tasks.Items)

	snapAt := h.clock.Add(-time.Hour)
	require.NoError(t, h.store.PutSnapshots(context.Background(), w.id, a.ID, []domain.Snapshot{
		{ID: "4f8a2c1e9b7d", Repository: "repo-main", Time: snapAt.Add(-24 * time.Hour), Hostname: "web-1", Paths: []string{"/data"}},
		{ID: "9b7d4f8a2c1e", Repository: "repo-main", Time: snapAt, Hostname: "web-1", Paths: []string{"/data"}},
	}))
	res = h.call(http.MethodGet, "/v1/agents/"+a.ID+"/snapshots", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var snaps struct{ Items []domain.Snapshot }
	res.JSON(t, &snaps)
	require.Len(t, snaps.Items, 2)
	assert.Equal(t, "9b7d4f8a2c1e", snaps.Items[0].ID, "newest first")
	res = h.call(http.MethodGet, "/v1/agents/"+other.ID+"/snapshots", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	assert.JSONEq(t, `{"items":[]}`, res.Body)

	// An agent that does not exist has no sub-resources, not empty ones.
	missing := domain.NewID(h.clock)
	for _, sub := range []string{"policies", "tasks", "runs", "snapshots"} {
		res := h.call(http.MethodGet, "/v1/agents/"+missing+"/"+sub, w.viewer, nil)
		tenantStatus(t, http.StatusNotFound, res, sub)
	}
}

func policyIDs(ps []domain.Policy) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func runIDs(rs []domain.Run) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
