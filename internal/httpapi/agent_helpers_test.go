package httpapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/lambdahttp"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// agentFixture is one tenant whose hosts enroll and report through the agent API. Tasks and runs
// it reads straight from the store, to check what the API changed.
type agentFixture struct {
	h      *harness
	tenant string
}

func newAgentFixture(h *harness, tenant string) *agentFixture {
	h.t.Helper()
	h.tenant(tenant, domain.RoleAdmin)
	return &agentFixture{h: h, tenant: tenant}
}

// rebuild serves the agent API again after a test changed the dependencies.
func (h *harness) rebuildAgentAPI() {
	h.agent = lambdahttp.Adapter{Handler: httpapi.NewAgentHandler(h.deps)}
}

// tokenSpec shapes an enrollment token.
type tokenSpec struct {
	maxUses int
	ttl     time.Duration
	labels  map[string]string
}

// token stores an enrollment token and returns its ID and credential.
func (f *agentFixture) token(spec tokenSpec) (id, credential string) {
	f.h.t.Helper()
	now := f.h.clock
	if spec.maxUses == 0 {
		spec.maxUses = 1
	}
	if spec.ttl == 0 {
		spec.ttl = time.Hour
	}
	id, secret := domain.NewID(now), auth.NewSecret()
	require.NoError(f.h.t, f.h.store.CreateEnrollmentToken(context.Background(), f.tenant, domain.EnrollmentToken{
		ID: id, SecretHash: auth.Hash(secret), Labels: spec.labels, MaxUses: spec.maxUses, CreatedAt: now, ExpiresAt: now.Add(spec.ttl),
	}))
	return id, auth.Format(auth.PrefixEnrollment, id, secret)
}

// host is an agent enrolled through the API, as the agent binary would be.
type host struct {
	ID         string
	Credential string
	QueueURL   string
}

// registration is the body a host sends to enroll.
func registration(token, hostname string) map[string]any {
	return map[string]any{
		"token": token, "hostname": hostname, "os": "linux", "arch": "arm64",
		"agentVersion": "1.2.0", "resticVersion": "0.18.1",
	}
}

// enroll registers a host through the API and removes its queues when the test ends.
func (f *agentFixture) enroll(hostname string) host {
	f.h.t.Helper()
	_, token := f.token(tokenSpec{})
	res := f.h.call("POST", "/v1/agent/register", "", registration(token, hostname))
	statusIs(f.h.t, 201, res, "register ", hostname)
	var out struct {
		AgentID    string `json:"agentId"`
		Credential string `json:"credential"`
		QueueURL   string `json:"queueUrl"`
	}
	res.JSON(f.h.t, &out)
	tenant := f.tenant
	f.h.t.Cleanup(func() { _ = f.h.queues.Delete(context.Background(), tenant, out.AgentID) })
	return host{ID: out.AgentID, Credential: out.Credential, QueueURL: out.QueueURL}
}

// queuedTask stores a queued task for an agent; change adjusts it first.
func (f *agentFixture) queuedTask(agentID string, change ...func(*domain.Task)) domain.Task {
	f.h.t.Helper()
	now := f.h.clock
	t := domain.Task{
		ID: domain.NewID(now), AgentID: agentID, Repository: "main", Type: domain.TaskBackup, Status: domain.TaskQueued,
		Attempt: 1, MaxRetries: 3, NotBefore: now, Deadline: now.Add(2 * time.Hour), Trigger: "operator",
	}
	for _, c := range change {
		c(&t)
	}
	t, err := f.h.store.CreateTask(context.Background(), f.tenant, t)
	require.NoError(f.h.t, err)
	return t
}

func (f *agentFixture) task(id string) domain.Task {
	f.h.t.Helper()
	t, err := f.h.store.GetTask(context.Background(), f.tenant, id)
	require.NoError(f.h.t, err)
	return t
}

func (f *agentFixture) run(id string) domain.Run {
	f.h.t.Helper()
	r, err := f.h.store.GetRun(context.Background(), f.tenant, id)
	require.NoError(f.h.t, err)
	return r
}

func (f *agentFixture) agent(id string) domain.Agent {
	f.h.t.Helper()
	a, err := f.h.store.GetAgent(context.Background(), f.tenant, id)
	require.NoError(f.h.t, err)
	return a
}

// runsOf lists an agent's runs, newest first.
func (f *agentFixture) runsOf(agentID string) []domain.Run {
	f.h.t.Helper()
	runs, _, err := f.h.store.ListRuns(context.Background(), f.tenant, store.RunFilter{AgentID: agentID}, store.Page{Limit: 100})
	require.NoError(f.h.t, err)
	return runs
}

// started is what a start answers.
type started struct {
	TaskID           string `json:"taskId"`
	RunID            string `json:"runId"`
	Attempt          int    `json:"attempt"`
	Repeated         bool   `json:"repeated"`
	InterruptedRunID string `json:"interruptedRunId"`
}

// start starts a task as host h would, from one session and delivery, and wants status.
func (f *agentFixture) start(h host, taskID, session, delivery string, want int) started {
	f.h.t.Helper()
	res := f.h.call("POST", "/v1/agent/tasks/"+taskID+"/start", h.Credential, map[string]any{"agentSession": session, "deliveryId": delivery})
	statusIs(f.h.t, want, res, "start ", taskID)
	var out started
	if want < 300 {
		res.JSON(f.h.t, &out)
	}
	return out
}

// resultAnswer is what a result answers.
type resultAnswer struct {
	TaskStatus  domain.TaskStatus `json:"taskStatus"`
	RunStatus   domain.TaskStatus `json:"runStatus"`
	Attempt     int               `json:"attempt"`
	NextRetryAt *time.Time        `json:"nextRetryAt"`
	Repeated    bool              `json:"repeated"`
}

// result reports a run's result and wants status.
func (f *agentFixture) result(h host, taskID string, body map[string]any, want int) resultAnswer {
	f.h.t.Helper()
	res := f.h.call("POST", "/v1/agent/tasks/"+taskID+"/result", h.Credential, body)
	statusIs(f.h.t, want, res, "result for ", taskID)
	var out resultAnswer
	if want < 300 {
		res.JSON(f.h.t, &out)
	}
	return out
}

// statusIs fails with the body when a response's status is not want.
func statusIs(t *testing.T, want int, res response, what ...any) {
	t.Helper()
	require.Equal(t, want, res.Status, "%s: got status %d, want %d; body %s", fmt.Sprint(what...), res.Status, want, res.Body)
}

// errorCode returns the code of an error body.
func errorCode(t *testing.T, r response) string {
	t.Helper()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	r.JSON(t, &body)
	return body.Error.Code
}

// storePage asks for up to n items.
func storePage(n int) store.Page { return store.Page{Limit: n} }
