package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// tenantState is everything of one tenant that the isolation test watches, as JSON.
func tenantState(t *testing.T, h *harness, tenantID string, ids map[string]string) string {
	t.Helper()
	ctx := context.Background()
	state := map[string]any{}
	must := func(name string, v any, err error) {
		t.Helper()
		require.NoError(t, err, name)
		state[name] = v
	}
	agent, err := h.store.GetAgent(ctx, tenantID, ids["agentId"])
	must("agent", agent, err)
	agent.SecretHash = "" // compared apart, below
	repo, err := h.store.GetRepository(ctx, tenantID, ids["name"])
	must("repository", repo, err)
	policy, err := h.store.GetPolicy(ctx, tenantID, ids["policyId"])
	must("policy", policy, err)
	slots, _, err := h.store.ListPolicySlots(ctx, tenantID, ids["policyId"], store.Page{})
	must("slots", slots, err)
	assigned, _, err := h.store.ListPolicyAgents(ctx, tenantID, ids["policyId"], store.Page{})
	must("assigned", assigned, err)
	task, err := h.store.GetTask(ctx, tenantID, ids["taskId"])
	must("task", task, err)
	run, err := h.store.GetRun(ctx, tenantID, ids["runId"])
	must("run", run, err)
	logs, _, err := h.store.ListLog(ctx, tenantID, ids["runId"], store.Page{})
	must("logs", logs, err)
	snaps, _, err := h.store.ListSnapshots(ctx, tenantID, ids["agentId"], store.Page{})
	must("snapshots", snaps, err)
	token, err := h.store.LookupEnrollmentToken(ctx, ids["tokenId"])
	must("token", token, err)
	key, err := h.store.LookupAPIKey(ctx, ids["keyId"])
	key.LastUsedAt = nil // touched by every authenticated call of its own tenant
	must("key", key, err)
	_, err = h.queues.Lookup(ctx, tenantID, ids["agentId"])
	must("queue", err == nil, err)
	b, err := json.Marshal(state)
	require.NoError(t, err)
	return string(b)
}

