package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// AgentChange is what an operator may change of an agent: its labels and limits, both replaced
// whole. Version is the version the operator read; a newer stored version is a conflict.
type AgentChange struct {
	Labels  map[string]string
	Limits  domain.Limits
	Version int64
}

// UpdateAgent applies an operator's change to an agent.
func (s *Service) UpdateAgent(ctx context.Context, tenantID, agentID string, c AgentChange) (domain.Agent, error) {
	a, err := s.Store.GetAgent(ctx, tenantID, agentID)
	if err != nil {
		return domain.Agent{}, err
	}
	if a.Version != c.Version {
		return domain.Agent{}, staleVersion("agent", agentID, c.Version, a.Version)
	}
	a.Labels, a.Limits = c.Labels, c.Limits
	return s.Store.UpdateAgent(ctx, tenantID, a)
}

func staleVersion(what, id string, got, stored int64) error {
	return fmt.Errorf("%s %s is at version %d, not %d: read it again and reapply the change: %w", what, id, stored, got, domain.ErrConflict)
}

// DeleteAgent deletes an agent's queues, then the agent with its credential, assignments and
// schedule slots. Its tasks, runs and snapshots stay as history. The queues go first, so a
// failure halfway leaves the agent in place and the delete can simply be repeated.
func (s *Service) DeleteAgent(ctx context.Context, tenantID, agentID string) error {
	if _, err := s.Store.GetAgent(ctx, tenantID, agentID); err != nil {
		return err
	}
	if s.Queues != nil {
		if err := s.Queues.Delete(ctx, tenantID, agentID); err != nil {
			return fmt.Errorf("delete agent %s: %w", agentID, err)
		}
	}
	return s.Store.DeleteAgent(ctx, tenantID, agentID)
}

// AgentPolicies lists the policies assigned to an agent.
func (s *Service) AgentPolicies(ctx context.Context, tenantID, agentID string, page store.Page) ([]domain.Policy, string, error) {
	if _, err := s.Store.GetAgent(ctx, tenantID, agentID); err != nil {
		return nil, "", err
	}
	ids, next, err := s.Store.ListAgentPolicies(ctx, tenantID, agentID, page)
	if err != nil {
		return nil, "", err
	}
	policies := make([]domain.Policy, 0, len(ids))
	for _, id := range ids {
		p, err := s.Store.GetPolicy(ctx, tenantID, id)
		if errors.Is(err, domain.ErrNotFound) {
			continue // deleted between the two reads
		}
		if err != nil {
			return nil, "", err
		}
		policies = append(policies, p)
	}
	return policies, next, nil
}

// PolicyAgents lists the agents a policy is assigned to.
func (s *Service) PolicyAgents(ctx context.Context, tenantID, policyID string, page store.Page) ([]domain.Agent, string, error) {
	if _, err := s.Store.GetPolicy(ctx, tenantID, policyID); err != nil {
		return nil, "", err
	}
	ids, next, err := s.Store.ListPolicyAgents(ctx, tenantID, policyID, page)
	if err != nil {
		return nil, "", err
	}
	agents := make([]domain.Agent, 0, len(ids))
	for _, id := range ids {
		a, err := s.Store.GetAgent(ctx, tenantID, id)
		if errors.Is(err, domain.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		agents = append(agents, a)
	}
	return agents, next, nil
}

// RecountCapacities rebuilds the capacity item of every agent of a tenant from the agent's tasks
// (store.RecountCapacity) and returns how many agents it recounted. The scheduler recounts an
// agent whose item is missing or was never counted by itself; this repairs items that tasks
// written by an older version, still running during an upgrade, left behind. It is safe while
// everything runs.
func (s *Service) RecountCapacities(ctx context.Context, tenantID string) (int, error) {
	if _, _, err := s.Store.GetTenant(ctx, tenantID); err != nil {
		return 0, err
	}
	n := 0
	page := store.Page{Limit: 100}
	for {
		agents, next, err := s.Store.ListAgents(ctx, tenantID, store.AgentFilter{}, page)
		if err != nil {
			return n, err
		}
		for _, a := range agents {
			if _, err := s.Store.RecountCapacity(ctx, tenantID, a.ID); err != nil {
				return n, err
			}
			n++
		}
		if next == "" {
			return n, nil
		}
		page.Cursor = next
	}
}
