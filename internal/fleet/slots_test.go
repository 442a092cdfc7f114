package fleet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
)

func TestPlanSlots(t *testing.T) {
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC) // a Monday
	policy := func(change func(*domain.Policy)) domain.Policy {
		p := domain.Policy{
			ID: "01JC3Z8Q4T2V6M0R5K9XW7YB1D", TenantID: "acme", Enabled: true,
			Schedule:       domain.Schedule{Cron: "30 2 * * *", Timezone: "Europe/Berlin"},
			ForgetSchedule: &domain.Schedule{Interval: "1d"},
			CheckSchedule:  &domain.Schedule{Cron: "0 5 * * 0"},
		}
		if change != nil {
			change(&p)
		}
		return p
	}
	ts := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return &v
	}
	const agent = "01JC3Z8Q4T2V6M0R5K9XW7YB1E"
	earlier := ts("2026-11-01T01:30:00Z")
	old := map[domain.SlotKind]domain.Slot{
		domain.SlotBackup: {Kind: domain.SlotBackup, NextRunAt: ts("2026-11-02T09:00:00Z"), LastDispatchedAt: earlier, LastTaskID: "T1",
			LastSuccessAt: earlier, WaitReason: "agent offline", Overdue: true},
		domain.SlotForget: {Kind: domain.SlotForget, NextRunAt: ts("2026-11-03T00:00:00Z")},
	}
	next := func(slots []domain.Slot) map[domain.SlotKind]*time.Time {
		out := map[domain.SlotKind]*time.Time{}
		for _, sl := range slots {
			out[sl.Kind] = sl.NextRunAt
		}
		return out
	}

	// Every policy reports its repository's health daily.
	statsAt, err := schedule.Next(domain.DefaultStatsSchedule, now, agent)
	require.NoError(t, err)
	stats := &statsAt
	for name, tc := range map[string]struct {
		policy   domain.Policy
		existing map[domain.SlotKind]domain.Slot
		replan   map[domain.SlotKind]bool
		want     map[domain.SlotKind]*time.Time
	}{
		"new assignment: each schedule's next time": {policy(nil), nil, nil, map[domain.SlotKind]*time.Time{
			domain.SlotBackup: ts("2026-11-03T01:30:00Z"), domain.SlotForget: ts("2026-11-03T00:00:00Z"), domain.SlotCheck: ts("2026-11-08T05:00:00Z"), domain.SlotStats: stats,
		}},
		"only a backup schedule": {policy(func(p *domain.Policy) { p.ForgetSchedule, p.CheckSchedule = nil, nil }), nil, nil,
			map[domain.SlotKind]*time.Time{domain.SlotBackup: ts("2026-11-03T01:30:00Z"), domain.SlotStats: stats}},
		"assigned again: a due run is kept": {policy(nil), old, nil, map[domain.SlotKind]*time.Time{
			domain.SlotBackup: ts("2026-11-02T09:00:00Z"), domain.SlotForget: ts("2026-11-03T00:00:00Z"), domain.SlotCheck: ts("2026-11-08T05:00:00Z"), domain.SlotStats: stats,
		}},
		"backup schedule changed": {policy(func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "6h"} }), old, map[domain.SlotKind]bool{domain.SlotBackup: true},
			map[domain.SlotKind]*time.Time{domain.SlotBackup: ts("2026-11-02T12:00:00Z"), domain.SlotForget: ts("2026-11-03T00:00:00Z"), domain.SlotCheck: ts("2026-11-08T05:00:00Z"), domain.SlotStats: stats}},
		"disabled: nothing is due": {policy(func(p *domain.Policy) { p.Enabled = false }), old, nil,
			map[domain.SlotKind]*time.Time{domain.SlotBackup: nil, domain.SlotForget: nil, domain.SlotCheck: nil, domain.SlotStats: nil}},
		"a schedule that never fires": {policy(func(p *domain.Policy) { p.Schedule = domain.Schedule{Cron: "0 0 30 2 *"} }), nil, nil,
			map[domain.SlotKind]*time.Time{domain.SlotBackup: nil, domain.SlotForget: ts("2026-11-03T00:00:00Z"), domain.SlotCheck: ts("2026-11-08T05:00:00Z"), domain.SlotStats: stats}},
	} {
		slots, err := planSlots(tc.policy, agent, tc.existing, tc.replan, now)
		require.NoError(t, err, name)
		assert.Equal(t, tc.want, next(slots), name)
		for _, sl := range slots {
			assert.Equal(t, agent, sl.AgentID, name)
			assert.Equal(t, tc.policy.ID, sl.PolicyID, name)
			assert.Equal(t, "acme", sl.TenantID, name)
			assert.Empty(t, sl.WaitReason, "%s: a planned slot waits for nothing yet", name)
		}
	}

	// What the scheduler recorded on a slot survives planning.
	slots, err := planSlots(policy(nil), agent, old, map[domain.SlotKind]bool{domain.SlotBackup: true}, now)
	require.NoError(t, err)
	assert.Equal(t, earlier, slots[0].LastSuccessAt)
	assert.Equal(t, earlier, slots[0].LastDispatchedAt)
	assert.Equal(t, "T1", slots[0].LastTaskID)
	assert.True(t, slots[0].Overdue)
	// A disabled policy plans no runs, so none of its slots stays overdue.
	slots, err = planSlots(policy(func(p *domain.Policy) { p.Enabled = false }), agent, old, nil, now)
	require.NoError(t, err)
	assert.False(t, slots[0].Overdue, "disabled")
	assert.Equal(t, earlier, slots[0].LastSuccessAt, "disabled")

	// With a spread, each agent has its own offset within the window.
	spread := policy(func(p *domain.Policy) { p.Schedule.Spread = "1h" })
	a, err := planSlots(spread, agent, nil, nil, now)
	require.NoError(t, err)
	b, err := planSlots(spread, "01JC3Z8Q4T2V6M0R5K9XW7YB1F", nil, nil, now)
	require.NoError(t, err)
	for _, sl := range []domain.Slot{a[0], b[0]} {
		assert.False(t, sl.NextRunAt.Before(*ts("2026-11-03T01:30:00Z")))
		assert.True(t, sl.NextRunAt.Before(*ts("2026-11-03T02:30:00Z")))
	}
	assert.NotEqual(t, a[0].NextRunAt, b[0].NextRunAt)
}

