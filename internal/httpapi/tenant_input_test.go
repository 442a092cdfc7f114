package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
)

// inputWorld is a tenant with one of everything the routes name, so that a route answers
// about its input rather than with a 404.
func inputWorld(t *testing.T) (*harness, *tenantWorld, map[string]string) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	w.repository("repo-main")
	p := w.policy("nightly", "repo-main")
	res := h.call(http.MethodPost, "/v1/tasks", w.operator, map[string]any{"type": "unlock", "agentId": a.ID, "repository": "repo-main"})
	tenantStatus(t, http.StatusCreated, res)
	var task domain.Task
	res.JSON(t, &task)
	drainTaskQueue(t, h, a.QueueURL)
	run := w.run(a.ID, p.ID, domain.TaskSucceeded, h.clock)
	ch := w.channel("ops")
	return h, w, map[string]string{"agentId": a.ID, "policyId": p.ID, "taskId": task.ID, "runId": run.ID, "name": "repo-main", "channelId": ch.ID,
		"snapshotId": "4f8a2c1e"}
}

// bodyRoutes are the tenant routes that read a JSON body; actions (cancel a task, test a
// channel, rotate its secret) take none.
func bodyRoutes(h *harness) []httpapi.Route {
	var out []httpapi.Route
	for _, r := range httpapi.TenantRoutes(h.deps) {
		if (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) && !strings.HasSuffix(r.Pattern, "/cancel") &&
			!strings.HasSuffix(r.Pattern, "/test") && !strings.HasSuffix(r.Pattern, "/rotate-secret") {
			out = append(out, r)
		}
	}
	return out
}

