package store_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// capacityOf reads an agent's capacity as the scheduler does.
func capacityOf(t *testing.T, f *fixture, tenant, agentID string) store.Capacity {
	t.Helper()
	ref := store.AgentRef{TenantID: tenant, AgentID: agentID}
	got, err := f.st.GetCapacities(f.ctx, []store.AgentRef{ref})
	require.NoError(t, err)
	c, ok := got[ref]
	require.True(t, ok, "no capacity for agent %s", agentID)
	return c
}

// activeIDs lists the task IDs on an agent's capacity item, sorted.
func activeIDs(t *testing.T, f *fixture, tenant, agentID string) []string {
	t.Helper()
	ids := []string{}
	for _, a := range capacityOf(t, f, tenant, agentID).Active {
		ids = append(ids, a.ID)
	}
	sort.Strings(ids)
	return ids
}

// rawActive returns the entries of an agent's capacity item as stored, and whether it is counted.
func rawActive(f *fixture, tenant, agentID string) ([]string, bool) {
	f.t.Helper()
	it := f.rawItem("TENANT#"+tenant, "CAPACITY#"+agentID)
	require.NotNil(f.t, it, "capacity item of agent %s", agentID)
	var entries []string
	if ss, ok := it["active"].(*types.AttributeValueMemberSS); ok {
		entries = ss.Value
	}
	sort.Strings(entries)
	counted, _ := it["counted"].(*types.AttributeValueMemberBOOL)
	return entries, counted != nil && counted.Value
}

// requests counts the requests a client sends, by operation.
type requests struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *requests) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("countRequests",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				r.mu.Lock()
				r.n[awsmiddleware.GetOperationName(ctx)]++
				r.mu.Unlock()
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	})
}

func (r *requests) take() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	r.n = map[string]int{}
	return n
}

// counted returns a store on f's table whose requests are counted.
func counted(f *fixture) (*store.Store, *requests) {
	r := &requests{n: map[string]int{}}
	st := store.New(dynamodb.NewFromConfig(f.cfg, testenv.StrictTransactions, r.option), f.st.Table())
	st.Now = f.st.Now
	return st, r
}

func TestCapacityFollowsEveryTransition(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	other := f.agent(tenant)
	f.task(tenant, other.ID)
	assert.Empty(t, activeIDs(t, f, tenant, a.ID), "a new agent is idle")

	// Each path starts from a new task in its first state and makes the moves after it.
	paths := [][]domain.TaskStatus{
		{domain.TaskPending, domain.TaskQueued, domain.TaskRunning, domain.TaskSucceeded},
		{domain.TaskPending, domain.TaskQueued, domain.TaskRunning, domain.TaskPartial},
		{domain.TaskPending, domain.TaskRunning, domain.TaskFailed},
		{domain.TaskPending, domain.TaskQueued, domain.TaskRunning, domain.TaskRetrying, domain.TaskQueued, domain.TaskRunning, domain.TaskCancelled},
		{domain.TaskPending, domain.TaskQueued, domain.TaskRetrying, domain.TaskExpired},
		{domain.TaskPending, domain.TaskQueued, domain.TaskExpired},
		{domain.TaskPending, domain.TaskExpired},
		{domain.TaskPending, domain.TaskCancelled},
		{domain.TaskPending, domain.TaskQueued, domain.TaskFailed},
		{domain.TaskRetrying, domain.TaskFailed},
		{domain.TaskRetrying, domain.TaskCancelled},
		{domain.TaskRetrying, domain.TaskQueued, domain.TaskCancelled},
		{domain.TaskRunning, domain.TaskRetrying, domain.TaskCancelled},
		{domain.TaskSucceeded},
	}
	status := map[string]domain.TaskStatus{}
	want := func() []string {
		ids := []string{}
		for id, s := range status {
			if s.Active() {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		return ids
	}
	for p, path := range paths {
		tk := f.task(tenant, a.ID, func(t *domain.Task) {
			t.Status = path[0]
			if path[0] == domain.TaskRetrying {
				t.NextRetryAt = ptr(f.now)
			}
		})
		status[tk.ID] = path[0]
		assert.Equal(t, want(), activeIDs(t, f, tenant, a.ID), "path %d: created %s", p, path[0])
		for _, to := range path[1:] {
			_, err := f.st.TransitionTask(f.ctx, tenant, tk.ID, to, nil)
			require.NoError(t, err, "path %d: %s", p, to)
			status[tk.ID] = to
			assert.Equal(t, want(), activeIDs(t, f, tenant, a.ID), "path %d: after %s", p, to)
		}
	}
	assert.Len(t, activeIDs(t, f, tenant, other.ID), 1, "the other agent's task stays on its own item")

	// A move the state machine refuses changes nothing.
	done := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskSucceeded })
	_, err := f.st.TransitionTask(f.ctx, tenant, done.ID, domain.TaskQueued, nil)
	require.ErrorIs(t, err, domain.ErrInvalidTransition)
	assert.Equal(t, want(), activeIDs(t, f, tenant, a.ID))
}

