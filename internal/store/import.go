package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Bulk is a fleet to import: agents, policies, their assignments with the assignments' slots,
// tasks and runs, each naming its tenant.
type Bulk struct {
	Agents      []domain.Agent
	Policies    []domain.Policy
	Assignments []domain.Assignment
	Slots       []domain.Slot
	Tasks       []domain.Task
	Runs        []domain.Run
}

// Import writes a fleet as it is given, 25 items per request and several requests at once. It
// skips what the single-item methods check — validation, uniqueness, versions, that a policy's
// repository or an assignment's agent exists — and replaces items that exist, so it is for
// loading a known-good fleet in bulk (seeding a benchmark, restoring a copy), never for input.
// Agents get their credential items and policies their name guards, and the counters of every
// tenant in the fleet are set to what the fleet holds, so the result reads exactly like a fleet
// built one call at a time. Items of those tenants that the fleet does not hold are not counted:
// after importing into a tenant that has others, run Recount. Each imported agent gets its
// capacity item, counted from the imported tasks, so an agent's active tasks must come with it;
// an agent named only by imported tasks gets an item that is not counted, which the scheduler
// recounts before it uses it.
func (s *Store) Import(ctx context.Context, b Bulk, concurrency int) error {
	var reqs []types.WriteRequest
	put := func(item any) error {
		m, err := marshal(item)
		if err != nil {
			return err
		}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: m}})
		return nil
	}
	for _, a := range b.Agents {
		if err := errors.Join(
			put(newAgentItem(a)),
			put(agentCredItem{key: agentCredKey(a.ID), Entity: entityAgentCred, TenantID: a.TenantID, AgentID: a.ID, SecretHash: a.SecretHash}),
		); err != nil {
			return fmt.Errorf("import agent %s: %w", a.ID, err)
		}
	}
	for _, p := range b.Policies {
		policy, guard, err := s.policyWrites(p)
		if err != nil {
			return fmt.Errorf("import policy %s: %w", p.ID, err)
		}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: policy}}, types.WriteRequest{PutRequest: &types.PutRequest{Item: guard}})
	}
	for _, a := range b.Assignments {
		err := put(assignmentItem{
			key: assignmentKey(a.TenantID, a.PolicyID, a.AgentID), GSI1PK: agentPoliciesGSI1(a.TenantID, a.AgentID), GSI1SK: prefixPolicy + a.PolicyID,
			Entity: entityAssignment, Assignment: a,
		})
		if err != nil {
			return fmt.Errorf("import assignment %s/%s: %w", a.PolicyID, a.AgentID, err)
		}
	}
	for _, sl := range b.Slots {
		if err := put(newSlotItem(sl)); err != nil {
			return fmt.Errorf("import slot %s/%s/%s: %w", sl.PolicyID, sl.AgentID, sl.Kind, err)
		}
	}
	for _, t := range b.Tasks {
		if err := put(newTaskItem(t, 1)); err != nil {
			return fmt.Errorf("import task %s: %w", t.ID, err)
		}
	}
	for _, it := range importedCapacities(b) {
		if err := put(it); err != nil {
			return fmt.Errorf("import capacity of agent %s: %w", it.AgentID, err)
		}
	}
	for _, r := range b.Runs {
		if err := put(newRunItem(r, 1)); err != nil {
			return fmt.Errorf("import run %s: %w", r.ID, err)
		}
	}

	const perRequest = 25
	chunks := (len(reqs) + perRequest - 1) / perRequest
	work := make(chan []types.WriteRequest)
	errs := make(chan error, max(concurrency, 1))
	var wg sync.WaitGroup
	for range max(concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var failed error
			for chunk := range work {
				if failed == nil {
					failed = s.batchWrite(ctx, chunk)
				}
			}
			errs <- failed
		}()
	}
	for i := range chunks {
		work <- reqs[i*perRequest : min((i+1)*perRequest, len(reqs))]
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	// The writes replaced items without knowing what they held, so the counters are set, not
	// changed: to what the fleet holds, which costs two requests a tenant where a recount reads
	// the whole tenant.
	now := s.nowUTC()
	for t, counts := range b.counts(now) {
		if err := s.replaceCounters(ctx, t, counts, RunWindowStart(now).Add(-time.Hour)); err != nil {
			return fmt.Errorf("import: counters of tenant %s: %w", t, err)
		}
	}
	return nil
}

// importedCapacities are the capacity items of the agents a fleet names.
func importedCapacities(b Bulk) []capacityItem {
	active := map[AgentRef][]domain.Task{}
	for _, t := range b.Tasks {
		if t.Status.Active() {
			ref := AgentRef{t.TenantID, t.AgentID}
			active[ref] = append(active[ref], t)
		}
	}
	var out []capacityItem
	imported := map[AgentRef]bool{}
	for _, a := range b.Agents {
		ref := AgentRef{a.TenantID, a.ID}
		imported[ref] = true
		out = append(out, countedCapacity(a, active[ref]))
	}
	for _, t := range b.Tasks {
		ref := AgentRef{t.TenantID, t.AgentID}
		if !imported[ref] {
			imported[ref] = true
			out = append(out, capacityItem{key: capacityKey(t.TenantID, t.AgentID), Entity: entityCapacity, TenantID: t.TenantID, AgentID: t.AgentID})
		}
	}
	return out
}

// counts is what the fleet adds to each tenant's counters at now.
func (b Bulk) counts(now time.Time) map[string]*tally {
	out := map[string]*tally{}
	of := func(t string) *tally {
		if out[t] == nil {
			out[t] = newTally(t)
		}
		return out[t]
	}
	for _, a := range b.Agents {
		of(a.TenantID).agent(nil, &a)
	}
	for _, p := range b.Policies {
		of(p.TenantID)
	}
	for _, sl := range b.Slots {
		of(sl.TenantID).overdue(false, slotCounted(sl.Kind, sl.Overdue))
	}
	for _, r := range b.Runs {
		of(r.TenantID).run(r.ID, "", r.Status, now)
	}
	return out
}
