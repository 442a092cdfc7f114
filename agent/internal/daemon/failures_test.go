package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// TestWrongPasswordFailsOnceWithResticsMessage: restic exits 12; the run fails with restic's
// message, the task fails for good although the policy allows retries, and the agent does not
// back off (the agent and its backends are fine).
func TestWrongPasswordFailsOnceWithResticsMessage(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	a := newAgent(t, cp)
	src := filepath.Join(a.dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "a.txt"), []byte("a\n"))
	policy := cp.Policy("wrong-password", "main", []string{src}, domain.Retention{KeepLast: 3}, func(b map[string]any) { b["maxRetries"] = 3 })
	cp.Assign(policy, a.creds.AgentID)
	a.start()
	first := cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{})
	require.Equal(t, domain.TaskSucceeded, cp.WaitTask(first.ID, time.Minute, domain.TaskSucceeded, domain.TaskFailed).Status)
	require.NoError(t, a.stop())

	wrong := filepath.Join(a.dir, "wrong-password")
	require.NoError(t, os.WriteFile(wrong, []byte("not the password\n"), 0o600))
	a.cfg.Repositories[0].PasswordFile = wrong
	a.start()
	task := cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{})
	got := cp.WaitTask(task.ID, time.Minute, domain.TaskSucceeded, domain.TaskFailed, domain.TaskRetrying)
	require.Equal(t, domain.TaskFailed, got.Status, "a wrong password is not retried")
	assert.Contains(t, got.Error, "wrong password or no key found")
	assert.Contains(t, got.Error, "not retried")

	runs := cp.Runs(a.creds.AgentID, task.ID)
	require.Len(t, runs, 1, "one run, no retry")
	run := runs[0]
	assert.Equal(t, domain.TaskFailed, run.Status)
	require.NotNil(t, run.ExitCode)
	assert.Equal(t, 12, *run.ExitCode)
	assert.Contains(t, run.Error, "restic backup: wrong password (exit code 12): Fatal: wrong password or no key found")
	assert.NotContains(t, run.Error, repoPassword)
	lines, _ := cp.Log(run.ID)
	assert.True(t, agenttest.ContainsLine(lines, "wrong password"), "restic's output is in the run's log")

	require.Eventually(t, func() bool { return strings.Contains(cp.Agent(a.creds.AgentID).LastError, "wrong password") },
		2*agenttest.HeartbeatInterval, 100*time.Millisecond, "the heartbeat reports the last error")
	assert.Nil(t, cp.Agent(a.creds.AgentID).BackoffUntil, "a wrong password is not a reason to stop taking work")
}

// TestRepeatedTransientFailuresPutTheAgentIntoBackoff: tasks that fail in a way that may pass
// (here restic cannot even be started) make the agent back off after the configured number; it
// says so in its heartbeat, takes no new task meanwhile, and leaves backoff on its own.
func TestRepeatedTransientFailuresPutTheAgentIntoBackoff(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	a := newAgent(t, cp, func(c *config.Config) {
		c.Restic.Binary = "/nonexistent/restic"
		c.Retry.MaxRetries = 1
		c.Retry.AgentBackoffAfter = 2
		c.Retry.AgentBackoffBase = config.Duration(8 * time.Second)
		c.Retry.AgentBackoffCap = config.Duration(8 * time.Second)
	})
	a.start()
	var tasks []domain.Task
	for range 2 {
		task := cp.RunTask(domain.TaskCheck, a.creds.AgentID, "", "main", domain.TaskParams{})
		got := cp.WaitTask(task.ID, time.Minute, domain.TaskRetrying, domain.TaskFailed, domain.TaskSucceeded)
		require.Equal(t, domain.TaskRetrying, got.Status, "a failure that may pass is retried by the control plane: %s", got.Error)
		assert.Contains(t, got.Error, "/nonexistent/restic")
		tasks = append(tasks, task)
	}
	runs := cp.Runs(a.creds.AgentID, tasks[0].ID)
	require.Len(t, runs, 1)
	lines, _ := cp.Log(runs[0].ID)
	assert.True(t, agenttest.ContainsLine(lines, "try 1 failed"), "the agent tried once more itself before reporting: %v", lines)

	var backoffUntil *time.Time
	require.Eventually(t, func() bool {
		backoffUntil = cp.Agent(a.creds.AgentID).BackoffUntil
		return backoffUntil != nil
	}, 15*time.Second, 200*time.Millisecond, "the heartbeat reports the backoff")
	assert.WithinDuration(t, time.Now().Add(8*time.Second), *backoffUntil, 8*time.Second)
	assert.Contains(t, cp.Agent(a.creds.AgentID).BackoffReason, "tasks keep failing")

	// While backing off the agent takes no work.
	waiting := cp.RunTask(domain.TaskCheck, a.creds.AgentID, "", "main", domain.TaskParams{})
	time.Sleep(time.Until(*backoffUntil) - time.Second)
	assert.Equal(t, domain.TaskQueued, cp.Task(waiting.ID).Status, "no task is taken while backing off")
	st := a.status()
	assert.Equal(t, "backing-off", st.State)

	// Backoff ends on its own and work resumes: the waiting task is taken and fails like the others.
	cp.WaitTask(waiting.ID, 30*time.Second, domain.TaskRetrying, domain.TaskFailed)
	assert.True(t, strings.Contains(a.logs.String(), "backing off"))
}
