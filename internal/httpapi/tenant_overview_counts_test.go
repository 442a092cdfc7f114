package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// overviewBody is the overview as a dashboard reads it.
type overviewBody struct {
	Agents struct{ Total, Online, Offline, BackingOff int }
	Runs   struct {
		Since                                      time.Time
		Succeeded, Partial, Failed, Running, Other int
	}
	OverdueSlots     int
	OverdueTruncated bool
	OverduePolicies  []struct {
		PolicyID      string     `json:"policyId"`
		Name          string     `json:"name"`
		AgentIDs      []string   `json:"agentIds"`
		LastSuccessAt *time.Time `json:"lastSuccessAt"`
	}
}

type dropEvents struct{}

func (dropEvents) Emit(context.Context, []events.Event) error { return nil }

// TestOverviewFollowsTheFleet runs a small fleet through the agent API and the scheduler's
// ticks, and reads the tenant's overview after each change.
func TestOverviewFollowsTheFleet(t *testing.T) {
	h := newHarness(t)
	// Run counters expire two days after their hour, by the table's TTL on the real clock: the
	// test's present lies ahead of it.
	start := time.Date(2031, 11, 2, 10, 0, 0, 0, time.UTC)
	h.clock = start
	f := newAgentFixture(h, "acme")
	viewer := h.apiKey("acme", domain.RoleViewer)
	operator := h.apiKey("acme", domain.RoleOperator)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sched := &scheduler.Scheduler{
		Store: h.store, Emitter: dropEvents{}, Log: log, Config: scheduler.Config{OverdueGrace: 30 * time.Minute},
		Sender: &dispatch.Dispatcher{Store: h.store, Sender: h.queues, Log: log, Now: func() time.Time { return h.clock }},
	}
	tick := func() scheduler.Summary {
		t.Helper()
		sum, err := sched.Tick(ctx, h.clock)
		require.NoError(t, err)
		require.Zero(t, sum.Errors, "tick at %s: %+v", h.clock, sum)
		return sum
	}
	overview := func() overviewBody {
		t.Helper()
		res := h.call(http.MethodGet, "/v1/overview", viewer, nil)
		tenantStatus(t, http.StatusOK, res)
		var o overviewBody
		res.JSON(t, &o)
		return o
	}
	beat := func(hosts ...host) {
		t.Helper()
		for _, a := range hosts {
			statusIs(t, 200, h.call("POST", "/v1/agent/heartbeat", a.Credential, map[string]any{}), "heartbeat")
		}
	}

	a, b, c := f.enroll("web-1"), f.enroll("web-2"), f.enroll("db-1")
	o := overview()
	assert.Equal(t, 3, o.Agents.Total)
	assert.Equal(t, 3, o.Agents.Online)

	backoff := map[string]any{"backoffUntil": h.clock.Add(time.Hour), "backoffReason": "disk full"}
	statusIs(t, 200, h.call("POST", "/v1/agent/heartbeat", b.Credential, backoff), "heartbeat with a backoff")
	assert.Equal(t, 1, overview().Agents.BackingOff)

	// db-1 falls silent; the scheduler takes it offline.
	h.clock = start.Add(5 * time.Minute)
	beat(a)
	statusIs(t, 200, h.call("POST", "/v1/agent/heartbeat", b.Credential, backoff), "heartbeat with a backoff")
	assert.Equal(t, 1, tick().Offline)
	o = overview()
	assert.Equal(t, 3, o.Agents.Total)
	assert.Equal(t, 2, o.Agents.Online)
	assert.Equal(t, 1, o.Agents.Offline)
	assert.Equal(t, 1, o.Agents.BackingOff, "web-2 is online and backing off")
	// It comes back, and web-2 reports its backoff over.
	beat(c, b)
	o = overview()
	assert.Equal(t, 3, o.Agents.Online)
	assert.Equal(t, 0, o.Agents.Offline)
	assert.Equal(t, 0, o.Agents.BackingOff)
	assert.Equal(t, 1, tick().Online, "its return announced")
	assert.Equal(t, 3, overview().Agents.Online)

	// Runs start and end through the agent API, with every outcome.
	tasks := make([]domain.Task, 5)
	runs := make([]started, 5)
	for i := range tasks {
		tasks[i] = f.queuedTask(a.ID)
		runs[i] = f.start(a, tasks[i].ID, "session-1", "delivery-1", 201)
	}
	assert.Equal(t, 5, overview().Runs.Running)
	f.result(a, tasks[0].ID, map[string]any{"runId": runs[0].RunID, "outcome": "succeeded", "exitCode": 0}, 200)
	f.result(a, tasks[1].ID, map[string]any{"runId": runs[1].RunID, "outcome": "partial", "exitCode": 3, "unreadablePaths": []string{"/data/locked"}}, 200)
	f.result(a, tasks[2].ID, map[string]any{"runId": runs[2].RunID, "outcome": "failed", "exitCode": 1, "error": "wrong password"}, 200)
	// Cancelled while the task is still wanted: the agent shut down; the run is interrupted.
	f.result(a, tasks[3].ID, map[string]any{"runId": runs[3].RunID, "outcome": "cancelled"}, 200)
	o = overview()
	assert.Equal(t, 1, o.Runs.Succeeded)
	assert.Equal(t, 1, o.Runs.Partial)
	assert.Equal(t, 1, o.Runs.Failed)
	assert.Equal(t, 1, o.Runs.Other, "the interrupted run")
	assert.Equal(t, 1, o.Runs.Running)
	f.result(a, tasks[2].ID, map[string]any{"runId": runs[2].RunID, "outcome": "failed", "exitCode": 1, "error": "wrong password"}, 200)
	assert.Equal(t, 1, overview().Runs.Failed, "a result sent again is counted once")

	// A backup that is not done in time is overdue until it succeeds.
	res := h.call(http.MethodPost, "/v1/repositories", operator, map[string]any{"name": "main", "backend": "local", "location": "/srv/restic/main"})
	tenantStatus(t, http.StatusCreated, res)
	body := tenantPolicyBody("hourly", "main")
	body["schedule"] = map[string]any{"interval": "1h"}
	delete(body, "forgetSchedule")
	res = h.call(http.MethodPost, "/v1/policies", operator, body)
	tenantStatus(t, http.StatusCreated, res)
	var p domain.Policy
	res.JSON(t, &p)
	res = h.call(http.MethodPost, "/v1/policies/"+p.ID+"/agents", operator, map[string]any{"agentIds": []string{b.ID}})
	tenantStatus(t, http.StatusOK, res)
	slot, err := h.store.GetSlot(ctx, "acme", p.ID, b.ID, domain.SlotBackup)
	require.NoError(t, err)
	h.clock = *slot.NextRunAt
	beat(a, b, c)
	assert.Equal(t, 1, tick().Dispatched)
	assert.Zero(t, overview().OverdueSlots, "within the grace")
	h.clock = slot.NextRunAt.Add(31 * time.Minute)
	beat(a, b, c)
	assert.Equal(t, 1, tick().Overdue)
	o = overview()
	assert.Equal(t, 1, o.OverdueSlots)
	assert.False(t, o.OverdueTruncated)
	require.Len(t, o.OverduePolicies, 1, "%+v", o)
	assert.Equal(t, p.ID, o.OverduePolicies[0].PolicyID)
	assert.Equal(t, "hourly", o.OverduePolicies[0].Name)
	assert.Equal(t, []string{b.ID}, o.OverduePolicies[0].AgentIDs)
	assert.Nil(t, o.OverduePolicies[0].LastSuccessAt, "it never succeeded")

	// Its backup succeeds at last, and the scheduler sees the recovery.
	backup := f.queuedTask(b.ID, func(t *domain.Task) { t.PolicyID, t.Repository = p.ID, "main" })
	st := f.start(b, backup.ID, "session-1", "delivery-1", 201)
	f.result(b, backup.ID, map[string]any{"runId": st.RunID, "outcome": "succeeded", "exitCode": 0}, 200)
	o = overview()
	assert.Zero(t, o.OverdueSlots, "recovered")
	assert.Empty(t, o.OverduePolicies)
	assert.Equal(t, 2, o.Runs.Succeeded)
	// The scheduler looks again as long after it found the slot overdue as it had been overdue
	// then, before the next hourly run is late.
	h.clock = slot.NextRunAt.Add(65 * time.Minute)
	beat(a, b, c)
	sum := tick()
	assert.Equal(t, 1, sum.Recovered, "%+v", sum)
	assert.Zero(t, overview().OverdueSlots)

	// Runs count by the hour they started: a day after the first hour, its runs drop out.
	h.clock = start.Add(24*time.Hour + 59*time.Minute)
	o = overview()
	assert.Equal(t, start, o.Runs.Since)
	assert.Equal(t, 2, o.Runs.Succeeded, "the 24th hour back still counts")
	h.clock = start.Add(25 * time.Hour)
	o = overview()
	assert.Equal(t, start.Add(time.Hour), o.Runs.Since)
	assert.Equal(t, 1, o.Runs.Succeeded, "only the backup of the later hour: %+v", o.Runs)
	assert.Zero(t, o.Runs.Partial+o.Runs.Failed+o.Runs.Other+o.Runs.Running)
	h.clock = start.Add(48 * time.Hour)
	o = overview()
	assert.Zero(t, o.Runs.Succeeded+o.Runs.Partial+o.Runs.Failed+o.Runs.Other+o.Runs.Running, "%+v", o.Runs)
	assert.Equal(t, 3, o.Agents.Total, "agents count until the scheduler judges them")
}

