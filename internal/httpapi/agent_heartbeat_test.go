package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

type heartbeatAnswer struct {
	Settings struct {
		HeartbeatIntervalSeconds int           `json:"heartbeatIntervalSeconds"`
		Limits                   domain.Limits `json:"limits"`
	} `json:"settings"`
	CancelledTasks []string  `json:"cancelledTasks"`
	ServerTime     time.Time `json:"serverTime"`
}

func TestHeartbeatRecordsTheAgentsStateAndAnswersItsSettings(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("web-1")
	ctx := context.Background()
	// An operator raised the limits; the scheduler found the agent silent.
	limits := domain.Limits{MaxConcurrentTasks: 3, PerType: map[domain.TaskType]int{domain.TaskBackup: 2}, UploadKbps: 500}
	_, err := h.store.ModifyAgent(ctx, "acme", a.ID, func(ag *domain.Agent) error {
		ag.Limits, ag.Status = limits, domain.AgentOffline
		return nil
	})
	require.NoError(t, err)
	h.clock = h.clock.Add(10 * time.Minute)
	backoff := h.clock.Add(30 * time.Minute)

	res := h.call("POST", "/v1/agent/heartbeat", a.Credential, map[string]any{
		"backoffUntil": backoff, "backoffReason": "3 failures in a row", "agentVersion": "1.3.0", "resticVersion": "0.18.2",
		"disks":     []map[string]any{{"mount": "/data", "freeBytes": 5, "totalBytes": 50}},
		"lastError": "repository locked\nby another process",
	})

	statusIs(t, 200, res, "heartbeat")
	var out heartbeatAnswer
	res.JSON(t, &out)
	assert.Equal(t, limits, out.Settings.Limits)
	assert.Equal(t, 60, out.Settings.HeartbeatIntervalSeconds)
	assert.Empty(t, out.CancelledTasks)
	assert.Equal(t, h.clock, out.ServerTime)
	got := f.agent(a.ID)
	assert.Equal(t, domain.AgentOnline, got.Status, "an offline agent that reports is online again")
	require.NotNil(t, got.LastSeenAt)
	assert.Equal(t, h.clock, *got.LastSeenAt)
	require.NotNil(t, got.BackoffUntil)
	assert.Equal(t, backoff, *got.BackoffUntil)
	assert.Equal(t, "3 failures in a row", got.BackoffReason)
	assert.Equal(t, "1.3.0", got.AgentVersion)
	assert.Equal(t, "0.18.2", got.ResticVersion)
	assert.Equal(t, []domain.Disk{{Mount: "/data", FreeBytes: 5, TotalBytes: 50}}, got.Disks)
	assert.Equal(t, "repository locked\nby another process", got.LastError)
	assert.Equal(t, "web-1", got.Hostname, "a heartbeat does not touch what it does not report")

	// The next heartbeat reports no backoff and no error: both are cleared; versions and disks,
	// absent, stay.
	h.clock = h.clock.Add(time.Minute)
	statusIs(t, 200, h.call("POST", "/v1/agent/heartbeat", a.Credential, map[string]any{}), "second heartbeat")
	got = f.agent(a.ID)
	assert.Nil(t, got.BackoffUntil)
	assert.Empty(t, got.BackoffReason)
	assert.Empty(t, got.LastError)
	assert.Equal(t, "1.3.0", got.AgentVersion)
	assert.Len(t, got.Disks, 1)
	assert.Equal(t, h.clock, *got.LastSeenAt)
}

// The due index must follow the heartbeat: the agent counts as silent three intervals after its
// last heartbeat, not after its registration.
func TestHeartbeatMovesTheMomentTheAgentTurnsSilent(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("web-1")
	registered := h.clock
	h.clock = h.clock.Add(2 * time.Minute)
	statusIs(t, 200, h.call("POST", "/v1/agent/heartbeat", a.Credential, map[string]any{}), "heartbeat")

	silent := func(at time.Time) bool {
		for shard := range resources.DueShards {
			due, _, err := h.store.QueryDue(context.Background(), shard, at, store.Page{Limit: 100})
			require.NoError(t, err)
			for _, d := range due {
				if d.Agent != nil && d.Agent.ID == a.ID {
					return true
				}
			}
		}
		return false
	}
	assert.False(t, silent(registered.Add(3*time.Minute+time.Second)), "three intervals after registration the agent had reported since")
	assert.True(t, silent(h.clock.Add(3*time.Minute+time.Second)), "three intervals after the heartbeat the agent is due as silent")
}

