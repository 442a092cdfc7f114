package agenttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/testenv/restictest"
)

// BuildAgent builds the agent binary into a new temporary directory; remove deletes it.
func BuildAgent(version string) (bin string, remove func(), err error) {
	root, ok := restictest.ModuleRoot()
	if !ok {
		return "", nil, fmt.Errorf("module root not found")
	}
	dir, err := os.MkdirTemp("", "restic-monitor-agent-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "restic-monitor-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", bin, "./agent/cmd/restic-monitor-agent")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build the agent: %w: %s", err, out)
	}
	return bin, func() { _ = os.RemoveAll(dir) }, nil
}

// HostPassword is the password of a Host's repository.
const HostPassword = "agent host test repository password"

// Host is one machine with the agent binary installed: its configuration, its repository
// "main" (known to the control plane) and its files, all in a temporary directory.
type Host struct {
	t   testing.TB
	cp  *ControlPlane
	bin string
	// Dir holds everything of the host's; Config is its configuration file.
	Dir    string
	Config string
	// AgentID is the agent enroll registered.
	AgentID string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *lockedBuffer
	exit chan error
}

// HostOptions shape a Host's configuration.
type HostOptions struct {
	// VisibilityTimeout is the agent's queue.visibilityTimeout (default 30 s).
	VisibilityTimeout time.Duration
	// MaxConcurrentTasks is limits.maxConcurrentTasks (default 1).
	MaxConcurrentTasks int
	// LogLevel is the agent's log level (default debug).
	LogLevel string
	// QueueWait is the long-poll wait (default 2 s, so that tests stop quickly).
	QueueWait time.Duration
	// HeartbeatInterval is the agent's own heartbeat interval (default 5 s).
	HeartbeatInterval time.Duration
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// NewHost writes the configuration file of the agent binary agentBin and enrolls it with the
// agent's own enroll command.
func NewHost(t testing.TB, cp *ControlPlane, agentBin string, o HostOptions) *Host {
	t.Helper()
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = 30 * time.Second
	}
	if o.MaxConcurrentTasks == 0 {
		o.MaxConcurrentTasks = 1
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	if o.QueueWait == 0 {
		o.QueueWait = 2 * time.Second
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 5 * time.Second
	}
	if agentBin == "" {
		t.Skip("the agent binary was not built (-short)")
	}
	bin := ResticBinary(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(HostPassword+"\n"), 0o600))
	repo := filepath.Join(dir, "repo")
	cp.Repository("main", repo)
	h := &Host{t: t, cp: cp, bin: agentBin, Dir: dir, Config: filepath.Join(dir, "etc", "agent.yaml")}
	yaml := fmt.Sprintf(`apiUrl: %s
credentialsFile: %s
stateDir: %s
hostname: process-test
restic:
  binary: %s
  cacheDir: %s
  interruptGrace: 10s
limits:
  maxConcurrentTasks: %d
queue:
  wait: %s
  visibilityTimeout: %s
heartbeatInterval: %s
shutdownGrace: 2s
logLevel: %s
metricsListen: 127.0.0.1:0
repositories:
  - name: main
    repository: %s
    passwordFile: %s
    initialize: true
`, cp.URL, filepath.Join(dir, "etc", "credentials.json"), filepath.Join(dir, "state"), bin, filepath.Join(dir, "cache"),
		o.MaxConcurrentTasks, o.QueueWait, o.VisibilityTimeout, o.HeartbeatInterval, o.LogLevel, repo, pw)
	WriteFile(t, h.Config, []byte(yaml))

	out, code := h.Command("enroll", "--url", cp.URL, "--token", cp.EnrollmentToken(), "--label", "role=test")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "enrolled process-test as agent ")
	h.AgentID = strings.Fields(strings.SplitN(out, "as agent ", 2)[1])[0]
	require.True(t, domain.ValidID(h.AgentID), out)
	cp.DeleteQueuesAtCleanup(h.AgentID)
	fi, err := os.Stat(filepath.Join(dir, "etc", "credentials.json"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the credentials are private")
	return h
}

// Env is the environment the agent runs with.
func (h *Host) Env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.Dir, "AWS_ENDPOINT_URL=" + localaws.Endpoint()}
}

