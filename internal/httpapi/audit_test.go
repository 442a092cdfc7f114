package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// keyIDOf returns the ID in an API key's or agent's credential.
func keyIDOf(t *testing.T, credential string) string {
	t.Helper()
	_, id, _, ok := auth.Parse(credential)
	require.True(t, ok, "not a credential: %s", credential)
	return id
}

func (w *tenantWorld) operatorKeyID(t *testing.T) string { return keyIDOf(t, w.operator) }

// auditWalk performs changes through the API and checks, after each, what the audit log gained.
type auditWalk struct {
	t       *testing.T
	h       *harness
	w       *tenantWorld
	count   int
	seen    map[string]bool
	covered map[string]bool
	// secrets are every secret value sent to or returned by the API.
	secrets []string
}

// change sends a request that must succeed, and returns its answer and the one entry it added.
func (a *auditWalk) change(method, pattern, path, credential string, body any, want int, resource, id string) (response, domain.AuditEntry) {
	a.t.Helper()
	// Each change a second later: entries of one millisecond have no order among themselves.
	a.h.clock = a.h.clock.Add(time.Second)
	res := a.h.call(method, path, credential, body)
	require.Equal(a.t, want, res.Status, "%s %s: %s", method, path, res.Body)
	log := a.log()
	require.Len(a.t, log, a.count+1, "%s %s must add exactly one audit entry", method, pattern)
	a.count++
	e := log[0]
	assert.False(a.t, a.seen[e.ID], "%s %s: the newest entry is not new", method, pattern)
	a.seen[e.ID] = true
	assert.Equal(a.t, method+" "+pattern, e.Action)
	assert.Equal(a.t, resource, e.Resource.Type, "%s %s", method, pattern)
	if id != "" {
		assert.Equal(a.t, id, e.Resource.ID, "%s %s", method, pattern)
	} else {
		assert.NotEmpty(a.t, e.Resource.ID, "%s %s names no resource", method, pattern)
	}
	if strings.HasPrefix(credential, auth.PrefixAPIKey+"_") {
		assert.Equal(a.t, domain.AuditActor{Type: domain.ActorAPIKey, ID: keyIDOf(a.t, credential), Name: actorName(credential, a.w)}, e.Actor, "%s %s", method, pattern)
	}
	assert.Equal(a.t, "192.0.2.1", e.SourceIP)
	assert.True(a.t, strings.HasPrefix(e.RequestID, "req-"), "the request ID API Gateway gave: %q", e.RequestID)
	assert.Equal(a.t, e.RequestID, res.Header["X-Request-Id"], "the answer names the request")
	assert.Equal(a.t, e.Time.Add(store.DefaultAuditRetention), e.ExpiresAt)
	a.covered[method+" "+pattern] = true
	return res, e
}

func actorName(credential string, w *tenantWorld) string {
	switch credential {
	case w.admin:
		return "admin-key"
	case w.operator:
		return "operator-key"
	}
	return "viewer-key"
}

// refused sends a request that must fail, and checks that the log gained nothing.
func (a *auditWalk) refused(method, path, credential string, body any, want int) {
	a.t.Helper()
	res := a.h.call(method, path, credential, body)
	require.Equal(a.t, want, res.Status, "%s %s: %s", method, path, res.Body)
	assert.Len(a.t, a.log(), a.count, "the failed %s %s added an audit entry", method, path)
}

func (a *auditWalk) log() []domain.AuditEntry {
	a.t.Helper()
	var all []domain.AuditEntry
	page := store.Page{Limit: 100}
	for {
		es, next, err := a.h.store.ListAudit(context.Background(), a.w.id, store.AuditFilter{}, page)
		require.NoError(a.t, err)
		all = append(all, es...)
		if next == "" {
			return all
		}
		page.Cursor = next
	}
}

func changed(e domain.AuditEntry, field string) (from, to string, ok bool) {
	for _, c := range e.Changes {
		if c.Field == field {
			return string(c.From), string(c.To), true
		}
	}
	return "", "", false
}

