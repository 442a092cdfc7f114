package runner

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/restic"
)

const password = "runner test password"

type fixture struct {
	dir    string
	cfg    *config.Config
	runner *Runner

	mu    sync.Mutex
	lines []restic.Line
	ops   []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	bin := agenttest.ResticBinary(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(password+"\n"), 0o600))
	cfg := config.Default()
	cfg.Restic.Binary = bin
	cfg.Restic.CacheDir = filepath.Join(dir, "cache")
	cfg.Repositories = []config.Repository{
		{Name: "main", Repository: filepath.Join(dir, "repo"), PasswordFile: pw, Initialize: true},
		{Name: "strict", Repository: filepath.Join(dir, "strict-repo"), PasswordFile: pw},
	}
	return &fixture{dir: dir, cfg: &cfg, runner: &Runner{Config: &cfg, Hostname: "runner-test"}}
}

func (f *fixture) hooks() Hooks {
	return Hooks{
		Line: func(l restic.Line) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.lines = append(f.lines, l)
		},
		ResticStarted: func(op string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.ops = append(f.ops, op)
		},
	}
}

func (f *fixture) startedOps() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

func message(typ domain.TaskType, repo string) events.TaskMessage {
	now := time.Now().UTC()
	return events.TaskMessage{
		SchemaVersion: events.TaskSchemaVersion, Type: events.TaskMessageType,
		TenantID: "acme", AgentID: domain.NewID(now), TaskID: domain.NewID(now), TaskType: typ,
		Attempt: 1, NotBefore: now, Deadline: now.Add(time.Hour), Repository: repo,
	}
}

func backupMessage(repo string, paths ...string) events.TaskMessage {
	m := message(domain.TaskBackup, repo)
	m.Backup = &events.BackupSpec{Paths: paths, Tags: []string{"daily"}, Excludes: []string{"*.tmp"}}
	return m
}

func (f *fixture) run(t *testing.T, m events.TaskMessage) Result {
	t.Helper()
	res := f.runner.Run(context.Background(), m, Limits{}, f.hooks())
	return res
}

