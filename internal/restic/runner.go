// Package restic runs the restic command line for the agent. It owns how a restic command is
// built (an explicit environment, the password only through a file or a command, always --json),
// how its output is read (line by line, bounded, noise tolerated, secrets redacted), how its exit
// codes become typed errors, and how a running restic is interrupted so that it can release its
// repository lock.
package restic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Repository is what restic needs to open one repository. The password reaches restic only
// through RESTIC_PASSWORD_FILE or RESTIC_PASSWORD_COMMAND, never as an argument.
type Repository struct {
	// Location is RESTIC_REPOSITORY: /srv/restic, s3:host/bucket, sftp:user@host:/path, ...
	Location string
	// PasswordFile or PasswordCommand, exactly one of them, gives restic the password.
	PasswordFile    string
	PasswordCommand string
	// Env holds the backend's own variables (AWS_ACCESS_KEY_ID, B2_ACCOUNT_KEY, ...). Values of
	// variables whose names look secret are redacted from everything this package reports.
	Env map[string]string
}

// IOClass is an ionice scheduling class.
type IOClass int

const (
	// IODefault leaves restic's I/O priority alone.
	IODefault IOClass = iota
	// IOBestEffort runs restic in the best-effort class at Options.IOLevel (0 highest, 7 lowest).
	IOBestEffort
	// IOIdle gives restic disk time only when nothing else wants it.
	IOIdle
)

