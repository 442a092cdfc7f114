package restic

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// anyExecutable stands in for restic where only the command line is looked at, never run.
func anyExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return exe
}

func TestEnvironmentIsBuiltExplicitly(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-of-the-agent")
	t.Setenv("RESTIC_PASSWORD", "password-of-the-agent")
	t.Setenv("RM_AGENT_SECRET", "agent-credential")
	r, err := New(Repository{
		Location:     "s3:s3.amazonaws.com/bucket/prefix",
		PasswordFile: "/etc/rm/repo.pass",
		Env:          map[string]string{"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-of-the-repo"},
	}, Options{
		Binary:           anyExecutable(t),
		CacheDir:         "/var/cache/rm",
		Home:             "/home/agent",
		TempDir:          "/var/tmp/rm",
		Path:             "/usr/bin:/bin",
		ProgressInterval: 5 * time.Second,
	})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"AWS_ACCESS_KEY_ID=AKIAEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=secret-of-the-repo",
		"HOME=/home/agent",
		"PATH=/usr/bin:/bin",
		"RESTIC_CACHE_DIR=/var/cache/rm",
		"RESTIC_PASSWORD_FILE=/etc/rm/repo.pass",
		"RESTIC_PROGRESS_FPS=0.2",
		"RESTIC_REPOSITORY=s3:s3.amazonaws.com/bucket/prefix",
		"TMPDIR=/var/tmp/rm",
	}, r.command(context.Background(), []string{"snapshots"}, true).Env)
}

func TestEnvironmentDefaultsAndPasswordCommand(t *testing.T) {
	t.Setenv("HOME", "/root-of-agent")
	t.Setenv("PATH", "/opt/agent/bin:/usr/bin")
	r, err := New(Repository{Location: "/srv/restic", PasswordCommand: "cat /run/secrets/pw"}, Options{Binary: anyExecutable(t)})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"HOME=/root-of-agent",
		"PATH=/opt/agent/bin:/usr/bin",
		"RESTIC_PASSWORD_COMMAND=cat /run/secrets/pw",
		"RESTIC_PROGRESS_FPS=1",
		"RESTIC_REPOSITORY=/srv/restic",
		"TMPDIR=" + os.TempDir(),
	}, r.env())
}

func TestBackupCommandLine(t *testing.T) {
	bin := anyExecutable(t)
	r, err := New(Repository{Location: "/srv/restic", PasswordFile: "/etc/rm/pw"}, Options{
		Binary:           bin,
		LimitUploadKiB:   512,
		LimitDownloadKiB: 1024,
		ReadConcurrency:  4,
		RetryLock:        2 * time.Minute,
	})
	require.NoError(t, err)
	args, err := r.backupArgs(BackupRequest{
		Paths:         []string{"/data", "-looks-like-a-flag"},
		Excludes:      []string{"*.tmp", "/data/cache"},
		Tags:          []string{"policy-01J", "daily"},
		Host:          "web-1",
		ExcludeCaches: true,
		OneFileSystem: true,
	})
	require.NoError(t, err)
	argv := r.command(context.Background(), args, true).Args
	assert.Equal(t, []string{
		bin, "--json", "--retry-lock=2m0s", "--limit-upload=512", "--limit-download=1024",
		"backup", "--host=web-1", "--tag=policy-01J", "--tag=daily", "--exclude=*.tmp", "--exclude=/data/cache",
		"--exclude-caches", "--one-file-system", "--read-concurrency=4", "--", "/data", "-looks-like-a-flag",
	}, argv)
	for _, a := range argv {
		assert.NotContains(t, strings.ToLower(a), "pw", "the password source stays in the environment")
	}
}

func TestBackupRequestIsChecked(t *testing.T) {
	r, err := New(Repository{Location: "/srv/restic", PasswordFile: "/etc/rm/pw"}, Options{Binary: anyExecutable(t)})
	require.NoError(t, err)
	for name, req := range map[string]BackupRequest{
		"no paths":      {},
		"comma tag":     {Paths: []string{"/data"}, Tags: []string{"a,b"}},
		"empty tag":     {Paths: []string{"/data"}, Tags: []string{""}},
		"empty exclude": {Paths: []string{"/data"}, Excludes: []string{""}},
	} {
		_, err := r.backupArgs(req)
		assert.Error(t, err, name)
	}
}

