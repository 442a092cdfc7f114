package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/lambdahttp"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/queuecreds"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// fuzzTarget is the combined router against a real table, with one tenant that has one of
// everything, so that fuzzed requests reach handlers with IDs that exist.
type fuzzTarget struct {
	direct  http.Handler // the local stack's way: Authenticate in front of NewHandler
	adapter lambdahttp.Adapter
	authn   *auth.Authenticator
	creds   []string // none, admin, viewer, agent
	ids     map[string]string
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	f.Helper()
	cfg := testenv.AWS(f)
	table := testenv.Table(f, cfg)
	clock := time.Now().UTC().Truncate(time.Second)
	now := func() time.Time { return clock }
	st := store.New(dynamodb.NewFromConfig(cfg), table)
	st.Now = now
	qm := queue.New(sqs.NewFromConfig(cfg), resources.Names{Stage: "f" + testenv.UniqueName("")[:8]})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	deps := httpapi.Deps{
		Store: st, Queues: qm, Log: log, Now: now, Settings: httpapi.DefaultSettings(),
		Dispatcher: &dispatch.Dispatcher{Store: st, Sender: qm, Log: log, Now: now},
		// A real vendor, so that the credentials route answers as it does when deployed.
		Credentials: queuecreds.New(sts.NewFromConfig(cfg), agentRoleARN),
	}
	authn := &auth.Authenticator{Store: st, Now: now}
	ft := &fuzzTarget{
		direct:  httpapi.Authenticate(authn, log, httpapi.NewHandler(deps)),
		adapter: lambdahttp.Adapter{Handler: httpapi.NewHandler(deps)},
		authn:   authn,
	}
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			f.Fatal(err)
		}
	}
	must(st.CreateTenant(ctx, domain.Tenant{ID: "fuzz", Name: "fuzz", CreatedAt: clock}))
	key := func(role domain.Role) string {
		id, secret := domain.NewID(clock), auth.NewSecret()
		must(st.CreateAPIKey(ctx, "fuzz", domain.APIKey{ID: id, Name: string(role), Role: role, SecretHash: auth.Hash(secret), CreatedAt: clock}))
		return auth.Format(auth.PrefixAPIKey, id, secret)
	}
	admin, viewer := key(domain.RoleAdmin), key(domain.RoleViewer)
	tokenID := domain.NewID(clock)
	must(st.CreateEnrollmentToken(ctx, "fuzz", domain.EnrollmentToken{ID: tokenID, SecretHash: auth.Hash(auth.NewSecret()), MaxUses: 1, CreatedAt: clock, ExpiresAt: clock.Add(time.Hour)}))
	secret := auth.NewSecret()
	agent, err := st.RegisterAgent(ctx, "fuzz", tokenID, domain.Agent{
		ID: domain.NewID(clock), Hostname: "fuzz-1", OS: "linux", Arch: "amd64", AgentVersion: "1.0.0", Status: domain.AgentOnline,
		LastSeenAt: &clock, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60, SecretHash: auth.Hash(secret),
	})
	must(err)
	_, err = qm.EnsureDeadLetterQueue(ctx)
	must(err)
	f.Cleanup(func() { _ = qm.DeleteDeadLetterQueue(context.Background()) })
	q, err := qm.Ensure(ctx, "fuzz", agent.ID)
	must(err)
	f.Cleanup(func() { _ = qm.Delete(context.Background(), "fuzz", agent.ID) })
	_, err = st.ModifyAgent(ctx, "fuzz", agent.ID, func(a *domain.Agent) error { a.QueueURL = q.URL; return nil })
	must(err)
	_, err = st.CreateRepository(ctx, "fuzz", domain.Repository{Name: "repo-main", Backend: domain.BackendLocal, Location: "/srv/restic"})
	must(err)
	policy, err := st.CreatePolicy(ctx, "fuzz", domain.Policy{
		ID: domain.NewID(clock), Name: "nightly", Enabled: true, Repository: "repo-main", Paths: []string{"/data"},
		Schedule: domain.Schedule{Cron: "@daily"}, Retention: domain.Retention{KeepDaily: 7},
	})
	must(err)
	must(st.Assign(ctx, "fuzz", policy.ID, agent.ID, []domain.Slot{{Kind: domain.SlotBackup}}))
	task, err := st.CreateTask(ctx, "fuzz", domain.Task{
		ID: domain.NewID(clock), AgentID: agent.ID, PolicyID: policy.ID, Repository: "repo-main", Type: domain.TaskBackup,
		Status: domain.TaskPending, Attempt: 1, NotBefore: clock, Deadline: clock.Add(time.Hour), Trigger: "operator",
	})
	must(err)
	run, err := st.CreateRun(ctx, "fuzz", domain.Run{ID: domain.NewID(clock), AgentID: agent.ID, TaskID: task.ID, PolicyID: policy.ID, Type: domain.TaskBackup, Attempt: 1, Status: domain.TaskRunning, StartedAt: clock})
	must(err)
	ft.creds = []string{"", admin, viewer, auth.Format(auth.PrefixAgent, agent.ID, secret)}
	ft.ids = map[string]string{"agentId": agent.ID, "policyId": policy.ID, "taskId": task.ID, "runId": run.ID, "tokenId": tokenID, "keyId": domain.NewID(clock), "name": "repo-main"}
	return ft
}

