package scheduler_test

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestTickDispatchesEachScheduleOfAPolicy(t *testing.T) {
	f := newFixture(t)
	a := f.agent(func(a *domain.Agent) { a.Limits.MaxConcurrentTasks = 3 })
	p := f.policy(func(p *domain.Policy) {
		p.ForgetSchedule, p.Prune = &domain.Schedule{Interval: "1d"}, true
		p.CheckSchedule, p.CheckReadDataSubset = &domain.Schedule{Cron: "0 3 * * 0"}, "1/5"
		p.RunDeadline, p.MaxRetries = "2h", ptr(5)
	})
	f.assign(p, a, base)

	now := base.Add(30 * time.Second)
	sum := f.tick(now)
	assert.Equal(t, 3, sum.Claimed)
	assert.Equal(t, 3, sum.Dispatched)

	tasks := f.tasks(a)
	require.Len(t, tasks, 3)
	byType := map[domain.TaskType]domain.Task{}
	for _, task := range tasks {
		byType[task.Type] = task
		assert.Equal(t, domain.TaskQueued, task.Status)
		assert.Equal(t, p.ID, task.PolicyID)
		assert.Equal(t, "main", task.Repository)
		assert.Equal(t, 1, task.Attempt)
		assert.Equal(t, 5, task.MaxRetries)
		assert.Equal(t, "schedule", task.Trigger)
		assert.True(t, task.NotBefore.Equal(now), "notBefore %s", task.NotBefore)
		assert.True(t, task.Deadline.Equal(now.Add(2*time.Hour)), "deadline %s", task.Deadline)
	}
	require.Len(t, byType, 3)
	assert.True(t, byType[domain.TaskForget].Params.Prune)
	assert.Equal(t, "1/5", byType[domain.TaskCheck].Params.ReadDataSubset)

	backup := f.slot(p, a, domain.SlotBackup)
	assert.Equal(t, base.Add(time.Hour), *backup.NextRunAt)
	assert.Equal(t, byType[domain.TaskBackup].ID, backup.LastTaskID)
	check := f.slot(p, a, domain.SlotCheck)
	assert.Equal(t, time.Date(2037, 5, 10, 3, 0, 0, 0, time.UTC), *check.NextRunAt, "next Sunday 03:00")

	msgs := f.messages(a)
	require.Len(t, msgs, 3)
	for _, m := range msgs {
		task := byType[m.TaskType]
		assert.Equal(t, task.ID, m.TaskID)
		assert.Equal(t, 1, m.Attempt)
		assert.True(t, m.Deadline.Equal(task.Deadline))
		if m.TaskType == domain.TaskBackup {
			require.NotNil(t, m.Backup)
			assert.Equal(t, []string{"/srv/data"}, m.Backup.Paths)
		}
	}

	sum = f.tick(now.Add(time.Minute))
	assert.Zero(t, sum.Dispatched, "nothing is due a minute later")
	assert.Empty(t, f.messages(a))
}

func TestConcurrentTicksDispatchEachRunOnce(t *testing.T) {
	f := newFixture(t)
	f.config.DuePageSize = 2 // so that each tick pages through the shards
	var agents []domain.Agent
	for range 12 {
		agents = append(agents, f.agent(nil))
	}
	policies := []domain.Policy{f.policy(nil), f.policy(nil)}
	for _, p := range policies {
		for _, a := range agents {
			f.assign(p, a, base)
		}
	}

	now := base.Add(10 * time.Second)
	f.clock.Set(now)
	const ticks = 3
	sums := make([]scheduler.Summary, ticks)
	errs := make([]error, ticks)
	var wg sync.WaitGroup
	for i := range ticks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i], errs[i] = f.scheduler(f.qm).Tick(f.ctx, now)
		}()
	}
	wg.Wait()

	claimed, dispatched, lost := 0, 0, 0
	for i := range ticks {
		require.NoError(t, errs[i])
		assert.Zero(t, sums[i].Errors, "tick %d errors", i)
		claimed += sums[i].Claimed
		dispatched += sums[i].Dispatched
		lost += sums[i].Lost
	}
	runs := len(agents) * len(policies)
	assert.Equal(t, runs, claimed, "every run claimed once")
	assert.Equal(t, runs, dispatched, "every run sent once")
	t.Logf("claims lost to another tick: %d", lost)

	for _, a := range agents {
		tasks := f.tasks(a)
		require.Len(t, tasks, len(policies), "agent %s", a.ID)
		perPolicy := map[string]string{}
		for _, task := range tasks {
			assert.Equal(t, domain.TaskQueued, task.Status)
			assert.NotContains(t, perPolicy, task.PolicyID, "two tasks for one run")
			perPolicy[task.PolicyID] = task.ID
		}
		msgs := f.messages(a)
		got := map[string]int{}
		for _, m := range msgs {
			got[m.TaskID]++
		}
		want := map[string]int{}
		for _, id := range perPolicy {
			want[id] = 1
		}
		assert.Equal(t, want, got, "messages in the queue of agent %s", a.ID)
	}
}