func TestTenantIsolation(t *testing.T) {
	h := newHarness(t)
	h.clock = time.Now().UTC().Truncate(time.Second) // the enrollment token must outlive the table's TTL sweep
	a := newTenantWorld(h, "tenant-a")
	b := newTenantWorld(h, "tenant-b")

	// Tenant A has one of everything.
	agentA := a.agent("a-web-1", map[string]string{"env": "prod"})
	a.repository("a-private-repo")
	policyA := a.policy("a-nightly", "a-private-repo")
	a.assign(policyA.ID, agentA.ID)
	res := h.call(http.MethodPost, "/v1/tasks", a.operator, map[string]any{"type": "check", "agentId": agentA.ID, "repository": "a-private-repo"})
	tenantStatus(t, http.StatusCreated, res)
	var taskA domain.Task
	res.JSON(t, &taskA)
	runA := a.run(agentA.ID, policyA.ID, domain.TaskSucceeded, h.clock.Add(-time.Hour), []string{"a secret line of log"})
	require.NoError(t, h.store.PutSnapshots(context.Background(), a.id, agentA.ID, []domain.Snapshot{
		{ID: "4f8a2c1e9b7d", Repository: "a-private-repo", Time: h.clock.Add(-time.Hour), Hostname: "a-web-1", Paths: []string{"/data"}},
	}))
	res = h.call(http.MethodPost, "/v1/enrollment-tokens", a.operator, map[string]any{"description": "a's rack"})
	tenantStatus(t, http.StatusCreated, res)
	var tokenA createdToken
	res.JSON(t, &tokenA)
	res = h.call(http.MethodPost, "/v1/api-keys", a.admin, map[string]any{"name": "a-ci", "role": "operator"})
	tenantStatus(t, http.StatusCreated, res)
	var keyA createdKey
	res.JSON(t, &keyA)

	channelA := a.channel("a-ops")

	// Tenant B has its own, named alike where names are per tenant.
	agentB := b.agent("b-web-1", nil)
	b.repository("b-repo")
	policyB := b.policy("b-nightly", "b-repo")

	ids := map[string]string{
		"agentId": agentA.ID, "policyId": policyA.ID, "taskId": taskA.ID, "runId": runA.ID,
		"tokenId": tokenA.ID, "keyId": keyA.ID, "name": "a-private-repo", "channelId": channelA.ID,
		"snapshotId": "4f8a2c1e",
	}
	validBody := map[string]any{
		"PATCH /v1/agents/{agentId}":                  map[string]any{"version": agentA.Version, "labels": map[string]any{"env": "b-was-here"}},
		"PUT /v1/repositories/{name}":                 map[string]any{"backend": "local", "location": "/b", "version": 1},
		"PUT /v1/policies/{policyId}":                 mergeInto(tenantPolicyBody("b-took-it", "b-repo"), map[string]any{"version": policyA.Version}),
		"PATCH /v1/policies/{policyId}":               map[string]any{"version": policyA.Version, "paths": []string{"/b"}},
		"POST /v1/policies/{policyId}/agents":         map[string]any{"agentIds": []string{agentB.ID}},
		"POST /v1/tasks/{taskId}/cancel":              nil,
		"PATCH /v1/notification-channels/{channelId}": map[string]any{"version": channelA.Version, "name": "b-was-here"},
		"DELETE /v1/policies/{policyId}":              nil,
		"DELETE /v1/agents/{agentId}":                 nil,
		"DELETE /v1/repositories/{name}":              nil,
		"DELETE /v1/enrollment-tokens/{tokenId}":      nil,
		"DELETE /v1/api-keys/{keyId}":                 nil,
	}
	before := tenantState(t, h, a.id, ids)
	secretBefore := agentA.SecretHash

	cases := 0
	for _, r := range httpapi.TenantRoutes(h.deps) {
		if !strings.Contains(r.Pattern, "{") {
			continue
		}
		key := r.Method + " " + r.Pattern
		body := validBody[key]
		path := concretePath(h, r.Pattern, ids)
		if r.Method == http.MethodDelete && r.Pattern == "/v1/policies/{policyId}" {
			path += "?force=true"
		}
		res := h.call(r.Method, path, b.admin, body)
		tenantStatus(t, http.StatusNotFound, res, key, " with tenant B's key on tenant A's resource")
		assert.NotContains(t, res.Body, "tenant-a", key)
		// Exactly what a resource that does not exist gets.
		missing := concretePath(h, r.Pattern, map[string]string{"name": "no-such-repo", "snapshotId": "4f8a2c1e"})
		if strings.HasSuffix(path, "?force=true") {
			missing += "?force=true"
		}
		other := h.call(r.Method, missing, b.admin, body)
		assert.Equal(t, other.Status, res.Status, key)
		assert.JSONEq(t, other.Body, res.Body, key)
		cases++
	}
	assert.Equal(t, before, tenantState(t, h, a.id, ids), "tenant B changed nothing of tenant A's")
	stillA, err := h.store.GetAgent(context.Background(), a.id, agentA.ID)
	require.NoError(t, err)
	assert.Equal(t, secretBefore, stillA.SecretHash)
	_, _, _, ok := auth.Parse(tokenA.Token)
	assert.True(t, ok)

	// Listings, filters and references with A's IDs show B nothing of A's.
	forbiddenText := []string{agentA.ID, policyA.ID, taskA.ID, runA.ID, tokenA.ID, keyA.ID, "a-private-repo", "tenant-a", "a secret line"}
	lists := []string{
		"/v1/agents", "/v1/agents?label=env", "/v1/repositories", "/v1/policies", "/v1/policies?repository=a-private-repo",
		"/v1/tasks", "/v1/tasks?agentId=" + agentA.ID, "/v1/runs", "/v1/runs?agentId=" + agentA.ID, "/v1/runs?policyId=" + policyA.ID,
		"/v1/enrollment-tokens", "/v1/api-keys", "/v1/overview",
	}
	// A cursor from A's listing does not lead B into A's items.
	a.agent("a-web-2", nil)
	forbiddenText = append(forbiddenText, "a-web-2")
	lists = append(lists, "/v1/agents?limit=1&cursor="+firstPageCursor(t, h, a, "/v1/agents?limit=1"))
	for _, path := range lists {
		res := h.call(http.MethodGet, path, b.admin, nil)
		assert.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, res.Status, path)
		for _, s := range forbiddenText {
			assert.NotContains(t, res.Body, s, path)
		}
		cases++
	}
	// A reference to A's resource in B's body is answered as a reference to nothing at all.
	for name, tc := range map[string]struct {
		method, path string
		body         map[string]any
		ref, field   string
	}{
		"task on A's agent":        {http.MethodPost, "/v1/tasks", map[string]any{"type": "check", "agentId": agentA.ID, "repository": "b-repo"}, agentA.ID, "agentId"},
		"task of A's policy":       {http.MethodPost, "/v1/tasks", map[string]any{"type": "backup", "agentId": agentB.ID, "policyId": policyA.ID}, policyA.ID, "policyId"},
		"task in A's repository":   {http.MethodPost, "/v1/tasks", map[string]any{"type": "check", "agentId": agentB.ID, "repository": "a-private-repo"}, "a-private-repo", "repository"},
		"policy on A's repository": {http.MethodPost, "/v1/policies", tenantPolicyBody("b-sneaky", "a-private-repo"), "a-private-repo", "repository"},
		"assign to A's agent":      {http.MethodPost, "/v1/policies/" + policyB.ID + "/agents", map[string]any{"agentIds": []string{agentA.ID}}, agentA.ID, "agentIds[0]"},
	} {
		res := h.call(tc.method, tc.path, b.operator, tc.body)
		tenantStatus(t, http.StatusUnprocessableEntity, res, name)
		assert.Equal(t, []string{tc.field}, res.ErrorFields(t), name)
		nothing := "zz-never-existed"
		if domain.ValidID(tc.ref) {
			nothing = domain.NewID(h.clock)
		}
		raw, err := json.Marshal(tc.body)
		require.NoError(t, err)
		other := h.call(tc.method, tc.path, b.operator, strings.ReplaceAll(string(raw), tc.ref, nothing))
		assert.Equal(t, strings.ReplaceAll(other.Body, nothing, tc.ref), res.Body, name)
		cases++
	}
	tasks, _, err := h.store.ListTasks(context.Background(), b.id, store.TaskFilter{}, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, tasks, "B created no task")
	assert.Equal(t, before, tenantState(t, h, a.id, ids), "still nothing changed")
	t.Logf("isolation: %d cases", cases)
}

func mergeInto(dst, src map[string]any) map[string]any {
	for k, v := range src {
		dst[k] = v
	}
	return dst
}
