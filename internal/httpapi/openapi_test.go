package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

const openAPIPath = "../../docs/openapi.yaml"

// loadOpenAPI loads and validates the OpenAPI document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(openAPIPath)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()), "docs/openapi.yaml is not a valid OpenAPI document")
	return doc
}

// pathParam matches a path parameter, in the router's patterns ({agentId}, {rest...}) and in the
// document's templates ({agentId}).
var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// routeKey names a route by method and path with its parameters unnamed, so that the router
// and the document are compared on the shape of their paths, not on the parameters' names.
func routeKey(method, path string) string {
	return strings.ToUpper(method) + " " + pathParam.ReplaceAllString(path, "{}")
}

func TestOpenAPIDocumentIsValidOpenAPI31(t *testing.T) {
	doc := loadOpenAPI(t)
	assert.True(t, doc.IsOpenAPI31OrLater(), "openapi: %s", doc.OpenAPI)
	require.NotNil(t, doc.Components)
	scheme, ok := doc.Components.SecuritySchemes["bearer"]
	require.True(t, ok, "components.securitySchemes.bearer is missing")
	assert.Equal(t, "http", scheme.Value.Type)
	assert.Equal(t, "bearer", scheme.Value.Scheme)
	require.NotNil(t, doc.Security)
	assert.Contains(t, doc.Security[0], "bearer", "bearer must be the default security")
	errSchema := doc.Components.Schemas["Error"]
	require.NotNil(t, errSchema, "components.schemas.Error is missing")
	assert.ElementsMatch(t, []string{"code", "message", "fields"}, keys(errSchema.Value.Properties["error"].Value.Properties))
}

// TestOpenAPIPathsAreTheRoutes proves the router and the document describe the same API: every
// route of the tenant and agent APIs is in the document and every operation of the document
// is routed.
func TestOpenAPIPathsAreTheRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[routeKey(method, path)] = true
		}
	}
	routed := map[string]bool{}
	for _, r := range slices.Concat(httpapi.TenantRoutes(httpapi.Deps{}), httpapi.PublicRoutes(httpapi.Deps{}), httpapi.AgentRoutes(httpapi.Deps{})) {
		k := routeKey(r.Method, r.Pattern)
		require.False(t, routed[k], "route %s is registered twice", k)
		routed[k] = true
	}
	var missing, extra []string
	for k := range routed {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !routed[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	assert.Empty(t, missing, "routes the document does not describe")
	assert.Empty(t, extra, "documented operations no route serves")
}

// TestOpenAPITenantOperations checks what the document says of each tenant route: the role it
// needs (x-role), that it is authenticated, that every path parameter is declared, and that it
// documents the errors its route can answer.
func TestOpenAPITenantOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	roles := map[httpapi.Access]string{httpapi.AccessViewer: "viewer", httpapi.AccessOperator: "operator", httpapi.AccessAdmin: "admin"}
	for _, r := range httpapi.TenantRoutes(httpapi.Deps{}) {
		t.Run(r.Method+" "+r.Pattern, func(t *testing.T) {
			item := doc.Paths.Value(r.Pattern)
			require.NotNil(t, item, "path %s is not documented under this name", r.Pattern)
			op := item.GetOperation(r.Method)
			require.NotNil(t, op, "%s %s is not documented", r.Method, r.Pattern)
			assert.NotEmpty(t, op.OperationID)
			assert.Equal(t, roles[r.Access], op.Extensions["x-role"], "x-role")
			if op.Security != nil {
				assert.NotEmpty(t, *op.Security, "a tenant route is never public")
			}
			for _, name := range pathParam.FindAllString(r.Pattern, -1) {
				name = strings.Trim(name, "{}")
				assert.NotNil(t, findParam(item, op, name), "path parameter %s is not declared", name)
			}
			want := []string{"401", "403"}
			if strings.Contains(r.Pattern, "{") {
				want = append(want, "400", "404")
			}
			if r.Method == http.MethodGet {
				want = append(want, "400")
			} else {
				// Every change is refused while the tenant is being deleted.
				want = append(want, "409")
			}
			if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
				if op.RequestBody != nil {
					want = append(want, "400", "413", "415", "422")
				}
			}
			for _, status := range want {
				assert.NotNil(t, op.Responses.Value(status), "response %s is not documented", status)
			}
			success := slices.ContainsFunc([]string{"200", "201", "204"}, func(s string) bool { return op.Responses.Value(s) != nil })
			assert.True(t, success, "no success response")
		})
	}
}

