package scheduler

import (
	"context"
	"time"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// Bounds of the time between two looks at an overdue slot. The longer a slot has been overdue,
// the less often it is looked at, so a host that is gone for good costs little.
const (
	minRecheck = 15 * time.Minute
	maxRecheck = 6 * time.Hour
)

// recheckAfter is when an overdue slot whose watched run was planned at plannedAt is looked at
// again: after as long as it has been overdue, within the bounds.
func recheckAfter(now, plannedAt time.Time) time.Time {
	return now.Add(min(max(now.Sub(plannedAt), minRecheck), maxRecheck))
}

// overdueVerdict is what a due overdue check finds.
type overdueVerdict int

const (
	verdictGone    overdueVerdict = iota // nothing to watch any more: the slot, its policy or its schedule is gone
	verdictOnTime                        // the slot succeeded as its schedule allows
	verdictOverdue                       // it did not
)

// judge applies schedule.Overdue to a checked slot. A slot that never succeeded is judged from
// the run the check watches, the first one known to be expected of it.
func judge(c store.OverdueCheck, sl domain.Slot, slotFound bool, p domain.Policy, policyFound bool, now time.Time, grace time.Duration) (overdueVerdict, error) {
	if !slotFound || !policyFound || !p.Enabled {
		return verdictGone, nil
	}
	rec, ok := recurring(p, sl.Kind)
	if !ok {
		return verdictGone, nil
	}
	overdue, err := schedule.Overdue(rec.Schedule, sl.LastSuccessAt, c.PlannedAt.Add(-time.Nanosecond), now, grace, sl.AgentID)
	if err != nil {
		return verdictGone, err
	}
	if overdue {
		return verdictOverdue, nil
	}
	return verdictOnTime, nil
}

// overdueChecks handles the due overdue checks.
func (t *tick) overdueChecks(ctx context.Context, checks []store.OverdueCheck) {
	forEach(len(checks), t.cfg.Concurrency, func(i int) {
		c := checks[i]
		attrs := []any{"tenant_id", c.TenantID, "agent_id", c.AgentID, "policy_id", c.PolicyID, "kind", string(c.Kind)}
		sl, slotFound := t.slots[c.Ref()]
		p, policyFound := t.policies[store.PolicyRef{TenantID: c.TenantID, PolicyID: c.PolicyID}]
		verdict, err := judge(c, sl, slotFound, p, policyFound, t.now, t.cfg.OverdueGrace)
		if err != nil {
			t.fail(ctx, "judge whether a slot is overdue", err, attrs...)
			return
		}
		switch verdict {
		case verdictOverdue:
			if c.Announced {
				if err := t.s.Store.RecheckOverdue(ctx, c, recheckAfter(t.now, c.PlannedAt)); err != nil {
					t.fail(ctx, "recheck an overdue slot", err, attrs...)
				}
				return
			}
			marked := sl
			marked.Overdue = true
			ev := events.NewSlotOverdue(t.now, marked)
			announced, err := t.s.Store.AnnounceOverdue(ctx, c, sl.LastSuccessAt, recheckAfter(t.now, c.PlannedAt), ev)
			if err != nil {
				t.fail(ctx, "mark slot overdue", err, attrs...)
				return
			}
			if announced {
				t.count(func(s *Summary) { s.Overdue++ })
				t.emit(ev)
				t.log.WarnContext(ctx, "slot overdue", append(attrs, "last_success_at", sl.LastSuccessAt, "planned_at", c.PlannedAt)...)
			}
		default:
			// A recovery is announced only for a slot that was announced overdue, and only when
			// it did succeed (not when it was removed).
			recovered := c.Announced && verdict == verdictOnTime && sl.LastSuccessAt != nil
			var evs []events.Event
			if recovered {
				evs = append(evs, events.NewSlotRecovered(t.now, sl, *sl.LastSuccessAt))
			}
			ended, err := t.s.Store.EndOverdueCheck(ctx, c, recovered, evs...)
			if err != nil {
				t.fail(ctx, "end an overdue check", err, attrs...)
				return
			}
			if ended && recovered {
				t.count(func(s *Summary) { s.Recovered++ })
				t.emit(evs...)
				t.log.InfoContext(ctx, "slot recovered", append(attrs, "last_success_at", sl.LastSuccessAt)...)
			}
		}
	})
}
