package main_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/internal/domain"
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
		bin, remove, err := agenttest.BuildAgent("process-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer remove()
		agentBinary = bin
		return m.Run()
	}()
	os.Exit(code)
}

// TestKilledMidBackupIsRedeliveredAndCompleted kills the agent with SIGKILL while restic runs.
// The message comes back once its visibility lapses, the restarted agent runs the task again,
// and the control plane shows the interrupted attempt and the run that succeeded — one
// snapshot, nothing lost, nothing twice.
func TestKilledMidBackupIsRedeliveredAndCompleted(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	h := agenttest.NewHost(t, cp, agentBinary, agenttest.HostOptions{VisibilityTimeout: 3 * time.Second})
	cp.SetVisibilityTimeout(h.AgentID, 3*time.Second)
	policy := h.SlowPolicy("killed", 256)
	h.Start(false)

	task := cp.RunTask(domain.TaskBackup, h.AgentID, policy, "", domain.TaskParams{})
	cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskRunning)
	var orphans []agenttest.Proc
	require.Eventually(t, func() bool { orphans = h.ResticChildren(); return len(orphans) == 1 }, agenttest.Patience, 20*time.Millisecond)
	// restic gets into the backup, which takes it 8 s and more at 256 KiB/s.
	time.Sleep(time.Second)
	h.Signal(syscall.SIGKILL, agenttest.Patience)

	// restic notices its reader is gone at its next progress report and dies of SIGPIPE; it
	// does not run on unseen behind a dead agent.
	require.Eventually(t, func() bool { return syscall.Kill(orphans[0].PID, 0) != nil }, agenttest.Patience, 100*time.Millisecond,
		"restic outlived the killed agent")
	assert.Equal(t, domain.TaskRunning, cp.Task(task.ID).Status, "nobody told the control plane")

	h.Start(false)
	got := cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)

	runs := cp.Runs(h.AgentID, task.ID)
	require.Len(t, runs, 2, "the interrupted run and the one that completed")
	assert.Equal(t, domain.RunInterrupted, runs[0].Status)
	assert.Contains(t, runs[0].Error, "the agent restarted")
	assert.Equal(t, domain.TaskSucceeded, runs[1].Status)
	require.NotNil(t, runs[1].Summary)
	assert.Equal(t, uint64(4), runs[1].Summary.FilesNew)
	assert.Equal(t, 1, h.SnapshotCount(), "one snapshot: the killed run saved none and the task ran once more")
	require.Len(t, got.Attempts, 2)
	assert.Equal(t, domain.RunInterrupted, got.Attempts[0].Status)
	assert.Equal(t, domain.TaskSucceeded, got.Attempts[1].Status)

	require.Eventually(t, func() bool {
		return strings.Contains(h.Scrape(), `restic_monitor_agent_tasks_total{type="backup",outcome="succeeded"} 1`)
	}, agenttest.Patience, 100*time.Millisecond)
	assert.Empty(t, cp.DeadLetters())
	assert.Equal(t, 0, h.Signal(syscall.SIGTERM, agenttest.Patience))
}

// TestSIGTERMCancelsAndReturnsTheMessage stops the agent with SIGTERM during a backup: after its
// grace period restic is interrupted, the run is reported cancelled, the agent exits 0 and the
// task goes back to the queue for the next start.
func TestSIGTERMCancelsAndReturnsTheMessage(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	h := agenttest.NewHost(t, cp, agentBinary, agenttest.HostOptions{})
	policy := h.SlowPolicy("sigterm", 128)
	h.Start(false)
	task := cp.RunTask(domain.TaskBackup, h.AgentID, policy, "", domain.TaskParams{})
	cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskRunning)
	require.Eventually(t, func() bool { return len(h.ResticChildren()) == 1 }, agenttest.Patience, 20*time.Millisecond)

	assert.Equal(t, 0, h.Signal(syscall.SIGTERM, agenttest.Patience))
	assert.Contains(t, h.Output(), "shutdown grace period over: interrupting restic")
	assert.Equal(t, domain.TaskQueued, cp.Task(task.ID).Status)
	runs := cp.Runs(h.AgentID, task.ID)
	require.Len(t, runs, 1)
	assert.Equal(t, domain.RunInterrupted, runs[0].Status)
	assert.Contains(t, runs[0].Error, "cancelled: the agent is shutting down")

	out, code := h.Command("status")
	assert.Equal(t, 3, code, "status exits 3 when the agent is not running")
	assert.Contains(t, out, "state:      stopped")
}

