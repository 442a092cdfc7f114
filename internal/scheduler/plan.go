package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// limitClass is the per-type limit a task of limit type lt (domain.LimitType) counts against;
// types without a per-type limit have none ("").
func limitClass(lt domain.TaskType) domain.TaskType {
	switch lt {
	case domain.TaskBackup, domain.TaskCheck, domain.TaskPrune:
		return lt
	}
	return ""
}

// capacity is what an agent can still take: its limits less its active tasks.
type capacity struct {
	limits domain.Limits
	total  int
	byType map[domain.TaskType]int
}

func newCapacity(l domain.Limits, active []store.ActiveTask) *capacity {
	c := &capacity{limits: l, byType: map[domain.TaskType]int{}}
	for _, task := range active {
		c.total++
		if class := limitClass(task.Type); class != "" {
			c.byType[class]++
		}
	}
	return c
}

// take books one task of type tt with params p, or says why the agent cannot take it. The
// reasons do not change while the limits stay, so a waiting slot is written once.
func (c *capacity) take(tt domain.TaskType, p domain.TaskParams) string {
	limit := max(c.limits.MaxConcurrentTasks, 1)
	if c.total >= limit {
		return fmt.Sprintf("agent saturated: maxConcurrentTasks is %d", limit)
	}
	class := limitClass(domain.LimitType(tt, p))
	if n, ok := c.limits.PerType[class]; ok && class != "" && c.byType[class] >= n {
		return fmt.Sprintf("agent at its %s limit of %d", class, n)
	}
	c.total++
	if class != "" {
		c.byType[class]++
	}
	return ""
}

// kindOf maps the task type of a policy's recurring task to its slot kind.
var kindOf = map[domain.TaskType]domain.SlotKind{
	domain.TaskBackup: domain.SlotBackup,
	domain.TaskForget: domain.SlotForget,
	domain.TaskCheck:  domain.SlotCheck,
	domain.TaskStats:  domain.SlotStats,
}

// kindRank orders the slots of an agent that fall due together: backups matter most.
var kindRank = map[domain.SlotKind]int{domain.SlotBackup: 0, domain.SlotForget: 1, domain.SlotCheck: 2, domain.SlotStats: 3}

// recurring returns the policy's recurring task for a slot kind.
func recurring(p domain.Policy, kind domain.SlotKind) (schedule.Slot, bool) {
	for _, r := range schedule.Slots(p) {
		if kindOf[r.Type] == kind {
			return r, true
		}
	}
	return schedule.Slot{}, false
}

// unschedulable says why a slot cannot run even on an agent with room, or "".
func unschedulable(sl domain.Slot, p domain.Policy, found bool) string {
	switch {
	case !found:
		return "policy not found"
	case !p.Enabled:
		return "policy disabled"
	}
	if _, ok := recurring(p, sl.Kind); !ok {
		return fmt.Sprintf("policy has no %s schedule", sl.Kind)
	}
	return ""
}

// runWindow is how long a policy's scheduled task has to start.
func runWindow(p domain.Policy, fallback time.Duration) time.Duration {
	if p.RunDeadline != "" {
		if d, err := domain.ParseDuration(p.RunDeadline); err == nil && d > 0 {
			return d
		}
	}
	return fallback
}

// buildClaim turns a due slot into its claim: the task for the run, the slot's next run time
// and, for a backup, when to check that the run succeeded.
func buildClaim(sl domain.Slot, p domain.Policy, now time.Time, cfg Config) (store.Claim, error) {
	rec, ok := recurring(p, sl.Kind)
	if !ok {
		return store.Claim{}, fmt.Errorf("policy %s has no %s schedule", p.ID, sl.Kind)
	}
	next, err := schedule.Advance(rec.Schedule, *sl.NextRunAt, now, sl.AgentID)
	switch {
	case errors.Is(err, schedule.ErrNoOccurrence):
		next = time.Time{} // the run claimed now is the schedule's last
	case err != nil:
		return store.Claim{}, fmt.Errorf("next %s run of policy %s: %w", sl.Kind, p.ID, err)
	}
	task := domain.Task{
		ID: domain.NewID(now), TenantID: sl.TenantID, AgentID: sl.AgentID, PolicyID: sl.PolicyID,
		Repository: p.Repository, Type: rec.Type, Status: domain.TaskPending, Params: rec.Params,
		Attempt: 1, MaxRetries: p.Retries(), NotBefore: now, Deadline: now.Add(runWindow(p, cfg.StartWithin)),
		Trigger: "schedule", CreatedAt: now, UpdatedAt: now,
	}
	c := store.Claim{Slot: sl, Next: next, Task: task}
	if sl.Kind == domain.SlotBackup {
		c.CheckAt = now.Add(cfg.OverdueGrace)
	}
	return c, nil
}

