package daemon_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// TestRepositoryHealthAfterTwoChecks runs two backups and two checks, then a stats task,
// through the real API, queue and restic, and reads the repository's health as an operator
// does: the latest stats, the last check, the stale lock a killed restic left, and the day's
// history point. Eight days without a check later, the scheduler announces the check overdue,
// once.
func TestRepositoryHealthAfterTwoChecks(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	a := newAgent(t, cp)
	a.start()
	agentID := a.creds.AgentID

	var empty domain.RepositoryHealth
	cp.Call("GET", "/v1/repositories/main/health", nil, &empty, http.StatusOK)
	assert.Nil(t, empty.Stats, "nothing reported yet")
	assert.Nil(t, empty.LastCheck)
	assert.Empty(t, empty.History)
	assert.False(t, empty.CheckOverdue)
	assert.Equal(t, 7, empty.CheckOverdueAfterDays, "the default")
	cp.Call("GET", "/v1/repositories/nope/health", nil, nil, http.StatusNotFound)

	src := filepath.Join(a.dir, "src")
	agenttest.RandomTree(t, src, 4, 16<<10)
	policy := cp.Policy("health", "main", []string{src}, domain.Retention{KeepLast: 5})
	cp.Assign(policy, agentID)
	run := func(typ domain.TaskType, policyID, repo string) domain.Run {
		t.Helper()
		task := cp.RunTask(typ, agentID, policyID, repo, domain.TaskParams{})
		done := cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
		require.Equal(t, domain.TaskSucceeded, done.Status, done.Error)
		return cp.Runs(agentID, task.ID)[0]
	}

	run(domain.TaskBackup, policy, "")
	first := run(domain.TaskCheck, "", "main")
	var h1 domain.RepositoryHealth
	cp.Call("GET", "/v1/repositories/main/health", nil, &h1, http.StatusOK)
	require.NotNil(t, h1.LastCheck, "the check reported its outcome")
	assert.True(t, h1.LastCheck.OK)
	assert.Equal(t, first.ID, h1.LastCheck.RunID)
	assert.Equal(t, agentID, h1.LastCheck.AgentID)
	require.NotNil(t, h1.Stats, "a passing check reports the repository's stats")
	assert.Equal(t, uint64(1), h1.Stats.SnapshotsCount)
	assert.Positive(t, h1.Stats.RawDataSize)
	assert.GreaterOrEqual(t, h1.Stats.FileCount, uint64(4), "the latest snapshot's four files at least")
	assert.Positive(t, h1.Stats.BlobCount)
	require.NotNil(t, h1.Locks)
	assert.Zero(t, h1.Locks.Count, "no restic runs now")
	require.Len(t, h1.History, 1, "one point for today")
	assert.Equal(t, time.Now().UTC().Format(time.DateOnly), h1.History[0].Date)
	require.NotNil(t, h1.History[0].CheckOK)
	assert.True(t, *h1.History[0].CheckOK)

	agenttest.RandomTree(t, filepath.Join(src, "more"), 3, 16<<10)
	run(domain.TaskBackup, policy, "")
	second := run(domain.TaskCheck, "", "main")
	var h2 domain.RepositoryHealth
	cp.Call("GET", "/v1/repositories/main/health", nil, &h2, http.StatusOK)
	require.NotNil(t, h2.LastCheck)
	assert.Equal(t, second.ID, h2.LastCheck.RunID, "the latest check")
	require.NotNil(t, h2.Stats)
	assert.Equal(t, uint64(2), h2.Stats.SnapshotsCount)
	assert.Greater(t, h2.Stats.RawDataSize, h1.Stats.RawDataSize, "the repository grew")
	assert.Greater(t, h2.Stats.FileCount, h1.Stats.FileCount)
	require.NotNil(t, h2.Locks)
	assert.Zero(t, h2.Locks.Count)
	require.Len(t, h2.History, 1, "still one point a day")
	assert.Equal(t, h2.Stats.RawDataSize, h2.History[0].RawDataSize, "the day's latest stats")
	assert.Equal(t, uint64(2), h2.History[0].SnapshotsCount)
	assert.False(t, h2.CheckOverdue)

	// A restic killed while it held a lock leaves it behind; its process is gone on this host,
	// so the lock is stale as restic judges it. A stats task (whose own lock does not conflict
	// with it) reports it.
	leaveStaleLock(t, a)
	stats := run(domain.TaskStats, "", "main")
	var h3 domain.RepositoryHealth
	cp.Call("GET", "/v1/repositories/main/health", nil, &h3, http.StatusOK)
	require.NotNil(t, h3.Stats)
	assert.True(t, h3.Stats.ReportedAt.Equal(*stats.FinishedAt), "the stats task's report")
	assert.Equal(t, second.ID, h3.LastCheck.RunID, "a stats task leaves the last check alone")
	assert.Equal(t, h2.Stats.SnapshotsCount, h3.Stats.SnapshotsCount)
	require.NotNil(t, h3.Locks)
	assert.Equal(t, 1, h3.Locks.Count)
	assert.Equal(t, 1, h3.Locks.Stale)

	// No check for longer than seven days: announced once, whatever the ticks.
	later := second.FinishedAt.Add(8 * 24 * time.Hour)
	assert.Equal(t, 1, cp.Tick(later).ChecksOverdue)
	assert.Zero(t, cp.Tick(later.Add(time.Minute)).ChecksOverdue, "announced already")
	overdue := pendingEvents(t, cp, later.Add(time.Hour), events.TypeRepositoryCheckOverdue)
	require.Len(t, overdue, 1)
	ev, err := events.DecodeEvent(overdue[0].Body)
	require.NoError(t, err)
	data := ev.Data.(events.RepositoryCheckOverdueData)
	assert.Equal(t, "main", data.Repository)
	assert.Equal(t, 7, data.AfterDays)
	require.NotNil(t, data.LastCheckOKAt)
	assert.True(t, data.LastCheckOKAt.Equal(*second.FinishedAt))
}

