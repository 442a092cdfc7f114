package domain

import "time"

// RepoStats is what restic stats reported about a repository: its raw-data mode (the stored
// size, the size before compression, the blob and snapshot counts) and the file count of the
// latest snapshot (restore-size mode).
type RepoStats struct {
	RawDataSize      uint64    `json:"rawDataSize"`
	UncompressedSize uint64    `json:"uncompressedSize"`
	FileCount        uint64    `json:"fileCount"`
	SnapshotsCount   uint64    `json:"snapshotsCount"`
	BlobCount        uint64    `json:"blobCount"`
	CompressionRatio float64   `json:"compressionRatio"`
	ReportedAt       time.Time `json:"reportedAt"`
	AgentID          string    `json:"agentId"`
}

// CheckResult is the outcome of a repository's latest check.
type CheckResult struct {
	At      time.Time `json:"at"`
	OK      bool      `json:"ok"`
	RunID   string    `json:"runId"`
	AgentID string    `json:"agentId"`
	Error   string    `json:"error,omitempty"`
}

// LockInfo counts a repository's locks as an agent last saw them; a lock is stale as restic
// judges it: older than StaleLockAge (restic refreshes live locks every five minutes), or held
// by a process that no longer runs on the host that looked.
type LockInfo struct {
	Count     int       `json:"count"`
	Stale     int       `json:"stale"`
	CheckedAt time.Time `json:"checkedAt"`
}

// StaleLockAge is restic's own threshold for a stale lock.
const StaleLockAge = 30 * time.Minute

// HealthPoint is one day (UTC) of a repository's history: the day's latest stats and check.
type HealthPoint struct {
	Date           string `json:"date"`
	RawDataSize    uint64 `json:"rawDataSize"`
	FileCount      uint64 `json:"fileCount"`
	SnapshotsCount uint64 `json:"snapshotsCount"`
	CheckOK        *bool  `json:"checkOk,omitempty"`
}

// HealthHistoryDays is how long a day of history is kept.
const HealthHistoryDays = 90

// RepositoryHealth is what is known about a repository's health.
type RepositoryHealth struct {
	Repository string       `json:"repository"`
	Stats      *RepoStats   `json:"stats,omitempty"`
	LastCheck  *CheckResult `json:"lastCheck,omitempty"`
	Locks      *LockInfo    `json:"locks,omitempty"`
	// LastCheckOKAt is the latest successful check; CheckOverdue says it is (or, without one,
	// the first report about the repository is) more than CheckOverdueAfterDays ago.
	LastCheckOKAt         *time.Time    `json:"lastCheckOkAt,omitempty"`
	CheckOverdue          bool          `json:"checkOverdue"`
	CheckOverdueAfterDays int           `json:"checkOverdueAfterDays"`
	History               []HealthPoint `json:"history"`
}
