package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func TestTenantOverview(t *testing.T) {
	h := newHarness(t)
	// Run counters expire two days after their hour, by the table's TTL on the real clock: the
	// test's present lies ahead of it.
	h.clock = time.Date(2031, 11, 2, 10, 0, 0, 0, time.UTC)
	w := newTenantWorld(h, "acme")
	ctx := context.Background()

	res := h.call(http.MethodGet, "/v1/overview", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	assert.JSONEq(t, `{"generatedAt":"2031-11-02T10:00:00Z","agents":{"total":0,"online":0,"offline":0,"backingOff":0},
		"runs":{"since":"2031-11-01T10:00:00Z","succeeded":0,"partial":0,"failed":0,"running":0,"other":0},
		"overdueSlots":0,"overduePolicies":[],"overdueTruncated":false}`, res.Body)

	a := w.agent("web-1", nil)
	b := w.agent("web-2", nil)
	c := w.agent("db-1", nil)
	until := h.clock.Add(time.Hour)
	_, err := h.store.ModifyAgent(ctx, w.id, b.ID, func(a *domain.Agent) error { a.BackoffUntil = &until; return nil })
	require.NoError(t, err)
	_, err = h.store.ModifyAgent(ctx, w.id, c.ID, func(a *domain.Agent) error { a.Status = domain.AgentOffline; return nil })
	require.NoError(t, err)

	w.repository("repo-main")
	late := w.policy("nightly", "repo-main")
	fine := w.policy("hourly", "repo-main")
	paused := w.policy("paused", "repo-main")
	w.assign(late.ID, a.ID, b.ID)
	w.assign(fine.ID, a.ID)
	w.assign(paused.ID, a.ID)

	// The scheduler judges slots overdue; the overview reports its judgement.
	lastSuccess := h.clock.Add(-50 * time.Hour)
	markOverdue := func(policyID, agentID string, last *time.Time) {
		sl, err := h.store.GetSlot(ctx, w.id, policyID, agentID, domain.SlotBackup)
		require.NoError(t, err)
		sl.Overdue, sl.LastSuccessAt = true, last
		require.NoError(t, h.store.PutSlot(ctx, w.id, sl))
	}
	markOverdue(late.ID, a.ID, &lastSuccess)
	markOverdue(late.ID, b.ID, nil)
	markOverdue(paused.ID, a.ID, &lastSuccess)
	// A disabled policy plans no runs, so none of them is late.
	res = w.patch("/v1/policies/"+paused.ID, `{"version":1,"enabled":false}`)
	tenantStatus(t, http.StatusOK, res)

	w.run(a.ID, late.ID, domain.TaskSucceeded, h.clock.Add(-time.Hour))
	w.run(a.ID, fine.ID, domain.TaskSucceeded, h.clock.Add(-2*time.Hour))
	w.run(b.ID, late.ID, domain.TaskFailed, h.clock.Add(-3*time.Hour))
	w.run(b.ID, fine.ID, domain.TaskPartial, h.clock.Add(-23*time.Hour))
	w.run(b.ID, fine.ID, domain.TaskFailed, h.clock.Add(-25*time.Hour))

	res = h.call(http.MethodGet, "/v1/overview", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var o struct {
		Agents struct{ Total, Online, Offline, BackingOff int }
		Runs   struct {
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
	res.JSON(t, &o)
	assert.Equal(t, 3, o.Agents.Total)
	assert.Equal(t, 2, o.Agents.Online)
	assert.Equal(t, 1, o.Agents.Offline)
	assert.Equal(t, 1, o.Agents.BackingOff)
	assert.Equal(t, 2, o.Runs.Succeeded, "runs of the last 24 hours")
	assert.Equal(t, 1, o.Runs.Failed, "the failure 25 hours ago is not counted")
	assert.Equal(t, 1, o.Runs.Partial)
	assert.Equal(t, 2, o.OverdueSlots, "a disabled policy is never late")
	assert.False(t, o.OverdueTruncated)
	require.Len(t, o.OverduePolicies, 1, "a disabled policy is never late: %s", res.Body)
	assert.Equal(t, late.ID, o.OverduePolicies[0].PolicyID)
	assert.Equal(t, "nightly", o.OverduePolicies[0].Name)
	assert.ElementsMatch(t, []string{a.ID, b.ID}, o.OverduePolicies[0].AgentIDs)
	assert.Nil(t, o.OverduePolicies[0].LastSuccessAt, "one late agent never succeeded")

	res = h.call(http.MethodGet, "/v1/overview?verbose=1", w.viewer, nil)
	tenantStatus(t, http.StatusBadRequest, res)
	assert.Equal(t, []string{"verbose"}, res.ErrorFields(t))
}
