package main_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
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

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
)

// The tests in this file build the real agent binary and run it as a child process against
// the control plane in this process, with the real restic.

var agentBinary string

func TestMain(m *testing.M) {
	code := func() int {
		flag.Parse()
		if testing.Short() {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "restic-monitor-agent-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		agentBinary = filepath.Join(dir, "restic-monitor-agent")
		build := exec.Command("go", "build", "-o", agentBinary, "-ldflags", "-X main.version=process-test", ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build the agent:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

const repoPassword = "process test repository password"

// host is one machine with the agent installed: its configuration, repository and files.
type host struct {
	t       *testing.T
	cp      *agenttest.ControlPlane
	dir     string
	config  string
	agentID string
	metrics string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *lockedBuffer
	exit chan error
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

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// newHost writes the agent's configuration file and enrolls it with the agent's own enroll
// command.
func newHost(t *testing.T, cp *agenttest.ControlPlane, visibility time.Duration) *host {
	t.Helper()
	if agentBinary == "" {
		t.Skip("runs the agent binary; run without -short")
	}
	bin := agenttest.ResticBinary(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(repoPassword+"\n"), 0o600))
	repo := filepath.Join(dir, "repo")
	cp.Repository("main", repo)
	h := &host{t: t, cp: cp, dir: dir, config: filepath.Join(dir, "etc", "agent.yaml"), metrics: freePort(t)}
	yaml := fmt.Sprintf(`apiUrl: %s
credentialsFile: %s
stateDir: %s
hostname: process-test
restic:
  binary: %s
  cacheDir: %s
  interruptGrace: 10s
limits:
  maxConcurrentTasks: 1
queue:
  wait: 2s
  visibilityTimeout: %s
heartbeatInterval: 5s
shutdownGrace: 2s
logLevel: debug
metricsListen: %s
repositories:
  - name: main
    repository: %s
    passwordFile: %s
    initialize: true
`, cp.URL, filepath.Join(dir, "etc", "credentials.json"), filepath.Join(dir, "state"), bin, filepath.Join(dir, "cache"),
		visibility, h.metrics, repo, pw)
	agenttest.WriteFile(t, h.config, []byte(yaml))

	out, code := h.command("enroll", "--url", cp.URL, "--token", cp.EnrollmentToken(), "--label", "role=test")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "enrolled process-test as agent ")
	h.agentID = strings.Fields(strings.SplitN(out, "as agent ", 2)[1])[0]
	require.True(t, domain.ValidID(h.agentID), out)
	cp.DeleteQueuesAtCleanup(h.agentID)
	fi, err := os.Stat(filepath.Join(dir, "etc", "credentials.json"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the credentials are private")
	return h
}

func (h *host) env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir, "AWS_ENDPOINT_URL=" + localaws.Endpoint()}
}

// command runs one agent command to its end and returns its output and exit code.
func (h *host) command(args ...string) (string, int) {
	h.t.Helper()
	cmd := exec.Command(agentBinary, append(args, "--config", h.config)...)
	cmd.Env = h.env()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	require.NoError(h.t, err)
	return string(out), 0
}

// start runs `restic-monitor-agent run` in the background; unprivileged starts it without the
// capabilities that let root read any file.
func (h *host) start(unprivileged bool) {
	h.t.Helper()
	cmd := exec.Command(agentBinary, "run", "--config", h.config)
	cmd.Env = h.env()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	exit := make(chan error, 1)
	startIt := func() {
		require.NoError(h.t, cmd.Start())
		go func() { exit <- cmd.Wait() }()
	}
	if unprivileged {
		agenttest.WithoutReadOverride(h.t, startIt)
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

// signal sends sig to the running agent and, unless it is SIGKILL's victim that need not say
// anything, waits for it to exit and returns its exit code.
func (h *host) signal(sig syscall.Signal, within time.Duration) int {
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

// resticChildren lists the restic processes the running agent started.
func (h *host) resticChildren() []agenttest.Proc {
	procs, err := agenttest.ResticChildren(h.cmd.Process.Pid)
	require.NoError(h.t, err)
	return procs
}

// snapshotCount counts the snapshots in the repository with restic itself.
func (h *host) snapshotCount() int {
	h.t.Helper()
	cmd := exec.Command(agenttest.ResticBinary(h.t), "snapshots", "--json", "--no-lock")
	cmd.Env = []string{"RESTIC_REPOSITORY=" + filepath.Join(h.dir, "repo"), "RESTIC_PASSWORD_FILE=" + filepath.Join(h.dir, "password"),
		"RESTIC_CACHE_DIR=" + filepath.Join(h.dir, "cache"), "HOME=" + h.dir}
	out, err := cmd.Output()
	require.NoError(h.t, err)
	return strings.Count(string(out), `"short_id"`)
}

func (h *host) scrape() string {
	h.t.Helper()
	res, err := http.Get("http://" + h.metrics + "/metrics")
	require.NoError(h.t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(h.t, err)
	return string(body)
}

// slowPolicy is a backup of 2 MiB limited to kbps, assigned to the host.
func (h *host) slowPolicy(name string, kbps int) string {
	h.t.Helper()
	src := filepath.Join(h.dir, "src-"+name)
	agenttest.RandomTree(h.t, src, 4, 512<<10)
	id := h.cp.Policy(name, "main", []string{src}, domain.Retention{KeepLast: 5}, func(b map[string]any) { b["uploadKbps"] = kbps })
	h.cp.Assign(id, h.agentID)
	return id
}

// TestKilledMidBackupIsRedeliveredAndCompleted kills the agent with SIGKILL while restic runs.
// The message comes back once its visibility lapses, the restarted agent runs the task again,
// and the control plane shows the interrupted attempt and the run that succeeded — one
// snapshot, nothing lost, nothing twice.
func TestKilledMidBackupIsRedeliveredAndCompleted(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	h := newHost(t, cp, 3*time.Second)
	cp.SetVisibilityTimeout(h.agentID, 3*time.Second)
	policy := h.slowPolicy("killed", 256)
	h.start(false)

	task := cp.RunTask(domain.TaskBackup, h.agentID, policy, "", domain.TaskParams{})
	cp.WaitTask(task.ID, 30*time.Second, domain.TaskRunning)
	var orphans []agenttest.Proc
	require.Eventually(t, func() bool { orphans = h.resticChildren(); return len(orphans) == 1 }, 20*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second) // restic is well into the backup
	h.signal(syscall.SIGKILL, 10*time.Second)

	// restic notices its reader is gone at its next progress report and dies of SIGPIPE; it
	// does not run on unseen behind a dead agent.
	require.Eventually(t, func() bool { return syscall.Kill(orphans[0].PID, 0) != nil }, 15*time.Second, 100*time.Millisecond,
		"restic outlived the killed agent")
	assert.Equal(t, domain.TaskRunning, cp.Task(task.ID).Status, "nobody told the control plane")

	h.start(false)
	got := cp.WaitTask(task.ID, 2*time.Minute, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)

	runs := cp.Runs(h.agentID, task.ID)
	require.Len(t, runs, 2, "the interrupted run and the one that completed")
	assert.Equal(t, domain.RunInterrupted, runs[0].Status)
	assert.Contains(t, runs[0].Error, "the agent restarted")
	assert.Equal(t, domain.TaskSucceeded, runs[1].Status)
	require.NotNil(t, runs[1].Summary)
	assert.Equal(t, uint64(4), runs[1].Summary.FilesNew)
	assert.Equal(t, 1, h.snapshotCount(), "one snapshot: the killed run saved none and the task ran once more")
	require.Len(t, got.Attempts, 2)
	assert.Equal(t, domain.RunInterrupted, got.Attempts[0].Status)
	assert.Equal(t, domain.TaskSucceeded, got.Attempts[1].Status)

	require.Eventually(t, func() bool {
		return strings.Contains(h.scrape(), `restic_monitor_agent_tasks_total{type="backup",outcome="succeeded"} 1`)
	}, 5*time.Second, 100*time.Millisecond)
	assert.Empty(t, cp.DeadLetters(h.agentID))
	assert.Equal(t, 0, h.signal(syscall.SIGTERM, 30*time.Second))
}

// TestSIGTERMCancelsAndReturnsTheMessage stops the agent with SIGTERM during a backup: after its
// grace period restic is interrupted, the run is reported cancelled, the agent exits 0 and the
// task goes back to the queue for the next start.
func TestSIGTERMCancelsAndReturnsTheMessage(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	h := newHost(t, cp, 30*time.Second)
	policy := h.slowPolicy("sigterm", 128)
	h.start(false)
	task := cp.RunTask(domain.TaskBackup, h.agentID, policy, "", domain.TaskParams{})
	cp.WaitTask(task.ID, 30*time.Second, domain.TaskRunning)
	require.Eventually(t, func() bool { return len(h.resticChildren()) == 1 }, 20*time.Second, 20*time.Millisecond)

	began := time.Now()
	assert.Equal(t, 0, h.signal(syscall.SIGTERM, 30*time.Second))
	assert.Less(t, time.Since(began), 20*time.Second)
	assert.Contains(t, h.out.String(), "shutdown grace period over: interrupting restic")
	assert.Equal(t, domain.TaskQueued, cp.Task(task.ID).Status)
	runs := cp.Runs(h.agentID, task.ID)
	require.Len(t, runs, 1)
	assert.Equal(t, domain.RunInterrupted, runs[0].Status)
	assert.Contains(t, runs[0].Error, "cancelled: the agent is shutting down")

	out, code := h.command("status")
	assert.Equal(t, 3, code, "status exits 3 when the agent is not running")
	assert.Contains(t, out, "state:      stopped")
}

// TestUnreadableFileMakesThePartialRun backs up a tree with a file the agent cannot read: the run
// is partial, names the file, and still has its snapshot. The agent runs without root's power
// to read any file.
func TestUnreadableFileMakesThePartialRun(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	h := newHost(t, cp, 30*time.Second)
	src := filepath.Join(h.dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "readable.txt"), []byte("fine\n"))
	locked := filepath.Join(src, "locked.txt")
	agenttest.WriteFile(t, locked, []byte("secret\n"))
	require.NoError(t, os.Chmod(locked, 0))
	policy := cp.Policy("partial", "main", []string{src}, domain.Retention{KeepLast: 1})
	cp.Assign(policy, h.agentID)
	h.start(true)

	task := cp.RunTask(domain.TaskBackup, h.agentID, policy, "", domain.TaskParams{})
	got := cp.WaitTask(task.ID, time.Minute, domain.TaskSucceeded, domain.TaskPartial, domain.TaskFailed)
	require.Equal(t, domain.TaskPartial, got.Status, "never succeeded: %s", got.Error)
	runs := cp.Runs(h.agentID, task.ID)
	require.Len(t, runs, 1)
	run := runs[0]
	assert.Equal(t, domain.TaskPartial, run.Status)
	assert.Equal(t, []string{locked}, run.UnreadablePaths)
	require.NotNil(t, run.ExitCode)
	assert.Equal(t, 3, *run.ExitCode)
	require.NotNil(t, run.Summary)
	assert.Regexp(t, `^[0-9a-f]{64}$`, run.Summary.SnapshotID)
	assert.Equal(t, uint64(1), run.Summary.FilesNew)
	lines, _ := cp.Log(run.ID)
	assert.True(t, agenttest.ContainsLine(lines, "locked.txt"), "restic's complaint is in the log")
}

// TestCommandLine checks enroll's refusals, status while running and version.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	h := newHost(t, cp, 30*time.Second)

	out, code := h.command("enroll", "--url", cp.URL, "--token", cp.EnrollmentToken())
	assert.Equal(t, 78, code)
	assert.Contains(t, out, "enrolled already")

	other := filepath.Join(h.dir, "other", "agent.yaml")
	cmd := exec.Command(agentBinary, "enroll", "--config", other, "--url", cp.URL, "--token", "rme_bogus")
	cmd.Env = h.env()
	raw, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Equal(t, 78, cmd.ProcessState.ExitCode(), string(raw))
	assert.Contains(t, string(raw), "wrote a new configuration to "+other, "enroll writes a configuration when there is none")
	assert.Contains(t, string(raw), "enrollment token is unknown, revoked, expired or used up")

	bad := filepath.Join(h.dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("apiUrl: ftp://x\nlimits: {maxConcurrentTasks: 0}\n"), 0o600))
	cmd = exec.Command(agentBinary, "run", "--config", bad)
	raw, _ = cmd.CombinedOutput()
	assert.Equal(t, 78, cmd.ProcessState.ExitCode())
	assert.Contains(t, string(raw), "apiUrl: must be an http(s) URL")
	assert.Contains(t, string(raw), "limits.maxConcurrentTasks: must be between 1 and 100")

	h.start(false)
	var status string
	require.Eventually(t, func() bool {
		status, code = h.command("status")
		return code == 0 && strings.Contains(status, "heartbeat:  ") && !strings.Contains(status, "none yet")
	}, 20*time.Second, 200*time.Millisecond, "status: %s", status)
	assert.Contains(t, status, "state:      idle")
	assert.Contains(t, status, "agent:      "+h.agentID)
	assert.Contains(t, status, "version process-test, restic 0.18.1")
	assert.Contains(t, status, "tasks:      0 running of at most 1")

	out, code = h.command("version")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "restic-monitor-agent process-test")
	assert.Contains(t, out, "restic 0.18.1")
	assert.NotContains(t, h.out.String(), repoPassword)
	creds, err := os.ReadFile(filepath.Join(h.dir, "etc", "credentials.json"))
	require.NoError(t, err)
	assert.Contains(t, string(creds), `"agentSecret": "rma_`)
	assert.NotContains(t, h.out.String(), "rma_", "the agent's secret never reaches its log")
	assert.Equal(t, 0, h.signal(syscall.SIGTERM, 30*time.Second))
}
