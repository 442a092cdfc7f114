package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/lambdahttp"
)

// tenantWorld is one tenant seen through the tenant API: a key of every role, and helpers that
// seed its resources (through the API where the API creates them, through the store where only
// agents do).
type tenantWorld struct {
	h                       *harness
	id                      string
	admin, operator, viewer string
}

func newTenantWorld(h *harness, id string) *tenantWorld {
	h.t.Helper()
	return &tenantWorld{h: h, id: id, admin: h.tenant(id, domain.RoleAdmin), operator: h.apiKey(id, domain.RoleOperator), viewer: h.apiKey(id, domain.RoleViewer)}
}

// enrolledAgent is an agent with its queue and its credential.
type enrolledAgent struct {
	domain.Agent
	Credential string
}

// agent enrolls an online agent with a queue, as registration would.
func (w *tenantWorld) agent(hostname string, labels map[string]string) enrolledAgent {
	w.h.t.Helper()
	t, ctx, now := w.h.t, context.Background(), w.h.clock
	// The token expires an hour from the real time or the test clock, whichever is later: the
	// table's TTL runs on the real clock and would remove a token that expired in the clock's
	// past, and registering checks it against the test clock.
	real := time.Now().UTC()
	if now.After(real) {
		real = now
	}
	tokenID, tokenSecret := domain.NewID(now), auth.NewSecret()
	require.NoError(t, w.h.store.CreateEnrollmentToken(ctx, w.id, domain.EnrollmentToken{
		ID: tokenID, SecretHash: auth.Hash(tokenSecret), MaxUses: 1, CreatedAt: real, ExpiresAt: real.Add(time.Hour),
	}))
	secret := auth.NewSecret()
	a, err := w.h.store.RegisterAgent(ctx, w.id, tokenID, domain.Agent{
		ID: domain.NewID(now), Hostname: hostname, OS: "linux", Arch: "amd64", AgentVersion: "1.0.0", ResticVersion: "0.18.1",
		Labels: labels, Status: domain.AgentOnline, LastSeenAt: &now, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60,
		SecretHash: auth.Hash(secret), CreatedAt: now, UpdatedAt: now,
	})
	require.NoError(t, err)
	q, err := w.h.queues.Ensure(ctx, w.id, a.ID)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.h.queues.Delete(context.Background(), w.id, a.ID) })
	a, err = w.h.store.ModifyAgent(ctx, w.id, a.ID, func(a *domain.Agent) error { a.QueueURL = q.URL; return nil })
	require.NoError(t, err)
	return enrolledAgent{Agent: a, Credential: auth.Format(auth.PrefixAgent, a.ID, secret)}
}

// repository creates a local repository through the API.
func (w *tenantWorld) repository(name string) domain.Repository {
	w.h.t.Helper()
	res := w.h.call(http.MethodPost, "/v1/repositories", w.operator, map[string]any{"name": name, "backend": "local", "location": "/srv/restic/" + name})
	require.Equal(w.h.t, http.StatusCreated, res.Status, res.Body)
	var r domain.Repository
	res.JSON(w.h.t, &r)
	return r
}

