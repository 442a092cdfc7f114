// Command schedbench measures scheduler ticks against the AWS endpoint (AWS_ENDPOINT_URL, the
// emulator by default): how many AWS requests a tick makes per task it dispatches, and how long
// it takes, on fleets of growing size. It seeds each fleet into a table of its own (and one
// queue per agent), runs the ticks, prints what they did, and removes what it created.
//
// Each fleet has one tenant per 100 agents, 20 policies per tenant and two policies per agent.
// Every policy backs up (half daily at midnight in Europe/Berlin with a 4h spread, half every
// 6h); one in four also forgets (weekly, with prune) and checks (monthly). Agents report every
// minute and may run three tasks at once; one in five is already running a backup. An agent's
// schedules tend to fall due together (the spread offset is per agent), so a tick's due work is
// all the slots of a share of the agents, drawn from all tenants.
//
//	go run ./internal/scheduler/cmd/schedbench -fleets 1000,10000 -due 0.1
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/awscount"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func main() {
	fleets := flag.String("fleets", "1000,10000", "fleet sizes (agents), comma-separated")
	due := flag.Float64("due", 0.10, "share of the agents whose slots are all due in the main tick")
	concurrency := flag.Int("seed-concurrency", 16, "requests in flight while seeding and cleaning up")
	flag.Parse()

	var sizes []int
	for _, f := range strings.Split(*fleets, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 {
			fmt.Fprintf(os.Stderr, "schedbench: fleet size %q: want a number of agents, at least 100\n", f)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	if *due <= 0 || *due > 0.5 {
		fmt.Fprintln(os.Stderr, "schedbench: -due must be above 0 and at most 0.5")
		os.Exit(2)
	}
	ctx := context.Background()
	cfg, err := localaws.Load(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schedbench:", err)
		os.Exit(1)
	}
	fmt.Printf("endpoint %s, %d CPUs\n\n", localaws.Endpoint(), runtime.NumCPU())
	var results []result
	smallest := slices.Min(sizes)
	for _, n := range sizes {
		b := &bench{cfg: cfg, agents: n, concurrency: *concurrency}
		// The largest fleets also run a tick with as much due work as the smallest fleet's
		// main tick, to show what the fleet's size alone costs.
		var shares []float64
		if n > smallest {
			shares = append(shares, *due*float64(smallest)/float64(n))
		}
		shares = append(shares, *due)
		res, err := b.run(ctx, shares)
		if err != nil {
			fmt.Fprintln(os.Stderr, "schedbench:", err)
			os.Exit(1)
		}
		results = append(results, res...)
	}
	printResults(os.Stdout, results)
}

// discard is an Emitter that counts and drops events.
type discard struct{ n int }

func (d *discard) Emit(_ context.Context, evs []events.Event) error {
	d.n += len(evs)
	return nil
}

type bench struct {
	cfg         aws.Config
	agents      int
	concurrency int

	table  string
	st     *store.Store
	sqs    *sqs.Client
	fleet  store.Bulk
	queues []string
}

// result is what one tick did.
type result struct {
	agents, policies, assignments, slots int
	seed, queues                         time.Duration
	share                                float64
	dueSlots                             int
	sum                                  scheduler.Summary
	requests                             map[string]int
	busy                                 map[string]time.Duration
	wall                                 time.Duration
}

func (b *bench) run(ctx context.Context, shares []float64) ([]result, error) {
	db := dynamodb.NewFromConfig(b.cfg)
	b.sqs = sqs.NewFromConfig(b.cfg)
	b.table = "rm-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := resources.EnsureTable(ctx, db, b.table); err != nil {
		return nil, err
	}
	defer func() {
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(b.table)})
	}()
	b.st = store.New(db, b.table)

	// Tick times: one minute apart, from a Monday afternoon (no daily run is near).
	t0 := time.Date(2037, 5, 4, 14, 0, 0, 0, time.UTC)
	ticks := make([]time.Time, len(shares))
	for i := range shares {
		ticks[i] = t0.Add(time.Duration(i) * time.Minute)
	}
	// Each tick's due agents are drawn at random (from every tenant), and no agent is due in
	// two ticks, so one tick's work does not saturate the agents of the next.
	dueAt := make([]time.Time, b.agents) // zero: not due in any tick
	order := rand.New(rand.NewPCG(2, uint64(b.agents))).Perm(b.agents)
	for i, share := range shares {
		n := max(int(float64(b.agents)*share+0.5), 1)
		if len(order) < n {
			return nil, fmt.Errorf("the due shares add up to more than the fleet")
		}
		for _, a := range order[:n] {
			dueAt[a] = ticks[i].Add(-30 * time.Second)
		}
		order = order[n:]
	}

	b.fleet = buildFleet(b.agents, t0, ticks[len(ticks)-1], dueAt)
	began := time.Now()
	names := resources.Names{Stage: "b" + strconv.FormatInt(time.Now().UnixNano()%1e6, 36)}
	defer b.deleteQueues()
	if err := b.createQueues(ctx, names); err != nil {
		return nil, err
	}
	queues := time.Since(began)

	began = time.Now()
	if err := b.st.Import(ctx, b.fleet, b.concurrency); err != nil {
		return nil, err
	}
	seed := time.Since(began)
	fmt.Fprintf(os.Stderr, "schedbench: %d agents: seeded %d items in %s, created %d queues in %s\n",
		b.agents, b.items(), seed.Round(time.Millisecond), len(b.queues), queues.Round(time.Millisecond))

	// The scheduler's own clients count their requests.
	var count awscount.Counter
	tickDB := dynamodb.NewFromConfig(b.cfg, func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, count.AddTo) })
	tickSQS := sqs.NewFromConfig(b.cfg, func(o *sqs.Options) { o.APIOptions = append(o.APIOptions, count.AddTo) })
	tickStore := store.New(tickDB, b.table)
	qm := queue.New(tickSQS, names)
	var out []result
	for i, now := range ticks {
		tickStore.Now = func() time.Time { return now }
		s := &scheduler.Scheduler{
			Store:   tickStore,
			Sender:  &dispatch.Dispatcher{Store: tickStore, Sender: qm, Now: tickStore.Now, Log: slog.New(slog.DiscardHandler)},
			Emitter: &discard{},
			Log:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		}
		count.Reset()
		began := time.Now()
		sum, err := s.Tick(ctx, now)
		wall := time.Since(began)
		if err != nil {
			return nil, fmt.Errorf("tick at %s: %w", now, err)
		}
		// Every due entry is a slot here (the tasks a tick dispatches are due only at their
		// deadline): slots of this tick's agents, and those of earlier ticks' agents that
		// still wait for room.
		dueSlots := sum.Due
		waiting := 0
		for _, n := range sum.Waiting {
			waiting += n
		}
		if sum.Errors > 0 || sum.Claimed+waiting != dueSlots || sum.Dispatched != sum.Claimed {
			return nil, fmt.Errorf("tick at %s did not handle its due work: %d due slots, summary %+v", now, dueSlots, sum)
		}
		requests, busy := count.Snapshot()
		out = append(out, result{
			agents: b.agents, policies: len(b.fleet.Policies), assignments: len(b.fleet.Assignments), slots: len(b.fleet.Slots),
			seed: seed, queues: queues, share: shares[i], dueSlots: dueSlots, sum: sum, requests: requests, busy: busy, wall: wall,
		})
		fmt.Fprintf(os.Stderr, "schedbench: %d agents, %.1f%% due: %d dispatched in %s\n", b.agents, shares[i]*100, sum.Dispatched, wall.Round(time.Millisecond))
	}
	return out, nil
}

