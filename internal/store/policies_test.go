package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestRepositoriesAreVersionedAndListedByName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.tenant("other")
	for _, name := range []string{"zeta-repo", "alpha-repo", "mid-repo"} {
		f.repo(tenant, name)
	}
	f.repo("other", "beta-repo")

	r, err := f.st.GetRepository(f.ctx, tenant, "alpha-repo")
	require.NoError(t, err)
	assert.Equal(t, domain.Repository{TenantID: tenant, Name: "alpha-repo", Backend: domain.BackendLocal, Location: "/srv/restic/alpha-repo",
		CreatedAt: f.now, UpdatedAt: f.now, Version: 1}, r)
	_, err = f.st.GetRepository(f.ctx, tenant, "beta-repo")
	assert.ErrorIs(t, err, domain.ErrNotFound, "another tenant's repository")

	listed, _, err := f.st.ListRepositories(f.ctx, tenant, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{"alpha-repo", "mid-repo", "zeta-repo"}, idsOf(listed, repoName), "by name")

	_, err = f.st.CreateRepository(f.ctx, tenant, domain.Repository{Name: "alpha-repo", Backend: domain.BackendLocal, Location: "/elsewhere"})
	assert.ErrorIs(t, err, domain.ErrConflict, "a name in use")
	_, err = f.st.CreateRepository(f.ctx, tenant, domain.Repository{Name: "alpha-repo", Backend: domain.BackendLocal, Location: "/srv/restic/alpha-repo"})
	assert.ErrorIs(t, err, domain.ErrConflict, "a name in use, with the same content")
	_, err = f.st.CreateRepository(f.ctx, tenant, domain.Repository{Name: "s3-repo", Backend: domain.BackendS3, Location: "/not/s3"})
	var ve *domain.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "location", ve.Fields[0].Field)

	f.now = f.now.Add(time.Minute)
	moved := r
	moved.Location = "/mnt/backup"
	updated, err := f.st.UpdateRepository(f.ctx, tenant, moved)
	require.NoError(t, err)
	assert.Equal(t, int64(2), updated.Version)
	assert.Equal(t, f.now, updated.UpdatedAt)
	assert.Equal(t, epoch, updated.CreatedAt)

	stale := r
	stale.Description = "lost"
	_, err = f.st.UpdateRepository(f.ctx, tenant, stale)
	assert.ErrorIs(t, err, domain.ErrConflict, "an update from the version before")
	got, err := f.st.GetRepository(f.ctx, tenant, "alpha-repo")
	require.NoError(t, err)
	assert.Equal(t, updated, got, "a refused update changes nothing")

	missing := domain.Repository{Name: "missing-repo", Backend: domain.BackendLocal, Location: "/x", Version: 1}
	_, err = f.st.UpdateRepository(f.ctx, tenant, missing)
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

func TestDeleteRepositoryRefusesOneInUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "used-repo")
	f.repo(tenant, "spare-repo")
	f.repo(tenant, "later-repo")
	p := f.policy(tenant, "nightly", "used-repo")
	// Policies on other repositories come before and after it, so the check reads past them.
	f.policy(tenant, "before", "spare-repo")
	f.policy(tenant, "after", "later-repo")

	assert.ErrorIs(t, f.st.DeleteRepository(f.ctx, tenant, "used-repo"), domain.ErrConflict)
	_, err := f.st.GetRepository(f.ctx, tenant, "used-repo")
	assert.NoError(t, err, "a repository in use stays")

	// Once the policy moves to another repository, the first is free.
	p.Repository = "spare-repo"
	_, err = f.st.UpdatePolicy(f.ctx, tenant, p)
	require.NoError(t, err)
	require.NoError(t, f.st.DeleteRepository(f.ctx, tenant, "used-repo"))
	_, err = f.st.GetRepository(f.ctx, tenant, "used-repo")
	assert.ErrorIs(t, err, domain.ErrNotFound)
	assert.ErrorIs(t, f.st.DeleteRepository(f.ctx, tenant, "used-repo"), domain.ErrNotFound, "deleting again")
}

