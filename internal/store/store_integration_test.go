package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// newStore returns a store on a fresh table, with the clock at the real present so that TTLs
// written by the tests do not make the table's sweeper remove items mid-test.
func newStore(t *testing.T) (*store.Store, *dynamodb.Client) {
	t.Helper()
	cfg := testenv.AWS(t)
	db := dynamodb.NewFromConfig(cfg)
	return store.New(db, testenv.Table(t, cfg)), db
}

// world is one tenant with one of everything.
type world struct {
	tenant                 string
	keyID, tokenID         string
	agentID, policyID      string
	taskID, runID, snapID  string
	repository, policyName string
}

func build(t *testing.T, st *store.Store, tenant string) world {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	w := world{tenant: tenant, keyID: domain.NewID(now), tokenID: domain.NewID(now), agentID: domain.NewID(now),
		repository: "main-repo", policyName: "daily-home", snapID: "0123456789abcdef"}
	require.NoError(t, st.CreateTenant(ctx, domain.Tenant{ID: tenant, Name: tenant, CreatedAt: now}))
	require.NoError(t, st.CreateAPIKey(ctx, tenant, domain.APIKey{ID: w.keyID, Name: "admin", Role: domain.RoleAdmin, SecretHash: "h", CreatedAt: now}))
	require.NoError(t, st.CreateEnrollmentToken(ctx, tenant, domain.EnrollmentToken{ID: w.tokenID, SecretHash: "h", MaxUses: 2, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	seen := now
	_, err := st.RegisterAgent(ctx, tenant, w.tokenID, domain.Agent{
		ID: w.agentID, Hostname: "db-1", OS: "linux", Arch: "amd64", AgentVersion: "1.0.0", Status: domain.AgentOnline,
		LastSeenAt: &seen, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60, Labels: map[string]string{"env": "prod"}, SecretHash: "h",
	})
	require.NoError(t, err)
	_, err = st.CreateRepository(ctx, tenant, domain.Repository{Name: w.repository, Backend: domain.BackendLocal, Location: "/srv/restic"})
	require.NoError(t, err)
	p, err := st.CreatePolicy(ctx, tenant, domain.Policy{ID: domain.NewID(now), Name: w.policyName, Enabled: true, Repository: w.repository,
		Paths: []string{"/home"}, Schedule: domain.Schedule{Cron: "@daily"}, Retention: domain.Retention{KeepLast: 7}})
	require.NoError(t, err)
	w.policyID = p.ID
	due := now.Add(-time.Minute)
	require.NoError(t, st.Assign(ctx, tenant, w.policyID, w.agentID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &due}}))
	task, err := st.CreateTask(ctx, tenant, domain.Task{ID: domain.NewID(now), AgentID: w.agentID, PolicyID: w.policyID, Repository: w.repository,
		Type: domain.TaskBackup, Status: domain.TaskQueued, Attempt: 1, MaxRetries: 3, NotBefore: now, Deadline: now.Add(time.Hour)})
	require.NoError(t, err)
	w.taskID = task.ID
	r, err := st.CreateRun(ctx, tenant, domain.Run{ID: domain.NewID(now), AgentID: w.agentID, TaskID: w.taskID, PolicyID: w.policyID,
		Type: domain.TaskBackup, Attempt: 1, Status: domain.TaskRunning, StartedAt: now})
	require.NoError(t, err)
	w.runID = r.ID
	_, err = st.AppendLog(ctx, tenant, domain.LogChunk{RunID: w.runID, Seq: 0, Lines: []string{"scan finished"}, ExpiresAt: now.Add(24 * time.Hour)})
	require.NoError(t, err)
	require.NoError(t, st.PutSnapshots(ctx, tenant, w.agentID, []domain.Snapshot{{ID: w.snapID, Repository: w.repository, Time: now, Hostname: "db-1", Paths: []string{"/home"}}}))
	return w
}

func TestTenantBSeesNothingOfTenantA(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := context.Background()
	a := build(t, st, "tenant-a")
	b := build(t, st, "tenant-b")
	all := store.Page{Limit: 100}

	notFound := map[string]error{}
	_, notFound["GetAgent"] = st.GetAgent(ctx, b.tenant, a.agentID)
	_, notFound["GetAPIKey"] = st.GetAPIKey(ctx, b.tenant, a.keyID)
	_, notFound["GetPolicy"] = st.GetPolicy(ctx, b.tenant, a.policyID)
	_, notFound["GetTask"] = st.GetTask(ctx, b.tenant, a.taskID)
	_, notFound["GetRun"] = st.GetRun(ctx, b.tenant, a.runID)
	_, notFound["GetSlot"] = st.GetSlot(ctx, b.tenant, a.policyID, a.agentID, domain.SlotBackup)
	_, _, notFound["GetTenant"] = st.GetTenant(ctx, "tenant-c")
	for name, err := range notFound {
		assert.ErrorIs(t, err, domain.ErrNotFound, name)
	}
	// Repositories share a name across tenants: B's own is returned, never A's.
	repo, err := st.GetRepository(ctx, b.tenant, a.repository)
	require.NoError(t, err)
	assert.Equal(t, b.tenant, repo.TenantID)

	empty := map[string]int{}
	count := func(name string, n int, err error) {
		require.NoError(t, err, name)
		empty[name] = n
	}
	ids, _, err := st.ListAgentPolicies(ctx, b.tenant, a.agentID, all)
	count("ListAgentPolicies", len(ids), err)
	ids, _, err = st.ListPolicyAgents(ctx, b.tenant, a.policyID, all)
	count("ListPolicyAgents", len(ids), err)
	tasks, _, err := st.ListTasks(ctx, b.tenant, store.TaskFilter{AgentID: a.agentID}, all)
	count("ListTasks by A's agent", len(tasks), err)
	runs, _, err := st.ListRuns(ctx, b.tenant, store.RunFilter{AgentID: a.agentID}, all)
	count("ListRuns by A's agent", len(runs), err)
	runs, _, err = st.ListRuns(ctx, b.tenant, store.RunFilter{PolicyID: a.policyID}, all)
	count("ListRuns by A's policy", len(runs), err)
	chunks, _, err := st.ListLog(ctx, b.tenant, a.runID, all)
	count("ListLog", len(chunks), err)
	snaps, _, err := st.ListSnapshots(ctx, b.tenant, a.agentID, all)
	count("ListSnapshots", len(snaps), err)
	slots, _, err := st.ListPolicySlots(ctx, b.tenant, a.policyID, all)
	count("ListPolicySlots", len(slots), err)
	n, err := st.CountActiveTasks(ctx, b.tenant, a.agentID)
	count("CountActiveTasks", n, err)
	for name, got := range empty {
		assert.Zero(t, got, "%s with tenant B on tenant A's IDs", name)
	}

	// Tenant-wide listings of B hold B's items only.
	agents, _, err := st.ListAgents(ctx, b.tenant, store.AgentFilter{}, all)
	require.NoError(t, err)
	require.Len(t, agents, 1)
	assert.Equal(t, b.agentID, agents[0].ID)
	keys, _, err := st.ListAPIKeys(ctx, b.tenant, all)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Equal(t, b.keyID, keys[0].ID)
	tokens, _, err := st.ListEnrollmentTokens(ctx, b.tenant, all)
	require.NoError(t, err)
	require.Len(t, tokens, 1)
	assert.Equal(t, b.tokenID, tokens[0].ID)
	policies, _, err := st.ListPolicies(ctx, b.tenant, store.PolicyFilter{}, all)
	require.NoError(t, err)
	require.Len(t, policies, 1)
	assert.Equal(t, b.policyID, policies[0].ID)
	repos, _, err := st.ListRepositories(ctx, b.tenant, all)
	require.NoError(t, err)
	require.Len(t, repos, 1)
	assert.Equal(t, b.tenant, repos[0].TenantID)
	tasks, _, err = st.ListTasks(ctx, b.tenant, store.TaskFilter{}, all)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	assert.Equal(t, b.taskID, tasks[0].ID)
	runs, _, err = st.ListRuns(ctx, b.tenant, store.RunFilter{}, all)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, b.runID, runs[0].ID)

	// Writes with tenant B on A's IDs fail and leave A's items as they were.
	agentBefore, err := st.GetAgent(ctx, a.tenant, a.agentID)
	require.NoError(t, err)
	foreign := agentBefore
	foreign.Labels = map[string]string{"owner": "b"}
	_, err = st.UpdateAgent(ctx, b.tenant, foreign)
	assert.Error(t, err, "UpdateAgent")
	_, err = st.ModifyAgent(ctx, b.tenant, a.agentID, func(*domain.Agent) error { return nil })
	assert.ErrorIs(t, err, domain.ErrNotFound, "ModifyAgent")
	assert.ErrorIs(t, st.DeleteAgent(ctx, b.tenant, a.agentID), domain.ErrNotFound, "DeleteAgent")
	assert.ErrorIs(t, st.DeletePolicy(ctx, b.tenant, a.policyID), domain.ErrNotFound, "DeletePolicy")
	assert.ErrorIs(t, st.Assign(ctx, b.tenant, a.policyID, a.agentID, nil), domain.ErrNotFound, "Assign")
	assert.ErrorIs(t, st.Unassign(ctx, b.tenant, a.policyID, a.agentID), domain.ErrNotFound, "Unassign")
	assert.ErrorIs(t, st.RevokeAPIKey(ctx, b.tenant, a.keyID, time.Now()), domain.ErrNotFound, "RevokeAPIKey")
	assert.ErrorIs(t, st.RevokeEnrollmentToken(ctx, b.tenant, a.tokenID, time.Now()), domain.ErrNotFound, "RevokeEnrollmentToken")
	_, err = st.TransitionTask(ctx, b.tenant, a.taskID, domain.TaskCancelled, nil)
	assert.ErrorIs(t, err, domain.ErrNotFound, "TransitionTask")
	_, err = st.UpdateRun(ctx, b.tenant, a.runID, func(*domain.Run) error { return nil })
	assert.ErrorIs(t, err, domain.ErrNotFound, "UpdateRun")
	_, err = st.AppendLog(ctx, b.tenant, domain.LogChunk{RunID: a.runID, Seq: 1, Lines: []string{"x"}, ExpiresAt: time.Now().Add(time.Hour)})
	assert.ErrorIs(t, err, domain.ErrNotFound, "AppendLog")

	agentAfter, err := st.GetAgent(ctx, a.tenant, a.agentID)
	require.NoError(t, err)
	assert.Equal(t, agentBefore, agentAfter)
	key, err := st.GetAPIKey(ctx, a.tenant, a.keyID)
	require.NoError(t, err)
	assert.True(t, key.Active())
	token, err := st.LookupEnrollmentToken(ctx, a.tokenID)
	require.NoError(t, err)
	assert.Nil(t, token.RevokedAt)
	task, err := st.GetTask(ctx, a.tenant, a.taskID)
	require.NoError(t, err)
	assert.Equal(t, domain.TaskQueued, task.Status)
	ids, _, err = st.ListPolicyAgents(ctx, a.tenant, a.policyID, all)
	require.NoError(t, err)
	assert.Equal(t, []string{a.agentID}, ids)
	chunks, _, err = st.ListLog(ctx, a.tenant, a.runID, all)
	require.NoError(t, err)
	assert.Len(t, chunks, 1)
}