func TestConcurrentTicksRecordWhySlotsWait(t *testing.T) {
	f := newFixture(t)
	f.config.DuePageSize = 2
	f.config.OverdueGrace = 30 * time.Minute
	var saturated, offline []domain.Agent
	for range 6 {
		saturated = append(saturated, f.agent(func(a *domain.Agent) { a.Limits.MaxConcurrentTasks = 1 }))
	}
	for range 4 {
		offline = append(offline, f.agent(func(a *domain.Agent) { a.Status, a.LastSeenAt = domain.AgentOffline, ptr(base.Add(-time.Hour)) }))
	}
	policies := []domain.Policy{f.policy(nil), f.policy(nil)}
	for _, p := range policies {
		for _, a := range append(slices.Clone(saturated), offline...) {
			f.assign(p, a, base)
		}
	}

	now := base.Add(10 * time.Second)
	f.clock.Set(now)
	const ticks = 3
	sums := make([]scheduler.Summary, ticks)
	errs := make([]error, ticks)
	var wg sync.WaitGroup
	for i := range ticks {
		wg.Go(func() { sums[i], errs[i] = f.scheduler(f.qm).Tick(f.ctx, now) })
	}
	wg.Wait()
	claimed := 0
	for i := range ticks {
		require.NoError(t, errs[i])
		assert.Zero(t, sums[i].Errors, "tick %d errors", i)
		claimed += sums[i].Claimed
	}
	assert.Equal(t, len(saturated), claimed, "one run per agent that runs one task at a time")

	for _, a := range saturated {
		require.Len(t, f.tasks(a), 1, "agent %s", a.Hostname)
		var reasons []string
		for _, p := range policies {
			sl := f.slot(p, a, domain.SlotBackup)
			if sl.WaitReason == "" {
				assert.Equal(t, base.Add(time.Hour), *sl.NextRunAt, "agent %s: the claimed slot moved on", a.Hostname)
				continue
			}
			reasons = append(reasons, sl.WaitReason)
			assert.Equal(t, base, *sl.NextRunAt, "agent %s: the waiting slot stays due", a.Hostname)
		}
		assert.Equal(t, []string{"agent saturated: maxConcurrentTasks is 1"}, reasons, "agent %s", a.Hostname)
	}
	for _, a := range offline {
		for _, p := range policies {
			sl := f.slot(p, a, domain.SlotBackup)
			assert.Equal(t, "agent offline", sl.WaitReason, "agent %s", a.Hostname)
			assert.Equal(t, base, *sl.NextRunAt, "agent %s", a.Hostname)
		}
	}

	// Every backup's run is watched: the claimed ones by their claims, the waiting ones by the
	// records of their waits.
	watched := map[string]time.Time{}
	for shard := range resources.DueShards {
		due, _, err := f.st.QueryDue(f.ctx, shard, base.Add(31*time.Minute), store.Page{Limit: 100})
		require.NoError(t, err)
		for _, d := range due {
			if d.Check != nil {
				watched[d.Check.PolicyID+"/"+d.Check.AgentID] = d.Check.PlannedAt
			}
		}
	}
	want := map[string]time.Time{}
	for _, p := range policies {
		for _, a := range append(slices.Clone(saturated), offline...) {
			want[p.ID+"/"+a.ID] = base
		}
	}
	assert.Equal(t, want, watched)
}

