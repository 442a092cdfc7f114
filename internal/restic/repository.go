package restic

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Snapshot is one snapshot as restic lists it.
type Snapshot struct {
	ID             string           `json:"id"`
	ShortID        string           `json:"short_id"`
	Time           time.Time        `json:"time"`
	Parent         string           `json:"parent,omitempty"`
	Tree           string           `json:"tree"`
	Paths          []string         `json:"paths"`
	Hostname       string           `json:"hostname"`
	Username       string           `json:"username,omitempty"`
	Tags           []string         `json:"tags,omitempty"`
	Excludes       []string         `json:"excludes,omitempty"`
	ProgramVersion string           `json:"program_version,omitempty"`
	Summary        *SnapshotSummary `json:"summary,omitempty"`
}

// SnapshotSummary is the statistics restic stored with a snapshot when it was made.
type SnapshotSummary struct {
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
	FilesNew            uint64    `json:"files_new"`
	FilesChanged        uint64    `json:"files_changed"`
	FilesUnmodified     uint64    `json:"files_unmodified"`
	DirsNew             uint64    `json:"dirs_new"`
	DirsChanged         uint64    `json:"dirs_changed"`
	DirsUnmodified      uint64    `json:"dirs_unmodified"`
	DataAdded           uint64    `json:"data_added"`
	DataAddedPacked     uint64    `json:"data_added_packed"`
	TotalFilesProcessed uint64    `json:"total_files_processed"`
	TotalBytesProcessed uint64    `json:"total_bytes_processed"`
}

// Domain returns the snapshot as the control plane records it. The caller adds what restic
// does not know: tenant, agent, repository name and policy.
func (s Snapshot) Domain() domain.Snapshot {
	d := domain.Snapshot{
		ID:       s.ID,
		ShortID:  s.ShortID,
		Time:     s.Time,
		Hostname: s.Hostname,
		Paths:    s.Paths,
		Tags:     s.Tags,
	}
	if s.Summary != nil {
		d.SizeBytes = s.Summary.TotalBytesProcessed
	}
	return d
}

// SnapshotFilter restricts Snapshots to one host's snapshots carrying all of Tags and including
// all of Paths. The zero value lists every snapshot.
type SnapshotFilter struct {
	Host  string
	Tags  []string
	Paths []string
}

// Snapshots lists the repository's snapshots, oldest first.
func (r *Runner) Snapshots(ctx context.Context, f SnapshotFilter) ([]Snapshot, error) {
	filter, err := snapshotFilterArgs("snapshots", f.Host, f.Tags, f.Paths)
	if err != nil {
		return nil, err
	}
	p := &snapshotsParser{}
	o, err := r.run(ctx, "snapshots", append([]string{"snapshots"}, filter...), true, p.line)
	if err != nil {
		return nil, err
	}
	return p.finish(o)
}

type snapshotsParser struct {
	snapshots []Snapshot
	found     bool
	parseErr  error
}

func (p *snapshotsParser) line(raw []byte) {
	if p.found {
		return
	}
	var list []Snapshot
	ok, err := decodeDocument(raw, &list)
	if !ok {
		return
	}
	p.found, p.parseErr, p.snapshots = true, err, list
}

func (p *snapshotsParser) finish(o *outcome) ([]Snapshot, error) {
	if err := o.err(); err != nil {
		return nil, err
	}
	if p.parseErr != nil {
		return nil, fmt.Errorf("restic snapshots: %w: %v", ErrUnexpectedOutput, p.parseErr)
	}
	if !p.found {
		return nil, fmt.Errorf("restic snapshots: %w: no snapshot list", ErrUnexpectedOutput)
	}
	if p.snapshots == nil {
		return []Snapshot{}, nil
	}
	return p.snapshots, nil
}

// Init creates the repository and returns its ID.
func (r *Runner) Init(ctx context.Context) (string, error) {
	p := &initParser{}
	o, err := r.run(ctx, "init", []string{"init"}, true, p.line)
	if err != nil {
		return "", err
	}
	return p.finish(o)
}

