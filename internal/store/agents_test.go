package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestListAgentsFiltersByStatusAndLabel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.tenant("other")
	labelled := func(status domain.AgentStatus, labels map[string]string) domain.Agent {
		return f.agent(tenant, func(a *domain.Agent) { a.Status, a.Labels = status, labels })
	}
	webProd := labelled(domain.AgentOnline, map[string]string{"role": "web", "env": "prod"})
	dbProd := labelled(domain.AgentOnline, map[string]string{"role": "db", "env": "prod"})
	webStaging := labelled(domain.AgentOffline, map[string]string{"role": "web", "env": "staging"})
	bare := labelled(domain.AgentOffline, nil)
	empty := labelled(domain.AgentOnline, map[string]string{"env": ""})
	f.agent("other", func(a *domain.Agent) { a.Labels = map[string]string{"role": "web"} })

	cases := []struct {
		name   string
		filter store.AgentFilter
		want   []domain.Agent
	}{
		{"all", store.AgentFilter{}, []domain.Agent{webProd, dbProd, webStaging, bare, empty}},
		{"online", store.AgentFilter{Status: domain.AgentOnline}, []domain.Agent{webProd, dbProd, empty}},
		{"offline", store.AgentFilter{Status: domain.AgentOffline}, []domain.Agent{webStaging, bare}},
		{"role=web", store.AgentFilter{LabelKey: "role", LabelValue: "web"}, []domain.Agent{webProd, webStaging}},
		{"has env", store.AgentFilter{LabelKey: "env"}, []domain.Agent{webProd, dbProd, webStaging, empty}},
		{"online role=web", store.AgentFilter{Status: domain.AgentOnline, LabelKey: "role", LabelValue: "web"}, []domain.Agent{webProd}},
		{"role=cache", store.AgentFilter{LabelKey: "role", LabelValue: "cache"}, []domain.Agent{}},
	}
	for _, c := range cases {
		got, _, err := f.st.ListAgents(f.ctx, tenant, c.filter, store.Page{})
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, got, c.name)
		// The same filter, one agent per page: a page that the filter empties is read past.
		paged, _ := walk(t, 1, func(p store.Page) ([]domain.Agent, string, error) {
			return f.st.ListAgents(f.ctx, tenant, c.filter, p)
		})
		assert.Equal(t, idsOf(c.want, agentID), idsOf(paged, agentID), "%s, one per page", c.name)
	}
}

func TestUpdateAgentNeedsTheVersionItRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)

	f.now = f.now.Add(time.Minute)
	change := a
	change.Labels = map[string]string{"env": "prod"}
	updated, err := f.st.UpdateAgent(f.ctx, tenant, change)
	require.NoError(t, err)
	assert.Equal(t, a.Version+1, updated.Version)
	assert.Equal(t, f.now, updated.UpdatedAt)
	got, err := f.st.GetAgent(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, updated, got)

	stale := a
	stale.Hostname = "lost-update"
	_, err = f.st.UpdateAgent(f.ctx, tenant, stale)
	assert.ErrorIs(t, err, domain.ErrConflict, "an update from the version before")
	got, err = f.st.GetAgent(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, updated, got, "a refused update changes nothing")

	missing := newAgent(f.id(), f.now)
	missing.Version = 1
	_, err = f.st.UpdateAgent(f.ctx, tenant, missing)
	assert.ErrorIs(t, err, domain.ErrNotFound)

	invalid := got
	invalid.Hostname = ""
	_, err = f.st.UpdateAgent(f.ctx, tenant, invalid)
	var ve *domain.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "hostname", ve.Fields[0].Field)
}

