package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/deadletter"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// Store is what a tick reads and writes.
type Store interface {
	QueryDue(ctx context.Context, shard int, now time.Time, page store.Page) ([]store.Due, string, error)
	GetAgents(ctx context.Context, refs []store.AgentRef) (map[store.AgentRef]domain.Agent, error)
	GetPolicies(ctx context.Context, refs []store.PolicyRef) (map[store.PolicyRef]domain.Policy, error)
	GetSlots(ctx context.Context, refs []store.SlotRef) (map[store.SlotRef]domain.Slot, error)
	GetSlot(ctx context.Context, tenantID, policyID, agentID string, kind domain.SlotKind) (domain.Slot, error)
	GetCapacities(ctx context.Context, refs []store.AgentRef) (map[store.AgentRef]store.Capacity, error)
	ClaimSlots(ctx context.Context, claims []store.Claim) []store.ClaimResult
	SetSlotWaits(ctx context.Context, waits []store.SlotWait) []store.WaitResult
	TransitionTaskWith(ctx context.Context, tenantID, taskID string, to domain.TaskStatus, change func(*domain.Task), announce func(domain.Task) []events.Event) (domain.Task, []events.Event, error)
	UpdateTaskRun(ctx context.Context, tenantID, taskID, runID string, decide func(domain.Task, *domain.Run) (store.TaskRunChange, error)) (store.TaskRunChange, error)
	SetAgentOffline(ctx context.Context, a domain.Agent, now time.Time, evs ...events.Event) (bool, error)
	ClearAgentOffline(ctx context.Context, a domain.Agent, evs ...events.Event) (bool, error)
	AnnounceOverdue(ctx context.Context, c store.OverdueCheck, lastSuccess *time.Time, recheckAt time.Time, evs ...events.Event) (bool, error)
	RecheckOverdue(ctx context.Context, c store.OverdueCheck, recheckAt time.Time) error
	EndOverdueCheck(ctx context.Context, c store.OverdueCheck, announced bool, evs ...events.Event) (bool, error)
	GetRepository(ctx context.Context, tenantID, name string) (domain.Repository, error)
	AnnounceCheckOverdue(ctx context.Context, h store.HealthDue, evs ...events.Event) (bool, error)
	MoveHealthDue(ctx context.Context, h store.HealthDue, overdueAt time.Time) error
	ClearHealth(ctx context.Context, h store.HealthDue) error
}

// Sender sends tasks to their agents' queues and marks them queued; *dispatch.Dispatcher is one.
type Sender interface {
	SendKnown(ctx context.Context, tasks []domain.Task, known dispatch.Known) []dispatch.Result
}

// Emitter is told of the domain events a tick recorded, once they are stored: LogEmitter writes
// a log line for each. Publishing them to the bus is the Publisher's.
type Emitter interface {
	Emit(ctx context.Context, evs []events.Event) error
}

// Config tunes a Scheduler. Zero values take the defaults below.
type Config struct {
	// OverdueGrace is how long after its planned time a backup must have succeeded before its
	// slot counts as overdue.
	OverdueGrace time.Duration
	// StartWithin is how long an agent has to start a scheduled task whose policy sets no
	// runDeadline.
	StartWithin time.Duration
	// PendingGrace is how long a pending task is left to whoever created it to send; after that
	// the tick sends it.
	PendingGrace time.Duration
	// OfflineGrace is how long the agent of a running task may stay offline before the task is
	// given up as lost. restic runs on without the control plane and the agent spools its
	// result, so a shorter outage fails nothing; a host that is gone for good frees the task's
	// slot after this long.
	OfflineGrace time.Duration
	// RedeliveryWindow is how long an agent that beats on without a task it ran is given to
	// get the task's message back from its queue and start it anew — what an agent does after
	// a crash or a reboot — before the task is given up as lost. It is the queue's visibility
	// timeout: agents configured to hide received messages longer need a longer window.
	RedeliveryWindow time.Duration
	// Concurrency bounds the requests one phase of a tick has in flight.
	Concurrency int
	// MaxDuePerShard bounds the entries one tick reads from a shard; the rest wait for the next
	// tick, so a backlog cannot make a tick outrun its Lambda timeout.
	MaxDuePerShard int
	// DuePageSize is how many due entries one request reads (at most 100).
	DuePageSize int
	// ClaimReserve is the time a tick keeps, before its context's deadline, to send what it
	// claimed: no claim starts later than that.
	ClaimReserve time.Duration
	// DeletionBudget is the most time a tick spends on carrying on tenants' deletions.
	DeletionBudget time.Duration
}