func TestPaginationWalksEveryItemOnceAndRefusesForeignCursors(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := context.Background()
	a := build(t, st, "pager-a")
	build(t, st, "pager-b")
	now := time.Now().UTC()
	want := []string{a.taskID}
	for i := 0; i < 11; i++ {
		task, err := st.CreateTask(ctx, a.tenant, domain.Task{ID: domain.NewID(now.Add(time.Duration(i+1) * time.Millisecond)), AgentID: a.agentID,
			Repository: a.repository, Type: domain.TaskCheck, Status: domain.TaskPending, Attempt: 1, NotBefore: now, Deadline: now.Add(time.Hour)})
		require.NoError(t, err)
		want = append(want, task.ID)
	}
	for _, f := range []store.TaskFilter{{}, {AgentID: a.agentID}} {
		var got []string
		cursor := ""
		pages := 0
		for {
			tasks, next, err := st.ListTasks(ctx, a.tenant, f, store.Page{Limit: 5, Cursor: cursor})
			require.NoError(t, err)
			pages++
			for _, tk := range tasks {
				got = append(got, tk.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		assert.Equal(t, 3, pages, "12 tasks in pages of 5")
		// Newest first.
		wantNewestFirst := make([]string, len(want))
		for i, id := range want {
			wantNewestFirst[len(want)-1-i] = id
		}
		assert.Equal(t, wantNewestFirst, got, "filter %+v", f)
	}

	_, cursor, err := st.ListTasks(ctx, a.tenant, store.TaskFilter{}, store.Page{Limit: 5})
	require.NoError(t, err)
	require.NotEmpty(t, cursor)
	_, _, err = st.ListAgents(ctx, a.tenant, store.AgentFilter{}, store.Page{Cursor: cursor})
	assert.ErrorIs(t, err, domain.ErrInvalidCursor, "a tasks cursor given to agents")
	_, _, err = st.ListTasks(ctx, a.tenant, store.TaskFilter{}, store.Page{Cursor: "not-a-cursor!"})
	assert.ErrorIs(t, err, domain.ErrInvalidCursor, "garbage")
	tasks, _, err := st.ListTasks(ctx, "pager-b", store.TaskFilter{}, store.Page{Cursor: cursor})
	if err == nil {
		for _, tk := range tasks {
			assert.Equal(t, "pager-b", tk.TenantID, "tenant A's cursor used by tenant B")
		}
	} else {
		assert.ErrorIs(t, err, domain.ErrInvalidCursor)
	}
}

func TestOptimisticConcurrencyAndUniqueNames(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := context.Background()
	a := build(t, st, "occ")

	agent, err := st.GetAgent(ctx, a.tenant, a.agentID)
	require.NoError(t, err)
	first := agent
	first.Labels = map[string]string{"env": "staging"}
	_, err = st.UpdateAgent(ctx, a.tenant, first)
	require.NoError(t, err)
	stale := agent
	stale.Labels = map[string]string{"env": "lost"}
	_, err = st.UpdateAgent(ctx, a.tenant, stale)
	assert.ErrorIs(t, err, domain.ErrConflict)
	got, err := st.GetAgent(ctx, a.tenant, a.agentID)
	require.NoError(t, err)
	assert.Equal(t, "staging", got.Labels["env"])

	p, err := st.GetPolicy(ctx, a.tenant, a.policyID)
	require.NoError(t, err)
	_, err = st.CreatePolicy(ctx, a.tenant, domain.Policy{ID: domain.NewID(time.Now()), Name: a.policyName, Enabled: true, Repository: a.repository,
		Paths: []string{"/etc"}, Schedule: domain.Schedule{Interval: "6h"}, Retention: domain.Retention{KeepLast: 1}})
	assert.ErrorIs(t, err, domain.ErrConflict, "a second policy with the same name")
	_, err = st.CreatePolicy(ctx, a.tenant, domain.Policy{ID: domain.NewID(time.Now()), Name: "no-repo", Enabled: true, Repository: "missing-repo",
		Paths: []string{"/etc"}, Schedule: domain.Schedule{Interval: "6h"}, Retention: domain.Retention{KeepLast: 1}})
	var ve *domain.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "repository", ve.Fields[0].Field)

	renamed := p
	renamed.Name = "renamed-policy"
	updated, err := st.UpdatePolicy(ctx, a.tenant, renamed)
	require.NoError(t, err)
	assert.Equal(t, p.Version+1, updated.Version)
	_, err = st.UpdatePolicy(ctx, a.tenant, renamed)
	assert.ErrorIs(t, err, domain.ErrConflict, "a stale policy version")
	_, err = st.CreatePolicy(ctx, a.tenant, domain.Policy{ID: domain.NewID(time.Now()), Name: a.policyName, Enabled: true, Repository: a.repository,
		Paths: []string{"/etc"}, Schedule: domain.Schedule{Interval: "6h"}, Retention: domain.Retention{KeepLast: 1}})
	assert.NoError(t, err, "the old name is free after a rename")

	assert.ErrorIs(t, st.DeleteRepository(ctx, a.tenant, a.repository), domain.ErrConflict, "a repository in use")
}

func TestTwoWritersRaceAndExactlyOneWins(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := context.Background()
	a := build(t, st, "race")
	_, err := st.TransitionTask(ctx, a.tenant, a.taskID, domain.TaskRunning, nil)
	require.NoError(t, err)

	targets := []domain.TaskStatus{domain.TaskSucceeded, domain.TaskCancelled, domain.TaskFailed, domain.TaskSucceeded, domain.TaskCancelled, domain.TaskPartial}
	var wg sync.WaitGroup
	errs := make([]error, len(targets))
	for i, to := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.TransitionTask(ctx, a.tenant, a.taskID, to, func(t *domain.Task) { t.Error = fmt.Sprintf("writer %d", i) })
		}()
	}
	wg.Wait()
	winners := 0
	var winner int
	for i, err := range errs {
		if err == nil {
			winners++
			winner = i
			continue
		}
		var te *domain.TransitionError
		assert.ErrorAs(t, err, &te, "a loser gets a transition error")
		assert.ErrorIs(t, err, domain.ErrInvalidTransition)
	}
	require.Equal(t, 1, winners, "errors: %v", errs)
	task, err := st.GetTask(ctx, a.tenant, a.taskID)
	require.NoError(t, err)
	assert.Equal(t, targets[winner], task.Status)
	assert.Equal(t, fmt.Sprintf("writer %d", winner), task.Error, "the winner's change, never a loser's")
}

