package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	domainevents "github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

var t0 = time.Date(2037, 5, 4, 2, 0, 0, 0, time.UTC)

func TestCapacity(t *testing.T) {
	// An active task as its agent's capacity item lists it.
	running := func(tt domain.TaskType, p domain.TaskParams) store.ActiveTask {
		return store.ActiveTask{ID: domain.NewID(t0), Type: domain.LimitType(tt, p)}
	}
	prune := domain.TaskParams{Prune: true}
	tests := []struct {
		name   string
		limits domain.Limits
		active []store.ActiveTask
		take   []domain.TaskType
		want   []string
	}{
		{"idle agent takes up to its limit", domain.Limits{MaxConcurrentTasks: 2}, nil,
			[]domain.TaskType{domain.TaskBackup, domain.TaskCheck, domain.TaskBackup},
			[]string{"", "", "agent saturated: maxConcurrentTasks is 2"}},
		{"active tasks count", domain.Limits{MaxConcurrentTasks: 2}, []store.ActiveTask{running(domain.TaskRestore, domain.TaskParams{})},
			[]domain.TaskType{domain.TaskBackup, domain.TaskBackup},
			[]string{"", "agent saturated: maxConcurrentTasks is 2"}},
		{"per-type limit", domain.Limits{MaxConcurrentTasks: 4, PerType: map[domain.TaskType]int{domain.TaskBackup: 1}},
			[]store.ActiveTask{running(domain.TaskBackup, domain.TaskParams{})},
			[]domain.TaskType{domain.TaskBackup, domain.TaskCheck, domain.TaskUnlock},
			[]string{"agent at its backup limit of 1", "", ""}},
		{"a pruning forget counts as a prune", domain.Limits{MaxConcurrentTasks: 4, PerType: map[domain.TaskType]int{domain.TaskPrune: 1}},
			[]store.ActiveTask{running(domain.TaskForget, prune)},
			[]domain.TaskType{domain.TaskPrune, domain.TaskForget},
			[]string{"agent at its prune limit of 1", ""}},
		{"a limit below one counts as one", domain.Limits{}, nil,
			[]domain.TaskType{domain.TaskBackup, domain.TaskBackup},
			[]string{"", "agent saturated: maxConcurrentTasks is 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCapacity(tt.limits, tt.active)
			var got []string
			for _, typ := range tt.take {
				got = append(got, c.take(typ, domain.TaskParams{}))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestBlocked(t *testing.T) {
	seen := t0.Add(-time.Minute)
	online := domain.Agent{Status: domain.AgentOnline, LastSeenAt: &seen, HeartbeatIntervalSeconds: 60}
	until := t0.Add(5 * time.Minute)
	tests := []struct {
		name         string
		change       func(*domain.Agent)
		kind, reason string
	}{
		{"online", func(*domain.Agent) {}, "", ""},
		{"offline", func(a *domain.Agent) { a.Status = domain.AgentOffline }, "offline", "agent offline"},
		{"silent but not yet marked", func(a *domain.Agent) { a.LastSeenAt = ptr(t0.Add(-4 * time.Minute)) }, "offline", "agent offline"},
		{"backing off", func(a *domain.Agent) { a.BackoffUntil, a.BackoffReason = &until, "disk full" },
			"backing_off", "agent backing off until 2037-05-04T02:05:00Z: disk full"},
		{"backoff over", func(a *domain.Agent) { a.BackoffUntil = ptr(t0.Add(-time.Second)) }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := online
			tt.change(&a)
			kind, reason := blocked(a, t0)
			assert.Equal(t, tt.kind, kind)
			assert.Equal(t, tt.reason, reason)
		})
	}
}

func TestBuildClaim(t *testing.T) {
	policy := domain.Policy{
		ID: domain.NewID(t0), TenantID: "acme", Enabled: true, Repository: "main", Paths: []string{"/data"},
		Schedule:       domain.Schedule{Interval: "6h"},
		ForgetSchedule: &domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin"}, Prune: true,
		CheckSchedule: &domain.Schedule{Cron: "0 3 * * 0"}, CheckReadDataSubset: "10%",
		Retention: domain.Retention{KeepLast: 3},
	}
	agent := domain.NewID(t0)
	slot := func(kind domain.SlotKind, next time.Time) domain.Slot {
		return domain.Slot{TenantID: "acme", PolicyID: policy.ID, AgentID: agent, Kind: kind, NextRunAt: &next}
	}
	cfg := Config{}.withDefaults()
	now := t0.Add(20 * time.Second)

	t.Run("backup", func(t *testing.T) {
		c, err := buildClaim(slot(domain.SlotBackup, t0), policy, now, cfg)
		require.NoError(t, err)
		assert.Equal(t, t0.Add(4*time.Hour), c.Next, "the next multiple of 6h")
		assert.Equal(t, domain.TaskBackup, c.Task.Type)
		assert.Equal(t, domain.TaskPending, c.Task.Status)
		assert.Equal(t, 1, c.Task.Attempt)
		assert.Equal(t, domain.DefaultMaxRetries, c.Task.MaxRetries)
		assert.Equal(t, "schedule", c.Task.Trigger)
		assert.Equal(t, now, c.Task.NotBefore)
		assert.Equal(t, now.Add(DefaultStartWithin), c.Task.Deadline)
		assert.Equal(t, now.Add(DefaultOverdueGrace), c.CheckAt)
		assert.NoError(t, c.Task.Validate())
	})
	t.Run("forget prunes, in the policy's time zone, with its run deadline", func(t *testing.T) {
		p := policy
		p.RunDeadline, p.MaxRetries = "90m", ptr(7)
		c, err := buildClaim(slot(domain.SlotForget, t0.Add(-4*time.Hour)), p, now, cfg)
		require.NoError(t, err)
		assert.Equal(t, domain.TaskForget, c.Task.Type)
		assert.True(t, c.Task.Params.Prune)
		assert.Equal(t, time.Date(2037, 5, 4, 22, 0, 0, 0, time.UTC), c.Next, "midnight in Berlin (CEST)")
		assert.Equal(t, now.Add(90*time.Minute), c.Task.Deadline)
		assert.Equal(t, 7, c.Task.MaxRetries)
		assert.True(t, c.CheckAt.IsZero(), "only backups are watched for being overdue")
	})
	t.Run("check with its subset", func(t *testing.T) {
		c, err := buildClaim(slot(domain.SlotCheck, t0), policy, now, cfg)
		require.NoError(t, err)
		assert.Equal(t, domain.TaskCheck, c.Task.Type)
		assert.Equal(t, "10%", c.Task.Params.ReadDataSubset)
		assert.Equal(t, time.Date(2037, 5, 10, 3, 0, 0, 0, time.UTC), c.Next)
	})
	t.Run("one catch-up run after a gap", func(t *testing.T) {
		c, err := buildClaim(slot(domain.SlotBackup, t0.Add(-30*time.Hour)), policy, now, cfg)
		require.NoError(t, err)
		assert.Equal(t, t0.Add(4*time.Hour), c.Next, "the missed runs are skipped")
	})
	t.Run("a schedule that never fires again leaves the due index", func(t *testing.T) {
		p := policy
		p.Schedule = domain.Schedule{Cron: "0 0 30 2 *"}
		c, err := buildClaim(slot(domain.SlotBackup, t0), p, now, cfg)
		require.NoError(t, err)
		assert.True(t, c.Next.IsZero())
	})
	t.Run("a kind the policy does not schedule", func(t *testing.T) {
		p := policy
		p.CheckSchedule = nil
		_, err := buildClaim(slot(domain.SlotCheck, t0), p, now, cfg)
		assert.Error(t, err)
		assert.Equal(t, "policy has no check schedule", unschedulable(slot(domain.SlotCheck, t0), p, true))
		assert.Equal(t, "policy disabled", unschedulable(slot(domain.SlotBackup, t0), domain.Policy{}, true))
		assert.Equal(t, "policy not found", unschedulable(slot(domain.SlotBackup, t0), domain.Policy{}, false))
	})
}

func TestJudge(t *testing.T) {
	policy := domain.Policy{Enabled: true, Schedule: domain.Schedule{Cron: "@daily"}}
	planned := t0.Add(-2 * time.Hour) // 00:00
	check := store.OverdueCheck{Kind: domain.SlotBackup, PlannedAt: planned}
	grace := time.Hour
	slot := func(lastSuccess *time.Time) domain.Slot {
		return domain.Slot{Kind: domain.SlotBackup, AgentID: "a", LastSuccessAt: lastSuccess}
	}
	tests := []struct {
		name   string
		slot   domain.Slot
		found  bool
		policy domain.Policy
		now    time.Time
		want   overdueVerdict
	}{
		{"succeeded after the planned run", slot(ptr(planned.Add(20 * time.Minute))), true, policy, t0, verdictOnTime},
		{"never succeeded, the run's grace over", slot(nil), true, policy, t0, verdictOverdue},
		{"never succeeded, still in the grace", slot(nil), true, policy, planned.Add(30 * time.Minute), verdictOnTime},
		{"last success before the planned run", slot(ptr(planned.Add(-time.Hour))), true, policy, t0, verdictOverdue},
		{"a day later the next run counts", slot(ptr(planned.Add(20 * time.Minute))), true, policy, t0.Add(24 * time.Hour), verdictOverdue},
		{"slot gone", domain.Slot{}, false, policy, t0, verdictGone},
		{"policy disabled", slot(nil), true, domain.Policy{Schedule: policy.Schedule}, t0, verdictGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := judge(check, tt.slot, tt.found, tt.policy, true, tt.now, grace)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRecheckAfter(t *testing.T) {
	assert.Equal(t, t0.Add(15*time.Minute), recheckAfter(t0, t0.Add(-5*time.Minute)), "at least 15 minutes")
	assert.Equal(t, t0.Add(2*time.Hour), recheckAfter(t0, t0.Add(-2*time.Hour)), "as long as it has been overdue")
	assert.Equal(t, t0.Add(6*time.Hour), recheckAfter(t0, t0.Add(-72*time.Hour)), "at most 6 hours")
}

func TestTickTime(t *testing.T) {
	scheduled := events.CloudWatchEvent{DetailType: "Scheduled Event", Source: "aws.events", Time: t0, Detail: json.RawMessage(`{}`)}
	got, err := TickTime(scheduled)
	require.NoError(t, err)
	assert.Equal(t, t0, got)

	byHand := scheduled
	byHand.Detail = json.RawMessage(`{"time": "2037-05-04T06:30:00+02:00"}`)
	got, err = TickTime(byHand)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2037, 5, 4, 4, 30, 0, 0, time.UTC), got)

	for name, ev := range map[string]events.CloudWatchEvent{
		"no time":          {Detail: json.RawMessage(`{}`)},
		"bad detail":       {Time: t0, Detail: json.RawMessage(`{"time": "tomorrow"}`)},
		"zero detail time": {Time: t0, Detail: json.RawMessage(`{"time": "0001-01-01T00:00:00Z"}`)},
	} {
		_, err := TickTime(ev)
		assert.Error(t, err, name)
	}
}

func TestLogEmitterWritesEachEvent(t *testing.T) {
	var buf bytes.Buffer
	e := LogEmitter{Log: slog.New(slog.NewJSONHandler(&buf, nil))}
	seen := t0.Add(-time.Hour)
	agent := domain.Agent{ID: domain.NewID(t0), TenantID: "acme", Hostname: "db-1", LastSeenAt: &seen}
	good := domainevents.NewAgentOffline(t0, agent)
	bad := domainevents.NewAgentOffline(t0, domain.Agent{ID: "not-an-id", TenantID: "acme", Hostname: "db-2"})

	err := e.Emit(context.Background(), []domainevents.Event{good, bad})
	require.Error(t, err)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	var rec struct {
		Msg       string          `json:"msg"`
		EventType string          `json:"event_type"`
		Event     json.RawMessage `json:"event"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	assert.Equal(t, "domain event", rec.Msg)
	assert.Equal(t, "agent.offline", rec.EventType)
	decoded, err := domainevents.DecodeEvent(rec.Event)
	require.NoError(t, err)
	assert.Equal(t, good.ID, decoded.ID)
	assert.Contains(t, lines[1], "domain event does not encode")
}

func ptr[T any](v T) *T { return &v }
