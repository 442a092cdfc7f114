package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// TestEveryReportSentTwiceIsTakenOnce sends each of an agent's reports of one backup twice, as
// an agent does when an answer is lost: the second of each is accepted and changes nothing. The
// store ends with one run of one attempt, its progress, its log counted once, its result, and
// one inventory.
func TestEveryReportSentTwiceIsTakenOnce(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("web-1")
	task := f.queuedTask(a.ID)
	ctx := context.Background()
	_, usageBefore, err := h.store.GetTenant(ctx, "acme")
	require.NoError(t, err)
	twice := func(path string, body any, first, again int) (response, response) {
		t.Helper()
		r1 := h.call("POST", path, a.Credential, body)
		statusIs(t, first, r1, path)
		r2 := h.call("POST", path, a.Credential, body)
		statusIs(t, again, r2, path, " again")
		return r1, r2
	}

	st := f.start(a, task.ID, "session-1", "msg-1/1", 201)
	again := f.start(a, task.ID, "session-1", "msg-1/1", 200)
	assert.Equal(t, st.RunID, again.RunID, "the same start is the same run")
	assert.True(t, again.Repeated)

	progress := map[string]any{"runId": st.RunID, "progress": map[string]any{"percentDone": 0.5, "filesDone": 2, "totalFiles": 4}}
	r1, r2 := twice("/v1/agent/tasks/"+task.ID+"/progress", progress, 200, 200)
	assert.JSONEq(t, r1.Body, r2.Body)
	heartbeat := map[string]any{"runningTasks": []map[string]any{{"taskId": task.ID, "runId": st.RunID, "progress": progress["progress"]}}}
	r1, r2 = twice("/v1/agent/heartbeat", heartbeat, 200, 200)
	assert.JSONEq(t, r1.Body, r2.Body)
	require.NotNil(t, f.run(st.RunID).Progress)
	assert.Equal(t, domain.Progress{PercentDone: 0.5, FilesDone: 2, TotalFiles: 4}, *f.run(st.RunID).Progress)

	chunk := map[string]any{"seq": 0, "lines": []string{"open repository", "snapshot 4f8a2c1e saved"}}
	_, r2 = twice("/v1/agent/runs/"+st.RunID+"/logs", chunk, 201, 200)
	assert.JSONEq(t, `{"runId":"`+st.RunID+`","seq":0,"stored":false}`, r2.Body)

	h.clock = h.clock.Add(time.Minute)
	result := map[string]any{"runId": st.RunID, "outcome": "succeeded", "exitCode": 0}
	first := f.result(a, task.ID, result, 200)
	repeated := f.result(a, task.ID, result, 200)
	assert.False(t, first.Repeated)
	assert.True(t, repeated.Repeated)
	assert.Equal(t, domain.TaskSucceeded, repeated.TaskStatus)

	snap := map[string]any{"id": strings.Repeat("4f8a2c1e", 8), "time": h.clock, "hostname": "web-1", "paths": []string{"/srv"}}
	r1, r2 = twice("/v1/agent/snapshots", map[string]any{"repository": "main", "snapshots": []map[string]any{snap}}, 200, 200)
	assert.JSONEq(t, `{"repository":"main","stored":1,"removed":0}`, r1.Body)
	assert.JSONEq(t, r1.Body, r2.Body)

	got := f.task(task.ID)
	assert.Equal(t, domain.TaskSucceeded, got.Status)
	require.Len(t, got.Attempts, 1, "one attempt")
	assert.Equal(t, domain.TaskSucceeded, got.Attempts[0].Status)
	runs := f.runsOf(a.ID)
	require.Len(t, runs, 1, "one run")
	assert.Equal(t, domain.TaskSucceeded, runs[0].Status)
	assert.Equal(t, int64(2), runs[0].LogLines, "the chunk counted once")
	chunks, _, err := h.store.ListLog(ctx, "acme", st.RunID, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, chunks, 1)
	_, usage, err := h.store.GetTenant(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, usageBefore.LogLines+2, usage.LogLines, "the tenant's usage counted once")
	snaps, _, err := h.store.ListSnapshots(ctx, "acme", a.ID, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, snaps, 1, "one snapshot in the inventory")
	assert.Equal(t, strings.Repeat("4f8a2c1e", 8), snaps[0].ID)
}