func TestVersionTakesNoGlobalFlags(t *testing.T) {
	bin := anyExecutable(t)
	r, err := newRunner(Repository{}, Options{Binary: bin, LimitUploadKiB: 10, RetryLock: time.Minute})
	require.NoError(t, err)
	cmd := r.command(context.Background(), []string{"version"}, false)
	assert.Equal(t, []string{bin, "--json", "version"}, cmd.Args)
	for _, kv := range cmd.Env {
		assert.False(t, strings.HasPrefix(kv, "RESTIC_REPOSITORY=") || strings.HasPrefix(kv, "RESTIC_PASSWORD"), kv)
	}
}

func TestPriorityWrapper(t *testing.T) {
	bin := anyExecutable(t)
	r, err := New(Repository{Location: "/srv/restic", PasswordFile: "/etc/rm/pw"},
		Options{Binary: bin, Nice: 10, IOClass: IOIdle})
	require.NoError(t, err)
	argv := r.argv([]string{"check"}, true)

	var want []string
	if runtime.GOOS == "linux" {
		if ionice, err := exec.LookPath("ionice"); err == nil {
			want = append(want, ionice, "-c", "3")
		}
		if nice, err := exec.LookPath("nice"); err == nil {
			want = append(want, nice, "-n", "10")
		}
	}
	want = append(want, bin, "--json", "check")
	assert.Equal(t, want, argv)

	r.opts.IOClass, r.opts.IOLevel, r.opts.Nice = IOBestEffort, 7, 0
	argv = r.argv([]string{"check"}, true)
	if ionice, err := exec.LookPath("ionice"); err == nil && runtime.GOOS == "linux" {
		assert.Equal(t, []string{ionice, "-c", "2", "-n", "7", bin, "--json", "check"}, argv)
	} else {
		assert.Equal(t, []string{bin, "--json", "check"}, argv)
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	bin := anyExecutable(t)
	good := Repository{Location: "/srv/restic", PasswordFile: "/etc/rm/pw"}
	for name, c := range map[string]struct {
		repo Repository
		opts Options
	}{
		"no location":       {Repository{PasswordFile: "/pw"}, Options{Binary: bin}},
		"no password":       {Repository{Location: "/srv/restic"}, Options{Binary: bin}},
		"two passwords":     {Repository{Location: "/srv/restic", PasswordFile: "/pw", PasswordCommand: "cat /pw"}, Options{Binary: bin}},
		"password in env":   {Repository{Location: "/srv/restic", PasswordFile: "/pw", Env: map[string]string{"RESTIC_PASSWORD": "x"}}, Options{Binary: bin}},
		"repository in env": {Repository{Location: "/srv/restic", PasswordFile: "/pw", Env: map[string]string{"RESTIC_REPOSITORY": "/other"}}, Options{Binary: bin}},
		"PATH in env":       {Repository{Location: "/srv/restic", PasswordFile: "/pw", Env: map[string]string{"PATH": "/tmp"}}, Options{Binary: bin}},
		"bad env name":      {Repository{Location: "/srv/restic", PasswordFile: "/pw", Env: map[string]string{"A=B": "x"}}, Options{Binary: bin}},
		"NUL in env value":  {Repository{Location: "/srv/restic", PasswordFile: "/pw", Env: map[string]string{"A": "x\x00y"}}, Options{Binary: bin}},
		"nice too high":     {good, Options{Binary: bin, Nice: 20}},
		"bad I/O class":     {good, Options{Binary: bin, IOClass: 7}},
		"bad I/O level":     {good, Options{Binary: bin, IOClass: IOBestEffort, IOLevel: 8}},
		"negative limit":    {good, Options{Binary: bin, LimitUploadKiB: -1}},
		"missing binary":    {good, Options{Binary: "/nonexistent/restic"}},
	} {
		_, err := New(c.repo, c.opts)
		assert.Error(t, err, name)
	}
	_, err := New(good, Options{Binary: bin})
	assert.NoError(t, err)
}

func TestForgetCommandLine(t *testing.T) {
	args, err := forgetArgs(ForgetRequest{
		Retention: domain.Retention{
			KeepLast: 3, KeepHourly: 24, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 2,
			KeepWithin: "1y6m", KeepTags: []string{"keep", "legal-hold"},
		},
		Host:    "web-1",
		Tags:    []string{"policy-01J", "daily"},
		Paths:   []string{"/data", "/etc"},
		GroupBy: []string{GroupByHost, GroupByTags},
		Prune:   true,
	})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"forget", "--keep-last=3", "--keep-hourly=24", "--keep-daily=7", "--keep-weekly=4", "--keep-monthly=12",
		"--keep-yearly=2", "--keep-within=1y6m", "--keep-tag=keep", "--keep-tag=legal-hold", "--group-by=host,tags",
		"--host=web-1", "--tag=policy-01J,daily", "--path=/data", "--path=/etc", "--prune",
	}, args)

	args, err = forgetArgs(ForgetRequest{Retention: domain.Retention{KeepLast: 1}})
	require.NoError(t, err)
	assert.Equal(t, []string{"forget", "--keep-last=1"}, args)

	for name, req := range map[string]ForgetRequest{
		"no rule":       {},
		"negative rule": {Retention: domain.Retention{KeepLast: -1, KeepDaily: 1}},
		"bad group":     {Retention: domain.Retention{KeepLast: 1}, GroupBy: []string{"user"}},
		"comma tag":     {Retention: domain.Retention{KeepLast: 1}, Tags: []string{"a,b"}},
	} {
		_, err := forgetArgs(req)
		assert.Error(t, err, name)
	}
}

