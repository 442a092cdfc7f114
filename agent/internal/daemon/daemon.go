// Package daemon is the running agent: the loops that heartbeat, long-poll the agent's queue
// for as many tasks as it has free slots, run each task under the concurrency limit with its
// message kept invisible, stream its progress and log, store its result through the API before
// the message is deleted, and deliver from the spool whatever the API could not take at once.
// It stops in order on shutdown: no new work, a grace period for running restic, then an
// interruption reported as cancelled, with the message handed back to the queue.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/backoff"
	"github.com/restic-monitor/restic-monitor/agent/internal/client"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/agent/internal/metrics"
	"github.com/restic-monitor/restic-monitor/agent/internal/runner"
	"github.com/restic-monitor/restic-monitor/agent/internal/spool"
	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/queue"
)

// API is what the daemon asks of the control plane.
type API interface {
	Heartbeat(ctx context.Context, hb client.Heartbeat) (client.HeartbeatReply, error)
	Start(ctx context.Context, taskID string, req client.StartRequest) (client.Started, error)
	Progress(ctx context.Context, taskID string, rep client.ProgressReport) (client.ProgressReply, error)
	Result(ctx context.Context, taskID string, res client.Result) (client.ResultReply, error)
	AppendLog(ctx context.Context, runID string, chunk client.LogChunk) (bool, error)
	ReportSnapshots(ctx context.Context, rep client.SnapshotReport) error
	UploadListing(ctx context.Context, taskID string, up client.ListingUpload) (client.ListingReply, error)
}

// Queue is the agent's side of its task queue.
type Queue interface {
	Receive(ctx context.Context, maxMessages int32, wait time.Duration) ([]queue.Message, error)
	ExtendVisibility(ctx context.Context, receiptHandle string, d time.Duration) error
	Delete(ctx context.Context, receiptHandle string) error
}

// TaskRunner runs tasks with restic.
type TaskRunner interface {
	Run(ctx context.Context, m events.TaskMessage, lim runner.Limits, hooks runner.Hooks) runner.Result
	Unlock(ctx context.Context, m events.TaskMessage, hooks runner.Hooks) error
}

// Daemon is one agent process. Fill in the exported fields, then call Run once.
type Daemon struct {
	Config      *config.Config
	Credentials config.Credentials
	API         API
	Queue       Queue
	Runner      TaskRunner
	Spool       *spool.Spool
	Metrics     *metrics.Agent
	Log         *slog.Logger
	// AgentVersion and ResticVersion are reported in heartbeats.
	AgentVersion, ResticVersion string
	// StatusPath is where the status file is kept; empty keeps none.
	StatusPath string
	// Now and Rand are the clock and the source of jitter; nil uses the real ones.
	Now  func() time.Time
	Rand func() float64
	// ProgressInterval is how often a running task's progress goes to the API (default 10 s).
	ProgressInterval time.Duration
	// FlushInterval is how often the spool is retried (default 30 s).
	FlushInterval time.Duration
	// ReportGrace is how long, after restic was interrupted at shutdown, results may still be
	// delivered before the agent gives up and leaves them in the spool (default 15 s).
	ReportGrace time.Duration

	session  string
	slots    *slots
	backoff  *backoff.Agent
	pollCtx  context.Context
	taskCtx  context.Context
	reports  context.Context
	tasks    sync.WaitGroup
	stopPoll context.CancelCauseFunc

	interruptOnce sync.Once
	interrupt     chan struct{}
	heartbeatNow  chan struct{}
	statusDirty   chan struct{}

	mu           sync.Mutex
	running      map[string]*task
	serverLimits runner.Limits
	// serverHeartbeat is the heartbeat interval the control plane asked for.
	serverHeartbeat time.Duration
	lastError       string
	lastHB          time.Time
	state           string
	rejected        map[string]bool
	startedAt       time.Time
}

// Errors that end Run.
var (
	// ErrCredentialsRejected: the API no longer accepts the agent's credential (the agent was
	// deleted or its secret replaced). The agent must be enrolled again.
	ErrCredentialsRejected = errors.New("the control plane rejected the agent's credentials: enroll the agent again")
)

func (d *Daemon) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Daemon) rand() float64 {
	if d.Rand != nil {
		return d.Rand()
	}
	return mrand.Float64()
}