// TestTaskTypesAgainstRealRestic runs every task type against a real repository and checks
// what the agent reads from restic's output: the backup summary, the inventory, what forget
// kept, that check passed, and a restore identical to the source.
func TestTaskTypesAgainstRealRestic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := filepath.Join(f.dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "a.txt"), []byte("first\n"))
	agenttest.WriteFile(t, filepath.Join(src, "docs", "b.txt"), []byte("unchanging\n"))
	agenttest.WriteFile(t, filepath.Join(src, "scratch.tmp"), []byte("excluded\n"))
	agenttest.RandomTree(t, filepath.Join(src, "bin"), 2, 32<<10)

	var progress []domain.Progress
	hooks := f.hooks()
	hooks.Progress = func(p domain.Progress) { progress = append(progress, p) }
	first := f.runner.Run(context.Background(), backupMessage("main", src), Limits{}, hooks)
	require.Equal(t, domain.TaskSucceeded, first.Status, first.Error)
	assert.Equal(t, []string{"backup", "init", "backup"}, f.startedOps(), "the missing repository was initialised because the configuration allows it")
	require.NotNil(t, first.Summary)
	assert.Regexp(t, `^[0-9a-f]{64}$`, first.Summary.SnapshotID)
	assert.Equal(t, uint64(4), first.Summary.FilesNew, "a.txt, b.txt and the two random files; the .tmp file is excluded")
	assert.Equal(t, uint64(4), first.Summary.TotalFilesProcessed)
	assert.Positive(t, first.Summary.DataAdded)
	assert.Nil(t, first.ExitCode)
	assert.Empty(t, first.Unreadable)

	agenttest.WriteFile(t, filepath.Join(src, "a.txt"), []byte("second, longer\n"))
	second := f.run(t, backupMessage("main", src))
	require.Equal(t, domain.TaskSucceeded, second.Status, second.Error)
	assert.Equal(t, uint64(1), second.Summary.FilesChanged)
	assert.Equal(t, uint64(3), second.Summary.FilesUnmodified)
	assert.Zero(t, second.Summary.FilesNew)
	third := f.run(t, backupMessage("main", src))
	require.Equal(t, domain.TaskSucceeded, third.Status, third.Error)

	inv := f.run(t, message(domain.TaskSnapshots, "main"))
	require.Equal(t, domain.TaskSucceeded, inv.Status, inv.Error)
	require.Len(t, inv.Snapshots, 3)
	for _, s := range inv.Snapshots {
		assert.Equal(t, "main", s.Repository)
		assert.Equal(t, "runner-test", s.Hostname)
		assert.Equal(t, []string{"daily"}, s.Tags)
		assert.Equal(t, []string{src}, s.Paths)
		assert.NoError(t, s.Validate())
	}

	forget := message(domain.TaskForget, "main")
	forget.Retention = &domain.Retention{KeepLast: 2}
	forget.Prune = true
	forgot := f.run(t, forget)
	require.Equal(t, domain.TaskSucceeded, forgot.Status, forgot.Error)
	assert.Contains(t, forgot.Details, "kept 2 snapshots, removed 1")
	inv = f.run(t, message(domain.TaskSnapshots, "main"))
	var left []string
	for _, s := range inv.Snapshots {
		left = append(left, s.ID)
	}
	assert.ElementsMatch(t, []string{second.Summary.SnapshotID, third.Summary.SnapshotID}, left)

	check := message(domain.TaskCheck, "main")
	check.ReadDataSubset = "100%"
	checked := f.run(t, check)
	require.Equal(t, domain.TaskSucceeded, checked.Status, checked.Error)
	assert.Contains(t, checked.Details, "check found 0 errors")

	restore := message(domain.TaskRestore, "main")
	target := filepath.Join(f.dir, "restored")
	restore.Restore = &events.RestoreSpec{SnapshotID: third.Summary.SnapshotID, Target: target, Verify: true}
	refused := f.run(t, restore)
	require.Equal(t, domain.TaskFailed, refused.Status, "an agent without restoreRoots restores into no chosen target")
	assert.Contains(t, refused.Error, "no restoreRoots")
	assert.NoDirExists(t, target)
	f.cfg.RestoreRoots = []string{f.dir}
	restored := f.run(t, restore)
	require.Equal(t, domain.TaskSucceeded, restored.Status, restored.Error)
	require.NoError(t, os.Remove(filepath.Join(src, "scratch.tmp")))
	agenttest.AssertSameTree(t, src, filepath.Join(target, src))

	unlock := f.run(t, message(domain.TaskUnlock, "main"))
	assert.Equal(t, domain.TaskSucceeded, unlock.Status, unlock.Error)
	prune := f.run(t, message(domain.TaskPrune, "main"))
	assert.Equal(t, domain.TaskSucceeded, prune.Status, prune.Error)

	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.lines)
	for _, l := range f.lines {
		assert.NotContains(t, l.Text, password)
		assert.False(t, strings.HasPrefix(l.Text, `{"message_type":"status"`), "status reports go to progress, not to the log")
	}
}

