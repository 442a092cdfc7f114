package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// MaxAssignAgents is the most agents one assign request names.
const MaxAssignAgents = 100

// replanWorkers bounds how many agents' slots are rewritten at once after a policy change.
const replanWorkers = 8

// Assignment is a policy on one agent, with the schedule slots it runs there.
type Assignment struct {
	AgentID string        `json:"agentId"`
	Slots   []domain.Slot `json:"slots"`
}

// CreatePolicy stores a new policy that can be dispatched.
func (s *Service) CreatePolicy(ctx context.Context, tenantID string, p domain.Policy) (domain.Policy, error) {
	p.TenantID = tenantID
	if err := p.Validate(); err != nil {
		return domain.Policy{}, err
	}
	if err := dispatchable(p); err != nil {
		return domain.Policy{}, err
	}
	return s.Store.CreatePolicy(ctx, tenantID, p)
}

// dispatchable refuses a policy whose backup message would not fit in an SQS message: its
// paths, excludes and tags travel in every backup task, and a task that cannot be sent fails.
// The check builds the very message the scheduler would send.
func dispatchable(p domain.Policy) error {
	at := time.Unix(0, 0).UTC()
	task := domain.Task{
		ID: p.ID, TenantID: p.TenantID, AgentID: p.ID, PolicyID: p.ID, Repository: p.Repository, Type: domain.TaskBackup,
		Status: domain.TaskPending, Attempt: 1, NotBefore: at, Deadline: at.Add(time.Hour),
	}
	msg, err := events.NewTaskMessage(task, &p)
	if err == nil {
		_, err = msg.Encode()
	}
	if !errors.Is(err, events.ErrTooLarge) {
		// Anything else the message could object to, the policy's own rules have refused.
		return nil
	}
	size := func(list []string) (n int) {
		for _, s := range list {
			n += len(s)
		}
		return n
	}
	field := "excludes"
	if size(p.Paths) > size(p.Excludes) {
		field = "paths"
	}
	if size(p.Tags) > max(size(p.Paths), size(p.Excludes)) {
		field = "tags"
	}
	return &domain.ValidationError{Fields: []domain.FieldError{{Field: field,
		Reason: fmt.Sprintf("paths, excludes and tags together are too long for a task message (at most about %d KiB)", events.MaxBodyBytes/1024)}}}
}

// UpdatePolicy replaces a policy (p.Version must be the stored version) and, when its schedules
// or its enabled flag changed, re-plans its slots on every agent it is assigned to, so the
// change takes effect at the next planned time rather than after the old one.
//
// When re-planning fails, the policy is already stored and the error is returned; assigning the
// policy to its agents again re-plans them.
func (s *Service) UpdatePolicy(ctx context.Context, tenantID string, p domain.Policy) (domain.Policy, error) {
	p.TenantID = tenantID
	if err := p.Validate(); err != nil {
		return domain.Policy{}, err
	}
	if err := dispatchable(p); err != nil {
		return domain.Policy{}, err
	}
	old, err := s.Store.GetPolicy(ctx, tenantID, p.ID)
	if err != nil {
		return domain.Policy{}, err
	}
	if old.Version != p.Version {
		return domain.Policy{}, staleVersion("policy", p.ID, p.Version, old.Version)
	}
	updated, err := s.Store.UpdatePolicy(ctx, tenantID, p)
	if err != nil {
		return domain.Policy{}, err
	}
	changed := scheduleChanges(old, updated)
	if len(changed) == 0 {
		return updated, nil
	}
	if err := s.replan(ctx, tenantID, updated, changed); err != nil {
		return updated, fmt.Errorf("policy %s updated, but its slots were not all re-planned: %w", p.ID, err)
	}
	return updated, nil
}