func TestAgentsThatCannotTakeWorkKeepTheirSlotsDue(t *testing.T) {
	f := newFixture(t)
	silent := f.agent(func(a *domain.Agent) { a.LastSeenAt = ptr(base.Add(-4 * time.Hour)) })
	saturated := f.agent(func(a *domain.Agent) { a.Limits.MaxConcurrentTasks = 1 })
	atBackupLimit := f.agent(func(a *domain.Agent) {
		a.Limits = domain.Limits{MaxConcurrentTasks: 3, PerType: map[domain.TaskType]int{domain.TaskBackup: 1}}
	})
	backingOff := f.agent(func(a *domain.Agent) {
		a.BackoffUntil, a.BackoffReason = ptr(base.Add(10*time.Minute)), "repository locked"
	})
	// What occupies the saturated agents: a running backup each.
	busy := map[string]string{}
	for _, a := range []domain.Agent{saturated, atBackupLimit} {
		task, err := f.st.CreateTask(f.ctx, f.tenant, domain.Task{
			ID: domain.NewID(base), AgentID: a.ID, Repository: "main", Type: domain.TaskBackup, Status: domain.TaskRunning,
			Attempt: 1, NotBefore: base.Add(-time.Hour), Deadline: base, Trigger: "operator",
		})
		require.NoError(t, err)
		busy[a.ID] = task.ID
	}
	p := f.policy(func(p *domain.Policy) { p.CheckSchedule = &domain.Schedule{Interval: "1d"} })
	blocked := []domain.Agent{silent, saturated, atBackupLimit, backingOff}
	for _, a := range blocked {
		f.assign(p, a, base)
	}

	sum := f.tick(base.Add(time.Minute))
	assert.Equal(t, 1, sum.Offline, "the silent agent goes offline")
	assert.Equal(t, 1, sum.Dispatched, "only the check of the agent at its backup limit")
	assert.Equal(t, map[string]int{"offline": 2, "saturated": 3, "backing_off": 2}, sum.Waiting)
	wantReason := map[string]string{
		silent.ID:        "agent offline",
		saturated.ID:     "agent saturated: maxConcurrentTasks is 1",
		atBackupLimit.ID: "agent at its backup limit of 1",
		backingOff.ID:    "agent backing off until 2037-05-04T02:10:00Z: repository locked",
	}
	for _, a := range blocked {
		sl := f.slot(p, a, domain.SlotBackup)
		assert.Equal(t, wantReason[a.ID], sl.WaitReason, "agent %s", a.Hostname)
		assert.Equal(t, base, *sl.NextRunAt, "the slot stays due")
		if a.ID == atBackupLimit.ID {
			require.Len(t, f.messages(a), 1)
			assert.Equal(t, "", f.slot(p, a, domain.SlotCheck).WaitReason)
			continue
		}
		assert.Empty(t, f.messages(a), "agent %s got work", a.Hostname)
	}
	assert.Equal(t, []events.EventType{events.TypeAgentOffline}, eventTypes(f.events.take()))

	// A tick while nothing changed writes nothing new and sends nothing.
	sum = f.tick(base.Add(2 * time.Minute))
	assert.Zero(t, sum.Dispatched)

	// Each recovers: a heartbeat, a finished task, the backoff over.
	later := base.Add(11 * time.Minute)
	f.heartbeat(silent, later, nil)
	f.heartbeat(backingOff, later, nil)
	for _, id := range busy {
		_, err := f.st.TransitionTask(f.ctx, f.tenant, id, domain.TaskSucceeded, nil)
		require.NoError(t, err)
	}
	sum = f.tick(later)
	assert.Equal(t, 1, sum.Online)
	// Four backups, and the checks of the agents that can run two tasks; the agent that runs
	// one at a time takes its backup first, and its check waits.
	assert.Equal(t, 6, sum.Dispatched)
	assert.Equal(t, map[string]int{"saturated": 1}, sum.Waiting)
	for _, a := range blocked {
		sl := f.slot(p, a, domain.SlotBackup)
		assert.Equal(t, "", sl.WaitReason)
		assert.Equal(t, base.Add(time.Hour), *sl.NextRunAt)
		backups := 0
		for _, m := range f.messages(a) {
			if m.TaskType == domain.TaskBackup {
				backups++
			}
		}
		assert.Equal(t, 1, backups, "agent %s", a.Hostname)
	}
	assert.Equal(t, "agent saturated: maxConcurrentTasks is 1", f.slot(p, saturated, domain.SlotCheck).WaitReason)
	assert.Equal(t, []events.EventType{events.TypeAgentOnline}, eventTypes(f.events.take()))
}