func TestRepositoryMissingWithoutInitialize(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := filepath.Join(f.dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "a.txt"), []byte("a\n"))
	res := f.run(t, backupMessage("strict", src))
	assert.Equal(t, domain.TaskFailed, res.Status)
	require.NotNil(t, res.ExitCode)
	assert.Equal(t, 10, *res.ExitCode)
	assert.False(t, res.Transient, "a missing repository stays missing")
	assert.Contains(t, res.Error, "repository does not exist")
	assert.Contains(t, res.Error, `set initialize: true on repository "strict"`)
	assert.Equal(t, []string{"backup"}, f.startedOps(), "no init without initialize: true")
	_, err := os.Stat(filepath.Join(f.dir, "strict-repo"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestWrongPasswordFailsWithoutRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := filepath.Join(f.dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "a.txt"), []byte("a\n"))
	require.Equal(t, domain.TaskSucceeded, f.run(t, backupMessage("main", src)).Status)

	wrong := filepath.Join(f.dir, "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte("not the password\n"), 0o600))
	f.cfg.Repositories[0].PasswordFile = wrong
	res := f.run(t, backupMessage("main", src))
	assert.Equal(t, domain.TaskFailed, res.Status)
	require.NotNil(t, res.ExitCode)
	assert.Equal(t, 12, *res.ExitCode)
	assert.False(t, res.Transient)
	assert.Contains(t, res.Error, "wrong password or no key found")
}

func TestUnreadableFileMakesBackupPartial(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := filepath.Join(f.dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "readable.txt"), []byte("fine\n"))
	locked := filepath.Join(src, "locked.txt")
	agenttest.WriteFile(t, locked, []byte("secret\n"))
	require.NoError(t, os.Chmod(locked, 0))

	var res Result
	agenttest.WithoutReadOverride(t, func() { res = f.run(t, backupMessage("main", src)) })
	assert.Equal(t, domain.TaskPartial, res.Status, res.Error)
	require.NotNil(t, res.ExitCode)
	assert.Equal(t, 3, *res.ExitCode)
	assert.Equal(t, []string{locked}, res.Unreadable)
	require.NotNil(t, res.Summary)
	assert.Regexp(t, `^[0-9a-f]{64}$`, res.Summary.SnapshotID, "a partial backup still saved a snapshot")
	assert.Equal(t, uint64(1), res.Summary.FilesNew)
	assert.False(t, res.Transient)
}

// TestStaleLockIsTransientAndUnlockable leaves a stale exclusive lock (restic check killed
// while holding it): the backup fails as locked, which may pass, and removing stale locks lets
// the next try succeed.
func TestStaleLockIsTransientAndUnlockable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := filepath.Join(f.dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "a.txt"), []byte("a\n"))
	m := backupMessage("main", src)
	require.Equal(t, domain.TaskSucceeded, f.run(t, m).Status)

	repo := f.cfg.Repositories[0]
	// restic writes a lock under a temporary name (…-tmp-…) first; only the renamed file locks.
	locks := func() int {
		entries, err := os.ReadDir(filepath.Join(repo.Repository, "locks"))
		require.NoError(t, err)
		n := 0
		for _, e := range entries {
			if !strings.Contains(e.Name(), "-tmp-") {
				n++
			}
		}
		return n
	}
	held := false
	for try := 0; try < 5 && !held; try++ {
		cmd := exec.Command(f.cfg.Restic.Binary, "check")
		cmd.Env = []string{"RESTIC_REPOSITORY=" + repo.Repository, "RESTIC_PASSWORD_FILE=" + repo.PasswordFile, "RESTIC_CACHE_DIR=" + f.cfg.Restic.CacheDir, "HOME=" + f.dir}
		require.NoError(t, cmd.Start())
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
	wait:
		for {
			if locks() > 0 {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
			select {
			case <-done:
				break wait
			case <-time.After(2 * time.Millisecond):
			}
		}
		<-done
		held = locks() > 0
	}
	require.True(t, held, "restic check never held its lock long enough to be killed")

	res := f.run(t, m)
	assert.Equal(t, domain.TaskFailed, res.Status)
	assert.True(t, Locked(res))
	assert.True(t, res.Transient, "a lock may be released")
	assert.Contains(t, res.Error, "locked")

	require.NoError(t, f.runner.Unlock(context.Background(), m, f.hooks()))
	assert.Zero(t, locks())
	assert.Equal(t, domain.TaskSucceeded, f.run(t, m).Status)
}