func TestHeartbeatStoresProgressAndListsCancelledTasks(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("web-1")
	t1 := f.queuedTask(a.ID)
	t2 := f.queuedTask(a.ID)
	s1 := f.start(a, t1.ID, "session-1", "m1/1", 201)
	s2 := f.start(a, t2.ID, "session-1", "m2/1", 201)
	_, err := h.store.TransitionTask(context.Background(), "acme", t2.ID, domain.TaskCancelled, nil)
	require.NoError(t, err)

	res := h.call("POST", "/v1/agent/heartbeat", a.Credential, map[string]any{"runningTasks": []map[string]any{
		{"taskId": t1.ID, "runId": s1.RunID, "progress": map[string]any{"percentDone": 0.25, "filesDone": 10, "totalFiles": 40}},
		{"taskId": t2.ID, "runId": s2.RunID},
	}})

	statusIs(t, 200, res, "heartbeat")
	var out heartbeatAnswer
	res.JSON(t, &out)
	assert.Equal(t, []string{t2.ID}, out.CancelledTasks)
	r := f.run(s1.RunID)
	require.NotNil(t, r.Progress)
	assert.Equal(t, domain.Progress{PercentDone: 0.25, FilesDone: 10, TotalFiles: 40}, *r.Progress)
}

// Agent B's heartbeat naming agent A's task changes nothing of A's and learns nothing about it.
func TestHeartbeatIgnoresAnotherAgentsTasks(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a, b := f.enroll("a"), f.enroll("b")
	task := f.queuedTask(a.ID)
	st := f.start(a, task.ID, "sa", "d1", 201)
	_, err := h.store.TransitionTask(context.Background(), "acme", task.ID, domain.TaskCancelled, nil)
	require.NoError(t, err)
	runBefore, agentBefore := f.run(st.RunID), f.agent(a.ID)

	res := h.call("POST", "/v1/agent/heartbeat", b.Credential, map[string]any{
		"runningTasks": []map[string]any{{"taskId": task.ID, "runId": st.RunID, "progress": map[string]any{"percentDone": 0.9}}},
		"lastError":    "from b",
	})

	statusIs(t, 200, res, "b's heartbeat")
	var out heartbeatAnswer
	res.JSON(t, &out)
	assert.Empty(t, out.CancelledTasks, "b must not learn that a's task was cancelled")
	assert.Equal(t, runBefore, f.run(st.RunID), "a's run is unchanged")
	assert.Equal(t, agentBefore, f.agent(a.ID), "a is unchanged")
	assert.Equal(t, "from b", f.agent(b.ID).LastError, "b's own record took the heartbeat")
}

// Another tenant's agent with the same task ID in its heartbeat reaches nothing either.
func TestHeartbeatCannotReachAnotherTenant(t *testing.T) {
	h := newHarness(t)
	acme, other := newAgentFixture(h, "acme"), newAgentFixture(h, "other")
	a, x := acme.enroll("a"), other.enroll("x")
	task := acme.queuedTask(a.ID)
	st := acme.start(a, task.ID, "sa", "d1", 201)
	before := acme.run(st.RunID)

	statusIs(t, 200, h.call("POST", "/v1/agent/heartbeat", x.Credential, map[string]any{
		"runningTasks": []map[string]any{{"taskId": task.ID, "runId": st.RunID, "progress": map[string]any{"percentDone": 1}}},
	}), "x's heartbeat")
	assert.Equal(t, before, acme.run(st.RunID))
}