func TestModifyAgentRetriesLostRacesAndKeepsEveryChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)

	const writers = 4
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			_, errs[i] = f.st.ModifyAgent(f.ctx, tenant, a.ID, func(a *domain.Agent) error {
				if a.Labels == nil {
					a.Labels = map[string]string{}
				}
				a.Labels[fmt.Sprintf("writer-%d", i)] = "yes"
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "writer %d", i)
	}
	got, err := f.st.GetAgent(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Len(t, got.Labels, writers, "every writer's label survives: %v", got.Labels)
	assert.Equal(t, a.Version+writers, got.Version)

	refused := errors.New("not today")
	_, err = f.st.ModifyAgent(f.ctx, tenant, a.ID, func(a *domain.Agent) error {
		a.Hostname = "changed"
		return refused
	})
	assert.ErrorIs(t, err, refused, "the change's own error")
	after, err := f.st.GetAgent(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, got, after, "an abandoned change writes nothing")

	_, err = f.st.ModifyAgent(f.ctx, tenant, f.id(), func(*domain.Agent) error { return nil })
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

func TestDeleteAgentRemovesItsCredentialAssignmentsAndSlotsButKeepsHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	gone := f.agent(tenant)
	stays := f.agent(tenant)
	due := f.now.Add(-time.Minute)
	var policies []string
	for i := range 3 {
		p := f.policy(tenant, fmt.Sprintf("policy-%d", i), "main-repo")
		policies = append(policies, p.ID)
		for _, a := range []domain.Agent{gone, stays} {
			require.NoError(t, f.st.Assign(f.ctx, tenant, p.ID, a.ID, []domain.Slot{
				{Kind: domain.SlotBackup, NextRunAt: &due}, {Kind: domain.SlotForget, NextRunAt: &due},
			}))
		}
	}
	task := f.task(tenant, gone.ID)
	run := f.run(tenant, task)
	require.NoError(t, f.st.PutSnapshots(f.ctx, tenant, gone.ID, []domain.Snapshot{{ID: "aaaaaaaa", Repository: "main-repo", Time: f.now}}))

	require.Contains(t, strings.Join(dueNames(f.due(f.now.Add(time.Hour))), " "), gone.ID, "the agent and its slots are due before")

	require.NoError(t, f.st.DeleteAgent(f.ctx, tenant, gone.ID))

	_, err := f.st.GetAgent(f.ctx, tenant, gone.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound, "the agent")
	_, err = f.st.LookupAgentCredential(f.ctx, gone.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound, "its credential")
	assigned, _, err := f.st.ListAgentPolicies(f.ctx, tenant, gone.ID, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, assigned, "its assignments, seen from the agent")
	for _, p := range policies {
		agents, _, err := f.st.ListPolicyAgents(f.ctx, tenant, p, store.Page{})
		require.NoError(t, err)
		assert.Equal(t, []string{stays.ID}, agents, "its assignments, seen from policy %s", p)
		slots, _, err := f.st.ListPolicySlots(f.ctx, tenant, p, store.Page{})
		require.NoError(t, err)
		for _, sl := range slots {
			assert.Equal(t, stays.ID, sl.AgentID, "its slots of policy %s", p)
		}
		assert.Len(t, slots, 2, "the other agent's slots of policy %s", p)
	}
	for _, name := range dueNames(f.due(f.now.Add(time.Hour))) {
		assert.NotContains(t, name, gone.ID, "neither its slots nor the agent stay in the due index")
	}

	_, err = f.st.GetTask(f.ctx, tenant, task.ID)
	assert.NoError(t, err, "its tasks stay as history")
	_, err = f.st.GetRun(f.ctx, tenant, run.ID)
	assert.NoError(t, err, "its runs stay as history")
	snaps, _, err := f.st.ListSnapshots(f.ctx, tenant, gone.ID, store.Page{})
	require.NoError(t, err)
	assert.Len(t, snaps, 1, "its snapshots stay as history")

	_, err = f.st.GetAgent(f.ctx, tenant, stays.ID)
	assert.NoError(t, err, "the other agent stays")
	_, err = f.st.LookupAgentCredential(f.ctx, stays.ID)
	assert.NoError(t, err, "with its credential")

	assert.ErrorIs(t, f.st.DeleteAgent(f.ctx, tenant, gone.ID), domain.ErrNotFound, "deleting again")
}