func TestCapacityCountsEachTaskAsTheTypeItCountsAgainst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	backup := f.task(tenant, a.ID)
	prune := f.task(tenant, a.ID, func(t *domain.Task) { t.Type, t.Params = domain.TaskForget, domain.TaskParams{Prune: true} })
	forget := f.task(tenant, a.ID, func(t *domain.Task) { t.Type = domain.TaskForget })
	check := f.task(tenant, a.ID, func(t *domain.Task) { t.Type, t.Status = domain.TaskCheck, domain.TaskRunning })

	got := capacityOf(t, f, tenant, a.ID).Active
	assert.ElementsMatch(t, []store.ActiveTask{
		{ID: backup.ID, Type: domain.TaskBackup}, {ID: prune.ID, Type: domain.TaskPrune},
		{ID: forget.ID, Type: domain.TaskForget}, {ID: check.ID, Type: domain.TaskCheck},
	}, got)
	entries, isCounted := rawActive(f, tenant, a.ID)
	assert.True(t, isCounted)
	assert.Contains(t, entries, "prune#"+prune.ID, "stored as <type>#<task ID>")

	_, err := f.st.TransitionTask(f.ctx, tenant, prune.ID, domain.TaskCancelled, nil)
	require.NoError(t, err)
	_, err = f.st.TransitionTask(f.ctx, tenant, check.ID, domain.TaskSucceeded, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"backup#" + backup.ID, "forget#" + forget.ID}, func() []string { e, _ := rawActive(f, tenant, a.ID); return e }())

	// An active task cannot change what it counts as: its entry would no longer be found.
	_, err = f.st.TransitionTask(f.ctx, tenant, forget.ID, domain.TaskQueued, func(t *domain.Task) { t.Params.Prune = true })
	require.Error(t, err)
	stored, err := f.st.GetTask(f.ctx, tenant, forget.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.TaskPending, stored.Status, "nothing was written")
	assert.False(t, stored.Params.Prune)

	// The last task out leaves no set behind, and the item says the agent is idle.
	for _, id := range []string{backup.ID, forget.ID} {
		_, err := f.st.TransitionTask(f.ctx, tenant, id, domain.TaskCancelled, nil)
		require.NoError(t, err)
	}
	entries, isCounted = rawActive(f, tenant, a.ID)
	assert.Empty(t, entries)
	assert.True(t, isCounted)
	assert.Empty(t, activeIDs(t, f, tenant, a.ID))
}