func TestRestoreCommandLine(t *testing.T) {
	args, err := restoreArgs(RestoreRequest{SnapshotID: "latest", IncludePaths: []string{"/data/a"}, Target: "/restore", Verify: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"restore", "--target=/restore", "--include=/data/a", "--verify", "--", "latest"}, args)

	args, err = restoreArgs(RestoreRequest{SnapshotID: "4439429d", Target: "/restore"})
	require.NoError(t, err)
	assert.Equal(t, []string{"restore", "--target=/restore", "--", "4439429d"}, args)

	for name, req := range map[string]RestoreRequest{
		"no snapshot":   {Target: "/restore"},
		"no target":     {SnapshotID: "latest"},
		"empty include": {SnapshotID: "latest", Target: "/r", IncludePaths: []string{""}},
	} {
		_, err := restoreArgs(req)
		assert.Error(t, err, name)
	}
}

func TestSnapshotFilterCommandLine(t *testing.T) {
	args, err := snapshotFilterArgs("snapshots", "web-1", []string{"a", "b"}, []string{"/data"})
	require.NoError(t, err)
	assert.Equal(t, []string{"--host=web-1", "--tag=a,b", "--path=/data"}, args)
	args, err = snapshotFilterArgs("snapshots", "", nil, nil)
	require.NoError(t, err)
	assert.Empty(t, args)
}

func TestCancelledContextDoesNotStartRestic(t *testing.T) {
	r, err := New(Repository{Location: "/srv/restic", PasswordFile: "/etc/rm/pw"}, Options{Binary: anyExecutable(t)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Snapshots(ctx, SnapshotFilter{})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, Unknown, KindOf(err), "restic never ran, so there is no exit code")
}

func TestReservedEnvironmentIsComplete(t *testing.T) {
	r, err := New(Repository{Location: "/srv/restic", PasswordFile: "/pw"}, Options{Binary: anyExecutable(t), CacheDir: "/c"})
	require.NoError(t, err)
	r.repo.PasswordCommand = "x" // both forms, to see both variables
	env := r.env()
	r.repo.PasswordFile = ""
	env = append(env, r.env()...)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		assert.True(t, slices.Contains(reservedEnv, name), "%s is set by the runner but a backend variable could override it", name)
	}
}
