// Package devstack brings the whole control plane up on one machine, on whatever AWS endpoint
// AWS_ENDPOINT_URL names (the embedded emulator by default): the table from the shared
// definition, both APIs on a local port through the same handlers and authentication as in the
// cloud, the scheduler ticked every minute with a synthetic EventBridge event (emulators do not
// fire schedules), and a demo tenant whose one agent — the real agent binary running real
// restic — backs up a demo folder. make dev and the end-to-end test both use it.
package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/restic-monitor/restic-monitor/internal/app"
	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
)

// Options configure a stack.
type Options struct {
	// Addr is where both APIs listen, e.g. 127.0.0.1:8080.
	Addr string
	// Table and Stage name the deployment's resources.
	Table, Stage string
	// TickEvery is how often the scheduler ticks; zero disables the ticker (tests tick by hand).
	TickEvery time.Duration
	// HeartbeatInterval is what agents are told.
	HeartbeatInterval time.Duration
	// Progress receives one line per stage as it comes up.
	Progress io.Writer
	// Log receives the control plane's JSON logs.
	Log *slog.Logger
	// Notify configures notifications. With a secret key, the stack serves the notification
	// channels and runs the notifier behind a rule on the bus, as the cloud does; without one,
	// the notification routes answer that they are not configured. An empty PublicURL becomes
	// the stack's URL.
	Notify notify.Config
	// Web, when set, serves every path outside /v1: the dashboard, on the APIs' origin.
	Web http.Handler
}

// Stack is a running control plane.
type Stack struct {
	Core *app.Core
	// URL is the APIs' base URL.
	URL  string
	Tick Ticker
	// NotifyQueueURL is the queue the bus's rule sends events to for the notifier; empty when
	// notifications are off.
	NotifyQueueURL string

	server *http.Server
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// Start creates the table, the dead-letter queue, the event bus and (with notifications on)
// the notifier's rule and queue if needed, serves the APIs, starts the scheduler's ticker and
// the notifier's loop.
func Start(ctx context.Context, awsCfg aws.Config, opts Options) (*Stack, error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	step(progress, "creating the table %s", opts.Table)
	if err := resources.EnsureTable(ctx, dynamodb.NewFromConfig(awsCfg), opts.Table); err != nil {
		return nil, err
	}
	heartbeat := opts.HeartbeatInterval
	if heartbeat == 0 {
		heartbeat = time.Minute
	}
	cfg := app.Config{
		Table: opts.Table, Stage: opts.Stage, LogLevel: slog.LevelInfo,
		AgentRoleARN:      "arn:aws:iam::000000000000:role/restic-monitor-" + opts.Stage + "-agents",
		LogRetention:      7 * 24 * time.Hour,
		HeartbeatInterval: heartbeat,
	}
	cfg.EventBus = cfg.Names().EventBusName()
	core := app.NewCore(cfg, awsCfg, log)
	// In the cloud the stack creates the bus and the queue every agent queue redrives to.
	step(progress, "creating the event bus %s", cfg.EventBus)
	if err := resources.EnsureEventBus(ctx, core.Events, cfg.EventBus); err != nil {
		return nil, err
	}
	step(progress, "creating the dead-letter queue %s", core.Config.Names().DeadLetterQueueName())
	if _, err := core.Queues.EnsureDeadLetterQueue(ctx); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Stack{Core: core, URL: "http://" + ln.Addr().String(), cancel: cancel}
	deps := core.APIDeps()
	var loop *notifierLoop
	if opts.Notify.SecretKey != nil {
		if loop, err = s.notifications(ctx, opts.Notify, progress); err != nil {
			ln.Close()
			cancel()
			return nil, err
		}
		deps.Notify = loop.notifier
	}
	var handler http.Handler = httpapi.Authenticate(core.Auth, log, httpapi.NewHandler(deps))
	if opts.Web != nil {
		mux := http.NewServeMux()
		mux.Handle("/v1/", handler)
		mux.Handle("/v1", handler)
		mux.Handle("/", opts.Web)
		handler = mux
	}
	s.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
	}
	step(progress, "serving the tenant and agent APIs at %s", s.URL)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "error", err)
		}
	}()
	if loop != nil {
		step(progress, "delivering notifications from %s", core.Config.Names().NotifierQueueName())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			loop.run(runCtx)
		}()
	}
	s.Tick = schedulerTicker(core)
	if opts.TickEvery > 0 {
		step(progress, "ticking the scheduler every %s", opts.TickEvery)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.tickEvery(runCtx, opts.TickEvery, log)
		}()
	}
	return s, nil
}

