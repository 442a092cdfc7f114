package scheduler_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
	"github.com/restic-monitor/restic-monitor/internal/testenv/queuetest"
)

// base is the time the tests start at: a Monday, 02:00 UTC. It lies in the future (in a year
// with the calendar of 2026) so that no TTL the tests write has passed for the endpoint's
// expiry sweeper, which goes by the real clock.
var base = time.Date(2037, 5, 4, 2, 0, 0, 0, time.UTC)

// clock is the store's clock; each tick sets it to the tick's time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// recorder collects emitted events.
type recorder struct {
	mu  sync.Mutex
	evs []events.Event
}

func (r *recorder) Emit(_ context.Context, evs []events.Event) error {
	for _, ev := range evs {
		if _, err := ev.Encode(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.evs = append(r.evs, evs...)
	r.mu.Unlock()
	return nil
}

// take returns the events emitted since the last take.
func (r *recorder) take() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.evs
	r.evs = nil
	return evs
}

// brokenQueues is a dispatch.Sender whose sends all fail, like a crash between claim and send.
type brokenQueues struct{}

func (brokenQueues) SendBatch(_ context.Context, _ string, msgs []queue.Outgoing) ([]queue.Failure, error) {
	failures := make([]queue.Failure, len(msgs))
	for i, m := range msgs {
		failures[i] = queue.Failure{ID: m.ID, Message: "connection reset"}
	}
	return failures, fmt.Errorf("send batch: connection reset")
}

// fixture is a tenant with a repository in a fresh table, and the queues of the agents the test
// registers.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	st     *store.Store
	db     *dynamodb.Client
	qm     *queue.Manager
	sqs    *sqs.Client
	clock  *clock
	tenant string
	token  string
	events *recorder
	config scheduler.Config
	// publisher, when set, publishes the outbox at the end of every tick.
	publisher *scheduler.Publisher
	// inboxes read the agents' queues, by queue URL.
	inboxes map[string]*queuetest.Inbox
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := testenv.AWS(t)
	f := &fixture{
		t: t, ctx: context.Background(), clock: &clock{now: base}, tenant: "acme", events: &recorder{},
		sqs: sqs.NewFromConfig(cfg), inboxes: map[string]*queuetest.Inbox{},
	}
	f.db = dynamodb.NewFromConfig(cfg, testenv.StrictTransactions)
	f.st = store.New(f.db, testenv.Table(t, cfg))
	f.st.Now = f.clock.Now
	f.qm = queue.New(f.sqs, resources.Names{Stage: "s" + testenv.UniqueName("")[:8]})
	_, err := f.qm.EnsureDeadLetterQueue(f.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.qm.DeleteDeadLetterQueue(context.Background()) })
	require.NoError(t, f.st.CreateTenant(f.ctx, domain.Tenant{ID: f.tenant, Name: "Acme", CreatedAt: base}))
	_, err = f.st.CreateRepository(f.ctx, f.tenant, domain.Repository{Name: "main", Backend: domain.BackendLocal, Location: "/srv/restic/main"})
	require.NoError(t, err)
	f.token = domain.NewID(base)
	require.NoError(t, f.st.CreateEnrollmentToken(f.ctx, f.tenant, domain.EnrollmentToken{
		ID: f.token, SecretHash: "unused", MaxUses: domain.MaxEnrollmentTokenUses, CreatedAt: base, ExpiresAt: base.AddDate(0, 0, 30),
	}))
	return f
}

// agent registers an agent with its queues, seen now, reporting every hour unless change says
// otherwise.
func (f *fixture) agent(change func(*domain.Agent)) domain.Agent {
	f.t.Helper()
	now := f.clock.Now()
	a := domain.Agent{
		ID: domain.NewID(now), Hostname: "host-" + testenv.UniqueName("")[:6], OS: "linux", Arch: "amd64", AgentVersion: "1.0.0",
		ResticVersion: "0.18.1", Status: domain.AgentOnline, LastSeenAt: &now, Limits: domain.Limits{MaxConcurrentTasks: 2},
		HeartbeatIntervalSeconds: 3600, SecretHash: "unused", CreatedAt: now, UpdatedAt: now,
	}
	if change != nil {
		change(&a)
	}
	q, err := f.qm.Ensure(f.ctx, f.tenant, a.ID)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = f.qm.Delete(context.Background(), f.tenant, a.ID) })
	a.QueueURL = q.URL
	stored, err := f.st.RegisterAgent(f.ctx, f.tenant, f.token, a)
	require.NoError(f.t, err)
	return stored
}

// policy creates a policy backing up hourly unless change says otherwise.
func (f *fixture) policy(change func(*domain.Policy)) domain.Policy {
	f.t.Helper()
	p := domain.Policy{
		Name: "p-" + testenv.UniqueName("")[:8], Enabled: true, Repository: "main", Paths: []string{"/srv/data"},
		Schedule: domain.Schedule{Interval: "1h"}, Retention: domain.Retention{KeepDaily: 7},
	}
	p.ID = domain.NewID(f.clock.Now())
	if change != nil {
		change(&p)
	}
	stored, err := f.st.CreatePolicy(f.ctx, f.tenant, p)
	require.NoError(f.t, err)
	return stored
}

