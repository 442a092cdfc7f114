package fleet

import (
	"context"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// Overview is a tenant at a glance, for a dashboard.
type Overview struct {
	GeneratedAt time.Time       `json:"generatedAt"`
	Agents      AgentCounts     `json:"agents"`
	Runs        RunCounts       `json:"runs"`
	Overdue     []OverduePolicy `json:"overduePolicies"`
}

// AgentCounts counts agents by state. An agent backing off is online but asked for no work
// until its backoff ends; it is counted both as online and as backing off.
type AgentCounts struct {
	Total      int `json:"total"`
	Online     int `json:"online"`
	Offline    int `json:"offline"`
	BackingOff int `json:"backingOff"`
}

// RunCounts counts the runs started since Since by outcome.
type RunCounts struct {
	Since     time.Time `json:"since"`
	Succeeded int       `json:"succeeded"`
	Partial   int       `json:"partial"`
	Failed    int       `json:"failed"`
	Running   int       `json:"running"`
	Other     int       `json:"other"`
}

// OverduePolicy is a policy whose backups are late on some agents: the scheduler found no
// success since the last run its schedule planned (plus grace).
type OverduePolicy struct {
	PolicyID string   `json:"policyId"`
	Name     string   `json:"name"`
	AgentIDs []string `json:"agentIds"`
	// LastSuccessAt is the oldest last success among the late agents; absent when one of them
	// never succeeded.
	LastSuccessAt *time.Time `json:"lastSuccessAt,omitempty"`
}

// RunWindow is how far back the overview counts runs.
const RunWindow = 24 * time.Hour

// Overview sums up a tenant: its agents by state, its runs of the last 24 hours by outcome,
// and the policies that are overdue on some agent, as the scheduler last judged them.
func (s *Service) Overview(ctx context.Context, tenantID string) (Overview, error) {
	now := s.now()
	o := Overview{GeneratedAt: now, Runs: RunCounts{Since: now.Add(-RunWindow)}, Overdue: []OverduePolicy{}}
	agents, err := allPages(ctx, func(ctx context.Context, page store.Page) ([]domain.Agent, string, error) {
		return s.Store.ListAgents(ctx, tenantID, store.AgentFilter{}, page)
	})
	if err != nil {
		return Overview{}, err
	}
	for _, a := range agents {
		o.Agents.Total++
		if a.Status == domain.AgentOnline {
			o.Agents.Online++
		} else {
			o.Agents.Offline++
		}
		if a.BackingOff(now) {
			o.Agents.BackingOff++
		}
	}
	runs, err := allPages(ctx, func(ctx context.Context, page store.Page) ([]domain.Run, string, error) {
		return s.Store.ListRuns(ctx, tenantID, store.RunFilter{Since: o.Runs.Since}, page)
	})
	if err != nil {
		return Overview{}, err
	}
	for _, r := range runs {
		switch r.Status {
		case domain.TaskSucceeded:
			o.Runs.Succeeded++
		case domain.TaskPartial:
			o.Runs.Partial++
		case domain.TaskFailed:
			o.Runs.Failed++
		case domain.TaskRunning:
			o.Runs.Running++
		default:
			o.Runs.Other++
		}
	}
	policies, err := allPages(ctx, func(ctx context.Context, page store.Page) ([]domain.Policy, string, error) {
		return s.Store.ListPolicies(ctx, tenantID, store.PolicyFilter{}, page)
	})
	if err != nil {
		return Overview{}, err
	}
	for _, p := range policies {
		if !p.Enabled {
			continue // a disabled policy plans no runs, so none can be late
		}
		slots, err := allPages(ctx, func(ctx context.Context, page store.Page) ([]domain.Slot, string, error) {
			return s.Store.ListPolicySlots(ctx, tenantID, p.ID, page)
		})
		if err != nil {
			return Overview{}, err
		}
		late := OverduePolicy{PolicyID: p.ID, Name: p.Name}
		neverSucceeded := false
		for _, sl := range slots {
			if sl.Kind != domain.SlotBackup || !sl.Overdue {
				continue
			}
			late.AgentIDs = append(late.AgentIDs, sl.AgentID)
			switch {
			case sl.LastSuccessAt == nil:
				neverSucceeded = true
			case late.LastSuccessAt == nil || sl.LastSuccessAt.Before(*late.LastSuccessAt):
				late.LastSuccessAt = sl.LastSuccessAt
			}
		}
		if len(late.AgentIDs) == 0 {
			continue
		}
		if neverSucceeded {
			late.LastSuccessAt = nil
		}
		o.Overdue = append(o.Overdue, late)
	}
	return o, nil
}
