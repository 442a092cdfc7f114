package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// TenantDeletionSettle is how long a deletion waits, after the tenant's last credential went,
// before it removes the tenant's API keys and the tenant itself. A request or a scheduler tick
// that began before the tenant was marked, or an agent's request that began before its
// credential went, may still write for as long as its function runs; every function's timeout
// is shorter than this (the scheduler's, the longest, is 50 s). A pass that starts after it
// therefore sees everything the tenant will ever have, and leaves nothing behind.
const TenantDeletionSettle = 2 * time.Minute

// deletionLeaseMargin is how long a deletion's lease outlasts the pass's own time budget: a
// pass stops only between requests, and a lease left by a pass that died runs out this much
// after the pass would have stopped.
const deletionLeaseMargin = time.Minute

// queueWorkers is how many queues a pass deletes at once.
const queueWorkers = 16

// removedQueues is what Removed counts agent queues as.
const removedQueues = "queues"

// DeleteTenant marks a tenant as being deleted and carries the deletion on until until (on the
// real clock); the scheduler carries it on from there, tick after tick, until nothing is left.
// Marking it stops what would add to it: the tenant API refuses changes, and the scheduler
// dispatches nothing more for it. Calling it again is harmless: it carries on where the last pass
// stopped. A tenant that does not exist (any more) is domain.ErrNotFound.
func (s *Service) DeleteTenant(ctx context.Context, tenantID string, until time.Time) (store.TenantDeletion, error) {
	if s.Queues == nil {
		return store.TenantDeletion{}, errors.New("delete tenant: deleting a tenant needs its agent queues")
	}
	if _, err := s.Store.BeginTenantDeletion(ctx, tenantID); err != nil {
		return store.TenantDeletion{}, err
	}
	s.log().InfoContext(ctx, "tenant deletion begun", "tenant_id", tenantID)
	return s.ContinueTenantDeletion(ctx, tenantID, until)
}

// DeletingTenants lists the tenants being deleted.
func (s *Service) DeletingTenants(ctx context.Context) ([]string, error) {
	return s.Store.DeletingTenants(ctx)
}

// TenantDeletion reads how far a tenant's deletion has come (Status active when it is not
// being deleted).
func (s *Service) TenantDeletion(ctx context.Context, tenantID string) (store.TenantDeletion, error) {
	d, err := s.Store.GetTenantDeletion(ctx, tenantID)
	if err != nil {
		return store.TenantDeletion{}, err
	}
	return withEarliestFinish(d), nil
}

func withEarliestFinish(d store.TenantDeletion) store.TenantDeletion {
	if d.Removed == nil {
		d.Removed = store.Removed{}
	}
	if d.Status == store.TenantDeleting && d.CredentialsRemovedAt != nil {
		at := d.CredentialsRemovedAt.Add(TenantDeletionSettle)
		d.EarliestFinish = &at
	}
	return d
}

// ContinueTenantDeletion runs one pass of a tenant's deletion, until until (on the real clock).
// Every pass works in the same order, and each step removes what it finds, so a pass that stops
// — its time is up, a request failed, its process died — leaves what the next pass finds:
//
//  1. the enrollment tokens, then (on the first pass, and whenever a token turned up since) the
//     agent credentials, so no host enrolls and no agent authenticates;
//  2. the agent queues, found by their names;
//  3. every item of the tenant's partitions but its agents and policies (store.DeleteTenantData);
//  4. once TenantDeletionSettle has passed since the credentials went, the same for the agents
//     and policies too, then the API keys and last the tenant item, which ends the deletion.
//
// Only one pass works on a tenant at a time; another that finds it at work returns the state
// it reads. The result is the deletion's state after the pass: Status deleted when it ended.
func (s *Service) ContinueTenantDeletion(ctx context.Context, tenantID string, until time.Time) (store.TenantDeletion, error) {
	if s.Queues == nil {
		return store.TenantDeletion{}, errors.New("delete tenant: deleting a tenant needs its agent queues")
	}
	start := s.now()
	holder := domain.NewID(start)
	d, ok, err := s.Store.LeaseTenantDeletion(ctx, tenantID, holder, start.Add(time.Until(until)+deletionLeaseMargin))
	if err != nil || !ok {
		return withEarliestFinish(d), err
	}
	log := s.log().With("tenant_id", tenantID)
	defer func() {
		// Released even when the request's context ended, so the next pass need not wait for
		// the lease to run out.
		if err := s.Store.ReleaseTenantDeletion(context.WithoutCancel(ctx), tenantID, holder); err != nil {
			log.WarnContext(ctx, "tenant deletion lease left to run out", "error", err)
		}
	}()
	record := func(r store.Removed) error {
		d.Removed.Add(r)
		// Recorded even when the request's context ended: what was removed is counted only
		// here, and the next pass does not find it again.
		return s.Store.RecordTenantDeletion(context.WithoutCancel(ctx), holder, d)
	}
	stopped := func(err error) (store.TenantDeletion, error) {
		if err != nil {
			log.ErrorContext(ctx, "tenant deletion pass failed; the next pass goes on", "error", err, "removed", d.Removed)
		}
		return withEarliestFinish(d), err
	}

	// The tokens are looked for on every pass: one created by a request in flight when the
	// deletion began would let a host enroll. Finding one means looking at the agents'
	// credentials again, and waiting again for what their holders may have in flight.
	tokens, done, err := s.Store.DeleteTenantEnrollmentTokens(ctx, tenantID, until)
	if len(tokens) > 0 {
		d.CredentialsRemovedAt = nil
	}
	if rerr := record(tokens); err == nil {
		err = rerr
	}
	if err != nil || !done {
		return stopped(err)
	}
	if d.CredentialsRemovedAt == nil {
		creds, done, err := s.Store.DeleteTenantAgentCredentials(ctx, tenantID, until)
		if done && err == nil {
			at := s.now()
			d.CredentialsRemovedAt = &at
		}
		if rerr := record(creds); err == nil {
			err = rerr
		}
		if err != nil || !done {
			return stopped(err)
		}
	}

	n, done, err := s.deleteTenantQueues(ctx, tenantID, until)
	if rerr := record(store.Removed{removedQueues: int64(n)}); err == nil {
		err = rerr
	}
	if err != nil || !done {
		return stopped(err)
	}

	// Only a pass that began once everything in flight has ended removes the agents and
	// policies, which lead to what such a request may still add, and then the rest.
	final := !start.Before(d.CredentialsRemovedAt.Add(TenantDeletionSettle))
	done, err = s.Store.DeleteTenantData(ctx, tenantID, store.DataDeletion{Until: until, Final: final, Progress: record})
	if err != nil || !done {
		return stopped(err)
	}
	if !final {
		log.InfoContext(ctx, "tenant deletion waits for requests in flight to end", "removed", d.Removed)
		return stopped(nil)
	}
	keys, err := s.Store.DeleteTenantAPIKeys(ctx, tenantID)
	if rerr := record(keys); err == nil {
		err = rerr
	}
	if err != nil {
		return stopped(err)
	}
	if err := s.Store.FinishTenantDeletion(ctx, tenantID, holder); err != nil {
		return stopped(err)
	}
	d.Status, d.EarliestFinish = store.TenantDeleted, nil
	log.InfoContext(ctx, "tenant deleted", "removed", d.Removed)
	return d, nil
}