func TestLimitsApplyToWhatTheCapacityItemsHold(t *testing.T) {
	f := newFixture(t)
	pruning := f.agent(func(a *domain.Agent) {
		a.Limits = domain.Limits{MaxConcurrentTasks: 3, PerType: map[domain.TaskType]int{domain.TaskPrune: 1}}
	})
	// An agent from before capacity items: its running backup is in the table, its capacity
	// item is not.
	legacy := f.agent(func(a *domain.Agent) { a.Limits.MaxConcurrentTasks = 1 })
	for _, a := range []domain.Agent{pruning, legacy} {
		task := domain.Task{
			ID: domain.NewID(base), AgentID: a.ID, Repository: "main", Type: domain.TaskBackup, Status: domain.TaskRunning,
			Attempt: 1, NotBefore: base.Add(-time.Hour), Deadline: base, Trigger: "operator",
		}
		if a.ID == pruning.ID {
			task.Type, task.Params = domain.TaskForget, domain.TaskParams{Prune: true}
		}
		_, err := f.st.CreateTask(f.ctx, f.tenant, task)
		require.NoError(t, err)
	}
	f.forgetCapacity(legacy)
	p := f.policy(func(p *domain.Policy) { p.ForgetSchedule, p.Prune = &domain.Schedule{Interval: "1d"}, true })
	f.assign(p, pruning, base)
	f.assign(p, legacy, base)

	sum := f.tick(base.Add(time.Minute))
	assert.Equal(t, 1, sum.Dispatched, "only the backup of the agent that is pruning")
	assert.Equal(t, map[string]int{"saturated": 3}, sum.Waiting)
	assert.Equal(t, "agent at its prune limit of 1", f.slot(p, pruning, domain.SlotForget).WaitReason)
	assert.Equal(t, "", f.slot(p, pruning, domain.SlotBackup).WaitReason)
	msgs := f.messages(pruning)
	require.Len(t, msgs, 1)
	assert.Equal(t, domain.TaskBackup, msgs[0].TaskType)
	for _, kind := range []domain.SlotKind{domain.SlotBackup, domain.SlotForget} {
		assert.Equal(t, "agent saturated: maxConcurrentTasks is 1", f.slot(p, legacy, kind).WaitReason,
			"the agent without a capacity item is recounted, not taken for idle")
	}
	assert.Empty(t, f.messages(legacy))
}

func TestCatchUpAfterAGapDispatchesOneRunPerSlot(t *testing.T) {
	f := newFixture(t)
	a := f.agent(nil)
	hourly := f.policy(nil)
	halfHourly := f.policy(func(p *domain.Policy) { p.Schedule = domain.Schedule{Cron: "*/30 * * * *"} })
	f.assign(hourly, a, base)
	f.assign(halfHourly, a, base)

	now := base.Add(6*time.Hour + 20*time.Second)
	f.heartbeat(a, now.Add(-time.Minute), nil)
	sum := f.tick(now)
	assert.Equal(t, 2, sum.Dispatched)
	assert.Len(t, f.tasks(a), 2, "one run per slot, not one per missed occurrence")
	assert.Len(t, f.messages(a), 2)
	assert.Equal(t, base.Add(7*time.Hour), *f.slot(hourly, a, domain.SlotBackup).NextRunAt)
	assert.Equal(t, base.Add(6*time.Hour+30*time.Minute), *f.slot(halfHourly, a, domain.SlotBackup).NextRunAt)

	sum = f.tick(now.Add(time.Minute))
	assert.Zero(t, sum.Dispatched)
	assert.Len(t, f.tasks(a), 2)
}

