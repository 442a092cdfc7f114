package daemon_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// TestBadMessagesGoToTheDeadLetterQueue puts messages the agent cannot run on its queue: not
// JSON, a newer schema, an unknown task type, one addressed to another agent, one of its own
// tasks with a field missing. Each ends in the dead-letter queue; the agent's own task is
// reported failed with the reason; and the agent keeps serving: a backup sent meanwhile runs.
func TestBadMessagesGoToTheDeadLetterQueue(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	a := newAgent(t, cp)
	me := a.creds.AgentID

	now := time.Now().UTC()
	valid := func(change func(m map[string]any)) string {
		m := map[string]any{
			"schemaVersion": events.TaskSchemaVersion, "type": events.TaskMessageType, "tenantId": cp.Tenant, "agentId": me,
			"taskId": domain.NewID(now), "taskType": "check", "attempt": 1, "notBefore": now, "deadline": now.Add(time.Hour),
			"repository": "main",
		}
		change(m)
		raw, err := json.Marshal(m)
		require.NoError(t, err)
		return string(raw)
	}
	// A task of this agent's whose message lacks its repository: the agent reports it.
	own, err := cp.Store.CreateTask(context.Background(), cp.Tenant, domain.Task{
		ID: domain.NewID(now), AgentID: me, Repository: "main", Type: domain.TaskCheck, Status: domain.TaskQueued,
		Attempt: 1, MaxRetries: 3, NotBefore: now, Deadline: now.Add(time.Hour), Trigger: "operator",
	})
	require.NoError(t, err)
	bad := map[string]string{
		"not json":       "this is not a task",
		"newer schema":   valid(func(m map[string]any) { m["schemaVersion"] = 99 }),
		"unknown type":   valid(func(m map[string]any) { m["taskType"] = "defragment" }),
		"other agent":    valid(func(m map[string]any) { m["agentId"] = domain.NewID(now.Add(time.Second)) }),
		"other tenant":   valid(func(m map[string]any) { m["tenantId"] = "someone-else" }),
		"missing fields": valid(func(m map[string]any) { m["taskId"] = own.ID; delete(m, "repository") }),
	}
	for _, body := range bad {
		cp.SendRaw(me, body)
	}
	a.start()

	src := t.TempDir()
	agenttest.WriteFile(t, src+"/a.txt", []byte("still serving\n"))
	policy := cp.Policy("still-serving", "main", []string{src}, domain.Retention{KeepLast: 1})
	cp.Assign(policy, me)
	backup := cp.RunTask(domain.TaskBackup, me, policy, "", domain.TaskParams{})
	got := cp.WaitTask(backup.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, got.Status, "the agent runs good tasks while bad ones come and go: %s", got.Error)

	reported := cp.WaitTask(own.ID, agenttest.TaskTimeout, domain.TaskFailed)
	assert.Contains(t, reported.Error, "the agent cannot run this task message")
	assert.Contains(t, reported.Error, "repository is missing")

	var dead []string
	require.Eventually(t, func() bool {
		for _, b := range cp.DeadLetters() {
			if !slices.Contains(dead, b) {
				dead = append(dead, b)
			}
		}
		return len(dead) == len(bad)
	}, agenttest.TaskTimeout, time.Second, "every bad message reaches the dead-letter queue")
	for name, body := range bad {
		assert.Contains(t, dead, body, name)
	}
	require.Eventually(t, func() bool { return cp.QueueEmpty(me) }, agenttest.Patience, time.Second, "nothing is left on the queue")
	assert.Contains(t, a.logs.String(), "rejected a task message")
	assert.Equal(t, 1, strings.Count(a.logs.String(), `"msg":"task started"`), "only the good task started")
	require.NoError(t, a.stop())
}
