package store_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// keysMentioning lists "PK | SK" of every item of the table with a string attribute that
// contains s.
func (f *fixture) keysMentioning(s string) []string {
	f.t.Helper()
	return testenv.KeysMentioning(f.ctx, f.t, f.db, f.st.Table(), s)
}

func TestABegunTenantDeletionIsKeptOnTheTenantAndListed(t *testing.T) {
	f := newFixture(t)
	f.tenant("doomed")
	f.tenant("kept")
	d, err := f.st.GetTenantDeletion(f.ctx, "doomed")
	require.NoError(t, err)
	assert.Equal(t, store.TenantActive, d.Status)

	began := f.now
	d, err = f.st.BeginTenantDeletion(f.ctx, "doomed")
	require.NoError(t, err)
	assert.Equal(t, store.TenantDeletion{TenantID: "doomed", Status: store.TenantDeleting, Since: began, Removed: store.Removed{}}, d)
	f.now = f.now.Add(time.Hour)
	d, err = f.st.BeginTenantDeletion(f.ctx, "doomed")
	require.NoError(t, err)
	assert.Equal(t, began, d.Since, "beginning again keeps the first time")
	got, err := f.st.GetTenantDeletion(f.ctx, "doomed")
	require.NoError(t, err)
	assert.Equal(t, d, got)
	tenant, _, err := f.st.GetTenant(f.ctx, "doomed")
	require.NoError(t, err)
	assert.Equal(t, "Tenant doomed", tenant.Name, "the tenant reads as before")

	ids, err := f.st.DeletingTenants(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"doomed"}, ids)

	_, err = f.st.BeginTenantDeletion(f.ctx, "nobody")
	assert.ErrorIs(t, err, domain.ErrNotFound)
	assert.Empty(t, f.keysMentioning("nobody"), "beginning the deletion of a missing tenant creates nothing")
	_, err = f.st.BeginTenantDeletion(f.ctx, "Not_A_Tenant")
	var ve *domain.ValidationError
	assert.ErrorAs(t, err, &ve)
}

func TestOnePassAtATimeHoldsATenantDeletion(t *testing.T) {
	f := newFixture(t)
	f.tenant("doomed")
	f.tenant("kept")
	_, _, err := f.st.LeaseTenantDeletion(f.ctx, "kept", "a", f.now.Add(time.Minute))
	assert.ErrorIs(t, err, domain.ErrConflict, "a tenant not being deleted has no deletion to lease")
	_, _, err = f.st.LeaseTenantDeletion(f.ctx, "nobody", "a", f.now.Add(time.Minute))
	assert.ErrorIs(t, err, domain.ErrNotFound)

	_, err = f.st.BeginTenantDeletion(f.ctx, "doomed")
	require.NoError(t, err)
	d, ok, err := f.st.LeaseTenantDeletion(f.ctx, "doomed", "a", f.now.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok)
	d.Removed = store.Removed{"tasks": 3}
	require.NoError(t, f.st.RecordTenantDeletion(f.ctx, "a", d))

	got, ok, err := f.st.LeaseTenantDeletion(f.ctx, "doomed", "b", f.now.Add(time.Minute))
	require.NoError(t, err)
	assert.False(t, ok, "a pass at work keeps the deletion to itself")
	assert.Equal(t, store.Removed{"tasks": 3}, got.Removed, "the other pass reads its progress")
	assert.ErrorIs(t, f.st.RecordTenantDeletion(f.ctx, "b", d), domain.ErrConflict)
	assert.ErrorIs(t, f.st.FinishTenantDeletion(f.ctx, "doomed", "b"), domain.ErrConflict)
	_, ok, err = f.st.LeaseTenantDeletion(f.ctx, "doomed", "a", f.now.Add(2*time.Minute))
	require.NoError(t, err)
	assert.True(t, ok, "the holder may extend its lease")

	// A pass that died leaves its lease to run out.
	f.now = f.now.Add(3 * time.Minute)
	d, ok, err = f.st.LeaseTenantDeletion(f.ctx, "doomed", "b", f.now.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, store.Removed{"tasks": 3}, d.Removed)
	assert.ErrorIs(t, f.st.RecordTenantDeletion(f.ctx, "a", d), domain.ErrConflict, "the old holder lost it")
	require.NoError(t, f.st.ReleaseTenantDeletion(f.ctx, "doomed", "a"), "releasing a lost lease changes nothing")
	_, ok, err = f.st.LeaseTenantDeletion(f.ctx, "doomed", "c", f.now.Add(time.Minute))
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, f.st.ReleaseTenantDeletion(f.ctx, "doomed", "b"))
	_, ok, err = f.st.LeaseTenantDeletion(f.ctx, "doomed", "c", f.now.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok, "a released lease is free at once")
	require.NoError(t, f.st.FinishTenantDeletion(f.ctx, "doomed", "c"))
	_, err = f.st.GetTenantDeletion(f.ctx, "doomed")
	assert.ErrorIs(t, err, domain.ErrNotFound)
	ids, err := f.st.DeletingTenants(f.ctx)
	require.NoError(t, err)
	assert.Empty(t, ids, "a finished deletion is no longer listed")
}

