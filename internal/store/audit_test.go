package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// audited returns a context carrying a new pending entry of an API key's change to a resource.
func (f *fixture) audited(tenant, actor, action string, res domain.AuditResource) (context.Context, *store.PendingAudit) {
	p := store.NewPendingAudit(tenant, f.st.Now(), domain.AuditActor{Type: domain.ActorAPIKey, ID: actor, Name: "ops"}, action, res, "req-1", "192.0.2.7")
	return store.WithAudit(f.ctx, p), p
}

func (f *fixture) auditLog(tenant string, filter store.AuditFilter) []domain.AuditEntry {
	f.t.Helper()
	var all []domain.AuditEntry
	page := store.Page{Limit: 100}
	for {
		got, next, err := f.st.ListAudit(f.ctx, tenant, filter, page)
		require.NoError(f.t, err)
		all = append(all, got...)
		if next == "" {
			return all
		}
		page.Cursor = next
	}
}

// TestAnAuditedChangeStoresItsEntryWithIt: the entry lands with the change, holds what the
// request said, names a created resource by the item the store wrote, and expires after the
// retention.
func TestAnAuditedChangeStoresItsEntryWithIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.st.AuditRetention = 30 * 24 * time.Hour
	tenant := f.tenant("acme")
	actor := f.id()

	ctx, p := f.audited(tenant, actor, "POST /v1/repositories", domain.AuditResource{Type: domain.ResourceRepository})
	repo := domain.Repository{Name: "main-repo", Backend: domain.BackendLocal, Location: "/srv/restic"}
	p.Record("", nil, repo)
	_, err := f.st.CreateRepository(ctx, tenant, repo)
	require.NoError(t, err)
	assert.True(t, p.Landed())

	// Later writes of the same request carry no second entry.
	_, err = f.st.CreateRepository(ctx, tenant, domain.Repository{Name: "second", Backend: domain.BackendLocal, Location: "/srv/b"})
	require.NoError(t, err)

	log := f.auditLog(tenant, store.AuditFilter{})
	require.Len(t, log, 1)
	e := log[0]
	assert.Equal(t, p.Entry().ID, e.ID)
	assert.Equal(t, domain.AuditActor{Type: domain.ActorAPIKey, ID: actor, Name: "ops"}, e.Actor)
	assert.Equal(t, "POST /v1/repositories", e.Action)
	assert.Equal(t, domain.AuditResource{Type: domain.ResourceRepository, ID: "main-repo"}, e.Resource)
	assert.Equal(t, "req-1", e.RequestID)
	assert.Equal(t, "192.0.2.7", e.SourceIP)
	assert.Equal(t, f.now, e.Time)
	assert.Equal(t, f.now.Add(30*24*time.Hour), e.ExpiresAt)
	fields := map[string]string{}
	for _, c := range e.Changes {
		assert.Empty(t, c.From, c.Field)
		fields[c.Field] = string(c.To)
	}
	assert.Equal(t, map[string]string{"name": `"main-repo"`, "backend": `"local"`, "location": `"/srv/restic"`}, fields)
}

// TestAFailedChangeStoresNoAuditEntry: a write refused by its condition stores no entry, and the
// request's next write (the store trying again, or another change) still carries it.
func TestAFailedChangeStoresNoAuditEntry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	r := f.repo(tenant, "main-repo")

	ctx, p := f.audited(tenant, f.id(), "POST /v1/repositories", domain.AuditResource{Type: domain.ResourceRepository})
	_, err := f.st.CreateRepository(ctx, tenant, domain.Repository{Name: "main-repo", Backend: domain.BackendLocal, Location: "/srv/x"})
	require.ErrorIs(t, err, domain.ErrConflict)
	assert.False(t, p.Landed())

	stale := r
	stale.Version = 7
	ctx, p = f.audited(tenant, f.id(), "PUT /v1/repositories/{name}", domain.AuditResource{Type: domain.ResourceRepository, ID: r.Name})
	_, err = f.st.UpdateRepository(ctx, tenant, stale)
	require.ErrorIs(t, err, domain.ErrConflict)
	err = f.st.DeleteRepository(store.WithAudit(f.ctx, p), tenant, "missing-repo")
	require.ErrorIs(t, err, domain.ErrNotFound)
	assert.Empty(t, f.auditLog(tenant, store.AuditFilter{}))

	// The same request's write that succeeds takes the entry.
	_, err = f.st.UpdateRepository(ctx, tenant, r)
	require.NoError(t, err)
	assert.Len(t, f.auditLog(tenant, store.AuditFilter{}), 1)
}

