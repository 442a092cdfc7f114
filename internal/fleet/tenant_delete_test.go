package fleet_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// deletion is a table and a deployment's queues holding two tenants, and the fleet service
// that deletes them, on a clock the test moves.
type deletion struct {
	t     *testing.T
	ctx   context.Context
	db    *dynamodb.Client
	table string
	st    *store.Store
	qm    *queue.Manager
	svc   *fleet.Service

	mu  sync.Mutex
	now time.Time
}

func newDeletion(t *testing.T) *deletion {
	t.Helper()
	cfg := testenv.AWS(t)
	d := &deletion{t: t, ctx: context.Background(), db: dynamodb.NewFromConfig(cfg), table: testenv.Table(t, cfg),
		now: time.Now().UTC().Truncate(time.Second)}
	d.st = store.New(d.db, d.table)
	d.st.Now = d.clock
	d.qm = queue.New(sqs.NewFromConfig(cfg), resources.Names{Stage: "d" + testenv.UniqueName("")[:8]})
	_, err := d.qm.EnsureDeadLetterQueue(d.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.qm.DeleteDeadLetterQueue(context.Background()) })
	d.svc = &fleet.Service{Store: d.st, Queues: d.qm, Now: d.clock}
	return d
}

func (d *deletion) clock() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.now
}

func (d *deletion) advance(by time.Duration) {
	d.mu.Lock()
	d.now = d.now.Add(by)
	d.mu.Unlock()
}

// tenant creates a tenant with an admin key, two agents with queues, a policy assigned to both,
// and runs with logs; it returns the agents' IDs.
func (d *deletion) tenant(id string, runs int) []string {
	d.t.Helper()
	t, ctx, now := d.t, d.ctx, d.clock()
	svc := &fleet.Service{Store: d.st, Now: d.clock}
	_, err := svc.CreateTenant(ctx, id, id)
	require.NoError(t, err)
	_, _, err = svc.CreateAPIKey(ctx, id, "admin", domain.RoleAdmin)
	require.NoError(t, err)
	_, _, err = svc.CreateEnrollmentToken(ctx, id, fleet.EnrollmentRequest{MaxUses: 10})
	require.NoError(t, err)
	tokens, _, err := d.st.ListEnrollmentTokens(ctx, id, store.Page{})
	require.NoError(t, err)
	_, err = d.st.CreateRepository(ctx, id, domain.Repository{Name: "main", Backend: domain.BackendLocal, Location: "/srv/restic"})
	require.NoError(t, err)
	p, err := d.st.CreatePolicy(ctx, id, domain.Policy{ID: domain.NewID(now), Name: "nightly", Enabled: true, Repository: "main",
		Paths: []string{"/data"}, Schedule: domain.Schedule{Cron: "@daily"}, Retention: domain.Retention{KeepLast: 7}})
	require.NoError(t, err)
	var agents []string
	for range 2 {
		a := domain.Agent{ID: domain.NewID(now), Hostname: "host", OS: "linux", Arch: "amd64", AgentVersion: "1.0.0", ResticVersion: "0.18.1",
			Status: domain.AgentOnline, LastSeenAt: &now, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60, SecretHash: "h",
			CreatedAt: now, UpdatedAt: now}
		_, err := d.qm.Ensure(ctx, id, a.ID)
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.qm.Delete(context.Background(), id, a.ID) })
		_, err = d.st.RegisterAgent(ctx, id, tokens[0].ID, a)
		require.NoError(t, err)
		require.NoError(t, d.st.Assign(ctx, id, p.ID, a.ID, []domain.Slot{{Kind: domain.SlotBackup, NextRunAt: &now}}))
		agents = append(agents, a.ID)
	}
	for i := range runs {
		task, err := d.st.CreateTask(ctx, id, domain.Task{ID: domain.NewID(now), AgentID: agents[i%2], PolicyID: p.ID, Repository: "main",
			Type: domain.TaskBackup, Status: domain.TaskPending, Attempt: 1, MaxRetries: 3, NotBefore: now, Deadline: now.Add(time.Hour), Trigger: "schedule"})
		require.NoError(t, err)
		r, err := d.st.CreateRun(ctx, id, domain.Run{ID: domain.NewID(now), AgentID: task.AgentID, TaskID: task.ID, PolicyID: p.ID,
			Type: domain.TaskBackup, Attempt: 1, Status: domain.TaskRunning, StartedAt: now})
		require.NoError(t, err)
		for seq := range 3 {
			_, err := d.st.AppendLog(ctx, id, domain.LogChunk{RunID: r.ID, Seq: int64(seq), Lines: []string{"line"}, ExpiresAt: now.Add(24 * time.Hour)})
			require.NoError(t, err)
		}
	}
	return agents
}

