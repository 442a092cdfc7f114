package domain

import (
	"regexp"
	"strconv"
	"time"
)

func itoa(i int) string { return strconv.Itoa(i) }

// Progress is the latest progress an agent reported for a running task.
type Progress struct {
	PercentDone  float64  `json:"percentDone"`
	TotalFiles   uint64   `json:"totalFiles,omitempty"`
	FilesDone    uint64   `json:"filesDone,omitempty"`
	TotalBytes   uint64   `json:"totalBytes,omitempty"`
	BytesDone    uint64   `json:"bytesDone,omitempty"`
	SecondsLeft  uint64   `json:"secondsLeft,omitempty"`
	CurrentFiles []string `json:"currentFiles,omitempty"`
}

// Summary is what restic reported at the end of a backup.
type Summary struct {
	SnapshotID          string  `json:"snapshotId,omitempty"`
	FilesNew            uint64  `json:"filesNew"`
	FilesChanged        uint64  `json:"filesChanged"`
	FilesUnmodified     uint64  `json:"filesUnmodified"`
	DirsNew             uint64  `json:"dirsNew"`
	DirsChanged         uint64  `json:"dirsChanged"`
	DirsUnmodified      uint64  `json:"dirsUnmodified"`
	DataAdded           uint64  `json:"dataAdded"`
	DataAddedPacked     uint64  `json:"dataAddedPacked,omitempty"`
	TotalFilesProcessed uint64  `json:"totalFilesProcessed"`
	TotalBytesProcessed uint64  `json:"totalBytesProcessed"`
	DurationSeconds     float64 `json:"durationSeconds"`
}

// RunInterrupted is the status of a run whose agent stopped before it reported a result: the
// agent crashed, its host rebooted, or it shut down. Only runs and the attempts listed on a task
// have it; the task itself goes on with a new run when its message is delivered again.
const RunInterrupted TaskStatus = "interrupted"

// Run is one execution of a task by an agent: the place its outcome, summary and logs live.
type Run struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenantId"`
	AgentID    string     `json:"agentId"`
	TaskID     string     `json:"taskId"`
	PolicyID   string     `json:"policyId,omitempty"`
	Type       TaskType   `json:"type"`
	Attempt    int        `json:"attempt"`
	Status     TaskStatus `json:"status"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	Progress   *Progress  `json:"progress,omitempty"`
	Summary    *Summary   `json:"summary,omitempty"`
	ExitCode   *int       `json:"exitCode,omitempty"`
	Error      string     `json:"error,omitempty"`
	// UnreadablePaths lists what a partial backup could not read.
	UnreadablePaths []string `json:"unreadablePaths,omitempty"`
	// RestoreTarget is the directory a restore wrote into, as the agent reported it: the
	// task's target, or the temporary directory the agent created when the task named none.
	RestoreTarget string `json:"restoreTarget,omitempty"`
	// LogBytes and LogLines count the log accepted for this run.
	LogBytes int64 `json:"logBytes"`
	LogLines int64 `json:"logLines"`
	// AgentSession and DeliveryID say which start made the run: the agent process (a random ID
	// it picks each time it starts) and the delivery of the task's queue message. The same start
	// repeated names both again; a start from another session means the process that ran this
	// run is gone.
	AgentSession string `json:"agentSession,omitempty"`
	DeliveryID   string `json:"deliveryId,omitempty"`
	// LastListedAt is the last heartbeat that listed the run as running.
	LastListedAt *time.Time `json:"lastListedAt,omitempty"`
	// UnlistedAt is a heartbeat of the run's agent, online, that left the run out after the
	// listing grace; when the agent goes on without it for the scheduler's redelivery window
	// (time for a restarted agent to get the task's message back and start it anew), the run
	// is given up as lost. A later listing makes it void.
	UnlistedAt *time.Time `json:"unlistedAt,omitempty"`
	// LostAt is when the scheduler gave the run up because its agent was lost (it went offline
	// for too long, or its heartbeats stopped listing the run). The run is then interrupted and
	// its task failed; a result the agent reports later is still recorded on the run, and
	// never changes the task.
	LostAt *time.Time `json:"lostAt,omitempty"`
}

// LogChunk is one ordered piece of a run's output. Seq makes delivery idempotent.
type LogChunk struct {
	TenantID  string    `json:"tenantId"`
	RunID     string    `json:"runId"`
	Seq       int64     `json:"seq"`
	Lines     []string  `json:"lines"`
	Bytes     int64     `json:"bytes"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Log chunk limits.