// TestUnreadableFileMakesThePartialRun backs up a tree with a file the agent cannot read: the run
// is partial, names the file, and still has its snapshot. The agent runs without root's power
// to read any file.
func TestUnreadableFileMakesThePartialRun(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	h := agenttest.NewHost(t, cp, agentBinary, agenttest.HostOptions{})
	src := filepath.Join(h.Dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "readable.txt"), []byte("fine\n"))
	locked := filepath.Join(src, "locked.txt")
	agenttest.WriteFile(t, locked, []byte("secret\n"))
	require.NoError(t, os.Chmod(locked, 0))
	policy := cp.Policy("partial", "main", []string{src}, domain.Retention{KeepLast: 1})
	cp.Assign(policy, h.AgentID)
	h.Start(true)

	task := cp.RunTask(domain.TaskBackup, h.AgentID, policy, "", domain.TaskParams{})
	got := cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskPartial, domain.TaskFailed)
	require.Equal(t, domain.TaskPartial, got.Status, "never succeeded: %s", got.Error)
	runs := cp.Runs(h.AgentID, task.ID)
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
	h := agenttest.NewHost(t, cp, agentBinary, agenttest.HostOptions{})

	out, code := h.Command("enroll", "--url", cp.URL, "--token", cp.EnrollmentToken())
	assert.Equal(t, 78, code)
	assert.Contains(t, out, "enrolled already")

	other := filepath.Join(h.Dir, "other", "agent.yaml")
	cmd := exec.Command(agentBinary, "enroll", "--config", other, "--url", cp.URL, "--token", "rme_bogus")
	cmd.Env = h.Env()
	raw, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Equal(t, 78, cmd.ProcessState.ExitCode(), string(raw))
	assert.Contains(t, string(raw), "wrote a new configuration to "+other, "enroll writes a configuration when there is none")
	assert.Contains(t, string(raw), "enrollment token is unknown, revoked, expired or used up")

	bad := filepath.Join(h.Dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("apiUrl: ftp://x\nlimits: {maxConcurrentTasks: 0}\n"), 0o600))
	cmd = exec.Command(agentBinary, "run", "--config", bad)
	raw, _ = cmd.CombinedOutput()
	assert.Equal(t, 78, cmd.ProcessState.ExitCode())
	assert.Contains(t, string(raw), "apiUrl: must be an http(s) URL")
	assert.Contains(t, string(raw), "limits.maxConcurrentTasks: must be between 1 and 100")

	// install --root lays the service out under a directory, as for an image, and touches no
	// service manager; uninstall takes it away again and keeps the configuration.
	root := filepath.Join(h.Dir, "image")
	for _, f := range []string{h.Config, filepath.Join(h.Dir, "etc", "credentials.json")} {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		agenttest.WriteFile(t, filepath.Join(root, f), raw)
	}
	out, code = h.Command("install", "--root", root)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "skipped (not the system root): systemctl enable --now restic-monitor-agent.service")
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/restic-monitor-agent.service"))
	require.NoError(t, err)
	assert.Contains(t, string(unit), "ExecStart=/usr/local/bin/restic-monitor-agent run --config "+h.Config+"\n")
	assert.Contains(t, string(unit), "TimeoutStopSec=42\n", "shutdown grace 2 s + interrupt grace 10 s + 30 s to report")
	for _, f := range []string{h.Config, filepath.Join(h.Dir, "etc", "credentials.json")} {
		fi, err := os.Stat(filepath.Join(root, f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
	installed, err := os.Stat(filepath.Join(root, "usr/local/bin/restic-monitor-agent"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), installed.Mode().Perm())
	out, code = h.Command("uninstall", "--root", root)
	require.Equal(t, 0, code, out)
	_, err = os.Stat(filepath.Join(root, "usr/local/bin/restic-monitor-agent"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(filepath.Join(root, h.Config))
	assert.NoError(t, err)

	h.Start(false)
	var status string
	require.Eventually(t, func() bool {
		status, code = h.Command("status")
		return code == 0 && strings.Contains(status, "heartbeat:  ") && !strings.Contains(status, "none yet")
	}, agenttest.Patience, 200*time.Millisecond, "status: %s", status)
	assert.Contains(t, status, "state:      idle")
	assert.Contains(t, status, "agent:      "+h.AgentID)
	assert.Contains(t, status, "version process-test, restic 0.18.1")
	assert.Contains(t, status, "tasks:      0 running of at most 1")

	out, code = h.Command("version")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "restic-monitor-agent process-test")
	assert.Contains(t, out, "restic 0.18.1")
	assert.NotContains(t, h.Output(), agenttest.HostPassword)
	creds, err := os.ReadFile(filepath.Join(h.Dir, "etc", "credentials.json"))
	require.NoError(t, err)
	assert.Contains(t, string(creds), `"agentSecret": "rma_`)
	assert.NotContains(t, h.Output(), "rma_", "the agent's secret never reaches its log")
	assert.Equal(t, 0, h.Signal(syscall.SIGTERM, agenttest.Patience))
}
