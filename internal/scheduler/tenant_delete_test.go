package scheduler_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// A tenant being deleted gets nothing dispatched, announced or retried, while the other
// tenants' work goes on; the ticks carry its deletion on until nothing of it is left.
func TestTicksDispatchNothingForATenantBeingDeletedAndFinishItsDeletion(t *testing.T) {
	f := newFixture(t)
	doomed := f.agent(nil)
	p := f.policy(nil)
	f.assign(p, doomed, base)

	// A second tenant, with the same kind of fleet.
	f.tenant, f.token = "globex", domain.NewID(base)
	require.NoError(t, f.st.CreateTenant(f.ctx, domain.Tenant{ID: "globex", Name: "Globex", CreatedAt: base}))
	_, err := f.st.CreateRepository(f.ctx, "globex", domain.Repository{Name: "main", Backend: domain.BackendLocal, Location: "/srv/restic/main"})
	require.NoError(t, err)
	require.NoError(t, f.st.CreateEnrollmentToken(f.ctx, "globex", domain.EnrollmentToken{
		ID: f.token, SecretHash: "unused", MaxUses: 10, CreatedAt: base, ExpiresAt: base.AddDate(0, 0, 30),
	}))
	kept := f.agent(nil)
	q := f.policy(nil)
	f.assign(q, kept, base)

	_, err = f.st.BeginTenantDeletion(f.ctx, "acme")
	require.NoError(t, err)
	deleter := &fleet.Service{Store: f.st, Queues: f.qm, Now: f.clock.Now}
	s := &scheduler.Scheduler{
		Store:   f.st,
		Sender:  &dispatch.Dispatcher{Store: f.st, Sender: f.qm, Now: f.clock.Now},
		Emitter: f.events,
		Tenants: deleter,
	}
	tick := func(now time.Time) scheduler.Summary {
		t.Helper()
		f.clock.Set(now)
		sum, err := s.Tick(f.ctx, now)
		require.NoError(t, err)
		require.Zero(t, sum.Errors, "tick errors")
		return sum
	}

	sum := tick(base.Add(time.Minute))
	assert.Equal(t, 1, sum.TenantsDeleting)
	assert.Equal(t, 1, sum.Claimed, "only the other tenant's slot is claimed")
	assert.Positive(t, sum.Waiting["tenant_deleting"], "the deleted tenant's due entries wait")
	assert.Len(t, f.tasks(kept), 1, "the other tenant's run is dispatched")
	assert.Len(t, f.messages(kept), 1)
	d, err := deleter.TenantDeletion(f.ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, store.TenantDeleting, d.Status, "the tenant waits for requests in flight")
	assert.Equal(t, int64(1), d.Removed["agentCredentials"])
	assert.Equal(t, int64(1), d.Removed["queues"])
	assert.Equal(t, int64(2), d.Removed["slots"], "the backup and the daily stats slot")
	assert.Zero(t, d.Removed["tasks"], "no task was created for the tenant being deleted")

	sum = tick(d.EarliestFinish.Add(time.Second))
	assert.Equal(t, 1, sum.TenantsDeleted)
	_, err = f.st.GetTenantDeletion(f.ctx, "acme")
	assert.ErrorIs(t, err, domain.ErrNotFound, "the tenant is gone")
	_, err = f.st.GetAgent(f.ctx, "acme", doomed.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound, "and its agent")
	sum = tick(d.EarliestFinish.Add(time.Minute))
	assert.Zero(t, sum.TenantsDeleting, "nothing is left to delete")
	_, err = f.st.GetAgent(f.ctx, "globex", kept.ID)
	assert.NoError(t, err, "the other tenant's agent")
}
