package fleet_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// counting counts the requests that go through it, by service.
type counting struct{ dynamo, sqs atomic.Int64 }

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB") {
		c.dynamo.Add(1)
	} else {
		c.sqs.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// BenchmarkDeleteTenant deletes a tenant of 100 agents (each with a queue and 10 snapshots),
// 1,000 tasks and runs and 5,000 log chunks, in passes of the API's ten seconds, and reports
// the items removed per second and the requests per item:
//
//	go test ./internal/fleet/ -run '^$' -bench DeleteTenant -benchtime 1x
func BenchmarkDeleteTenant(b *testing.B) {
	cfg := testenv.AWS(b)
	ctx := context.Background()
	requests := &counting{}
	client := &http.Client{Transport: requests}
	table := testenv.Table(b, cfg)
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.HTTPClient = client })
	var mu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st := store.New(db, table)
	st.Now = clock
	qm := queue.New(sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.HTTPClient = client }), resources.Names{Stage: "b" + testenv.UniqueName("")[:8]})
	_, err := qm.EnsureDeadLetterQueue(ctx)
	require.NoError(b, err)
	b.Cleanup(func() { _ = qm.DeleteDeadLetterQueue(context.Background()) })
	svc := &fleet.Service{Store: st, Queues: qm, Now: clock}

	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tenant := fmt.Sprintf("bench-%d", i)
		items := seedTenant(b, st, qm, tenant, clock())
		dynamo, sqsBefore := requests.dynamo.Load(), requests.sqs.Load()
		start := time.Now()
		b.StartTimer()

		del, err := svc.DeleteTenant(ctx, tenant, time.Now().Add(10*time.Second))
		require.NoError(b, err)
		passes := 1
		for del.Status != store.TenantDeleted {
			if del.EarliestFinish != nil {
				mu.Lock()
				now = del.EarliestFinish.Add(time.Second)
				mu.Unlock()
			}
			del, err = svc.ContinueTenantDeletion(ctx, tenant, time.Now().Add(10*time.Second))
			require.NoError(b, err)
			passes++
		}

		b.StopTimer()
		elapsed := time.Since(start)
		var removed int64
		for kind, n := range del.Removed {
			if kind != "queues" {
				removed += n
			}
		}
		require.Equal(b, int64(items), removed, "removed %v", del.Removed)
		b.ReportMetric(float64(removed)/elapsed.Seconds(), "items/s")
		b.ReportMetric(float64(requests.dynamo.Load()-dynamo)/float64(removed), "dynamodb-requests/item")
		b.ReportMetric(float64(requests.sqs.Load()-sqsBefore), "sqs-requests")
		b.ReportMetric(float64(passes), "passes")
	}
}

// seedTenant builds the benchmark's tenant through the store and returns how many items the
// deletion will remove besides the queues.
func seedTenant(b *testing.B, st *store.Store, qm *queue.Manager, tenant string, now time.Time) int {
	b.Helper()
	ctx := context.Background()
	svc := &fleet.Service{Store: st, Now: func() time.Time { return now }}
	_, err := svc.CreateTenant(ctx, tenant, tenant)
	require.NoError(b, err)
	_, _, err = svc.CreateAPIKey(ctx, tenant, "admin", domain.RoleAdmin)
	require.NoError(b, err)
	const agents, runsPerAgent, chunksPerRun, snapshotsPerAgent = 100, 10, 5, 10
	var bulk store.Bulk
	for i := range agents {
		a := domain.Agent{ID: domain.NewID(now.Add(time.Duration(i) * time.Millisecond)), TenantID: tenant, Hostname: "host", OS: "linux",
			Arch: "amd64", Status: domain.AgentOffline, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60, SecretHash: "h",
			CreatedAt: now, UpdatedAt: now, Version: 1}
		bulk.Agents = append(bulk.Agents, a)
		for j := range runsPerAgent {
			bulk.Tasks = append(bulk.Tasks, domain.Task{ID: domain.NewID(now.Add(time.Duration(i*runsPerAgent+j) * time.Millisecond)),
				TenantID: tenant, AgentID: a.ID, Repository: "main", Type: domain.TaskBackup, Status: domain.TaskSucceeded, Attempt: 1,
				NotBefore: now, Deadline: now.Add(time.Hour), Trigger: "schedule", CreatedAt: now, UpdatedAt: now})
		}
	}
	require.NoError(b, st.Import(ctx, bulk, 8))
	work := make(chan domain.Task)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for task := range work {
				r, err := st.CreateRun(ctx, tenant, domain.Run{ID: task.ID, AgentID: task.AgentID, TaskID: task.ID, Type: domain.TaskBackup,
					Attempt: 1, Status: domain.TaskSucceeded, StartedAt: now})
				require.NoError(b, err)
				for seq := range chunksPerRun {
					_, err := st.AppendLog(ctx, tenant, domain.LogChunk{RunID: r.ID, Seq: int64(seq), Lines: []string{"processed 1000 files"}, ExpiresAt: now.Add(24 * time.Hour)})
					require.NoError(b, err)
				}
			}
		})
	}
	for _, task := range bulk.Tasks {
		work <- task
	}
	close(work)
	wg.Wait()
	for _, a := range bulk.Agents {
		_, err := qm.Ensure(ctx, tenant, a.ID)
		require.NoError(b, err)
		snaps := make([]domain.Snapshot, snapshotsPerAgent)
		for j := range snaps {
			snaps[j] = domain.Snapshot{ID: fmt.Sprintf("%064x", j), Repository: "main", Time: now.Add(-time.Duration(j) * time.Hour), Hostname: "host", Paths: []string{"/data"}}
		}
		require.NoError(b, st.PutSnapshots(ctx, tenant, a.ID, snaps))
	}
	// agents, their credentials, tasks, runs, log chunks, snapshots, the API key
	return agents*2 + agents*runsPerAgent*2 + agents*runsPerAgent*chunksPerRun + agents*snapshotsPerAgent + 1
}