// TestAChangeWhoseAnswerWasLostStoresOneAuditEntry: the SDK sends a write again when its answer
// is lost; the retry finds its own entry, reports the change done, and writes no second entry —
// for single writes turned into transactions and for the store's own transactions alike.
func TestAChangeWhoseAnswerWasLostStoresOneAuditEntry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	loser := &answerLoser{lose: map[string]int{}}
	flaky := store.New(dynamodb.NewFromConfig(f.cfg, testenv.StrictTransactions, loser.option), f.st.Table())
	flaky.Now = f.st.Now
	tenant := f.tenant("acme")
	r := f.repo(tenant, "main-repo")
	a := f.agent(tenant)

	steps := []struct {
		name   string
		change func(ctx context.Context) error
	}{
		{"create (a conditional put)", func(ctx context.Context) error {
			_, err := flaky.CreateRepository(ctx, tenant, domain.Repository{Name: "other-repo", Backend: domain.BackendLocal, Location: "/srv/o"})
			return err
		}},
		{"update (a conditional update returning the item)", func(ctx context.Context) error {
			updated, err := flaky.UpdateRepository(ctx, tenant, domain.Repository{Name: r.Name, Backend: domain.BackendLocal, Location: "/srv/moved", Version: r.Version})
			if err == nil && updated.Location != "/srv/moved" {
				return errors.New("the update returned " + updated.Location)
			}
			return err
		}},
		{"an agent's update (a transaction of the store's own)", func(ctx context.Context) error {
			changed := a
			changed.Labels = map[string]string{"env": "prod"}
			_, err := flaky.UpdateAgent(ctx, tenant, changed)
			return err
		}},
		{"delete (a conditional delete)", func(ctx context.Context) error {
			return flaky.DeleteRepository(ctx, tenant, "other-repo")
		}},
	}
	for i, s := range steps {
		loser.next("TransactWriteItems")
		ctx, p := f.audited(tenant, f.id(), s.name, domain.AuditResource{Type: domain.ResourceRepository, ID: r.Name})
		require.NoError(t, s.change(ctx), s.name)
		assert.True(t, p.Landed(), s.name)
		assert.Len(t, f.auditLog(tenant, store.AuditFilter{}), i+1, "after %s", s.name)
	}
	assert.Equal(t, len(steps), loser.lost, "every change lost its first answer")
}

// TestAuditFiltersAndPages lists the log by resource, resource type, actor and time, newest
// first, page by page.
func TestAuditFiltersAndPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	other := f.tenant("beta")
	alice, bob := f.id(), f.id()
	policy1, policy2 := f.id(), f.id()
	type made struct {
		actor string
		res   domain.AuditResource
		at    time.Time
	}
	var entries []made
	for i := range 9 {
		actor := alice
		if i%3 == 0 {
			actor = bob
		}
		res := domain.AuditResource{Type: domain.ResourcePolicy, ID: policy1}
		switch i % 3 {
		case 1:
			res.ID = policy2
		case 2:
			res = domain.AuditResource{Type: domain.ResourceRepository, ID: "main-repo"}
		}
		f.now = epoch.Add(time.Duration(i) * time.Minute)
		p := store.NewPendingAudit(tenant, f.now, domain.AuditActor{Type: domain.ActorAPIKey, ID: actor}, "PATCH /v1/policies/{policyId}", res, "", "")
		require.NoError(t, f.st.PutAudit(f.ctx, p))
		entries = append(entries, made{actor, res, f.now})
	}
	// Another tenant's entry is never listed.
	require.NoError(t, f.st.PutAudit(f.ctx, store.NewPendingAudit(other, f.now, domain.AuditActor{Type: domain.ActorAPIKey, ID: alice}, "POST /v1/policies", domain.AuditResource{Type: domain.ResourcePolicy, ID: policy1}, "", "")))

	want := func(keep func(made) bool) []time.Time {
		var out []time.Time
		for i := len(entries) - 1; i >= 0; i-- {
			if keep(entries[i]) {
				out = append(out, entries[i].at)
			}
		}
		return out
	}
	times := func(es []domain.AuditEntry) []time.Time {
		var out []time.Time
		for _, e := range es {
			out = append(out, e.Time)
		}
		return out
	}
	since, until := epoch.Add(2*time.Minute), epoch.Add(6*time.Minute)
	cases := []struct {
		name   string
		filter store.AuditFilter
		keep   func(made) bool
	}{
		{"everything", store.AuditFilter{}, func(made) bool { return true }},
		{"one resource", store.AuditFilter{ResourceType: domain.ResourcePolicy, ResourceID: policy2}, func(m made) bool { return m.res.ID == policy2 }},
		{"a resource type", store.AuditFilter{ResourceType: domain.ResourcePolicy}, func(m made) bool { return m.res.Type == domain.ResourcePolicy }},
		{"an actor", store.AuditFilter{ActorID: bob}, func(m made) bool { return m.actor == bob }},
		{"an actor on a resource type", store.AuditFilter{ActorID: alice, ResourceType: domain.ResourceRepository}, func(m made) bool { return m.actor == alice && m.res.Type == domain.ResourceRepository }},
		{"an actor on one resource", store.AuditFilter{ActorID: bob, ResourceType: domain.ResourcePolicy, ResourceID: policy1}, func(m made) bool { return m.actor == bob && m.res.ID == policy1 }},
		{"a time range", store.AuditFilter{Since: since, Until: until}, func(m made) bool { return !m.at.Before(since) && !m.at.After(until) }},
		{"a resource type in a time range", store.AuditFilter{ResourceType: domain.ResourcePolicy, Since: since, Until: until}, func(m made) bool {
			return m.res.Type == domain.ResourcePolicy && !m.at.Before(since) && !m.at.After(until)
		}},
	}
	for _, c := range cases {
		// Pages of two: every page but the last is full, and together they list each entry once.
		var got []domain.AuditEntry
		page := store.Page{Limit: 2}
		for {
			es, next, err := f.st.ListAudit(f.ctx, tenant, c.filter, page)
			require.NoError(t, err, c.name)
			if next != "" {
				assert.Len(t, es, 2, c.name)
			}
			got = append(got, es...)
			if next == "" {
				break
			}
			page.Cursor = next
		}
		assert.Equal(t, want(c.keep), times(got), c.name)
	}
	_, _, err := f.st.ListAudit(f.ctx, tenant, store.AuditFilter{ResourceType: domain.ResourcePolicy}, store.Page{Cursor: "bm90IGEgY3Vyc29y"})
	assert.ErrorIs(t, err, domain.ErrInvalidCursor)
}
