package agenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/queuecreds"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
	"github.com/restic-monitor/restic-monitor/internal/testenv/queuetest"
)

// ControlPlane is the real control plane in-process: the tenant and agent API handlers behind
// the local authenticator, over the real store and queues on the test endpoint, served on a
// loopback port that can be taken away and brought back. Tests act as an operator through the
// tenant API, with an admin key.
type ControlPlane struct {
	T      testing.TB
	Store  *store.Store
	Queues *queue.Manager
	SQS    *sqs.Client
	Tenant string
	// URL is the API's base URL.
	URL string

	adminKey   string
	handler    http.Handler
	addr       *heldAddress
	dispatcher *dispatch.Dispatcher

	mu  sync.Mutex
	srv *http.Server
}

// HeartbeatInterval is the interval the test control plane asks agents to report at.
const HeartbeatInterval = 5 * time.Second

// Deadlines of waits for what the agent, restic and the emulator do. They are generous, far
// beyond what the work takes on a loaded machine, so that a wait fails only when the thing
// never happens; a test asserts what happened, never how fast.
const (
	// TaskTimeout bounds a wait for a task that runs restic to reach a status.
	TaskTimeout = 3 * time.Minute
	// Patience bounds a wait for anything else: a heartbeat, a queue emptying, a process
	// starting or ending.
	Patience = time.Minute
)

// Options shape a control plane.
type Options struct {
	// Settings change the API's settings, which otherwise ask agents for a heartbeat every
	// HeartbeatInterval.
	Settings []func(*httpapi.Settings)
	// SendTasksTwice sends every task message twice, as the SDK does when it retries a send
	// whose answer was lost: SQS then holds each message twice.
	SendTasksTwice bool
	// ServeReportsTwice serves every agent request but registration twice and answers with the
	// second answer, as when the first answer is lost and the agent sends the request again.
	ServeReportsTwice bool
}

// NewControlPlane starts a control plane with one tenant, on its own table and queue stage.
// Options change its settings, which otherwise ask agents for a heartbeat every
// HeartbeatInterval.
func NewControlPlane(t testing.TB, options ...func(*httpapi.Settings)) *ControlPlane {
	t.Helper()
	return NewControlPlaneWith(t, Options{Settings: options})
}

// NewControlPlaneWith starts a control plane shaped by o.
func NewControlPlaneWith(t testing.TB, o Options) *ControlPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the AWS endpoint and restic; run without -short")
	}
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg)
	st := store.New(dynamodb.NewFromConfig(cfg), table)
	names := resources.Names{Stage: "a" + testenv.UniqueName("")[:8]}
	sqsClient := sqs.NewFromConfig(cfg)
	qm := queue.New(sqsClient, names)
	// Every agent queue of the stage redrives to the stage's one dead-letter queue.
	_, err := qm.EnsureDeadLetterQueue(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = qm.DeleteDeadLetterQueue(context.Background()) })
	log := slog.New(slog.DiscardHandler)
	now := func() time.Time { return time.Now().UTC() }
	settings := httpapi.DefaultSettings()
	settings.HeartbeatInterval = HeartbeatInterval
	for _, change := range o.Settings {
		change(&settings)
	}
	sender := qm
	if o.SendTasksTwice {
		sender = queue.New(sqs.NewFromConfig(cfg, queuetest.SendBatchesTwice), names)
	}
	dispatcher := &dispatch.Dispatcher{Store: st, Sender: sender, Log: log, Now: now}
	deps := httpapi.Deps{
		Store: st, Queues: qm, Log: log, Now: now, Settings: settings, Dispatcher: dispatcher,
		Credentials: queuecreds.New(sts.NewFromConfig(cfg), "arn:aws:iam::000000000000:role/"+names.QueuePrefix()+"agent"),
	}
	handler := httpapi.Authenticate(&auth.Authenticator{Store: st, Now: now}, log, httpapi.NewHandler(deps))
	if o.ServeReportsTwice {
		handler = serveReportsTwice(handler)
	}
	cp := &ControlPlane{
		T: t, Store: st, Queues: qm, SQS: sqsClient, Tenant: "t" + testenv.UniqueName("")[:10],
		handler: handler, dispatcher: dispatcher,
	}
	ctx := context.Background()
	require.NoError(t, st.CreateTenant(ctx, domain.Tenant{ID: cp.Tenant, Name: cp.Tenant, CreatedAt: now()}))
	keyID, secret := domain.NewID(now()), auth.NewSecret()
	require.NoError(t, st.CreateAPIKey(ctx, cp.Tenant, domain.APIKey{
		ID: keyID, Name: "agent-tests", Role: domain.RoleAdmin, SecretHash: auth.Hash(secret), CreatedAt: now(),
	}))
	cp.adminKey = auth.Format(auth.PrefixAPIKey, keyID, secret)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cp.addr = holdAddress(ln)
	cp.URL = "http://" + ln.Addr().String()
	cp.serve()
	t.Cleanup(func() {
		cp.StopAPI()
		cp.addr.release()
	})
	return cp
}