// assign assigns a policy to an agent with every slot of the policy due at next, but its daily
// stats slot, which is left without a next run (assignStats plans it).
func (f *fixture) assign(p domain.Policy, a domain.Agent, next time.Time) {
	f.t.Helper()
	f.assignStats(p, a, next, nil)
}

// assignStats assigns a policy to an agent with every slot due at next and its stats slot due
// at stats (nil: not planned).
func (f *fixture) assignStats(p domain.Policy, a domain.Agent, next time.Time, stats *time.Time) {
	f.t.Helper()
	var slots []domain.Slot
	for _, r := range schedule.Slots(p) {
		kind := map[domain.TaskType]domain.SlotKind{domain.TaskBackup: domain.SlotBackup, domain.TaskForget: domain.SlotForget, domain.TaskCheck: domain.SlotCheck, domain.TaskStats: domain.SlotStats}[r.Type]
		at := &next
		if kind == domain.SlotStats {
			at = stats
		}
		slots = append(slots, domain.Slot{Kind: kind, NextRunAt: at})
	}
	require.NoError(f.t, f.st.Assign(f.ctx, f.tenant, p.ID, a.ID, slots))
}

func (f *fixture) scheduler(queues dispatch.Sender) *scheduler.Scheduler {
	return &scheduler.Scheduler{
		Store:     f.st,
		Sender:    &dispatch.Dispatcher{Store: f.st, Sender: queues, Now: f.clock.Now},
		Emitter:   f.events,
		Config:    f.config,
		Publisher: f.publisher,
	}
}

// tick runs a tick at now with working queues.
func (f *fixture) tick(now time.Time) scheduler.Summary {
	f.t.Helper()
	return f.tickWith(now, f.qm)
}

func (f *fixture) tickWith(now time.Time, queues dispatch.Sender) scheduler.Summary {
	f.t.Helper()
	f.clock.Set(now)
	sum, err := f.scheduler(queues).Tick(f.ctx, now)
	require.NoError(f.t, err)
	require.Zero(f.t, sum.Errors, "tick errors")
	return sum
}

// messages takes the task messages that arrived in an agent's queue since the last look, each
// once: SQS may hold a message twice, so a test counts the tasks sent, never the copies.
func (f *fixture) messages(a domain.Agent) []events.TaskMessage {
	f.t.Helper()
	in, ok := f.inboxes[a.QueueURL]
	if !ok {
		in = queuetest.NewInbox(f.t, f.sqs, a.QueueURL)
		f.inboxes[a.QueueURL] = in
	}
	return in.Take()
}

// tasks lists the agent's tasks, oldest first.
func (f *fixture) tasks(a domain.Agent) []domain.Task {
	f.t.Helper()
	var all []domain.Task
	page := store.Page{Limit: 100}
	for {
		ts, next, err := f.st.ListTasks(f.ctx, f.tenant, store.TaskFilter{AgentID: a.ID}, page)
		require.NoError(f.t, err)
		all = append(all, ts...)
		if next == "" {
			break
		}
		page.Cursor = next
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return all
}

func (f *fixture) slot(p domain.Policy, a domain.Agent, kind domain.SlotKind) domain.Slot {
	f.t.Helper()
	sl, err := f.st.GetSlot(f.ctx, f.tenant, p.ID, a.ID, kind)
	require.NoError(f.t, err)
	return sl
}

func (f *fixture) task(id string) domain.Task {
	f.t.Helper()
	task, err := f.st.GetTask(f.ctx, f.tenant, id)
	require.NoError(f.t, err)
	return task
}

// heartbeat records a heartbeat at now as the agent API does: online, seen now, backoff as
// reported.
func (f *fixture) heartbeat(a domain.Agent, now time.Time, backoffUntil *time.Time) {
	f.t.Helper()
	f.clock.Set(now)
	_, err := f.st.ModifyAgent(f.ctx, f.tenant, a.ID, func(a *domain.Agent) error {
		a.Status, a.LastSeenAt = domain.AgentOnline, &now
		a.BackoffUntil, a.BackoffReason = backoffUntil, ""
		if backoffUntil != nil {
			a.BackoffReason = "repository locked"
		}
		return nil
	})
	require.NoError(f.t, err)
}

// forgetCapacity deletes an agent's capacity item behind the store's back, as if the agent had
// been registered before there were any.
func (f *fixture) forgetCapacity(a domain.Agent) {
	f.t.Helper()
	_, err := f.db.DeleteItem(f.ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(f.st.Table()),
		Key: map[string]types.AttributeValue{
			resources.AttrPK: &types.AttributeValueMemberS{Value: "TENANT#" + a.TenantID},
			resources.AttrSK: &types.AttributeValueMemberS{Value: "CAPACITY#" + a.ID},
		},
	})
	require.NoError(f.t, err)
}

// eventTypes lists the types of evs, in order.
func eventTypes(evs []events.Event) []events.EventType {
	out := []events.EventType{}
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// only keeps the events of the given types.
func only(evs []events.Event, types ...events.EventType) []events.Event {
	var out []events.Event
	for _, ev := range evs {
		if slices.Contains(types, ev.Type) {
			out = append(out, ev)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