// tenantPolicyBody is a valid policy body: a daily backup of /data with a forget schedule.
func tenantPolicyBody(name, repo string) map[string]any {
	return map[string]any{
		"name": name, "repository": repo, "paths": []string{"/data"},
		"schedule":       map[string]any{"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
		"retention":      map[string]any{"keepDaily": 7, "keepWeekly": 4},
		"forgetSchedule": map[string]any{"interval": "1d"},
	}
}

// policy creates a policy through the API.
func (w *tenantWorld) policy(name, repo string) domain.Policy {
	w.h.t.Helper()
	res := w.h.call(http.MethodPost, "/v1/policies", w.operator, tenantPolicyBody(name, repo))
	require.Equal(w.h.t, http.StatusCreated, res.Status, res.Body)
	var p domain.Policy
	res.JSON(w.h.t, &p)
	return p
}

// assign assigns a policy to agents through the API.
func (w *tenantWorld) assign(policyID string, agentIDs ...string) {
	w.h.t.Helper()
	res := w.h.call(http.MethodPost, "/v1/policies/"+policyID+"/agents", w.operator, map[string]any{"agentIds": agentIDs})
	require.Equal(w.h.t, http.StatusOK, res.Status, res.Body)
}

// run stores a finished run of a task, as the agent API would, with log chunks of lines each.
func (w *tenantWorld) run(agentID, policyID string, status domain.TaskStatus, startedAt time.Time, chunks ...[]string) domain.Run {
	w.h.t.Helper()
	ctx := context.Background()
	task, err := w.h.store.CreateTask(ctx, w.id, domain.Task{
		ID: domain.NewID(startedAt), AgentID: agentID, PolicyID: policyID, Repository: "repo-main", Type: domain.TaskBackup,
		Status: domain.TaskPending, Attempt: 1, MaxRetries: 3, NotBefore: startedAt, Deadline: startedAt.Add(time.Hour), Trigger: "schedule",
	})
	require.NoError(w.h.t, err)
	finished := startedAt.Add(5 * time.Minute)
	exit := 0
	r, err := w.h.store.CreateRun(ctx, w.id, domain.Run{
		ID: domain.NewID(startedAt), AgentID: agentID, TaskID: task.ID, PolicyID: policyID, Type: domain.TaskBackup, Attempt: 1,
		Status: status, StartedAt: startedAt, FinishedAt: &finished, ExitCode: &exit,
		Summary: &domain.Summary{SnapshotID: "4f8a2c1e9b7d", FilesNew: 10, FilesChanged: 2, FilesUnmodified: 300, DataAdded: 4096, DurationSeconds: 12.5},
	})
	require.NoError(w.h.t, err)
	for i, lines := range chunks {
		_, err := w.h.store.AppendLog(ctx, w.id, domain.LogChunk{RunID: r.ID, Seq: int64(i), Lines: lines, ExpiresAt: startedAt.Add(30 * 24 * time.Hour)})
		require.NoError(w.h.t, err)
	}
	return r
}

// raw sends a request like harness.call, with a raw body and extra headers (which replace the
// defaults; an empty value removes one).
func (w *tenantWorld) raw(method, path, credential, body string, headers map[string]string) response {
	h := w.h
	h.t.Helper()
	rawPath, query, _ := strings.Cut(path, "?")
	hdrs := map[string]string{"content-type": "application/json", "host": "api.test"}
	for k, v := range headers {
		if v == "" {
			delete(hdrs, k)
			continue
		}
		hdrs[k] = v
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: rawPath, RawQueryString: query, Headers: hdrs, Body: body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "req-" + domain.NewID(h.clock),
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: rawPath, SourceIP: "192.0.2.1"},
		},
	}
	ctx := context.Background()
	if credential != "" {
		hdrs["authorization"] = "Bearer " + credential
	}
	if header := hdrs["authorization"]; header != "" {
		res, err := lambdahttp.Authorize(ctx, h.authn, events.APIGatewayV2CustomAuthorizerV2Request{
			Type: "REQUEST", RouteKey: method + " " + rawPath, Headers: map[string]string{"authorization": header},
		})
		require.NoError(h.t, err)
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: res.Context}
	}
	out, err := h.api.Handle(ctx, ev)
	require.NoError(h.t, err)
	return response{Status: out.StatusCode, Header: out.Headers, Body: out.Body}
}

// tenantErrorCode returns the code of an error body.
func tenantErrorCode(t *testing.T, r response) string {
	t.Helper()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	r.JSON(t, &body)
	return body.Error.Code
}

// tenantStatus fails with the body when the status is not want.
func tenantStatus(t *testing.T, want int, res response, what ...any) {
	t.Helper()
	msg := fmt.Sprint(what...)
	require.Equal(t, want, res.Status, "%s: body %s", msg, res.Body)
}