func TestReportsKeepCapacity(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	tk := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskQueued })
	run := domain.Run{ID: f.id(), Type: tk.Type, Attempt: 1, Status: domain.TaskRunning, StartedAt: f.now}

	// Started: still active, one entry.
	_, err := f.st.UpdateTaskRun(f.ctx, tenant, tk.ID, "", func(t domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
		t.Status, t.RunID, t.StartedAt = domain.TaskRunning, run.ID, &f.now
		return store.TaskRunChange{Task: &t, NewRun: &run}, nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{tk.ID}, activeIDs(t, f, tenant, a.ID))

	// Failed, to be retried: it leaves its agent while it waits, in the same transaction as the
	// retry budget.
	_, err = f.st.UpdateTaskRun(f.ctx, tenant, tk.ID, "", func(t domain.Task, r *domain.Run) (store.TaskRunChange, error) {
		retryAt := f.now.Add(time.Minute)
		t.Status, t.NextRetryAt = domain.TaskRetrying, &retryAt
		done := *r
		done.Status = domain.TaskFailed
		return store.TaskRunChange{Task: &t, Run: &done, Retry: &store.RetryUse{At: f.now, Limit: 5}}, nil
	})
	require.NoError(t, err)
	assert.Empty(t, activeIDs(t, f, tenant, a.ID))

	// Sent again and started again, then finished.
	retry, err := f.st.GetTask(f.ctx, tenant, tk.ID)
	require.NoError(t, err)
	require.Equal(t, []error{nil}, f.st.MarkTasksQueued(f.ctx, []domain.Task{retry}))
	assert.Equal(t, []string{tk.ID}, activeIDs(t, f, tenant, a.ID))
	second := domain.Run{ID: f.id(), Type: tk.Type, Attempt: 2, Status: domain.TaskRunning, StartedAt: f.now}
	_, err = f.st.UpdateTaskRun(f.ctx, tenant, tk.ID, "", func(t domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
		t.Status, t.RunID = domain.TaskRunning, second.ID
		return store.TaskRunChange{Task: &t, NewRun: &second}, nil
	})
	require.NoError(t, err)
	_, err = f.st.UpdateTaskRun(f.ctx, tenant, tk.ID, "", func(t domain.Task, r *domain.Run) (store.TaskRunChange, error) {
		t.Status = domain.TaskSucceeded
		done := *r
		done.Status = domain.TaskSucceeded
		return store.TaskRunChange{Task: &t, Run: &done}, nil
	})
	require.NoError(t, err)
	assert.Empty(t, activeIDs(t, f, tenant, a.ID))
}

func TestConcurrentTransitionsKeepCapacity(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	var tasks []domain.Task
	for range 24 {
		tasks = append(tasks, f.task(tenant, a.ID))
	}
	// Every task of the agent moves at once: a third are cancelled, a third start, and for the
	// rest a start races a cancellation of the same task.
	var wg sync.WaitGroup
	for i, tk := range tasks {
		moves := [][]domain.TaskStatus{{domain.TaskCancelled}, {domain.TaskRunning}, {domain.TaskRunning, domain.TaskCancelled}}[i%3]
		for _, to := range moves {
			wg.Go(func() {
				_, err := f.st.TransitionTask(f.ctx, tenant, tk.ID, to, nil)
				if err != nil {
					assert.ErrorIs(t, err, domain.ErrInvalidTransition, "task %d to %s", i, to)
				}
			})
		}
	}
	wg.Wait()
	var want []string
	for _, tk := range tasks {
		got, err := f.st.GetTask(f.ctx, tenant, tk.ID)
		require.NoError(t, err)
		if got.Status.Active() {
			want = append(want, tk.ID)
		}
	}
	sort.Strings(want)
	assert.Equal(t, want, activeIDs(t, f, tenant, a.ID))
	assert.GreaterOrEqual(t, len(want), 8, "the tasks that only started are active")
}

func TestClaimsOfOneAgentShareOneCapacityUpdate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	st, reqs := counted(f)
	busy := f.agent(tenant, offline)
	calm := f.agent(tenant, offline)
	next := f.now.Add(time.Hour)
	var claims []store.Claim
	for _, sl := range f.dueSlots(tenant, busy.ID, 6) {
		c := f.claim(sl, next)
		c.CheckAt = next
		claims = append(claims, c)
	}
	for _, sl := range f.dueSlots(tenant, calm.ID, 3) {
		claims = append(claims, f.claim(sl, next))
	}
	// The agents' claims come interleaved: a transaction still holds each agent's capacity item
	// once.
	claims[1], claims[7] = claims[7], claims[1]
	reqs.take()
	results := st.ClaimSlots(f.ctx, claims)
	for i, r := range results {
		assert.Equal(t, store.ClaimResult{Won: true}, r, "claim %d", i)
	}
	assert.Equal(t, map[string]int{"TransactWriteItems": 1}, reqs.take(), "one transaction for all nine claims")
	wantIDs := func(agentID string) []string {
		ids := []string{}
		for _, c := range claims {
			if c.Slot.AgentID == agentID {
				ids = append(ids, c.Task.ID)
			}
		}
		sort.Strings(ids)
		return ids
	}
	assert.Equal(t, wantIDs(busy.ID), activeIDs(t, f, tenant, busy.ID))
	assert.Equal(t, wantIDs(calm.ID), activeIDs(t, f, tenant, calm.ID))
	groups := store.GroupClaims(claims)
	assert.Len(t, groups, 1)
}

func TestClaimsOfAnAgentBeyondOneTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	st, reqs := counted(f)
	big := f.agent(tenant, offline)
	small := f.agent(tenant, offline)
	next := f.now.Add(time.Hour)
	var claims []store.Claim
	// 40 claims of three actions, and the capacity update: more than one transaction holds.
	for _, sl := range f.dueSlots(tenant, big.ID, 40) {
		c := f.claim(sl, next)
		c.CheckAt = next
		claims = append(claims, c)
	}
	for _, sl := range f.dueSlots(tenant, small.ID, 2) {
		claims = append(claims, f.claim(sl, next))
	}
	groups := store.GroupClaims(claims)
	require.Len(t, groups, 2)
	total := 0
	for _, g := range groups {
		total += len(g)
	}
	assert.Equal(t, len(claims), total, "every claim is in a group")

	// One claim of the big agent is lost: its transaction is decided claim by claim.
	moved := claims[5].Slot
	moved.NextRunAt = &next
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, moved))
	reqs.take()
	results := st.ClaimSlots(f.ctx, claims)
	var won []string
	for i, r := range results {
		if i == 5 {
			assert.Equal(t, store.ClaimResult{}, r)
			continue
		}
		assert.Equal(t, store.ClaimResult{Won: true}, r, "claim %d", i)
		if claims[i].Slot.AgentID == big.ID {
			won = append(won, claims[i].Task.ID)
		}
	}
	sort.Strings(won)
	assert.Equal(t, won, activeIDs(t, f, tenant, big.ID), "the lost claim's task is not counted")
	assert.Len(t, activeIDs(t, f, tenant, small.ID), 2)
	assert.Greater(t, reqs.take()["TransactWriteItems"], 2)
}

func TestMissingOrUncountedCapacityIsRecounted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	until := f.now.Add(time.Hour)
	a := f.agent(tenant, func(a *domain.Agent) { a.BackoffUntil, a.BackoffReason = &until, "repository locked" })
	running := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskRunning })
	queued := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskQueued })
	finished := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskRunning })
	_, err := f.st.TransitionTask(f.ctx, tenant, finished.ID, domain.TaskSucceeded, nil)
	require.NoError(t, err)

	// An agent from before capacity items: its tasks are there, its item is not.
	f.rawDelete("TENANT#"+tenant, "CAPACITY#"+a.ID)
	st, reqs := counted(f)
	c, err := st.GetCapacities(f.ctx, []store.AgentRef{{TenantID: tenant, AgentID: a.ID}})
	require.NoError(t, err)
	got := c[store.AgentRef{TenantID: tenant, AgentID: a.ID}]
	assert.ElementsMatch(t, []string{running.ID, queued.ID}, idsOf(got.Active, func(a store.ActiveTask) string { return a.ID }),
		"a missing item is recounted, never taken for an idle agent")
	require.NotNil(t, got.BackoffUntil, "the backoff comes from the agent")
	assert.Equal(t, until, *got.BackoffUntil)
	assert.Equal(t, "repository locked", got.BackoffReason)
	assert.Equal(t, 1, reqs.take()["Query"], "one look at the agent's active tasks")
	_, isCounted := rawActive(f, tenant, a.ID)
	assert.True(t, isCounted, "the recount is stored")
	capacityOf(t, f, tenant, a.ID)
	assert.Zero(t, reqs.take()["Query"], "a counted item is read as it is")

	// A change before the first recount creates an item that lacks the older tasks.
	f.rawDelete("TENANT#"+tenant, "CAPACITY#"+a.ID)
	fresh := f.task(tenant, a.ID)
	entries, isCounted := rawActive(f, tenant, a.ID)
	assert.Equal(t, []string{"backup#" + fresh.ID}, entries)
	assert.False(t, isCounted, "an item a task change created is not counted")
	assert.ElementsMatch(t, []string{running.ID, queued.ID, fresh.ID}, activeIDs(t, f, tenant, a.ID))

	// A removal on an agent without an item leaves one that is not counted either.
	f.rawDelete("TENANT#"+tenant, "CAPACITY#"+a.ID)
	_, err = f.st.TransitionTask(f.ctx, tenant, fresh.ID, domain.TaskCancelled, nil)
	require.NoError(t, err)
	_, isCounted = rawActive(f, tenant, a.ID)
	assert.False(t, isCounted)
	assert.ElementsMatch(t, []string{running.ID, queued.ID}, activeIDs(t, f, tenant, a.ID))
}

