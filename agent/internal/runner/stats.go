package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/restic"
)

// maxLocksInspected bounds the lock files one task reads (one restic cat lock each); more are
// counted, and the stale ones among the first maxLocksInspected.
const maxLocksInspected = 50

// stats is a stats task: the repository's size (raw-data), the latest snapshot's file count
// (restore-size) and its locks.
func (t *task) stats(ctx context.Context) Result {
	res := t.repoStats(ctx)
	if res.Status != domain.TaskSucceeded {
		return res
	}
	locks, err := t.locks(ctx, time.Now())
	if err != nil {
		return t.outcome(err, res.Details)
	}
	res.Locks = locks
	res.Details = append(res.Details, fmt.Sprintf("%d locks, %d stale", locks.Count, locks.Stale))
	return res
}

// repoStats runs restic stats in the two modes a health report needs.
func (t *task) repoStats(ctx context.Context) Result {
	t.started("stats")
	raw, err := t.rr.StatsRawData(ctx)
	if err != nil {
		return t.outcome(err, nil)
	}
	st := &domain.RepoStats{
		RawDataSize: raw.TotalSize, UncompressedSize: raw.TotalUncompressedSize, BlobCount: raw.TotalBlobCount,
		SnapshotsCount: raw.SnapshotsCount, CompressionRatio: raw.CompressionRatio,
	}
	if raw.SnapshotsCount > 0 {
		t.started("stats")
		size, err := t.rr.StatsLatestRestoreSize(ctx)
		if err != nil {
			return t.outcome(err, nil)
		}
		st.FileCount = size.TotalFileCount
	}
	return Result{Status: domain.TaskSucceeded, Stats: st, Details: []string{fmt.Sprintf(
		"repository stores %d bytes (%d uncompressed, ratio %.2f) in %d blobs; %d snapshots, the latest with %d files",
		st.RawDataSize, st.UncompressedSize, st.CompressionRatio, st.BlobCount, st.SnapshotsCount, st.FileCount)}}
}

// locks lists the repository's locks and counts the stale ones, as restic judges them: older
// than restic's stale age (a live restic refreshes its locks every five minutes), or held by a
// process that no longer runs on this host.
func (t *task) locks(ctx context.Context, now time.Time) (*domain.LockInfo, error) {
	t.started("list locks")
	ids, err := t.rr.ListLocks(ctx)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname() // restic records os.Hostname in its locks
	info := &domain.LockInfo{Count: len(ids), CheckedAt: now.UTC()}
	for i, id := range ids {
		if i == maxLocksInspected {
			break
		}
		l, err := t.rr.CatLock(ctx, id)
		var ee *restic.ExitError
		switch {
		case errors.As(err, &ee):
			info.Count-- // removed since it was listed
			continue
		case err != nil:
			return nil, err
		}
		if StaleLock(*l, now, host) {
			info.Stale++
		}
	}
	return info, nil
}

// StaleLock reports whether restic would take l for stale, seen at now on host.
func StaleLock(l restic.Lock, now time.Time, host string) bool {
	if now.Sub(l.Time) > domain.StaleLockAge {
		return true
	}
	return host != "" && l.Hostname == host && l.PID > 0 && !processAlive(l.PID)
}

// processAlive reports whether pid runs on this host; when that cannot be told, it does.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM) || !(errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH))
}