// deleteTenantQueues deletes every agent queue of the tenant, several at once, until until (on
// the real clock), and reports how many it deleted and whether it got through all of them.
func (s *Service) deleteTenantQueues(ctx context.Context, tenantID string, until time.Time) (int, bool, error) {
	agents, err := s.Queues.ListTenantQueues(ctx, tenantID)
	if err != nil {
		return 0, false, fmt.Errorf("delete queues of tenant %q: %w", tenantID, err)
	}
	var (
		mu       sync.Mutex
		deleted  int
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan string)
	for range min(queueWorkers, len(agents)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				err := s.Queues.Delete(ctx, tenantID, a)
				mu.Lock()
				if err == nil {
					deleted++
				} else if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	done := true
	for i, a := range agents {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		// The first queue always goes, so that every pass makes progress.
		if failed || (i > 0 && !until.IsZero() && !time.Now().Before(until)) {
			done = false
			break
		}
		work <- a
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return deleted, false, fmt.Errorf("delete queues of tenant %q: %w", tenantID, firstErr)
	}
	return deleted, done, nil
}

// SweepTenant removes whatever is left of a tenant whose item is gone: its credentials,
// queues, data and API keys, as a deletion's pass would, with nothing to record progress on.
// A finished deletion leaves nothing, so it normally finds nothing; it is how an operator
// confirms that. A tenant that still exists is domain.ErrConflict: delete it with DeleteTenant.
func (s *Service) SweepTenant(ctx context.Context, tenantID string) (store.Removed, error) {
	removed := store.Removed{}
	if s.Queues == nil {
		return removed, errors.New("sweep tenant: deleting a tenant needs its agent queues")
	}
	_, err := s.Store.GetTenantDeletion(ctx, tenantID)
	switch {
	case err == nil:
		return removed, fmt.Errorf("sweep tenant %q: it exists; delete it instead: %w", tenantID, domain.ErrConflict)
	case !errors.Is(err, domain.ErrNotFound):
		return removed, err
	}
	tokens, _, err := s.Store.DeleteTenantEnrollmentTokens(ctx, tenantID, time.Time{})
	removed.Add(tokens)
	if err != nil {
		return removed, err
	}
	creds, _, err := s.Store.DeleteTenantAgentCredentials(ctx, tenantID, time.Time{})
	removed.Add(creds)
	if err != nil {
		return removed, err
	}
	n, _, err := s.deleteTenantQueues(ctx, tenantID, time.Time{})
	removed.Add(store.Removed{removedQueues: int64(n)})
	if err != nil {
		return removed, err
	}
	if _, err := s.Store.DeleteTenantData(ctx, tenantID, store.DataDeletion{Final: true, Progress: func(r store.Removed) error { removed.Add(r); return nil }}); err != nil {
		return removed, err
	}
	keys, err := s.Store.DeleteTenantAPIKeys(ctx, tenantID)
	removed.Add(keys)
	return removed, err
}
