// Package e2e_test walks restic-monitor's real path end to end: the control plane on the test
// endpoint (the same pieces make dev runs), the real agent binary as a child process, and real
// restic backing up, forgetting, checking and restoring a real folder.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"

	"crypto/rand"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/devstack"
	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// resticBinary finds the restic make restic built.
func resticBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("RESTIC_BIN")
	if p == "" {
		p = filepath.Join("..", "bin", "restic")
	}
	abs, err := filepath.Abs(p)
	require.NoError(t, err)
	if _, err := os.Stat(abs); err != nil {
		if testenv.Required() {
			t.Fatalf("restic not found at %s: run make restic", abs)
		}
		t.Skipf("restic not found at %s: run make restic", abs)
	}
	return abs
}

// buildAgent builds the real agent binary.
func buildAgent(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restic-monitor-agent")
	cmd := exec.Command("go", "build", "-o", out, "../agent/cmd/restic-monitor-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "build agent: %s", b)
	return out
}

type run struct {
	ID       string `json:"id"`
	TaskID   string `json:"taskId"`
	PolicyID string `json:"policyId"`
	Type     string `json:"type"`
	Status   string `json:"status"`
	Error    string `json:"error"`
	Summary  *struct {
		SnapshotID   string `json:"snapshotId"`
		FilesNew     int    `json:"filesNew"`
		FilesChanged int    `json:"filesChanged"`
		DataAdded    int64  `json:"dataAdded"`
	} `json:"summary"`
}

type task struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Attempt  int    `json:"attempt"`
	Error    string `json:"error"`
	Attempts []any  `json:"attempts"`
}

// waitFor polls until cond holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// finishedTask waits for a task to reach a final state and returns it.
func finishedTask(t *testing.T, c devstack.Client, id string) task {
	t.Helper()
	var tk task
	waitFor(t, "task "+id+" to finish", 3*time.Minute, func() bool {
		require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/tasks/"+id, nil, &tk))
		switch tk.Status {
		case "succeeded", "partial", "failed", "cancelled", "expired":
			return true
		}
		return false
	})
	return tk
}

func runsOf(t *testing.T, c devstack.Client, policyID string) []run {
	t.Helper()
	var page struct {
		Items []run `json:"items"`
	}
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/runs?policyId="+policyID+"&limit=100", nil, &page))
	return page.Items
}

func runTask(t *testing.T, c devstack.Client, body map[string]any) string {
	t.Helper()
	var tk task
	require.NoError(t, c.Do(context.Background(), http.MethodPost, "/v1/tasks", body, &tk))
	return tk.ID
}

// resticSnapshots lists the repository's snapshots with restic itself, not through the agent.
func resticSnapshots(t *testing.T, restic, repo, passwordFile string) []map[string]any {
	t.Helper()
	cmd := exec.Command(restic, "snapshots", "--json", "--no-lock")
	cmd.Env = []string{"RESTIC_REPOSITORY=" + repo, "RESTIC_PASSWORD_FILE=" + passwordFile, "HOME=" + t.TempDir(), "RESTIC_CACHE_DIR=" + t.TempDir()}
	var out bytes.Buffer
	cmd.Stdout = &out
	require.NoError(t, cmd.Run())
	var snaps []map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &snaps))
	return snaps
}

// sameTree asserts that every file under want has an identical copy under got.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	require.NoError(t, filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, err := os.ReadFile(p)
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(got, rel))
		require.NoError(t, err, "restored copy of %s", rel)
		assert.True(t, bytes.Equal(a, b), "restored %s differs from the source", rel)
		n++
		return nil
	}))
	require.Positive(t, n)
}

