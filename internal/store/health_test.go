package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestHealthKeepsOnePointADayForNinetyDaysAndTheLatestReport(t *testing.T) {
	f := newFixture(t)
	tenant := f.tenant("acme")
	repo, err := f.st.CreateRepository(f.ctx, tenant, domain.Repository{Name: "main", Backend: domain.BackendLocal, Location: "/srv/restic"})
	require.NoError(t, err)
	agent := f.id()
	report := func(at time.Time, size uint64, ok *bool) {
		t.Helper()
		r := store.HealthReport{Repository: "main", At: at, AgentID: agent, OverdueAfter: repo.OverdueAfter(),
			Stats: &domain.RepoStats{RawDataSize: size, FileCount: size / 10, SnapshotsCount: size / 100}}
		if ok != nil {
			r.Check = &domain.CheckResult{At: at, OK: *ok, RunID: f.id(), AgentID: agent}
		}
		require.NoError(t, f.st.RecordHealth(f.ctx, tenant, r))
	}
	yes, no := true, false
	start := f.now.AddDate(0, 0, -100)
	for day := 0; day < 100; day++ { // up to yesterday
		report(start.AddDate(0, 0, day), uint64(1000+day*100), nil)
	}
	report(f.now.Add(-time.Hour), 50_000, &yes)  // today, a check
	report(f.now.Add(-2*time.Hour), 40_000, &no) // today, earlier, reported late

	h, err := f.st.GetHealth(f.ctx, tenant, repo, f.now)
	require.NoError(t, err)
	require.Len(t, h.History, domain.HealthHistoryDays, "90 days, one point each")
	assert.Equal(t, f.now.AddDate(0, 0, -89).Format(time.DateOnly), h.History[0].Date, "oldest first")
	assert.Equal(t, f.now.Format(time.DateOnly), h.History[89].Date)
	for i := 1; i < len(h.History); i++ {
		assert.Less(t, h.History[i-1].Date, h.History[i].Date)
	}
	assert.Nil(t, h.History[88].CheckOK, "no check that day")
	require.NotNil(t, h.History[89].CheckOK)
	assert.True(t, *h.History[89].CheckOK, "the day's latest check, whatever the order of the reports")
	assert.Equal(t, uint64(50_000), h.History[89].RawDataSize, "the day's latest stats")
	require.NotNil(t, h.LastCheck)
	assert.True(t, h.LastCheck.OK, "the late, older failure does not replace the latest check")
	require.NotNil(t, h.Stats)
	assert.Equal(t, uint64(50_000), h.Stats.RawDataSize)
	assert.Equal(t, agent, h.Stats.AgentID)
	assert.False(t, h.CheckOverdue)
	assert.Equal(t, domain.DefaultCheckOverdueAfterDays, h.CheckOverdueAfterDays)

	other := f.tenant("globex")
	_, err = f.st.CreateRepository(f.ctx, other, domain.Repository{Name: "main", Backend: domain.BackendLocal, Location: "/srv/restic"})
	require.NoError(t, err)
	h, err = f.st.GetHealth(f.ctx, other, repo, f.now)
	require.NoError(t, err)
	assert.Nil(t, h.Stats, "another tenant's repository of the same name has its own health")
	assert.Empty(t, h.History)
}

func TestCheckOverdueIsAnnouncedOncePerEpisode(t *testing.T) {
	f := newFixture(t)
	tenant := f.tenant("acme")
	repo, err := f.st.CreateRepository(f.ctx, tenant, domain.Repository{Name: "main", Backend: domain.BackendLocal, Location: "/srv/restic", CheckOverdueAfterDays: 3})
	require.NoError(t, err)
	ok := true
	checked := f.now
	require.NoError(t, f.st.RecordHealth(f.ctx, tenant, store.HealthReport{Repository: "main", At: checked, AgentID: f.id(), OverdueAfter: repo.OverdueAfter(),
		Check: &domain.CheckResult{At: checked, OK: ok, RunID: f.id(), AgentID: f.id()}}))
	due := func(at time.Time) []store.HealthDue {
		var out []store.HealthDue
		for shard := 0; shard < resources.DueShards; shard++ {
			ds, _, err := f.st.QueryDue(f.ctx, shard, at, store.Page{Limit: 100})
			require.NoError(t, err)
			for _, d := range ds {
				if d.Health != nil && d.Health.TenantID == tenant {
					out = append(out, *d.Health)
				}
			}
		}
		return out
	}
	assert.Empty(t, due(checked.Add(71*time.Hour)), "not overdue before three days")
	found := due(checked.Add(73 * time.Hour))
	require.Len(t, found, 1)
	assert.True(t, found[0].OverdueAt.Equal(checked.Add(72*time.Hour)))

	ev := events.NewRepositoryCheckOverdue(f.now, tenant, found[0].Health(), found[0].Basis, 3)
	announced, err := f.st.AnnounceCheckOverdue(f.ctx, found[0], ev)
	require.NoError(t, err)
	assert.True(t, announced)
	again, err := f.st.AnnounceCheckOverdue(f.ctx, found[0], ev)
	require.NoError(t, err)
	assert.False(t, again, "a second tick with the same entry announces nothing")
	assert.Empty(t, due(checked.Add(30*24*time.Hour)), "out of the due index until a check succeeds")
	h, err := f.st.GetHealth(f.ctx, tenant, repo, checked.Add(73*time.Hour))
	require.NoError(t, err)
	assert.True(t, h.CheckOverdue)

	// A failed check keeps the episode; a successful one starts a new one.
	require.NoError(t, f.st.RecordHealth(f.ctx, tenant, store.HealthReport{Repository: "main", At: checked.Add(80 * time.Hour), AgentID: f.id(), OverdueAfter: repo.OverdueAfter(),
		Check: &domain.CheckResult{At: checked.Add(80 * time.Hour), OK: false, RunID: f.id(), AgentID: f.id(), Error: "broken"}}))
	assert.Empty(t, due(checked.Add(30*24*time.Hour)))
	passed := checked.Add(90 * time.Hour)
	require.NoError(t, f.st.RecordHealth(f.ctx, tenant, store.HealthReport{Repository: "main", At: passed, AgentID: f.id(), OverdueAfter: repo.OverdueAfter(),
		Check: &domain.CheckResult{At: passed, OK: true, RunID: f.id(), AgentID: f.id()}}))
	require.Len(t, due(passed.Add(73*time.Hour)), 1, "watched again after a success")

	// A shorter checkOverdueAfterDays moves the watch forward at once.
	repo.CheckOverdueAfterDays = 1
	repo, err = f.st.UpdateRepository(f.ctx, tenant, repo)
	require.NoError(t, err)
	require.NoError(t, f.st.RescheduleHealth(f.ctx, tenant, repo))
	found = due(passed.Add(25 * time.Hour))
	require.Len(t, found, 1)
	assert.True(t, found[0].OverdueAt.Equal(passed.Add(24*time.Hour)))
}
