package restic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// RawDataStats is restic stats --mode raw-data: what the repository stores.
type RawDataStats struct {
	TotalSize             uint64  `json:"total_size"`
	TotalUncompressedSize uint64  `json:"total_uncompressed_size"`
	CompressionRatio      float64 `json:"compression_ratio"`
	TotalBlobCount        uint64  `json:"total_blob_count"`
	SnapshotsCount        uint64  `json:"snapshots_count"`
}

// RestoreSizeStats is restic stats --mode restore-size: what restoring would write.
type RestoreSizeStats struct {
	TotalSize      uint64 `json:"total_size"`
	TotalFileCount uint64 `json:"total_file_count"`
	SnapshotsCount uint64 `json:"snapshots_count"`
}

// StatsRawData reports the repository's stored size, blob and snapshot counts.
func (r *Runner) StatsRawData(ctx context.Context) (*RawDataStats, error) {
	var out RawDataStats
	if err := r.stats(ctx, []string{"stats", "--mode", "raw-data"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StatsLatestRestoreSize reports the size and file count of the repository's latest snapshot;
// a repository without snapshots reports zeros.
func (r *Runner) StatsLatestRestoreSize(ctx context.Context) (*RestoreSizeStats, error) {
	var out RestoreSizeStats
	if err := r.stats(ctx, []string{"stats", "--mode", "restore-size", "latest"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (r *Runner) stats(ctx context.Context, args []string, v any) error {
	found := false
	var parseErr error
	o, err := r.run(ctx, "stats", args, false, func(raw []byte) {
		raw = bytes.TrimSpace(raw)
		if found || len(raw) == 0 || raw[0] != '{' {
			return
		}
		found, parseErr = true, json.Unmarshal(raw, v)
	})
	if err != nil {
		return err
	}
	if err := o.err(); err != nil {
		return err
	}
	switch {
	case parseErr != nil:
		return fmt.Errorf("restic stats: %w: %v", ErrUnexpectedOutput, parseErr)
	case !found:
		return fmt.Errorf("restic stats: %w: no statistics", ErrUnexpectedOutput)
	}
	return nil
}

// Lock is one lock file of the repository, as restic cat lock shows it.
type Lock struct {
	ID        string    `json:"-"`
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Hostname  string    `json:"hostname"`
	Username  string    `json:"username"`
	PID       int       `json:"pid"`
}

var lockIDPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ListLocks returns the IDs of the repository's lock files. Listing takes no lock.
func (r *Runner) ListLocks(ctx context.Context) ([]string, error) {
	var ids []string
	o, err := r.run(ctx, "list", []string{"list", "locks", "--no-lock"}, false, func(raw []byte) {
		if id := string(bytes.TrimSpace(raw)); lockIDPattern.MatchString(id) {
			ids = append(ids, id)
		}
	})
	if err != nil {
		return nil, err
	}
	return ids, o.err()
}

// maxLockBytes bounds what is read of one lock file; restic's are about 200 bytes.
const maxLockBytes = 64 << 10

// CatLock reads one lock file. A lock removed since it was listed is an *ExitError.
func (r *Runner) CatLock(ctx context.Context, id string) (*Lock, error) {
	if !lockIDPattern.MatchString(id) {
		return nil, fmt.Errorf("restic cat lock: %q is not a lock ID", id)
	}
	var doc []byte
	o, err := r.run(ctx, "cat", []string{"cat", "lock", "--no-lock", id}, false, func(raw []byte) {
		if len(doc)+len(raw) <= maxLockBytes {
			doc = append(append(doc, raw...), '\n')
		}
	})
	if err != nil {
		return nil, err
	}
	if err := o.err(); err != nil {
		return nil, err
	}
	l := Lock{ID: id}
	if err := json.Unmarshal(doc, &l); err != nil {
		return nil, fmt.Errorf("restic cat lock: %w: %v", ErrUnexpectedOutput, err)
	}
	return &l, nil
}
