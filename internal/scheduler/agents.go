package scheduler

import (
	"context"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// agentHealth handles the due agents: an online agent that missed three heartbeats goes
// offline; an agent back online while still marked offline has its return announced. The
// changes are conditional, so when two ticks see the same agent, one announces it.
func (t *tick) agentHealth(ctx context.Context, agents []domain.Agent) {
	forEach(len(agents), t.cfg.Concurrency, func(i int) {
		a := agents[i]
		attrs := []any{"tenant_id", a.TenantID, "agent_id", a.ID}
		switch {
		case a.Status != domain.AgentOnline:
		case a.Silent(t.now):
			var evs []events.Event
			if a.OfflineSince != nil && a.LastSeenAt != nil {
				// It came back and fell silent again between two looks: both are news.
				evs = append(evs, events.NewAgentOnline(*a.LastSeenAt, a, *a.LastSeenAt))
			}
			evs = append(evs, events.NewAgentOffline(t.now, a))
			changed, err := t.s.Store.SetAgentOffline(ctx, a, t.now, evs...)
			if err != nil {
				t.fail(ctx, "mark agent offline", err, attrs...)
				return
			}
			if !changed {
				return
			}
			t.count(func(s *Summary) { s.Offline++ })
			t.emit(evs...)
			t.log.InfoContext(ctx, "agent offline", append(attrs, "last_seen_at", a.LastSeenAt)...)
		case a.OfflineSince != nil && a.LastSeenAt != nil:
			ev := events.NewAgentOnline(t.now, a, *a.LastSeenAt)
			changed, err := t.s.Store.ClearAgentOffline(ctx, a, ev)
			if err != nil {
				t.fail(ctx, "record agent back online", err, attrs...)
				return
			}
			if !changed {
				return
			}
			t.count(func(s *Summary) { s.Online++ })
			t.emit(ev)
			t.log.InfoContext(ctx, "agent online again", append(attrs, "offline_since", a.OfflineSince)...)
		}
	})
}