func TestCrashBetweenClaimAndSendIsSentByTheNextTick(t *testing.T) {
	f := newFixture(t)
	a := f.agent(nil)
	p := f.policy(nil)
	f.assign(p, a, base)

	f.clock.Set(base)
	sum, err := f.scheduler(brokenQueues{}).Tick(f.ctx, base)
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Claimed)
	assert.Equal(t, 1, sum.Unsent)
	assert.Zero(t, sum.Dispatched)
	tasks := f.tasks(a)
	require.Len(t, tasks, 1)
	assert.Equal(t, domain.TaskPending, tasks[0].Status, "the run is not lost")
	assert.Equal(t, base.Add(time.Hour), *f.slot(p, a, domain.SlotBackup).NextRunAt, "the slot moved on")
	assert.Empty(t, f.messages(a))

	// Within the grace, the task is left to whoever created it.
	sum = f.tick(base.Add(10 * time.Second))
	assert.Zero(t, sum.Resent)
	assert.Empty(t, f.messages(a))

	sum = f.tick(base.Add(time.Minute))
	assert.Equal(t, 1, sum.Resent)
	assert.Equal(t, 1, sum.Dispatched)
	assert.Zero(t, sum.Claimed, "no second run")
	assert.Equal(t, domain.TaskQueued, f.task(tasks[0].ID).Status)
	msgs := f.messages(a)
	require.Len(t, msgs, 1)
	assert.Equal(t, tasks[0].ID, msgs[0].TaskID)

	sum = f.tick(base.Add(2 * time.Minute))
	assert.Zero(t, sum.Dispatched)
	assert.Empty(t, f.messages(a))
}

