package events

import (
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// The events of runs and agents that reports cause, beside the scheduler's.
const (
	TypeRunSucceeded     EventType = "run.succeeded"     // a run ended well
	TypeRunFailed        EventType = "run.failed"        // a run (not a check) ended in failure
	TypeRunPartial       EventType = "run.partial"       // a backup made a snapshot but could not read some files
	TypeCheckFailed      EventType = "check.failed"      // a check run ended in failure (instead of run.failed)
	TypeRepositoryLocked EventType = "repository.locked" // a run failed because restic found the repository locked
	TypeAgentEnrolled    EventType = "agent.enrolled"    // an agent registered with an enrollment token
	TypeAgentBackoff     EventType = "agent.backoff"     // an agent's heartbeat set, changed or ended its backoff
)

// FailReason classifies a failed run by restic's exit code (restic's doc/075_scripting.rst), so
// a consumer can act without parsing the error text.
type FailReason string

// The failure reasons.
const (
	ReasonFailed            FailReason = "failed"             // exit code 1, or no code (the agent could not run restic)
	ReasonRepositoryMissing FailReason = "repository_missing" // exit code 10
	ReasonRepositoryLocked  FailReason = "repository_locked"  // exit code 11
	ReasonWrongPassword     FailReason = "wrong_password"     // exit code 12
	ReasonInterrupted       FailReason = "interrupted"        // exit code 130, or a cancelled run
	ReasonUnknown           FailReason = "unknown"            // any code restic does not document
)

// FailReasonOf is the reason of a failed run that exited with code (nil: restic did not run or
// its code is unknown) and ended with status.
func FailReasonOf(code *int, status domain.TaskStatus) FailReason {
	if status == domain.TaskCancelled {
		return ReasonInterrupted
	}
	if code == nil {
		return ReasonFailed
	}
	switch *code {
	case 1:
		return ReasonFailed
	case 10:
		return ReasonRepositoryMissing
	case 11:
		return ReasonRepositoryLocked
	case 12:
		return ReasonWrongPassword
	case 130:
		return ReasonInterrupted
	}
	return ReasonUnknown
}

// Valid reports whether r is a known reason.
func (r FailReason) Valid() bool {
	switch r {
	case ReasonFailed, ReasonRepositoryMissing, ReasonRepositoryLocked, ReasonWrongPassword, ReasonInterrupted, ReasonUnknown:
		return true
	}
	return false
}

// RunFields are what every run event says about the run: where it ran, what for, how it went.
type RunFields struct {
	RunID      string `json:"runId"`
	TaskID     string `json:"taskId"`
	AgentID    string `json:"agentId"`
	Hostname   string `json:"hostname,omitempty"`
	PolicyID   string `json:"policyId,omitempty"`
	PolicyName string `json:"policyName,omitempty"`
	// TaskType says what ran: backup, forget, prune, check, restore, unlock, snapshots.
	TaskType   domain.TaskType `json:"taskType"`
	Repository string          `json:"repository"`
	Attempt    int             `json:"attempt"`
	// Outcome is the run's status: succeeded, partial, failed or cancelled.
	Outcome    domain.TaskStatus `json:"outcome"`
	StartedAt  time.Time         `json:"startedAt"`
	FinishedAt time.Time         `json:"finishedAt"`
	// DurationSeconds is restic's own duration when it reported one, else finish minus start.
	DurationSeconds float64 `json:"durationSeconds"`
	// ExitCode is restic's; absent when restic did not run to an exit.
	ExitCode   *int   `json:"exitCode,omitempty"`
	SnapshotID string `json:"snapshotId,omitempty"`
	// BytesAdded and BytesProcessed come from a backup's summary.
	BytesAdded     uint64 `json:"bytesAdded,omitempty"`
	BytesProcessed uint64 `json:"bytesProcessed,omitempty"`
	FilesProcessed uint64 `json:"filesProcessed,omitempty"`
	// Error is the agent's error text, at most MaxEventErrorBytes long.
	Error string `json:"error,omitempty"`
}

// RunSucceededData is the data of run.succeeded.
type RunSucceededData struct{ RunFields }

// RunPartialData is the data of run.partial.
type RunPartialData struct {
	RunFields
	// UnreadablePaths lists (some of) what the backup could not read.
	UnreadablePaths []string `json:"unreadablePaths,omitempty"`
}

// RunFailedData is the data of run.failed.
type RunFailedData struct {
	RunFields
	Reason FailReason `json:"reason"`
}

// CheckFailedData is the data of check.failed: a check run failed, which may mean the
// repository is damaged. It is emitted instead of run.failed for a check.
type CheckFailedData struct {
	RunFields
	Reason FailReason `json:"reason"`
}

// RepositoryLockedData is the data of repository.locked: a run failed because another restic
// holds a lock on the repository, possibly a stale one that an unlock task removes. It comes
// beside the run's run.failed (or check.failed).
type RepositoryLockedData struct {
	Repository string          `json:"repository"`
	AgentID    string          `json:"agentId"`
	Hostname   string          `json:"hostname,omitempty"`
	RunID      string          `json:"runId"`
	TaskID     string          `json:"taskId"`
	TaskType   domain.TaskType `json:"taskType"`
	PolicyID   string          `json:"policyId,omitempty"`
	PolicyName string          `json:"policyName,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// AgentEnrolledData is the data of agent.enrolled.
type AgentEnrolledData struct {
	AgentID       string            `json:"agentId"`
	Hostname      string            `json:"hostname"`
	OS            string            `json:"os,omitempty"`
	Arch          string            `json:"arch,omitempty"`
	AgentVersion  string            `json:"agentVersion,omitempty"`
	ResticVersion string            `json:"resticVersion,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
}

// AgentBackoffData is the data of agent.backoff.
type AgentBackoffData struct {
	AgentID  string `json:"agentId"`
	Hostname string `json:"hostname"`
	// BackoffUntil is when the agent takes work again; absent when the backoff ended.
	BackoffUntil *time.Time `json:"backoffUntil,omitempty"`
	// Reason is the agent's, e.g. its disk is full or restic keeps failing.
	Reason string `json:"reason,omitempty"`
}

// EventType implements EventData.
func (RunSucceededData) EventType() EventType { return TypeRunSucceeded }

// EventType implements EventData.
func (RunPartialData) EventType() EventType { return TypeRunPartial }

// EventType implements EventData.
func (RunFailedData) EventType() EventType { return TypeRunFailed }

// EventType implements EventData.
func (CheckFailedData) EventType() EventType { return TypeCheckFailed }

// EventType implements EventData.
func (RepositoryLockedData) EventType() EventType { return TypeRepositoryLocked }

// EventType implements EventData.
func (AgentEnrolledData) EventType() EventType { return TypeAgentEnrolled }

// EventType implements EventData.
func (AgentBackoffData) EventType() EventType { return TypeAgentBackoff }

// RunContext is what the writer of a run's result knows beside the run: its agent's hostname,
// its policy's name and the task's repository. Any of it may be empty.
type RunContext struct {
	Hostname, PolicyName, Repository string
}

// NewRunEnded reports how run r ended, at now: run.succeeded, run.partial, run.failed (failed
// or cancelled) or, for a check, check.failed; a failure because the repository is locked adds
// repository.locked. A run that has not ended, or was interrupted, yields nothing.
func NewRunEnded(now time.Time, r domain.Run, c RunContext) []Event {
	if r.FinishedAt == nil || !r.Status.Final() || r.Status == domain.TaskExpired {
		return nil
	}
	f := RunFields{
		RunID: r.ID, TaskID: r.TaskID, AgentID: r.AgentID, Hostname: c.Hostname, PolicyID: r.PolicyID,
		PolicyName: c.PolicyName, TaskType: r.Type, Repository: c.Repository, Attempt: r.Attempt,
		Outcome: r.Status, StartedAt: r.StartedAt.UTC(), FinishedAt: r.FinishedAt.UTC(),
		DurationSeconds: r.FinishedAt.Sub(r.StartedAt).Seconds(), ExitCode: r.ExitCode,
		Error: truncate(r.Error, MaxEventErrorBytes),
	}
	if s := r.Summary; s != nil {
		f.SnapshotID, f.BytesAdded, f.BytesProcessed, f.FilesProcessed = s.SnapshotID, s.DataAdded, s.TotalBytesProcessed, s.TotalFilesProcessed
		if s.DurationSeconds > 0 {
			f.DurationSeconds = s.DurationSeconds
		}
	}
	switch r.Status {
	case domain.TaskSucceeded:
		return []Event{newEvent(now, r.TenantID, RunSucceededData{f})}
	case domain.TaskPartial:
		return []Event{newEvent(now, r.TenantID, RunPartialData{RunFields: f, UnreadablePaths: firstN(r.UnreadablePaths, maxEventPaths)})}
	}
	reason := FailReasonOf(r.ExitCode, r.Status)
	var evs []Event
	if r.Type == domain.TaskCheck {
		evs = append(evs, newEvent(now, r.TenantID, CheckFailedData{RunFields: f, Reason: reason}))
	} else {
		evs = append(evs, newEvent(now, r.TenantID, RunFailedData{RunFields: f, Reason: reason}))
	}
	if reason == ReasonRepositoryLocked {
		evs = append(evs, newEvent(now, r.TenantID, RepositoryLockedData{
			Repository: c.Repository, AgentID: r.AgentID, Hostname: c.Hostname, RunID: r.ID, TaskID: r.TaskID,
			TaskType: r.Type, PolicyID: r.PolicyID, PolicyName: c.PolicyName, Error: f.Error,
		}))
	}
	return evs
}

// maxEventPaths bounds the unreadable paths a run.partial event lists; the run has them all.
const maxEventPaths = 20

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// NewAgentEnrolled reports that a registered at now.
func NewAgentEnrolled(now time.Time, a domain.Agent) Event {
	return newEvent(now, a.TenantID, AgentEnrolledData{
		AgentID: a.ID, Hostname: a.Hostname, OS: a.OS, Arch: a.Arch,
		AgentVersion: a.AgentVersion, ResticVersion: a.ResticVersion, Labels: a.Labels,
	})
}

// NewAgentBackoff reports a's backoff as a heartbeat at now changed it (none: it ended).
func NewAgentBackoff(now time.Time, a domain.Agent) Event {
	return newEvent(now, a.TenantID, AgentBackoffData{
		AgentID: a.ID, Hostname: a.Hostname, BackoffUntil: utcPtr(a.BackoffUntil), Reason: a.BackoffReason,
	})
}

func (f RunFields) check(p *problems) {
	checkID(p, "data.runId", f.RunID)
	checkTaskRef(p, f.TaskID, f.AgentID, f.PolicyID, f.TaskType)
	if f.StartedAt.IsZero() {
		p.add("data.startedAt is missing")
	}
	if f.FinishedAt.IsZero() {
		p.add("data.finishedAt is missing")
	}
}

func (d RunSucceededData) check(p *problems) { d.RunFields.check(p) }

func (d RunPartialData) check(p *problems) { d.RunFields.check(p) }

func (d RunFailedData) check(p *problems) {
	d.RunFields.check(p)
	if !d.Reason.Valid() {
		p.add("data.reason %q is unknown", d.Reason)
	}
}

func (d CheckFailedData) check(p *problems) {
	d.RunFields.check(p)
	if !d.Reason.Valid() {
		p.add("data.reason %q is unknown", d.Reason)
	}
}

func (d RepositoryLockedData) check(p *problems) {
	checkID(p, "data.runId", d.RunID)
	checkTaskRef(p, d.TaskID, d.AgentID, d.PolicyID, d.TaskType)
}

func (d AgentEnrolledData) check(p *problems) {
	checkID(p, "data.agentId", d.AgentID)
	checkNonEmptyText(p, "data.hostname", d.Hostname)
}

func (d AgentBackoffData) check(p *problems) {
	checkID(p, "data.agentId", d.AgentID)
	checkNonEmptyText(p, "data.hostname", d.Hostname)
}
