package domain

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// TaskType is the restic operation a task performs.
type TaskType string

const (
	TaskBackup    TaskType = "backup"
	TaskForget    TaskType = "forget"
	TaskPrune     TaskType = "prune"
	TaskCheck     TaskType = "check"
	TaskRestore   TaskType = "restore"
	TaskUnlock    TaskType = "unlock"
	TaskSnapshots TaskType = "snapshots"
	// TaskStats reports a repository's size, file count and locks (restic stats and list locks).
	TaskStats TaskType = "stats"
	// TaskLs lists a snapshot's tree and uploads it, so that it can be browsed without restic.
	TaskLs TaskType = "ls"
)

// TaskTypes lists every task type.
var TaskTypes = []TaskType{TaskBackup, TaskForget, TaskPrune, TaskCheck, TaskRestore, TaskUnlock, TaskSnapshots, TaskStats, TaskLs}

// Valid reports whether t is a known task type.
func (t TaskType) Valid() bool { return slices.Contains(TaskTypes, t) }

// TaskStatus is where a task is in its life.
type TaskStatus string

const (
	TaskPending   TaskStatus = "pending"   // written, message not yet sent
	TaskQueued    TaskStatus = "queued"    // message sent to the agent's queue
	TaskRunning   TaskStatus = "running"   // the agent reported start
	TaskRetrying  TaskStatus = "retrying"  // failed, waiting for NextRetryAt
	TaskSucceeded TaskStatus = "succeeded" // restic finished cleanly
	TaskPartial   TaskStatus = "partial"   // backup finished but some files could not be read
	TaskFailed    TaskStatus = "failed"    // failed for good
	TaskCancelled TaskStatus = "cancelled" // cancelled by an operator or by agent shutdown
	TaskExpired   TaskStatus = "expired"   // deadline passed before it started
)

// TaskStatuses lists every task status.
var TaskStatuses = []TaskStatus{TaskPending, TaskQueued, TaskRunning, TaskRetrying, TaskSucceeded, TaskPartial, TaskFailed, TaskCancelled, TaskExpired}

// Valid reports whether s is a known task status.
func (s TaskStatus) Valid() bool { return slices.Contains(TaskStatuses, s) }

// Final reports whether no transition leaves s.
func (s TaskStatus) Final() bool {
	switch s {
	case TaskSucceeded, TaskPartial, TaskFailed, TaskCancelled, TaskExpired:
		return true
	}
	return false
}

// Active reports whether a task in state s occupies (or is about to occupy) an agent slot.
func (s TaskStatus) Active() bool { return s == TaskPending || s == TaskQueued || s == TaskRunning }

// LimitType is the task type a task of type tt with params p counts against when an agent's
// per-type limits are applied: a forget that prunes counts as a prune (pruning is the heavy
// part); every other task counts as its own type.
func LimitType(tt TaskType, p TaskParams) TaskType {
	if tt == TaskForget && p.Prune {
		return TaskPrune
	}
	return tt
}

// transitions is the task state machine: for each target, the states it may be reached from.
// pending → running covers a crash between sending the message and recording "queued".
// running → running is absent on purpose: a redelivered message must not start a second run.
var transitions = map[TaskStatus][]TaskStatus{
	TaskQueued:    {TaskPending, TaskRetrying},
	TaskRunning:   {TaskQueued, TaskPending},
	TaskRetrying:  {TaskRunning, TaskQueued},
	TaskSucceeded: {TaskRunning},
	TaskPartial:   {TaskRunning},
	TaskFailed:    {TaskRunning, TaskQueued, TaskPending, TaskRetrying},
	TaskCancelled: {TaskPending, TaskQueued, TaskRunning, TaskRetrying},
	TaskExpired:   {TaskPending, TaskQueued, TaskRetrying},
}

// AllowedFrom returns the states from which a task may move to s. The slice is the caller's own:
// changing it cannot change the state machine.
func AllowedFrom(s TaskStatus) []TaskStatus { return slices.Clone(transitions[s]) }

// CanTransition reports whether a task may move from one state to another.
func CanTransition(from, to TaskStatus) bool { return slices.Contains(transitions[to], from) }

// TaskParams carries what a task type needs beyond its policy.
type TaskParams struct {
	// SnapshotID, IncludePaths, Target and Verify describe a restore; SnapshotID and Path an
	// ls. An empty Target restores into a new temporary directory of the agent's choosing.
	SnapshotID   string   `json:"snapshotId,omitempty"`
	IncludePaths []string `json:"includePaths,omitempty"`
	Target       string   `json:"target,omitempty"`
	Verify       bool     `json:"verify,omitempty"`
	// Path is the directory of the snapshot an ls lists, with everything below it; empty is "/".
	Path string `json:"path,omitempty"`
	// Prune asks forget to prune afterwards.
	Prune bool `json:"prune,omitempty"`
	// ReadDataSubset is restic check's --read-data-subset.
	ReadDataSubset string `json:"readDataSubset,omitempty"`
}