func TestRetries(t *testing.T) {
	f := newFixture(t)
	a := f.agent(func(a *domain.Agent) { a.Limits.MaxConcurrentTasks = 1 })
	p := f.policy(nil)
	failed := func(n int) domain.Attempt {
		return domain.Attempt{Number: n, RunID: domain.NewID(base), Status: domain.TaskFailed, Error: "repository unreachable"}
	}
	retrying := func(retryAt time.Time, maxRetries int, attempts ...domain.Attempt) domain.Task {
		task, err := f.st.CreateTask(f.ctx, f.tenant, domain.Task{
			ID: domain.NewID(base), AgentID: a.ID, PolicyID: p.ID, Repository: "main", Type: domain.TaskBackup,
			Status: domain.TaskRetrying, Attempt: len(attempts) + 1, MaxRetries: maxRetries, Attempts: attempts,
			NotBefore: base.Add(-time.Hour), Deadline: base.Add(-30 * time.Minute), NextRetryAt: &retryAt,
			Trigger: "schedule", Error: "repository unreachable",
		})
		require.NoError(t, err)
		return task
	}

	t.Run("sent when its time comes, with a fresh start window", func(t *testing.T) {
		task := retrying(base.Add(5*time.Minute), 3, failed(1))
		sum := f.tick(base.Add(time.Minute))
		assert.Zero(t, sum.Retried)
		assert.Equal(t, domain.TaskRetrying, f.task(task.ID).Status)

		now := base.Add(5*time.Minute + 10*time.Second)
		sum = f.tick(now)
		assert.Equal(t, 1, sum.Retried)
		got := f.task(task.ID)
		assert.Equal(t, domain.TaskQueued, got.Status)
		assert.Equal(t, 2, got.Attempt)
		assert.Nil(t, got.NextRetryAt)
		assert.True(t, got.NotBefore.Equal(now))
		assert.True(t, got.Deadline.Equal(now.Add(30*time.Minute)), "the task's own 30-minute window, from now: %s", got.Deadline)
		msgs := f.messages(a)
		require.Len(t, msgs, 1)
		assert.Equal(t, task.ID, msgs[0].TaskID)
		assert.Equal(t, 2, msgs[0].Attempt)
		assert.True(t, msgs[0].Deadline.Equal(got.Deadline))

		// The retry now occupies the agent: the next one waits.
		next := retrying(now, 3, failed(1))
		sum = f.tick(now.Add(time.Minute))
		assert.Zero(t, sum.Retried)
		assert.Equal(t, 1, sum.Waiting["saturated"])
		assert.Equal(t, domain.TaskRetrying, f.task(next.ID).Status)
		_, err := f.st.TransitionTask(f.ctx, f.tenant, next.ID, domain.TaskCancelled, nil)
		require.NoError(t, err)
		_, err = f.st.TransitionTask(f.ctx, f.tenant, task.ID, domain.TaskCancelled, nil)
		require.NoError(t, err)
	})

	t.Run("a spent budget fails the task for good", func(t *testing.T) {
		f.events.take()
		task := retrying(base.Add(10*time.Minute), 3, failed(1), failed(2), failed(3), failed(4))
		sum := f.tick(base.Add(11 * time.Minute))
		assert.Equal(t, 1, sum.Failed)
		got := f.task(task.ID)
		assert.Equal(t, domain.TaskFailed, got.Status)
		assert.Contains(t, got.Error, "not retried: 4 of 4 tries failed")
		assert.Len(t, got.Attempts, 4, "the attempts stay listed")
		evs := f.events.take()
		require.Equal(t, []events.EventType{events.TypeTaskFailed}, eventTypes(evs))
		data := evs[0].Data.(events.TaskFailedData)
		assert.Equal(t, task.ID, data.TaskID)
		assert.Equal(t, 4, data.Attempts)
		assert.Empty(t, f.messages(a))
	})

	t.Run("a retry not sent within its window expires", func(t *testing.T) {
		f.events.take()
		task := retrying(base.Add(-2*time.Hour), 3, failed(1))
		sum := f.tick(base.Add(12 * time.Minute))
		assert.Equal(t, 1, sum.Expired)
		assert.Equal(t, domain.TaskExpired, f.task(task.ID).Status)
		assert.Equal(t, []events.EventType{events.TypeTaskExpired}, eventTypes(f.events.take()))
		assert.Empty(t, f.messages(a))
	})
}

func TestTasksThatDoNotStartInTimeExpire(t *testing.T) {
	f := newFixture(t)
	a := f.agent(func(a *domain.Agent) { a.Status, a.LastSeenAt = domain.AgentOffline, ptr(base.Add(-time.Hour)) })
	create := func(status domain.TaskStatus, deadline time.Time) domain.Task {
		task, err := f.st.CreateTask(f.ctx, f.tenant, domain.Task{
			ID: domain.NewID(base), AgentID: a.ID, Repository: "main", Type: domain.TaskCheck, Status: status,
			Attempt: 1, NotBefore: base.Add(-time.Hour), Deadline: deadline, Trigger: "operator",
		})
		require.NoError(t, err)
		return task
	}
	queued := create(domain.TaskQueued, base.Add(10*time.Minute))
	// A pending task whose agent is offline is kept, not sent, until its deadline.
	pending := create(domain.TaskPending, base.Add(20*time.Minute))

	sum := f.tick(base.Add(5 * time.Minute))
	assert.Zero(t, sum.Expired)
	assert.Equal(t, 1, sum.Waiting["offline"])
	assert.Equal(t, domain.TaskQueued, f.task(queued.ID).Status)
	assert.Equal(t, domain.TaskPending, f.task(pending.ID).Status)

	sum = f.tick(base.Add(11 * time.Minute))
	assert.Equal(t, 1, sum.Expired)
	got := f.task(queued.ID)
	assert.Equal(t, domain.TaskExpired, got.Status)
	assert.Equal(t, "not started by 2037-05-04T02:10:00Z", got.Error)
	require.NotNil(t, got.FinishedAt)
	evs := f.events.take()
	require.Equal(t, []events.EventType{events.TypeTaskExpired}, eventTypes(evs))
	assert.Equal(t, queued.ID, evs[0].Data.(events.TaskExpiredData).TaskID)

	sum = f.tick(base.Add(21 * time.Minute))
	assert.Equal(t, 1, sum.Expired)
	assert.Equal(t, domain.TaskExpired, f.task(pending.ID).Status)
	assert.Empty(t, f.messages(a))

	sum = f.tick(base.Add(22 * time.Minute))
	assert.Zero(t, sum.Expired, "expired once")
}