func TestConcurrentClaimsDispatchEachSlotOnce(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := context.Background()
	a := build(t, st, "claims")
	slot, err := st.GetSlot(ctx, a.tenant, a.policyID, a.agentID, domain.SlotBackup)
	require.NoError(t, err)
	require.NotNil(t, slot.NextRunAt)

	const writers = 4
	var wg sync.WaitGroup
	won := make([]bool, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now().UTC()
			res := st.ClaimSlots(ctx, []store.Claim{{Slot: slot, Next: slot.NextRunAt.Add(24 * time.Hour), Task: domain.Task{
				ID: domain.NewID(now), AgentID: a.agentID, PolicyID: a.policyID, Repository: a.repository, Type: domain.TaskBackup,
				Status: domain.TaskPending, Attempt: 1, NotBefore: *slot.NextRunAt, Deadline: now.Add(time.Hour),
			}}})
			require.NoError(t, res[0].Err)
			won[i] = res[0].Won
		}()
	}
	wg.Wait()
	n := 0
	for _, w := range won {
		if w {
			n++
		}
	}
	assert.Equal(t, 1, n, "exactly one claim wins")
	tasks, _, err := st.ListTasks(ctx, a.tenant, store.TaskFilter{Type: domain.TaskBackup, Status: domain.TaskPending}, store.Page{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, tasks, 1, "one task for the one run")
}

