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
	require.Equal(t, domain.TaskSucceeded, cp.WaitTask(first.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed).Status)
	require.NoError(t, a.stop())

	wrong := filepath.Join(a.dir, "wrong-password")
	require.NoError(t, os.WriteFile(wrong, []byte("not the password\n"), 0o600))
	a.cfg.Repositories[0].PasswordFile = wrong
	a.start()
	task := cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{})
	got := cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed, domain.TaskRetrying)
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
		agenttest.Patience, 100*time.Millisecond, "the heartbeat reports the last error")
	assert.Nil(t, cp.Agent(a.creds.AgentID).BackoffUntil, "a wrong password is not a reason to stop taking work")
}

// TestRepeatedTransientFailuresPutTheAgentIntoBackoff: tasks that fail in a way that may pass
// (here restic cannot even be started) make the agent back off after the configured number; it
// says so in its heartbeat, takes no new task meanwhile, and leaves backoff on its own.
func TestRepeatedTransientFailuresPutTheAgentIntoBackoff(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	// Long enough for the test to see the backoff on a loaded machine, short enough to wait out;
	// with its jitter the agent backs off for half of it or more.
	const backoff = 30 * time.Second
	a := newAgent(t, cp, func(c *config.Config) {
		c.Restic.Binary = "/nonexistent/restic"
		c.Retry.MaxRetries = 1
		c.Retry.AgentBackoffAfter = 2
		c.Retry.AgentBackoffBase = config.Duration(backoff)
		c.Retry.AgentBackoffCap = config.Duration(backoff)
	})
	a.start()
	var tasks []domain.Task
	for range 2 {
		task := cp.RunTask(domain.TaskCheck, a.creds.AgentID, "", "main", domain.TaskParams{})
		got := cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskRetrying, domain.TaskFailed, domain.TaskSucceeded)
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
	}, agenttest.Patience, 200*time.Millisecond, "the heartbeat reports the backoff")
	last := cp.Runs(a.creds.AgentID, tasks[1].ID)
	require.Len(t, last, 1)
	require.NotNil(t, last[0].FinishedAt)
	// The agent starts its backoff when the task fails, just before it reports the result.
	gap := backoffUntil.Sub(*last[0].FinishedAt)
	assert.Greater(t, gap, backoff/4, "backs off until %s after the failure at %s", backoffUntil, last[0].FinishedAt)
	assert.LessOrEqual(t, gap, backoff+time.Second, "backs off until %s after the failure at %s", backoffUntil, last[0].FinishedAt)
	assert.Contains(t, cp.Agent(a.creds.AgentID).BackoffReason, "tasks keep failing")
	require.Eventually(t, func() bool { return a.status().State == "backing-off" }, agenttest.Patience, 50*time.Millisecond,
		"the status says the agent backs off")

	// While backing off the agent takes no work: a task sent meanwhile starts only once the
	// backoff is over, on its own, and fails like the others.
	waiting := cp.RunTask(domain.TaskCheck, a.creds.AgentID, "", "main", domain.TaskParams{})
	cp.WaitTask(waiting.ID, agenttest.TaskTimeout, domain.TaskRetrying, domain.TaskFailed)
	runs = cp.Runs(a.creds.AgentID, waiting.ID)
	require.Len(t, runs, 1)
	// Stored times keep whole seconds or less; the agent's and the API's clock are this machine's.
	assert.False(t, runs[0].StartedAt.Before(backoffUntil.Add(-time.Second)),
		"started at %s, while backing off until %s", runs[0].StartedAt, backoffUntil)
	assert.True(t, strings.Contains(a.logs.String(), "backing off"))
}
