package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// world is one tenant with one of everything.
type world struct {
	tenant                  string
	keyID, tokenID          string
	agentID, repo, policyID string
	taskID, runID, snapID   string
	label                   string
}

func (f *fixture) world(tenant, repo, policyName, label string) world {
	f.t.Helper()
	w := world{tenant: f.tenant(tenant), repo: repo, label: label, snapID: fmt.Sprintf("%08x", f.ids.Add(1))}
	w.keyID = f.id()
	require.NoError(f.t, f.st.CreateAPIKey(f.ctx, tenant, domain.APIKey{ID: w.keyID, Name: "admin", Role: domain.RoleAdmin, SecretHash: "h", CreatedAt: f.now}))
	w.tokenID = f.token(tenant, func(e *domain.EnrollmentToken) { e.MaxUses = 5 }).ID
	w.agentID = f.agent(tenant, func(a *domain.Agent) { a.Labels = map[string]string{"env": label} }).ID
	f.repo(tenant, repo)
	w.policyID = f.policy(tenant, policyName, repo).ID
	require.NoError(f.t, f.st.Assign(f.ctx, tenant, w.policyID, w.agentID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: ptr(f.now.Add(-time.Minute))}}))
	task := f.task(tenant, w.agentID, func(t *domain.Task) { t.PolicyID, t.Repository, t.Status = w.policyID, repo, domain.TaskRunning })
	w.taskID = task.ID
	w.runID = f.run(tenant, task).ID
	f.chunk(tenant, w.runID, 0, "repository opened", "snapshot saved")
	require.NoError(f.t, f.st.PutSnapshots(f.ctx, tenant, w.agentID, []domain.Snapshot{{ID: w.snapID, Repository: repo, Time: f.now, Hostname: "db-1", Paths: []string{"/home"}}}))
	retried := f.task(tenant, w.agentID, func(t *domain.Task) { t.Status = domain.TaskRunning })
	_, err := f.st.UpdateTaskRun(f.ctx, tenant, retried.ID, "", func(t domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
		t.Status, t.NextRetryAt = domain.TaskRetrying, ptr(f.now.Add(time.Minute))
		return store.TaskRunChange{Task: &t, Retry: &store.RetryUse{At: f.now, Limit: 10}}, nil
	})
	require.NoError(f.t, err)
	return w
}

// view is everything a tenant can read of its world.
type view struct {
	Tenant        domain.Tenant
	Usage         store.TenantUsage
	Key           domain.APIKey
	Token         domain.EnrollmentToken
	Agent         domain.Agent
	Credential    store.AgentCredential
	Repo          domain.Repository
	Policy        domain.Policy
	Slot          domain.Slot
	Task          domain.Task
	Run           domain.Run
	Active        int
	Retries       int
	Keys          []domain.APIKey
	Tokens        []domain.EnrollmentToken
	Agents        []domain.Agent
	Repos         []domain.Repository
	Policies      []domain.Policy
	PolicyAgents  []string
	AgentPolicies []string
	Slots         []domain.Slot
	Tasks         []domain.Task
	Runs          []domain.Run
	Log           []domain.LogChunk
	Snapshots     []domain.Snapshot
}

