// Command overviewbench measures a tenant's overview against the AWS endpoint (AWS_ENDPOINT_URL,
// the emulator by default): how many AWS requests one call makes, and how long it takes, for
// tenants of growing size. For contrast it also measures what the overview read before it read
// counters — every agent, every run of the last day, every policy and its slots, in pages of 100
// — and a recount of the tenant (which reads the same, projected). It seeds each tenant into
// a table of its own, checks that the overview says what was seeded, prints the figures and
// removes the table.
//
// Each tenant has 20 policies and two per agent, with a backup slot for each; 2% of the slots
// are overdue; one agent in ten is offline and one in twenty backs off; every agent has two runs
// in the last day (mostly succeeded, some partial, failed, running or cancelled).
//
//	go run ./internal/fleet/cmd/overviewbench -fleets 100,10000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/restic-monitor/restic-monitor/internal/awscount"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

const tenant = "bench"

func main() {
	fleets := flag.String("fleets", "100,10000", "tenant sizes (agents), comma-separated")
	calls := flag.Int("calls", 10, "overview calls measured per tenant")
	concurrency := flag.Int("seed-concurrency", 16, "requests in flight while seeding")
	flag.Parse()
	var sizes []int
	for _, f := range strings.Split(*fleets, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 50 {
			fmt.Fprintf(os.Stderr, "overviewbench: tenant size %q: want a number of agents, at least 50\n", f)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	if *calls < 1 {
		fmt.Fprintln(os.Stderr, "overviewbench: -calls must be at least 1")
		os.Exit(2)
	}
	ctx := context.Background()
	cfg, err := localaws.Load(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "overviewbench:", err)
		os.Exit(1)
	}
	fmt.Printf("endpoint %s, %d CPUs\n\n", localaws.Endpoint(), runtime.NumCPU())
	var results []result
	for _, n := range sizes {
		res, err := measure(ctx, cfg, n, *calls, *concurrency)
		if err != nil {
			fmt.Fprintln(os.Stderr, "overviewbench:", err)
			os.Exit(1)
		}
		results = append(results, res)
	}
	printResults(os.Stdout, results)
}

// result is what one tenant's calls cost.
type result struct {
	agents, policies, slots, runs int
	seed                          time.Duration
	// perCall is the requests of one overview call by operation (the same for every call).
	perCall map[string]int
	// busy sums the time each operation's requests took over all calls.
	busy      map[string]time.Duration
	latencies []time.Duration
	// before is what listing the whole fleet, as the overview did before, cost.
	beforeRequests int
	before         time.Duration
	// recount is what a recount of the tenant cost.
	recountRequests int
	recount         time.Duration
}

func measure(ctx context.Context, cfg aws.Config, agents, calls, concurrency int) (result, error) {
	db := dynamodb.NewFromConfig(cfg)
	table := "rm-obench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := resources.EnsureTable(ctx, db, table); err != nil {
		return result{}, err
	}
	defer func() {
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	}()
	// The present lies ahead of the real clock, so that the table's TTL, which runs on the real
	// clock, leaves the run counters alone.
	now := time.Now().UTC().Add(24 * time.Hour).Truncate(time.Hour).Add(30 * time.Minute)
	st := store.New(db, table)
	st.Now = func() time.Time { return now }
	f, want := buildTenant(agents, now)
	began := time.Now()
	if err := st.CreateTenant(ctx, domain.Tenant{ID: tenant, Name: "Benchmark", CreatedAt: now}); err != nil {
		return result{}, err
	}
	if err := st.Import(ctx, f, concurrency); err != nil {
		return result{}, err
	}
	res := result{agents: agents, policies: len(f.Policies), slots: len(f.Slots), runs: len(f.Runs), seed: time.Since(began)}
	fmt.Fprintf(os.Stderr, "overviewbench: %d agents: seeded in %s\n", agents, res.seed.Round(time.Millisecond))

	var count awscount.Counter
	counted := store.New(dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, count.AddTo) }), table)
	counted.Now = st.Now
	svc := &fleet.Service{Store: counted, Now: st.Now}
	for i := range calls {
		count.Reset()
		began := time.Now()
		o, err := svc.Overview(ctx, tenant)
		res.latencies = append(res.latencies, time.Since(began))
		if err != nil {
			return result{}, err
		}
		if err := want.check(o); err != nil {
			return result{}, fmt.Errorf("%d agents: %w", agents, err)
		}
		n, busy := count.Snapshot()
		if res.busy == nil {
			res.busy = map[string]time.Duration{}
		}
		for op, d := range busy {
			res.busy[op] += d
		}
		if i > 0 && !mapsEqual(n, res.perCall) {
			return result{}, fmt.Errorf("%d agents: call %d made %v requests, call 1 %v", agents, i+1, n, res.perCall)
		}
		res.perCall = n
	}

	count.Reset()
	began = time.Now()
	if err := listEverything(ctx, counted, now); err != nil {
		return result{}, err
	}
	res.before = time.Since(began)
	res.beforeRequests = count.Total()

	count.Reset()
	began = time.Now()
	if _, err := counted.Recount(ctx, tenant); err != nil {
		return result{}, err
	}
	res.recount = time.Since(began)
	res.recountRequests = count.Total()
	fmt.Fprintf(os.Stderr, "overviewbench: %d agents: %d overview calls, recount in %s\n", agents, calls, res.recount.Round(time.Millisecond))
	return res, nil
}