func TestSilentAgentsGoOfflineAndComeBack(t *testing.T) {
	f := newFixture(t)
	a := f.agent(func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 60 })
	quiet := f.agent(func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 60 })
	f.heartbeat(quiet, base.Add(2*time.Minute), nil)

	sum := f.tick(base.Add(3 * time.Minute))
	assert.Zero(t, sum.Offline, "three intervals have not passed")

	// Two ticks look at the silent agent at once: one announces it.
	now := base.Add(3*time.Minute + time.Second)
	f.clock.Set(now)
	var wg sync.WaitGroup
	sums := make([]scheduler.Summary, 2)
	for i := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			sums[i], err = f.scheduler(f.qm).Tick(f.ctx, now)
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, sums[0].Offline+sums[1].Offline)
	evs := f.events.take()
	require.Equal(t, []events.EventType{events.TypeAgentOffline}, eventTypes(evs))
	data := evs[0].Data.(events.AgentOfflineData)
	assert.Equal(t, a.ID, data.AgentID)
	assert.Equal(t, base, *data.LastSeenAt)
	got, err := f.st.GetAgent(f.ctx, f.tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.AgentOffline, got.Status)
	assert.Equal(t, now, *got.OfflineSince)
	quietNow, err := f.st.GetAgent(f.ctx, f.tenant, quiet.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.AgentOnline, quietNow.Status, "seen a minute ago")

	sum = f.tick(base.Add(10 * time.Minute))
	assert.Equal(t, 1, sum.Offline, "only the other agent, silent by now: the first is announced once")
	evs = f.events.take()
	require.Equal(t, []events.EventType{events.TypeAgentOffline}, eventTypes(evs))
	assert.Equal(t, quiet.ID, evs[0].Data.(events.AgentOfflineData).AgentID)

	back := base.Add(20 * time.Minute)
	f.heartbeat(a, back, nil)
	sum = f.tick(back.Add(30 * time.Second))
	assert.Equal(t, 1, sum.Online)
	evs = f.events.take()
	require.Equal(t, []events.EventType{events.TypeAgentOnline}, eventTypes(evs))
	assert.Equal(t, back, evs[0].Data.(events.AgentOnlineData).LastSeenAt)
	got, err = f.st.GetAgent(f.ctx, f.tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.AgentOnline, got.Status)
	assert.Nil(t, got.OfflineSince)

	sum = f.tick(back.Add(time.Minute))
	assert.Zero(t, sum.Online, "announced once")
	assert.Empty(t, f.events.take())
}