func TestTenantBadBodies(t *testing.T) {
	h, w, ids := inputWorld(t)
	huge := `{"description":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`
	cases := 0
	for _, r := range bodyRoutes(h) {
		path := concretePath(h, r.Pattern, ids)
		route := r.Method + " " + r.Pattern
		for name, tc := range map[string]struct {
			body    string
			headers map[string]string
			status  int
			fields  []string
		}{
			"invalid JSON":     {`{"name": nope}`, nil, http.StatusBadRequest, nil},
			"truncated JSON":   {`{"name": "x"`, nil, http.StatusBadRequest, nil},
			"empty body":       {``, nil, http.StatusBadRequest, nil},
			"two values":       {`{} {}`, nil, http.StatusBadRequest, nil},
			"unknown field":    {unknownField(r.Method), nil, http.StatusBadRequest, []string{"surprise"}},
			"not an object":    {`"a string"`, nil, http.StatusBadRequest, []string{"body"}},
			"oversized":        {huge, nil, http.StatusRequestEntityTooLarge, nil},
			"text/plain":       {`{}`, map[string]string{"content-type": "text/plain"}, http.StatusUnsupportedMediaType, nil},
			"form":             {`a=b`, map[string]string{"content-type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType, nil},
			"bad content type": {`{}`, map[string]string{"content-type": ";;;"}, http.StatusUnsupportedMediaType, nil},
		} {
			res := w.raw(r.Method, path, w.admin, tc.body, tc.headers)
			tenantStatus(t, tc.status, res, route, ": ", name)
			code := tenantErrorCode(t, res)
			assert.NotEmpty(t, code, route+": "+name)
			if tc.fields != nil {
				assert.Equal(t, tc.fields, res.ErrorFields(t), route+": "+name)
			}
			cases++
		}
	}
	// Wrong types, named by their JSON path.
	for _, tc := range []struct {
		method, path, body, field string
	}{
		{http.MethodPost, "/v1/repositories", `{"name": 5, "backend": "local", "location": "/srv"}`, "name"},
		{http.MethodPost, "/v1/policies", `{"name": "p-1", "paths": "/data"}`, "paths"},
		{http.MethodPost, "/v1/policies", `{"name": "p-1", "schedule": {"cron": ["@daily"]}}`, "schedule.cron"},
		{http.MethodPost, "/v1/policies", `{"name": "p-1", "retention": {"keepDaily": "seven"}}`, "retention.keepDaily"},
		{http.MethodPost, "/v1/policies", `{"name": "p-1", "retention": {"keepDaily": 1.5}}`, "retention.keepDaily"},
		{http.MethodPost, "/v1/policies", `{"name": "p-1", "enabled": "yes"}`, "enabled"},
		{http.MethodPost, "/v1/tasks", `{"type": "check", "params": {"verify": "yes"}}`, "params.verify"},
		{http.MethodPost, "/v1/enrollment-tokens", `{"maxUses": "10"}`, "maxUses"},
		{http.MethodPost, "/v1/enrollment-tokens", `{"labels": ["a"]}`, "labels"},
		{http.MethodPost, "/v1/api-keys", `{"name": "k", "role": 1}`, "role"},
		{http.MethodPost, "/v1/policies/" + ids["policyId"] + "/agents", `{"agentIds": [1, 2]}`, "agentIds"},
		{http.MethodPatch, "/v1/agents/" + ids["agentId"], `{"version": "1"}`, "version"},
		{http.MethodPatch, "/v1/agents/" + ids["agentId"], `{"version": 1, "limits": {"maxConcurrentTasks": true}}`, "limits.maxConcurrentTasks"},
		{http.MethodPut, "/v1/repositories/repo-main", `{"backend": "local", "location": "/srv", "version": 1e400}`, "version"},
	} {
		res := w.raw(tc.method, tc.path, w.admin, tc.body, nil)
		tenantStatus(t, http.StatusBadRequest, res, tc.method, " ", tc.path, " ", tc.body)
		assert.Equal(t, []string{tc.field}, res.ErrorFields(t), tc.body)
		cases++
	}
	t.Logf("bad bodies: %d cases", cases)
}

func TestTenantBadPathsAndQueries(t *testing.T) {
	h, w, ids := inputWorld(t)
	cases := 0
	// Path IDs are checked before anything is looked up.
	badIDs := []string{"not-an-id", ids["agentId"] + "0", ids["agentId"][1:], "01M6DV7580F13H606CYFXH482U", "..%2F..%2Fetc", "%00", strings.Repeat("Z", 300)}
	for _, r := range httpapi.TenantRoutes(h.deps) {
		for _, name := range pathParam.FindAllString(r.Pattern, -1) {
			param := strings.Trim(name, "{}")
			bad := badIDs
			if param == "name" {
				bad = []string{"ab", "a%20b", "repo%2Fmain", strings.Repeat("r", 101), "%C3%A9t%C3%A9"}
			}
			for _, v := range bad {
				path := concretePath(h, r.Pattern, mergeStrings(ids, map[string]string{param: v}))
				res := h.call(r.Method, path, w.admin, bodyFor(r.Method))
				what := r.Method + " " + path
				switch res.Status {
				case http.StatusBadRequest:
					assert.Equal(t, []string{param}, res.ErrorFields(t), what)
				case http.StatusNotFound:
					// A value holding a slash is another path, which no route serves.
					assert.Contains(t, v, "%2F", what)
					assert.Equal(t, "not_found", tenantErrorCode(t, res), what)
				default:
					t.Errorf("%s: got %d, want 400: %s", what, res.Status, res.Body)
				}
				cases++
			}
		}
	}

	// Query parameters: every listing refuses a bad limit, a bad cursor, a cursor of another
	// listing and a parameter it does not know.
	res := h.call(http.MethodGet, "/v1/api-keys?limit=1", w.admin, nil)
	var keys struct {
		NextCursor string `json:"nextCursor"`
	}
	res.JSON(t, &keys)
	keysCursor := keys.NextCursor
	require.NotEmpty(t, keysCursor)
	for _, r := range httpapi.TenantRoutes(h.deps) {
		if r.Method != http.MethodGet {
			continue
		}
		base := concretePath(h, r.Pattern, ids)
		lists := r.Pattern != "/v1/overview" && (strings.Count(r.Pattern, "{") == 0 || strings.Count(base, "/") == 4)
		checks := map[string]string{"bogus=1": "bogus"}
		if lists {
			checks = map[string]string{
				"limit=0": "limit", "limit=101": "limit", "limit=ten": "limit", "limit=-1": "limit",
				"cursor=%25%25%25": "cursor", "cursor=bm90LWpzb24": "cursor", "cursor=" + strings.Repeat("A", 3000): "cursor",
				"cursor=eyJzIjoiWk9NQklFIn0": "cursor", "bogus=1": "bogus", "limit=1&limit=2": "limit",
			}
			if r.Pattern != "/v1/api-keys" {
				checks["cursor="+keysCursor] = "cursor"
			}
		}
		for query, field := range checks {
			path := base + "?" + query
			res := h.call(http.MethodGet, path, w.admin, nil)
			tenantStatus(t, http.StatusBadRequest, res, path)
			assert.Equal(t, []string{field}, res.ErrorFields(t), path)
			cases++
		}
	}
	for path, field := range map[string]string{
		"/v1/agents?cursor=" + base64.RawURLEncoding.EncodeToString([]byte(`{"s":"AGENT#`+strings.Repeat("A", 1500)+`"}`)):                                                  "cursor",
		"/v1/agents/" + ids["agentId"] + "/policies?cursor=" + base64.RawURLEncoding.EncodeToString([]byte(`{"s":"x","g":"POLICY#`+strings.Repeat("z", 1100)+`","p":"p"}`)): "cursor",
		"/v1/agents?status=sleeping":                                        "status",
		"/v1/agents?label=bad%20key":                                        "label",
		"/v1/agents?label=" + strings.Repeat("k", 64):                       "label",
		"/v1/tasks?status=done":                                             "status",
		"/v1/tasks?type=defrag":                                             "type",
		"/v1/tasks?agentId=web-1":                                           "agentId",
		"/v1/tasks?from=yesterday":                                          "from",
		"/v1/tasks?to=2026-13-01T00:00:00Z":                                 "to",
		"/v1/tasks?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z":       "to",
		"/v1/runs?since=0":                                                  "since",
		"/v1/runs?policyId=nightly":                                         "policyId",
		"/v1/runs?status=ok":                                                "status",
		"/v1/policies?repository=a%20b":                                     "repository",
		"/v1/policies/" + ids["policyId"] + "?force=1":                      "force",
		"/v1/agents/" + ids["agentId"] + "/tasks?agentId=" + ids["agentId"]: "agentId",
	} {
		method := http.MethodGet
		if strings.Contains(path, "force=") {
			method = http.MethodDelete
		}
		res := h.call(method, path, w.admin, nil)
		tenantStatus(t, http.StatusBadRequest, res, path)
		assert.Equal(t, []string{field}, res.ErrorFields(t), path)
		cases++
	}
	// A path no route serves is a JSON 404.
	for _, path := range []string{"/v1/agent", "/v1/agents/", "/v2/agents", "/v1/policies/" + ids["policyId"] + "/agents/", "/"} {
		res := h.call(http.MethodGet, path, w.admin, nil)
		tenantStatus(t, http.StatusNotFound, res, path)
		assert.Equal(t, "not_found", tenantErrorCode(t, res), path)
		cases++
	}
	t.Logf("bad paths and queries: %d cases", cases)
}

// unknownField is a body with a field no body has; a merge patch also needs its version.
func unknownField(method string) string {
	if method == http.MethodPatch {
		return `{"version": 1, "surprise": true}`
	}
	return `{"surprise": true}`
}

func mergeStrings(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