// notifications creates the bus's rule for the notifier and its queue, and builds the
// notifier as its Lambda does.
func (s *Stack) notifications(ctx context.Context, nc notify.Config, progress io.Writer) (*notifierLoop, error) {
	core := s.Core
	if nc.PublicURL == "" {
		nc.PublicURL = s.URL
	}
	n, err := core.Notifier(nc)
	if err != nil {
		return nil, err
	}
	names := core.Config.Names()
	step(progress, "creating the notifier's rule on %s and its queue %s", core.Config.EventBus, names.NotifierQueueName())
	q := sqs.NewFromConfig(core.AWS)
	url, err := resources.EnsureNotifierRule(ctx, core.Events, q, resources.NotifierRule{
		Bus: core.Config.EventBus, Rule: names.NotifierRuleName(), Queue: names.NotifierQueueName(), Source: scheduler.EventSource,
	})
	if err != nil {
		return nil, err
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return nil, fmt.Errorf("read queue %s: %w", names.NotifierQueueName(), err)
	}
	s.NotifyQueueURL = url
	return &notifierLoop{sqs: q, queueURL: url, queueARN: attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
		region: core.AWS.Region, notifier: n, log: core.Log}, nil
}

// tickEvery ticks at once and then on every interval, as EventBridge's rate rule would.
func (s *Stack) tickEvery(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Tick(ctx, s.Core.Now()); err != nil && ctx.Err() == nil {
			log.Error("scheduler tick failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops the ticker, the notifier's loop and the API server, letting requests in flight finish.
func (s *Stack) Close() error {
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.server.Shutdown(ctx)
	s.wg.Wait()
	return err
}

// Tenant is a tenant with an admin API key.
type Tenant struct {
	ID     string `json:"tenantId"`
	APIKey string `json:"apiKey"`
}

// EnsureTenant creates a tenant with an admin key, or reuses the one recorded in statePath if the
// table still has it. The key's secret exists only in that file (mode 0600) and is never stored
// in the table, so it is the one place the key can be printed again from.
func (s *Stack) EnsureTenant(ctx context.Context, id, statePath string) (Tenant, error) {
	var t Tenant
	if b, err := os.ReadFile(statePath); err == nil && json.Unmarshal(b, &t) == nil && t.ID == id {
		if _, err := s.Core.Auth.Authenticate(ctx, "Bearer "+t.APIKey); err == nil {
			return t, nil
		}
	}
	now := s.Core.Now().UTC()
	if err := s.Core.Store.CreateTenant(ctx, domain.Tenant{ID: id, Name: id, CreatedAt: now}); err != nil && !errors.Is(err, domain.ErrConflict) {
		return Tenant{}, err
	}
	keyID, secret := domain.NewID(now), auth.NewSecret()
	if err := s.Core.Store.CreateAPIKey(ctx, id, domain.APIKey{ID: keyID, Name: "dev-admin", Role: domain.RoleAdmin, SecretHash: auth.Hash(secret), CreatedAt: now}); err != nil {
		return Tenant{}, err
	}
	t = Tenant{ID: id, APIKey: auth.Format(auth.PrefixAPIKey, keyID, secret)}
	b, _ := json.MarshalIndent(t, "", "  ")
	if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
		return Tenant{}, err
	}
	if err := os.WriteFile(statePath, b, 0o600); err != nil {
		return Tenant{}, err
	}
	return t, nil
}

func step(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "==> "+format+"\n", args...)
}
