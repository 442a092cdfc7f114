package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/lambdahttp"
	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
	"github.com/restic-monitor/restic-monitor/internal/testenv/queuetest"
)

// harness runs the API as API Gateway does: every request is an API Gateway v2 event, first
// shown to the authorizer logic, then to the tenant or agent Lambda's adapter with the
// authorizer's context — against the real store and queues on the test endpoint.
type harness struct {
	t      *testing.T
	deps   httpapi.Deps
	store  *store.Store
	queues *queue.Manager
	authn  *auth.Authenticator
	api    lambdahttp.Adapter
	agent  lambdahttp.Adapter
	// clock is the time the API sees; tests move it.
	clock time.Time
	// ses stands in for the SES endpoint and keeps the mail sent.
	ses *sesEndpoint
	// sqs reads the agents' queues as an agent would.
	sqs *sqs.Client
}

// newHarness builds the API over a fresh table and queue stage; sqsOptions change the SQS
// client the API sends with.
func newHarness(t *testing.T, sqsOptions ...func(*sqs.Options)) *harness {
	t.Helper()
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg)
	// The test's present lies in the future, a Monday in a year with 2026's calendar: the
	// endpoint expires items by their TTL on the real clock, and an enrollment token or a log
	// chunk whose TTL had passed would vanish mid-test.
	h := &harness{t: t, sqs: sqs.NewFromConfig(cfg), clock: time.Date(2037, 11, 2, 10, 0, 0, 0, time.UTC)}
	now := func() time.Time { return h.clock }
	// Transactions are held to DynamoDB's limits: every change's audit entry joins one.
	st := store.New(dynamodb.NewFromConfig(cfg, testenv.StrictTransactions), table)
	st.Now = now
	// Each test gets its own stage, so its queues never meet another test's.
	names := resources.Names{Stage: "t" + testenv.UniqueName("")[:8]}
	qm := queue.New(sqs.NewFromConfig(cfg, sqsOptions...), names)
	_, err := qm.EnsureDeadLetterQueue(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = qm.DeleteDeadLetterQueue(context.Background()) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h.store, h.queues = st, qm
	h.authn = &auth.Authenticator{Store: st, Now: now}
	h.deps = httpapi.Deps{
		Store: st, Queues: qm, Log: log, Now: now, Settings: httpapi.DefaultSettings(),
		Dispatcher: &dispatch.Dispatcher{Store: st, Sender: qm, Log: log, Now: now},
	}
	h.ses = newSESEndpoint(t)
	sealer, err := notify.NewSealer([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	h.deps.Notify = &notify.Notifier{
		Store: st, Sealer: sealer, PublicURL: "https://monitor.example.com", Log: log, Now: now,
		// Test receivers listen on 127.0.0.1: the private-address guard is off for them.
		HTTP:   notify.NewHTTPClient(notify.ClientOptions{AllowPrivate: true, Timeout: 5 * time.Second}),
		Mailer: notify.SESMailer{Client: sesv2.NewFromConfig(cfg, func(o *sesv2.Options) { o.BaseEndpoint = aws.String(h.ses.URL) }), From: "alerts@monitor.example.com"},
		Retry:  schedule.RetryPolicy{Base: 10 * time.Millisecond, Factor: 2, Cap: 20 * time.Millisecond}, MaxAttempts: 2,
	}
	h.api = lambdahttp.Adapter{Handler: httpapi.NewTenantHandler(h.deps)}
	h.agent = lambdahttp.Adapter{Handler: httpapi.NewAgentHandler(h.deps)}
	return h
}

// inbox reads an agent's task queue.
func (h *harness) inbox(queueURL string) *queuetest.Inbox {
	return queuetest.NewInbox(h.t, h.sqs, queueURL)
}

// tenant creates a tenant with an API key of the given role and returns the key.
func (h *harness) tenant(id string, role domain.Role) string {
	h.t.Helper()
	ctx := context.Background()
	err := h.store.CreateTenant(ctx, domain.Tenant{ID: id, Name: id, CreatedAt: h.clock})
	if err != nil && !strings.Contains(err.Error(), "conflict") {
		require.NoError(h.t, err)
	}
	return h.apiKey(id, role)
}

// apiKey adds an API key of role to a tenant and returns the credential.
func (h *harness) apiKey(tenantID string, role domain.Role) string {
	h.t.Helper()
	id, secret := domain.NewID(h.clock), auth.NewSecret()
	require.NoError(h.t, h.store.CreateAPIKey(context.Background(), tenantID, domain.APIKey{
		ID: id, Name: string(role) + "-key", Role: role, SecretHash: auth.Hash(secret), CreatedAt: h.clock,
	}))
	return auth.Format(auth.PrefixAPIKey, id, secret)
}

// response is what a call returned.
type response struct {
	Status int
	Header map[string]string
	Body   string
}

// JSON decodes the body into v.
func (r response) JSON(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(r.Body), v), "body: %s", r.Body)
}

// ErrorFields returns the fields named by an error body.
func (r response) ErrorFields(t *testing.T) []string {
	t.Helper()
	var body struct {
		Error struct {
			Code   string                   `json:"code"`
			Fields []struct{ Field string } `json:"fields"`
		} `json:"error"`
	}
	r.JSON(t, &body)
	require.NotEmpty(t, body.Error.Code, "error body without code: %s", r.Body)
	var out []string
	for _, f := range body.Error.Fields {
		out = append(out, f.Field)
	}
	return out
}

// call sends one request the way API Gateway would: the authorizer first, then the Lambda that
// owns the path with the authorizer's context. An empty credential skips the authorizer, as API
// Gateway does when the Authorization header is missing (it answers 401 itself on authorized
// routes; the handlers answer the same).
func (h *harness) call(method, path, credential string, body any) response {
	h.t.Helper()
	var raw string
	switch b := body.(type) {
	case nil:
	case string:
		raw = b
	default:
		bs, err := json.Marshal(b)
		require.NoError(h.t, err)
		raw = string(bs)
	}
	rawPath, query, _ := strings.Cut(path, "?")
	headers := map[string]string{"content-type": "application/json", "host": "api.test"}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: rawPath, RawQueryString: query, Headers: headers, Body: raw,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "req-" + domain.NewID(h.clock),
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: rawPath, SourceIP: "192.0.2.1"},
		},
	}
	ctx := context.Background()
	if credential != "" {
		headers["authorization"] = "Bearer " + credential
		res, err := lambdahttp.Authorize(ctx, h.authn, events.APIGatewayV2CustomAuthorizerV2Request{
			Type: "REQUEST", RouteKey: method + " " + rawPath, Headers: map[string]string{"authorization": "Bearer " + credential},
		})
		require.NoError(h.t, err)
		if !res.IsAuthorized {
			return response{Status: http.StatusForbidden, Body: `{"message":"Forbidden"}`}
		}
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: res.Context}
	}
	adapter := h.api
	if strings.HasPrefix(rawPath, "/v1/agent/") {
		adapter = h.agent
	}
	out, err := adapter.Handle(ctx, ev)
	require.NoError(h.t, err)
	return response{Status: out.StatusCode, Header: out.Headers, Body: out.Body}
}
