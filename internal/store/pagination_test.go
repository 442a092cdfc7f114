package store_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// listing is one paginated listing of a tenant, reduced to the IDs it returns, and the IDs it
// should return, in order.
type listing struct {
	name string
	list func(store.Page) ([]string, string, error)
	want []string
}

func listOf[T any](list func(store.Page) ([]T, string, error), id func(T) string) func(store.Page) ([]string, string, error) {
	return func(p store.Page) ([]string, string, error) {
		items, next, err := list(p)
		return idsOf(items, id), next, err
	}
}

// fleet fills a tenant with seven of everything (more than two pages of three) and returns
// every listing of it.
func (f *fixture) fleet(tenant string) []listing {
	f.t.Helper()
	t, ctx, st := f.t, f.ctx, f.st
	const n = 7
	f.tenant(tenant)
	var keys, tokens, agents, repos, policies, labelled, tasks, agentTasks, runs, chunks, snaps []string
	for i := range n {
		k := domain.APIKey{ID: f.id(), Name: fmt.Sprintf("key-%d", i), Role: domain.RoleViewer, SecretHash: "h", CreatedAt: f.now}
		require.NoError(t, st.CreateAPIKey(ctx, tenant, k))
		keys = append(keys, k.ID)
	}
	shared := f.token(tenant, func(e *domain.EnrollmentToken) { e.MaxUses = n })
	tokens = append(tokens, shared.ID)
	for range n - 1 {
		tokens = append(tokens, f.token(tenant).ID)
	}
	for i := range n {
		a := newAgent(f.id(), f.now)
		if i%2 == 1 {
			a.Labels = map[string]string{"env": "prod"}
			labelled = append(labelled, a.ID)
		}
		_, err := st.RegisterAgent(ctx, tenant, shared.ID, a)
		require.NoError(t, err)
		agents = append(agents, a.ID)
	}
	for i := range n {
		name := fmt.Sprintf("repo-%c", 'g'-i) // created in reverse name order
		f.repo(tenant, name)
		repos = append([]string{name}, repos...)
	}
	for i := range n {
		policies = append(policies, f.policy(tenant, fmt.Sprintf("policy-%d", i), "repo-a").ID)
	}
	first, agent0 := policies[0], agents[0]
	due := f.now.Add(time.Hour)
	for _, a := range agents {
		require.NoError(t, st.Assign(ctx, tenant, first, a, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &due}}))
	}
	for _, p := range policies[1:] {
		require.NoError(t, st.Assign(ctx, tenant, p, agent0, nil))
	}
	var run domain.Run
	for i := range n {
		tk := f.task(tenant, agent0, func(t *domain.Task) { t.PolicyID = first })
		agentTasks = append([]string{tk.ID}, agentTasks...)
		tasks = append([]string{tk.ID}, tasks...)
		run = f.run(tenant, tk)
		runs = append([]string{run.ID}, runs...)
		if i == 3 {
			tasks = append([]string{f.task(tenant, agents[1]).ID}, tasks...)
		}
	}
	for i := range n {
		f.chunk(tenant, run.ID, int64(i), fmt.Sprintf("line %d", i))
		chunks = append(chunks, fmt.Sprint(i))
	}
	var reported []domain.Snapshot
	for i := range n {
		id := fmt.Sprintf("%016x", f.ids.Add(1))
		reported = append(reported, domain.Snapshot{ID: id, Repository: "repo-a", Time: f.now.Add(time.Duration(i) * time.Hour)})
		snaps = append([]string{id}, snaps...)
	}
	require.NoError(t, st.PutSnapshots(ctx, tenant, agent0, reported))

	slotAgent := func(s domain.Slot) string { return s.AgentID }
	chunkSeq := func(c domain.LogChunk) string { return fmt.Sprint(c.Seq) }
	snapID := func(s domain.Snapshot) string { return s.ID }
	keyID := func(k domain.APIKey) string { return k.ID }
	tokenID := func(e domain.EnrollmentToken) string { return e.ID }
	str := func(s string) string { return s }
	return []listing{
		{"api keys", listOf(func(p store.Page) ([]domain.APIKey, string, error) { return st.ListAPIKeys(ctx, tenant, p) }, keyID), keys},
		{"enrollment tokens", listOf(func(p store.Page) ([]domain.EnrollmentToken, string, error) {
			return st.ListEnrollmentTokens(ctx, tenant, p)
		}, tokenID), tokens},
		{"agents", listOf(func(p store.Page) ([]domain.Agent, string, error) {
			return st.ListAgents(ctx, tenant, store.AgentFilter{}, p)
		}, agentID), agents},
		{"agents labelled env=prod", listOf(func(p store.Page) ([]domain.Agent, string, error) {
			return st.ListAgents(ctx, tenant, store.AgentFilter{LabelKey: "env", LabelValue: "prod"}, p)
		}, agentID), labelled},
		{"repositories", listOf(func(p store.Page) ([]domain.Repository, string, error) { return st.ListRepositories(ctx, tenant, p) }, repoName), repos},
		{"policies", listOf(func(p store.Page) ([]domain.Policy, string, error) {
			return st.ListPolicies(ctx, tenant, store.PolicyFilter{}, p)
		}, policyID), policies},
		{"policies on repo-a", listOf(func(p store.Page) ([]domain.Policy, string, error) {
			return st.ListPolicies(ctx, tenant, store.PolicyFilter{Repository: "repo-a"}, p)
		}, policyID), policies},
		{"agents of the first policy", listOf(func(p store.Page) ([]string, string, error) { return st.ListPolicyAgents(ctx, tenant, first, p) }, str), agents},
		{"policies of the first agent", listOf(func(p store.Page) ([]string, string, error) { return st.ListAgentPolicies(ctx, tenant, agent0, p) }, str), policies},
		{"slots of the first policy", listOf(func(p store.Page) ([]domain.Slot, string, error) { return st.ListPolicySlots(ctx, tenant, first, p) }, slotAgent), agents},
		{"tasks", listOf(func(p store.Page) ([]domain.Task, string, error) {
			return st.ListTasks(ctx, tenant, store.TaskFilter{}, p)
		}, taskID), tasks},
		{"tasks of the first agent", listOf(func(p store.Page) ([]domain.Task, string, error) {
			return st.ListTasks(ctx, tenant, store.TaskFilter{AgentID: agent0}, p)
		}, taskID), agentTasks},
		{"pending backups since the start", listOf(func(p store.Page) ([]domain.Task, string, error) {
			return st.ListTasks(ctx, tenant, store.TaskFilter{Status: domain.TaskPending, Type: domain.TaskBackup, From: epoch, To: f.now.Add(time.Hour)}, p)
		}, taskID), tasks},
		{"runs", listOf(func(p store.Page) ([]domain.Run, string, error) {
			return st.ListRuns(ctx, tenant, store.RunFilter{}, p)
		}, runID), runs},
		{"runs of the first agent", listOf(func(p store.Page) ([]domain.Run, string, error) {
			return st.ListRuns(ctx, tenant, store.RunFilter{AgentID: agent0}, p)
		}, runID), runs},
		{"runs of the first policy", listOf(func(p store.Page) ([]domain.Run, string, error) {
			return st.ListRuns(ctx, tenant, store.RunFilter{PolicyID: first}, p)
		}, runID), runs},
		{"running runs of the first agent and policy", listOf(func(p store.Page) ([]domain.Run, string, error) {
			return st.ListRuns(ctx, tenant, store.RunFilter{AgentID: agent0, PolicyID: first, Status: domain.TaskRunning}, p)
		}, runID), runs},
		{"log", listOf(func(p store.Page) ([]domain.LogChunk, string, error) { return st.ListLog(ctx, tenant, run.ID, p) }, chunkSeq), chunks},
		{"snapshots", listOf(func(p store.Page) ([]domain.Snapshot, string, error) { return st.ListSnapshots(ctx, tenant, agent0, p) }, snapID), snaps},
	}
}