func TestRecountRepairsAWrongItem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	running := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskRunning })
	done := f.task(tenant, a.ID, func(t *domain.Task) { t.Status = domain.TaskSucceeded })
	other := f.agent(tenant)
	elsewhere := f.task(tenant, other.ID)

	// A counted item that lost a task and lists tasks that are not the agent's active ones.
	_, err := f.db.PutItem(f.ctx, &dynamodb.PutItemInput{TableName: aws.String(f.st.Table()), Item: map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "TENANT#" + tenant}, "SK": &types.AttributeValueMemberS{Value: "CAPACITY#" + a.ID},
		"entity": &types.AttributeValueMemberS{Value: "capacity"}, "tenantId": &types.AttributeValueMemberS{Value: tenant},
		"agentId": &types.AttributeValueMemberS{Value: a.ID}, "counted": &types.AttributeValueMemberBOOL{Value: true},
		"rev":    &types.AttributeValueMemberN{Value: "7"},
		"active": &types.AttributeValueMemberSS{Value: []string{"backup#" + done.ID, "backup#" + elsewhere.ID, "check#" + f.id()}},
	}})
	require.NoError(t, err)
	assert.Len(t, activeIDs(t, f, tenant, a.ID), 3, "a counted item is trusted")

	c, err := f.st.RecountCapacity(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, []store.ActiveTask{{ID: running.ID, Type: domain.TaskBackup}}, c.Active)
	assert.Equal(t, []string{running.ID}, activeIDs(t, f, tenant, a.ID))
	assert.Equal(t, []string{elsewhere.ID}, activeIDs(t, f, tenant, other.ID))
}

func TestRecountsRacingTaskChangesLoseNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	for round := range 5 {
		f.rawDelete("TENANT#"+tenant, "CAPACITY#"+a.ID)
		var wg sync.WaitGroup
		created := make([]domain.Task, 6)
		for i := range created {
			wg.Go(func() {
				var err error
				created[i], err = f.st.CreateTask(f.ctx, tenant, newTask(f.id(), a.ID, f.now))
				assert.NoError(t, err)
			})
		}
		for range 3 {
			wg.Go(func() {
				_, err := f.st.RecountCapacity(f.ctx, tenant, a.ID)
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		var want []string
		for _, tk := range created {
			want = append(want, tk.ID)
		}
		// Earlier rounds' tasks end, so each round starts from an idle agent.
		got := activeIDs(t, f, tenant, a.ID)
		assert.ElementsMatch(t, want, got, "round %d", round)
		for _, id := range want {
			_, err := f.st.TransitionTask(f.ctx, tenant, id, domain.TaskCancelled, nil)
			require.NoError(t, err)
		}
	}
}

func TestHeartbeatsCopyABackoffOnlyWhenItChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	st, reqs := counted(f)
	heartbeat := func(until *time.Time, reason string) {
		t.Helper()
		_, err := st.ModifyAgent(f.ctx, tenant, a.ID, func(a *domain.Agent) error {
			a.LastSeenAt, a.BackoffUntil, a.BackoffReason = &f.now, until, reason
			return nil
		})
		require.NoError(t, err)
	}
	until := f.now.Add(30 * time.Minute)

	reqs.take()
	heartbeat(nil, "")
	assert.Equal(t, map[string]int{"GetItem": 1, "PutItem": 1}, reqs.take(), "no backoff, none before: the agent alone")
	heartbeat(&until, "repository locked")
	assert.Equal(t, map[string]int{"GetItem": 1, "TransactWriteItems": 1}, reqs.take(), "a new backoff: agent and capacity item together")
	c := capacityOf(t, f, tenant, a.ID)
	require.NotNil(t, c.BackoffUntil)
	assert.Equal(t, until, *c.BackoffUntil)
	assert.Equal(t, "repository locked", c.BackoffReason)

	reqs.take()
	heartbeat(&until, "repository locked")
	assert.Equal(t, map[string]int{"GetItem": 1, "PutItem": 1}, reqs.take(), "the same backoff again: no capacity write")
	heartbeat(&until, "disk full")
	assert.Equal(t, "disk full", capacityOf(t, f, tenant, a.ID).BackoffReason, "a new reason is a change")
	heartbeat(nil, "")
	c = capacityOf(t, f, tenant, a.ID)
	assert.Nil(t, c.BackoffUntil, "a backoff that ends is cleared")
	assert.Empty(t, c.BackoffReason)
	agent, err := f.st.GetAgent(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Nil(t, agent.BackoffUntil)
}

func TestDeletingAnAgentRemovesItsCapacity(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	f.task(tenant, a.ID)
	require.NotNil(t, f.rawItem("TENANT#"+tenant, "CAPACITY#"+a.ID))
	require.NoError(t, f.st.DeleteAgent(f.ctx, tenant, a.ID))
	assert.Nil(t, f.rawItem("TENANT#"+tenant, "CAPACITY#"+a.ID))
}

func TestImportSeedsCountedCapacity(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	var b store.Bulk
	until := f.now.Add(time.Hour)
	var refs []store.AgentRef
	want := map[store.AgentRef][]string{}
	for i := range 120 {
		a := newAgent(f.id(), f.now)
		a.TenantID, a.Version = tenant, 1
		if i == 3 {
			a.BackoffUntil, a.BackoffReason = &until, "disk full"
		}
		b.Agents = append(b.Agents, a)
		ref := store.AgentRef{TenantID: tenant, AgentID: a.ID}
		refs = append(refs, ref)
		want[ref] = []string{}
		for _, status := range []domain.TaskStatus{domain.TaskRunning, domain.TaskSucceeded, domain.TaskPending}[:i%4] {
			tk := newTask(f.id(), a.ID, f.now)
			tk.TenantID, tk.Status = tenant, status
			b.Tasks = append(b.Tasks, tk)
			if status.Active() {
				want[ref] = append(want[ref], tk.ID)
			}
		}
	}
	// A task of an agent the import does not hold.
	stranger := f.agent(tenant)
	own := f.task(tenant, stranger.ID, func(t *domain.Task) { t.Status = domain.TaskRunning })
	imported := newTask(f.id(), stranger.ID, f.now)
	imported.TenantID = tenant
	b.Tasks = append(b.Tasks, imported)
	require.NoError(t, f.st.Import(f.ctx, b, 4))

	st, reqs := counted(f)
	got, err := st.GetCapacities(f.ctx, refs)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"BatchGetItem": 2}, reqs.take(), "120 counted items in two requests, no recount")
	for _, ref := range refs {
		ids := []string{}
		for _, at := range got[ref].Active {
			ids = append(ids, at.ID)
		}
		assert.ElementsMatch(t, want[ref], ids, "agent %s", ref.AgentID)
	}
	require.NotNil(t, got[refs[3]].BackoffUntil)
	assert.Equal(t, until, *got[refs[3]].BackoffUntil)
	assert.Equal(t, "disk full", got[refs[3]].BackoffReason)
	assert.ElementsMatch(t, []string{own.ID, imported.ID}, activeIDs(t, f, tenant, stranger.ID),
		"an agent only named by imported tasks is recounted")
}

func TestCapacitiesOfManyAgents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	beta := f.tenant("beta")
	var refs []store.AgentRef
	want := map[store.AgentRef]int{}
	for i := range 6 {
		ten := []string{tenant, beta}[i%2]
		a := f.agent(ten)
		ref := store.AgentRef{TenantID: ten, AgentID: a.ID}
		refs = append(refs, ref, ref)
		for range i {
			f.task(ten, a.ID)
		}
		want[ref] = i
	}
	// An agent that does not exist has no tasks: recounted, it is idle.
	ghost := store.AgentRef{TenantID: tenant, AgentID: f.id()}
	refs = append(refs, ghost)
	want[ghost] = 0
	got, err := f.st.GetCapacities(f.ctx, refs)
	require.NoError(t, err)
	n := map[store.AgentRef]int{}
	for ref, c := range got {
		n[ref] = len(c.Active)
	}
	assert.Equal(t, want, n)
	none, err := f.st.GetCapacities(f.ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.Nil(t, f.rawItem("TENANT#"+tenant, "CAPACITY#"+ghost.AgentID), "no item is stored for an agent that does not exist")
}