// serve sends one request both ways the API is served and checks each answer.
func (ft *fuzzTarget) serve(t *testing.T, method, target string, body []byte, who, ctype uint8) {
	u, err := url.Parse(target)
	if err != nil || u.Path == "" || !strings.HasPrefix(u.Path, "/") || u.Host != "" || u.Scheme != "" {
		return
	}
	req, err := http.NewRequestWithContext(context.Background(), method, "http://api.test"+u.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return
	}
	cred := ft.creds[int(who)%len(ft.creds)]
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	contentType := []string{"application/json", "application/merge-patch+json", "text/plain", ""}[int(ctype)%4]
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	ft.direct.ServeHTTP(rec, req)
	checkAnswer(t, "net/http", method, target, rec.Code, rec.Body.Bytes())

	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: u.EscapedPath(), RawQueryString: u.RawQuery,
		Headers: map[string]string{"content-type": contentType, "host": "api.test"}, Body: base64.StdEncoding.EncodeToString(body), IsBase64Encoded: true,
		RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: u.Path}},
	}
	if cred != "" {
		res, err := lambdahttp.Authorize(context.Background(), ft.authn, events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"authorization": "Bearer " + cred}})
		if err != nil {
			t.Fatalf("authorizer: %v", err)
		}
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: res.Context}
	}
	out, err := ft.adapter.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("adapter: %v", err)
	}
	checkAnswer(t, "API Gateway", method, target, out.StatusCode, []byte(out.Body))
}

// checkAnswer holds every answer to what the API promises: no 5xx, and a JSON body (none for
// 204), which for an error has the one error shape.
func checkAnswer(t *testing.T, via, method, target string, status int, body []byte) {
	t.Helper()
	if status >= 500 {
		t.Fatalf("%s %s via %s: %d %s", method, target, via, status, body)
	}
	if status >= 300 && status < 400 {
		// net/http's ServeMux redirects a path that is not clean (/v1/agents/../x) to its clean
		// form, with a short HTML body; that is no error and no 5xx.
		return
	}
	if len(body) == 0 {
		if status != http.StatusNoContent {
			t.Fatalf("%s %s via %s: %d with an empty body", method, target, via, status)
		}
		return
	}
	if !json.Valid(body) {
		t.Fatalf("%s %s via %s: %d with a body that is not JSON: %q", method, target, via, status, body)
	}
	if status >= 400 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s %s via %s: %d without the error shape: %s", method, target, via, status, body)
		}
	}
}

