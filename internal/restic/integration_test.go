//go:build unix

package restic

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/testenv/restictest"
)

// The tests in this file run the real restic (see restictest.Binary) against repositories in
// temporary directories.

const testPassword = "integration test password"

type fixture struct {
	dir  string
	repo Repository
	opts Options

	mu    sync.Mutex
	lines []Line
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	bin := restictest.Binary(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(testPassword+"\n"), 0o600))
	f := &fixture{dir: dir, repo: Repository{Location: filepath.Join(dir, "repo"), PasswordFile: pw}}
	f.opts = Options{
		Binary:   bin,
		CacheDir: filepath.Join(dir, "cache"),
		Home:     dir,
		TempDir:  dir,
		OnLine: func(l Line) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.lines = append(f.lines, l)
		},
	}
	return f
}

func (f *fixture) runner(t *testing.T) *Runner {
	t.Helper()
	r, err := New(f.repo, f.opts)
	require.NoError(t, err)
	return r
}

// initialized returns a runner for a freshly initialised repository.
func (f *fixture) initialized(t *testing.T) *Runner {
	t.Helper()
	r := f.runner(t)
	_, err := r.Init(context.Background())
	require.NoError(t, err)
	return r
}

func (f *fixture) logged() []Line {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Line(nil), f.lines...)
}

