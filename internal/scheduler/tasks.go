package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// startWindow is how long a task has from NotBefore to start; a retry gets the same window
// from its retry time.
func (t *tick) startWindow(task domain.Task) time.Duration {
	if w := task.Deadline.Sub(task.NotBefore); w > 0 {
		return w
	}
	return t.cfg.StartWithin
}

// expireBy returns when a due task can no longer start, and whether the tick should expire
// it: pending and queued tasks at their deadline, a retry one start window after its retry
// time (its original deadline may have passed while it waited for that time).
func (t *tick) expireBy(task domain.Task) (time.Time, bool) {
	switch task.Status {
	case domain.TaskPending, domain.TaskQueued:
		return task.Deadline, true
	case domain.TaskRetrying:
		at := task.NotBefore
		if task.NextRetryAt != nil {
			at = *task.NextRetryAt
		}
		return at.Add(t.startWindow(task)), true
	}
	return time.Time{}, false
}

// expireTasks expires the due tasks whose time to start has passed and returns the others.
func (t *tick) expireTasks(ctx context.Context, tasks []domain.Task) []domain.Task {
	var live, expire []domain.Task
	for _, task := range tasks {
		if by, ok := t.expireBy(task); ok && !t.now.Before(by) {
			expire = append(expire, task)
			continue
		}
		if task.Status == domain.TaskPending || task.Status == domain.TaskRetrying {
			live = append(live, task)
		}
	}
	forEach(len(expire), t.cfg.Concurrency, func(i int) {
		task := expire[i]
		by, _ := t.expireBy(task)
		_, evs, err := t.s.Store.TransitionTaskWith(ctx, task.TenantID, task.ID, domain.TaskExpired, func(st *domain.Task) {
			now := t.now
			st.FinishedAt, st.NextRetryAt = &now, nil
			st.Error = fmt.Sprintf("not started by %s", by.UTC().Format(time.RFC3339))
		}, func(expired domain.Task) []events.Event { return []events.Event{events.NewTaskExpired(t.now, expired)} })
		var te *domain.TransitionError
		switch {
		case errors.As(err, &te), errors.Is(err, domain.ErrNotFound):
			// Started, cancelled or expired by another tick meanwhile.
			return
		case err != nil:
			t.fail(ctx, "expire task", err, "tenant_id", task.TenantID, "agent_id", task.AgentID, "task_id", task.ID)
			return
		}
		t.count(func(s *Summary) { s.Expired++ })
		t.emit(evs...)
		t.log.InfoContext(ctx, "task expired", "tenant_id", task.TenantID, "agent_id", task.AgentID, "task_id", task.ID, "status_was", string(task.Status))
	})
	return live
}

// blocked says why an agent cannot take work now — a kind for the summary and a reason for the
// slot — or "" when it can.
func blocked(a domain.Agent, now time.Time) (kind, reason string) {
	if offline(a, now) {
		return waitOffline, reasonOffline
	}
	return backingOff(a.BackoffUntil, a.BackoffReason, now)
}

const reasonOffline = "agent offline"

// offline reports whether an agent is offline, or silent and about to be marked so.
func offline(a domain.Agent, now time.Time) bool {
	return a.Status != domain.AgentOnline || a.Silent(now)
}

// backingOff says why an agent that asked for no work until `until` cannot take work now, or ""
// when it can.
func backingOff(until *time.Time, why string, now time.Time) (kind, reason string) {
	if until == nil || !now.Before(*until) {
		return "", ""
	}
	reason = "agent backing off until " + until.UTC().Format(time.RFC3339)
	if why != "" {
		reason += ": " + why
	}
	return waitBackingOff, reason
}

// Kinds of waiting, as the summary counts them.
const (
	waitOffline       = "offline"
	waitBackingOff    = "backing_off"
	waitSaturated     = "saturated"
	waitUnschedulable = "unschedulable"
)

// pendingToSend decides about a due pending task: it is sent unless whoever created it may
// still be sending it, or its agent cannot take work now (it then stays pending, and due, until
// the agent can or its deadline passes). A pending task occupies its agent already, so it needs
// no capacity. An agent that is gone is left to the dispatcher, which fails the task.
func (t *tick) pendingToSend(task domain.Task) (domain.Task, bool) {
	if task.UpdatedAt.After(t.now.Add(-t.cfg.PendingGrace)) {
		return domain.Task{}, false
	}
	if a, ok := t.agents[store.AgentRef{TenantID: task.TenantID, AgentID: task.AgentID}]; ok {
		if kind, _ := blocked(a, t.now); kind != "" {
			t.wait(kind)
			return domain.Task{}, false
		}
	}
	return task, true
}

// failedTries counts a task's failed attempts. Attempts its agent interrupted (a reboot, a
// shutdown) are not failures, as the agent API counts them.
func failedTries(task domain.Task) int {
	n := 0
	for _, a := range task.Attempts {
		if a.Status == domain.TaskFailed {
			n++
		}
	}
	return n
}

// retryToSend prepares a due retry: the task's own retry budget is checked once more (a task
// whose budget is spent fails for good), and the try gets a fresh start window from now. Its
// agent's capacity is decided with the slots (planWork).
func (t *tick) retryToSend(ctx context.Context, task domain.Task) (domain.Task, bool) {
	counted := task
	counted.Attempt = failedTries(task)
	// The agent's hourly budget was spent when the retry was decided (reporting.Result); only
	// the task's own budget is checked here, so the hourly budget is not counted twice.
	if !schedule.RetryAllowed(counted, 0, 1) {
		t.failForGood(ctx, task, fmt.Sprintf("not retried: %d of %d tries failed", counted.Attempt, task.MaxRetries+1))
		return domain.Task{}, false
	}
	window := t.startWindow(task)
	task.NotBefore, task.Deadline = t.now, t.now.Add(window)
	return task, true
}

// failForGood fails a task that will not be tried again, and announces it.
func (t *tick) failForGood(ctx context.Context, task domain.Task, why string) {
	_, evs, err := t.s.Store.TransitionTaskWith(ctx, task.TenantID, task.ID, domain.TaskFailed, func(st *domain.Task) {
		now := t.now
		st.FinishedAt, st.NextRetryAt = &now, nil
		if st.Error != "" {
			st.Error += " (" + why + ")"
		} else {
			st.Error = why
		}
	}, func(failed domain.Task) []events.Event { return []events.Event{events.NewTaskFailed(t.now, failed)} })
	var te *domain.TransitionError
	switch {
	case errors.As(err, &te), errors.Is(err, domain.ErrNotFound):
		return
	case err != nil:
		t.fail(ctx, "fail task", err, "tenant_id", task.TenantID, "agent_id", task.AgentID, "task_id", task.ID)
		return
	}
	t.count(func(s *Summary) { s.Failed++ })
	t.emit(evs...)
	t.log.InfoContext(ctx, "task failed for good", "tenant_id", task.TenantID, "agent_id", task.AgentID, "task_id", task.ID, "reason", why)
}
