package httpapi_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// The largest reports the limits allow must be stored, not fail in DynamoDB (400 KB items,
// numbers no smaller than 1e-130) with a 500.
func TestTheLargestValidReportsAreStored(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	rnd := rand.New(rand.NewPCG(3, 5))
	// Four-byte characters make the most bytes of a character limit.
	wide := func(chars int) string { return strings.Repeat("𝄞", chars) }

	t.Run("a tiny fraction of progress", func(t *testing.T) {
		task := f.queuedTask(a.ID)
		st := f.start(a, task.ID, "s", "d", 201)
		files := make([]string, 20)
		for i := range files {
			files[i] = strings.Repeat("p", 4096)
		}
		res := h.call("POST", "/v1/agent/tasks/"+task.ID+"/progress", a.Credential, map[string]any{"runId": st.RunID,
			"progress": map[string]any{"percentDone": 1e-300, "currentFiles": files}})
		statusIs(t, 200, res, "progress")
		assert.Zero(t, f.run(st.RunID).Progress.PercentDone)
	})

	t.Run("fifty attempts with the longest errors", func(t *testing.T) {
		// A task that was started 49 times already, each attempt with the longest error it keeps.
		task := f.queuedTask(a.ID, func(t *domain.Task) {
			t.MaxRetries = 20
			for i := range 49 {
				at := h.clock
				t.Attempts = append(t.Attempts, domain.Attempt{Number: i + 1, RunID: domain.NewID(at), StartedAt: &at, FinishedAt: &at,
					Status: domain.RunInterrupted, Error: strings.Repeat("e", 1024)})
			}
		})
		st := f.start(a, task.ID, "s", "d", 201)
		require.Equal(t, 50, st.Attempt)
		paths := make([]string, 32)
		for i := range paths {
			paths[i] = "/" + strings.Repeat("u", 4095)
		}
		out := f.result(a, task.ID, map[string]any{"runId": st.RunID, "outcome": "failed", "error": wide(4096), "retryable": true,
			"unreadablePaths": paths, "summary": map[string]any{"durationSeconds": 1e-300}}, 200)
		assert.Equal(t, domain.TaskRetrying, out.TaskStatus)
		got := f.task(task.ID)
		assert.Len(t, got.Attempts, 50)
		assert.LessOrEqual(t, len(got.Attempts[49].Error), 1024, "an attempt repeats only the start of its run's error")
		run := f.run(st.RunID)
		assert.Len(t, run.Error, 16<<10)
		assert.Zero(t, run.Summary.DurationSeconds)

		// The next start lists fifty attempts still: the oldest goes.
		h.clock = *got.NextRetryAt
		_, err := h.store.TransitionTask(context.Background(), "acme", task.ID, domain.TaskQueued, nil)
		require.NoError(t, err)
		next := f.start(a, task.ID, "s", "d2", 201)
		assert.Equal(t, 51, next.Attempt)
		got = f.task(task.ID)
		require.Len(t, got.Attempts, 50)
		assert.Equal(t, 2, got.Attempts[0].Number)
	})

	t.Run("a log chunk of escaped control characters", func(t *testing.T) {
		task := f.queuedTask(a.ID)
		st := f.start(a, task.ID, "s", "d", 201)
		// Escaped six times over, as many as fit in a body.
		b := make([]byte, 160_000)
		for i := range b {
			b[i] = byte(rnd.IntN(32))
		}
		res := h.call("POST", "/v1/agent/runs/"+st.RunID+"/logs", a.Credential, map[string]any{"seq": 0, "lines": []string{string(b)}})
		statusIs(t, 201, res, "chunk")
	})

	t.Run("a full snapshot report with the longest paths", func(t *testing.T) {
		// As many of the largest snapshots as fit in a body.
		snaps := make([]map[string]any, 14)
		for i := range snaps {
			paths := make([]string, 16)
			for j := range paths {
				paths[j] = "/" + strings.Repeat(string(rune('a'+j)), 4095)
			}
			id := strings.Repeat(string("0123456789abcdef"[i%16]), 8) + strings.Repeat("0", 56-2) + string("0123456789abcdef"[i/16]) + "0"
			snaps[i] = map[string]any{"id": id, "time": h.clock.Add(-time.Duration(i) * time.Hour), "hostname": strings.Repeat("h", 253),
				"paths": paths, "tags": []string{wide(255)}}
		}
		res := h.call("POST", "/v1/agent/snapshots", a.Credential, map[string]any{"repository": "main", "snapshots": snaps})
		statusIs(t, 200, res, "snapshots")
		require.JSONEq(t, `{"repository":"main","stored":14,"removed":0}`, res.Body)
	})

	t.Run("a heartbeat with the longest texts", func(t *testing.T) {
		res := h.call("POST", "/v1/agent/heartbeat", a.Credential, map[string]any{"lastError": wide(4096),
			"backoffUntil": h.clock.Add(time.Hour), "backoffReason": wide(500)})
		statusIs(t, 200, res, "heartbeat")
	})
}
