package daemon_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/agent/internal/client"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/agent/internal/daemon"
	"github.com/restic-monitor/restic-monitor/agent/internal/metrics"
	"github.com/restic-monitor/restic-monitor/agent/internal/runner"
	"github.com/restic-monitor/restic-monitor/agent/internal/spool"
	"github.com/restic-monitor/restic-monitor/internal/queue"
)

const repoPassword = "daemon test repository password"

// agent is one enrolled agent with its configuration, run in this process against the control
// plane with the real restic.
type agent struct {
	t     *testing.T
	cp    *agenttest.ControlPlane
	dir   string
	cfg   *config.Config
	creds config.Credentials

	logs    syncBuffer
	metrics *metrics.Agent
	d       *daemon.Daemon
	cancel  context.CancelFunc
	done    chan error
	cleanup bool
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newAgent enrolls an agent whose repository "main" lives in a temporary directory and is
// known to the control plane; change adjusts its configuration.
func newAgent(t *testing.T, cp *agenttest.ControlPlane, change ...func(*config.Config)) *agent {
	t.Helper()
	bin := agenttest.ResticBinary(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(repoPassword+"\n"), 0o600))
	repo := filepath.Join(dir, "repo")
	cp.Repository("main", repo)

	cfg := config.Default()
	cfg.APIURL = cp.URL
	cfg.CredentialsFile = filepath.Join(dir, "credentials.json")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.SpoolDir = filepath.Join(dir, "state", "spool")
	cfg.Hostname = "daemon-test"
	cfg.Restic.Binary = bin
	cfg.Restic.CacheDir = filepath.Join(dir, "cache")
	cfg.Restic.InterruptGrace = config.Duration(10 * time.Second)
	cfg.Queue.Wait = config.Duration(2 * time.Second)
	cfg.Queue.VisibilityTimeout = config.Duration(30 * time.Second)
	cfg.HeartbeatInterval = config.Duration(5 * time.Second)
	cfg.ShutdownGrace = config.Duration(5 * time.Second)
	cfg.Retry.Base = config.Duration(time.Second)
	cfg.Retry.Cap = config.Duration(2 * time.Second)
	cfg.Repositories = []config.Repository{{Name: "main", Repository: repo, PasswordFile: pw, Initialize: true}}
	for _, c := range change {
		c(&cfg)
	}
	require.NoError(t, cfg.Validate())

	api, err := client.New(cp.URL, "", "test")
	require.NoError(t, err)
	reg, err := api.Register(context.Background(), client.RegisterRequest{
		Token: cp.EnrollmentToken(), Hostname: cfg.Hostname, OS: runtime.GOOS, Arch: runtime.GOARCH,
		AgentVersion: "test", ResticVersion: "0.18.1",
	})
	require.NoError(t, err)
	cp.DeleteQueuesAtCleanup(reg.AgentID)
	creds := config.Credentials{APIURL: cp.URL, TenantID: reg.TenantID, AgentID: reg.AgentID, AgentSecret: reg.Credential,
		QueueURL: reg.QueueURL, Region: reg.Region, EnrolledAt: time.Now()}
	return &agent{t: t, cp: cp, dir: dir, cfg: &cfg, creds: creds}
}

// start runs the agent until the test ends or stop is called.
func (a *agent) start() {
	a.t.Helper()
	api, err := client.New(a.cfg.APIURL, a.creds.AgentSecret, "test")
	require.NoError(a.t, err)
	// Fail fast while the API is away, so that spooling is what the tests see.
	api.Attempts = 2
	ctx, cancel := context.WithCancel(context.Background())
	sqsClient, err := client.NewQueueClient(ctx, api, a.creds.Region)
	require.NoError(a.t, err)
	sp, err := spool.Open(a.cfg.SpoolDir)
	require.NoError(a.t, err)
	a.metrics = metrics.New()
	a.d = &daemon.Daemon{
		Config: a.cfg, Credentials: a.creds, API: api,
		Queue:        queue.NewConsumer(sqsClient, a.creds.QueueURL),
		Runner:       &runner.Runner{Config: a.cfg, Hostname: a.cfg.Hostname},
		Spool:        sp,
		Metrics:      a.metrics,
		Log:          newLogger(&a.logs),
		AgentVersion: "test", ResticVersion: "0.18.1",
		StatusPath:       filepath.Join(a.cfg.StateDir, "status.json"),
		ProgressInterval: 500 * time.Millisecond,
		FlushInterval:    time.Second,
		ReportGrace:      5 * time.Second,
	}
	a.cancel, a.done = cancel, make(chan error, 1)
	go func() { a.done <- a.d.Run(ctx) }()
	if !a.cleanup {
		a.cleanup = true
		a.t.Cleanup(func() {
			_ = a.stop()
			if a.t.Failed() {
				a.t.Logf("agent log:\n%s", a.logs.String())
			}
		})
	}
}

// stop shuts the agent down as SIGTERM does and returns Run's error.
func (a *agent) stop() error {
	if a.cancel == nil {
		return nil
	}
	a.cancel()
	a.cancel = nil
	select {
	case err := <-a.done:
		return err
	case <-time.After(time.Minute):
		a.t.Fatalf("the agent did not stop within a minute; its log:\n%s", a.logs.String())
		return nil
	}
}

// status reads the agent's status file.
func (a *agent) status() daemon.Status {
	a.t.Helper()
	var st daemon.Status
	require.Eventually(a.t, func() bool {
		var err error
		st, err = daemon.ReadStatus(filepath.Join(a.cfg.StateDir, "status.json"))
		return err == nil
	}, agenttest.Patience, 50*time.Millisecond)
	return st
}