// items counts what Import writes: each agent with its credential and capacity item, each
// policy with its name guard, assignments, slots and tasks.
func (b *bench) items() int {
	f := b.fleet
	return 3*len(f.Agents) + 2*len(f.Policies) + len(f.Assignments) + len(f.Slots) + len(f.Tasks)
}

// createQueues creates one task queue per agent (without its dead-letter queue, which a tick
// never touches) and gives each agent its URL.
func (b *bench) createQueues(ctx context.Context, names resources.Names) error {
	urls := make([]string, len(b.fleet.Agents))
	errs := make([]error, len(b.fleet.Agents))
	parallel(len(b.fleet.Agents), b.concurrency, func(i int) {
		a := b.fleet.Agents[i]
		out, err := b.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(names.AgentQueueName(a.TenantID, a.ID))})
		if err != nil {
			errs[i] = err
			return
		}
		urls[i] = aws.ToString(out.QueueUrl)
	})
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("create queue of agent %s: %w", b.fleet.Agents[i].ID, err)
		}
		if urls[i] != "" {
			b.queues = append(b.queues, urls[i])
		}
	}
	for i := range b.fleet.Agents {
		b.fleet.Agents[i].QueueURL = urls[i]
	}
	return nil
}

func (b *bench) deleteQueues() {
	parallel(len(b.queues), b.concurrency, func(i int) {
		_, _ = b.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(b.queues[i])})
	})
}