// FuzzRouter sends random methods, paths, queries, bodies, credentials and content types to
// both APIs, and finds no 5xx, no panic and no answer outside the error shape. Its seeds are
// the real routes with IDs that exist, and known nasty inputs; `go test` runs the seeds.
func FuzzRouter(f *testing.F) {
	ft := newFuzzTarget(f)
	fill := func(pattern string) string {
		for k, v := range ft.ids {
			pattern = strings.ReplaceAll(pattern, "{"+k+"}", v)
		}
		return pattern
	}
	bodies := map[string]string{
		"POST /v1/repositories":               `{"name":"repo-2","backend":"local","location":"/srv/2"}`,
		"PUT /v1/repositories/{name}":         `{"backend":"local","location":"/srv/3","version":1}`,
		"POST /v1/policies":                   `{"name":"p-2","repository":"repo-main","paths":["/d"],"schedule":{"interval":"6h"},"retention":{"keepLast":3}}`,
		"PATCH /v1/policies/{policyId}":       `{"version":1,"schedule":{"cron":"0 3 * * *","timezone":"America/New_York"}}`,
		"PUT /v1/policies/{policyId}":         `{"name":"nightly","repository":"repo-main","paths":["C:\\data"],"schedule":{"cron":"@weekly"},"retention":{"keepWithin":"30d"},"version":1}`,
		"POST /v1/policies/{policyId}/agents": `{"agentIds":["{agentId}"]}`,
		"PATCH /v1/agents/{agentId}":          `{"version":2,"labels":{"env":"prod","x":null},"limits":{"maxConcurrentTasks":2}}`,
		"POST /v1/tasks":                      `{"type":"restore","agentId":"{agentId}","repository":"repo-main","params":{"snapshotId":"latest","target":"/r"}}`,
		"POST /v1/enrollment-tokens":          `{"maxUses":2,"expiresIn":"1h"}`,
		"POST /v1/api-keys":                   `{"name":"k","role":"viewer"}`,
	}
	deps := httpapi.Deps{}
	for i, r := range append(httpapi.TenantRoutes(deps), httpapi.AgentRoutes(deps)...) {
		body := bodies[r.Method+" "+r.Pattern]
		if body == "" && r.Method != http.MethodGet && r.Method != http.MethodDelete {
			body = `{}`
		}
		f.Add(r.Method, fill(r.Pattern), []byte(fill(body)), uint8(i%4), uint8(0))
		f.Add(r.Method, fill(r.Pattern)+"?limit=1", []byte(fill(body)), uint8(1), uint8(1))
	}
	long := base64.RawURLEncoding.EncodeToString([]byte(`{"s":"AGENT#` + strings.Repeat("A", 1500) + `"}`))
	for _, s := range []struct {
		method, path, body string
	}{
		{"GET", "/v1/agents?cursor=" + long, ""},
		{"GET", "/v1/agents/{agentId}/policies?cursor=" + base64.RawURLEncoding.EncodeToString([]byte(`{"s":"x","g":"POLICY#`+strings.Repeat("z", 1500)+`","p":"`+strings.Repeat("q", 1500)+`"}`)), ""},
		{"GET", "/v1/tasks?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z", ""},
		{"GET", "/v1/runs?since=2000-01-01T00:00:00Z&status=failed&agentId={agentId}&policyId={policyId}", ""},
		{"GET", "/v1/agents?label=" + strings.Repeat("a", 63) + ":" + strings.Repeat("v", 253), ""},
		{"GET", "/v1/agents/%00", ""},
		{"GET", "//v1//agents", ""},
		{"GET", "/v1/agents/../api-keys", ""},
		{"DELETE", "/v1/repositories/" + strings.Repeat("r", 100), ""},
		{"POST", "/v1/policies", `{"name":"p-3","repository":"repo-main","paths":["/d"],"schedule":{"cron":"0 0 30 2 *"},"retention":{"keepLast":1}}`},
		{"PATCH", "/v1/policies/{policyId}", `{"version":1,"paths":{"a":{"b":{"c":[1,{"d":null}]}}}}`},
		{"PATCH", "/v1/agents/{agentId}", `{"version":1e300}`},
		{"POST", "/v1/tasks", `{"type":"check","agentId":"{agentId}","policyId":"{policyId}","startWithin":"99999999999999999999h"}`},
		{"PUT", "/v1/policies/{policyId}", strings.Repeat("[", 10000)},
		{"POST", "/v1/agent/register", `{"token":"rme_x_y"}`},
		{"BREW", "/v1/agents", ""},
	} {
		f.Add(s.method, fill(s.path), []byte(fill(s.body)), uint8(1), uint8(0))
	}
	f.Fuzz(func(t *testing.T, method, path string, body []byte, who, ctype uint8) {
		ft.serve(t, method, path, body, who, ctype)
	})
}