func (d *Daemon) init() {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	d.session = hex.EncodeToString(b)
	d.slots = newSlots(d.Config.Limits.MaxConcurrentTasks)
	r := d.Config.Retry
	d.backoff = &backoff.Agent{
		Threshold: r.AgentBackoffAfter,
		Policy:    backoff.Policy{Base: r.AgentBackoffBase.D(), Factor: 2, Cap: r.AgentBackoffCap.D()},
		Rand:      d.rand,
	}
	d.running = map[string]*task{}
	d.rejected = map[string]bool{}
	d.interrupt = make(chan struct{})
	d.heartbeatNow = make(chan struct{}, 1)
	d.statusDirty = make(chan struct{}, 1)
	d.state = stateIdle
	d.startedAt = d.now()
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.Log = d.Log.With("tenant_id", d.Credentials.TenantID, "agent_id", d.Credentials.AgentID)
	if d.ProgressInterval <= 0 {
		d.ProgressInterval = 10 * time.Second
	}
	if d.FlushInterval <= 0 {
		d.FlushInterval = 30 * time.Second
	}
	if d.ReportGrace <= 0 {
		d.ReportGrace = 15 * time.Second
	}
}

// Interrupt ends the shutdown grace period at once: running restic is interrupted now. It is
// meant for a second SIGTERM or Ctrl-C.
func (d *Daemon) Interrupt() {
	d.interruptOnce.Do(func() { close(d.interrupt) })
}

// Run runs the agent until ctx ends (SIGTERM), then shuts down in order: it stops polling,
// lets running tasks go on for the configured grace period, interrupts restic, reports and
// returns. It returns ErrCredentialsRejected when the API refuses the agent's credential.
func (d *Daemon) Run(ctx context.Context) error {
	d.init()
	base := context.WithoutCancel(ctx)
	reports, cancelReports := context.WithCancel(base)
	defer cancelReports()
	taskCtx, cancelTaskCtx := context.WithCancelCause(reports)
	cancelTasks := func() { cancelTaskCtx(errShutdown) }
	defer cancelTasks()
	pollCtx, stopPoll := context.WithCancelCause(ctx)
	defer stopPoll(nil)
	d.reports, d.taskCtx, d.pollCtx, d.stopPoll = reports, taskCtx, pollCtx, stopPoll

	d.Log.Info("agent starting", "version", d.AgentVersion, "restic_version", d.ResticVersion,
		"max_concurrent_tasks", d.Config.Limits.MaxConcurrentTasks, "spooled", d.Spool.Len())

	var loops sync.WaitGroup
	for _, loop := range []func(context.Context){d.heartbeatLoop, d.flushLoop, d.statusLoop} {
		loops.Add(1)
		go func() {
			defer loops.Done()
			loop(reports)
		}()
	}
	srv, err := d.serveMetrics()
	if err != nil {
		return err
	}

	d.poll(pollCtx)

	// Shutdown: no new work; running tasks get the grace period, then restic is interrupted.
	d.setState(stateStopping)
	d.Log.Info("agent stopping", "running", d.slots.used(), "grace", d.Config.ShutdownGrace.D().String())
	done := make(chan struct{})
	go func() {
		d.tasks.Wait()
		close(done)
	}()
	grace := time.NewTimer(d.Config.ShutdownGrace.D())
	select {
	case <-done:
	case <-grace.C:
		d.Log.Warn("shutdown grace period over: interrupting restic")
	case <-d.interrupt:
		d.Log.Warn("interrupting restic at once")
	}
	grace.Stop()
	cancelTasks()
	// restic has its interrupt grace to stop; then results get a little time to be delivered.
	last := time.NewTimer(d.Config.Restic.InterruptGrace.D() + d.ReportGrace)
	select {
	case <-done:
	case <-last.C:
		d.Log.Warn("results not yet delivered stay in the spool", "spool", d.Spool.Dir())
		cancelReports()
		<-done
	}
	last.Stop()

	d.setState(stateStopped)
	d.sendHeartbeat(reports)
	cancelReports()
	loops.Wait()
	d.writeStatus()
	if srv != nil {
		sctx, cancel := context.WithTimeout(base, 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	if cause := context.Cause(pollCtx); errors.Is(cause, ErrCredentialsRejected) {
		return cause
	}
	d.Log.Info("agent stopped")
	return nil
}

// fatal stops the agent for a reason it cannot recover from by itself.
func (d *Daemon) fatal(err error) {
	d.Log.Error("stopping: " + err.Error())
	d.stopPoll(err)
}

func (d *Daemon) serveMetrics() (*http.Server, error) {
	addr := d.Config.MetricsListen
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.Metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	d.Log.Info("serving metrics", "address", ln.Addr().String())
	return srv, nil
}

// sleep waits for d or until ctx ends, and reports whether the whole time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// limits are the limits in force: the agent's own, lowered by the control plane's.
func (d *Daemon) limits() runner.Limits {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.Config.Limits
	return runner.Limits{UploadKbps: l.UploadKbps, DownloadKbps: l.DownloadKbps, CPUQuotaPercent: l.CPUQuotaPercent}.Lower(d.serverLimits)
}

func (d *Daemon) setLastError(s string) {
	d.mu.Lock()
	d.lastError = s
	d.mu.Unlock()
	d.markDirty()
}