// Defaults for Options fields left at zero.
const (
	DefaultGrace            = 30 * time.Second
	DefaultProgressInterval = time.Second
	defaultPath             = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Options shape every command a Runner starts.
type Options struct {
	// Binary is restic's path; empty looks "restic" up in PATH.
	Binary string
	// CacheDir becomes RESTIC_CACHE_DIR; empty leaves restic its default cache under HOME.
	CacheDir string
	// Home, TempDir and Path become HOME, TMPDIR and PATH. Empty copies the agent's own HOME and
	// PATH (a standard PATH when the agent has none) and uses os.TempDir for TMPDIR. sftp and
	// rclone repositories need HOME and PATH to find ssh, its configuration and rclone.
	Home, TempDir, Path string

	// LimitUploadKiB and LimitDownloadKiB cap restic's bandwidth in KiB/s; zero is unlimited.
	LimitUploadKiB, LimitDownloadKiB int
	// ReadConcurrency is how many files a backup reads at once; zero is restic's default.
	ReadConcurrency int
	// RetryLock makes restic wait up to this long for a locked repository before giving up.
	RetryLock time.Duration

	// Nice (1–19) and IOClass lower restic's CPU and disk priority on Linux through the nice and
	// ionice commands, when they are installed. They are hints: without the commands restic runs
	// at normal priority.
	Nice    int
	IOClass IOClass
	IOLevel int

	// Grace is how long restic may take to stop after it was interrupted (SIGINT) before it is
	// killed. restic uses the time to remove its lock. Zero means DefaultGrace.
	Grace time.Duration
	// ProgressInterval is how often restic reports progress. Zero means DefaultProgressInterval.
	ProgressInterval time.Duration

	// OnLine receives every non-blank line restic prints, with secrets redacted, terminal
	// control sequences removed and lines longer than 8 KiB cut. Calls never overlap; a slow
	// OnLine slows restic down.
	OnLine func(Line)
}

// Runner runs restic against one repository. It holds no running state: one Runner may run
// several commands, one after another or at the same time.
type Runner struct {
	bin    string
	repo   Repository
	opts   Options
	redact func(string) string
}

// reservedEnv are the variables the Runner sets itself; Repository.Env may not override them.
var reservedEnv = []string{
	"PATH", "HOME", "TMPDIR",
	"RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE",
	"RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND",
	"RESTIC_CACHE_DIR", "RESTIC_PROGRESS_FPS",
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// New checks repo and opts and returns a Runner for the repository.
func New(repo Repository, opts Options) (*Runner, error) {
	if strings.TrimSpace(repo.Location) == "" {
		return nil, errors.New("restic: repository location is empty")
	}
	switch {
	case repo.PasswordFile == "" && repo.PasswordCommand == "":
		return nil, errors.New("restic: set a password file or a password command")
	case repo.PasswordFile != "" && repo.PasswordCommand != "":
		return nil, errors.New("restic: set either a password file or a password command, not both")
	}
	for k, v := range repo.Env {
		switch {
		case !envName.MatchString(k):
			return nil, fmt.Errorf("restic: %q is not an environment variable name", k)
		case slices.Contains(reservedEnv, k):
			return nil, fmt.Errorf("restic: %s is set by the runner, not through the backend environment", k)
		case strings.ContainsRune(v, 0):
			return nil, fmt.Errorf("restic: %s contains a NUL byte", k)
		}
	}
	return newRunner(repo, opts)
}

func newRunner(repo Repository, opts Options) (*Runner, error) {
	switch {
	case opts.Nice < 0 || opts.Nice > 19:
		return nil, fmt.Errorf("restic: nice must be between 0 and 19, got %d", opts.Nice)
	case opts.IOClass < IODefault || opts.IOClass > IOIdle:
		return nil, fmt.Errorf("restic: unknown I/O class %d", opts.IOClass)
	case opts.IOLevel < 0 || opts.IOLevel > 7:
		return nil, fmt.Errorf("restic: I/O level must be between 0 and 7, got %d", opts.IOLevel)
	case opts.LimitUploadKiB < 0 || opts.LimitDownloadKiB < 0 || opts.ReadConcurrency < 0 || opts.RetryLock < 0:
		return nil, errors.New("restic: limits, read concurrency and retry-lock must not be negative")
	}
	bin := opts.Binary
	if bin == "" {
		bin = "restic"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("restic: find binary: %w", err)
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = DefaultProgressInterval
	}
	return &Runner{bin: path, repo: repo, opts: opts, redact: newRedactor(secretsOf(repo))}, nil
}

// env is the child's whole environment. Nothing is inherited: the agent's own environment may
// hold credentials for other repositories or for the control plane.
func (r *Runner) env() []string {
	vars := map[string]string{
		"PATH":   firstNonEmpty(r.opts.Path, os.Getenv("PATH"), defaultPath),
		"TMPDIR": firstNonEmpty(r.opts.TempDir, os.TempDir()),
		// restic prints progress at this rate; the agent needs far less than restic's 60 per second.
		"RESTIC_PROGRESS_FPS": strconv.FormatFloat(1/r.opts.ProgressInterval.Seconds(), 'f', -1, 64),
	}
	if home := firstNonEmpty(r.opts.Home, os.Getenv("HOME")); home != "" {
		vars["HOME"] = home
	}
	if r.opts.CacheDir != "" {
		vars["RESTIC_CACHE_DIR"] = r.opts.CacheDir
	}
	if r.repo.Location != "" {
		for k, v := range r.repo.Env {
			vars[k] = v
		}
		vars["RESTIC_REPOSITORY"] = r.repo.Location
		if r.repo.PasswordFile != "" {
			vars["RESTIC_PASSWORD_FILE"] = r.repo.PasswordFile
		} else {
			vars["RESTIC_PASSWORD_COMMAND"] = r.repo.PasswordCommand
		}
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// argv is the whole command line: the priority wrappers, restic, its global flags, then args.
func (r *Runner) argv(args []string, globals bool) []string {
	argv := priorityWrapper(r.opts.Nice, r.opts.IOClass, r.opts.IOLevel)
	argv = append(argv, r.bin, "--json")
	if globals {
		if r.opts.RetryLock > 0 {
			argv = append(argv, "--retry-lock="+r.opts.RetryLock.String())
		}
		if r.opts.LimitUploadKiB > 0 {
			argv = append(argv, "--limit-upload="+strconv.Itoa(r.opts.LimitUploadKiB))
		}
		if r.opts.LimitDownloadKiB > 0 {
			argv = append(argv, "--limit-download="+strconv.Itoa(r.opts.LimitDownloadKiB))
		}
	}
	return append(argv, args...)
}

// command builds the process for one restic invocation; ctx ending interrupts it.
func (r *Runner) command(ctx context.Context, args []string, globals bool) *exec.Cmd {
	argv := r.argv(args, globals)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = r.env()
	// restic asks for a password on stdin when it finds none; it must fail instead of waiting.
	cmd.Stdin = nil
	interruptible(cmd, r.opts.Grace)
	return cmd
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// run starts restic with args, feeds its stdout lines to onStdout and waits for it to exit. The
// error is for a restic that could not be run at all; how restic itself ended is in the outcome.
func (r *Runner) run(ctx context.Context, op string, args []string, globals bool, onStdout func([]byte)) (*outcome, error) {
	return r.runLogging(ctx, op, args, globals, onStdout, true)
}

// runLogging is run; with logStdout false only stderr reaches OnLine, for commands whose
// stdout is data (a listing of millions of entries) rather than a report.
func (r *Runner) runLogging(ctx context.Context, op string, args []string, globals bool, onStdout func([]byte), logStdout bool) (*outcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("restic %s: not started: %w", op, context.Cause(ctx))
	}
	c := newCollector(r.redact, r.opts.OnLine, onStdout)
	c.quietStdout = !logStdout
	cmd := r.command(ctx, args, globals)
	stdout, stderr := c.writer(Stdout), c.writer(Stderr)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	_ = stdout.Close()
	_ = stderr.Close()
	if cmd.ProcessState == nil {
		return nil, fmt.Errorf("restic %s: start: %w", op, err)
	}
	code := cmd.ProcessState.ExitCode()
	var cause error
	if code != 0 && ctx.Err() != nil {
		cause = context.Cause(ctx)
	}
	return c.finish(op, code, cause), nil
}
