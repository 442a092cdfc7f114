// Package runner executes one task message with restic: it resolves the repository the message
// names from the agent's configuration, applies the limits in force, runs the restic commands
// the task type needs, and turns what restic did into a Result the control plane understands —
// honest about partial backups, clear about failures that retrying cannot fix.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/restic"
)

// Limits are the limits in force for one task: the agent's own, lowered by the control plane's
// and the policy's.
type Limits struct {
	UploadKbps, DownloadKbps int
	CPUQuotaPercent          int
	ReadConcurrency          int
}

// lower returns the stricter of two limits where zero means unlimited.
func lower(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// Lower returns l with every limit of o that is stricter.
func (l Limits) Lower(o Limits) Limits {
	return Limits{
		UploadKbps:      lower(l.UploadKbps, o.UploadKbps),
		DownloadKbps:    lower(l.DownloadKbps, o.DownloadKbps),
		CPUQuotaPercent: lower(l.CPUQuotaPercent, o.CPUQuotaPercent),
		ReadConcurrency: lower(l.ReadConcurrency, o.ReadConcurrency),
	}
}

// Result is what one run of a task came to.
type Result struct {
	// Status is succeeded, partial, failed or cancelled.
	Status domain.TaskStatus
	// ExitCode is restic's exit code, when restic ran and failed.
	ExitCode *int
	// Error is restic's own message (or why restic could not run); never a secret.
	Error string
	// Transient says the same task may succeed later: a held lock, an unreachable backend.
	// A wrong password, a missing repository or a bad request stay as they are until someone
	// acts, so they are never retried.
	Transient bool
	Summary   *domain.Summary
	// Unreadable lists the paths a partial backup could not read.
	Unreadable []string
	// Snapshots is the repository's inventory, for a snapshots task.
	Snapshots []domain.Snapshot
	// Stats and Locks are the repository's health, for a stats task and after a check.
	Stats *domain.RepoStats
	Locks *domain.LockInfo
	// RestoreTarget is the directory a restore wrote into.
	RestoreTarget string
	// Details are type-specific facts for the log: forget's kept and removed snapshots, check's
	// findings, restore's counts.
	Details []string
}

// Hooks receive what restic reports while it runs. Both may be nil.
type Hooks struct {
	Progress func(domain.Progress)
	Line     func(restic.Line)
	// ResticStarted is called before each restic command is started.
	ResticStarted func(op string)
	// UploadListing sends an ls task's listing as it is made.
	UploadListing UploadListing
}

// Runner runs tasks with the repositories of one configuration.
type Runner struct {
	Config *config.Config
	// Hostname is the host restic records in snapshots and forget restricts itself to.
	Hostname string
	// NumCPU is the machine's CPU count, for CPUQuotaPercent; zero uses runtime.NumCPU.
	NumCPU int

	initMu sync.Mutex
	inits  map[string]*sync.Mutex
}

// initLock serialises the initialisation of one repository: two backups that find it missing
// at once must not both create it.
func (r *Runner) initLock(repo string) *sync.Mutex {
	r.initMu.Lock()
	defer r.initMu.Unlock()
	if r.inits == nil {
		r.inits = map[string]*sync.Mutex{}
	}
	if r.inits[repo] == nil {
		r.inits[repo] = &sync.Mutex{}
	}
	return r.inits[repo]
}

// Hostname returns the configured hostname, else the machine's.
func Hostname(c *config.Config) (string, error) {
	if c.Hostname != "" {
		return c.Hostname, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("hostname: %w", err)
	}
	return h, nil
}

// resticRunner builds the restic runner for the message's repository with lim applied.
func (r *Runner) resticRunner(repo config.Repository, lim Limits, hooks Hooks) (*restic.Runner, error) {
	env := make(map[string]string, len(repo.Env)+1)
	for k, v := range repo.Env {
		env[k] = v
	}
	if lim.CPUQuotaPercent > 0 {
		// restic's parallelism follows GOMAXPROCS: a share of the CPUs, at least one.
		n := r.NumCPU
		if n <= 0 {
			n = runtime.NumCPU()
		}
		env["GOMAXPROCS"] = strconv.Itoa(max(1, n*lim.CPUQuotaPercent/100))
	}
	c := r.Config
	opts := restic.Options{
		Binary:           c.Restic.Binary,
		CacheDir:         c.Restic.CacheDir,
		LimitUploadKiB:   lim.UploadKbps,
		LimitDownloadKiB: lim.DownloadKbps,
		ReadConcurrency:  lim.ReadConcurrency,
		Nice:             c.Limits.Nice,
		IOLevel:          c.Limits.IOLevel,
		Grace:            c.Restic.InterruptGrace.D(),
		OnLine:           logLine(hooks.Line),
	}
	switch c.Limits.IOClass {
	case "idle":
		opts.IOClass = restic.IOIdle
	case "best-effort":
		opts.IOClass = restic.IOBestEffort
	}
	return restic.New(restic.Repository{
		Location:        repo.Repository,
		PasswordFile:    repo.PasswordFile,
		PasswordCommand: repo.PasswordCommand,
		Env:             env,
	}, opts)
}

// logLine passes restic's lines on to the log, except its once-a-second status reports, which
// reach the control plane as progress instead.
func logLine(line func(restic.Line)) func(restic.Line) {
	if line == nil {
		return nil
	}
	return func(l restic.Line) {
		if l.Stream == restic.Stdout && strings.HasPrefix(l.Text, `{"message_type":"status"`) {
			return
		}
		line(l)
	}
}

// Run runs the task m with the limits lim. Cancelling ctx interrupts restic; the result is then
// cancelled.
func (r *Runner) Run(ctx context.Context, m events.TaskMessage, lim Limits, hooks Hooks) Result {
	repo, ok := r.Config.Repository(m.Repository)
	if !ok {
		return Result{Status: domain.TaskFailed, Error: fmt.Sprintf("repository %q is not configured on this agent: add it to the agent's configuration", m.Repository)}
	}
	if m.Limits != nil {
		lim = lim.Lower(Limits{UploadKbps: m.Limits.UploadKbps, DownloadKbps: m.Limits.DownloadKbps, ReadConcurrency: m.Limits.ReadConcurrency})
	}
	rr, err := r.resticRunner(repo, lim, hooks)
	if err != nil {
		// A restic that is not installed (yet, or while it is upgraded) may be there later; a
		// configuration restic refuses stays refused.
		missing := errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
		return Result{Status: domain.TaskFailed, Error: err.Error(), Transient: missing}
	}
	t := &task{Runner: r, rr: rr, repo: repo, m: m, hooks: hooks}
	switch m.TaskType {
	case domain.TaskBackup:
		return t.backup(ctx)
	case domain.TaskForget:
		return t.forget(ctx)
	case domain.TaskPrune:
		t.started("prune")
		return t.outcome(rr.Prune(ctx), nil)
	case domain.TaskCheck:
		return t.check(ctx)
	case domain.TaskRestore:
		return t.restore(ctx)
	case domain.TaskUnlock:
		t.started("unlock")
		res := t.outcome(rr.Unlock(ctx), nil)
		if res.Status == domain.TaskSucceeded {
			res.Details = []string{"removed stale locks only; locks of running restic processes were left alone"}
		}
		return res
	case domain.TaskSnapshots:
		return t.snapshots(ctx)
	case domain.TaskStats:
		return t.stats(ctx)
	case domain.TaskLs:
		return t.ls(ctx)
	}
	return Result{Status: domain.TaskFailed, Error: fmt.Sprintf("task type %q is not supported by this agent", m.TaskType)}
}

// task is one run of one message.
type task struct {
	*Runner
	rr    *restic.Runner
	repo  config.Repository
	m     events.TaskMessage
	hooks Hooks
}

func (t *task) started(op string) {
	if t.hooks.ResticStarted != nil {
		t.hooks.ResticStarted(op)
	}
}

func (t *task) backup(ctx context.Context) Result {
	b := t.m.Backup
	req := restic.BackupRequest{
		Paths: b.Paths, Excludes: b.Excludes, Tags: b.Tags, Host: t.Hostname,
		ExcludeCaches: b.ExcludeCaches, OneFileSystem: b.OneFileSystem,
	}
	t.started("backup")
	res, err := t.rr.Backup(ctx, req, t.hooks.Progress)
	if restic.KindOf(err) == restic.RepoMissing && t.repo.Initialize {
		if ierr := t.initialize(ctx); ierr != nil {
			return t.outcome(ierr, nil)
		}
		t.started("backup")
		res, err = t.rr.Backup(ctx, req, t.hooks.Progress)
	}
	out := t.outcome(err, nil)
	if res != nil {
		s := res.Summary
		out.Summary = &s
		out.Unreadable = res.Unreadable
	}
	return out
}

// initialize creates the missing repository, unless another task (of this agent or of another
// host) created it meanwhile.
func (t *task) initialize(ctx context.Context) error {
	mu := t.initLock(t.repo.Name)
	mu.Lock()
	defer mu.Unlock()
	t.started("init")
	_, err := t.rr.Init(ctx)
	var ee *restic.ExitError
	if errors.As(err, &ee) && strings.Contains(ee.Message, "config file already exists") {
		return nil
	}
	if err == nil {
		t.note(fmt.Sprintf("initialised the repository %q, which did not exist", t.repo.Name))
	}
	return err
}

func (t *task) forget(ctx context.Context) Result {
	t.started("forget")
	res, err := t.rr.Forget(ctx, restic.ForgetRequest{Retention: *t.m.Retention, Host: t.Hostname, Prune: t.m.Prune})
	var details []string
	if res != nil {
		details = append(details, fmt.Sprintf("kept %d snapshots, removed %d", len(res.Kept), len(res.Removed)))
		for _, s := range res.Removed {
			details = append(details, "removed snapshot "+s.ShortID+" of "+s.Time.UTC().Format(time.RFC3339))
		}
	}
	return t.outcome(err, details)
}

func (t *task) check(ctx context.Context) Result {
	t.started("check")
	res, err := t.rr.Check(ctx, t.m.ReadDataSubset)
	var details []string
	if res != nil {
		details = append(details, fmt.Sprintf("check found %d errors", res.NumErrors))
		details = append(details, res.Errors...)
		if len(res.BrokenPacks) > 0 {
			details = append(details, "broken packs: "+strings.Join(res.BrokenPacks, ", "))
		}
		if res.SuggestRepairIndex {
			details = append(details, "restic suggests: restic repair index")
		}
		if res.SuggestPrune {
			details = append(details, "restic suggests: restic prune")
		}
	}
	out := t.outcome(err, details)
	if out.Status == domain.TaskCancelled || !t.m.ReportHealth {
		return out
	}
	// A check reports the repository's health with its outcome: its stats when it passed, its
	// locks either way (a held exclusive lock is a reason for a check to fail). What goes wrong
	// here is noted and leaves the check's outcome as it is.
	if out.Status == domain.TaskSucceeded {
		if st := t.repoStats(ctx); st.Stats != nil {
			out.Stats = st.Stats
			out.Details = append(out.Details, st.Details...)
		} else {
			out.Details = append(out.Details, "stats after the check failed: "+st.Error)
		}
	}
	if locks, err := t.locks(ctx, time.Now()); err == nil {
		out.Locks = locks
		out.Details = append(out.Details, fmt.Sprintf("%d locks, %d stale", locks.Count, locks.Stale))
	} else {
		out.Details = append(out.Details, "listing locks after the check failed: "+err.Error())
	}
	return out
}

func (t *task) snapshots(ctx context.Context) Result {
	t.started("snapshots")
	list, err := t.rr.Snapshots(ctx, restic.SnapshotFilter{})
	out := t.outcome(err, nil)
	for _, s := range list {
		d := s.Domain()
		d.Repository = t.repo.Name
		out.Snapshots = append(out.Snapshots, d)
	}
	if err == nil {
		out.Details = []string{fmt.Sprintf("%d snapshots in %s", len(list), t.repo.Name)}
	}
	return out
}

func (t *task) note(s string) {
	if t.hooks.Line != nil {
		t.hooks.Line(restic.Line{Stream: restic.Stderr, Text: "restic-monitor: " + s})
	}
}

// outcome turns how restic ended into a Result; details go into the result as they are.
func (t *task) outcome(err error, details []string) Result {
	res := Result{Status: domain.TaskSucceeded, Details: details}
	if err == nil {
		return res
	}
	var ee *restic.ExitError
	if !errors.As(err, &ee) {
		// restic did not run or printed what cannot be read: the agent's side, and possibly
		// passing (restic being upgraded, a full disk).
		return Result{Status: domain.TaskFailed, Error: err.Error(), Transient: true, Details: details}
	}
	code := ee.Code
	res.ExitCode = &code
	res.Error = failureText(ee)
	switch ee.Kind {
	case restic.Partial:
		res.Status = domain.TaskPartial
	case restic.Interrupted:
		res.Status = domain.TaskCancelled
	case restic.RepoMissing:
		res.Status = domain.TaskFailed
		if !t.repo.Initialize {
			res.Error += fmt.Sprintf("; the agent does not create it: set initialize: true on repository %q in the agent's configuration, or run restic init", t.repo.Name)
		}
	case restic.WrongPassword:
		res.Status = domain.TaskFailed
	case restic.Locked:
		res.Status, res.Transient = domain.TaskFailed, true
	default:
		res.Status, res.Transient = domain.TaskFailed, ee.Retryable()
	}
	return res
}

// maxErrorText bounds the error text a result carries.
const maxErrorText = 4096

// failureText is restic's message followed by its last lines on stderr that add to it.
func failureText(ee *restic.ExitError) string {
	var b strings.Builder
	b.WriteString(ee.Error())
	if ee.Kind != restic.Partial && ee.Kind != restic.Interrupted {
		for _, l := range ee.LastLines {
			if strings.Contains(b.String(), l) {
				continue // already part of restic's message
			}
			if b.Len()+len(l)+1 > maxErrorText {
				break
			}
			b.WriteString("\n" + l)
		}
	}
	return b.String()
}

// Unlock removes stale locks of the message's repository: a restic process that died while
// holding a lock leaves it behind, and the locks of live processes stay.
func (r *Runner) Unlock(ctx context.Context, m events.TaskMessage, hooks Hooks) error {
	repo, ok := r.Config.Repository(m.Repository)
	if !ok {
		return fmt.Errorf("repository %q is not configured", m.Repository)
	}
	rr, err := r.resticRunner(repo, Limits{}, hooks)
	if err != nil {
		return err
	}
	if hooks.ResticStarted != nil {
		hooks.ResticStarted("unlock")
	}
	return rr.Unlock(ctx)
}

// Locked reports whether res failed because the repository was locked.
func Locked(res Result) bool { return res.ExitCode != nil && *res.ExitCode == 11 }