// Attempt records one try of a task.
type Attempt struct {
	Number     int        `json:"number"`
	RunID      string     `json:"runId,omitempty"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	Status     TaskStatus `json:"status"`
	Error      string     `json:"error,omitempty"`
}

// Task is one unit of work sent to one agent.
type Task struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenantId"`
	AgentID    string     `json:"agentId"`
	PolicyID   string     `json:"policyId,omitempty"`
	Repository string     `json:"repository"`
	Type       TaskType   `json:"type"`
	Status     TaskStatus `json:"status"`
	Params     TaskParams `json:"params"`
	// Attempt counts tries so far (1 for the first); MaxRetries bounds the tries after the first.
	Attempt     int        `json:"attempt"`
	MaxRetries  int        `json:"maxRetries"`
	Attempts    []Attempt  `json:"attempts,omitempty"`
	NotBefore   time.Time  `json:"notBefore"`
	Deadline    time.Time  `json:"deadline"`
	NextRetryAt *time.Time `json:"nextRetryAt,omitempty"`
	// Trigger says who asked for the task: "schedule", "operator" or "retry".
	Trigger    string     `json:"trigger"`
	RunID      string     `json:"runId,omitempty"`
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	// CheckRunningAt is, while the task runs, when the scheduler next looks whether its agent
	// still runs it (see Agent.ListingGrace); a running task is given up as lost when its agent
	// stops listing it or stays offline.
	CheckRunningAt *time.Time `json:"checkRunningAt,omitempty"`
}

// Validate checks a task before it is first stored.
func (t Task) Validate() error {
	var fe fieldErrors
	if !t.Type.Valid() {
		fe.add("type", "must be one of %s", TaskTypeNames)
	}
	if !ValidID(t.AgentID) {
		fe.add("agentId", "must be an agent ID")
	}
	if t.PolicyID != "" && !ValidID(t.PolicyID) {
		fe.add("policyId", "must be a policy ID")
	}
	if !ValidName(t.Repository) {
		fe.add("repository", "must name a repository")
	}
	if !t.Deadline.After(t.NotBefore) {
		fe.add("deadline", "must be after notBefore")
	}
	if t.MaxRetries < 0 || t.MaxRetries > 20 {
		fe.add("maxRetries", "must be between 0 and 20")
	}
	switch t.Type {
	case TaskRestore:
		checkSnapshotRef(&fe, t.Params.SnapshotID, "a restore")
		if t.Params.Target != "" {
			if reason := TargetProblem(t.Params.Target); reason != "" {
				fe.add("params.target", "%s", reason)
			}
		}
		if len(t.Params.IncludePaths) > MaxPolicyPaths {
			fe.add("params.includePaths", "at most %d paths", MaxPolicyPaths)
		}
		for i, p := range t.Params.IncludePaths {
			if reason := SnapshotPathProblem(p); reason != "" {
				fe.add("params.includePaths["+itoa(i)+"]", "%s", reason)
			}
		}
	case TaskLs:
		checkSnapshotRef(&fe, t.Params.SnapshotID, "an ls")
		if t.Params.Path != "" {
			if reason := SnapshotPathProblem(t.Params.Path); reason != "" {
				fe.add("params.path", "%s", reason)
			}
		}
	}
	if t.Params.ReadDataSubset != "" {
		if reason := readDataSubsetProblem(t.Params.ReadDataSubset); reason != "" {
			fe.add("params.readDataSubset", "%s", reason)
		}
	}
	return fe.err()
}

// TaskTypeNames lists the task types for error messages.
var TaskTypeNames = func() string {
	names := make([]string, len(TaskTypes))
	for i, t := range TaskTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}()

// snapshotRefPattern is a restic snapshot ID, a unique prefix of one (8 digits at least), or
// "latest".
var snapshotRefPattern = regexp.MustCompile(`^(latest|[0-9a-f]{8,64})$`)

// ValidSnapshotRef reports whether s names a snapshot as restic takes it: an ID, a unique
// prefix of one (8–64 hexadecimal digits), or "latest".
func ValidSnapshotRef(s string) bool { return snapshotRefPattern.MatchString(s) }

func checkSnapshotRef(fe *fieldErrors, ref, what string) {
	switch {
	case ref == "":
		fe.add("params.snapshotId", "%s needs the snapshot ID (or \"latest\")", what)
	case !ValidSnapshotRef(ref):
		fe.add("params.snapshotId", "must be a restic snapshot ID (8–64 hexadecimal digits) or \"latest\"")
	}
}

// MaxSnapshotPath bounds a path inside a snapshot.
const MaxSnapshotPath = 4096

// SnapshotPathProblem says why p is not an absolute, clean path (as a path inside a snapshot
// or a restore target must be), or "" when it is one. ".." is refused outright rather than
// cleaned away: a path that climbs is a mistake or an attack, never what an operator means.
func SnapshotPathProblem(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case len(p) > MaxSnapshotPath:
		return fmt.Sprintf("at most %d bytes", MaxSnapshotPath)
	case !utf8.ValidString(p) || hasControl(p):
		return "must be valid UTF-8 without control characters"
	case !strings.HasPrefix(p, "/"):
		return "must be an absolute path (starting with /)"
	case slices.Contains(strings.Split(p, "/"), ".."):
		return "must not contain \"..\""
	case path.Clean(p) != p:
		return fmt.Sprintf("must be a clean path (%s)", path.Clean(p))
	}
	return ""
}

// TargetProblem says why p cannot be a restore target on an agent's host, or "" when it can:
// it must be absolute (on Unix or Windows) and must not climb with "..". Whether it lies
// inside the agent's restore roots only the agent can tell.
func TargetProblem(p string) string {
	switch {
	case len(p) > MaxSnapshotPath:
		return fmt.Sprintf("at most %d bytes", MaxSnapshotPath)
	case !utf8.ValidString(p) || hasControl(p):
		return "must be valid UTF-8 without control characters"
	case !isAbsPath(p):
		return "must be an absolute directory path"
	case slices.Contains(strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }), ".."):
		return "must not contain \"..\""
	}
	return ""
}
