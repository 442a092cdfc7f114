package scheduler

import (
	"context"
	"errors"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// overdueRepositoryChecks handles the repositories whose check the due index says may be
// overdue. The repository's checkOverdueAfterDays is read now, so a change made since the
// entry was written counts: an entry that came early moves to its time, one that is due is
// announced with repository.check_overdue and leaves the index until a check succeeds again.
// Of two ticks announcing the same episode, one does.
func (t *tick) overdueRepositoryChecks(ctx context.Context, due []store.HealthDue) {
	forEach(len(due), t.cfg.Concurrency, func(i int) {
		h := due[i]
		repo, err := t.s.Store.GetRepository(ctx, h.TenantID, h.Repository)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			if err := t.s.Store.ClearHealth(ctx, h); err != nil {
				t.fail(ctx, "clear the health of a deleted repository", err, "tenant_id", h.TenantID, "repository", h.Repository)
			}
			return
		case err != nil:
			t.fail(ctx, "read repository", err, "tenant_id", h.TenantID, "repository", h.Repository)
			return
		}
		at := h.Basis.Add(repo.OverdueAfter())
		if t.now.Before(at) {
			if err := t.s.Store.MoveHealthDue(ctx, h, at); err != nil {
				t.fail(ctx, "move a repository's overdue check", err, "tenant_id", h.TenantID, "repository", h.Repository)
			}
			return
		}
		ev := events.NewRepositoryCheckOverdue(t.now, h.TenantID, h.Health(), h.Basis, repo.OverdueAfterDays())
		ok, err := t.s.Store.AnnounceCheckOverdue(ctx, h, ev)
		switch {
		case err != nil:
			t.fail(ctx, "announce a repository's check overdue", err, "tenant_id", h.TenantID, "repository", h.Repository)
		case ok:
			t.emit(ev)
			t.count(func(s *Summary) { s.ChecksOverdue++ })
		}
	})
}
