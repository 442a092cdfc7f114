package main_test

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// TestEveryMessageAndReportTwiceMakesOneBackup runs a scheduled backup and an inventory with a
// control plane that sends every task message twice (as an SDK retry does) and serves every
// report of the agent's twice (as when an answer is lost and the agent sends again). The agent
// runs two tasks at once, so it receives the second copy of the backup while the first runs.
// The backup runs once: one task, one run, one snapshot in restic and in the agent's snapshot
// list, a log without repeated chunks, and no message left in the queue or the dead-letter
// queue.
func TestEveryMessageAndReportTwiceMakesOneBackup(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlaneWith(t, agenttest.Options{SendTasksTwice: true, ServeReportsTwice: true})
	// A copy of a message the agent let go of without deleting it would stay in flight for the
	// visibility timeout, long after the test's deadlines.
	h := agenttest.NewHost(t, cp, agentBinary, agenttest.HostOptions{MaxConcurrentTasks: 2, VisibilityTimeout: 15 * time.Minute})
	cp.SetLimits(h.AgentID, domain.Limits{MaxConcurrentTasks: 2})
	policy := h.SlowPolicy("twice", 512)
	h.Start(false)
	require.Eventually(t, func() bool { return cp.Agent(h.AgentID).Status == domain.AgentOnline }, agenttest.Patience, 200*time.Millisecond,
		"the agent's first heartbeat")

	// The policy's backup comes due now, and one tick sends it.
	ctx := context.Background()
	now := time.Now().UTC()
	slot, err := cp.Store.GetSlot(ctx, cp.Tenant, policy, h.AgentID, domain.SlotBackup)
	require.NoError(t, err)
	slot.NextRunAt = &now
	require.NoError(t, cp.Store.PutSlot(ctx, cp.Tenant, slot))
	sum := cp.Tick(now)
	require.Equal(t, 1, sum.Claimed)
	require.Equal(t, 1, sum.Dispatched)
	tasks, _, err := cp.Store.ListTasks(ctx, cp.Tenant, store.TaskFilter{AgentID: h.AgentID}, store.Page{})
	require.NoError(t, err)
	require.Len(t, tasks, 1, "one task for the claim")
	backup := tasks[0]
	require.Equal(t, domain.TaskBackup, backup.Type)

	got := cp.WaitTask(backup.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed, domain.TaskPartial)
	require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)
	require.Len(t, got.Attempts, 1, "one attempt")
	runs := cp.Runs(h.AgentID, backup.ID)
	require.Len(t, runs, 1, "one run")
	run := runs[0]
	assert.Equal(t, domain.TaskSucceeded, run.Status)
	require.NotNil(t, run.Summary)
	assert.Equal(t, uint64(4), run.Summary.FilesNew)
	lines, seqs := cp.Log(run.ID)
	require.NotEmpty(t, lines)
	for i, seq := range seqs {
		require.Equal(t, int64(i), seq, "each log chunk once, in order")
	}
	assert.Equal(t, int64(len(lines)), run.LogLines, "each line counted once")

	inventory := cp.RunTask(domain.TaskSnapshots, h.AgentID, "", "main", domain.TaskParams{})
	inv := cp.WaitTask(inventory.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, inv.Status, inv.Error)
	require.Len(t, cp.Runs(h.AgentID, inventory.ID), 1)
	var snaps struct {
		Items []domain.Snapshot `json:"items"`
	}
	cp.Call("GET", "/v1/agents/"+h.AgentID+"/snapshots", nil, &snaps, http.StatusOK)
	require.Len(t, snaps.Items, 1, "the agent's snapshot list")
	assert.Equal(t, run.Summary.SnapshotID, snaps.Items[0].ID)
	assert.Equal(t, 1, h.SnapshotCount(), "restic's own list")

	// Every copy of every message was deleted, and none gave up to the dead-letter queue.
	require.Eventually(t, func() bool { return cp.QueueEmpty(h.AgentID) }, 2*agenttest.Patience, time.Second, "the agent's queue empties")
	assert.Empty(t, cp.DeadLetters())
	tasks, _, err = cp.Store.ListTasks(ctx, cp.Tenant, store.TaskFilter{AgentID: h.AgentID}, store.Page{})
	require.NoError(t, err)
	assert.Len(t, tasks, 2, "the backup and the inventory, nothing more")
	require.Eventually(t, func() bool {
		return strings.Contains(h.Scrape(), `restic_monitor_agent_tasks_total{type="backup",outcome="succeeded"} 1`+"\n")
	}, agenttest.Patience, 100*time.Millisecond, "the agent ran the backup once")
	out := h.Output()
	assert.True(t, strings.Contains(out, "another message for a task this process runs") || strings.Contains(out, "the control plane says the task is not to run"),
		"the agent received the second copy")
	assert.Equal(t, 0, h.Signal(syscall.SIGTERM, agenttest.Patience))
}