func (f *fixture) view(w world) view {
	f.t.Helper()
	t, ctx, st, all := f.t, f.ctx, f.st, store.Page{Limit: 100}
	var v view
	var err error
	must := func(err error) {
		t.Helper()
		require.NoError(t, err)
	}
	v.Tenant, v.Usage, err = st.GetTenant(ctx, w.tenant)
	must(err)
	v.Key, err = st.GetAPIKey(ctx, w.tenant, w.keyID)
	must(err)
	v.Token, err = st.LookupEnrollmentToken(ctx, w.tokenID)
	must(err)
	v.Agent, err = st.GetAgent(ctx, w.tenant, w.agentID)
	must(err)
	v.Credential, err = st.LookupAgentCredential(ctx, w.agentID)
	must(err)
	v.Repo, err = st.GetRepository(ctx, w.tenant, w.repo)
	must(err)
	v.Policy, err = st.GetPolicy(ctx, w.tenant, w.policyID)
	must(err)
	v.Slot, err = st.GetSlot(ctx, w.tenant, w.policyID, w.agentID, domain.SlotBackup)
	must(err)
	v.Task, err = st.GetTask(ctx, w.tenant, w.taskID)
	must(err)
	v.Run, err = st.GetRun(ctx, w.tenant, w.runID)
	must(err)
	v.Active, err = st.CountActiveTasks(ctx, w.tenant, w.agentID)
	must(err)
	v.Retries, err = st.RetriesThisHour(ctx, w.tenant, w.agentID, f.now)
	must(err)
	v.Keys, _, err = st.ListAPIKeys(ctx, w.tenant, all)
	must(err)
	v.Tokens, _, err = st.ListEnrollmentTokens(ctx, w.tenant, all)
	must(err)
	v.Agents, _, err = st.ListAgents(ctx, w.tenant, store.AgentFilter{}, all)
	must(err)
	v.Repos, _, err = st.ListRepositories(ctx, w.tenant, all)
	must(err)
	v.Policies, _, err = st.ListPolicies(ctx, w.tenant, store.PolicyFilter{}, all)
	must(err)
	v.PolicyAgents, _, err = st.ListPolicyAgents(ctx, w.tenant, w.policyID, all)
	must(err)
	v.AgentPolicies, _, err = st.ListAgentPolicies(ctx, w.tenant, w.agentID, all)
	must(err)
	v.Slots, _, err = st.ListPolicySlots(ctx, w.tenant, w.policyID, all)
	must(err)
	v.Tasks, _, err = st.ListTasks(ctx, w.tenant, store.TaskFilter{}, all)
	must(err)
	v.Runs, _, err = st.ListRuns(ctx, w.tenant, store.RunFilter{}, all)
	must(err)
	v.Log, _, err = st.ListLog(ctx, w.tenant, w.runID, all)
	must(err)
	v.Snapshots, _, err = st.ListSnapshots(ctx, w.tenant, w.agentID, all)
	must(err)
	return v
}

