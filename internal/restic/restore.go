package restic

import (
	"context"
	"errors"
	"fmt"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// RestoreRequest says what to restore where.
type RestoreRequest struct {
	// SnapshotID is a snapshot ID, a unique prefix of one, or "latest".
	SnapshotID string
	// IncludePaths restricts the restore to these paths of the snapshot; empty restores all.
	IncludePaths []string
	// Target is the directory restored files are written under.
	Target string
	// Verify reads every restored file back and compares it with the snapshot.
	Verify bool
}

// RestoreResult is restic restore's summary.
type RestoreResult struct {
	TotalFiles    uint64 `json:"total_files"`
	FilesRestored uint64 `json:"files_restored"`
	FilesSkipped  uint64 `json:"files_skipped"`
	FilesDeleted  uint64 `json:"files_deleted"`
	TotalBytes    uint64 `json:"total_bytes"`
	BytesRestored uint64 `json:"bytes_restored"`
	BytesSkipped  uint64 `json:"bytes_skipped"`
	// Errors are the files restic could not restore or that failed verification.
	Errors []ItemError `json:"-"`
}

func restoreArgs(req RestoreRequest) ([]string, error) {
	if req.SnapshotID == "" {
		return nil, errors.New("restic restore: no snapshot")
	}
	if req.Target == "" {
		return nil, errors.New("restic restore: no target directory")
	}
	args := []string{"restore", "--target=" + req.Target}
	for _, p := range req.IncludePaths {
		if p == "" {
			return nil, errors.New("restic restore: empty include path")
		}
		args = append(args, "--include="+p)
	}
	if req.Verify {
		args = append(args, "--verify")
	}
	return append(args, "--", req.SnapshotID), nil
}

// Restore runs restic restore. onProgress, when not nil, receives restic's status reports. A
// restore with errors (including files that failed verification) returns its result together
// with an *ExitError.
func (r *Runner) Restore(ctx context.Context, req RestoreRequest, onProgress func(domain.Progress)) (*RestoreResult, error) {
	args, err := restoreArgs(req)
	if err != nil {
		return nil, err
	}
	p := &restoreParser{progressParser[RestoreResult]{onProgress: onProgress}}
	o, err := r.run(ctx, "restore", args, true, p.line)
	if err != nil {
		return nil, err
	}
	return p.finish(o)
}

type restoreParser struct{ progressParser[RestoreResult] }

func (p *restoreParser) finish(o *outcome) (*RestoreResult, error) {
	err := o.err()
	if p.summary == nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("restic restore: %w", ErrNoSummary)
	}
	res := *p.summary
	res.Errors = o.errors
	return &res, err
}
