package scheduler

import (
	"context"
	"errors"

	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// claim claims the planned slots, groups of claims in parallel, and returns the tasks of the
// claims won. A group is what one transaction holds (store.GroupClaims): whole agents, whose
// claims share the update of the agent's capacity item. Claims are not started once the context is within ClaimReserve of its deadline:
// their slots stay due for the next tick, and the time left goes to sending what was claimed.
func (t *tick) claim(ctx context.Context, claims []store.Claim) []domain.Task {
	claimCtx := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		claimCtx, cancel = context.WithDeadline(ctx, deadline.Add(-t.cfg.ClaimReserve))
		defer cancel()
	}
	groups := store.GroupClaims(claims)
	won := make([][]domain.Task, len(groups))
	forEach(len(groups), t.cfg.Concurrency, func(g int) {
		if claimCtx.Err() != nil {
			return
		}
		batch := groups[g]
		for i, res := range t.s.Store.ClaimSlots(ctx, batch) {
			c := batch[i]
			switch {
			case res.Err != nil:
				t.fail(ctx, "claim slot", res.Err, "tenant_id", c.Slot.TenantID, "agent_id", c.Slot.AgentID, "policy_id", c.Slot.PolicyID, "kind", string(c.Slot.Kind))
			case res.Won:
				won[g] = append(won[g], c.Task)
			default:
				t.count(func(s *Summary) { s.Lost++ })
			}
		}
	})
	if claimCtx.Err() != nil && ctx.Err() == nil {
		t.log.WarnContext(ctx, "tick ran out of time: some due slots wait for the next tick")
	}
	var out []domain.Task
	for _, w := range won {
		out = append(out, w...)
	}
	t.count(func(s *Summary) { s.Claimed += len(out) })
	return out
}

// origin says why a task is sent, for the summary.
type origin int

const (
	fromClaim origin = iota
	fromPending
	fromRetry
)

// send sends the claimed, pending and retried tasks in one go: the dispatcher groups them by
// queue, sends 10 per request and marks them queued. Tasks that cannot be sent stay pending (or
// retrying) and due; tasks that can never be sent are failed by the dispatcher and announced
// here.
func (t *tick) send(ctx context.Context, claimed, pending, retries []domain.Task) {
	var tasks []domain.Task
	var origins []origin
	for _, group := range []struct {
		tasks []domain.Task
		o     origin
	}{{claimed, fromClaim}, {pending, fromPending}, {retries, fromRetry}} {
		for _, task := range group.tasks {
			tasks = append(tasks, task)
			origins = append(origins, group.o)
		}
	}
	if len(tasks) == 0 {
		return
	}
	known := dispatch.Known{Agents: map[string]domain.Agent{}, Policies: map[string]domain.Policy{}}
	for ref, a := range t.agents {
		known.Agents[dispatch.AgentKey(ref.TenantID, ref.AgentID)] = a
	}
	for ref, p := range t.policies {
		known.Policies[dispatch.PolicyKey(ref.TenantID, ref.PolicyID)] = p
	}
	for i, res := range t.s.Sender.SendKnown(ctx, tasks, known) {
		task := tasks[i]
		attrs := []any{"tenant_id", task.TenantID, "agent_id", task.AgentID, "task_id", task.ID}
		switch {
		case res.Queued:
			t.count(func(s *Summary) {
				s.Dispatched++
				switch origins[i] {
				case fromPending:
					s.Resent++
				case fromRetry:
					s.Retried++
				}
			})
		case res.Failed:
			t.count(func(s *Summary) { s.Failed++ })
			t.emit(res.Events...)
			t.log.WarnContext(ctx, "task can never be sent: failed", append(attrs, "error", res.Err)...)
		default:
			t.count(func(s *Summary) { s.Unsent++ })
			if res.Err != nil && !errors.Is(res.Err, context.Canceled) {
				t.fail(ctx, "send task; the next tick sends it again", res.Err, attrs...)
			}
		}
	}
}