// serveReportsTwice serves every agent request but registration twice, the second time with
// the same body, and answers with the second answer. Registration spends an enrollment token,
// which the agent's enroll command never sends twice.
func serveReportsTwice(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/agent/") || r.URL.Path == "/v1/agent/register" {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		first := r.Clone(r.Context())
		first.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(httptest.NewRecorder(), first)
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// Tick runs one scheduler tick at now, as the scheduler Lambda does, with the API's dispatcher
// (so SendTasksTwice holds for scheduled tasks too). It leaves the dead-letter queue alone, for
// the test to look at.
func (cp *ControlPlane) Tick(now time.Time) scheduler.Summary {
	cp.T.Helper()
	s := &scheduler.Scheduler{Store: cp.Store, Sender: cp.dispatcher, Log: slog.New(slog.DiscardHandler)}
	sum, err := s.Tick(context.Background(), now)
	require.NoError(cp.T, err)
	require.Zero(cp.T, sum.Errors, "tick errors")
	return sum
}

func (cp *ControlPlane) serve() {
	srv := &http.Server{Handler: cp.handler, ReadHeaderTimeout: 5 * time.Second}
	ln := cp.addr.listener()
	cp.mu.Lock()
	cp.srv = srv
	cp.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// StopAPI makes the API unreachable: open connections are closed, and new ones are closed as
// soon as they are made.
func (cp *ControlPlane) StopAPI() {
	cp.mu.Lock()
	srv := cp.srv
	cp.srv = nil
	cp.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// StartAPI serves the API again on the same address.
func (cp *ControlPlane) StartAPI() { cp.serve() }

// Call sends an operator's request to the tenant API and decodes the answer into out; it fails
// the test unless the status is want.
func (cp *ControlPlane) Call(method, path string, body, out any, want int) {
	cp.T.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(cp.T, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, cp.URL+path, rd)
	require.NoError(cp.T, err)
	req.Header.Set("Authorization", "Bearer "+cp.adminKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(cp.T, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(cp.T, err)
	require.Equal(cp.T, want, res.StatusCode, "%s %s answered %d: %s", method, path, res.StatusCode, raw)
	if out != nil {
		require.NoError(cp.T, json.Unmarshal(raw, out), "body: %s", raw)
	}
}

// EnrollmentToken creates a one-use enrollment token and returns its credential.
func (cp *ControlPlane) EnrollmentToken() string {
	cp.T.Helper()
	var out struct {
		Token string `json:"token"`
	}
	cp.Call("POST", "/v1/enrollment-tokens", map[string]any{"description": "agent test", "maxUses": 1, "expiresIn": "1h"}, &out, http.StatusCreated)
	return out.Token
}

// Repository registers a local repository by name.
func (cp *ControlPlane) Repository(name, location string) {
	cp.T.Helper()
	cp.Call("POST", "/v1/repositories", map[string]any{"name": name, "backend": "local", "location": location}, nil, http.StatusCreated)
}

// Policy creates a policy backing up paths into repository with retention and returns its ID.
func (cp *ControlPlane) Policy(name, repository string, paths []string, retention domain.Retention, change ...func(map[string]any)) string {
	cp.T.Helper()
	body := map[string]any{
		"name": name, "repository": repository, "paths": paths, "retention": retention,
		"schedule": map[string]any{"interval": "24h"}, "maxRetries": 0,
	}
	for _, c := range change {
		c(body)
	}
	var p domain.Policy
	cp.Call("POST", "/v1/policies", body, &p, http.StatusCreated)
	return p.ID
}

// Assign assigns a policy to agents.
func (cp *ControlPlane) Assign(policyID string, agentIDs ...string) {
	cp.T.Helper()
	cp.Call("POST", "/v1/policies/"+policyID+"/agents", map[string]any{"agentIds": agentIDs}, nil, http.StatusOK)
}

// RunTask asks for a task to run now, as an operator does, and returns it as created (sent to
// the agent's queue).
func (cp *ControlPlane) RunTask(typ domain.TaskType, agentID, policyID, repository string, params domain.TaskParams) domain.Task {
	cp.T.Helper()
	body := map[string]any{"type": typ, "agentId": agentID, "params": params}
	if policyID != "" {
		body["policyId"] = policyID
	}
	if repository != "" {
		body["repository"] = repository
	}
	var t domain.Task
	cp.Call("POST", "/v1/tasks", body, &t, http.StatusCreated)
	// The agent may have started it already by the time the API answers.
	require.NotEqual(cp.T, domain.TaskPending, t.Status, "the task was sent to the agent's queue")
	return t
}

// Task reads a task through the API.
func (cp *ControlPlane) Task(id string) domain.Task {
	cp.T.Helper()
	var t domain.Task
	cp.Call("GET", "/v1/tasks/"+id, nil, &t, http.StatusOK)
	return t
}

// Agent reads an agent through the API.
func (cp *ControlPlane) Agent(id string) domain.Agent {
	cp.T.Helper()
	var a domain.Agent
	cp.Call("GET", "/v1/agents/"+id, nil, &a, http.StatusOK)
	return a
}

// SetLimits changes an agent's limits as an operator does.
func (cp *ControlPlane) SetLimits(agentID string, l domain.Limits) {
	cp.T.Helper()
	a := cp.Agent(agentID)
	cp.Call("PATCH", "/v1/agents/"+agentID, map[string]any{"limits": l, "version": a.Version}, nil, http.StatusOK)
}

type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor"`
}

// Runs lists a task's runs, oldest first.
func (cp *ControlPlane) Runs(agentID, taskID string) []domain.Run {
	cp.T.Helper()
	var out []domain.Run
	cursor := ""
	for {
		var page list[domain.Run]
		q := url.Values{"limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		cp.Call("GET", "/v1/agents/"+agentID+"/runs?"+q.Encode(), nil, &page, http.StatusOK)
		for _, r := range page.Items {
			if taskID == "" || r.TaskID == taskID {
				out = append(out, r)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	// Run IDs are ULIDs: sorting by ID sorts by start.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Log returns a run's log lines in order, with the chunk sequence numbers seen.
func (cp *ControlPlane) Log(runID string) (lines []string, seqs []int64) {
	cp.T.Helper()
	cursor := ""
	for {
		var page list[domain.LogChunk]
		q := url.Values{}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		cp.Call("GET", "/v1/runs/"+runID+"/logs?"+q.Encode(), nil, &page, http.StatusOK)
		for _, c := range page.Items {
			seqs = append(seqs, c.Seq)
			lines = append(lines, c.Lines...)
		}
		if page.NextCursor == "" {
			return lines, seqs
		}
		cursor = page.NextCursor
	}
}

// WaitTask waits until the task reaches one of the statuses and returns it.
func (cp *ControlPlane) WaitTask(id string, timeout time.Duration, statuses ...domain.TaskStatus) domain.Task {
	cp.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		t := cp.Task(id)
		for _, s := range statuses {
			if t.Status == s {
				return t
			}
		}
		if time.Now().After(deadline) {
			cp.T.Fatalf("task %s is %s after %s, want one of %v (error: %s)", id, t.Status, timeout, statuses, t.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// AgentQueue returns the agent's queues.
func (cp *ControlPlane) AgentQueue(agentID string) queue.AgentQueue {
	cp.T.Helper()
	q, err := cp.Queues.Lookup(context.Background(), cp.Tenant, agentID)
	require.NoError(cp.T, err)
	return q
}

// SetVisibilityTimeout shortens an agent queue's visibility timeout, so that a message a killed
// agent held comes back within the test.
func (cp *ControlPlane) SetVisibilityTimeout(agentID string, d time.Duration) {
	cp.T.Helper()
	q := cp.AgentQueue(agentID)
	_, err := cp.SQS.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{
		QueueUrl:   aws.String(q.URL),
		Attributes: map[string]string{"VisibilityTimeout": fmt.Sprint(int(d / time.Second))},
	})
	require.NoError(cp.T, err)
}

// QueueDepth counts the messages in the agent's queue, visible and in flight. SQS counts
// approximately, and catches up within a minute.
func (cp *ControlPlane) QueueDepth(agentID string) (visible, inFlight int) {
	cp.T.Helper()
	out, err := cp.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(cp.AgentQueue(agentID).URL),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	require.NoError(cp.T, err)
	visible, err = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	require.NoError(cp.T, err)
	inFlight, err = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	require.NoError(cp.T, err)
	return visible, inFlight
}

// QueueEmpty reports whether the agent's queue holds no message, visible or in flight.
func (cp *ControlPlane) QueueEmpty(agentID string) bool {
	cp.T.Helper()
	visible, inFlight := cp.QueueDepth(agentID)
	return visible == 0 && inFlight == 0
}

// SendRaw puts a message body on the agent's queue as it is.
func (cp *ControlPlane) SendRaw(agentID, body string) {
	cp.T.Helper()
	q := cp.AgentQueue(agentID)
	_, err := cp.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String(body)})
	require.NoError(cp.T, err)
}

// DeadLetters returns the bodies in the control plane's dead-letter queue, where the messages
// its agents' queues gave up on end up.
func (cp *ControlPlane) DeadLetters() []string {
	cp.T.Helper()
	msgs, err := cp.Queues.DeadLetters(context.Background(), 10)
	require.NoError(cp.T, err)
	var bodies []string
	for _, m := range msgs {
		bodies = append(bodies, m.Body)
	}
	return bodies
}

// DeleteQueuesAtCleanup removes an enrolled agent's queues when the test ends.
func (cp *ControlPlane) DeleteQueuesAtCleanup(agentID string) {
	tenant := cp.Tenant
	cp.T.Cleanup(func() { _ = cp.Queues.Delete(context.Background(), tenant, agentID) })
}

// ContainsLine reports whether one of lines contains s.
func ContainsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
