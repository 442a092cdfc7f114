// Package dispatch sends tasks to their agents' queues. A task is written pending first and
// moved to queued only after its message was accepted, so a crash in between leaves it pending,
// in the due index, and the next scheduler tick sends it again. A message may therefore arrive
// twice; the agent API refuses to start a task that is already running or finished, and the
// agent drops such a message.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
)

// Store is what dispatching reads and writes.
type Store interface {
	GetAgent(ctx context.Context, tenantID, agentID string) (domain.Agent, error)
	GetPolicy(ctx context.Context, tenantID, policyID string) (domain.Policy, error)
	TransitionTask(ctx context.Context, tenantID, taskID string, to domain.TaskStatus, change func(*domain.Task)) (domain.Task, error)
}

// Sender sends message batches to a queue.
type Sender interface {
	SendBatch(ctx context.Context, queueURL string, msgs []queue.Outgoing) ([]queue.Failure, error)
}

// Dispatcher sends pending (and due retrying) tasks.
type Dispatcher struct {
	Store  Store
	Sender Sender
	Log    *slog.Logger
	// Now is the clock.
	Now func() time.Time
}

// Result says what became of one task.
type Result struct {
	TaskID string
	// Queued is true when the message was accepted and the task is now queued.
	Queued bool
	// Err explains why a task was not queued; the task then stays as it was, to be sent again,
	// unless it was failed for good (Failed).
	Err    error
	Failed bool
}

// Send sends each task's message to its agent's queue, in batches per queue, and marks the sent
// tasks queued. Tasks whose message cannot be built (the policy is gone, the message is invalid)
// are failed for good with the reason; tasks that could not be sent stay as they are.
func (d *Dispatcher) Send(ctx context.Context, tasks []domain.Task) []Result {
	results := make([]Result, len(tasks))
	type pending struct {
		idx int
		out queue.Outgoing
	}
	byQueue := map[string][]pending{}
	var order []string
	agents := map[string]domain.Agent{}
	policies := map[string]*domain.Policy{}
	for i, t := range tasks {
		results[i].TaskID = t.ID
		body, queueURL, err := d.message(ctx, t, agents, policies)
		if err != nil {
			var reject *events.RejectError
			if errors.As(err, &reject) || errors.Is(err, domain.ErrNotFound) {
				results[i].Err, results[i].Failed = err, d.fail(ctx, t, err)
			} else {
				results[i].Err = err
			}
			continue
		}
		if _, ok := byQueue[queueURL]; !ok {
			order = append(order, queueURL)
		}
		byQueue[queueURL] = append(byQueue[queueURL], pending{idx: i, out: queue.Outgoing{ID: t.ID, Body: string(body),
			Attributes: map[string]string{"taskType": string(t.Type)}}})
	}
	for _, url := range order {
		batch := byQueue[url]
		msgs := make([]queue.Outgoing, len(batch))
		for i, p := range batch {
			msgs[i] = p.out
		}
		failures, err := d.Sender.SendBatch(ctx, url, msgs)
		failed := map[string]string{}
		for _, f := range failures {
			failed[f.ID] = f.Code + " " + f.Message
		}
		for _, p := range batch {
			if reason, ok := failed[p.out.ID]; ok {
				results[p.idx].Err = fmt.Errorf("send task %s: %s", p.out.ID, reason)
				if err != nil {
					results[p.idx].Err = fmt.Errorf("send task %s: %w", p.out.ID, err)
				}
				continue
			}
			t := tasks[p.idx]
			if _, terr := d.Store.TransitionTask(ctx, t.TenantID, t.ID, domain.TaskQueued, nil); terr != nil {
				// The message is out; the agent may already have started the task, which is
				// what a transition error here means. Either way nothing is lost.
				var te *domain.TransitionError
				if !errors.As(terr, &te) {
					results[p.idx].Err = terr
					continue
				}
			}
			results[p.idx].Queued = true
		}
	}
	return results
}

// message builds a task's message and finds its agent's queue.
func (d *Dispatcher) message(ctx context.Context, t domain.Task, agents map[string]domain.Agent, policies map[string]*domain.Policy) ([]byte, string, error) {
	ak := t.TenantID + "/" + t.AgentID
	a, ok := agents[ak]
	if !ok {
		var err error
		if a, err = d.Store.GetAgent(ctx, t.TenantID, t.AgentID); err != nil {
			return nil, "", err
		}
		agents[ak] = a
	}
	if a.QueueURL == "" {
		return nil, "", fmt.Errorf("agent %s has no queue: %w", a.ID, domain.ErrNotFound)
	}
	var policy *domain.Policy
	if t.PolicyID != "" {
		pk := t.TenantID + "/" + t.PolicyID
		policy, ok = policies[pk]
		if !ok {
			p, err := d.Store.GetPolicy(ctx, t.TenantID, t.PolicyID)
			if err != nil {
				return nil, "", err
			}
			policy = &p
			policies[pk] = policy
		}
	}
	msg, err := events.NewTaskMessage(t, policy)
	if err != nil {
		return nil, "", err
	}
	body, err := msg.Encode()
	if err != nil {
		return nil, "", err
	}
	return body, a.QueueURL, nil
}

// fail marks a task that can never be sent as failed, with the reason.
func (d *Dispatcher) fail(ctx context.Context, t domain.Task, reason error) bool {
	_, err := d.Store.TransitionTask(ctx, t.TenantID, t.ID, domain.TaskFailed, func(t *domain.Task) {
		t.Error = "cannot be sent: " + reason.Error()
		now := d.Now().UTC()
		t.FinishedAt = &now
	})
	if err != nil && d.Log != nil {
		d.Log.WarnContext(ctx, "could not fail an unsendable task", "tenant_id", t.TenantID, "task_id", t.ID, "error", err)
	}
	return err == nil
}
