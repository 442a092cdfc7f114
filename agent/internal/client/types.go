package client

import (
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// The request and response bodies of the agent API (docs/openapi.yaml, /v1/agent/). The API
// refuses unknown fields, so these carry exactly its fields.

// RegisterRequest enrolls a host with an enrollment token.
type RegisterRequest struct {
	Token         string            `json:"token"`
	Hostname      string            `json:"hostname"`
	OS            string            `json:"os"`
	Arch          string            `json:"arch"`
	AgentVersion  string            `json:"agentVersion"`
	ResticVersion string            `json:"resticVersion"`
	Labels        map[string]string `json:"labels,omitempty"`
	Disks         []domain.Disk     `json:"disks,omitempty"`
}

// Settings are what the control plane asks of the agent.
type Settings struct {
	HeartbeatIntervalSeconds int           `json:"heartbeatIntervalSeconds"`
	Limits                   domain.Limits `json:"limits"`
}

// Registration is a new agent's identity; Credential is shown only once.
type Registration struct {
	AgentID    string   `json:"agentId"`
	TenantID   string   `json:"tenantId"`
	Credential string   `json:"credential"`
	QueueURL   string   `json:"queueUrl"`
	Region     string   `json:"region"`
	Settings   Settings `json:"settings"`
}

// Heartbeat is the agent's periodic report of its state.
type Heartbeat struct {
	RunningTasks  []RunningTask `json:"runningTasks,omitempty"`
	BackoffUntil  *time.Time    `json:"backoffUntil,omitempty"`
	BackoffReason string        `json:"backoffReason,omitempty"`
	AgentVersion  string        `json:"agentVersion,omitempty"`
	ResticVersion string        `json:"resticVersion,omitempty"`
	Disks         []domain.Disk `json:"disks,omitempty"`
	LastError     string        `json:"lastError,omitempty"`
}

// RunningTask is one task the agent runs, with its latest progress.
type RunningTask struct {
	TaskID   string           `json:"taskId"`
	RunID    string           `json:"runId"`
	Progress *domain.Progress `json:"progress,omitempty"`
}

// HeartbeatReply carries the current settings and the running tasks an operator cancelled.
type HeartbeatReply struct {
	Settings       Settings  `json:"settings"`
	CancelledTasks []string  `json:"cancelledTasks"`
	ServerTime     time.Time `json:"serverTime"`
}

// QueueCredentials are short-lived AWS credentials for the agent's own queue.
type QueueCredentials struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	SessionToken    string    `json:"sessionToken"`
	Expiration      time.Time `json:"expiration"`
	QueueURL        string    `json:"queueUrl"`
	Region          string    `json:"region"`
}

// StartRequest names one start of a task: this agent process (AgentSession, random per
// process start) and this delivery of the message (DeliveryID).
type StartRequest struct {
	AgentSession string `json:"agentSession"`
	DeliveryID   string `json:"deliveryId"`
}

// Started is the run a start began, or began before when the same start is repeated.
type Started struct {
	TaskID           string `json:"taskId"`
	RunID            string `json:"runId"`
	Attempt          int    `json:"attempt"`
	Repeated         bool   `json:"repeated"`
	InterruptedRunID string `json:"interruptedRunId,omitempty"`
}

// ProgressReport is a running task's latest progress.
type ProgressReport struct {
	RunID    string          `json:"runId"`
	Progress domain.Progress `json:"progress"`
}

// ProgressReply says whether an operator cancelled the task.
type ProgressReply struct {
	CancelRequested bool `json:"cancelRequested"`
}

// Outcomes of a run.
const (
	OutcomeSucceeded = "succeeded"
	OutcomePartial   = "partial"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
)

// Result is how a run ended.
type Result struct {
	RunID           string          `json:"runId"`
	Outcome         string          `json:"outcome"`
	ExitCode        *int            `json:"exitCode,omitempty"`
	Summary         *domain.Summary `json:"summary,omitempty"`
	UnreadablePaths []string        `json:"unreadablePaths,omitempty"`
	Error           string          `json:"error,omitempty"`
	Retryable       bool            `json:"retryable,omitempty"`
	// Stats and Locks are the repository's health, sent for a stats task and for a check whose
	// message asked for it (events.TaskMessage.ReportHealth).
	Stats         *domain.RepoStats `json:"stats,omitempty"`
	Locks         *domain.LockInfo  `json:"locks,omitempty"`
	RestoreTarget string            `json:"restoreTarget,omitempty"`
}

// ListingUpload is one upload of an ls run's listing; Seq numbers a run's uploads from 0 and
// makes sending one again harmless; Done marks the last.
type ListingUpload struct {
	RunID      string            `json:"runId"`
	SnapshotID string            `json:"snapshotId"`
	Path       string            `json:"path"`
	Seq        int64             `json:"seq"`
	Chunks     []domain.DirChunk `json:"chunks"`
	Done       bool              `json:"done,omitempty"`
}

// ListingReply says whether the listing reached its size cap (stop uploading) and how big it is.
type ListingReply struct {
	Repeated  bool  `json:"repeated"`
	Truncated bool  `json:"truncated"`
	Bytes     int64 `json:"bytes"`
	Entries   int64 `json:"entries"`
}

// ResultReply is the run and its task as recorded.
type ResultReply struct {
	TaskID      string            `json:"taskId"`
	TaskStatus  domain.TaskStatus `json:"taskStatus"`
	RunID       string            `json:"runId"`
	RunStatus   domain.TaskStatus `json:"runStatus"`
	Attempt     int               `json:"attempt"`
	NextRetryAt *time.Time        `json:"nextRetryAt,omitempty"`
	Repeated    bool              `json:"repeated"`
}

// LogChunk is one ordered piece of a run's output; Seq counts from 0 and makes sending it again
// harmless.
type LogChunk struct {
	Seq   int64    `json:"seq"`
	Lines []string `json:"lines"`
}

// logReply says whether a chunk was stored now or before.
type logReply struct {
	Stored bool `json:"stored"`
}

// SnapshotReport is the complete list of one repository's snapshots.
type SnapshotReport struct {
	Repository string         `json:"repository"`
	Snapshots  []SnapshotInfo `json:"snapshots"`
}

// SnapshotInfo is one snapshot.
type SnapshotInfo struct {
	ID        string    `json:"id"`
	ShortID   string    `json:"shortId,omitempty"`
	Time      time.Time `json:"time"`
	Hostname  string    `json:"hostname"`
	Paths     []string  `json:"paths"`
	Tags      []string  `json:"tags,omitempty"`
	PolicyID  string    `json:"policyId,omitempty"`
	SizeBytes uint64    `json:"sizeBytes,omitempty"`
}

// Refusal codes: a 409 from the agent API says with one of these what to do next.
const (
	// CodeTaskFinished: delete the message without running the task.
	CodeTaskFinished = "task_finished"
	// CodeTaskNotStartable: the task waits for a retry or missed its deadline; delete the
	// message without running it.
	CodeTaskNotStartable = "task_not_startable"
	// CodeTaskRunning: this process already runs the task from another delivery.
	CodeTaskRunning = "task_running"
	// CodeRunSuperseded: the task was started again after this run; stop it, drop its reports.
	CodeRunSuperseded = "run_superseded"
	// CodeRunFinished: the run's result is recorded.
	CodeRunFinished = "run_finished"
	// CodeResultConflict: another result is recorded for the run.
	CodeResultConflict = "result_conflict"
)
