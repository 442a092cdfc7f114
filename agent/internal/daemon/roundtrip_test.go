package daemon_test

import (
	"bufio"
	"encoding/json"
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

// TestRoundTrip runs backup → backup → forget → check → restore → snapshots through the real
// API, queue and restic, and checks what the control plane recorded and that the restored files
// are the backed-up ones, byte for byte.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	// Restores may go anywhere under the agent's own directory.
	a := newAgent(t, cp, func(c *config.Config) { c.RestoreRoots = []string{filepath.Dir(c.StateDir)} })
	a.start()

	src := filepath.Join(a.dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "notes.txt"), []byte("first version\n"))
	agenttest.WriteFile(t, filepath.Join(src, "docs", "readme.md"), []byte("# unchanged\n"))
	agenttest.RandomTree(t, filepath.Join(src, "data"), 3, 48<<10)
	policy := cp.Policy("roundtrip", "main", []string{src}, domain.Retention{KeepLast: 1}, func(b map[string]any) {
		b["tags"] = []string{"daily"}
		b["excludes"] = []string{"*.tmp"}
	})
	cp.Assign(policy, a.creds.AgentID)
	agenttest.WriteFile(t, filepath.Join(src, "scratch.tmp"), []byte("excluded\n"))

	first := cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{})
	done := cp.WaitTask(first.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, done.Status, done.Error)
	runs := cp.Runs(a.creds.AgentID, first.ID)
	require.Len(t, runs, 1)
	run := runs[0]
	require.NotNil(t, run.Summary)
	assert.Regexp(t, `^[0-9a-f]{64}$`, run.Summary.SnapshotID)
	assert.Equal(t, uint64(5), run.Summary.FilesNew, "notes, readme and three data files; the .tmp file is excluded")
	assert.Positive(t, run.Summary.DataAdded)
	assert.Equal(t, domain.TaskSucceeded, run.Status)
	lines, seqs := cp.Log(run.ID)
	require.NotEmpty(t, lines, "restic's output reached the run's log")
	for i, s := range seqs {
		assert.Equal(t, int64(i), s, "log chunks are numbered from 0 without gaps")
	}
	assert.True(t, agenttest.ContainsLine(lines, "initialised the repository"), "the log says the repository was created")
	assert.True(t, agenttest.ContainsLine(lines, `"message_type":"summary"`))
	for _, l := range lines {
		assert.NotContains(t, l, repoPassword)
	}

	agenttest.WriteFile(t, filepath.Join(src, "notes.txt"), []byte("second version, longer\n"))
	second := cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{})
	require.Equal(t, domain.TaskSucceeded, cp.WaitTask(second.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed).Status)
	secondRun := cp.Runs(a.creds.AgentID, second.ID)[0]
	assert.Equal(t, uint64(1), secondRun.Summary.FilesChanged)
	assert.Equal(t, uint64(4), secondRun.Summary.FilesUnmodified)

	forget := cp.RunTask(domain.TaskForget, a.creds.AgentID, policy, "", domain.TaskParams{Prune: true})
	f := cp.WaitTask(forget.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, f.Status, f.Error)
	forgetLog, _ := cp.Log(cp.Runs(a.creds.AgentID, forget.ID)[0].ID)
	assert.True(t, agenttest.ContainsLine(forgetLog, "kept 1 snapshots, removed 1"), "forget applied keepLast 1: %v", forgetLog)

	check := cp.RunTask(domain.TaskCheck, a.creds.AgentID, "", "main", domain.TaskParams{ReadDataSubset: "100%"})
	c := cp.WaitTask(check.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, c.Status, c.Error)

	inventory := cp.RunTask(domain.TaskSnapshots, a.creds.AgentID, "", "main", domain.TaskParams{})
	require.Equal(t, domain.TaskSucceeded, cp.WaitTask(inventory.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed).Status)
	var snaps struct {
		Items []domain.Snapshot `json:"items"`
	}
	cp.Call("GET", "/v1/agents/"+a.creds.AgentID+"/snapshots", nil, &snaps, 200)
	require.Len(t, snaps.Items, 1, "forget kept one snapshot and the inventory says so")
	assert.Equal(t, secondRun.Summary.SnapshotID, snaps.Items[0].ID)
	assert.Equal(t, "main", snaps.Items[0].Repository)
	assert.Equal(t, []string{"daily"}, snaps.Items[0].Tags)

	target := filepath.Join(a.dir, "restored")
	restore := cp.RunTask(domain.TaskRestore, a.creds.AgentID, "", "main", domain.TaskParams{SnapshotID: "latest", Target: target, Verify: true})
	r := cp.WaitTask(restore.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, r.Status, r.Error)
	require.NoError(t, os.Remove(filepath.Join(src, "scratch.tmp")))
	agenttest.AssertSameTree(t, src, filepath.Join(target, src))

	// Every message was deleted after its result was stored.
	require.NoError(t, a.stop())
	msgs, err := cp.Queues.DeadLetters(t.Context(), 10)
	require.NoError(t, err)
	assert.Empty(t, msgs)
	require.Eventually(t, func() bool { return cp.QueueEmpty(a.creds.AgentID) }, agenttest.Patience, time.Second, "the agent's queue empties")

	// The agent's own log is JSON lines naming tenant, agent and task, and holds no secret.
	sawTask := false
	sc := bufio.NewScanner(strings.NewReader(a.logs.String()))
	for sc.Scan() {
		var entry map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &entry), sc.Text())
		assert.Equal(t, cp.Tenant, entry["tenant_id"])
		assert.Equal(t, a.creds.AgentID, entry["agent_id"])
		sawTask = sawTask || entry["task_id"] == first.ID
		assert.NotContains(t, sc.Text(), repoPassword)
		assert.NotContains(t, sc.Text(), a.creds.AgentSecret)
	}
	assert.True(t, sawTask)
}