// listEverything reads what the overview read before it had counters: all agents, the runs of
// the last 24 hours, all policies and each one's slots, in pages of 100.
func listEverything(ctx context.Context, st *store.Store, now time.Time) error {
	pages := func(list func(page store.Page) (string, error)) error {
		page := store.Page{Limit: 100}
		for {
			next, err := list(page)
			if err != nil || next == "" {
				return err
			}
			page.Cursor = next
		}
	}
	if err := pages(func(p store.Page) (string, error) {
		_, next, err := st.ListAgents(ctx, tenant, store.AgentFilter{}, p)
		return next, err
	}); err != nil {
		return err
	}
	if err := pages(func(p store.Page) (string, error) {
		_, next, err := st.ListRuns(ctx, tenant, store.RunFilter{Since: now.Add(-24 * time.Hour)}, p)
		return next, err
	}); err != nil {
		return err
	}
	var policies []domain.Policy
	if err := pages(func(p store.Page) (string, error) {
		got, next, err := st.ListPolicies(ctx, tenant, store.PolicyFilter{}, p)
		policies = append(policies, got...)
		return next, err
	}); err != nil {
		return err
	}
	for _, pol := range policies {
		if err := pages(func(p store.Page) (string, error) {
			_, next, err := st.ListPolicySlots(ctx, tenant, pol.ID, p)
			return next, err
		}); err != nil {
			return err
		}
	}
	return nil
}

// expected is what the overview of a seeded tenant must say.
type expected struct {
	agents                                     fleet.AgentCounts
	succeeded, partial, failed, running, other int64
	overdue                                    int64
}

func (w expected) check(o fleet.Overview) error {
	got := expected{agents: o.Agents, succeeded: o.Runs.Succeeded, partial: o.Runs.Partial, failed: o.Runs.Failed,
		running: o.Runs.Running, other: o.Runs.Other, overdue: o.OverdueSlots}
	if got != w {
		return fmt.Errorf("the overview says %+v, the seeded tenant %+v", got, w)
	}
	listed := 0
	for _, p := range o.Overdue {
		listed += len(p.AgentIDs)
	}
	if wantListed := min(int(w.overdue), fleet.MaxOverdueListed); listed != wantListed || o.OverdueTruncated != (w.overdue > int64(fleet.MaxOverdueListed)) {
		return fmt.Errorf("the overview lists %d overdue backups (truncated: %v) of %d", listed, o.OverdueTruncated, w.overdue)
	}
	return nil
}

