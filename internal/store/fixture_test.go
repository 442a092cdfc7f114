package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// epoch is the fixed present of every test. It lies in the future so that no TTL the tests
// write is in the past for the endpoint's expiry sweeper, which goes by the real clock.
var epoch = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// fixture is one test's store on its own table, with a fixed clock and builders for valid items.
type fixture struct {
	t   *testing.T
	ctx context.Context
	cfg aws.Config
	st  *store.Store
	db  *dynamodb.Client
	now time.Time
	ids atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := testenv.AWS(t)
	db := dynamodb.NewFromConfig(cfg, testenv.StrictTransactions)
	f := &fixture{t: t, ctx: context.Background(), cfg: cfg, st: store.New(db, testenv.Table(t, cfg)), db: db, now: epoch}
	f.st.Now = func() time.Time { return f.now }
	return f
}

// id returns a new ID; IDs made later sort later, a millisecond apart.
func (f *fixture) id() string {
	return domain.NewID(f.now.Add(time.Duration(f.ids.Add(1)) * time.Millisecond))
}

func (f *fixture) tenant(id string) string {
	f.t.Helper()
	require.NoError(f.t, f.st.CreateTenant(f.ctx, domain.Tenant{ID: id, Name: "Tenant " + id, CreatedAt: f.now}))
	return id
}

func (f *fixture) token(tenant string, mod ...func(*domain.EnrollmentToken)) domain.EnrollmentToken {
	f.t.Helper()
	e := domain.EnrollmentToken{ID: f.id(), SecretHash: "token-hash", MaxUses: 1, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}
	for _, m := range mod {
		m(&e)
	}
	require.NoError(f.t, f.st.CreateEnrollmentToken(f.ctx, tenant, e))
	e.TenantID = tenant
	return e
}

func newAgent(id string, now time.Time) domain.Agent {
	seen := now
	return domain.Agent{
		ID: id, Hostname: "host-" + id[len(id)-6:], OS: "linux", Arch: "amd64", AgentVersion: "1.0.0", ResticVersion: "0.17.3",
		Status: domain.AgentOnline, LastSeenAt: &seen, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60,
		SecretHash: "agent-hash", CreatedAt: now, UpdatedAt: now,
	}
}

// agent registers an agent of tenant with a token of its own.
func (f *fixture) agent(tenant string, mod ...func(*domain.Agent)) domain.Agent {
	f.t.Helper()
	a := newAgent(f.id(), f.now)
	for _, m := range mod {
		m(&a)
	}
	got, err := f.st.RegisterAgent(f.ctx, tenant, f.token(tenant).ID, a)
	require.NoError(f.t, err)
	return got
}

func (f *fixture) repo(tenant, name string) domain.Repository {
	f.t.Helper()
	r, err := f.st.CreateRepository(f.ctx, tenant, domain.Repository{Name: name, Backend: domain.BackendLocal, Location: "/srv/restic/" + name})
	require.NoError(f.t, err)
	return r
}

func newPolicy(id, name, repo string) domain.Policy {
	return domain.Policy{ID: id, Name: name, Enabled: true, Repository: repo, Paths: []string{"/home"},
		Schedule: domain.Schedule{Cron: "@daily"}, Retention: domain.Retention{KeepLast: 7}}
}

func (f *fixture) policy(tenant, name, repo string, mod ...func(*domain.Policy)) domain.Policy {
	f.t.Helper()
	p := newPolicy(f.id(), name, repo)
	for _, m := range mod {
		m(&p)
	}
	got, err := f.st.CreatePolicy(f.ctx, tenant, p)
	require.NoError(f.t, err)
	return got
}

func newTask(id, agentID string, now time.Time) domain.Task {
	return domain.Task{ID: id, AgentID: agentID, Repository: "main-repo", Type: domain.TaskBackup, Status: domain.TaskPending,
		Attempt: 1, MaxRetries: 3, NotBefore: now, Deadline: now.Add(time.Hour), Trigger: "operator"}
}

func (f *fixture) task(tenant, agentID string, mod ...func(*domain.Task)) domain.Task {
	f.t.Helper()
	tk := newTask(f.id(), agentID, f.now)
	for _, m := range mod {
		m(&tk)
	}
	got, err := f.st.CreateTask(f.ctx, tenant, tk)
	require.NoError(f.t, err)
	return got
}