func TestScheduleChanges(t *testing.T) {
	base := domain.Policy{Enabled: true, Schedule: domain.Schedule{Cron: "@daily"}, ForgetSchedule: &domain.Schedule{Interval: "1d"}}
	with := func(change func(*domain.Policy)) domain.Policy {
		p := base
		fs := *base.ForgetSchedule
		p.ForgetSchedule = &fs
		change(&p)
		return p
	}
	all := map[domain.SlotKind]bool{domain.SlotBackup: true, domain.SlotForget: true, domain.SlotCheck: true, domain.SlotStats: true}
	for name, tc := range map[string]struct {
		updated domain.Policy
		want    map[domain.SlotKind]bool
	}{
		"nothing that schedules":   {with(func(p *domain.Policy) { p.Paths = []string{"/x"}; p.Description = "new" }), map[domain.SlotKind]bool{}},
		"the same forget schedule": {with(func(*domain.Policy) {}), map[domain.SlotKind]bool{}},
		"backup cron":              {with(func(p *domain.Policy) { p.Schedule.Cron = "@hourly" }), map[domain.SlotKind]bool{domain.SlotBackup: true}},
		"backup timezone":          {with(func(p *domain.Policy) { p.Schedule.Timezone = "Asia/Tokyo" }), map[domain.SlotKind]bool{domain.SlotBackup: true}},
		"forget schedule removed":  {with(func(p *domain.Policy) { p.ForgetSchedule = nil }), map[domain.SlotKind]bool{domain.SlotForget: true}},
		"forget interval":          {with(func(p *domain.Policy) { p.ForgetSchedule.Interval = "2d" }), map[domain.SlotKind]bool{domain.SlotForget: true}},
		"check schedule added":     {with(func(p *domain.Policy) { p.CheckSchedule = &domain.Schedule{Cron: "@weekly"} }), map[domain.SlotKind]bool{domain.SlotCheck: true}},
		"disabled":                 {with(func(p *domain.Policy) { p.Enabled = false }), all},
		"stats schedule set":       {with(func(p *domain.Policy) { p.StatsSchedule = &domain.Schedule{Cron: "0 4 * * *", Spread: "2h"} }), map[domain.SlotKind]bool{}},
		"stats schedule changed":   {with(func(p *domain.Policy) { p.StatsSchedule = &domain.Schedule{Interval: "12h"} }), map[domain.SlotKind]bool{domain.SlotStats: true}},
	} {
		assert.Equal(t, tc.want, scheduleChanges(base, tc.updated), name)
	}
}