func TestPoliciesAreVersionedAndNamedUniquelyPerTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.tenant("other")
	f.repo(tenant, "main-repo")
	f.repo(tenant, "offsite-repo")
	f.repo("other", "main-repo")

	created := f.policy(tenant, "nightly", "main-repo", func(p *domain.Policy) {
		p.ForgetSchedule = &domain.Schedule{Interval: "1w"}
		p.CheckSchedule = &domain.Schedule{Cron: "0 3 * * 0", Timezone: "Europe/Berlin"}
		p.Prune, p.MaxRetries, p.Tags = true, ptr(5), []string{"daily"}
	})
	assert.Equal(t, int64(1), created.Version)
	assert.Equal(t, f.now, created.CreatedAt)
	got, err := f.st.GetPolicy(f.ctx, tenant, created.ID)
	require.NoError(t, err)
	assert.Equal(t, created, got)
	_, err = f.st.GetPolicy(f.ctx, tenant, f.id())
	assert.ErrorIs(t, err, domain.ErrNotFound)

	_, err = f.st.CreatePolicy(f.ctx, tenant, newPolicy(f.id(), "nightly", "main-repo"))
	assert.ErrorIs(t, err, domain.ErrConflict, "a name in use")
	_, err = f.st.CreatePolicy(f.ctx, "other", newPolicy(f.id(), "nightly", "main-repo"))
	assert.NoError(t, err, "the same name in another tenant")

	_, err = f.st.CreatePolicy(f.ctx, tenant, newPolicy(f.id(), "orphan", "missing-repo"))
	var ve *domain.ValidationError
	require.ErrorAs(t, err, &ve, "a repository that does not exist")
	assert.Equal(t, "repository", ve.Fields[0].Field)
	_, err = f.st.CreatePolicy(f.ctx, tenant, newPolicy(f.id(), "orphan", "main-repo"))
	assert.NoError(t, err, "a refused create does not take the name")

	invalid := newPolicy(f.id(), "no-paths", "main-repo")
	invalid.Paths = nil
	_, err = f.st.CreatePolicy(f.ctx, tenant, invalid)
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "paths", ve.Fields[0].Field)

	offsite := f.policy(tenant, "offsite", "offsite-repo")
	all, _, err := f.st.ListPolicies(f.ctx, tenant, store.PolicyFilter{}, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{"nightly", "orphan", "offsite"}, idsOf(all, func(p domain.Policy) string { return p.Name }), "in creation order")
	onMain, _, err := f.st.ListPolicies(f.ctx, tenant, store.PolicyFilter{Repository: "main-repo"}, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{"nightly", "orphan"}, idsOf(onMain, func(p domain.Policy) string { return p.Name }))
	onOffsite, _ := walk(t, 1, func(p store.Page) ([]domain.Policy, string, error) {
		return f.st.ListPolicies(f.ctx, tenant, store.PolicyFilter{Repository: "offsite-repo"}, p)
	})
	assert.Equal(t, []string{offsite.ID}, idsOf(onOffsite, policyID), "filtered, one per page")
}

func TestUpdatePolicyNeedsTheVersionItReadAndMovesTheName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	p := f.policy(tenant, "nightly", "main-repo")
	other := f.policy(tenant, "weekly", "main-repo")

	f.now = f.now.Add(time.Minute)
	renamed := p
	renamed.Name, renamed.Description = "nightly-home", "homes every night"
	updated, err := f.st.UpdatePolicy(f.ctx, tenant, renamed)
	require.NoError(t, err)
	assert.Equal(t, p.Version+1, updated.Version)
	assert.Equal(t, p.CreatedAt, updated.CreatedAt)
	assert.Equal(t, f.now, updated.UpdatedAt)
	got, err := f.st.GetPolicy(f.ctx, tenant, p.ID)
	require.NoError(t, err)
	assert.Equal(t, updated, got)

	_, err = f.st.CreatePolicy(f.ctx, tenant, newPolicy(f.id(), "nightly", "main-repo"))
	assert.NoError(t, err, "a rename frees the old name")
	_, err = f.st.CreatePolicy(f.ctx, tenant, newPolicy(f.id(), "nightly-home", "main-repo"))
	assert.ErrorIs(t, err, domain.ErrConflict, "and takes the new one")

	stale := p
	stale.Description = "lost update"
	_, err = f.st.UpdatePolicy(f.ctx, tenant, stale)
	assert.ErrorIs(t, err, domain.ErrConflict, "an update from the version before")

	taken := updated
	taken.Name = other.Name
	_, err = f.st.UpdatePolicy(f.ctx, tenant, taken)
	assert.ErrorIs(t, err, domain.ErrConflict, "a rename to another policy's name")

	noRepo := updated
	noRepo.Repository = "missing-repo"
	_, err = f.st.UpdatePolicy(f.ctx, tenant, noRepo)
	var ve *domain.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "repository", ve.Fields[0].Field)

	got, err = f.st.GetPolicy(f.ctx, tenant, p.ID)
	require.NoError(t, err)
	assert.Equal(t, updated, got, "refused updates change nothing")

	missing := newPolicy(f.id(), "ghost", "main-repo")
	missing.Version = 1
	_, err = f.st.UpdatePolicy(f.ctx, tenant, missing)
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

