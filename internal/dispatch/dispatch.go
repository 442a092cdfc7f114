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
	"sync"
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
	TransitionTaskWith(ctx context.Context, tenantID, taskID string, to domain.TaskStatus, change func(*domain.Task), announce func(domain.Task) []events.Event) (domain.Task, []events.Event, error)
}

// QueuedMarker is a Store that records many sent tasks as queued in a few requests. The result
// has one error per task, nil when it was marked, a *domain.TransitionError when the task had
// moved on. A Store without it has each task moved with TransitionTask.
type QueuedMarker interface {
	MarkTasksQueued(ctx context.Context, tasks []domain.Task) []error
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
	// Concurrency is how many queues are sent to at once (0: DefaultConcurrency).
	Concurrency int
}

// DefaultConcurrency is how many queues a Dispatcher sends to at once unless told otherwise.
const DefaultConcurrency = 16

// Known holds agents and policies a caller has read already, so that sending does not read them
// again. Keys come from AgentKey and PolicyKey.
type Known struct {
	Agents   map[string]domain.Agent
	Policies map[string]domain.Policy
}

// AgentKey is an agent's key in Known.Agents.
func AgentKey(tenantID, agentID string) string { return tenantID + "/" + agentID }

// PolicyKey is a policy's key in Known.Policies.
func PolicyKey(tenantID, policyID string) string { return tenantID + "/" + policyID }

// Result says what became of one task.
type Result struct {
	TaskID string
	// Queued is true when the message was accepted and the task is now queued.
	Queued bool
	// Err explains why a task was not queued; the task then stays as it was, to be sent again,
	// unless it was failed for good (Failed).
	Err    error
	Failed bool
	// Events are those recorded with the failure: the task's task.failed.
	Events []events.Event
}

// Send sends each task's message to its agent's queue, in batches per queue, and marks the sent
// tasks queued. Tasks whose message cannot be built (the policy is gone, the message is invalid)
// are failed for good with the reason; tasks that could not be sent stay as they are.
//
// A task is sent as given: a retry may carry a new NotBefore and Deadline, which its message
// carries and which are stored when it is marked queued.
func (d *Dispatcher) Send(ctx context.Context, tasks []domain.Task) []Result {
	return d.SendKnown(ctx, tasks, Known{})
}

// SendKnown is Send with agents and policies the caller has read already; only those missing
// from known are read.
func (d *Dispatcher) SendKnown(ctx context.Context, tasks []domain.Task, known Known) []Result {
	results := make([]Result, len(tasks))
	type pending struct {
		idx int
		out queue.Outgoing
	}
	byQueue := map[string][]pending{}
	var order []string
	agents := map[string]domain.Agent{}
	for k, a := range known.Agents {
		agents[k] = a
	}
	policies := map[string]*domain.Policy{}
	for k, p := range known.Policies {
		policies[k] = &p
	}
	for i, t := range tasks {
		results[i].TaskID = t.ID
		body, queueURL, err := d.message(ctx, t, agents, policies)
		if err != nil {
			var reject *events.RejectError
			if errors.As(err, &reject) || errors.Is(err, domain.ErrNotFound) {
				results[i].Err = err
				results[i].Events, results[i].Failed = d.fail(ctx, t, err)
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
	// Queues are sent to concurrently; each result is written by the one goroutine that owns
	// its queue, and sent collects the indexes of the tasks whose message went out.
	var (
		mu   sync.Mutex
		sent []int
		wg   sync.WaitGroup
	)
	work := make(chan string)
	for range min(d.concurrency(), len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for url := range work {
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
				var ok []int
				for _, p := range batch {
					if reason, isFailed := failed[p.out.ID]; isFailed {
						results[p.idx].Err = fmt.Errorf("send task %s: %s", p.out.ID, reason)
						if err != nil {
							results[p.idx].Err = fmt.Errorf("send task %s: %w", p.out.ID, err)
						}
						continue
					}
					ok = append(ok, p.idx)
				}
				mu.Lock()
				sent = append(sent, ok...)
				mu.Unlock()
			}
		}()
	}
	for _, url := range order {
		work <- url
	}
	close(work)
	wg.Wait()
	d.markQueued(ctx, tasks, sent, results)
	return results
}

func (d *Dispatcher) concurrency() int {
	if d.Concurrency > 0 {
		return d.Concurrency
	}
	return DefaultConcurrency
}

// markQueued records the tasks at the indexes sent as queued. The messages are out: a task that
// moved on meanwhile (its agent may already have started it, which is what a transition error
// means here) counts as queued too. Nothing is lost either way.
func (d *Dispatcher) markQueued(ctx context.Context, tasks []domain.Task, sent []int, results []Result) {
	if len(sent) == 0 {
		return
	}
	errs := make([]error, len(sent))
	if m, ok := d.Store.(QueuedMarker); ok {
		batch := make([]domain.Task, len(sent))
		for i, idx := range sent {
			batch[i] = tasks[idx]
		}
		errs = m.MarkTasksQueued(ctx, batch)
	} else {
		for i, idx := range sent {
			t := tasks[idx]
			_, errs[i] = d.Store.TransitionTask(ctx, t.TenantID, t.ID, domain.TaskQueued, func(stored *domain.Task) {
				stored.NotBefore, stored.Deadline, stored.NextRetryAt = t.NotBefore, t.Deadline, nil
			})
		}
	}
	for i, idx := range sent {
		var te *domain.TransitionError
		if errs[i] != nil && !errors.As(errs[i], &te) {
			results[idx].Err = errs[i]
			continue
		}
		results[idx].Queued = true
	}
}

// message builds a task's message and finds its agent's queue.
func (d *Dispatcher) message(ctx context.Context, t domain.Task, agents map[string]domain.Agent, policies map[string]*domain.Policy) ([]byte, string, error) {
	ak := AgentKey(t.TenantID, t.AgentID)
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
		pk := PolicyKey(t.TenantID, t.PolicyID)
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

// fail marks a task that can never be sent as failed, with the reason and its task.failed
// event, and returns the event.
func (d *Dispatcher) fail(ctx context.Context, t domain.Task, reason error) ([]events.Event, bool) {
	now := d.Now().UTC()
	_, evs, err := d.Store.TransitionTaskWith(ctx, t.TenantID, t.ID, domain.TaskFailed, func(t *domain.Task) {
		t.Error = "cannot be sent: " + reason.Error()
		t.FinishedAt = &now
	}, func(failed domain.Task) []events.Event { return []events.Event{events.NewTaskFailed(now, failed)} })
	if err != nil && d.Log != nil {
		d.Log.WarnContext(ctx, "could not fail an unsendable task", "tenant_id", t.TenantID, "task_id", t.ID, "error", err)
	}
	return evs, err == nil
}