// work is what a tick asks of one agent.
type work struct {
	tenantID, agentID string
	slots             []domain.Slot
	retries           []domain.Task
}

// plan is what planWork decided: the slots to claim and the retries to send.
type plan struct {
	claims  []store.Claim
	retries []domain.Task
}

// waiting is a slot held back, and why.
type waiting struct {
	slot         domain.Slot
	kind, reason string
}

// planWork decides, agent by agent, which due slots to claim and which retries to send, and
// records why the others wait. What occupies the agents that may take work comes from their
// capacity items, read 100 at a time.
func (t *tick) planWork(ctx context.Context, slots []domain.Slot, retries []domain.Task) plan {
	byAgent := map[store.AgentRef]*work{}
	var order []store.AgentRef
	group := func(tenantID, agentID string) *work {
		ref := store.AgentRef{TenantID: tenantID, AgentID: agentID}
		w, ok := byAgent[ref]
		if !ok {
			w = &work{tenantID: tenantID, agentID: agentID}
			byAgent[ref] = w
			order = append(order, ref)
		}
		return w
	}
	for _, sl := range slots {
		w := group(sl.TenantID, sl.AgentID)
		w.slots = append(w.slots, sl)
	}
	for _, r := range retries {
		w := group(r.TenantID, r.AgentID)
		w.retries = append(w.retries, r)
	}

	claims := make([][]store.Claim, len(order))
	sends := make([][]domain.Task, len(order))
	waits := make([][]waiting, len(order))
	var open []int // the agents that are there and online: their capacity decides
	for i, ref := range order {
		var ok bool
		if sends[i], waits[i], ok = t.screenAgent(byAgent[ref]); ok {
			open = append(open, i)
		}
	}
	refs := make([]store.AgentRef, len(open))
	for j, i := range open {
		refs[j] = order[i]
	}
	capacities, err := t.s.Store.GetCapacities(ctx, refs)
	if err != nil {
		// The agents whose capacity is missing below keep their work for the next tick.
		t.fail(ctx, "read capacities", err, "agents", len(refs))
	}
	forEach(len(open), t.cfg.Concurrency, func(j int) {
		i := open[j]
		c, found := capacities[order[i]]
		claims[i], sends[i], waits[i] = t.planAgent(ctx, byAgent[order[i]], c, found)
	})

	var p plan
	var all []waiting
	for i := range order {
		p.claims = append(p.claims, claims[i]...)
		p.retries = append(p.retries, sends[i]...)
		all = append(all, waits[i]...)
	}
	t.recordWaits(ctx, all)
	return p
}

// screenAgent decides about the work of an agent that is gone or offline, whatever its
// capacity. It reports false when it decided; true leaves the agent to planAgent.
func (t *tick) screenAgent(w *work) ([]domain.Task, []waiting, bool) {
	var waits []waiting
	a, found := t.agents[store.AgentRef{TenantID: w.tenantID, AgentID: w.agentID}]
	if !found {
		for _, sl := range w.slots {
			waits = append(waits, waiting{sl, waitUnschedulable, "agent not found"})
		}
		// The dispatcher fails a task whose agent is gone, saying so.
		return w.retries, waits, false
	}
	if offline(a, t.now) {
		for _, sl := range w.slots {
			waits = append(waits, waiting{sl, waitOffline, reasonOffline})
		}
		for range w.retries {
			t.wait(waitOffline)
		}
		return nil, waits, false
	}
	return nil, nil, true
}