// locks lists the repository's lock files. restic writes each file under a temporary name and
// renames it when complete; a temporary file is not a lock yet and is left out.
func (f *fixture) locks(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(f.repo.Location, "locks"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if !strings.Contains(e.Name(), "-tmp-") {
			names = append(names, e.Name())
		}
	}
	return names
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// randomTree writes n files of size bytes each that neither compress nor deduplicate.
func randomTree(t *testing.T, dir string, n, size int) {
	t.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{byte(n), byte(size)}))
	buf := make([]byte, size)
	for i := range n {
		for j := 0; j < len(buf); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(buf); k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("file-%03d", i)), buf)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	r := f.runner(t)

	id, err := r.Init(ctx)
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9a-f]{64}$`, id)

	src := filepath.Join(f.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("first version\n"))
	writeFile(t, filepath.Join(src, "docs", "b.txt"), []byte("unchanging\n"))
	randomTree(t, filepath.Join(src, "bin"), 2, 64<<10)
	req := BackupRequest{Paths: []string{src}, Host: "itest-host", Tags: []string{"policy-1", "daily"}, ExcludeCaches: true, OneFileSystem: true,
		Excludes: []string{"*.tmp"}}
	writeFile(t, filepath.Join(src, "scratch.tmp"), []byte("excluded\n"))

	first, err := r.Backup(ctx, req, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), first.Summary.FilesNew, "the .tmp file is excluded")
	assert.Regexp(t, `^[0-9a-f]{64}$`, first.Summary.SnapshotID)
	assert.Empty(t, first.Unreadable)

	writeFile(t, filepath.Join(src, "a.txt"), []byte("second version, longer than the first\n"))
	second, err := r.Backup(ctx, req, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), second.Summary.FilesChanged)
	assert.Equal(t, uint64(3), second.Summary.FilesUnmodified)
	assert.Equal(t, uint64(0), second.Summary.FilesNew)

	third, err := r.Backup(ctx, req, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), third.Summary.FilesUnmodified)

	// Another host's snapshot must survive a forget restricted to this host.
	other, err := r.Backup(ctx, BackupRequest{Paths: []string{src}, Host: "other-host"}, nil)
	require.NoError(t, err)

	snaps, err := r.Snapshots(ctx, SnapshotFilter{Host: "itest-host", Tags: []string{"daily", "policy-1"}})
	require.NoError(t, err)
	require.Len(t, snaps, 3)
	assert.Equal(t, []string{first.Summary.SnapshotID, second.Summary.SnapshotID, third.Summary.SnapshotID},
		[]string{snaps[0].ID, snaps[1].ID, snaps[2].ID})
	assert.Equal(t, []string{"policy-1", "daily"}, snaps[0].Tags)
	assert.Equal(t, []string{src}, snaps[0].Paths)

	forgot, err := r.Forget(ctx, ForgetRequest{
		Retention: domain.Retention{KeepLast: 2},
		Host:      "itest-host",
		Tags:      []string{"policy-1"},
		GroupBy:   []string{GroupByHost, GroupByPaths},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{third.Summary.SnapshotID, second.Summary.SnapshotID}, ids(forgot.Kept))
	assert.Equal(t, []string{first.Summary.SnapshotID}, ids(forgot.Removed))

	all, err := r.Snapshots(ctx, SnapshotFilter{})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{second.Summary.SnapshotID, third.Summary.SnapshotID, other.Summary.SnapshotID}, ids(all))

	forgot, err = r.Forget(ctx, ForgetRequest{Retention: domain.Retention{KeepLast: 1}, Host: "itest-host", Prune: true})
	require.NoError(t, err)
	assert.Equal(t, []string{second.Summary.SnapshotID}, ids(forgot.Removed))
	require.NoError(t, r.Prune(ctx))

	check, err := r.Check(ctx, "100%")
	require.NoError(t, err)
	assert.Equal(t, int64(0), check.NumErrors)
	assert.Empty(t, check.BrokenPacks)

	target := filepath.Join(f.dir, "restore")
	restored, err := r.Restore(ctx, RestoreRequest{SnapshotID: third.Summary.SnapshotID, Target: target, Verify: true}, nil)
	require.NoError(t, err)
	assert.Empty(t, restored.Errors)
	assert.Equal(t, uint64(2*64<<10+len("second version, longer than the first\n")+len("unchanging\n")), restored.BytesRestored)
	assertSameTree(t, src, filepath.Join(target, src), "scratch.tmp")

	partial := filepath.Join(f.dir, "restore-docs")
	_, err = r.Restore(ctx, RestoreRequest{SnapshotID: "latest", IncludePaths: []string{filepath.Join(src, "docs")}, Target: partial, Verify: true}, nil)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(partial, src, "docs", "b.txt"))
	require.NoError(t, err)
	assert.Equal(t, "unchanging\n", string(got))
	_, err = os.Stat(filepath.Join(partial, src, "a.txt"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "only the included path is restored")

	lines := f.logged()
	require.NotEmpty(t, lines)
	var sawSummary bool
	for _, l := range lines {
		assert.NotContains(t, l.Text, testPassword)
		sawSummary = sawSummary || strings.Contains(l.Text, `"message_type":"summary"`)
	}
	assert.True(t, sawSummary, "stdout lines reach the log")
	assert.Empty(t, f.locks(t))
}

// assertSameTree compares two directory trees file by file, byte for byte.
func assertSameTree(t *testing.T, want, got string, skip ...string) {
	t.Helper()
	var files int
	require.NoError(t, filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(want, p)
		for _, s := range skip {
			if rel == s {
				_, err := os.Lstat(filepath.Join(got, rel))
				assert.ErrorIs(t, err, fs.ErrNotExist, "%s was excluded from the backup", rel)
				return nil
			}
		}
		if d.IsDir() {
			return nil
		}
		files++
		w, err := os.ReadFile(p)
		require.NoError(t, err)
		g, err := os.ReadFile(filepath.Join(got, rel))
		require.NoError(t, err, rel)
		assert.True(t, bytes.Equal(w, g), "%s differs after restore", rel)
		return nil
	}))
	assert.Positive(t, files)
}

func ids(s []Snapshot) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.ID
	}
	return out
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.initialized(t)
	wrong := filepath.Join(f.dir, "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte("not the password\n"), 0o600))
	f.repo.PasswordFile = wrong

	_, err := f.runner(t).Snapshots(context.Background(), SnapshotFilter{})
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, WrongPassword, ee.Kind)
	assert.Equal(t, 12, ee.Code)
	assert.Contains(t, ee.Message, "wrong password")
	assert.False(t, ee.Retryable())
}

func TestPasswordCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.initialized(t)
	f.repo.PasswordCommand, f.repo.PasswordFile = "cat "+f.repo.PasswordFile, ""

	snaps, err := f.runner(t).Snapshots(context.Background(), SnapshotFilter{})
	require.NoError(t, err)
	assert.Empty(t, snaps)
}

func TestRepoMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.runner(t)
	for _, run := range []func() error{
		func() error { _, err := r.Snapshots(context.Background(), SnapshotFilter{}); return err },
		func() error {
			_, err := r.Backup(context.Background(), BackupRequest{Paths: []string{f.dir}}, nil)
			return err
		},
	} {
		err := run()
		var ee *ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, RepoMissing, ee.Kind)
		assert.Equal(t, 10, ee.Code)
		assert.Contains(t, ee.Message, "repository does not exist")
	}
}

// holdLock starts restic check, which locks the repository exclusively, and sends it sig once
// its lock file exists: SIGKILL leaves a stale lock, SIGSTOP a live one. done delivers the
// result of waiting for the process.
func holdLock(t *testing.T, f *fixture, r *Runner, sig syscall.Signal) (cmd *exec.Cmd, done <-chan error) {
	t.Helper()
	for range 5 {
		cmd := exec.Command(r.bin, "check")
		cmd.Env = r.env()
		require.NoError(t, cmd.Start())
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
	poll:
		for {
			if len(f.locks(t)) > 0 {
				require.NoError(t, cmd.Process.Signal(sig))
				break
			}
			select {
			case <-waited:
				break poll // check finished before its lock was seen; try again
			case <-time.After(2 * time.Millisecond):
			}
		}
		if sig == syscall.SIGKILL {
			<-waited
		}
		if len(f.locks(t)) > 0 {
			return cmd, waited
		}
	}
	t.Fatal("restic check never held its lock long enough to be stopped")
	return nil, nil
}

func TestStaleLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.initialized(t)
	src := filepath.Join(f.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a\n"))

	holdLock(t, f, r, syscall.SIGKILL)
	require.Len(t, f.locks(t), 1)

	_, err := r.Backup(context.Background(), BackupRequest{Paths: []string{src}}, nil)
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, Locked, ee.Kind)
	assert.True(t, ee.Retryable())
	assert.Contains(t, ee.Message, "repository is already locked exclusively")

	require.NoError(t, r.Unlock(context.Background()))
	assert.Empty(t, f.locks(t))
	res, err := r.Backup(context.Background(), BackupRequest{Paths: []string{src}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), res.Summary.FilesNew)
}

func TestUnlockLeavesLiveLocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.initialized(t)

	cmd, done := holdLock(t, f, r, syscall.SIGSTOP)
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	held := f.locks(t)
	require.NoError(t, r.Unlock(context.Background()))
	assert.Equal(t, held, f.locks(t), "the lock of a running restic is not stale")

	require.NoError(t, cmd.Process.Signal(syscall.SIGCONT))
	require.NoError(t, <-done)
	assert.Empty(t, f.locks(t))
}

func TestCancelInterruptsBackupAndReleasesTheLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.opts.ProgressInterval = 50 * time.Millisecond
	f.opts.Grace = 20 * time.Second
	r := f.initialized(t)
	src := filepath.Join(f.dir, "big")
	randomTree(t, src, 24, 4<<20)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelledAt time.Time
	var once sync.Once
	var progress []domain.Progress
	res, err := r.Backup(ctx, BackupRequest{Paths: []string{src}}, func(p domain.Progress) {
		progress = append(progress, p)
		once.Do(func() {
			cancelledAt = time.Now()
			cancel()
		})
	})
	stopped := time.Since(cancelledAt)

	require.NotEmpty(t, progress, "restic reported progress")
	require.Nil(t, res, "the backup finished before it could be interrupted")
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, Interrupted, ee.Kind, "exit code %d, last lines %q", ee.Code, ee.LastLines)
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, ee.Retryable())
	assert.NotEqual(t, -1, ee.Code, "restic stopped on SIGINT, it was not killed")
	assert.Less(t, stopped, f.opts.Grace, "within the grace period")
	assert.Empty(t, f.locks(t), "restic removed its lock on the way out")

	snaps, err := r.Snapshots(context.Background(), SnapshotFilter{})
	require.NoError(t, err)
	assert.Empty(t, snaps)
}

// restic finishes the uploads in flight before it exits on SIGINT; with a slow upload limit that
// takes far longer than the grace period, so the runner kills it.
func TestCancelEscalatesToKillAfterGrace(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.opts.ProgressInterval = 50 * time.Millisecond
	f.opts.Grace = 500 * time.Millisecond
	f.opts.LimitUploadKiB = 64
	r := f.initialized(t)
	src := filepath.Join(f.dir, "slow")
	randomTree(t, src, 2, 1<<20) // 2 MiB at 64 KiB/s: half a minute of upload

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var cancelledAt time.Time
	var once sync.Once
	_, err := r.Backup(ctx, BackupRequest{Paths: []string{src}}, func(p domain.Progress) {
		if p.TotalFiles == 0 || p.FilesDone < p.TotalFiles {
			return // the pack is uploaded once every file is read
		}
		once.Do(func() {
			time.AfterFunc(300*time.Millisecond, func() {
				mu.Lock()
				defer mu.Unlock()
				cancelledAt = time.Now()
				cancel()
			})
		})
	})
	mu.Lock()
	stopped := time.Since(cancelledAt)
	mu.Unlock()

	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, Interrupted, ee.Kind)
	assert.Equal(t, -1, ee.Code, "killed by a signal")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, stopped, 20*time.Second, "killed after the grace period, long before the uploads could have finished")

	// restic removes its lock as soon as it is interrupted, before it waits for its uploads; a
	// lock it could not remove is stale once it is dead.
	require.NoError(t, r.Unlock(context.Background()))
	assert.Empty(t, f.locks(t))
	small := filepath.Join(f.dir, "small.txt")
	writeFile(t, small, []byte("small enough for the upload limit\n"))
	_, err = r.Backup(context.Background(), BackupRequest{Paths: []string{small}}, nil)
	require.NoError(t, err, "the repository is usable again")
}

func TestPartialBackupListsUnreadablePaths(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.initialized(t)
	src := filepath.Join(f.dir, "src")
	writeFile(t, filepath.Join(src, "readable.txt"), []byte("fine\n"))
	lockedFile := filepath.Join(src, "locked.txt")
	lockedDir := filepath.Join(src, "locked-dir")
	writeFile(t, lockedFile, []byte("secret\n"))
	writeFile(t, filepath.Join(lockedDir, "inner.txt"), []byte("hidden\n"))
	require.NoError(t, os.Chmod(lockedFile, 0))
	require.NoError(t, os.Chmod(lockedDir, 0))
	t.Cleanup(func() { _ = os.Chmod(lockedDir, 0o755) })

	var res *BackupResult
	var err error
	restictest.WithoutReadOverride(t, func() {
		res, err = r.Backup(context.Background(), BackupRequest{Paths: []string{src}}, nil)
	})

	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, Partial, ee.Kind)
	assert.Equal(t, 3, ee.Code)
	require.NotNil(t, res)
	assert.ElementsMatch(t, []string{lockedFile, lockedDir}, res.Unreadable)
	assert.Equal(t, uint64(1), res.Summary.FilesNew, "the readable file is saved")
	assert.Regexp(t, `^[0-9a-f]{64}$`, res.Summary.SnapshotID)

	snaps, err := r.Snapshots(context.Background(), SnapshotFilter{})
	require.NoError(t, err)
	require.Len(t, snaps, 1)
	assert.Equal(t, res.Summary.SnapshotID, snaps[0].ID)
}

func TestVersionThroughPriorityWrappers(t *testing.T) {
	t.Parallel()
	bin := restictest.Binary(t)
	v, err := Version(context.Background(), Options{Binary: bin, Nice: 10, IOClass: IOIdle})
	require.NoError(t, err)
	assert.Equal(t, "0.18.1", v)
}
