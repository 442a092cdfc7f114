package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// A running task is in the due index at its CheckRunningAt. When that comes, the tick judges
// whether its agent still runs it (judgeRunning) and either moves the check on (recording on
// the run when heartbeats were first seen to leave it out) or gives the task up as lost: the
// task fails for good ("agent lost: …"), its run and attempt end interrupted (the run marked
// LostAt, so a result the agent reports later is still recorded on it), its slot is due again,
// and task.lost is announced.

// runningVerdict is what a look at a running task finds.
type runningVerdict struct {
	lost   bool
	reason events.LostReason
	why    string
	// listed is when the agent last reported the task running.
	listed time.Time
	// next is when to look again, unless lost.
	next time.Time
	// unlisted, when set, is a heartbeat that left the run out, to be recorded on the run
	// (Run.UnlistedAt): the redelivery window runs from there.
	unlisted *time.Time
}

// lostRules are the graces judgeRunning allows.
type lostRules struct {
	offline    time.Duration
	redelivery time.Duration
}

// lastListed is when the task's run was last reported running: the last heartbeat that listed
// it, else its start.
func lastListed(task domain.Task, run *domain.Run) time.Time {
	switch {
	case run != nil && run.LastListedAt != nil && run.LastListedAt.After(run.StartedAt):
		return *run.LastListedAt
	case run != nil:
		return run.StartedAt
	case task.StartedAt != nil:
		return *task.StartedAt
	}
	return task.UpdatedAt
}