// buildTenant makes the tenant's fleet and what its overview must say.
func buildTenant(agents int, now time.Time) (store.Bulk, expected) {
	rnd := rand.New(rand.NewPCG(1, uint64(agents)))
	const policies = 20
	var f store.Bulk
	var want expected
	created := now.Add(-30 * 24 * time.Hour)
	for p := range policies {
		f.Policies = append(f.Policies, domain.Policy{
			ID: domain.NewID(created), TenantID: tenant, Name: fmt.Sprintf("policy-%02d", p), Enabled: true, Repository: "main",
			Paths: []string{"/srv/data"}, Schedule: domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin", Spread: "4h"},
			Retention: domain.Retention{KeepDaily: 7}, CreatedAt: created, UpdatedAt: created, Version: 1,
		})
	}
	statuses := []domain.TaskStatus{domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded,
		domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded,
		domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskSucceeded,
		domain.TaskSucceeded, domain.TaskSucceeded, domain.TaskPartial, domain.TaskFailed, domain.TaskRunning, domain.TaskCancelled}
	for i := range agents {
		seen := now.Add(-30 * time.Second)
		a := domain.Agent{
			ID: domain.NewID(created), TenantID: tenant, Hostname: fmt.Sprintf("host-%05d", i), OS: "linux", Arch: "amd64",
			AgentVersion: "1.0.0", ResticVersion: "0.18.1", Status: domain.AgentOnline, LastSeenAt: &seen,
			Limits: domain.Limits{MaxConcurrentTasks: 3}, HeartbeatIntervalSeconds: 60, SecretHash: "unused",
			CreatedAt: created, UpdatedAt: seen, Version: 1,
		}
		switch {
		case i%10 == 9:
			a.Status = domain.AgentOffline
			want.agents.Offline++
		case i%20 == 3:
			until := now.Add(time.Hour)
			a.BackoffUntil = &until
			want.agents.Online++
			want.agents.BackingOff++
		default:
			want.agents.Online++
		}
		want.agents.Total++
		f.Agents = append(f.Agents, a)
		for _, k := range []int{i % policies, (i + 7) % policies} {
			pol := f.Policies[k]
			f.Assignments = append(f.Assignments, domain.Assignment{TenantID: tenant, PolicyID: pol.ID, AgentID: a.ID, CreatedAt: created})
			next := now.Add(time.Duration(rnd.IntN(24*60)) * time.Minute)
			sl := domain.Slot{TenantID: tenant, PolicyID: pol.ID, AgentID: a.ID, Kind: domain.SlotBackup, NextRunAt: &next}
			if rnd.IntN(50) == 0 {
				last := now.Add(-50 * time.Hour)
				sl.Overdue, sl.LastSuccessAt = true, &last
				want.overdue++
			}
			f.Slots = append(f.Slots, sl)
		}
		for range 2 {
			// Within the last 23 hours, so every run is in the window.
			started := now.Add(-time.Duration(rnd.IntN(23*60)) * time.Minute)
			status := statuses[rnd.IntN(len(statuses))]
			switch status {
			case domain.TaskSucceeded:
				want.succeeded++
			case domain.TaskPartial:
				want.partial++
			case domain.TaskFailed:
				want.failed++
			case domain.TaskRunning:
				want.running++
			default:
				want.other++
			}
			f.Runs = append(f.Runs, domain.Run{
				ID: domain.NewID(started), TenantID: tenant, AgentID: a.ID, TaskID: domain.NewID(started), PolicyID: f.Policies[i%policies].ID,
				Type: domain.TaskBackup, Attempt: 1, Status: status, StartedAt: started,
			})
		}
	}
	return f, want
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func printResults(w io.Writer, results []result) {
	fmt.Fprintln(w, "| agents | policies | slots | runs (last day) | requests per overview call | by operation (mean latency) | latency min / median / max | listing everything (before): requests, time | recount: requests, time |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
	for _, r := range results {
		total := 0
		var ops []string
		for op, n := range r.perCall {
			total += n
			mean := r.busy[op] / time.Duration(n*len(r.latencies))
			ops = append(ops, fmt.Sprintf("%s %d (%s)", strings.TrimPrefix(op, "DynamoDB "), n, mean.Round(100*time.Microsecond)))
		}
		slices.Sort(ops)
		lat := slices.Clone(r.latencies)
		slices.Sort(lat)
		round := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
		fmt.Fprintf(w, "| %d | %d | %d | %d | %d | %s | %s / %s / %s | %d, %s | %d, %s |\n",
			r.agents, r.policies, r.slots, r.runs, total, strings.Join(ops, ", "),
			round(lat[0]), round(lat[len(lat)/2]), round(lat[len(lat)-1]),
			r.beforeRequests, r.before.Round(time.Millisecond), r.recountRequests, r.recount.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "%d agents: seeding the table took %s.\n", r.agents, r.seed.Round(time.Millisecond))
	}
}