// Command runs one agent command to its end and returns its output and exit code.
func (h *Host) Command(args ...string) (string, int) {
	h.t.Helper()
	cmd := exec.Command(h.bin, append(args, "--config", h.Config)...)
	cmd.Env = h.Env()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	require.NoError(h.t, err)
	return string(out), 0
}

// Start runs `restic-monitor-agent run` in the background; unprivileged starts it without the
// capabilities that let root read any file.
func (h *Host) Start(unprivileged bool) {
	h.t.Helper()
	cmd := exec.Command(h.bin, "run", "--config", h.Config)
	cmd.Env = h.Env()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	exit := make(chan error, 1)
	startIt := func() {
		require.NoError(h.t, cmd.Start())
		go func() { exit <- cmd.Wait() }()
	}
	if unprivileged {
		WithoutReadOverride(h.t, startIt)
	} else {
		startIt()
	}
	h.mu.Lock()
	h.cmd, h.out, h.exit = cmd, out, exit
	h.mu.Unlock()
	h.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exit
		if h.t.Failed() {
			h.t.Logf("agent output:\n%s", out.String())
		}
	})
}

// Signal sends sig to the running agent, waits for it to exit and returns its exit code.
func (h *Host) Signal(sig syscall.Signal, within time.Duration) int {
	h.t.Helper()
	require.NoError(h.t, h.cmd.Process.Signal(sig))
	select {
	case err := <-h.exit:
		h.exit <- err // for the cleanup
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 0
	case <-time.After(within):
		h.t.Fatalf("the agent did not exit within %s of %s", within, sig)
		return -1
	}
}

// PID is the running agent's process ID.
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cmd.Process.Pid
}

// Output is what the running (or last) agent process printed.
func (h *Host) Output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

// ResticChildren lists the restic processes the running agent started.
func (h *Host) ResticChildren() []Proc {
	procs, err := ResticChildren(h.PID())
	require.NoError(h.t, err)
	return procs
}

// SnapshotCount counts the snapshots in the repository with restic itself.
func (h *Host) SnapshotCount() int {
	h.t.Helper()
	cmd := exec.Command(ResticBinary(h.t), "snapshots", "--json", "--no-lock")
	cmd.Env = []string{"RESTIC_REPOSITORY=" + filepath.Join(h.Dir, "repo"), "RESTIC_PASSWORD_FILE=" + filepath.Join(h.Dir, "password"),
		"RESTIC_CACHE_DIR=" + filepath.Join(h.Dir, "cache"), "HOME=" + h.Dir}
	out, err := cmd.Output()
	require.NoError(h.t, err)
	return strings.Count(string(out), `"short_id"`)
}

// metricsAddress is where the running agent serves its metrics, as it logged it. The agent
// listens on a port of its own choosing at every start: a port chosen by the test and given
// to it could be taken, between two starts, by the source port of any outgoing connection.
func (h *Host) metricsAddress() string {
	h.t.Helper()
	var addr string
	require.Eventually(h.t, func() bool {
		for _, line := range strings.Split(h.Output(), "\n") {
			var entry struct{ Msg, Address string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving metrics" {
				addr = entry.Address
			}
		}
		return addr != ""
	}, Patience, 20*time.Millisecond, "the agent does not serve its metrics")
	return addr
}

// Scrape reads the agent's metrics.
func (h *Host) Scrape() string {
	h.t.Helper()
	res, err := http.Get("http://" + h.metricsAddress() + "/metrics")
	require.NoError(h.t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(h.t, err)
	return string(body)
}

// SlowPolicy is a backup of 2 MiB limited to kbps, assigned to the host.
func (h *Host) SlowPolicy(name string, kbps int) string {
	h.t.Helper()
	src := filepath.Join(h.Dir, "src-"+name)
	RandomTree(h.t, src, 4, 512<<10)
	id := h.cp.Policy(name, "main", []string{src}, domain.Retention{KeepLast: 5}, func(b map[string]any) { b["uploadKbps"] = kbps })
	h.cp.Assign(id, h.AgentID)
	return id
}