// TestCancelInterruptsAndLimitsReachRestic runs a bandwidth-limited backup, looks at the real
// restic process to see the limits it was given, and cancels it.
func TestCancelInterruptsAndLimitsReachRestic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.Limits.Nice = 5
	f.runner.NumCPU = 8
	src := filepath.Join(f.dir, "slow-src")
	agenttest.RandomTree(t, src, 4, 1<<20)
	// Initialise the repository first, so that the backup below is a single restic process.
	tiny := filepath.Join(f.dir, "tiny")
	agenttest.WriteFile(t, filepath.Join(tiny, "a"), []byte("a"))
	require.Equal(t, domain.TaskSucceeded, f.run(t, backupMessage("main", tiny)).Status)

	m := backupMessage("main", src)
	m.Limits = &events.Limits{UploadKbps: 64, ReadConcurrency: 1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() { done <- f.runner.Run(ctx, m, Limits{UploadKbps: 128, CPUQuotaPercent: 25}, f.hooks()) }()

	var proc agenttest.Proc
	require.Eventually(t, func() bool {
		procs, err := agenttest.ResticChildren(os.Getpid())
		require.NoError(t, err)
		for _, p := range procs {
			if slices.Contains(p.Args, src) {
				proc = p
				return true
			}
		}
		return false
	}, time.Minute, 20*time.Millisecond)
	assert.Contains(t, proc.Args, "--limit-upload=64", "the policy's limit is stricter than the agent's")
	assert.Contains(t, proc.Args, "--read-concurrency=1")
	assert.Contains(t, proc.Env, "GOMAXPROCS=2", "a 25% CPU quota of 8 CPUs")
	assert.NotContains(t, strings.Join(proc.Args, " "), password)
	if _, err := exec.LookPath("nice"); err == nil {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(proc.PID), "stat"))
		require.NoError(t, err)
		fields := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+1:])
		assert.Equal(t, "5", fields[16], "restic runs at the configured nice level")
	}

	cancel()
	select {
	case res := <-done:
		assert.Equal(t, domain.TaskCancelled, res.Status, res.Error)
		assert.False(t, res.Transient)
	case <-time.After(2 * time.Minute):
		t.Fatal("restic did not stop after the task was cancelled")
	}
}

func TestUnknownRepository(t *testing.T) {
	f := &fixture{cfg: &config.Config{}}
	f.runner = &Runner{Config: f.cfg}
	res := f.runner.Run(context.Background(), message(domain.TaskCheck, "nowhere"), Limits{}, Hooks{})
	assert.Equal(t, domain.TaskFailed, res.Status)
	assert.Contains(t, res.Error, `repository "nowhere" is not configured on this agent`)
	assert.False(t, res.Transient)
}

func TestLimitsLowerOnly(t *testing.T) {
	for _, tc := range []struct{ a, b, want Limits }{
		{Limits{}, Limits{UploadKbps: 10}, Limits{UploadKbps: 10}},
		{Limits{UploadKbps: 5}, Limits{UploadKbps: 10}, Limits{UploadKbps: 5}},
		{Limits{UploadKbps: 50, CPUQuotaPercent: 80}, Limits{UploadKbps: 10, DownloadKbps: 7, CPUQuotaPercent: 0}, Limits{UploadKbps: 10, DownloadKbps: 7, CPUQuotaPercent: 80}},
	} {
		assert.Equal(t, tc.want, tc.a.Lower(tc.b))
		assert.Equal(t, tc.want, tc.b.Lower(tc.a), "lowering is symmetric")
	}
}

// TestConcurrentFirstBackupsInitialiseOnce starts two backups into a repository that does not
// exist yet: both find it missing, one creates it, and both succeed.
func TestConcurrentFirstBackupsInitialiseOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var wg sync.WaitGroup
	results := make([]Result, 2)
	for i := range results {
		src := filepath.Join(f.dir, "src", strconv.Itoa(i))
		agenttest.WriteFile(t, filepath.Join(src, "a.txt"), []byte("a\n"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = f.runner.Run(context.Background(), backupMessage("main", src), Limits{}, f.hooks())
		}()
	}
	wg.Wait()
	for i, res := range results {
		assert.Equal(t, domain.TaskSucceeded, res.Status, "backup %d: %s", i, res.Error)
	}
	inv := f.run(t, message(domain.TaskSnapshots, "main"))
	assert.Len(t, inv.Snapshots, 2)
}