// planAgent decides about the due slots and retries of an agent that is there and online, with
// what occupies it (c; found is false when it could not be read).
func (t *tick) planAgent(ctx context.Context, w *work, c store.Capacity, found bool) ([]store.Claim, []domain.Task, []waiting) {
	var waits []waiting
	if !found {
		// Without its active tasks the agent might be overloaded: its work waits for the next
		// tick, its slots with no new reason.
		return nil, nil, nil
	}
	if kind, reason := backingOff(c.BackoffUntil, c.BackoffReason, t.now); kind != "" {
		for _, sl := range w.slots {
			waits = append(waits, waiting{sl, kind, reason})
		}
		for range w.retries {
			t.wait(kind)
		}
		return nil, nil, waits
	}
	a := t.agents[store.AgentRef{TenantID: w.tenantID, AgentID: w.agentID}]

	type candidate struct {
		slot   domain.Slot
		policy domain.Policy
	}
	var runnable []candidate
	for _, sl := range w.slots {
		p, ok := t.policies[store.PolicyRef{TenantID: sl.TenantID, PolicyID: sl.PolicyID}]
		if reason := unschedulable(sl, p, ok); reason != "" {
			waits = append(waits, waiting{sl, waitUnschedulable, reason})
			continue
		}
		runnable = append(runnable, candidate{sl, p})
	}
	if len(runnable) == 0 && len(w.retries) == 0 {
		return nil, nil, waits
	}
	room := newCapacity(a.Limits, c.Active)

	// Retries first: their runs are older than any slot's.
	sort.SliceStable(w.retries, func(i, j int) bool { return w.retries[i].NotBefore.Before(w.retries[j].NotBefore) })
	var sends []domain.Task
	for _, r := range w.retries {
		if reason := room.take(r.Type, r.Params); reason != "" {
			t.wait(waitSaturated)
			continue
		}
		sends = append(sends, r)
	}
	// Oldest first; at the same time, a backup before a forget before a check.
	sort.SliceStable(runnable, func(i, j int) bool {
		a, b := runnable[i].slot, runnable[j].slot
		if !a.NextRunAt.Equal(*b.NextRunAt) {
			return a.NextRunAt.Before(*b.NextRunAt)
		}
		return kindRank[a.Kind] < kindRank[b.Kind]
	})
	var claims []store.Claim
	for _, c := range runnable {
		rec, _ := recurring(c.policy, c.slot.Kind)
		if reason := room.take(rec.Type, rec.Params); reason != "" {
			waits = append(waits, waiting{c.slot, waitSaturated, reason})
			continue
		}
		claim, err := buildClaim(c.slot, c.policy, t.now, t.cfg)
		if err != nil {
			t.fail(ctx, "plan slot", err, "tenant_id", c.slot.TenantID, "agent_id", c.slot.AgentID, "policy_id", c.slot.PolicyID, "kind", string(c.slot.Kind))
			continue
		}
		claims = append(claims, claim)
	}
	return claims, sends, waits
}

// recordWaits records on each held-back slot why it waits — only when the reason changed, so a
// slot that waits for hours is written once — and makes sure a backup that waits is checked for
// being overdue, in the same write. The records share transactions of up to 100 actions, groups
// of them in parallel.
func (t *tick) recordWaits(ctx context.Context, waits []waiting) {
	var changed []store.SlotWait
	for _, w := range waits {
		t.wait(w.kind)
		if w.slot.WaitReason == w.reason || w.slot.NextRunAt == nil {
			continue
		}
		sw := store.SlotWait{Slot: w.slot, Reason: w.reason}
		if w.slot.Kind == domain.SlotBackup && w.kind != waitUnschedulable {
			sw.CheckAt = w.slot.NextRunAt.Add(t.cfg.OverdueGrace)
			if sw.CheckAt.Before(t.now) {
				sw.CheckAt = t.now
			}
		}
		changed = append(changed, sw)
	}
	groups := store.GroupWaits(changed)
	forEach(len(groups), t.cfg.Concurrency, func(g int) {
		for i, res := range t.s.Store.SetSlotWaits(ctx, groups[g]) {
			sl := groups[g][i].Slot
			attrs := []any{"tenant_id", sl.TenantID, "agent_id", sl.AgentID, "policy_id", sl.PolicyID, "kind", string(sl.Kind)}
			switch {
			case res.Err != nil:
				t.fail(ctx, "record why a slot waits", res.Err, attrs...)
			case res.Recorded:
				t.log.InfoContext(ctx, "slot waits", append(attrs, "reason", groups[g][i].Reason)...)
			}
		}
	})
}