// TestEveryChangeOfTheTenantAPIIsAuditedOnce walks every operation of the document that changes
// something, through the real handlers: each success adds exactly one entry naming the route,
// the resource and the key; each refusal adds none; and no secret sent or returned is in any.
func TestEveryChangeOfTheTenantAPIIsAuditedOnce(t *testing.T) {
	h := newHarness(t)
	h.clock = time.Now().UTC().Truncate(time.Second)
	w := newTenantWorld(h, "acme")
	a := &auditWalk{t: t, h: h, w: w, seen: map[string]bool{}, covered: map[string]bool{}, secrets: []string{w.admin, w.operator, w.viewer}}
	ag := w.agent("web-1", map[string]string{"env": "prod"})
	a.secrets = append(a.secrets, ag.Credential)
	const get, post, put, patch, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete
	missing := domain.NewID(h.clock)

	_, e := a.change(patch, "/v1/agents/{agentId}", "/v1/agents/"+ag.ID, w.operator, map[string]any{"version": ag.Version, "labels": map[string]any{"site": "fra1"}}, 200, "agent", ag.ID)
	_, to, ok := changed(e, "labels.site")
	assert.True(t, ok && to == `"fra1"`, "the diff names the nested field: %+v", e.Changes)
	a.refused(patch, "/v1/agents/"+ag.ID, w.operator, map[string]any{"version": ag.Version}, 409)
	a.refused(patch, "/v1/agents/"+ag.ID, w.viewer, map[string]any{"version": ag.Version + 1}, 403)

	res, _ := a.change(post, "/v1/enrollment-tokens", "/v1/enrollment-tokens", w.operator, map[string]any{"maxUses": 2, "expiresIn": "2h", "description": "rack 4"}, 201, "enrollmentToken", "")
	var token createdToken
	res.JSON(t, &token)
	a.secrets = append(a.secrets, token.Token)
	res, e = a.change(post, "/v1/agent/register", "/v1/agent/register", "", map[string]any{"token": token.Token, "hostname": "db-1", "os": "linux", "arch": "amd64",
		"agentVersion": "1.0.0", "resticVersion": "0.18.1"}, 201, "agent", "")
	var reg struct {
		AgentID    string `json:"agentId"`
		Credential string `json:"credential"`
	}
	res.JSON(t, &reg)
	a.secrets = append(a.secrets, reg.Credential)
	assert.Equal(t, reg.AgentID, e.Resource.ID)
	assert.Equal(t, domain.AuditActor{Type: domain.ActorEnrollmentToken, ID: token.ID, Name: "rack 4"}, e.Actor)
	_, to, _ = changed(e, "hostname")
	assert.Equal(t, `"db-1"`, to)
	a.refused(post, "/v1/agent/register", "", map[string]any{"token": "rme_" + token.ID + "_" + strings.Repeat("a", 52), "hostname": "db-2", "os": "linux", "arch": "amd64"}, 401)
	// An agent's own reports are not changes an operator makes.
	res = h.call(post, "/v1/agent/heartbeat", reg.Credential, map[string]any{})
	require.Equal(t, 200, res.Status, res.Body)
	assert.Len(t, a.log(), a.count, "a heartbeat is not audited")
	a.change(del, "/v1/enrollment-tokens/{tokenId}", "/v1/enrollment-tokens/"+token.ID, w.operator, nil, 204, "enrollmentToken", token.ID)

	a.change(post, "/v1/repositories", "/v1/repositories", w.operator, map[string]any{"name": "repo-main", "backend": "local", "location": "/srv/restic"}, 201, "repository", "repo-main")
	a.refused(post, "/v1/repositories", w.operator, map[string]any{"name": "repo-main", "backend": "local", "location": "/srv/other"}, 409)
	_, e = a.change(put, "/v1/repositories/{name}", "/v1/repositories/repo-main", w.operator, map[string]any{"backend": "local", "location": "/srv/restic2", "version": 1}, 200, "repository", "repo-main")
	from, to, _ := changed(e, "location")
	assert.Equal(t, []string{`"/srv/restic"`, `"/srv/restic2"`}, []string{from, to})

	res, _ = a.change(post, "/v1/policies", "/v1/policies", w.operator, tenantPolicyBody("nightly", "repo-main"), 201, "policy", "")
	var p domain.Policy
	res.JSON(t, &p)
	body := tenantPolicyBody("nightly", "repo-main")
	body["version"], body["description"] = p.Version, "replaced"
	a.change(put, "/v1/policies/{policyId}", "/v1/policies/"+p.ID, w.operator, body, 200, "policy", p.ID)
	_, e = a.change(patch, "/v1/policies/{policyId}", "/v1/policies/"+p.ID, w.operator, map[string]any{"version": p.Version + 1, "schedule": map[string]any{"cron": "0 3 * * *"}}, 200, "policy", p.ID)
	from, to, _ = changed(e, "schedule.cron")
	assert.Equal(t, []string{`"30 2 * * *"`, `"0 3 * * *"`}, []string{from, to}, "%+v", e.Changes)
	a.refused(patch, "/v1/policies/"+p.ID, w.operator, map[string]any{"version": p.Version}, 409)
	a.change(post, "/v1/policies/{policyId}/agents", "/v1/policies/"+p.ID+"/agents", w.operator, map[string]any{"agentIds": []string{ag.ID}}, 200, "assignment", p.ID)
	a.refused(post, "/v1/policies/"+p.ID+"/agents", w.operator, map[string]any{"agentIds": []string{missing}}, 422)

	res, _ = a.change(post, "/v1/tasks", "/v1/tasks", w.operator, map[string]any{"type": "backup", "agentId": ag.ID, "policyId": p.ID}, 201, "task", "")
	var task domain.Task
	res.JSON(t, &task)
	drainTaskQueue(t, h, ag.QueueURL)
	a.change(post, "/v1/tasks/{taskId}/cancel", "/v1/tasks/"+task.ID+"/cancel", w.operator, nil, 200, "task", task.ID)
	a.refused(post, "/v1/tasks/"+task.ID+"/cancel", w.operator, nil, 409)

	res, _ = a.change(post, "/v1/api-keys", "/v1/api-keys", w.admin, map[string]any{"name": "ci", "role": "viewer"}, 201, "apiKey", "")
	var key createdKey
	res.JSON(t, &key)
	a.secrets = append(a.secrets, key.Key)
	a.refused(post, "/v1/api-keys", w.operator, map[string]any{"name": "ci", "role": "viewer"}, 403)
	_, e = a.change(del, "/v1/api-keys/{keyId}", "/v1/api-keys/"+key.ID, w.admin, nil, 204, "apiKey", key.ID)
	from, to, _ = changed(e, "revokedAt")
	assert.Equal(t, []string{"", `"` + h.clock.Format(time.RFC3339) + `"`}, []string{from, to})
	// Revoking again is a request an operator made, and changes nothing.
	_, e = a.change(del, "/v1/api-keys/{keyId}", "/v1/api-keys/"+key.ID, w.admin, nil, 204, "apiKey", key.ID)
	assert.Empty(t, e.Changes)

	hook := newHookReceiver(t)
	const channels, channel = "/v1/notification-channels", "/v1/notification-channels/{channelId}"
	hookURL := hook.URL + "/hooks/t0ken-in-the-path"
	res, _ = a.change(post, channels, channels, w.operator, map[string]any{"name": "ops", "kind": "webhook", "url": hookURL,
		"rules": map[string]any{"eventTypes": []string{"task.failed"}}}, 201, "notificationChannel", "")
	var ch createdChannel
	res.JSON(t, &ch)
	slackURL := hook.URL + "/services/T000/B000/slacksecret"
	a.secrets = append(a.secrets, ch.Secret, hookURL, slackURL, "slacksecret")
	res, _ = a.change(post, channels, channels, w.operator, map[string]any{"name": "chat", "kind": "slack", "slackUrl": slackURL,
		"rules": map[string]any{"eventTypes": []string{"agent.offline"}}}, 201, "notificationChannel", "")
	var slack createdChannel
	res.JSON(t, &slack)
	a.change(patch, channel, channels+"/"+slack.ID, w.operator, map[string]any{"version": slack.Version, "slackUrl": slackURL + "2"}, 200, "notificationChannel", slack.ID)
	a.change(patch, channel, channels+"/"+ch.ID, w.operator, map[string]any{"version": ch.Version, "quiet": true}, 200, "notificationChannel", ch.ID)
	a.change(post, channel+"/test", channels+"/"+ch.ID+"/test", w.operator, nil, 200, "notificationChannel", ch.ID)
	res, _ = a.change(post, channel+"/rotate-secret", channels+"/"+ch.ID+"/rotate-secret", w.operator, nil, 200, "notificationChannel", ch.ID)
	var rotated createdChannel
	res.JSON(t, &rotated)
	a.secrets = append(a.secrets, rotated.Secret)
	a.change(del, channel, channels+"/"+ch.ID, w.operator, nil, 204, "notificationChannel", ch.ID)
	a.refused(del, channels+"/"+ch.ID, w.operator, nil, 404)

	a.change(del, "/v1/policies/{policyId}/agents/{agentId}", "/v1/policies/"+p.ID+"/agents/"+ag.ID, w.operator, nil, 204, "assignment", p.ID)
	a.change(del, "/v1/policies/{policyId}", "/v1/policies/"+p.ID, w.operator, nil, 204, "policy", p.ID)
	a.change(del, "/v1/repositories/{name}", "/v1/repositories/repo-main", w.operator, nil, 204, "repository", "repo-main")
	_, e = a.change(del, "/v1/agents/{agentId}", "/v1/agents/"+ag.ID, w.operator, nil, 204, "agent", ag.ID)
	from, _, _ = changed(e, "hostname")
	assert.Equal(t, `"web-1"`, from, "a deletion shows what was deleted")
	a.refused(del, "/v1/agents/"+ag.ID, w.operator, nil, 404)

	// No secret is in any entry, as the API lists them.
	var listed strings.Builder
	path := "/v1/audit?limit=7"
	for {
		res := h.call(get, path, w.admin, nil)
		require.Equal(t, 200, res.Status, res.Body)
		listed.WriteString(res.Body)
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor string            `json:"nextCursor"`
		}
		res.JSON(t, &page)
		if page.NextCursor == "" {
			break
		}
		path = "/v1/audit?limit=7&cursor=" + url.QueryEscape(page.NextCursor)
	}
	assert.Equal(t, a.count, strings.Count(listed.String(), `"requestId"`), "the API lists every entry once")
	for _, s := range a.secrets {
		require.NotEmpty(t, s)
		_, _, secret, _ := auth.Parse(s)
		for _, v := range []string{s, secret} {
			if v != "" {
				assert.NotContains(t, listed.String(), v, "a secret is in the audit log")
			}
		}
	}
	assert.Contains(t, listed.String(), domain.Redacted, "secrets are shown as redacted")

	// Deleting the tenant is audited like any change, and its log goes with the rest of it.
	res = h.call(del, "/v1/tenant?confirm=acme", w.admin, nil)
	require.Equal(t, 202, res.Status, res.Body)
	a.covered["DELETE /v1/tenant"] = true
	var d struct {
		Removed map[string]int64 `json:"removed"`
	}
	res.JSON(t, &d)
	assert.Equal(t, int64(a.count+1), d.Removed["auditEntries"], "every entry, the deletion's own too, is removed")

	// Every operation of the document that changes something was walked.
	doc := loadOpenAPI(t)
	walked := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if method == http.MethodGet || op.Extensions["x-role"] == nil {
				continue
			}
			assert.True(t, a.covered[method+" "+path], "%s %s is not walked", method, path)
			walked++
		}
	}
	assert.Equal(t, 23, walked, "the document's changing tenant operations")
}