func TestDueIndexHoldsOnlyWhatIsDue(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := context.Background()
	a := build(t, st, "due")
	now := time.Now().UTC()
	later := now.Add(time.Hour)
	other, err := st.CreatePolicy(ctx, a.tenant, domain.Policy{ID: domain.NewID(now), Name: "later-policy", Enabled: true, Repository: a.repository,
		Paths: []string{"/srv"}, Schedule: domain.Schedule{Interval: "1h"}, Retention: domain.Retention{KeepLast: 1}})
	require.NoError(t, err)
	require.NoError(t, st.Assign(ctx, a.tenant, other.ID, a.agentID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &later}, {Kind: domain.SlotCheck}}))

	var slots, tasks []string
	for shard := range resources.DueShards {
		due, _, err := st.QueryDue(ctx, shard, now, store.Page{Limit: 100})
		require.NoError(t, err)
		for _, d := range due {
			switch {
			case d.Slot != nil:
				slots = append(slots, d.Slot.PolicyID+"/"+string(d.Slot.Kind))
			case d.Task != nil:
				tasks = append(tasks, d.Task.ID)
			}
		}
	}
	assert.Equal(t, []string{a.policyID + "/backup"}, slots, "only the slot due a minute ago; not the one due in an hour, nor the one without a next run")
	assert.Empty(t, tasks, "a queued task is due only at its deadline")
	_, err = st.TransitionTask(ctx, a.tenant, a.taskID, domain.TaskRunning, nil)
	require.NoError(t, err)
	n, err := st.CountActiveTasks(ctx, a.tenant, a.agentID)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	_, err = st.TransitionTask(ctx, a.tenant, a.taskID, domain.TaskSucceeded, nil)
	require.NoError(t, err)
	n, err = st.CountActiveTasks(ctx, a.tenant, a.agentID)
	require.NoError(t, err)
	assert.Zero(t, n, "a finished task no longer occupies the agent")
}