func TestAgentRoutesRefuseMissingAndWrongCredentials(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)
	_, agentID, _, _ := auth.Parse(a.Credential)
	wrongSecret := auth.Format(auth.PrefixAgent, agentID, auth.NewSecret())
	unknownAgent := auth.Format(auth.PrefixAgent, domain.NewID(h.clock), auth.NewSecret())
	deleted := f.enroll("gone")
	require.NoError(t, h.store.DeleteAgent(context.Background(), "acme", deleted.ID))
	_, enrollToken := f.token(tokenSpec{})

	paths := []string{
		"/v1/agent/heartbeat", "/v1/agent/credentials", "/v1/agent/tasks/" + task.ID + "/start",
		"/v1/agent/tasks/" + task.ID + "/progress", "/v1/agent/tasks/" + task.ID + "/result",
		"/v1/agent/runs/" + domain.NewID(h.clock) + "/logs", "/v1/agent/snapshots",
	}
	creds := []struct {
		name, credential string
		status           int
	}{
		{"none", "", 401},
		{"garbage", "not-a-credential", 401},
		{"wrong secret", wrongSecret, 401},
		{"unknown agent", unknownAgent, 401},
		{"deleted agent", deleted.Credential, 401},
		{"enrollment token", enrollToken, 401},
		{"admin API key", h.apiKey("acme", domain.RoleAdmin), 403},
		{"viewer API key", h.apiKey("acme", domain.RoleViewer), 403},
	}
	for _, c := range creds {
		for _, p := range paths {
			res := h.call("POST", p, c.credential, map[string]any{})
			statusIs(t, c.status, res, c.name, " on ", p)
			want := map[int]string{401: "unauthorized", 403: "forbidden"}[c.status]
			assert.Equal(t, want, errorCode(t, res), "%s on %s", c.name, p)
		}
	}
	assert.Equal(t, domain.TaskQueued, f.task(task.ID).Status, "no refused call may touch the task")
}

func TestHeartbeatRefusesBadInput(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	before := f.agent(a.ID)
	tooMany := make([]map[string]any, 101)
	for i := range tooMany {
		tooMany[i] = map[string]any{"taskId": domain.NewID(h.clock), "runId": domain.NewID(h.clock)}
	}
	dup := domain.NewID(h.clock)
	cases := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"not JSON", `{"lastError":`, 400, ""},
		{"unknown field", `{"state":"idle"}`, 400, "state"},
		{"wrong type", `{"lastError":7}`, 400, "lastError"},
		{"backoff not a time", `{"backoffUntil":"tomorrow"}`, 400, "backoffUntil"},
		{"running tasks not a list", `{"runningTasks":{}}`, 400, "runningTasks"},
		{"backoff beyond a week", map[string]any{"backoffUntil": h.clock.Add(8 * 24 * time.Hour)}, 422, "backoffUntil"},
		{"invalid task ID", map[string]any{"runningTasks": []map[string]any{{"taskId": "x", "runId": domain.NewID(h.clock)}}}, 422, "runningTasks[0].taskId"},
		{"missing run ID", map[string]any{"runningTasks": []map[string]any{{"taskId": domain.NewID(h.clock)}}}, 422, "runningTasks[0].runId"},
		{"task listed twice", map[string]any{"runningTasks": []map[string]any{{"taskId": dup, "runId": domain.NewID(h.clock)}, {"taskId": dup, "runId": domain.NewID(h.clock)}}}, 422, "runningTasks[1].taskId"},
		{"too many tasks", map[string]any{"runningTasks": tooMany}, 422, "runningTasks"},
		{"percent above one", map[string]any{"runningTasks": []map[string]any{{"taskId": domain.NewID(h.clock), "runId": domain.NewID(h.clock), "progress": map[string]any{"percentDone": 50}}}}, 422, "runningTasks[0].progress.percentDone"},
		{"control character in the reason", map[string]any{"backoffUntil": h.clock.Add(time.Hour), "backoffReason": "a\x07b"}, 422, "backoffReason"},
		{"error too long", map[string]any{"lastError": string(make([]byte, 5000))}, 422, "lastError"},
		{"free above total", map[string]any{"disks": []map[string]any{{"mount": "/", "freeBytes": 2, "totalBytes": 1}}}, 422, "disks[0].freeBytes"},
		{"agent version too long", map[string]any{"agentVersion": string(make([]rune, 65))}, 422, "agentVersion"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call("POST", "/v1/agent/heartbeat", a.Credential, tc.body)
			statusIs(t, tc.status, res, tc.name)
			if tc.field != "" {
				assert.Contains(t, res.ErrorFields(t), tc.field)
			}
		})
	}
	assert.Equal(t, before, f.agent(a.ID), "a refused heartbeat changes nothing")
}