func TestEveryListingPagesThroughAllItemsOnceInOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, l := range f.fleet("acme") {
		require.GreaterOrEqual(t, len(l.want), 3, "%s spans pages", l.name)
		whole, next, err := l.list(store.Page{Limit: 100})
		require.NoError(t, err, l.name)
		assert.Equal(t, l.want, whole, "%s in one page", l.name)
		assert.Empty(t, next, "%s: one page holds it all", l.name)
		for _, limit := range []int{1, 3} {
			paged, pages := walk(t, limit, l.list)
			assert.Equal(t, l.want, paged, "%s, %d per page", l.name, limit)
			assert.LessOrEqual(t, pages, len(l.want)/limit+1, "%s, %d per page", l.name, limit)
		}
	}
}

func TestCursorsAreOpaqueAndBoundToTheirListingAndTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	acme := f.fleet("acme")
	beta := f.fleet("beta")
	// A cursor from the first page of each of acme's listings.
	cursors := map[string]string{}
	for _, l := range acme {
		_, next, err := l.list(store.Page{Limit: 2})
		require.NoError(t, err, l.name)
		require.NotEmpty(t, next, l.name)
		cursors[l.name] = next
	}

	garbage := map[string]string{
		"not base64":             "%%%not-base64%%%",
		"not JSON":               base64.RawURLEncoding.EncodeToString([]byte("not json")),
		"no sort key":            base64.RawURLEncoding.EncodeToString([]byte(`{"p":"TENANT#acme"}`)),
		"a sort key of no kind":  base64.RawURLEncoding.EncodeToString([]byte(`{"s":"NOPE#1","g":"NOPE#1","p":"TENANT#acme"}`)),
		"too long":               strings.Repeat("A", 4096),
		"a key longer than keys": base64.RawURLEncoding.EncodeToString([]byte(`{"s":"` + strings.Repeat("x", 2000) + `","g":"x","p":"x"}`)),
	}
	for i, l := range beta {
		for name, c := range garbage {
			_, _, err := l.list(store.Page{Cursor: c})
			assert.ErrorIs(t, err, domain.ErrInvalidCursor, "%s with a cursor that is %s", l.name, name)
		}
		mine := map[string]bool{}
		for _, id := range l.want {
			mine[id] = true
		}
		for from, c := range cursors {
			// The same listing of the other tenant, or any other listing of it: an invalid
			// cursor, or a page of beta's own items, never acme's.
			got, _, err := l.list(store.Page{Cursor: c})
			if err != nil {
				assert.ErrorIs(t, err, domain.ErrInvalidCursor, "acme's %s cursor given to beta's %s", from, l.name)
				continue
			}
			for _, id := range got {
				assert.True(t, mine[id], "acme's %s cursor given to beta's %s returned %s, not one of beta's", from, l.name, id)
			}
		}
		// A cursor of another of beta's own listings: invalid, or a page of this listing.
		for j, other := range beta {
			if j == i {
				continue
			}
			_, c, err := other.list(store.Page{Limit: 2})
			require.NoError(t, err)
			got, _, err := l.list(store.Page{Cursor: c})
			if err != nil {
				assert.ErrorIs(t, err, domain.ErrInvalidCursor, "the %s cursor given to %s", other.name, l.name)
				continue
			}
			for _, id := range got {
				assert.True(t, mine[id], "the %s cursor given to %s returned %s, which it does not list", other.name, l.name, id)
			}
		}
	}
	// The cursors of listings of different kinds of item are refused outright.
	byName := map[string]listing{}
	for _, l := range acme {
		byName[l.name] = l
	}
	for _, pair := range [][2]string{
		{"policies", "agents"}, {"agents", "policies"}, {"tasks", "runs"}, {"runs", "tasks"}, {"api keys", "enrollment tokens"},
		{"tasks", "tasks of the first agent"}, {"log", "snapshots"}, {"repositories", "policies"}, {"policies of the first agent", "runs of the first policy"},
	} {
		_, _, err := byName[pair[1]].list(store.Page{Cursor: cursors[pair[0]]})
		assert.ErrorIs(t, err, domain.ErrInvalidCursor, "a %s cursor given to %s", pair[0], pair[1])
	}
}

func TestPageLimitsHaveADefaultAndACap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	a := f.agent(tenant)
	var snaps []domain.Snapshot
	for i := range 120 {
		snaps = append(snaps, domain.Snapshot{ID: fmt.Sprintf("%08x", i+1), Repository: "main-repo", Time: f.now.Add(time.Duration(i) * time.Minute)})
	}
	require.NoError(t, f.st.PutSnapshots(f.ctx, tenant, a.ID, snaps))
	for _, c := range []struct {
		limit, want int
	}{{0, 50}, {-3, 50}, {1000, 100}, {100, 100}, {7, 7}} {
		got, next, err := f.st.ListSnapshots(f.ctx, tenant, a.ID, store.Page{Limit: c.limit})
		require.NoError(t, err)
		assert.Len(t, got, c.want, "limit %d", c.limit)
		assert.NotEmpty(t, next, "limit %d: more to read", c.limit)
	}
}