func TestTheRealPath(t *testing.T) {
	awsCfg := testenv.AWS(t)
	restic := resticBinary(t)
	agentBinary := buildAgent(t)
	ctx := context.Background()
	dir := t.TempDir()
	started := time.Now()

	// The control plane, as make dev runs it, on its own table and stage, with the notifier
	// reading the bus through its queue and allowed to reach the test's receiver on 127.0.0.1.
	table := testenv.UniqueName("rm-e2e-")
	secretKey := make([]byte, notify.SecretKeyBytes)
	_, _ = rand.Read(secretKey)
	stack, err := devstack.Start(ctx, awsCfg, devstack.Options{
		Addr: "127.0.0.1:0", Table: table, Stage: "e" + testenv.UniqueName("")[:6], HeartbeatInterval: 5 * time.Second,
		Progress: io.Discard, Notify: notify.Config{SecretKey: secretKey, AllowPrivate: true},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = stack.Close() })

	// Tenant and admin key; an enrollment token and the agent's enrollment come with the demo.
	tenant, err := stack.EnsureTenant(ctx, "e2e", filepath.Join(dir, "tenant.json"))
	require.NoError(t, err)
	c := devstack.Client{URL: stack.URL, Key: tenant.APIKey}

	source := filepath.Join(dir, "source")
	require.NoError(t, devstack.WriteDemoFiles(source))
	repo := filepath.Join(dir, "repo")
	password := filepath.Join(dir, "password")
	wrongPassword := filepath.Join(dir, "wrong-password")
	require.NoError(t, os.WriteFile(password, []byte("correct horse battery staple\n"), 0o600))
	require.NoError(t, os.WriteFile(wrongPassword, []byte("not the password\n"), 0o600))
	var agentLog bytes.Buffer
	agent := &devstack.Agent{
		Binary: agentBinary, Dir: filepath.Join(dir, "agent"), ResticBinary: restic, Output: &syncWriter{w: &agentLog},
		HeartbeatInterval: 5 * time.Second, QueueWait: time.Second,
		Repositories: []devstack.AgentRepository{
			{Name: "demo", Location: repo, PasswordFile: password, Initialize: true},
			// The same repository with the wrong password: its policy must fail without retries.
			{Name: "wrong-password", Location: repo, PasswordFile: wrongPassword},
		},
		RestoreRoots: []string{dir},
	}
	t.Cleanup(func() {
		_ = agent.Kill()
		if t.Failed() {
			t.Logf("agent log:\n%s", agentLog.String())
		}
	})
	require.NoError(t, agent.WriteConfig(stack.URL))

	// Policy with schedule and retention, enrollment, assignment.
	demo, fresh, err := devstack.SetUpDemo(ctx, c, agent, source, "1m")
	require.NoError(t, err)
	require.True(t, fresh)
	require.NoError(t, c.Do(ctx, http.MethodPatch, "/v1/policies/"+demo.PolicyID, map[string]any{
		// Keep exactly the last two: restic keeps the oldest snapshot of an hourly rule that has
		// fewer hours than it asks for, so the demo's hourly rule goes (null removes it).
		"retention": map[string]any{"keepLast": 2, "keepHourly": nil}, "version": policyVersion(t, c, demo.PolicyID),
	}, nil))
	require.NoError(t, agent.Start())

	// Ticks dispatch the scheduled backup once its slot comes due (within the minute); the agent
	// runs it. The test ticks every few seconds, in real time, instead of every minute.
	var agentView struct {
		Status string `json:"status"`
	}
	waitFor(t, "the agent's first heartbeat", time.Minute, func() bool {
		require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/agents/"+demo.AgentID, nil, &agentView))
		return agentView.Status == "online"
	})
	var first run
	lastTick := time.Time{}
	waitFor(t, "the scheduled backup to succeed", 3*time.Minute, func() bool {
		if time.Since(lastTick) > 3*time.Second {
			require.NoError(t, stack.Tick(ctx, time.Now()))
			lastTick = time.Now()
		}
		for _, r := range runsOf(t, c, demo.PolicyID) {
			if r.Type == "backup" && r.Status == "succeeded" {
				first = r
				return true
			}
		}
		return false
	})
	require.NotNil(t, first.Summary, "the run carries restic's summary")
	assert.NotEmpty(t, first.Summary.SnapshotID)
	assert.Positive(t, first.Summary.FilesNew)
	t.Logf("first scheduled backup done %s after start", time.Since(started).Round(time.Second))

	// Change a file; the next backup sees exactly that change.
	require.NoError(t, os.WriteFile(filepath.Join(source, "notes", "today.txt"), []byte("changed for the second backup\n"), 0o644))
	second := finishedTask(t, c, runTask(t, c, map[string]any{"type": "backup", "agentId": demo.AgentID, "policyId": demo.PolicyID, "params": map[string]any{}}))
	require.Equal(t, "succeeded", second.Status, second.Error)
	var secondRun run
	for _, r := range runsOf(t, c, demo.PolicyID) {
		if r.TaskID == second.ID {
			secondRun = r
		}
	}
	require.NotNil(t, secondRun.Summary)
	assert.Equal(t, 1, secondRun.Summary.FilesChanged)
	assert.Zero(t, secondRun.Summary.FilesNew)
	third := finishedTask(t, c, runTask(t, c, map[string]any{"type": "backup", "agentId": demo.AgentID, "policyId": demo.PolicyID, "params": map[string]any{}}))
	require.Equal(t, "succeeded", third.Status, third.Error)
	require.Len(t, resticSnapshots(t, restic, repo, password), 3)

	// Forget keeps what the retention says: the last two.
	forget := finishedTask(t, c, runTask(t, c, map[string]any{"type": "forget", "agentId": demo.AgentID, "policyId": demo.PolicyID, "params": map[string]any{"prune": true}}))
	require.Equal(t, "succeeded", forget.Status, forget.Error)
	snaps := resticSnapshots(t, restic, repo, password)
	require.Len(t, snaps, 2)
	for _, s := range snaps {
		assert.NotEqual(t, first.Summary.SnapshotID, s["id"], "the oldest snapshot was forgotten")
	}

	// Check passes.
	check := finishedTask(t, c, runTask(t, c, map[string]any{"type": "check", "agentId": demo.AgentID, "policyId": demo.PolicyID, "params": map[string]any{"readDataSubset": "100%"}}))
	require.Equal(t, "succeeded", check.Status, check.Error)

	// Restore into a temporary folder is byte-identical to the source.
	target := filepath.Join(dir, "restored")
	restore := finishedTask(t, c, runTask(t, c, map[string]any{"type": "restore", "agentId": demo.AgentID, "policyId": demo.PolicyID,
		"params": map[string]any{"snapshotId": "latest", "target": target, "verify": true}}))
	require.Equal(t, "succeeded", restore.Status, restore.Error)
	sameTree(t, source, filepath.Join(target, source))

	// A policy on the repository with the wrong password fails with restic's error, once.
	var bad struct {
		ID string `json:"id"`
	}
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/repositories", map[string]any{"name": "wrong-password", "backend": "local", "location": repo}, nil))
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/policies", map[string]any{
		"name": "wrong-password", "repository": "wrong-password", "paths": []string{source},
		"schedule": map[string]any{"interval": "1h"}, "retention": map[string]any{"keepLast": 1}, "maxRetries": 3,
	}, &bad))
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/policies/"+bad.ID+"/agents", map[string]any{"agentIds": []string{demo.AgentID}}, nil))

	// An operator's webhook for every run outcome of that policy, on a local receiver.
	hook := newHookReceiver(t)
	var channel struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/notification-channels", map[string]any{
		"name": "e2e-hook", "kind": "webhook", "url": hook.URL + "/hook",
		"rules": map[string]any{
			"eventTypes": []string{"run.succeeded", "run.partial", "run.failed", "check.failed", "repository.locked"},
			"policyIds":  []string{bad.ID},
		},
	}, &channel))
	require.NotEmpty(t, channel.Secret, "the signing secret is shown at creation")

	failed := finishedTask(t, c, runTask(t, c, map[string]any{"type": "backup", "agentId": demo.AgentID, "policyId": bad.ID, "params": map[string]any{}}))
	require.Equal(t, "failed", failed.Status)
	assert.Equal(t, 1, failed.Attempt, "a wrong password is not retried")
	badRuns := runsOf(t, c, bad.ID)
	require.Len(t, badRuns, 1)
	assert.Equal(t, "failed", badRuns[0].Status)
	assert.Contains(t, strings.ToLower(badRuns[0].Error), "wrong password")

	// The run's event waits in the outbox for a tick, goes to the bus, through the rule's queue
	// to the notifier, and from there to the receiver, signed.
	// (An emulator started without KUMO_PORT set to its own port never delivers to the queue.)
	waitFor(t, "the run.failed webhook", 2*time.Minute, func() bool {
		if time.Since(lastTick) > 3*time.Second {
			require.NoError(t, stack.Tick(ctx, time.Now()))
			lastTick = time.Now()
		}
		return len(hook.received()) > 0
	})
	settleNotifications(t, stack)
	got := hook.received()
	require.Len(t, got, 1, "exactly one delivery for the failed run")
	require.NoError(t, notify.Verify(channel.Secret, got[0].signature, got[0].body, time.Now()), "the signature verifies with the secret shown at creation")
	var delivery struct {
		ChannelID string `json:"channelId"`
		EventType string `json:"eventType"`
		Count     int    `json:"count"`
		Events    []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			Data struct {
				RunID    string `json:"runId"`
				PolicyID string `json:"policyId"`
				AgentID  string `json:"agentId"`
				Outcome  string `json:"outcome"`
				ExitCode *int   `json:"exitCode"`
				Reason   string `json:"reason"`
				Error    string `json:"error"`
			} `json:"data"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(got[0].body, &delivery), "body: %s", got[0].body)
	assert.Equal(t, channel.ID, delivery.ChannelID)
	assert.Equal(t, "run.failed", delivery.EventType)
	require.Equal(t, 1, delivery.Count)
	require.Len(t, delivery.Events, 1)
	ev := delivery.Events[0].Data
	assert.Equal(t, badRuns[0].ID, ev.RunID)
	assert.Equal(t, bad.ID, ev.PolicyID)
	assert.Equal(t, demo.AgentID, ev.AgentID)
	assert.Equal(t, "failed", ev.Outcome)
	require.NotNil(t, ev.ExitCode, "restic's exit code is in the event")
	assert.Equal(t, 12, *ev.ExitCode, "restic exits 12 on a wrong password")
	assert.Equal(t, "wrong_password", ev.Reason)
	assert.Contains(t, strings.ToLower(ev.Error), "wrong password")
	var log struct {
		Items []struct {
			Status     string   `json:"status"`
			StatusCode int      `json:"statusCode"`
			EventType  string   `json:"eventType"`
			EventIDs   []string `json:"eventIds"`
		} `json:"items"`
	}
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/notification-channels/"+channel.ID+"/deliveries", nil, &log))
	require.Len(t, log.Items, 1, "the channel's log has the one delivery")
	assert.Equal(t, "succeeded", log.Items[0].Status)
	assert.Equal(t, "run.failed", log.Items[0].EventType)
	assert.Equal(t, http.StatusNoContent, log.Items[0].StatusCode)
	assert.Equal(t, []string{delivery.Events[0].ID}, log.Items[0].EventIDs)

	// Stop the agent; after the heartbeat window the scheduler marks it offline.
	require.NoError(t, agent.Stop(time.Minute))
	var stopped struct {
		LastSeenAt time.Time `json:"lastSeenAt"`
	}
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/agents/"+demo.AgentID, nil, &stopped))
	require.NoError(t, stack.Tick(ctx, stopped.LastSeenAt.Add(3*5*time.Second+time.Second)))
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/agents/"+demo.AgentID, nil, &agentView))
	assert.Equal(t, "offline", agentView.Status)
	settleNotifications(t, stack)
	assert.Len(t, hook.received(), 1, "nothing more reached the webhook: its rules match only the failed policy's runs")
	t.Logf("end-to-end path walked in %s", time.Since(started).Round(time.Second))
}

func policyVersion(t *testing.T, c devstack.Client, id string) int64 {
	t.Helper()
	var p struct {
		Version int64 `json:"version"`
	}
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/policies/"+id, nil, &p))
	return p.Version
}

// hookRequest is one request a webhook receiver got.
type hookRequest struct {
	signature string
	body      []byte
}

// hookReceiver is a webhook receiver on 127.0.0.1 that keeps every request.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []hookRequest
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{signature: r.Header.Get(notify.SignatureHeader), body: b})
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) received() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

// settleNotifications waits until nothing is on its way to a channel: the outbox holds no
// event, and the notifier's queue no message, visible or being handled (a message is deleted
// only after the notifier handled it). What a receiver has then is all it will get.
func settleNotifications(t *testing.T, stack *devstack.Stack) {
	t.Helper()
	ctx := context.Background()
	q := sqs.NewFromConfig(stack.Core.AWS)
	waitFor(t, "the outbox and the notifier's queue to empty", 2*time.Minute, func() bool {
		for shard := range resources.DueShards {
			due, _, err := stack.Core.Store.QueryDue(ctx, shard, time.Now().Add(time.Hour), store.Page{Limit: 100})
			require.NoError(t, err)
			for _, d := range due {
				if d.Outbox != nil {
					require.NoError(t, stack.Tick(ctx, time.Now()))
					return false
				}
			}
		}
		attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(stack.NotifyQueueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		require.NoError(t, err)
		return attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)] == "0" &&
			attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)] == "0"
	})
}

// syncWriter lets the agent's two output streams share one buffer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