// leaveStaleLock runs restic backup --stdin with stdin held open, so it holds its lock, and
// kills it with SIGKILL once the lock exists: restic leaves the lock behind.
func leaveStaleLock(t *testing.T, a *agent) {
	t.Helper()
	repo := a.cfg.Repositories[0]
	cmd := exec.Command(agenttest.ResticBinary(t), "-r", repo.Repository, "--password-file", repo.PasswordFile, "--no-cache", "backup", "--stdin")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { _ = stdin.Close() }()
	locks := filepath.Join(repo.Repository, "locks")
	// The backend writes the lock under a temporary name first: only a file named by its ID is
	// a lock restic lists.
	lockFile := regexp.MustCompile(`^[0-9a-f]{64}$`)
	require.Eventually(t, func() bool {
		entries, err := os.ReadDir(locks)
		if err != nil {
			return false
		}
		for _, e := range entries {
			if info, err := e.Info(); err == nil && lockFile.MatchString(e.Name()) && info.Size() > 0 {
				return true
			}
		}
		return false
	}, time.Minute, 20*time.Millisecond, "restic took its lock")
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
}

// pendingEvents returns the events of type typ recorded and not yet published, at now.
func pendingEvents(t *testing.T, cp *agenttest.ControlPlane, now time.Time, typ events.EventType) []store.OutboxEntry {
	t.Helper()
	var out []store.OutboxEntry
	for shard := 0; shard < resources.DueShards; shard++ {
		page := store.Page{Limit: 100}
		for {
			due, next, err := cp.Store.QueryDue(context.Background(), shard, now, page)
			require.NoError(t, err)
			for _, d := range due {
				if d.Outbox != nil && d.Outbox.TenantID == cp.Tenant && d.Outbox.Type == typ {
					out = append(out, *d.Outbox)
				}
			}
			if next == "" {
				break
			}
			page.Cursor = next
		}
	}
	return out
}