// judgeRunning decides at now whether the agent a of a running task is lost. A running task's
// deadline, the moment it counts as lost, depends on its agent:
//   - for an agent that keeps sending heartbeats: the redelivery window after the first
//     heartbeat that left the task out once its ListingGrace (three heartbeat intervals) after
//     the last listing had passed. The grace keeps a heartbeat that is merely late, or was built
//     before the task started, from counting; the window gives an agent that restarted (or
//     came back after an outage) without the task the time to get the task's message back from
//     its queue and start it anew, as a new attempt. A heartbeat after the window that still
//     leaves it out shows the agent runs it no more: the task is lost.
//   - for an agent the scheduler marked offline: the offline grace after it went offline (and
//     no earlier than the listing grace). restic runs on without the control plane and the
//     agent spools its result, so an outage shorter than that fails nothing.
//   - for an agent that no longer exists: at once.
//
// An online agent that has not been heard from since the listing grace ran out is left to go
// offline; the task is looked at again one heartbeat interval later.
func judgeRunning(task domain.Task, run *domain.Run, a domain.Agent, agentFound bool, now time.Time, rules lostRules) runningVerdict {
	v := runningVerdict{listed: lastListed(task, run)}
	listed := stamp(v.listed)
	lose := func(reason events.LostReason, why string) runningVerdict {
		v.lost, v.reason, v.why = true, reason, "agent lost: "+why
		return v
	}
	if !agentFound {
		return lose(events.LostAgentDeleted, "the agent was deleted while running the task; last listed at "+listed)
	}
	unlistedAt := v.listed.Add(a.ListingGrace())
	if a.Status != domain.AgentOnline {
		since := v.listed
		if a.OfflineSince != nil {
			since = *a.OfflineSince
		}
		lostAt := since.Add(rules.offline)
		if lostAt.Before(unlistedAt) {
			lostAt = unlistedAt
		}
		if !now.Before(lostAt) {
			return lose(events.LostAgentOffline, fmt.Sprintf("offline since %s, more than %s, while running the task; last listed at %s",
				stamp(since), rules.offline, listed))
		}
		v.next = lostAt
		return v
	}
	// Look again when the first heartbeat that can tell is due: one interval after from.
	after := func(from time.Time) time.Time {
		if now.After(from) {
			from = now
		}
		return from.Add(a.HeartbeatInterval())
	}
	if a.LastSeenAt == nil || !a.LastSeenAt.After(unlistedAt) {
		v.next = after(unlistedAt)
		return v
	}
	// The agent beats on without the task. The heartbeats are written after the runs they
	// list, so the one on the agent did leave the run out.
	seen := *a.LastSeenAt
	var missed time.Time
	switch {
	case run == nil:
		// Nowhere to record the miss (the run is gone): the window runs from the grace's end.
		missed = unlistedAt
	case run.UnlistedAt != nil && run.UnlistedAt.After(v.listed):
		missed = *run.UnlistedAt
	default:
		// First seen left out (or listed again since the last miss).
		v.unlisted = &seen
		v.next = after(seen.Add(rules.redelivery))
		return v
	}
	if seen.After(missed.Add(rules.redelivery)) {
		return lose(events.LostNotListed, fmt.Sprintf("its heartbeats stopped listing the task: last listed at %s, left out since %s, last heartbeat at %s",
			listed, stamp(missed), stamp(seen)))
	}
	v.next = after(missed.Add(rules.redelivery))
	return v
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// watchRunning looks at the due running tasks: each is either given up as lost or checked again
// later. Every change is one UpdateTaskRun, conditional on the task and its run as read: a
// result or a heartbeat that lands meanwhile makes the decision be taken again on what it
// wrote, so a task is never both finished by its agent and lost, and is announced once.
func (t *tick) watchRunning(ctx context.Context, tasks []domain.Task) {
	forEach(len(tasks), t.cfg.Concurrency, func(i int) {
		task := tasks[i]
		attrs := []any{"tenant_id", task.TenantID, "agent_id", task.AgentID, "task_id", task.ID}
		a, found := t.agents[store.AgentRef{TenantID: task.TenantID, AgentID: task.AgentID}]
		var v runningVerdict
		ch, err := t.s.Store.UpdateTaskRun(ctx, task.TenantID, task.ID, "", func(cur domain.Task, run *domain.Run) (store.TaskRunChange, error) {
			v = runningVerdict{}
			if cur.Status != domain.TaskRunning {
				// It ended meanwhile.
				return store.TaskRunChange{}, nil
			}
			v = judgeRunning(cur, run, a, found, t.now, lostRules{offline: t.cfg.OfflineGrace, redelivery: t.cfg.RedeliveryWindow})
			if v.lost {
				return t.loseChange(ctx, cur, run, v)
			}
			var ch store.TaskRunChange
			if v.unlisted != nil && run != nil {
				r := *run
				r.UnlistedAt = v.unlisted
				ch.Run = &r
			}
			if ch.Run == nil && cur.CheckRunningAt != nil && cur.CheckRunningAt.Equal(v.next) {
				return store.TaskRunChange{}, nil
			}
			cur.CheckRunningAt = &v.next
			ch.Task = &cur
			return ch, nil
		})
		switch {
		case errors.Is(err, domain.ErrNotFound):
			return
		case err != nil:
			t.fail(ctx, "check a running task", err, attrs...)
			return
		case !v.lost || ch.Task == nil:
			return
		}
		lost := *ch.Task
		t.count(func(s *Summary) { s.TasksLost++; s.Failed++ })
		t.emit(ch.Events...)
		t.log.WarnContext(ctx, "task lost", append(attrs, "run_id", lost.RunID, "reason", string(v.reason), "error", lost.Error,
			"slot_due_again", ch.Requeue != nil)...)
	})
}

// loseChange is what giving a task up as lost writes: the task fails for good, its run and its
// attempt end interrupted — nobody knows how the run ended — and its slot, if the task was the
// slot's latest run, is due at once, to be dispatched again as soon as the agent can take it.
func (t *tick) loseChange(ctx context.Context, task domain.Task, run *domain.Run, v runningVerdict) (store.TaskRunChange, error) {
	now := t.now
	task.Status, task.FinishedAt, task.NextRetryAt, task.Error = domain.TaskFailed, &now, nil, v.why
	task.CheckRunningAt = nil
	for i := range task.Attempts {
		at := &task.Attempts[i]
		if at.Status == domain.TaskRunning && at.RunID == task.RunID {
			at.Status, at.FinishedAt, at.Error = domain.RunInterrupted, &now, v.why
		}
	}
	ch := store.TaskRunChange{Task: &task}
	if run != nil && run.Status == domain.TaskRunning {
		r := *run
		r.Status, r.FinishedAt, r.Error, r.LostAt = domain.RunInterrupted, &now, v.why, &now
		ch.Run = &r
	}
	rq, err := t.requeue(ctx, task)
	if err != nil {
		return store.TaskRunChange{}, err
	}
	ch.Requeue = rq
	ch.Events = []events.Event{events.NewTaskLost(t.now, task, v.reason, v.listed)}
	return ch, nil
}

// requeue says how to make the slot of a lost task due again: only a policy's recurring task
// that is still its slot's latest run, whose slot is not due already.
func (t *tick) requeue(ctx context.Context, task domain.Task) (*store.SlotRequeue, error) {
	kind, ok := kindOf[task.Type]
	if task.PolicyID == "" || !ok {
		return nil, nil
	}
	sl, err := t.s.Store.GetSlot(ctx, task.TenantID, task.PolicyID, task.AgentID, kind)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	if sl.LastTaskID != task.ID || sl.NextRunAt == nil || !sl.NextRunAt.After(t.now) {
		return nil, nil
	}
	return &store.SlotRequeue{Slot: sl, At: t.now}, nil
}