type initParser struct{ id string }

func (p *initParser) line(raw []byte) {
	var m struct {
		MessageType string `json:"message_type"`
		ID          string `json:"id"`
	}
	if decodeMessage(raw, &m) && m.MessageType == "initialized" {
		p.id = m.ID
	}
}

func (p *initParser) finish(o *outcome) (string, error) {
	if err := o.err(); err != nil {
		return "", err
	}
	if p.id == "" {
		return "", fmt.Errorf("restic init: %w: no repository ID", ErrUnexpectedOutput)
	}
	return p.id, nil
}

// CheckResult is what restic check found.
type CheckResult struct {
	NumErrors          int64    `json:"num_errors"`
	BrokenPacks        []string `json:"broken_packs"`
	SuggestRepairIndex bool     `json:"suggest_repair_index"`
	SuggestPrune       bool     `json:"suggest_prune"`
	// Errors are restic's messages about the damage, redacted, one per message.
	Errors []string `json:"-"`
}

// Check verifies the repository's structure and, when readDataSubset is set (n/t, a percentage
// or a size, as restic's --read-data-subset takes it), reads back that part of the data. A
// repository with errors returns its result together with an *ExitError.
func (r *Runner) Check(ctx context.Context, readDataSubset string) (*CheckResult, error) {
	args := []string{"check"}
	if readDataSubset != "" {
		args = append(args, "--read-data-subset="+readDataSubset)
	}
	p := &checkParser{}
	o, err := r.run(ctx, "check", args, true, p.line)
	if err != nil {
		return nil, err
	}
	return p.finish(o)
}

type checkParser struct{ res *CheckResult }

func (p *checkParser) line(raw []byte) {
	var m struct {
		MessageType string `json:"message_type"`
		CheckResult
	}
	if decodeMessage(raw, &m) && m.MessageType == "summary" {
		p.res = &m.CheckResult
	}
}

func (p *checkParser) finish(o *outcome) (*CheckResult, error) {
	err := o.err()
	if p.res == nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("restic check: %w", ErrNoSummary)
	}
	res := *p.res
	for _, e := range o.errors {
		if msg := strings.TrimSpace(e.String()); msg != "" {
			res.Errors = append(res.Errors, msg)
		}
	}
	return &res, err
}

// Prune removes data no snapshot uses any more.
func (r *Runner) Prune(ctx context.Context) error {
	return r.runPlain(ctx, "prune")
}

// Unlock removes stale locks: those of restic processes that no longer run. Locks of running
// processes stay; this package never removes them (restic unlock --remove-all).
func (r *Runner) Unlock(ctx context.Context) error {
	return r.runPlain(ctx, "unlock")
}

// runPlain runs a command whose output restic has not made JSON; it only goes to the log.
func (r *Runner) runPlain(ctx context.Context, op string) error {
	o, err := r.run(ctx, op, []string{op}, true, nil)
	if err != nil {
		return err
	}
	return o.err()
}

// Version returns the version of the restic that opts selects, such as "0.18.1".
func Version(ctx context.Context, opts Options) (string, error) {
	r, err := newRunner(Repository{}, opts)
	if err != nil {
		return "", err
	}
	p := &versionParser{}
	o, err := r.run(ctx, "version", []string{"version"}, false, p.line)
	if err != nil {
		return "", err
	}
	return p.finish(o)
}

type versionParser struct{ version string }

func (p *versionParser) line(raw []byte) {
	var m struct {
		MessageType string `json:"message_type"`
		Version     string `json:"version"`
	}
	if decodeMessage(raw, &m) && m.MessageType == "version" {
		p.version = m.Version
	}
}

func (p *versionParser) finish(o *outcome) (string, error) {
	if err := o.err(); err != nil {
		return "", err
	}
	if p.version == "" {
		return "", fmt.Errorf("restic version: %w: no version", ErrUnexpectedOutput)
	}
	return p.version, nil
}