// mentioning lists the keys of the items with a string attribute that contains s.
func (d *deletion) mentioning(s string) []string {
	d.t.Helper()
	return testenv.KeysMentioning(d.ctx, d.t, d.db, d.table, s)
}

// failing is an HTTP transport that lets the first limit requests of one DynamoDB operation
// through and then fails it, calling onFail first.
type failing struct {
	op     string
	limit  int64
	seen   atomic.Int64
	onFail func()
}

func (f *failing) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+f.op) && f.seen.Add(1) > f.limit {
		if f.onFail != nil {
			f.onFail()
		}
		return nil, errors.New("connection reset by peer")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// brokenService is the fleet service on a DynamoDB client whose requests go through f.
func (d *deletion) brokenService(f *failing) *fleet.Service {
	cfg := testenv.AWS(d.t)
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: f}
		o.RetryMaxAttempts = 1
	})
	st := store.New(db, d.table)
	st.Now = d.clock
	return &fleet.Service{Store: st, Queues: d.qm, Now: d.clock}
}

func (d *deletion) finish(tenant string) store.TenantDeletion {
	d.t.Helper()
	d.advance(fleet.TenantDeletionSettle + time.Second)
	del, err := d.svc.DeleteTenant(d.ctx, tenant, time.Now().Add(time.Minute))
	require.NoError(d.t, err)
	require.Equal(d.t, store.TenantDeleted, del.Status, "removed %v", del.Removed)
	return del
}

func TestAnInterruptedTenantDeletionFinishesWhenRunAgain(t *testing.T) {
	for _, c := range []struct {
		name string
		// interrupt returns a transport that breaks a pass halfway, and the context to run it in.
		interrupt func() (*failing, context.Context)
		// exact is whether every removal is counted: a request cancelled in flight may have
		// removed items without its answer saying so.
		exact bool
	}{
		{"a request fails", func() (*failing, context.Context) {
			return &failing{op: "BatchWriteItem", limit: 3}, context.Background()
		}, true},
		{"the context ends", func() (*failing, context.Context) {
			ctx, cancel := context.WithCancel(context.Background())
			return &failing{op: "BatchWriteItem", limit: 3, onFail: cancel}, ctx
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDeletion(t)
			d.tenant("acme", 6)
			d.tenant("globex", 2)
			globex := d.mentioning("globex")
			before := len(d.mentioning("acme"))

			f, ctx := c.interrupt()
			_, err := d.brokenService(f).DeleteTenant(ctx, "acme", time.Now().Add(time.Minute))
			require.Error(t, err, "the pass was interrupted")
			left := len(d.mentioning("acme"))
			assert.Less(t, left, before, "the pass removed some of the tenant")
			assert.Greater(t, left, 1, "and left some")
			state, err := d.st.GetTenantDeletion(d.ctx, "acme")
			require.NoError(t, err)
			assert.Equal(t, store.TenantDeleting, state.Status)
			assert.NotEmpty(t, state.Removed, "its progress is recorded")

			// The interrupted pass released its lease: the next one goes on at once.
			again, err := d.svc.DeleteTenant(d.ctx, "acme", time.Now().Add(time.Minute))
			require.NoError(t, err)
			assert.Equal(t, store.TenantDeleting, again.Status, "waiting for in-flight requests")
			assert.ElementsMatch(t, []string{"TENANT#acme | META", "TENANT#acme | AGENT#", "TENANT#acme | POLICY#", "APIKEY#"},
				keyPrefixes(d.mentioning("acme")), "all but the tenant, its key, agents and policies")
			done := d.finish("acme")
			assert.Equal(t, int64(2), done.Removed["queues"])
			if c.exact {
				assert.Equal(t, int64(6), done.Removed["runs"])
				assert.Equal(t, int64(18), done.Removed["logChunks"])
			} else {
				assert.LessOrEqual(t, done.Removed["logChunks"], int64(18))
			}
			assert.Empty(t, d.mentioning("acme"))
			assert.ElementsMatch(t, globex, d.mentioning("globex"), "the other tenant's items")

			queues, err := d.qm.ListTenantQueues(d.ctx, "acme")
			require.NoError(t, err)
			assert.Empty(t, queues)
			queues, err = d.qm.ListTenantQueues(d.ctx, "globex")
			require.NoError(t, err)
			assert.Len(t, queues, 2)

			_, err = d.svc.DeleteTenant(d.ctx, "acme", time.Now().Add(time.Minute))
			assert.ErrorIs(t, err, domain.ErrNotFound, "a deleted tenant is gone")
			swept, err := d.svc.SweepTenant(d.ctx, "acme")
			require.NoError(t, err)
			assert.Equal(t, int64(0), total(swept), "a finished deletion leaves nothing to sweep: %v", swept)
		})
	}
}