// TestOverviewListsAPageOfOverdueBackups imports a fleet with more overdue backups than an
// overview lists.
func TestOverviewListsAPageOfOverdueBackups(t *testing.T) {
	h := newHarness(t)
	h.clock = time.Date(2031, 11, 2, 10, 0, 0, 0, time.UTC)
	viewer := h.tenant("acme", domain.RoleViewer)
	now := h.clock
	seen := now
	p := domain.Policy{ID: domain.NewID(now), TenantID: "acme", Name: "nightly", Enabled: true, Repository: "main", Paths: []string{"/data"},
		Schedule: domain.Schedule{Cron: "@daily"}, Retention: domain.Retention{KeepLast: 7}, CreatedAt: now, UpdatedAt: now, Version: 1}
	fleet := store.Bulk{Policies: []domain.Policy{p}}
	last := now.Add(-50 * time.Hour)
	for i := range store.MaxOverdueListed + 1 {
		a := domain.Agent{ID: domain.NewID(now), TenantID: "acme", Hostname: fmt.Sprintf("host-%03d", i), OS: "linux", Arch: "amd64",
			AgentVersion: "1.0.0", Status: domain.AgentOnline, LastSeenAt: &seen, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60,
			SecretHash: "unused", CreatedAt: now, UpdatedAt: now, Version: 1}
		fleet.Agents = append(fleet.Agents, a)
		fleet.Assignments = append(fleet.Assignments, domain.Assignment{TenantID: "acme", PolicyID: p.ID, AgentID: a.ID, CreatedAt: now})
		fleet.Slots = append(fleet.Slots, domain.Slot{TenantID: "acme", PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotBackup, LastSuccessAt: &last, Overdue: true})
	}
	require.NoError(t, h.store.Import(context.Background(), fleet, 4))

	res := h.call(http.MethodGet, "/v1/overview", viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var o overviewBody
	res.JSON(t, &o)
	assert.Equal(t, store.MaxOverdueListed+1, o.Agents.Total, "an import counts what it wrote")
	assert.Equal(t, store.MaxOverdueListed+1, o.OverdueSlots)
	assert.True(t, o.OverdueTruncated)
	require.Len(t, o.OverduePolicies, 1)
	assert.Len(t, o.OverduePolicies[0].AgentIDs, store.MaxOverdueListed, "a page of them")
	assert.Equal(t, last, *o.OverduePolicies[0].LastSuccessAt)
}