// DefaultRedeliveryWindow is the agent queues' visibility timeout.
const DefaultRedeliveryWindow = resources.QueueVisibilityTimeoutSeconds * time.Second

// Defaults of Config.
const (
	DefaultOverdueGrace   = 2 * time.Hour
	DefaultStartWithin    = time.Hour
	DefaultPendingGrace   = 30 * time.Second
	DefaultOfflineGrace   = time.Hour
	DefaultConcurrency    = 16
	DefaultMaxDuePerShard = 5000
	DefaultClaimReserve   = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if c.OverdueGrace <= 0 {
		c.OverdueGrace = DefaultOverdueGrace
	}
	if c.StartWithin <= 0 {
		c.StartWithin = DefaultStartWithin
	}
	if c.PendingGrace <= 0 {
		c.PendingGrace = DefaultPendingGrace
	}
	if c.OfflineGrace <= 0 {
		c.OfflineGrace = DefaultOfflineGrace
	}
	if c.RedeliveryWindow <= 0 {
		c.RedeliveryWindow = DefaultRedeliveryWindow
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxDuePerShard <= 0 {
		c.MaxDuePerShard = DefaultMaxDuePerShard
	}
	if c.DuePageSize <= 0 || c.DuePageSize > 100 {
		c.DuePageSize = 100
	}
	if c.ClaimReserve <= 0 {
		c.ClaimReserve = DefaultClaimReserve
	}
	if c.DeletionBudget <= 0 {
		c.DeletionBudget = DefaultDeletionBudget
	}
	return c
}

// DeadLetters turns the messages agents could not complete into failed tasks;
// *deadletter.Drainer is one.
type DeadLetters interface {
	Drain(ctx context.Context, now time.Time) (deadletter.Summary, error)
}

// Scheduler runs ticks.
type Scheduler struct {
	Store   Store
	Sender  Sender
	Emitter Emitter
	// DeadLetters, when set, is drained at the end of every tick.
	DeadLetters DeadLetters
	Log         *slog.Logger
	Config      Config
	// Clock measures how long a tick took, for its summary; nil reports no duration. It never
	// decides anything: a tick's time is the one it is given.
	Clock func() time.Time
	// Tenants, when set, names the tenants being deleted, whose due entries the tick leaves
	// alone, and carries their deletions on at the end of every tick.
	Tenants TenantDeletions
	// Publisher, when set, publishes at the end of every tick the outbox's pending events: those
	// the tick recorded and those the due index shows.
	Publisher *Publisher
}

// Summary says what one tick did.
type Summary struct {
	Now time.Time `json:"now"`
	// Due is how many due-index entries the tick read.
	Due int `json:"due"`
	// Dispatched counts the tasks whose message went out: Claimed new runs, Resent pending
	// tasks and Retried tries.
	Dispatched int `json:"dispatched"`
	Claimed    int `json:"claimed"`
	Resent     int `json:"resent"`
	Retried    int `json:"retried"`
	// Lost counts claims another tick won; Unsent, tasks left pending (or retrying) because
	// their message could not be sent — the next tick sends them.
	Lost   int `json:"lost"`
	Unsent int `json:"unsent"`
	// Waiting counts the slots and tasks held back, by why: offline, backing_off, saturated,
	// unschedulable (the slot's policy or agent is gone or disabled), tenant_deleting (any
	// entry of a tenant being deleted).
	Waiting   map[string]int `json:"waiting"`
	Expired   int            `json:"expired"`
	Failed    int            `json:"failed"`
	Offline   int            `json:"offline"`
	Online    int            `json:"online"`
	Overdue   int            `json:"overdue"`
	Recovered int            `json:"recovered"`
	// ChecksOverdue counts repositories announced repository.check_overdue.
	ChecksOverdue int `json:"checksOverdue"`
	// DeadLettered counts tasks failed for good because their message reached the dead-letter
	// queue; they are also counted in Failed.
	DeadLettered int   `json:"deadLettered"`
	Errors       int   `json:"errors"`
	DurationMS   int64 `json:"durationMs"`

	// TasksLost counts running tasks failed for good because their agent was lost; they are
	// also counted in Failed.
	TasksLost int `json:"tasksLost"`
	// TenantsDeleting counts the tenants being deleted when the tick began; TenantsDeleted, the
	// deletions the tick ended.
	TenantsDeleting int `json:"tenantsDeleting"`
	TenantsDeleted  int `json:"tenantsDeleted"`
	// Published counts the events the bus accepted and Unpublished those left in the outbox for
	// the next tick.
	Published   int `json:"published"`
	Unpublished int `json:"unpublished"`
}

// tick is the state of one run of Tick. Its counters and events are shared by the goroutines of
// a phase, under mu.
type tick struct {
	s   *Scheduler
	cfg Config
	now time.Time
	log *slog.Logger
	mu  sync.Mutex
	sum Summary
	evs []events.Event
	// outbox holds the pending events the due index showed.
	outbox []store.OutboxEntry

	agents   map[store.AgentRef]domain.Agent
	policies map[store.PolicyRef]domain.Policy
	slots    map[store.SlotRef]domain.Slot
}

func (t *tick) count(f func(*Summary)) {
	t.mu.Lock()
	f(&t.sum)
	t.mu.Unlock()
}

// emit notes events the tick recorded in the outbox with the change they report.
func (t *tick) emit(evs ...events.Event) {
	t.mu.Lock()
	t.evs = append(t.evs, evs...)
	t.mu.Unlock()
}

func (t *tick) wait(kind string) {
	t.count(func(s *Summary) { s.Waiting[kind]++ })
}

// fail logs an error the tick goes on after; what it concerns is retried by the next tick.
func (t *tick) fail(ctx context.Context, msg string, err error, attrs ...any) {
	t.count(func(s *Summary) { s.Errors++ })
	t.log.ErrorContext(ctx, msg, append(attrs, "error", err)...)
}

// Tick runs one tick at now. It returns an error only when it could not read all of the due
// index: what it read, it handled, and failures of single entries are counted in the summary,
// logged, and retried by the next tick.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) (Summary, error) {
	t := &tick{
		s: s, cfg: s.Config.withDefaults(), now: now.UTC(), log: s.Log,
		sum: Summary{Now: now.UTC(), Waiting: map[string]int{}},
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	due, readErr := t.readDue(ctx)
	t.sum.Due = len(due)
	deleting := t.deletingTenants(ctx)
	due = t.dropDeleting(due, deleting)

	var (
		slots   []domain.Slot
		tasks   []domain.Task
		running []domain.Task
		agents  []domain.Agent
		checks  []store.OverdueCheck
		health  []store.HealthDue
		refs    = refSet{}
		pending []domain.Task
	)
	for _, d := range due {
		switch {
		case d.Slot != nil:
			slots = append(slots, *d.Slot)
			refs.agent(d.Slot.TenantID, d.Slot.AgentID)
			refs.policy(d.Slot.TenantID, d.Slot.PolicyID)
		case d.Task != nil && d.Task.Status == domain.TaskRunning:
			running = append(running, *d.Task)
			refs.agent(d.Task.TenantID, d.Task.AgentID)
		case d.Task != nil:
			tasks = append(tasks, *d.Task)
		case d.Agent != nil:
			agents = append(agents, *d.Agent)
		case d.Check != nil:
			checks = append(checks, *d.Check)
			refs.slot(d.Check.Ref())
			refs.policy(d.Check.TenantID, d.Check.PolicyID)
		case d.Outbox != nil:
			t.outbox = append(t.outbox, *d.Outbox)
		case d.Health != nil:
			health = append(health, *d.Health)
		}
	}

	// Health of agents first, so that the reads below see an agent that just went offline.
	t.agentHealth(ctx, agents)

	tasks = t.expireTasks(ctx, tasks)
	for _, task := range tasks {
		refs.agent(task.TenantID, task.AgentID)
		if task.PolicyID != "" {
			refs.policy(task.TenantID, task.PolicyID)
		}
	}
	if err := t.load(ctx, refs); err != nil {
		// Without agents and policies nothing can be decided safely; the next tick tries again.
		t.fail(ctx, "read agents, policies and slots", err)
		return t.finish(ctx), errors.Join(readErr, err)
	}

	// Before capacity is planned, so a lost task no longer holds its agent.
	t.watchRunning(ctx, running)

	var retries []domain.Task
	for _, task := range tasks {
		switch task.Status {
		case domain.TaskPending:
			if p, ok := t.pendingToSend(task); ok {
				pending = append(pending, p)
			}
		case domain.TaskRetrying:
			if r, ok := t.retryToSend(ctx, task); ok {
				retries = append(retries, r)
			}
		}
	}

	plan := t.planWork(ctx, slots, retries)
	won := t.claim(ctx, plan.claims)
	t.send(ctx, won, pending, plan.retries)
	t.overdueChecks(ctx, checks)
	t.overdueRepositoryChecks(ctx, health)
	t.drainDeadLetters(ctx)
	t.continueDeletions(ctx, deleting)
	return t.finish(ctx), readErr
}

// drainDeadLetters fails for good the tasks whose messages the agents could not complete, each
// with its task.failed event. A queue that cannot be read is an error of this tick only: the
// messages stay for the next one.
func (t *tick) drainDeadLetters(ctx context.Context) {
	if t.s.DeadLetters == nil {
		return
	}
	sum, err := t.s.DeadLetters.Drain(ctx, t.now)
	if err != nil {
		t.fail(ctx, "drain the dead-letter queue", err)
	}
	t.count(func(s *Summary) {
		s.DeadLettered += len(sum.FailedTasks)
		s.Failed += len(sum.FailedTasks)
		s.Errors += sum.Errors
	})
	t.emit(sum.Events...)
}

// finish logs the tick's events, publishes what the outbox holds and completes the summary.
func (t *tick) finish(ctx context.Context) Summary {
	sort.SliceStable(t.evs, func(i, j int) bool { return t.evs[i].Time.Before(t.evs[j].Time) })
	if len(t.evs) > 0 && t.s.Emitter != nil {
		if err := t.s.Emitter.Emit(ctx, t.evs); err != nil {
			t.fail(ctx, "emit events", err, "events", len(t.evs))
		}
	}
	if t.s.Publisher != nil {
		pending := t.outbox
		for _, ev := range t.evs {
			pending = append(pending, store.OutboxEntryOf(ev))
		}
		ps := t.s.Publisher.Publish(ctx, pending)
		t.count(func(s *Summary) {
			s.Published, s.Unpublished, s.Errors = ps.Published, ps.Unpublished, s.Errors+ps.Errors
		})
	}
	return t.sum
}

// readDue reads every shard of the due index up to the tick's time, the shards in parallel.
func (t *tick) readDue(ctx context.Context) ([]store.Due, error) {
	perShard := make([][]store.Due, resources.DueShards)
	errs := make([]error, resources.DueShards)
	forEach(resources.DueShards, t.cfg.Concurrency, func(shard int) {
		page := store.Page{Limit: t.cfg.DuePageSize}
		for {
			due, next, err := t.s.Store.QueryDue(ctx, shard, t.now, page)
			if err != nil {
				errs[shard] = err
				t.fail(ctx, "read the due index", err, "shard", shard)
				return
			}
			perShard[shard] = append(perShard[shard], due...)
			if next == "" {
				return
			}
			if len(perShard[shard]) >= t.cfg.MaxDuePerShard {
				t.log.WarnContext(ctx, "due shard has more entries than one tick handles; the rest wait for the next tick",
					"shard", shard, "read", len(perShard[shard]))
				return
			}
			page.Cursor = next
		}
	})
	var all []store.Due
	for _, d := range perShard {
		all = append(all, d...)
	}
	if err := errors.Join(errs...); err != nil {
		return all, fmt.Errorf("read due index: %w", err)
	}
	return all, nil
}

// refSet collects the agents, policies and slots a tick needs to read.
type refSet struct {
	agents   []store.AgentRef
	policies []store.PolicyRef
	slots    []store.SlotRef
}

func (r *refSet) agent(tenantID, agentID string) {
	r.agents = append(r.agents, store.AgentRef{TenantID: tenantID, AgentID: agentID})
}

func (r *refSet) policy(tenantID, policyID string) {
	r.policies = append(r.policies, store.PolicyRef{TenantID: tenantID, PolicyID: policyID})
}

func (r *refSet) slot(ref store.SlotRef) { r.slots = append(r.slots, ref) }

// load reads the agents, policies and slots the due entries name, in batches and in parallel.
func (t *tick) load(ctx context.Context, refs refSet) error {
	var wg sync.WaitGroup
	var aerr, perr, serr error
	wg.Add(3)
	go func() {
		defer wg.Done()
		t.agents, aerr = t.s.Store.GetAgents(ctx, refs.agents)
	}()
	go func() {
		defer wg.Done()
		t.policies, perr = t.s.Store.GetPolicies(ctx, refs.policies)
	}()
	go func() {
		defer wg.Done()
		t.slots, serr = t.s.Store.GetSlots(ctx, refs.slots)
	}()
	wg.Wait()
	return errors.Join(aerr, perr, serr)
}

// forEach calls fn for 0..n-1 with at most limit calls running at once.
func forEach(n, limit int, fn func(i int)) {
	if n == 0 {
		return
	}
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}