// keyPrefixes names items by their kind: the partition and the first part of the sort key, or
// for a global item its kind alone.
func keyPrefixes(keys []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, k := range keys {
		if i := strings.Index(k, "#"); strings.HasPrefix(k, "APIKEY#") || strings.HasPrefix(k, "ENROLL#") {
			k = k[:i+1]
		} else if pk, sk, ok := strings.Cut(k, " | "); ok {
			if kind, _, ok := strings.Cut(sk, "#"); ok {
				k = pk + " | " + kind + "#"
			}
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func total(r store.Removed) int64 {
	var n int64
	for _, v := range r {
		n += v
	}
	return n
}

// A pass that died holds its lease until it runs out; then the next pass takes over.
func TestAPassThatDiedHoldsTheDeletionUntilItsLeaseRunsOut(t *testing.T) {
	d := newDeletion(t)
	d.tenant("acme", 1)
	_, err := d.st.BeginTenantDeletion(d.ctx, "acme")
	require.NoError(t, err)
	_, ok, err := d.st.LeaseTenantDeletion(d.ctx, "acme", "dead", d.clock().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok)

	del, err := d.svc.DeleteTenant(d.ctx, "acme", time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, store.TenantDeleting, del.Status)
	assert.Empty(t, del.Removed, "nothing removed while another pass holds the deletion")
	_, err = d.st.LookupAgentCredential(d.ctx, d.agentOf("acme"))
	assert.NoError(t, err, "the agents can still authenticate")

	d.advance(time.Minute + time.Second)
	del, err = d.svc.ContinueTenantDeletion(d.ctx, "acme", time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, int64(2), del.Removed["agentCredentials"])
	d.finish("acme")
	assert.Empty(t, d.mentioning("acme"))
}

// agentOf returns the first agent of a tenant.
func (d *deletion) agentOf(tenant string) string {
	d.t.Helper()
	agents, _, err := d.st.ListAgents(d.ctx, tenant, store.AgentFilter{}, store.Page{Limit: 1})
	require.NoError(d.t, err)
	require.NotEmpty(d.t, agents)
	return agents[0].ID
}

// A tenant with more than one call can delete is deleted over several, each stopping when its
// time is up, each recording its progress; none finishes before the settle time.
func TestALargeTenantIsDeletedOverSeveralPassesWithItsProgressVisible(t *testing.T) {
	d := newDeletion(t)
	d.tenant("acme", 4)
	// Enough log for a run that one call out of time cannot delete it.
	runs, _, err := d.st.ListRuns(d.ctx, "acme", store.RunFilter{}, store.Page{Limit: 1})
	require.NoError(t, err)
	for seq := 3; seq < 700; seq++ {
		_, err := d.st.AppendLog(d.ctx, "acme", domain.LogChunk{RunID: runs[0].ID, Seq: int64(seq), Lines: []string{"line"}, ExpiresAt: d.clock().Add(24 * time.Hour)})
		require.NoError(t, err)
	}
	del, err := d.svc.DeleteTenant(d.ctx, "acme", time.Now())
	require.NoError(t, err)
	passes := 1
	var last int64
	for ; del.Status == store.TenantDeleting && passes < 50; passes++ {
		progress, err := d.svc.TenantDeletion(d.ctx, "acme")
		require.NoError(t, err)
		assert.Equal(t, del.Removed, progress.Removed, "the recorded progress is what the pass says")
		require.GreaterOrEqual(t, total(del.Removed), last, "progress never goes back")
		if total(del.Removed) == last {
			// Everything but what waits for requests in flight is gone.
			d.advance(fleet.TenantDeletionSettle + time.Second)
		}
		last = total(del.Removed)
		del, err = d.svc.ContinueTenantDeletion(d.ctx, "acme", time.Now())
		require.NoError(t, err)
	}
	assert.Equal(t, store.TenantDeleted, del.Status)
	assert.Greater(t, passes, 2, "a pass out of time does a part")
	assert.Equal(t, int64(4*3+697), del.Removed["logChunks"])
	assert.Empty(t, d.mentioning("acme"))
}

// Requests in flight when the deletion began may still write: an agent's snapshot report, a
// tick's overdue check, an operator's new enrollment token. The deletion finds all of them, and
// a token that turns up makes it wait again for what its holder may have in flight.
func TestWhatRequestsInFlightAddAfterTheDeletionBeganIsRemovedToo(t *testing.T) {
	d := newDeletion(t)
	agents := d.tenant("acme", 1)
	del, err := d.svc.DeleteTenant(d.ctx, "acme", time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, store.TenantDeleting, del.Status)
	firstFinish := *del.EarliestFinish

	policies, _, err := d.st.ListPolicies(d.ctx, "acme", store.PolicyFilter{}, store.Page{})
	require.NoError(t, err)
	require.Len(t, policies, 1, "the policy waits for the last pass")
	require.NoError(t, d.st.PutSnapshots(d.ctx, "acme", agents[0], []domain.Snapshot{
		{ID: "feedbeef", Repository: "main", Time: d.clock(), Hostname: "host", Paths: []string{"/data"}},
	}))
	require.NoError(t, d.st.WatchSlot(d.ctx, store.OverdueCheck{TenantID: "acme", PolicyID: policies[0].ID, AgentID: agents[1],
		Kind: domain.SlotBackup, PlannedAt: d.clock(), CheckAt: d.clock().Add(time.Hour)}))
	d.advance(time.Minute)
	_, _, err = (&fleet.Service{Store: d.st, Now: d.clock}).CreateEnrollmentToken(d.ctx, "acme", fleet.EnrollmentRequest{})
	require.NoError(t, err)

	d.advance(fleet.TenantDeletionSettle)
	del, err = d.svc.ContinueTenantDeletion(d.ctx, "acme", time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, store.TenantDeleting, del.Status, "the late token means waiting again")
	require.NotNil(t, del.EarliestFinish)
	assert.Equal(t, d.clock().Add(fleet.TenantDeletionSettle), *del.EarliestFinish)
	assert.True(t, del.EarliestFinish.After(firstFinish))
	assert.Equal(t, int64(2), del.Removed["enrollmentTokens"])

	done := d.finish("acme")
	assert.Equal(t, int64(1), done.Removed["snapshots"])
	assert.Equal(t, int64(1), done.Removed["overdueChecks"])
	assert.Empty(t, d.mentioning("acme"))
}
