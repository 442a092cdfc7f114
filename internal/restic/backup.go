package restic

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// BackupRequest is what one backup saves and how the snapshot is labelled.
type BackupRequest struct {
	Paths    []string
	Excludes []string
	Tags     []string
	// Host names the snapshot's host; empty lets restic use the machine's hostname.
	Host          string
	ExcludeCaches bool
	OneFileSystem bool
}

// BackupResult is what a finished backup reported.
type BackupResult struct {
	Summary domain.Summary
	// Unreadable lists each path restic could not read, once, in the order it reported them.
	Unreadable []string
	// Errors are all the errors restic reported while it carried on.
	Errors []ItemError
}

func (r *Runner) backupArgs(req BackupRequest) ([]string, error) {
	if len(req.Paths) == 0 {
		return nil, errors.New("restic backup: no paths to back up")
	}
	args := []string{"backup"}
	if req.Host != "" {
		args = append(args, "--host="+req.Host)
	}
	for _, t := range req.Tags {
		if t == "" || strings.Contains(t, ",") {
			return nil, fmt.Errorf("restic backup: tag %q is empty or contains a comma", t)
		}
		args = append(args, "--tag="+t)
	}
	for _, x := range req.Excludes {
		if x == "" {
			return nil, errors.New("restic backup: empty exclude pattern")
		}
		args = append(args, "--exclude="+x)
	}
	if req.ExcludeCaches {
		args = append(args, "--exclude-caches")
	}
	if req.OneFileSystem {
		args = append(args, "--one-file-system")
	}
	if r.opts.ReadConcurrency > 0 {
		args = append(args, "--read-concurrency="+strconv.Itoa(r.opts.ReadConcurrency))
	}
	// "--" keeps a path that starts with a dash from being read as a flag.
	return append(append(args, "--"), req.Paths...), nil
}

// Backup runs restic backup. onProgress, when not nil, receives restic's status reports.
//
// A backup that saved a snapshot but could not read some files returns its result together with
// an *ExitError of Kind Partial; the result lists the unreadable paths. Any other failure returns
// no result. A backup that exits successfully without a summary fails with ErrNoSummary.
func (r *Runner) Backup(ctx context.Context, req BackupRequest, onProgress func(domain.Progress)) (*BackupResult, error) {
	args, err := r.backupArgs(req)
	if err != nil {
		return nil, err
	}
	p := &backupParser{progressParser[backupSummary]{onProgress: onProgress}}
	o, err := r.run(ctx, "backup", args, true, p.line)
	if err != nil {
		return nil, err
	}
	return p.finish(o)
}

// statusMessage is restic's progress report; backup and restore share most of its fields.
type statusMessage struct {
	MessageType      string   `json:"message_type"`
	PercentDone      float64  `json:"percent_done"`
	SecondsRemaining uint64   `json:"seconds_remaining"`
	TotalFiles       uint64   `json:"total_files"`
	FilesDone        uint64   `json:"files_done"`
	FilesRestored    uint64   `json:"files_restored"`
	TotalBytes       uint64   `json:"total_bytes"`
	BytesDone        uint64   `json:"bytes_done"`
	BytesRestored    uint64   `json:"bytes_restored"`
	CurrentFiles     []string `json:"current_files"`
}

// progress converts a status report; backup counts files_done and bytes_done, restore
// files_restored and bytes_restored, and the other pair is always zero.
func (m statusMessage) progress() domain.Progress {
	return domain.Progress{
		PercentDone:  m.PercentDone,
		TotalFiles:   m.TotalFiles,
		FilesDone:    m.FilesDone + m.FilesRestored,
		TotalBytes:   m.TotalBytes,
		BytesDone:    m.BytesDone + m.BytesRestored,
		SecondsLeft:  m.SecondsRemaining,
		CurrentFiles: m.CurrentFiles,
	}
}

// backupSummary is restic backup's final message.
type backupSummary struct {
	SnapshotID          string  `json:"snapshot_id"`
	FilesNew            uint64  `json:"files_new"`
	FilesChanged        uint64  `json:"files_changed"`
	FilesUnmodified     uint64  `json:"files_unmodified"`
	DirsNew             uint64  `json:"dirs_new"`
	DirsChanged         uint64  `json:"dirs_changed"`
	DirsUnmodified      uint64  `json:"dirs_unmodified"`
	DataAdded           uint64  `json:"data_added"`
	DataAddedPacked     uint64  `json:"data_added_packed"`
	TotalFilesProcessed uint64  `json:"total_files_processed"`
	TotalBytesProcessed uint64  `json:"total_bytes_processed"`
	TotalDuration       float64 `json:"total_duration"`
}

func (s backupSummary) domain() domain.Summary {
	return domain.Summary{
		SnapshotID:          s.SnapshotID,
		FilesNew:            s.FilesNew,
		FilesChanged:        s.FilesChanged,
		FilesUnmodified:     s.FilesUnmodified,
		DirsNew:             s.DirsNew,
		DirsChanged:         s.DirsChanged,
		DirsUnmodified:      s.DirsUnmodified,
		DataAdded:           s.DataAdded,
		DataAddedPacked:     s.DataAddedPacked,
		TotalFilesProcessed: s.TotalFilesProcessed,
		TotalBytesProcessed: s.TotalBytesProcessed,
		DurationSeconds:     s.TotalDuration,
	}
}

// progressParser reads the status and summary messages of a restic command that reports both,
// passing progress on as it comes and keeping the last summary.
type progressParser[S any] struct {
	onProgress func(domain.Progress)
	summary    *S
}

func (p *progressParser[S]) line(raw []byte) {
	var head struct {
		MessageType string `json:"message_type"`
	}
	if !decodeMessage(raw, &head) {
		return
	}
	switch head.MessageType {
	case "status":
		var m statusMessage
		if p.onProgress != nil && decodeMessage(raw, &m) {
			p.onProgress(m.progress())
		}
	case "summary":
		var s S
		if decodeMessage(raw, &s) {
			p.summary = &s
		}
	}
}

type backupParser struct{ progressParser[backupSummary] }

func (p *backupParser) finish(o *outcome) (*BackupResult, error) {
	err := o.err()
	if err != nil && KindOf(err) != Partial {
		return nil, err
	}
	if p.summary == nil && err == nil {
		return nil, fmt.Errorf("restic backup: %w", ErrNoSummary)
	}
	res := &BackupResult{Errors: o.errors, Unreadable: unreadable(o.errors)}
	if p.summary != nil {
		res.Summary = p.summary.domain()
	}
	return res, err
}

// unreadable lists the items of errors once each. restic reports a directory it cannot open
// twice, once while scanning and once while archiving.
func unreadable(errs []ItemError) []string {
	var paths []string
	seen := map[string]bool{}
	for _, e := range errs {
		if e.Item != "" && !seen[e.Item] {
			seen[e.Item] = true
			paths = append(paths, e.Item)
		}
	}
	return paths
}