func findParam(item *openapi3.PathItem, op *openapi3.Operation, name string) *openapi3.Parameter {
	for _, params := range []openapi3.Parameters{op.Parameters, item.Parameters} {
		if p := params.GetByInAndName(openapi3.ParameterInPath, name); p != nil {
			return p
		}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// contract calls tenant routes and holds each answer (and each accepted request body) to the
// schema the document gives it, so the document cannot drift from what the API sends.
type contract struct {
	t   *testing.T
	h   *harness
	doc *openapi3.T
	// seen counts the (route, status) pairs checked.
	seen map[string]bool
}

// call sends a request to the route of pattern and checks the answer against the document.
func (c *contract) call(method, pattern, path, credential string, body any, want int) response {
	c.t.Helper()
	res := c.h.call(method, path, credential, body)
	tenantStatus(c.t, want, res, method, " ", path)
	op := c.doc.Paths.Value(pattern).GetOperation(method)
	require.NotNil(c.t, op, "%s %s is not documented", method, pattern)
	ref := op.Responses.Value(strconv.Itoa(res.Status))
	require.NotNil(c.t, ref, "%s %s: status %d is not documented", method, pattern, res.Status)
	c.seen[method+" "+pattern+" "+strconv.Itoa(res.Status)] = true
	if res.Status == http.StatusNoContent {
		assert.Empty(c.t, res.Body)
		return res
	}
	media := ref.Value.Content.Get("application/json")
	require.NotNil(c.t, media, "%s %s %d: no JSON schema", method, pattern, res.Status)
	var got any
	require.NoError(c.t, json.Unmarshal([]byte(res.Body), &got))
	assert.NoError(c.t, media.Schema.Value.VisitJSON(got, openapi3.EnableJSONSchema2020()), "%s %s %d: the answer does not match the document: %s", method, path, res.Status, res.Body)
	if res.Status < 300 && body != nil {
		raw, err := json.Marshal(body)
		require.NoError(c.t, err)
		var sent any
		require.NoError(c.t, json.Unmarshal(raw, &sent))
		media := op.RequestBody.Value.Content.Get("application/json")
		require.NotNil(c.t, media, "%s %s: no JSON request body", method, pattern)
		assert.NoError(c.t, media.Schema.Value.VisitJSON(sent, openapi3.EnableJSONSchema2020()), "%s %s: an accepted body the document refuses: %s", method, pattern, raw)
	}
	return res
}

func TestOpenAPIDescribesWhatTheTenantAPISends(t *testing.T) {
	h := newHarness(t)
	h.clock = time.Now().UTC().Truncate(time.Second)
	c := &contract{t: t, h: h, doc: loadOpenAPI(t), seen: map[string]bool{}}
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", map[string]string{"env": "prod"})
	missing := domain.NewID(h.clock)
	const get, post, put, patch, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete

	c.call(get, "/v1/overview", "/v1/overview", w.viewer, nil, 200)
	c.call(get, "/v1/overview", "/v1/overview", "", nil, 401)
	c.call(get, "/v1/me", "/v1/me", w.viewer, nil, 200)
	c.call(get, "/v1/schedule-preview", "/v1/schedule-preview?cron=15+2+*+*+*&timezone=Europe/Berlin&count=3", w.viewer, nil, 200)
	c.call(get, "/v1/schedule-preview", "/v1/schedule-preview?cron=99+*+*+*+*", w.viewer, nil, 400)
	c.call(get, "/v1/agents", "/v1/agents?label=env:prod&limit=1", w.viewer, nil, 200)
	c.call(get, "/v1/agents", "/v1/agents?cursor=bad", w.viewer, nil, 400)
	c.call(get, "/v1/agents/{agentId}", "/v1/agents/"+a.ID, w.viewer, nil, 200)
	c.call(get, "/v1/agents/{agentId}", "/v1/agents/"+missing, w.viewer, nil, 404)
	c.call(get, "/v1/agents/{agentId}", "/v1/agents/"+a.ID, a.Credential, nil, 403)
	res := c.call(patch, "/v1/agents/{agentId}", "/v1/agents/"+a.ID, w.operator, map[string]any{"version": a.Version, "labels": map[string]any{"site": "fra1"}}, 200)
	c.call(patch, "/v1/agents/{agentId}", "/v1/agents/"+a.ID, w.operator, map[string]any{"version": a.Version}, 409)
	c.call(patch, "/v1/agents/{agentId}", "/v1/agents/"+a.ID, w.operator, map[string]any{"labels": map[string]any{}}, 422)
	var patched domain.Agent
	res.JSON(t, &patched)

	res = c.call(post, "/v1/enrollment-tokens", "/v1/enrollment-tokens", w.operator, map[string]any{"maxUses": 2, "expiresIn": "2h", "labels": map[string]string{"site": "fra1"}}, 201)
	var token createdToken
	res.JSON(t, &token)
	c.call(get, "/v1/enrollment-tokens", "/v1/enrollment-tokens", w.viewer, nil, 200)
	c.call(del, "/v1/enrollment-tokens/{tokenId}", "/v1/enrollment-tokens/"+token.ID, w.operator, nil, 204)
	c.call(del, "/v1/enrollment-tokens/{tokenId}", "/v1/enrollment-tokens/x", w.operator, nil, 400)

	c.call(post, "/v1/repositories", "/v1/repositories", w.operator, map[string]any{"name": "repo-main", "backend": "local", "location": "/srv/restic"}, 201)
	c.call(post, "/v1/repositories", "/v1/repositories", w.operator, map[string]any{"name": "repo-main", "backend": "local", "location": "/srv/other"}, 409)
	c.call(post, "/v1/repositories", "/v1/repositories", w.viewer, map[string]any{"name": "repo-x", "backend": "local", "location": "/srv"}, 403)
	c.call(get, "/v1/repositories", "/v1/repositories", w.viewer, nil, 200)
	c.call(get, "/v1/repositories/{name}", "/v1/repositories/repo-main", w.viewer, nil, 200)
	c.call(put, "/v1/repositories/{name}", "/v1/repositories/repo-main", w.operator, map[string]any{"backend": "local", "location": "/srv/restic2", "description": "moved", "version": 1}, 200)
	c.call(put, "/v1/repositories/{name}", "/v1/repositories/repo-main", w.operator, map[string]any{"backend": "nfs", "location": "/srv", "version": 2}, 422)
	c.call(get, "/v1/repositories/{name}/health", "/v1/repositories/repo-main/health", w.viewer, nil, 200)
	require.NoError(t, h.store.RecordHealth(context.Background(), "acme", store.HealthReport{
		Repository: "repo-main", At: h.clock, AgentID: domain.NewID(h.clock), OverdueAfter: 7 * 24 * time.Hour,
		Stats: &domain.RepoStats{RawDataSize: 1234, UncompressedSize: 2345, FileCount: 10, SnapshotsCount: 3, BlobCount: 40, CompressionRatio: 1.9},
		Locks: &domain.LockInfo{Count: 1, Stale: 1, CheckedAt: h.clock},
		Check: &domain.CheckResult{At: h.clock, OK: false, RunID: domain.NewID(h.clock), AgentID: domain.NewID(h.clock), Error: "restic exited with code 1"},
	}))
	c.call(get, "/v1/repositories/{name}/health", "/v1/repositories/repo-main/health", w.viewer, nil, 200)
	c.call(get, "/v1/repositories/{name}/health", "/v1/repositories/repo-none/health", w.viewer, nil, 404)
	c.call(put, "/v1/repositories/{name}", "/v1/repositories/repo-main", w.operator, map[string]any{"backend": "local", "location": "/srv", "checkOverdueAfterDays": 366, "version": 2}, 422)

	body := tenantPolicyBody("nightly", "repo-main")
	body["checkSchedule"] = map[string]any{"cron": "@weekly", "spread": "1h"}
	body["tags"] = []string{"nightly"}
	body["maxRetries"] = 2
	res = c.call(post, "/v1/policies", "/v1/policies", w.operator, body, 201)
	var p domain.Policy
	res.JSON(t, &p)
	c.call(post, "/v1/policies", "/v1/policies", w.operator, map[string]any{"name": "x"}, 422)
	c.call(get, "/v1/policies", "/v1/policies?repository=repo-main", w.viewer, nil, 200)
	c.call(get, "/v1/policies/{policyId}", "/v1/policies/"+p.ID, w.viewer, nil, 200)
	body["version"], body["description"] = p.Version, "replaced"
	c.call(put, "/v1/policies/{policyId}", "/v1/policies/"+p.ID, w.operator, body, 200)
	c.call(patch, "/v1/policies/{policyId}", "/v1/policies/"+p.ID, w.operator, map[string]any{"version": p.Version + 1, "description": nil}, 200)
	c.call(patch, "/v1/policies/{policyId}", "/v1/policies/"+p.ID, w.operator, map[string]any{"version": p.Version}, 409)
	c.call(post, "/v1/policies/{policyId}/agents", "/v1/policies/"+p.ID+"/agents", w.operator, map[string]any{"agentIds": []string{a.ID}}, 200)
	c.call(post, "/v1/policies/{policyId}/agents", "/v1/policies/"+p.ID+"/agents", w.operator, map[string]any{"agentIds": []string{missing}}, 422)
	c.call(get, "/v1/policies/{policyId}/agents", "/v1/policies/"+p.ID+"/agents", w.viewer, nil, 200)
	c.call(get, "/v1/agents/{agentId}/policies", "/v1/agents/"+a.ID+"/policies", w.viewer, nil, 200)
	c.call(del, "/v1/repositories/{name}", "/v1/repositories/repo-main", w.operator, nil, 409)

	res = c.call(post, "/v1/tasks", "/v1/tasks", w.operator, map[string]any{"type": "backup", "agentId": a.ID, "policyId": p.ID, "startWithin": "2h"}, 201)
	var task domain.Task
	res.JSON(t, &task)
	c.call(post, "/v1/tasks", "/v1/tasks", w.operator, map[string]any{"type": "restore", "agentId": a.ID, "repository": "repo-main",
		"params": map[string]any{"snapshotId": "latest", "target": "/srv/restore", "includePaths": []string{"/data/x"}, "verify": true}}, 201)
	c.call(post, "/v1/tasks", "/v1/tasks", w.operator, map[string]any{"type": "restore", "agentId": a.ID}, 422)
	drainTaskQueue(t, h, a.QueueURL)
	c.call(get, "/v1/tasks", "/v1/tasks?type=backup&status=queued&agentId="+a.ID, w.viewer, nil, 200)
	c.call(get, "/v1/tasks/{taskId}", "/v1/tasks/"+task.ID, w.viewer, nil, 200)
	c.call(get, "/v1/agents/{agentId}/tasks", "/v1/agents/"+a.ID+"/tasks", w.viewer, nil, 200)
	c.call(post, "/v1/tasks/{taskId}/cancel", "/v1/tasks/"+task.ID+"/cancel", w.operator, nil, 200)
	c.call(post, "/v1/tasks/{taskId}/cancel", "/v1/tasks/"+task.ID+"/cancel", w.operator, nil, 409)

	run := w.run(a.ID, p.ID, domain.TaskPartial, h.clock.Add(-time.Hour), []string{"scan", "warning: /data/locked: permission denied"})
	_, err := h.store.UpdateRun(context.Background(), w.id, run.ID, func(r *domain.Run) error {
		r.UnreadablePaths = []string{"/data/locked"}
		r.Progress = &domain.Progress{PercentDone: 1, TotalFiles: 3, FilesDone: 3}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, h.store.PutSnapshots(context.Background(), w.id, a.ID, []domain.Snapshot{
		{ID: "4f8a2c1e9b7d", ShortID: "4f8a2c1e", Repository: "repo-main", Time: h.clock, Hostname: "web-1", Paths: []string{"/data"}, Tags: []string{"nightly"}, PolicyID: p.ID},
	}))
	c.call(get, "/v1/runs", "/v1/runs?policyId="+p.ID+"&since="+h.clock.Add(-2*time.Hour).Format(time.RFC3339), w.viewer, nil, 200)
	c.call(get, "/v1/runs/{runId}", "/v1/runs/"+run.ID, w.viewer, nil, 200)
	c.call(get, "/v1/runs/{runId}/logs", "/v1/runs/"+run.ID+"/logs", w.viewer, nil, 200)
	c.call(get, "/v1/runs/{runId}/logs", "/v1/runs/"+missing+"/logs", w.viewer, nil, 404)
	c.call(get, "/v1/agents/{agentId}/runs", "/v1/agents/"+a.ID+"/runs", w.viewer, nil, 200)
	c.call(get, "/v1/agents/{agentId}/snapshots", "/v1/agents/"+a.ID+"/snapshots", w.viewer, nil, 200)
	listed := strings.Repeat("4f8a2c1e", 8)
	tree := "/v1/agents/" + a.ID + "/snapshots/" + listed[:8] + "/tree?path=/data&limit=1"
	c.call(get, "/v1/agents/{agentId}/snapshots/{snapshotId}/tree", tree, w.viewer, nil, 404)
	var chunks []store.EncodedChunk
	for _, ch := range []domain.DirChunk{
		{Dir: "/data", Dirs: true, Entries: []domain.ListingEntry{{Name: "sub", Type: domain.EntryDir, Mode: 0o755, MTime: h.clock}}},
		{Dir: "/data", Entries: []domain.ListingEntry{{Name: "a.txt", Type: domain.EntryFile, Size: 3, Mode: 0o644, MTime: h.clock}}},
		{Dir: "/data/sub", Dirs: true, Entries: []domain.ListingEntry{}},
	} {
		e, err := store.EncodeChunk(ch)
		require.NoError(t, err)
		chunks = append(chunks, e)
	}
	listRun := domain.NewID(h.clock)
	_, err = h.store.UploadListingChunks(context.Background(), w.id, store.ListingUpload{
		Listing: domain.Listing{AgentID: a.ID, SnapshotID: listed, Path: "/data", TaskID: domain.NewID(h.clock), RunID: listRun, ExpiresAt: h.clock.Add(time.Hour)},
		Chunks:  chunks, MaxBytes: 1 << 20,
	})
	require.NoError(t, err)
	_, err = h.store.FinishListing(context.Background(), w.id, a.ID, listRun, h.clock)
	require.NoError(t, err)
	var page struct {
		Items      []domain.ListingEntry `json:"items"`
		NextCursor string                `json:"nextCursor"`
	}
	c.call(get, "/v1/agents/{agentId}/snapshots/{snapshotId}/tree", tree, w.viewer, nil, 200).JSON(t, &page)
	require.Len(t, page.Items, 1)
	assert.Equal(t, "/data/sub", page.Items[0].Path, "directories come first")
	cursor := page.NextCursor
	page.NextCursor = ""
	c.call(get, "/v1/agents/{agentId}/snapshots/{snapshotId}/tree", tree+"&cursor="+cursor, w.viewer, nil, 200).JSON(t, &page)
	assert.Equal(t, "a.txt", page.Items[0].Name)
	assert.Empty(t, page.NextCursor)
	c.call(get, "/v1/agents/{agentId}/snapshots/{snapshotId}/tree", "/v1/agents/"+a.ID+"/snapshots/"+listed+"/tree?path=/data/a.txt", w.viewer, nil, 404)
	c.call(get, "/v1/agents/{agentId}/snapshots/{snapshotId}/tree", "/v1/agents/"+a.ID+"/snapshots/"+listed+"/tree?path=/data&cursor=bogus", w.viewer, nil, 400)

	sl, err := h.store.GetSlot(context.Background(), w.id, p.ID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	sl.Overdue = true
	require.NoError(t, h.store.PutSlot(context.Background(), w.id, sl))
	c.call(get, "/v1/overview", "/v1/overview", w.viewer, nil, 200)

	res = c.call(post, "/v1/api-keys", "/v1/api-keys", w.admin, map[string]any{"name": "ci", "role": "viewer"}, 201)
	var key createdKey
	res.JSON(t, &key)
	c.call(post, "/v1/api-keys", "/v1/api-keys", w.operator, map[string]any{"name": "ci", "role": "viewer"}, 403)
	c.call(get, "/v1/api-keys", "/v1/api-keys", w.admin, nil, 200)
	c.call(del, "/v1/api-keys/{keyId}", "/v1/api-keys/"+key.ID, w.admin, nil, 204)

	hook := newHookReceiver(t)
	const channels, channel = "/v1/notification-channels", "/v1/notification-channels/{channelId}"
	res = c.call(post, channels, channels, w.operator, map[string]any{"name": "ops", "kind": "webhook", "url": hook.URL,
		"rules": map[string]any{"eventTypes": []string{"task.failed"}, "policyIds": []string{p.ID}, "agentLabels": map[string]string{"env": "prod"}}}, 201)
	var ch createdChannel
	res.JSON(t, &ch)
	c.call(post, channels, channels, w.operator, map[string]any{"name": "ops", "kind": "pager", "rules": map[string]any{"eventTypes": []string{"task.failed"}}}, 422)
	c.call(post, channels, channels, w.operator, map[string]any{"name": "mail", "kind": "email", "emails": []string{"ops@example.com"},
		"rules": map[string]any{"eventTypes": []string{"agent.offline"}}, "quiet": true, "enabled": true}, 201)
	c.call(post, channels, channels, w.operator, map[string]any{"name": "chat", "kind": "slack", "slackUrl": hook.URL + "/services/x",
		"rules": map[string]any{"eventTypes": []string{"agent.offline"}}}, 201)
	c.call(get, channels, channels+"?limit=2", w.viewer, nil, 200)
	c.call(get, channel, channels+"/"+ch.ID, w.viewer, nil, 200)
	c.call(get, channel, channels+"/"+missing, w.viewer, nil, 404)
	c.call(patch, channel, channels+"/"+ch.ID, w.operator, map[string]any{"version": ch.Version, "quiet": true}, 200)
	c.call(patch, channel, channels+"/"+ch.ID, w.operator, map[string]any{"version": ch.Version, "quiet": false}, 409)
	c.call(post, channel+"/test", channels+"/"+ch.ID+"/test", w.operator, nil, 200)
	c.call(get, channel+"/deliveries", channels+"/"+ch.ID+"/deliveries", w.viewer, nil, 200)
	c.call(post, channel+"/rotate-secret", channels+"/"+ch.ID+"/rotate-secret", w.operator, nil, 200)
	c.call(get, channels+"/confirm", channels+"/confirm?token="+h.ses.confirmToken(t, "ops@example.com"), "", nil, 200)
	c.call(post, channels+"/confirm", channels+"/confirm?token=acme.x.y", "", nil, 404)
	c.call(del, channel, channels+"/"+ch.ID, w.operator, nil, 204)

	c.call(del, "/v1/policies/{policyId}/agents/{agentId}", "/v1/policies/"+p.ID+"/agents/"+a.ID, w.operator, nil, 204)
	c.call(del, "/v1/policies/{policyId}", "/v1/policies/"+p.ID, w.operator, nil, 204)
	c.call(del, "/v1/repositories/{name}", "/v1/repositories/repo-main", w.operator, nil, 204)
	c.call(del, "/v1/agents/{agentId}", "/v1/agents/"+patched.ID, w.operator, nil, 204)
	c.call(del, "/v1/agents/{agentId}", "/v1/agents/"+patched.ID, w.operator, nil, 404)

	c.call(get, "/v1/audit", "/v1/audit?resource=policy/"+p.ID+"&limit=2", w.operator, nil, 200)
	c.call(get, "/v1/audit", "/v1/audit?actor="+w.operatorKeyID(t)+"&since="+h.clock.Add(-time.Hour).Format(time.RFC3339), w.admin, nil, 200)
	c.call(get, "/v1/audit", "/v1/audit?resource=widget", w.operator, nil, 400)
	c.call(get, "/v1/audit", "/v1/audit", w.viewer, nil, 403)

	c.call(get, "/v1/tenant", "/v1/tenant", w.viewer, nil, 200)
	c.call(del, "/v1/tenant", "/v1/tenant", w.admin, nil, 400)
	c.call(del, "/v1/tenant", "/v1/tenant?confirm=acme", w.operator, nil, 403)
	c.call(del, "/v1/tenant", "/v1/tenant?confirm=acme", w.admin, nil, 202)
	c.call(get, "/v1/tenant", "/v1/tenant", w.viewer, nil, 200)
	c.call(post, "/v1/repositories", "/v1/repositories", w.operator, map[string]any{"name": "repo-late", "backend": "local", "location": "/srv"}, 409)
	h.clock = h.clock.Add(fleet.TenantDeletionSettle + time.Second)
	c.call(del, "/v1/tenant", "/v1/tenant?confirm=acme", w.admin, nil, 200)
	c.call(get, "/v1/tenant", "/v1/tenant", w.viewer, nil, 401)

	// Every tenant route was held to its success answer.
	for _, r := range httpapi.TenantRoutes(h.deps) {
		ok := slices.ContainsFunc([]string{"200", "201", "204"}, func(s string) bool { return c.seen[r.Method+" "+r.Pattern+" "+s] })
		assert.True(t, ok, "%s %s: no successful answer was checked", r.Method, r.Pattern)
	}
}