func TestLogChunksAreIdempotentCountedAndExpire(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	ctx := context.Background()
	a := build(t, st, "logs")
	expires := time.Now().Add(48 * time.Hour).UTC()
	stored, err := st.AppendLog(ctx, a.tenant, domain.LogChunk{RunID: a.runID, Seq: 1, Lines: []string{"hello", "world"}, ExpiresAt: expires})
	require.NoError(t, err)
	assert.True(t, stored)
	stored, err = st.AppendLog(ctx, a.tenant, domain.LogChunk{RunID: a.runID, Seq: 1, Lines: []string{"hello", "world"}, ExpiresAt: expires})
	require.NoError(t, err)
	assert.False(t, stored, "the same sequence number again changes nothing")
	run, err := st.GetRun(ctx, a.tenant, a.runID)
	require.NoError(t, err)
	assert.Equal(t, int64(len("scan finished")+len("hello")+len("world")), run.LogBytes)
	assert.Equal(t, int64(3), run.LogLines)
	_, usage, err := st.GetTenant(ctx, a.tenant)
	require.NoError(t, err)
	assert.Equal(t, int64(3), usage.LogLines)
	chunks, _, err := st.ListLog(ctx, a.tenant, a.runID, store.Page{})
	require.NoError(t, err)
	require.Len(t, chunks, 2)
	assert.Equal(t, []string{"hello", "world"}, chunks[1].Lines)

	raw, err := db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(st.Table()),
		KeyConditionExpression:    aws.String("PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "TENANT#" + a.tenant + "#RUN#" + a.runID}},
	})
	require.NoError(t, err)
	require.Len(t, raw.Items, 2)
	ttl, ok := raw.Items[1][resources.AttrTTL].(*types.AttributeValueMemberN)
	require.True(t, ok, "log chunks carry the TTL attribute")
	assert.Equal(t, fmt.Sprint(expires.Unix()), ttl.Value)
	_, isBinary := raw.Items[1]["lines"].(*types.AttributeValueMemberB)
	assert.True(t, isBinary, "lines are stored compressed")
}

