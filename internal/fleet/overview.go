package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/store"
)

// Overview is a tenant at a glance, for a dashboard. It is read from the tenant's counters and
// a bounded page of its overdue index, so it costs the same few requests whatever the fleet's
// size.
type Overview struct {
	GeneratedAt time.Time   `json:"generatedAt"`
	Agents      AgentCounts `json:"agents"`
	Runs        RunCounts   `json:"runs"`
	// OverdueSlots counts the policy×agent backups the scheduler marked overdue.
	OverdueSlots int64 `json:"overdueSlots"`
	// Overdue lists at most MaxOverdueListed of them, by policy; OverdueTruncated says there are
	// more.
	Overdue          []OverduePolicy `json:"overduePolicies"`
	OverdueTruncated bool            `json:"overdueTruncated"`
}

// AgentCounts counts agents by state. An agent backing off is online and reported a backoff in
// its last heartbeat; it is counted both as online and as backing off.
type AgentCounts struct {
	Total      int64 `json:"total"`
	Online     int64 `json:"online"`
	Offline    int64 `json:"offline"`
	BackingOff int64 `json:"backingOff"`
}

// RunCounts counts the runs started since Since by their current status.
type RunCounts struct {
	Since     time.Time `json:"since"`
	Succeeded int64     `json:"succeeded"`
	Partial   int64     `json:"partial"`
	Failed    int64     `json:"failed"`
	Running   int64     `json:"running"`
	Other     int64     `json:"other"`
}

// OverduePolicy is a policy whose backups are late on some agents: the scheduler found no
// success since the last run its schedule planned (plus grace).
type OverduePolicy struct {
	PolicyID string   `json:"policyId"`
	Name     string   `json:"name"`
	AgentIDs []string `json:"agentIds"`
	// LastSuccessAt is the oldest last success among the late agents listed; absent when one of
	// them never succeeded.
	LastSuccessAt *time.Time `json:"lastSuccessAt,omitempty"`
}

// RunWindow is how far back from the start of the current hour the overview counts runs.
const RunWindow = store.RunWindow

// MaxOverdueListed is the most overdue policy×agent pairs an overview lists.
const MaxOverdueListed = store.MaxOverdueListed

// Overview sums up a tenant: its agents by state, the runs started in the current hour and the
// 24 before by status, and the policies overdue on some agent as the scheduler last judged them.
// It reads the tenant's counters (one Query), a page of its overdue slots (one Query) and their
// policies' names (one BatchGetItem).
func (s *Service) Overview(ctx context.Context, tenantID string) (Overview, error) {
	now := s.now()
	c, err := s.Store.Counts(ctx, tenantID, store.RunWindowStart(now))
	if err != nil {
		return Overview{}, err
	}
	o := Overview{
		GeneratedAt: now,
		Agents:      AgentCounts{Total: c.Agents.Total(), Online: c.Agents.Online, Offline: c.Agents.Offline, BackingOff: c.Agents.BackingOff},
		Runs: RunCounts{Since: c.RunsSince, Succeeded: c.Runs.Succeeded, Partial: c.Runs.Partial, Failed: c.Runs.Failed,
			Running: c.Runs.Running, Other: c.Runs.Other},
		OverdueSlots: c.OverdueSlots,
		Overdue:      []OverduePolicy{},
	}
	slots, more, err := s.Store.ListOverdueSlots(ctx, tenantID, MaxOverdueListed)
	if err != nil {
		return Overview{}, err
	}
	o.OverdueTruncated = more
	if len(slots) == 0 {
		return o, nil
	}
	var refs []store.PolicyRef
	for _, sl := range slots {
		if len(refs) == 0 || refs[len(refs)-1].PolicyID != sl.PolicyID {
			refs = append(refs, store.PolicyRef{TenantID: tenantID, PolicyID: sl.PolicyID})
		}
	}
	policies, err := s.Store.GetPolicies(ctx, refs)
	if err != nil {
		return Overview{}, err
	}
	// The index lists slots by policy, so each policy's late agents come together.
	neverSucceeded := false
	for _, sl := range slots {
		p, ok := policies[store.PolicyRef{TenantID: tenantID, PolicyID: sl.PolicyID}]
		if !ok || !p.Enabled {
			continue // deleted meanwhile, or disabled: a disabled policy plans no runs, so none can be late
		}
		if n := len(o.Overdue); n == 0 || o.Overdue[n-1].PolicyID != p.ID {
			o.Overdue = append(o.Overdue, OverduePolicy{PolicyID: p.ID, Name: p.Name})
			neverSucceeded = false
		}
		late := &o.Overdue[len(o.Overdue)-1]
		late.AgentIDs = append(late.AgentIDs, sl.AgentID)
		switch {
		case sl.LastSuccessAt == nil:
			neverSucceeded, late.LastSuccessAt = true, nil
		case neverSucceeded:
		case len(late.AgentIDs) == 1 || sl.LastSuccessAt.Before(*late.LastSuccessAt):
			late.LastSuccessAt = sl.LastSuccessAt
		}
	}
	return o, nil
}

// Recount rebuilds a tenant's counters from its items (store.Recount) and returns the overview
// they give. A deployment whose tenants were written before the counters existed runs it once
// for each tenant; it reads the whole fleet, and counted changes made meanwhile may be missed,
// so it is best run while the tenant is quiet.
func (s *Service) Recount(ctx context.Context, tenantID string) (Overview, error) {
	if _, _, err := s.Store.GetTenant(ctx, tenantID); err != nil {
		return Overview{}, err
	}
	if _, err := s.Store.Recount(ctx, tenantID); err != nil {
		return Overview{}, fmt.Errorf("recount tenant %s: %w", tenantID, err)
	}
	return s.Overview(ctx, tenantID)
}