// buildFleet makes the fleet. Slots of the agents with a dueAt fall due then; the others next
// fall due after the last tick.
func buildFleet(agents int, t0, last time.Time, dueAt []time.Time) store.Bulk {
	rnd := rand.New(rand.NewPCG(1, uint64(agents)))
	const agentsPerTenant, policiesPerTenant = 100, 20
	tenants := max(agents/agentsPerTenant, 1)
	seen := t0.Add(-30 * time.Second)
	var f store.Bulk
	id := func(at time.Time) string { return domain.NewID(at) }
	policies := make([][]domain.Policy, tenants)
	for t := range tenants {
		tenant := fmt.Sprintf("tenant-%03d", t)
		for p := range policiesPerTenant {
			pol := domain.Policy{
				ID: id(t0), TenantID: tenant, Name: fmt.Sprintf("policy-%02d", p), Enabled: true, Repository: "main",
				Paths: []string{"/srv/data", "/etc"}, Excludes: []string{"*.tmp"}, Tags: []string{"fleet"},
				Retention: domain.Retention{KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12},
				CreatedAt: t0.Add(-24 * time.Hour), UpdatedAt: t0.Add(-24 * time.Hour), Version: 1,
			}
			if p%2 == 0 {
				pol.Schedule = domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin", Spread: "4h"}
			} else {
				pol.Schedule = domain.Schedule{Interval: "6h"}
			}
			if p%4 == 0 {
				pol.ForgetSchedule, pol.Prune = &domain.Schedule{Cron: "0 4 * * 0"}, true
				pol.CheckSchedule, pol.CheckReadDataSubset = &domain.Schedule{Cron: "0 5 1 * *"}, "5%"
			}
			policies[t] = append(policies[t], pol)
			f.Policies = append(f.Policies, pol)
		}
	}
	for i := range agents {
		t := min(i/agentsPerTenant, tenants-1)
		tenant := policies[t][0].TenantID
		a := domain.Agent{
			ID: id(t0), TenantID: tenant, Hostname: fmt.Sprintf("host-%05d", i), OS: "linux", Arch: "amd64",
			AgentVersion: "1.0.0", ResticVersion: "0.18.1", Status: domain.AgentOnline, LastSeenAt: &seen,
			Limits: domain.Limits{MaxConcurrentTasks: 3}, HeartbeatIntervalSeconds: 60, SecretHash: "unused",
			CreatedAt: t0.Add(-48 * time.Hour), UpdatedAt: seen, Version: 1,
		}
		f.Agents = append(f.Agents, a)
		for _, k := range []int{i % policiesPerTenant, (i + 7) % policiesPerTenant} {
			pol := policies[t][k]
			f.Assignments = append(f.Assignments, domain.Assignment{TenantID: tenant, PolicyID: pol.ID, AgentID: a.ID, CreatedAt: a.CreatedAt})
			for _, r := range schedule.Slots(pol) {
				kind := map[domain.TaskType]domain.SlotKind{domain.TaskBackup: domain.SlotBackup, domain.TaskForget: domain.SlotForget, domain.TaskCheck: domain.SlotCheck, domain.TaskStats: domain.SlotStats}[r.Type]
				next := dueAt[i]
				if next.IsZero() || kind == domain.SlotStats {
					// The daily stats slot keeps its own time, so the figures measure the
					// backups a tick finds due, as before stats slots existed.
					n, err := schedule.Next(r.Schedule, last, a.ID)
					if err != nil {
						panic(err)
					}
					next = n
				}
				f.Slots = append(f.Slots, domain.Slot{TenantID: tenant, PolicyID: pol.ID, AgentID: a.ID, Kind: kind, NextRunAt: &next})
			}
		}
		if rnd.IntN(5) == 0 {
			started := t0.Add(-10 * time.Minute)
			f.Tasks = append(f.Tasks, domain.Task{
				ID: id(started), TenantID: tenant, AgentID: a.ID, PolicyID: policies[t][i%policiesPerTenant].ID, Repository: "main",
				Type: domain.TaskBackup, Status: domain.TaskRunning, Attempt: 1, MaxRetries: 3, NotBefore: started,
				Deadline: started.Add(time.Hour), Trigger: "schedule", CreatedAt: started, UpdatedAt: started, StartedAt: &started,
			})
		}
	}
	return f
}

