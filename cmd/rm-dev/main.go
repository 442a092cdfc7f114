// Command rm-dev runs the whole restic-monitor system on this machine: the control plane on the
// AWS endpoint AWS_ENDPOINT_URL names (make dev starts the embedded emulator there), both APIs on
// one local port, the scheduler ticking every minute, and one real agent backing up a demo
// folder with real restic. State lives under -data and survives a restart.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/devstack"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/web"
)

func main() {
	var o options
	flag.StringVar(&o.data, "data", ".data", "where the stack keeps its state")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8080", "where the APIs listen")
	flag.StringVar(&o.agent, "agent", "bin/restic-monitor-agent", "the agent binary")
	flag.StringVar(&o.restic, "restic", "bin/restic", "the restic binary")
	flag.StringVar(&o.interval, "interval", "5m", "how often the demo policy backs up")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "rm-dev:", err)
		os.Exit(1)
	}
}

type options struct {
	data, addr, agent, restic, interval string
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	out := os.Stdout
	for _, p := range []*string{&o.data, &o.agent, &o.restic} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(o.data, "control-plane.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewJSONHandler(logFile, nil))

	secretKey, err := ensureSecretKey(filepath.Join(o.data, "dev", "secret-key"))
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "==> using the AWS endpoint at %s\n", localaws.Endpoint())
	awsCfg, err := localaws.Load(ctx)
	if err != nil {
		return err
	}
	stack, err := devstack.Start(ctx, awsCfg, devstack.Options{
		Addr: o.addr, Table: "restic-monitor-dev", Stage: "dev", TickEvery: time.Minute,
		HeartbeatInterval: 15 * time.Second, Progress: out, Log: log,
		// Local receivers listen on 127.0.0.1, which the cloud's address guard refuses.
		Notify: notify.Config{SecretKey: secretKey, AllowPrivate: true},
		Web:    web.Handler(),
	})
	if err != nil {
		return err
	}
	defer stack.Close()

	fmt.Fprintln(out, "==> creating the demo tenant and its admin API key")
	tenant, err := stack.EnsureTenant(ctx, "demo", filepath.Join(o.data, "dev", "tenant.json"))
	if err != nil {
		return err
	}
	client := devstack.Client{URL: stack.URL, Key: tenant.APIKey}

	source := filepath.Join(o.data, "demo-source")
	if err := devstack.WriteDemoFiles(source); err != nil {
		return err
	}
	passwordFile := filepath.Join(o.data, "repos", "demo.password")
	if err := ensurePassword(passwordFile); err != nil {
		return err
	}
	agentLog, err := os.OpenFile(filepath.Join(o.data, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer agentLog.Close()
	agent := &devstack.Agent{
		Binary: o.agent, Dir: filepath.Join(o.data, "agent"), ResticBinary: o.restic, Output: agentLog,
		HeartbeatInterval: 15 * time.Second,
		Repositories: []devstack.AgentRepository{{
			Name: "demo", Location: filepath.Join(o.data, "repos", "demo"), PasswordFile: passwordFile, Initialize: true,
		}},
		RestoreRoots: []string{filepath.Join(o.data, "restore")},
	}
	if err := agent.WriteConfig(stack.URL); err != nil {
		return err
	}
	fmt.Fprintln(out, "==> enrolling the demo agent and assigning the demo policy")
	demo, fresh, err := devstack.SetUpDemo(ctx, client, agent, source, o.interval)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "==> starting the agent")
	if err := agent.Start(); err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "==> stopping the agent")
		_ = agent.Stop(45 * time.Second)
	}()
	if fresh {
		if _, err := devstack.BackupNow(ctx, client, demo); err != nil {
			return fmt.Errorf("ask for the first backup: %w", err)
		}
	}
	if _, built := web.Files(); !built {
		fmt.Fprintln(out, "==> the dashboard is not built into this binary: make web, or make dev, builds it")
	}
	printWelcome(out, stack.URL, tenant, demo, o)
	go reportFirstBackup(ctx, out, client, demo, started)

	<-ctx.Done()
	fmt.Fprintln(out, "\n==> shutting down")
	return nil
}

// reportFirstBackup prints a line when the demo policy has a successful run.
func reportFirstBackup(ctx context.Context, out io.Writer, c devstack.Client, d devstack.Demo, started time.Time) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		var runs struct {
			Items []struct {
				Status  string `json:"status"`
				Summary *struct {
					SnapshotID string `json:"snapshotId"`
				} `json:"summary"`
			} `json:"items"`
		}
		err := c.Do(ctx, http.MethodGet, "/v1/runs?policyId="+d.PolicyID+"&status=succeeded&limit=1", nil, &runs)
		if err == nil && len(runs.Items) > 0 && runs.Items[0].Summary != nil {
			fmt.Fprintf(out, "==> a backup succeeded %s after start: snapshot %s\n", time.Since(started).Round(time.Second), runs.Items[0].Summary.SnapshotID)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func ensurePassword(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}

// ensureSecretKey returns the key sealing channel secrets, made once and kept in path (mode
// 0600) like the tenant's key, so channels made before a restart still open after it.
func ensureSecretKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		return notify.ParseSecretKey(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, notify.SecretKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

func printWelcome(w io.Writer, url string, t devstack.Tenant, d devstack.Demo, o options) {
	fmt.Fprintf(w, `
restic-monitor is running.

  dashboard      %[1]s/   (sign in with the admin API key below)
  API            %[1]s   (tenant API under /v1, agent API under /v1/agent)
  tenant         %[2]s
  admin API key  %[3]s
  demo agent     %[4]s, backing up %[5]s every %[6]s
  demo policy    %[7]s (repository "demo")

Try it:
  export RM_API_URL=%[1]s RM_API_KEY=%[3]s
  go run ./cmd/rmctl agents list
  go run ./cmd/rmctl runs list
  curl -s -H "Authorization: Bearer $RM_API_KEY" %[1]s/v1/overview

Notifications (the notifier reads the bus through a queue; private addresses are allowed here):
  # any HTTP server on 127.0.0.1:9000 that answers 2xx receives signed webhooks
  go run ./cmd/rmctl notify channels create local --kind webhook --url http://127.0.0.1:9000/hook \
      --events run.failed,run.succeeded,task.failed,agent.offline,slot.overdue
  go run ./cmd/rmctl notify test CHANNEL_ID        # one synthetic agent.offline, delivered now
  go run ./cmd/rmctl notify deliveries CHANNEL_ID  # the channel's delivery log

Where things live:
  %[8]s/control-plane.log    the control plane's JSON log (the notifier's too)
  %[8]s/agent.log            the agent's log
  %[8]s/repos/demo           the restic repository (password in repos/demo.password)
  %[8]s/dev/secret-key       RM_SECRET_KEY, sealing channel secrets
  %[8]s/emulator             the emulator's state (make dev-reset clears everything)

Ctrl-C stops everything.
`, url, t.ID, t.APIKey, d.AgentID, d.Source, o.interval, d.PolicyID, o.data)
}