// TestTheAuditLogFiltersAndRefusesBadFilters lists entries through the API by resource, actor and
// time, and refuses a filter it cannot read with the field at fault.
func TestTheAuditLogFiltersAndRefusesBadFilters(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	for _, name := range []string{"repo-a", "repo-b"} {
		res := h.call(http.MethodPost, "/v1/repositories", w.operator, map[string]any{"name": name, "backend": "local", "location": "/srv/" + name})
		require.Equal(t, 201, res.Status, res.Body)
		h.clock = h.clock.Add(time.Minute)
	}
	res := h.call(http.MethodPost, "/v1/api-keys", w.admin, map[string]any{"name": "ci", "role": "viewer"})
	require.Equal(t, 201, res.Status, res.Body)

	list := func(query string) []domain.AuditEntry {
		t.Helper()
		res := h.call(http.MethodGet, "/v1/audit?"+query, w.operator, nil)
		require.Equal(t, 200, res.Status, res.Body)
		var page struct{ Items []domain.AuditEntry }
		res.JSON(t, &page)
		return page.Items
	}
	ids := func(es []domain.AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Resource.Type+"/"+e.Resource.ID)
		}
		return out
	}
	assert.Equal(t, []string{"repository/repo-b", "repository/repo-a"}, ids(list("resource=repository")), "newest first")
	assert.Equal(t, []string{"repository/repo-a"}, ids(list("resource=repository/repo-a")))
	assert.Len(t, list("actor="+keyIDOf(t, w.admin)), 1)
	assert.Len(t, list("actor="+keyIDOf(t, w.operator)+"&resource=apiKey"), 0)
	start := time.Date(2037, 11, 2, 10, 0, 0, 0, time.UTC)
	assert.Equal(t, []string{"repository/repo-a"}, ids(list("until="+start.Add(30*time.Second).Format(time.RFC3339))))
	assert.Len(t, list("since="+start.Add(30*time.Second).Format(time.RFC3339)), 2)

	for query, field := range map[string]string{
		"resource=widget":           "resource",
		"resource=policy/not-an-id": "resource",
		"actor=alice":               "actor",
		"since=yesterday":           "since",
		"until=2037-01-01T00:00:00Z&since=2037-02-01T00:00:00Z": "until",
		"limit=0":                 "limit",
		"cursor=bm90IGEgY3Vyc29y": "cursor",
		"colour=red":              "colour",
	} {
		res := h.call(http.MethodGet, "/v1/audit?"+query, w.operator, nil)
		require.Equal(t, 400, res.Status, "%s: %s", query, res.Body)
		assert.Equal(t, []string{field}, res.ErrorFields(t), query)
	}
	assert.Equal(t, 403, h.call(http.MethodGet, "/v1/audit", w.viewer, nil).Status, "a viewer does not read the audit log")
}