const (
	MaxLogChunkLines = 5000
	MaxLogChunkBytes = 256 * 1024
	MaxLogSeq        = 9_999_999_999
)

// Validate checks a log chunk before it is stored.
func (c LogChunk) Validate() error {
	var fe fieldErrors
	if c.Seq < 0 || c.Seq > MaxLogSeq {
		fe.add("seq", "must be between 0 and %d", int64(MaxLogSeq))
	}
	size := 0
	for _, l := range c.Lines {
		size += len(l)
	}
	switch {
	case len(c.Lines) == 0:
		fe.add("lines", "must not be empty")
	case len(c.Lines) > MaxLogChunkLines:
		fe.add("lines", "at most %d lines per chunk (got %d)", MaxLogChunkLines, len(c.Lines))
	case size > MaxLogChunkBytes:
		// Measured, not taken from Bytes: the stored item must stay under DynamoDB's item size
		// whatever the sender claims.
		fe.add("lines", "at most %d bytes per chunk (got %d)", MaxLogChunkBytes, size)
	}
	if c.Bytes < 0 || c.Bytes > MaxLogChunkBytes {
		fe.add("bytes", "must be between 0 and %d", MaxLogChunkBytes)
	}
	return fe.err()
}

// Snapshot is one restic snapshot as an agent last reported it.
type Snapshot struct {
	TenantID   string    `json:"tenantId"`
	AgentID    string    `json:"agentId"`
	ID         string    `json:"id"`
	ShortID    string    `json:"shortId,omitempty"`
	Repository string    `json:"repository"`
	Time       time.Time `json:"time"`
	Hostname   string    `json:"hostname"`
	Paths      []string  `json:"paths"`
	Tags       []string  `json:"tags,omitempty"`
	PolicyID   string    `json:"policyId,omitempty"`
	SizeBytes  uint64    `json:"sizeBytes,omitempty"`
}

var snapshotIDPattern = regexp.MustCompile(`^[0-9a-f]{8,64}$`)

// Validate checks a snapshot before it is stored.
func (s Snapshot) Validate() error {
	var fe fieldErrors
	if !snapshotIDPattern.MatchString(s.ID) {
		fe.add("id", "must be a restic snapshot ID (hexadecimal)")
	}
	if !ValidName(s.Repository) {
		fe.add("repository", "must name a repository")
	}
	if s.Time.IsZero() {
		fe.add("time", "must be set")
	}
	return fe.err()
}

// SlotKind is which of a policy's schedules a slot follows.
type SlotKind string

const (
	SlotBackup SlotKind = "backup"
	SlotForget SlotKind = "forget"
	SlotCheck  SlotKind = "check"
	SlotStats  SlotKind = "stats"
)

// Slot is one schedule of one policy on one agent: the unit the scheduler claims and dispatches.
type Slot struct {
	TenantID         string     `json:"tenantId"`
	PolicyID         string     `json:"policyId"`
	AgentID          string     `json:"agentId"`
	Kind             SlotKind   `json:"kind"`
	NextRunAt        *time.Time `json:"nextRunAt,omitempty"` // nil: not due (disabled)
	LastDispatchedAt *time.Time `json:"lastDispatchedAt,omitempty"`
	LastTaskID       string     `json:"lastTaskId,omitempty"`
	LastSuccessAt    *time.Time `json:"lastSuccessAt,omitempty"`
	WaitReason       string     `json:"waitReason,omitempty"`
	Overdue          bool       `json:"overdue,omitempty"`
}