// replan rewrites the slots of policy p on every agent it is assigned to.
func (s *Service) replan(ctx context.Context, tenantID string, p domain.Policy, changed map[domain.SlotKind]bool) error {
	agents, err := allPages(ctx, func(ctx context.Context, page store.Page) ([]string, string, error) {
		return s.Store.ListPolicyAgents(ctx, tenantID, p.ID, page)
	})
	if err != nil {
		return err
	}
	existing, err := s.slotsByAgent(ctx, tenantID, p.ID)
	if err != nil {
		return err
	}
	now := s.now()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, replanWorkers)
	)
	for _, agentID := range agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			slots, err := planSlots(p, agentID, existing[agentID], changed, now)
			if err == nil {
				err = s.Store.Assign(ctx, tenantID, p.ID, agentID, slots)
			}
			// An agent deleted meanwhile has nothing left to re-plan.
			if err != nil && !errors.Is(err, domain.ErrNotFound) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("agent %s: %w", agentID, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// slotsByAgent reads all of a policy's slots, by agent and kind.
func (s *Service) slotsByAgent(ctx context.Context, tenantID, policyID string) (map[string]map[domain.SlotKind]domain.Slot, error) {
	slots, err := allPages(ctx, func(ctx context.Context, page store.Page) ([]domain.Slot, string, error) {
		return s.Store.ListPolicySlots(ctx, tenantID, policyID, page)
	})
	if err != nil {
		return nil, err
	}
	out := map[string]map[domain.SlotKind]domain.Slot{}
	for _, sl := range slots {
		if out[sl.AgentID] == nil {
			out[sl.AgentID] = map[domain.SlotKind]domain.Slot{}
		}
		out[sl.AgentID][sl.Kind] = sl
	}
	return out, nil
}

// AssignPolicy assigns a policy to agents and plans its slots on each: the backup slot always,
// the forget and check slots when the policy has those schedules. Assigning to an agent that
// already has the policy keeps the next run times already planned. Every agent must exist; a
// request naming a missing one assigns nothing.
func (s *Service) AssignPolicy(ctx context.Context, tenantID, policyID string, agentIDs []string) ([]Assignment, error) {
	var p problems
	switch {
	case len(agentIDs) == 0:
		p.add("agentIds", "name at least one agent")
	case len(agentIDs) > MaxAssignAgents:
		p.add("agentIds", "at most %d agents per request (got %d)", MaxAssignAgents, len(agentIDs))
	}
	seen := map[string]bool{}
	for i, id := range agentIDs {
		field := fmt.Sprintf("agentIds[%d]", i)
		switch {
		case !domain.ValidID(id):
			p.add(field, "must be an agent ID")
		case seen[id]:
			p.add(field, "names agent %s twice", id)
		}
		seen[id] = true
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	policy, err := s.Store.GetPolicy(ctx, tenantID, policyID)
	if err != nil {
		return nil, err
	}
	for i, id := range agentIDs {
		_, err := s.Store.GetAgent(ctx, tenantID, id)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			p.add(fmt.Sprintf("agentIds[%d]", i), "no agent %s", id)
		case err != nil:
			return nil, err
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	existing, err := s.slotsByAgent(ctx, tenantID, policyID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]Assignment, 0, len(agentIDs))
	for _, id := range agentIDs {
		slots, err := planSlots(policy, id, existing[id], nil, now)
		if err != nil {
			return nil, err
		}
		if err := s.Store.Assign(ctx, tenantID, policyID, id, slots); err != nil {
			return nil, err
		}
		out = append(out, Assignment{AgentID: id, Slots: slots})
	}
	return out, nil
}

// DeletePolicy deletes a policy with its assignments and slots. A policy that is still
// assigned is a conflict unless force is set.
func (s *Service) DeletePolicy(ctx context.Context, tenantID, policyID string, force bool) error {
	if _, err := s.Store.GetPolicy(ctx, tenantID, policyID); err != nil {
		return err
	}
	if !force {
		agents, _, err := s.Store.ListPolicyAgents(ctx, tenantID, policyID, store.Page{Limit: 1})
		if err != nil {
			return err
		}
		if len(agents) > 0 {
			return fmt.Errorf("policy %s is assigned to agent %s (and maybe others): unassign it or delete with force=true: %w", policyID, agents[0], domain.ErrConflict)
		}
	}
	return s.Store.DeletePolicy(ctx, tenantID, policyID)
}