// Each call's first unit of work runs however little time it has, so a deletion whose every
// call is out of time still ends; a run's long log takes more than one.
func TestDeletingTenantDataStopsWhenTimeIsUpAndTheNextCallGoesOn(t *testing.T) {
	f := newFixture(t)
	w := f.world("doomed", "repo-a", "nightly", "prod")
	f.world("kept", "repo-b", "nightly", "prod")
	keptBefore := f.keysMentioning("kept")
	require.NoError(t, f.st.WatchSlot(f.ctx, store.OverdueCheck{TenantID: "doomed", PolicyID: w.policyID, AgentID: w.agentID,
		Kind: domain.SlotBackup, PlannedAt: f.now, CheckAt: f.now.Add(time.Hour)}))
	long := f.run("doomed", f.task("doomed", w.agentID, func(t *domain.Task) { t.PolicyID = w.policyID }))
	const chunks = 620
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for seq := g; seq < chunks; seq += 8 {
				f.chunk("doomed", long.ID, int64(seq), "line")
			}
		})
	}
	wg.Wait()
	f.channelWithHistory("doomed")

	removed := store.Removed{}
	calls := 0
	for done := false; !done; calls++ {
		require.Less(t, calls, 20, "the deletion does not end")
		var err error
		done, err = f.st.DeleteTenantData(f.ctx, "doomed", store.DataDeletion{Until: time.Now(), Final: true, Progress: func(r store.Removed) error {
			removed.Add(r)
			return nil
		}})
		require.NoError(t, err)
	}
	assert.Greater(t, calls, 1, "a call out of time stops after its first unit of work")
	assert.Equal(t, store.Removed{
		"agents": 1, "agentCredentials": 1, "repositories": 1, "policies": 1, "policyNames": 1, "assignments": 1, "slots": 1,
		"overdueChecks": 1, "tasks": 3, "runs": 2, "logChunks": chunks + 1, "snapshots": 1, "retryBudgets": 1,
		"capacityItems": 1, "counterItems": 2,
		"notificationChannels": 1, "deliveries": 1, "sentEvents": 1, "failureStreaks": 1, "emailConfirmations": 1,
	}, removed)
	var left []string
	for _, k := range f.keysMentioning("doomed") {
		if !strings.HasPrefix(k, "ENROLL#") {
			left = append(left, k)
		}
	}
	assert.ElementsMatch(t, []string{"TENANT#doomed | META", "APIKEY#" + w.keyID + " | META"}, left,
		"what the tenant's data leaves: the tenant, its keys and its tokens")
	assert.ElementsMatch(t, keptBefore, f.keysMentioning("kept"), "the other tenant's items")

	tokens, done, err := f.st.DeleteTenantEnrollmentTokens(f.ctx, "doomed", time.Time{})
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, store.Removed{"enrollmentTokens": 2}, tokens, "the world's own token and its agent's")
	keys, err := f.st.DeleteTenantAPIKeys(f.ctx, "doomed")
	require.NoError(t, err)
	assert.Equal(t, store.Removed{"apiKeys": 1}, keys)
	assert.Equal(t, []string{"TENANT#doomed | META"}, f.keysMentioning("doomed"))
	assert.ElementsMatch(t, keptBefore, f.keysMentioning("kept"))
}

