package daemon_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/agent/internal/spool"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// slowBackupPolicy is a policy whose backup of a few MiB takes some seconds: its upload is
// limited, so a test can act while restic runs.
func slowBackupPolicy(t *testing.T, cp *agenttest.ControlPlane, a *agent, name string, kbps int) (policyID, src string) {
	t.Helper()
	src = filepath.Join(a.dir, "src-"+name)
	agenttest.RandomTree(t, src, 4, 256<<10)
	policyID = cp.Policy(name, "main", []string{src}, domain.Retention{KeepLast: 10}, func(b map[string]any) { b["uploadKbps"] = kbps })
	cp.Assign(policyID, a.creds.AgentID)
	return policyID, src
}

func spooledResult(a *agent, taskID string) bool {
	_, err := os.Stat(filepath.Join(a.cfg.SpoolDir, spool.ResultKey(taskID)+".json"))
	return err == nil
}

// TestResultSpooledWhileAPIUnreachable takes the API away while a backup runs: the result is
// spooled, the message stays hidden, and once the API is back the result is stored and the
// message deleted. Then the same with the agent restarted in between: the result waits in the
// spool across the restart and nothing runs twice.
func TestResultSpooledWhileAPIUnreachable(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	a := newAgent(t, cp, func(c *config.Config) {
		c.Restic.InterruptGrace = config.Duration(2 * time.Second)
		c.ShutdownGrace = config.Duration(time.Second)
		c.Queue.VisibilityTimeout = config.Duration(6 * time.Second)
	})
	cp.SetVisibilityTimeout(a.creds.AgentID, 6*time.Second)
	// Slow enough that the API is away before the backup ends.
	policy, _ := slowBackupPolicy(t, cp, a, "spooled", 128)
	a.start()

	// The same process delivers once the API is back.
	task := cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{})
	cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskRunning)
	cp.StopAPI()
	require.Eventually(t, func() bool { return spooledResult(a, task.ID) }, agenttest.TaskTimeout, 100*time.Millisecond,
		"the finished backup's result is spooled while the API is away")
	time.Sleep(2 * time.Second) // a few failed deliveries
	cp.StartAPI()
	got := cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)
	require.Eventually(t, func() bool { return !spooledResult(a, task.ID) }, agenttest.Patience, 100*time.Millisecond)
	runs := cp.Runs(a.creds.AgentID, task.ID)
	require.Len(t, runs, 1)
	require.NotNil(t, runs[0].Summary)
	assert.Equal(t, uint64(4), runs[0].Summary.FilesNew)
	lines, seqs := cp.Log(runs[0].ID)
	assert.True(t, agenttest.ContainsLine(lines, `"message_type":"summary"`), "log chunks spooled meanwhile arrived too")
	for i, s := range seqs {
		assert.Equal(t, int64(i), s, "no chunk is missing")
	}
	require.Eventually(t, func() bool { return a.metrics != nil && spoolEmpty(a) }, agenttest.Patience, 100*time.Millisecond)

	// A new process delivers what the old one left.
	second := cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{})
	cp.WaitTask(second.ID, agenttest.TaskTimeout, domain.TaskRunning)
	cp.StopAPI()
	require.Eventually(t, func() bool { return spooledResult(a, second.ID) }, agenttest.TaskTimeout, 100*time.Millisecond)
	require.NoError(t, a.stop(), "the agent stops although its result is not delivered")
	assert.True(t, spooledResult(a, second.ID), "the result outlives the process")
	cp.StartAPI()
	a.start()
	got = cp.WaitTask(second.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)
	runs = cp.Runs(a.creds.AgentID, second.ID)
	require.Len(t, runs, 1, "the backup did not run again")
	assert.Equal(t, domain.TaskSucceeded, runs[0].Status)
	require.Eventually(t, func() bool { return spoolEmpty(a) }, agenttest.Patience, 100*time.Millisecond)
	// The message came back after the restart and was dropped, not run: the task had finished.
	require.Eventually(t, func() bool { return cp.QueueEmpty(a.creds.AgentID) }, agenttest.Patience, 500*time.Millisecond)
	assert.Len(t, cp.Runs(a.creds.AgentID, second.ID), 1)
}

func spoolEmpty(a *agent) bool {
	entries, err := os.ReadDir(a.cfg.SpoolDir)
	return err == nil && len(entries) == 0
}