func (f *fixture) run(tenant string, task domain.Task, mod ...func(*domain.Run)) domain.Run {
	f.t.Helper()
	r := domain.Run{ID: f.id(), AgentID: task.AgentID, TaskID: task.ID, PolicyID: task.PolicyID, Type: task.Type,
		Attempt: 1, Status: domain.TaskRunning, StartedAt: f.now}
	for _, m := range mod {
		m(&r)
	}
	got, err := f.st.CreateRun(f.ctx, tenant, r)
	require.NoError(f.t, err)
	return got
}

func (f *fixture) chunk(tenant, runID string, seq int64, lines ...string) bool {
	f.t.Helper()
	stored, err := f.st.AppendLog(f.ctx, tenant, domain.LogChunk{RunID: runID, Seq: seq, Lines: lines, ExpiresAt: f.now.Add(30 * 24 * time.Hour)})
	require.NoError(f.t, err)
	return stored
}

// rawItem reads an item as DynamoDB holds it, or nil.
func (f *fixture) rawItem(pk, sk string) map[string]types.AttributeValue {
	f.t.Helper()
	out, err := f.db.GetItem(f.ctx, &dynamodb.GetItemInput{
		TableName: aws.String(f.st.Table()), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			resources.AttrPK: &types.AttributeValueMemberS{Value: pk},
			resources.AttrSK: &types.AttributeValueMemberS{Value: sk},
		},
	})
	require.NoError(f.t, err)
	return out.Item
}

// due returns every due-index entry at now, across all shards.
func (f *fixture) due(now time.Time) []store.Due {
	f.t.Helper()
	var all []store.Due
	for shard := range resources.DueShards {
		entries, _ := walk(f.t, 100, func(p store.Page) ([]store.Due, string, error) { return f.st.QueryDue(f.ctx, shard, now, p) })
		all = append(all, entries...)
	}
	return all
}

// dueNames names due entries by kind and identity, e.g. "slot <policy>/<agent>/backup".
func dueNames(entries []store.Due) []string {
	names := []string{}
	for _, d := range entries {
		switch {
		case d.Slot != nil:
			names = append(names, fmt.Sprintf("slot %s/%s/%s", d.Slot.PolicyID, d.Slot.AgentID, d.Slot.Kind))
		case d.Task != nil:
			names = append(names, fmt.Sprintf("task %s %s", d.Task.ID, d.Task.Status))
		case d.Agent != nil:
			names = append(names, "agent "+d.Agent.ID)
		case d.Check != nil:
			names = append(names, fmt.Sprintf("check %s/%s/%s", d.Check.PolicyID, d.Check.AgentID, d.Check.Kind))
		}
	}
	return names
}

// walk reads a listing page by page, limit items at a time, and returns everything it read and
// the number of pages.
func walk[T any](t *testing.T, limit int, list func(store.Page) ([]T, string, error)) ([]T, int) {
	t.Helper()
	var all []T
	cursor := ""
	for pages := 1; ; pages++ {
		items, next, err := list(store.Page{Limit: limit, Cursor: cursor})
		require.NoError(t, err, "page %d", pages)
		require.LessOrEqual(t, len(items), limit, "page %d is longer than the limit", pages)
		all = append(all, items...)
		if next == "" {
			return all, pages
		}
		require.Less(t, pages, 1000, "the listing does not end")
		cursor = next
	}
}

// idsOf maps items to their IDs.
func idsOf[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

func agentID(a domain.Agent) string       { return a.ID }
func policyID(p domain.Policy) string     { return p.ID }
func taskID(t domain.Task) string         { return t.ID }
func runID(r domain.Run) string           { return r.ID }
func repoName(r domain.Repository) string { return r.Name }

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// rawDelete deletes an item behind the store's back.
func (f *fixture) rawDelete(pk, sk string) {
	f.t.Helper()
	_, err := f.db.DeleteItem(f.ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(f.st.Table()),
		Key: map[string]types.AttributeValue{
			resources.AttrPK: &types.AttributeValueMemberS{Value: pk},
			resources.AttrSK: &types.AttributeValueMemberS{Value: sk},
		},
	})
	require.NoError(f.t, err)
}