func TestDeletePolicyRemovesItsNameAssignmentsAndSlots(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant)
	b := f.agent(tenant)
	p := f.policy(tenant, "nightly", "main-repo")
	kept := f.policy(tenant, "weekly", "main-repo")
	due := f.now.Add(-time.Minute)
	for _, pol := range []string{p.ID, kept.ID} {
		for _, ag := range []string{a.ID, b.ID} {
			require.NoError(t, f.st.Assign(f.ctx, tenant, pol, ag, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &due}, {Kind: domain.SlotCheck}}))
		}
	}
	task := f.task(tenant, a.ID, func(t *domain.Task) { t.PolicyID = p.ID })
	run := f.run(tenant, task)

	require.NoError(t, f.st.DeletePolicy(f.ctx, tenant, p.ID))

	_, err := f.st.GetPolicy(f.ctx, tenant, p.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound)
	agents, _, err := f.st.ListPolicyAgents(f.ctx, tenant, p.ID, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, agents, "its assignments, seen from the policy")
	for _, ag := range []string{a.ID, b.ID} {
		policies, _, err := f.st.ListAgentPolicies(f.ctx, tenant, ag, store.Page{})
		require.NoError(t, err)
		assert.Equal(t, []string{kept.ID}, policies, "its assignments, seen from agent %s", ag)
	}
	slots, _, err := f.st.ListPolicySlots(f.ctx, tenant, p.ID, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, slots)
	for _, name := range dueNames(f.due(f.now)) {
		assert.NotContains(t, name, p.ID, "its slots leave the due index")
	}
	slots, _, err = f.st.ListPolicySlots(f.ctx, tenant, kept.ID, store.Page{})
	require.NoError(t, err)
	assert.Len(t, slots, 4, "the other policy's slots stay")

	_, err = f.st.GetTask(f.ctx, tenant, task.ID)
	assert.NoError(t, err, "its tasks stay as history")
	runs, _, err := f.st.ListRuns(f.ctx, tenant, store.RunFilter{PolicyID: p.ID}, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{run.ID}, idsOf(runs, runID), "its runs stay as history")

	_, err = f.st.CreatePolicy(f.ctx, tenant, newPolicy(f.id(), "nightly", "main-repo"))
	assert.NoError(t, err, "its name is free again")
	assert.ErrorIs(t, f.st.DeletePolicy(f.ctx, tenant, p.ID), domain.ErrNotFound, "deleting again")
}

