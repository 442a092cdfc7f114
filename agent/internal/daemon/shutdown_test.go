package daemon_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// TestShutdownInterruptsAndHandsTheTaskBack stops the agent while a backup runs: after the
// grace period restic is interrupted, the run is recorded as interrupted, the message goes back
// to the queue at once, and the next agent process runs the task to the end.
func TestShutdownInterruptsAndHandsTheTaskBack(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	// The agent keeps the message hidden far longer than the test waits: only handing it back
	// lets the next process have it.
	a := newAgent(t, cp, func(c *config.Config) {
		c.ShutdownGrace = config.Duration(time.Second)
		c.Queue.VisibilityTimeout = config.Duration(time.Hour)
	})
	policy, _ := slowBackupPolicy(t, cp, a, "shutdown", 256)
	a.start()
	task := cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{})
	cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskRunning)

	require.NoError(t, a.stop())
	assert.Equal(t, domain.TaskQueued, cp.Task(task.ID).Status, "the task waits to be started again")
	runs := cp.Runs(a.creds.AgentID, task.ID)
	require.Len(t, runs, 1)
	assert.Equal(t, domain.RunInterrupted, runs[0].Status)
	assert.Contains(t, runs[0].Error, "the agent is shutting down")

	// The message went back to the queue: the next process gets it, long before the hour the
	// agent kept it hidden for would have passed.
	a.start()
	got := cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)
	runs = cp.Runs(a.creds.AgentID, task.ID)
	require.Len(t, runs, 2, "the interrupted run and the one that finished")
	assert.Equal(t, domain.RunInterrupted, runs[0].Status)
	assert.Equal(t, domain.TaskSucceeded, runs[1].Status)
	assert.Equal(t, 2, runs[1].Attempt)
}

// TestOperatorCancelStopsRestic cancels a running backup through the API: the agent learns it
// from its progress reports, interrupts restic, and the task ends cancelled.
func TestOperatorCancelStopsRestic(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	a := newAgent(t, cp)
	policy, _ := slowBackupPolicy(t, cp, a, "cancel", 64)
	a.start()
	task := cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{})
	cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskRunning)
	require.Eventually(t, func() bool {
		runs := cp.Runs(a.creds.AgentID, task.ID)
		return len(runs) == 1 && runs[0].Progress != nil
	}, agenttest.TaskTimeout, 200*time.Millisecond, "restic reports progress")
	cp.Call("POST", "/v1/tasks/"+task.ID+"/cancel", nil, nil, 200)

	require.Eventually(t, func() bool {
		runs := cp.Runs(a.creds.AgentID, task.ID)
		return len(runs) == 1 && runs[0].Status == domain.TaskCancelled
	}, agenttest.TaskTimeout, 200*time.Millisecond, "the run ends cancelled")
	assert.Equal(t, domain.TaskCancelled, cp.Task(task.ID).Status)
	require.Eventually(t, func() bool { return cp.QueueEmpty(a.creds.AgentID) }, agenttest.Patience, 200*time.Millisecond,
		"the message of a cancelled task is deleted")
	assert.Contains(t, a.logs.String(), "an operator cancelled the task")
}