func TestTenantBSeesNothingOfTenantA(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.world("tenant-a", "repo-of-a", "policy-of-a", "alpha")
	b := f.world("tenant-b", "repo-of-b", "policy-of-b", "beta")
	ctx, st, all := f.ctx, f.st, store.Page{Limit: 100}
	before := f.view(a)
	// Every item of A's view is there to be seen, so seeing none of it through B means something.
	require.Len(t, before.Log, 1)
	require.Len(t, before.Snapshots, 1)
	require.Equal(t, 1, before.Retries)
	require.Equal(t, 1, before.Active)

	// Gets with tenant B and A's IDs and names.
	notFound := map[string]error{}
	_, notFound["GetAPIKey"] = st.GetAPIKey(ctx, b.tenant, a.keyID)
	_, notFound["GetAgent"] = st.GetAgent(ctx, b.tenant, a.agentID)
	_, notFound["GetRepository"] = st.GetRepository(ctx, b.tenant, a.repo)
	_, notFound["GetPolicy"] = st.GetPolicy(ctx, b.tenant, a.policyID)
	_, notFound["GetSlot"] = st.GetSlot(ctx, b.tenant, a.policyID, a.agentID, domain.SlotBackup)
	_, notFound["GetTask"] = st.GetTask(ctx, b.tenant, a.taskID)
	_, notFound["GetRun"] = st.GetRun(ctx, b.tenant, a.runID)
	for name, err := range notFound {
		assert.ErrorIs(t, err, domain.ErrNotFound, "%s with tenant B on tenant A's ID", name)
	}

	// Listings of A's things with tenant B are empty.
	counts := map[string]int{}
	count := func(name string, n int, err error) {
		require.NoError(t, err, name)
		counts[name] = n
	}
	ids, _, err := st.ListPolicyAgents(ctx, b.tenant, a.policyID, all)
	count("ListPolicyAgents", len(ids), err)
	ids, _, err = st.ListAgentPolicies(ctx, b.tenant, a.agentID, all)
	count("ListAgentPolicies", len(ids), err)
	slots, _, err := st.ListPolicySlots(ctx, b.tenant, a.policyID, all)
	count("ListPolicySlots", len(slots), err)
	tasks, _, err := st.ListTasks(ctx, b.tenant, store.TaskFilter{AgentID: a.agentID}, all)
	count("ListTasks of A's agent", len(tasks), err)
	runs, _, err := st.ListRuns(ctx, b.tenant, store.RunFilter{AgentID: a.agentID}, all)
	count("ListRuns of A's agent", len(runs), err)
	runs, _, err = st.ListRuns(ctx, b.tenant, store.RunFilter{PolicyID: a.policyID}, all)
	count("ListRuns of A's policy", len(runs), err)
	runs, _, err = st.ListRuns(ctx, b.tenant, store.RunFilter{AgentID: a.agentID, PolicyID: a.policyID}, all)
	count("ListRuns of A's agent and policy", len(runs), err)
	chunks, _, err := st.ListLog(ctx, b.tenant, a.runID, all)
	count("ListLog", len(chunks), err)
	snaps, _, err := st.ListSnapshots(ctx, b.tenant, a.agentID, all)
	count("ListSnapshots", len(snaps), err)
	agents, _, err := st.ListAgents(ctx, b.tenant, store.AgentFilter{LabelKey: "env", LabelValue: a.label}, all)
	count("ListAgents with A's label", len(agents), err)
	policies, _, err := st.ListPolicies(ctx, b.tenant, store.PolicyFilter{Repository: a.repo}, all)
	count("ListPolicies on A's repository", len(policies), err)
	n, err := st.CountActiveTasks(ctx, b.tenant, a.agentID)
	count("CountActiveTasks", n, err)
	active, err := st.ListActiveTasks(ctx, b.tenant, a.agentID)
	count("ListActiveTasks", len(active), err)
	n, err = st.RetriesThisHour(ctx, b.tenant, a.agentID, f.now)
	count("RetriesThisHour", n, err)
	for name, got := range counts {
		assert.Zero(t, got, "%s with tenant B on tenant A's IDs", name)
	}

	// B's own view holds B's items only.
	seen := f.view(b)
	assert.Equal(t, []string{b.keyID}, idsOf(seen.Keys, func(k domain.APIKey) string { return k.ID }))
	for _, tok := range seen.Tokens {
		assert.Equal(t, b.tenant, tok.TenantID, "token %s", tok.ID)
	}
	assert.Equal(t, []string{b.agentID}, idsOf(seen.Agents, agentID))
	assert.Equal(t, []string{b.repo}, idsOf(seen.Repos, repoName))
	assert.Equal(t, []string{b.policyID}, idsOf(seen.Policies, policyID))
	assert.Len(t, seen.Tasks, 2)
	for _, tk := range seen.Tasks {
		assert.Equal(t, b.agentID, tk.AgentID)
	}
	assert.Equal(t, []string{b.runID}, idsOf(seen.Runs, runID))
	assert.Equal(t, before.Usage, seen.Usage, "both tenants logged the same; neither counts the other's")

	// Writes with tenant B on A's IDs fail.
	_, err = st.UpdateAgent(ctx, b.tenant, before.Agent)
	assert.ErrorIs(t, err, domain.ErrNotFound, "UpdateAgent")
	_, err = st.ModifyAgent(ctx, b.tenant, a.agentID, func(a *domain.Agent) error {
		a.Hostname = "taken-over"
		return nil
	})
	assert.ErrorIs(t, err, domain.ErrNotFound, "ModifyAgent")
	assert.ErrorIs(t, st.DeleteAgent(ctx, b.tenant, a.agentID), domain.ErrNotFound, "DeleteAgent")
	_, err = st.UpdatePolicy(ctx, b.tenant, before.Policy)
	assert.ErrorIs(t, err, domain.ErrNotFound, "UpdatePolicy")
	assert.ErrorIs(t, st.DeletePolicy(ctx, b.tenant, a.policyID), domain.ErrNotFound, "DeletePolicy")
	assert.ErrorIs(t, st.Assign(ctx, b.tenant, a.policyID, a.agentID, nil), domain.ErrNotFound, "Assign of A's policy to A's agent")
	assert.ErrorIs(t, st.Assign(ctx, b.tenant, b.policyID, a.agentID, nil), domain.ErrNotFound, "Assign of B's policy to A's agent")
	assert.ErrorIs(t, st.Assign(ctx, b.tenant, a.policyID, b.agentID, nil), domain.ErrNotFound, "Assign of A's policy to B's agent")
	assert.ErrorIs(t, st.Unassign(ctx, b.tenant, a.policyID, a.agentID), domain.ErrNotFound, "Unassign")
	assert.ErrorIs(t, st.RevokeAPIKey(ctx, b.tenant, a.keyID, f.now), domain.ErrNotFound, "RevokeAPIKey")
	assert.ErrorIs(t, st.RevokeEnrollmentToken(ctx, b.tenant, a.tokenID, f.now), domain.ErrNotFound, "RevokeEnrollmentToken")
	_, err = st.TransitionTask(ctx, b.tenant, a.taskID, domain.TaskCancelled, nil)
	assert.ErrorIs(t, err, domain.ErrNotFound, "TransitionTask")
	_, err = st.UpdateTaskRun(ctx, b.tenant, a.taskID, a.runID, func(t domain.Task, _ *domain.Run) (store.TaskRunChange, error) {
		t.Status = domain.TaskCancelled
		return store.TaskRunChange{Task: &t}, nil
	})
	assert.ErrorIs(t, err, domain.ErrNotFound, "UpdateTaskRun")
	_, err = st.UpdateRun(ctx, b.tenant, a.runID, func(r *domain.Run) error {
		r.Status = domain.TaskCancelled
		return nil
	})
	assert.ErrorIs(t, err, domain.ErrNotFound, "UpdateRun")
	_, err = st.AppendLog(ctx, b.tenant, domain.LogChunk{RunID: a.runID, Seq: 1, Lines: []string{"injected"}, ExpiresAt: f.now.Add(time.Hour)})
	assert.ErrorIs(t, err, domain.ErrNotFound, "AppendLog")
	assert.ErrorIs(t, st.DeleteRepository(ctx, b.tenant, a.repo), domain.ErrNotFound, "DeleteRepository")
	_, err = st.UpdateRepository(ctx, b.tenant, before.Repo)
	assert.ErrorIs(t, err, domain.ErrNotFound, "UpdateRepository")
	_, err = st.RegisterAgent(ctx, b.tenant, a.tokenID, newAgent(f.id(), f.now))
	assert.ErrorIs(t, err, domain.ErrUnauthorized, "RegisterAgent with A's token")
	// Credentials are keyed by their own IDs: B cannot take over one of A's.
	_, err = st.RegisterAgent(ctx, b.tenant, b.tokenID, newAgent(a.agentID, f.now))
	assert.ErrorIs(t, err, domain.ErrConflict, "RegisterAgent with A's agent ID")
	err = st.CreateAPIKey(ctx, b.tenant, domain.APIKey{ID: a.keyID, Name: "mine", Role: domain.RoleAdmin, SecretHash: "b", CreatedAt: f.now})
	assert.ErrorIs(t, err, domain.ErrConflict, "CreateAPIKey with A's key ID")
	err = st.CreateEnrollmentToken(ctx, b.tenant, domain.EnrollmentToken{ID: a.tokenID, SecretHash: "b", MaxUses: 9, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)})
	assert.ErrorIs(t, err, domain.ErrConflict, "CreateEnrollmentToken with A's token ID")
	// These write into B's own key space whatever IDs they are given.
	require.NoError(t, st.MarkSlotSucceeded(ctx, b.tenant, a.policyID, a.agentID, domain.SlotBackup, f.now), "MarkSlotSucceeded")
	removed, err := st.ReplaceSnapshots(ctx, b.tenant, a.agentID, a.repo, nil)
	require.NoError(t, err, "ReplaceSnapshots")
	assert.Zero(t, removed, "ReplaceSnapshots")

	assert.Equal(t, before, f.view(a), "tenant A's items are as they were")
}