func TestAssignmentsAreReadFromBothSidesAndCarryTheirSlots(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant)
	b := f.agent(tenant)
	p := f.policy(tenant, "nightly", "main-repo")
	q := f.policy(tenant, "weekly", "main-repo")

	next := f.now.Add(time.Hour)
	require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{
		{Kind: domain.SlotBackup, NextRunAt: &next}, {Kind: domain.SlotForget, NextRunAt: &next}, {Kind: domain.SlotCheck},
	}))
	require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, b.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &next}}))
	require.NoError(t, f.st.Assign(f.ctx, tenant, q.ID, a.ID, nil))

	agents, _, err := f.st.ListPolicyAgents(f.ctx, tenant, p.ID, store.Page{})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{a.ID, b.ID}, agents)
	policies, _, err := f.st.ListAgentPolicies(f.ctx, tenant, a.ID, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{p.ID, q.ID}, policies)
	policies, _, err = f.st.ListAgentPolicies(f.ctx, tenant, b.ID, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{p.ID}, policies)

	sl, err := f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotForget)
	require.NoError(t, err)
	assert.Equal(t, domain.Slot{TenantID: tenant, PolicyID: p.ID, AgentID: a.ID, Kind: domain.SlotForget, NextRunAt: &next}, sl)
	slots, _, err := f.st.ListPolicySlots(f.ctx, tenant, p.ID, store.Page{})
	require.NoError(t, err)
	assert.Len(t, slots, 4)

	// Assigning again replaces the slots: a kind no longer given loses its slot.
	later := next.Add(time.Hour)
	require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &later}}))
	sl, err = f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.Equal(t, later, *sl.NextRunAt)
	for _, k := range []domain.SlotKind{domain.SlotForget, domain.SlotCheck} {
		_, err = f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, k)
		assert.ErrorIs(t, err, domain.ErrNotFound, "the %s slot is gone", k)
	}
	policies, _, err = f.st.ListAgentPolicies(f.ctx, tenant, a.ID, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{p.ID, q.ID}, policies, "assigning again keeps one assignment")

	assert.ErrorIs(t, f.st.Assign(f.ctx, tenant, f.id(), a.ID, nil), domain.ErrNotFound, "an unknown policy")
	assert.ErrorIs(t, f.st.Assign(f.ctx, tenant, p.ID, f.id(), nil), domain.ErrNotFound, "an unknown agent")

	var ve *domain.ValidationError
	err = f.st.Assign(f.ctx, tenant, q.ID, b.ID, []domain.Slot{{Kind: "hourly"}})
	require.ErrorAs(t, err, &ve, "an unknown slot kind")
	assert.Equal(t, "slots[0].kind", ve.Fields[0].Field)
	err = f.st.Assign(f.ctx, tenant, q.ID, b.ID, []domain.Slot{{Kind: domain.SlotBackup}, {Kind: domain.SlotBackup, NextRunAt: &next}})
	require.ErrorAs(t, err, &ve, "two slots of one kind")
	assert.Equal(t, "slots[1].kind", ve.Fields[0].Field)
	policies, _, err = f.st.ListAgentPolicies(f.ctx, tenant, b.ID, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{p.ID}, policies, "refused assignments are not stored")

	require.NoError(t, f.st.Unassign(f.ctx, tenant, p.ID, a.ID))
	policies, _, err = f.st.ListAgentPolicies(f.ctx, tenant, a.ID, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{q.ID}, policies)
	agents, _, err = f.st.ListPolicyAgents(f.ctx, tenant, p.ID, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{b.ID}, agents)
	_, err = f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup)
	assert.ErrorIs(t, err, domain.ErrNotFound, "unassigning removes the slots")
	_, err = f.st.GetSlot(f.ctx, tenant, p.ID, b.ID, domain.SlotBackup)
	assert.NoError(t, err, "and only the agent's")
	assert.ErrorIs(t, f.st.Unassign(f.ctx, tenant, p.ID, a.ID), domain.ErrNotFound, "unassigning again")
}

func TestPutSlotReplacesTheSlotAndItsPlaceInTheDueIndex(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, func(a *domain.Agent) { a.Status = domain.AgentOffline })
	p := f.policy(tenant, "nightly", "main-repo")
	due := f.now.Add(-time.Minute)
	require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &due}}))
	slotName := "slot " + p.ID + "/" + a.ID + "/backup"
	assert.Equal(t, []string{slotName}, dueNames(f.due(f.now)))

	sl, err := f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	later := f.now.Add(time.Hour)
	sl.NextRunAt, sl.LastTaskID = &later, f.id()
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, sl))
	got, err := f.st.GetSlot(f.ctx, tenant, p.ID, a.ID, domain.SlotBackup)
	require.NoError(t, err)
	assert.Equal(t, sl, got)
	assert.Empty(t, dueNames(f.due(f.now)), "due in an hour")
	assert.Equal(t, []string{slotName}, dueNames(f.due(later)))

	sl.NextRunAt = nil
	require.NoError(t, f.st.PutSlot(f.ctx, tenant, sl))
	assert.Empty(t, dueNames(f.due(later.Add(24*time.Hour))), "a slot without a next run is never due")
}