// An agent credential is keyed by the agent's ID alone; one that names another tenant stays.
func TestDeletingTenantCredentialsLeavesAnotherTenantsCredentialAlone(t *testing.T) {
	f := newFixture(t)
	f.tenant("doomed")
	f.tenant("kept")
	a := f.agent("doomed")
	// The same agent ID imported into the other tenant takes the credential over.
	imported := newAgent(a.ID, f.now)
	imported.TenantID = "kept"
	require.NoError(t, f.st.Import(f.ctx, store.Bulk{Agents: []domain.Agent{imported}}, 1))

	removed, done, err := f.st.DeleteTenantAgentCredentials(f.ctx, "doomed", time.Time{})
	require.NoError(t, err)
	assert.True(t, done)
	assert.Empty(t, removed)
	cred, err := f.st.LookupAgentCredential(f.ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, "kept", cred.TenantID)

	other := f.agent("doomed")
	removed, done, err = f.st.DeleteTenantAgentCredentials(f.ctx, "doomed", time.Time{})
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, store.Removed{"agentCredentials": 1}, removed)
	_, err = f.st.LookupAgentCredential(f.ctx, other.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

// Until the final call, a tenant's agents and policies stay, and every call empties their
// partitions again: what a request in flight added after the first call is found by the last.
func TestDataDeletionKeepsAgentsAndPoliciesUntilTheFinalCall(t *testing.T) {
	f := newFixture(t)
	w := f.world("doomed", "repo-a", "nightly", "prod")
	first := store.Removed{}
	done, err := f.st.DeleteTenantData(f.ctx, "doomed", store.DataDeletion{Progress: func(r store.Removed) error { first.Add(r); return nil }})
	require.NoError(t, err)
	require.True(t, done)
	assert.Equal(t, store.Removed{"repositories": 1, "policyNames": 1, "assignments": 1, "slots": 1, "tasks": 2, "runs": 1,
		"logChunks": 1, "snapshots": 1, "retryBudgets": 1, "capacityItems": 1, "counterItems": 2}, first)
	_, err = f.st.GetAgent(f.ctx, "doomed", w.agentID)
	require.NoError(t, err, "the agent stays")
	_, err = f.st.GetPolicy(f.ctx, "doomed", w.policyID)
	require.NoError(t, err, "the policy stays")

	// An agent's snapshot report and a tick's overdue check, in flight when the deletion began.
	require.NoError(t, f.st.PutSnapshots(f.ctx, "doomed", w.agentID, []domain.Snapshot{{ID: "feedbeef", Repository: "repo-a", Time: f.now, Hostname: "db-1", Paths: []string{"/home"}}}))
	require.NoError(t, f.st.WatchSlot(f.ctx, store.OverdueCheck{TenantID: "doomed", PolicyID: w.policyID, AgentID: w.agentID,
		Kind: domain.SlotBackup, PlannedAt: f.now, CheckAt: f.now.Add(time.Hour)}))

	again := store.Removed{}
	done, err = f.st.DeleteTenantData(f.ctx, "doomed", store.DataDeletion{Progress: func(r store.Removed) error { again.Add(r); return nil }})
	require.NoError(t, err)
	require.True(t, done)
	assert.Equal(t, store.Removed{"snapshots": 1, "overdueChecks": 1}, again, "the next call finds what came late")

	require.NoError(t, f.st.PutSnapshots(f.ctx, "doomed", w.agentID, []domain.Snapshot{{ID: "cafebabe", Repository: "repo-a", Time: f.now, Hostname: "db-1", Paths: []string{"/home"}}}))
	last := store.Removed{}
	done, err = f.st.DeleteTenantData(f.ctx, "doomed", store.DataDeletion{Final: true, Progress: func(r store.Removed) error { last.Add(r); return nil }})
	require.NoError(t, err)
	require.True(t, done)
	assert.Equal(t, store.Removed{"snapshots": 1, "agents": 1, "agentCredentials": 1, "policies": 1}, last)
	var left []string
	for _, k := range f.keysMentioning("doomed") {
		if !strings.HasPrefix(k, "ENROLL#") {
			left = append(left, k)
		}
	}
	assert.ElementsMatch(t, []string{"TENANT#doomed | META", "APIKEY#" + w.keyID + " | META"}, left)
}

func TestDeletingATenantRemovesItsUnpublishedEvents(t *testing.T) {
	f := newFixture(t)
	w := f.world("doomed", "repo-a", "nightly", "prod")
	other := f.world("kept", "repo-b", "nightly", "prod")
	agent, err := f.st.GetAgent(f.ctx, "doomed", w.agentID)
	require.NoError(t, err)
	kept, err := f.st.GetAgent(f.ctx, "kept", other.agentID)
	require.NoError(t, err)
	// Two pending events of the tenant (one recorded with a change), one of another tenant.
	changed, err := f.st.SetAgentOffline(f.ctx, agent, f.now, events.NewAgentOffline(f.now, agent))
	require.NoError(t, err)
	require.True(t, changed)
	require.NoError(t, f.st.RecordEvents(f.ctx, []events.Event{events.NewAgentOnline(f.now, agent, f.now)}))
	require.NoError(t, f.st.RecordEvents(f.ctx, []events.Event{events.NewAgentOnline(f.now, kept, f.now)}))
	require.Len(t, f.pendingEvents(), 3)

	removed := store.Removed{}
	for done := false; !done; {
		done, err = f.st.DeleteTenantData(f.ctx, "doomed", store.DataDeletion{Final: true, Progress: func(r store.Removed) error {
			removed.Add(r)
			return nil
		}})
		require.NoError(t, err)
	}
	assert.Equal(t, int64(2), removed["events"], "the outbox items are reported by their own name")
	pending := f.pendingEvents()
	require.Len(t, pending, 1, "the other tenant's event waits to be published")
	assert.Equal(t, "kept", pending[0].TenantID)
}

// pendingEvents lists every outbox entry the due index holds.
func (f *fixture) pendingEvents() []store.OutboxEntry {
	f.t.Helper()
	var out []store.OutboxEntry
	for shard := range resources.DueShards {
		due, _, err := f.st.QueryDue(f.ctx, shard, f.now.Add(time.Hour), store.Page{Limit: 100})
		require.NoError(f.t, err)
		for _, d := range due {
			if d.Outbox != nil {
				out = append(out, *d.Outbox)
			}
		}
	}
	return out
}
