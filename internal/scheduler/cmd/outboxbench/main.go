// Command outboxbench measures how fast the scheduler's tick moves the outbox to the bus
// against the AWS endpoint (AWS_ENDPOINT_URL, the emulator by default): it records -events
// domain events in the outbox of a table of its own, runs ticks until none is pending, and
// prints the events per second the ticks published and the requests they made (PutEvents
// among them). It removes the table and the bus afterwards.
//
//	go run ./internal/scheduler/cmd/outboxbench -events 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/app"
	"github.com/restic-monitor/restic-monitor/internal/awscount"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func main() {
	n := flag.Int("events", 10000, "events to record before the ticks")
	tenants := flag.Int("tenants", 10, "tenants the events belong to")
	maxTicks := flag.Int("max-ticks", 20, "give up after this many ticks")
	flag.Parse()
	if *n < 1 || *tenants < 1 {
		fmt.Fprintln(os.Stderr, "outboxbench: -events and -tenants must be positive")
		os.Exit(2)
	}
	if err := run(*n, *tenants, *maxTicks); err != nil {
		fmt.Fprintln(os.Stderr, "outboxbench:", err)
		os.Exit(1)
	}
}

func run(n, tenants, maxTicks int) error {
	ctx := context.Background()
	cfg, err := localaws.Load(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("endpoint %s, %d CPUs\n", localaws.Endpoint(), runtime.NumCPU())
	stage := "ob" + fmt.Sprint(time.Now().UnixNano()%1e6)
	c := app.Config{Table: "outboxbench-" + stage, Stage: stage}
	c.EventBus = c.Names().EventBusName()
	db := dynamodb.NewFromConfig(cfg)
	eb := eventbridge.NewFromConfig(cfg)
	if err := resources.EnsureTable(ctx, db, c.Table); err != nil {
		return err
	}
	defer db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(c.Table)})
	if err := resources.EnsureEventBus(ctx, eb, c.EventBus); err != nil {
		return err
	}
	defer eb.DeleteEventBus(context.Background(), &eventbridge.DeleteEventBusInput{Name: aws.String(c.EventBus)})

	began := time.Now()
	if err := seed(ctx, store.New(db, c.Table), n, tenants); err != nil {
		return err
	}
	fmt.Printf("recorded %d events of %d tenants in the outbox in %s\n", n, tenants, time.Since(began).Round(time.Millisecond))

	// The ticks' clients count every request they make.
	var count awscount.Counter
	counted := cfg.Copy()
	counted.APIOptions = append(counted.APIOptions, count.AddTo)
	core := app.NewCore(c, counted, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	// The tick drains the dead-letter queue too; without one it would count an error.
	dlq, err := core.Queues.EnsureDeadLetterQueue(ctx)
	if err != nil {
		return err
	}
	defer sqs.NewFromConfig(cfg).DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(dlq.URL)})
	count.Reset()
	s := core.Scheduler(scheduler.Config{})
	published, ticks := 0, 0
	var busy time.Duration
	for published < n {
		if ticks == maxTicks {
			return fmt.Errorf("%d ticks published %d of %d events", ticks, published, n)
		}
		start := time.Now()
		sum, err := s.Tick(ctx, time.Now())
		if err != nil {
			return fmt.Errorf("tick %d: %w", ticks+1, err)
		}
		d := time.Since(start)
		busy += d
		ticks++
		published += sum.Published
		fmt.Printf("tick %d: published %d, left %d, errors %d, %s\n", ticks, sum.Published, sum.Unpublished, sum.Errors, d.Round(time.Millisecond))
	}
	calls, _ := count.Snapshot()
	puts := calls["EventBridge PutEvents"]
	fmt.Printf("\n%d events published in %d ticks, %s: %.0f events/s\n", published, ticks, busy.Round(time.Millisecond), float64(published)/busy.Seconds())
	fmt.Printf("PutEvents requests %d (%.1f events each); all requests %d (%.2f per event)\n",
		puts, float64(published)/float64(max(puts, 1)), count.Total(), float64(count.Total())/float64(published))
	for _, op := range count.Operations() {
		fmt.Printf("  %-32s %d\n", op, calls[op])
	}
	return nil
}

// seed records n agent.offline events, spread over tenants, in transactions of a hundred.
func seed(ctx context.Context, st *store.Store, n, tenants int) error {
	now := time.Now().UTC().Add(-time.Minute)
	evs := make([]events.Event, n)
	for i := range evs {
		at := now.Add(time.Duration(i) * time.Millisecond)
		seen := at.Add(-5 * time.Minute)
		evs[i] = events.NewAgentOffline(at, domain.Agent{
			TenantID: fmt.Sprintf("bench%02d", i%tenants), ID: domain.NewID(at),
			Hostname: fmt.Sprintf("host-%05d", i), HeartbeatIntervalSeconds: 60, LastSeenAt: &seen,
		})
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for start := 0; start < n; start += 100 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := st.RecordEvents(ctx, evs[start:min(start+100, n)]); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}