// raceRounds runs first and second at once, rounds times, each round on what setup returns.
func raceRounds[T any](rounds int, setup func(round int) T, first, second func(T)) []T {
	var out []T
	for round := range rounds {
		v := setup(round)
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; first(v) })
		wg.Go(func() { <-start; second(v) })
		close(start)
		wg.Wait()
		out = append(out, v)
	}
	return out
}

func TestDeletesRacingAssignmentsLeaveNothingBehind(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	due := f.now.Add(-time.Minute)
	type pair struct{ policy, agent string }
	assign := func(p pair) {
		_ = f.st.Assign(f.ctx, tenant, p.policy, p.agent, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &due}})
	}
	setup := func(round int) pair {
		return pair{f.policy(tenant, fmt.Sprintf("policy-%d", round), "main-repo").ID, f.agent(tenant, offline).ID}
	}
	policyGone := raceRounds(30, setup, func(p pair) { require.NoError(t, f.st.DeletePolicy(f.ctx, tenant, p.policy)) }, assign)
	agentGone := raceRounds(30, setup, func(p pair) { require.NoError(t, f.st.DeleteAgent(f.ctx, tenant, p.agent)) }, assign)

	for i, p := range append(policyGone, agentGone...) {
		agents, _, err := f.st.ListPolicyAgents(f.ctx, tenant, p.policy, store.Page{})
		require.NoError(t, err)
		policies, _, err := f.st.ListAgentPolicies(f.ctx, tenant, p.agent, store.Page{})
		require.NoError(t, err)
		_, slotErr := f.st.GetSlot(f.ctx, tenant, p.policy, p.agent, domain.SlotBackup)
		assert.True(t, len(agents) == 0 && len(policies) == 0 && errors.Is(slotErr, domain.ErrNotFound),
			"round %d: an assignment (%v, %v) or slot (%v) outlived the %s", i%30, agents, policies, slotErr, []string{"policy", "agent"}[i/30])
	}
	for _, name := range dueNames(f.due(f.now)) {
		t.Errorf("%s is still due", name)
	}
}

func TestDeleteRepositoryRacingCreatePolicyLeavesNoPolicyWithoutItsRepository(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	type attempt struct {
		repo      string
		deleteErr error
		policyErr error
	}
	results := raceRounds(40, func(round int) *attempt {
		name := fmt.Sprintf("repo-%d", round)
		f.repo(tenant, name)
		return &attempt{repo: name}
	}, func(a *attempt) {
		a.deleteErr = f.st.DeleteRepository(f.ctx, tenant, a.repo)
	}, func(a *attempt) {
		_, a.policyErr = f.st.CreatePolicy(f.ctx, tenant, newPolicy(f.id(), "policy-of-"+a.repo, a.repo))
	})
	for _, a := range results {
		assert.False(t, a.deleteErr == nil && a.policyErr == nil, "%s: deleted, and a policy created on it", a.repo)
	}
}

func TestDeletePolicyRacingARenameLeavesNoNameBehind(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	type attempt struct {
		policy    domain.Policy
		renameErr error
	}
	results := raceRounds(30, func(round int) *attempt {
		return &attempt{policy: f.policy(tenant, fmt.Sprintf("policy-%d", round), "main-repo")}
	}, func(a *attempt) {
		require.NoError(t, f.st.DeletePolicy(f.ctx, tenant, a.policy.ID))
	}, func(a *attempt) {
		renamed := a.policy
		renamed.Name += "-renamed"
		_, a.renameErr = f.st.UpdatePolicy(f.ctx, tenant, renamed)
	})
	for _, a := range results {
		_, err := f.st.GetPolicy(f.ctx, tenant, a.policy.ID)
		require.ErrorIs(t, err, domain.ErrNotFound, "%s is deleted", a.policy.Name)
		for _, name := range []string{a.policy.Name, a.policy.Name + "-renamed"} {
			_, err := f.st.CreatePolicy(f.ctx, tenant, newPolicy(f.id(), name, "main-repo"))
			assert.NoError(t, err, "%s is free again (the rename: %v)", name, a.renameErr)
		}
	}
}