func TestEnrollmentTokensRunOut(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := context.Background()
	a := build(t, st, "enroll")
	seen := time.Now().UTC()
	register := func(token string) error {
		_, err := st.RegisterAgent(ctx, a.tenant, token, domain.Agent{ID: domain.NewID(time.Now()), Hostname: "web-1", OS: "linux", Arch: "arm64",
			AgentVersion: "1.0.0", Status: domain.AgentOnline, LastSeenAt: &seen, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60, SecretHash: "h"})
		return err
	}
	require.NoError(t, register(a.tokenID), "the second of two uses")
	assert.ErrorIs(t, register(a.tokenID), domain.ErrUnauthorized, "used up")
	assert.ErrorIs(t, register(domain.NewID(time.Now())), domain.ErrUnauthorized, "unknown")
	require.NoError(t, st.RevokeEnrollmentToken(ctx, a.tenant, a.tokenID, time.Now()))
	tok, err := st.LookupEnrollmentToken(ctx, a.tokenID)
	require.NoError(t, err)
	assert.NotNil(t, tok.RevokedAt)
	assert.Equal(t, 2, tok.Uses)

	require.NoError(t, st.DeleteAgent(ctx, a.tenant, a.agentID))
	_, err = st.LookupAgentCredential(ctx, a.agentID)
	assert.ErrorIs(t, err, domain.ErrNotFound, "the credential goes with the agent")
	ids, _, err := st.ListPolicyAgents(ctx, a.tenant, a.policyID, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, ids, "and so do its assignments")
	_, err = st.GetSlot(ctx, a.tenant, a.policyID, a.agentID, domain.SlotBackup)
	assert.True(t, errors.Is(err, domain.ErrNotFound), "and its slots")
}
