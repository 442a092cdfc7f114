// Package e2e_test walks restic-monitor's real path end to end: the control plane on the test
// endpoint (the same pieces make dev runs), the real agent binary as a child process, and real
// restic backing up, forgetting, checking and restoring a real folder.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"

	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/devstack"
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

	// The control plane, as make dev runs it, on its own table and stage.
	table := testenv.UniqueName("rm-e2e-")
	stack, err := devstack.Start(ctx, awsCfg, devstack.Options{
		Addr: "127.0.0.1:0", Table: table, Stage: "e" + testenv.UniqueName("")[:6], HeartbeatInterval: 5 * time.Second,
		Progress: io.Discard,
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
	failed := finishedTask(t, c, runTask(t, c, map[string]any{"type": "backup", "agentId": demo.AgentID, "policyId": bad.ID, "params": map[string]any{}}))
	require.Equal(t, "failed", failed.Status)
	assert.Equal(t, 1, failed.Attempt, "a wrong password is not retried")
	badRuns := runsOf(t, c, bad.ID)
	require.Len(t, badRuns, 1)
	assert.Equal(t, "failed", badRuns[0].Status)
	assert.Contains(t, strings.ToLower(badRuns[0].Error), "wrong password")

	// Stop the agent; after the heartbeat window the scheduler marks it offline.
	require.NoError(t, agent.Stop(time.Minute))
	var stopped struct {
		LastSeenAt time.Time `json:"lastSeenAt"`
	}
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/agents/"+demo.AgentID, nil, &stopped))
	require.NoError(t, stack.Tick(ctx, stopped.LastSeenAt.Add(3*5*time.Second+time.Second)))
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/agents/"+demo.AgentID, nil, &agentView))
	assert.Equal(t, "offline", agentView.Status)
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