func TestRepositoriesCountThePoliciesThatUseThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	first := f.repo(tenant, "first-repo")
	f.repo(tenant, "second-repo")
	count := func(repo string) string {
		t.Helper()
		raw := f.rawItem("TENANT#"+tenant, "REPO#"+repo)
		require.NotNil(t, raw, repo)
		n, ok := raw["policyCount"].(*types.AttributeValueMemberN)
		require.True(t, ok, "%s carries its count: %v", repo, raw["policyCount"])
		return n.Value
	}
	assert.Equal(t, "0", count("first-repo"))
	p := f.policy(tenant, "nightly", "first-repo")
	q := f.policy(tenant, "weekly", "first-repo")
	assert.Equal(t, "2", count("first-repo"))

	f.now = f.now.Add(time.Minute)
	changed := first
	changed.Description = "the first one"
	updated, err := f.st.UpdateRepository(f.ctx, tenant, changed)
	require.NoError(t, err)
	assert.Equal(t, "2", count("first-repo"), "an update of the repository keeps its count")
	assert.Equal(t, domain.Repository{TenantID: tenant, Name: "first-repo", Description: "the first one", Backend: domain.BackendLocal,
		Location: first.Location, CreatedAt: first.CreatedAt, UpdatedAt: f.now, Version: 2}, updated, "returned as stored")

	p.Repository = "second-repo"
	_, err = f.st.UpdatePolicy(f.ctx, tenant, p)
	require.NoError(t, err)
	assert.Equal(t, "1", count("first-repo"), "a policy that moves leaves")
	assert.Equal(t, "1", count("second-repo"), "and arrives")
	q.Description = "no move"
	_, err = f.st.UpdatePolicy(f.ctx, tenant, q)
	require.NoError(t, err)
	assert.Equal(t, "1", count("first-repo"), "an update that keeps the repository keeps the count")

	require.NoError(t, f.st.DeletePolicy(f.ctx, tenant, q.ID))
	assert.Equal(t, "0", count("first-repo"), "a deleted policy leaves")
	require.NoError(t, f.st.DeleteRepository(f.ctx, tenant, "first-repo"))
	assert.ErrorIs(t, f.st.DeleteRepository(f.ctx, tenant, "second-repo"), domain.ErrConflict)
}

func TestDeletingAgainCompletesAnInterruptedDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	b := f.agent(tenant, offline)
	p := f.policy(tenant, "nightly", "main-repo")
	q := f.policy(tenant, "weekly", "main-repo")
	due := f.now.Add(-time.Minute)
	for _, pol := range []string{p.ID, q.ID} {
		for _, ag := range []string{a.ID, b.ID} {
			require.NoError(t, f.st.Assign(f.ctx, tenant, pol, ag, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &due}}))
		}
	}
	// A delete that stopped after removing the agent, and one after removing the policy.
	f.rawDelete("TENANT#"+tenant, "AGENT#"+a.ID)
	f.rawDelete("TENANT#"+tenant, "POLICY#"+q.ID)
	require.Len(t, dueNames(f.due(f.now)), 4, "their slots are still due")

	assert.ErrorIs(t, f.st.DeleteAgent(f.ctx, tenant, a.ID), domain.ErrNotFound)
	assert.ErrorIs(t, f.st.DeletePolicy(f.ctx, tenant, q.ID), domain.ErrNotFound)
	assert.Equal(t, []string{fmt.Sprintf("slot %s/%s/backup", p.ID, b.ID)}, dueNames(f.due(f.now)), "only the slot of what is left")
	agents, _, err := f.st.ListPolicyAgents(f.ctx, tenant, p.ID, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{b.ID}, agents)
	policies, _, err := f.st.ListAgentPolicies(f.ctx, tenant, b.ID, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{p.ID}, policies)
}