func TestOverdueSlotsAreMarkedAndRecover(t *testing.T) {
	f := newFixture(t)
	f.config.OverdueGrace = 30 * time.Minute
	failing := f.agent(nil)
	healthy := f.agent(nil)
	offline := f.agent(func(a *domain.Agent) { a.Status, a.LastSeenAt = domain.AgentOffline, ptr(base.Add(-time.Hour)) })
	p := f.policy(nil)
	for _, a := range []domain.Agent{failing, healthy, offline} {
		f.assign(p, a, base)
	}

	sum := f.tick(base)
	assert.Equal(t, 2, sum.Dispatched)
	assert.Equal(t, 1, sum.Waiting["offline"])
	// The healthy agent's backup succeeds in time; the failing agent's never does.
	require.NoError(t, f.st.MarkSlotSucceeded(f.ctx, f.tenant, p.ID, healthy.ID, domain.SlotBackup, base.Add(10*time.Minute)))

	sum = f.tick(base.Add(29 * time.Minute))
	assert.Zero(t, sum.Overdue, "within the grace")

	sum = f.tick(base.Add(31 * time.Minute))
	assert.Equal(t, 2, sum.Overdue, "the failing agent's and the offline agent's backups")
	evs := f.events.take()
	overdue := map[string]events.SlotOverdueData{}
	for _, ev := range evs {
		if ev.Type == events.TypeSlotOverdue {
			d := ev.Data.(events.SlotOverdueData)
			overdue[d.AgentID] = d
		}
	}
	require.Len(t, overdue, 2)
	assert.Equal(t, domain.SlotBackup, overdue[failing.ID].Kind)
	assert.Nil(t, overdue[failing.ID].LastSuccessAt)
	assert.Equal(t, "agent offline", overdue[offline.ID].WaitReason)
	assert.True(t, f.slot(p, failing, domain.SlotBackup).Overdue)
	assert.True(t, f.slot(p, offline, domain.SlotBackup).Overdue)
	assert.False(t, f.slot(p, healthy, domain.SlotBackup).Overdue)

	sum = f.tick(base.Add(40 * time.Minute))
	assert.Zero(t, sum.Overdue, "announced once")

	// The failing agent's backup succeeds at last (the agent API records it).
	require.NoError(t, f.st.MarkSlotSucceeded(f.ctx, f.tenant, p.ID, failing.ID, domain.SlotBackup, base.Add(45*time.Minute)))
	assert.False(t, f.slot(p, failing, domain.SlotBackup).Overdue)
	sum = f.tick(base.Add(61 * time.Minute))
	assert.Zero(t, sum.Recovered, "the next look comes as long after it was found overdue as it had been overdue then")
	sum = f.tick(base.Add(63 * time.Minute))
	assert.Equal(t, 1, sum.Recovered)
	// The tasks of the first runs, never started in this test, expired at the hour.
	evs = only(f.events.take(), events.TypeSlotRecovered, events.TypeSlotOverdue)
	require.Equal(t, []events.EventType{events.TypeSlotRecovered}, eventTypes(evs))
	rec := evs[0].Data.(events.SlotRecoveredData)
	assert.Equal(t, failing.ID, rec.AgentID)
	assert.Equal(t, base.Add(45*time.Minute), rec.LastSuccessAt)

	sum = f.tick(base.Add(2 * time.Hour))
	assert.Zero(t, sum.Recovered, "recovered once")
}

func TestHandleEventRunsATickAtTheScheduledTime(t *testing.T) {
	f := newFixture(t)
	a := f.agent(nil)
	p := f.policy(nil)
	f.assign(p, a, base)
	// What EventBridge delivers for a rule with a schedule expression.
	const scheduled = `{
		"version": "0",
		"id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
		"detail-type": "Scheduled Event",
		"source": "aws.events",
		"account": "123456789012",
		"time": "2037-05-04T02:01:00Z",
		"region": "eu-central-1",
		"resources": ["arn:aws:events:eu-central-1:123456789012:rule/restic-monitor-prod-tick"],
		"detail": {}
	}`
	var ev lambdaevents.CloudWatchEvent
	require.NoError(t, json.Unmarshal([]byte(scheduled), &ev))
	f.clock.Set(base.Add(time.Minute))
	s := f.scheduler(f.qm)
	sum, err := s.HandleEvent(f.ctx, ev)
	require.NoError(t, err)
	assert.Equal(t, base.Add(time.Minute), sum.Now)
	assert.Equal(t, 1, sum.Dispatched)
	msgs := f.messages(a)
	require.Len(t, msgs, 1)
	assert.Equal(t, base.Add(time.Minute), msgs[0].NotBefore)

	// A tick run by hand names its time in the detail.
	ev.Detail = json.RawMessage(`{"time": "2037-05-04T03:00:30Z"}`)
	sum, err = s.HandleEvent(f.ctx, ev)
	require.NoError(t, err)
	assert.Equal(t, base.Add(time.Hour+30*time.Second), sum.Now)
	assert.Equal(t, 1, sum.Claimed, "the next hourly run")
}
