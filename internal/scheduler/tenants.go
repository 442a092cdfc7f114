package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// TenantDeletions finds the tenants being deleted and carries their deletions on;
// *fleet.Service is one.
type TenantDeletions interface {
	DeletingTenants(ctx context.Context) ([]string, error)
	ContinueTenantDeletion(ctx context.Context, tenantID string, until time.Time) (store.TenantDeletion, error)
}

// Defaults of a tick's share in tenant deletions.
const (
	// DefaultDeletionBudget is the most a tick spends on deleting tenants.
	DefaultDeletionBudget = 20 * time.Second
	// deletionReserve is the time a tick keeps, before its context's deadline, after deleting.
	deletionReserve = 5 * time.Second
)

// waitDeleting is why the entries of a tenant being deleted wait: for ever, as the deletion
// removes them.
const waitDeleting = "tenant_deleting"

// deletingTenants lists the tenants being deleted. When the list cannot be read the tick goes
// on without it: what it dispatches for such a tenant, its deletion removes.
func (t *tick) deletingTenants(ctx context.Context) map[string]bool {
	if t.s.Tenants == nil {
		return nil
	}
	ids, err := t.s.Tenants.DeletingTenants(ctx)
	if err != nil {
		t.fail(ctx, "list the tenants being deleted", err)
		return nil
	}
	deleting := make(map[string]bool, len(ids))
	for _, id := range ids {
		deleting[id] = true
	}
	t.count(func(s *Summary) { s.TenantsDeleting = len(ids) })
	return deleting
}

// dropDeleting leaves out the due entries of tenants being deleted: nothing is dispatched,
// retried or announced for them any more.
func (t *tick) dropDeleting(due []store.Due, deleting map[string]bool) []store.Due {
	if len(deleting) == 0 {
		return due
	}
	kept := due[:0]
	for _, d := range due {
		var tenant string
		switch {
		case d.Slot != nil:
			tenant = d.Slot.TenantID
		case d.Task != nil:
			tenant = d.Task.TenantID
		case d.Agent != nil:
			tenant = d.Agent.TenantID
		case d.Check != nil:
			tenant = d.Check.TenantID
		case d.Health != nil:
			tenant = d.Health.TenantID
		}
		if deleting[tenant] {
			t.wait(waitDeleting)
			continue
		}
		kept = append(kept, d)
	}
	return kept
}

// continueDeletions gives the deletions of the tenants being deleted the rest of the tick's
// deletion budget, shared out evenly, so that a large tenant cannot hold up the others.
func (t *tick) continueDeletions(ctx context.Context, deleting map[string]bool) {
	if len(deleting) == 0 {
		return
	}
	budget := t.cfg.DeletionBudget
	end := time.Now().Add(budget)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-deletionReserve).Before(end) {
		end = dl.Add(-deletionReserve)
	}
	left := len(deleting)
	for id := range deleting {
		share := time.Until(end) / time.Duration(left)
		left--
		d, err := t.s.Tenants.ContinueTenantDeletion(ctx, id, time.Now().Add(share))
		switch {
		case errors.Is(err, domain.ErrNotFound):
			// Another pass ended it since the list was read.
		case err != nil:
			t.fail(ctx, "carry on a tenant's deletion", err, "tenant_id", id)
		case d.Status == store.TenantDeleted:
			t.count(func(s *Summary) { s.TenantsDeleted++ })
		}
	}
}