func printResults(w io.Writer, results []result) {
	fmt.Fprintln(w, "| agents | policies | assignments | slots | due | due slots | dispatched | waiting | requests (DynamoDB + SQS) | requests per dispatched task | tick wall time |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range results {
		ddb, sq := 0, 0
		for op, n := range r.requests {
			if strings.HasPrefix(op, "DynamoDB ") {
				ddb += n
			} else {
				sq += n
			}
		}
		waiting := 0
		for _, n := range r.sum.Waiting {
			waiting += n
		}
		fmt.Fprintf(w, "| %d | %d | %d | %d | %.1f%% | %d | %d | %d | %d (%d + %d) | %.2f | %s |\n",
			r.agents, r.policies, r.assignments, r.slots, r.share*100, r.dueSlots, r.sum.Dispatched, waiting,
			ddb+sq, ddb, sq, float64(ddb+sq)/float64(max(r.sum.Dispatched, 1)), r.wall.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Requests by operation, with their mean latency:")
	fmt.Fprintln(w)
	var ops []string
	seen := map[string]bool{}
	for _, r := range results {
		for op := range r.requests {
			if !seen[op] {
				seen[op] = true
				ops = append(ops, op)
			}
		}
	}
	sort.Strings(ops)
	header := "| operation |"
	sep := "| --- |"
	for _, r := range results {
		header += fmt.Sprintf(" %d agents, %.1f%% due |", r.agents, r.share*100)
		sep += " ---: |"
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, sep)
	for _, op := range ops {
		line := "| " + op + " |"
		for _, r := range results {
			if n := r.requests[op]; n > 0 {
				line += fmt.Sprintf(" %d (%s) |", n, (r.busy[op] / time.Duration(n)).Round(10*time.Microsecond))
			} else {
				line += " 0 |"
			}
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
	done := map[int]bool{}
	for _, r := range results {
		if !done[r.agents] {
			done[r.agents] = true
			fmt.Fprintf(w, "%d agents: seeding the table took %s (BatchWriteItem), creating %d queues %s.\n",
				r.agents, r.seed.Round(time.Millisecond), r.agents, r.queues.Round(time.Millisecond))
		}
	}
}

func parallel(n, limit int, fn func(i int)) {
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}
