package events

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Task message schema.
const (
	// TaskSchemaVersion is the version of TaskMessage this package writes and reads. Adding an
	// optional field keeps the version; removing, renaming or reinterpreting one raises it.
	TaskSchemaVersion = 1
	// TaskMessageType is the type of every message on an agent queue.
	TaskMessageType = "task"
)

// TaskMessage is the body of a message on an agent's queue: one task for one agent, with
// everything the agent needs to run it. It names the repository but carries no secret: the
// password and backend credentials stay in the agent's configuration on the host.
type TaskMessage struct {
	SchemaVersion int             `json:"schemaVersion"`
	Type          string          `json:"type"`
	TenantID      string          `json:"tenantId"`
	AgentID       string          `json:"agentId"`
	TaskID        string          `json:"taskId"`
	TaskType      domain.TaskType `json:"taskType"`
	PolicyID      string          `json:"policyId,omitempty"`
	// Attempt is which try this is, 1 for the first.
	Attempt int `json:"attempt"`
	// NotBefore and Deadline bound when the task may start; an agent does not start it after
	// Deadline.
	NotBefore  time.Time `json:"notBefore"`
	Deadline   time.Time `json:"deadline"`
	Repository string    `json:"repository"`

	// Backup is set for backup tasks.
	Backup *BackupSpec `json:"backup,omitempty"`
	// Retention is set for forget tasks; Prune asks for a prune right after the forget.
	Retention *domain.Retention `json:"retention,omitempty"`
	Prune     bool              `json:"prune,omitempty"`
	// ReadDataSubset is restic check's --read-data-subset; empty checks the structure only.
	ReadDataSubset string `json:"readDataSubset,omitempty"`
	// ReportHealth asks a check to report the repository's stats and locks with its result.
	// Control planes that store repository health set it; an agent sends those fields only
	// when asked, so a newer agent keeps working with a control plane that does not know them.
	ReportHealth bool `json:"reportHealth,omitempty"`
	// Restore is set for restore tasks.
	Restore *RestoreSpec `json:"restore,omitempty"`
	// Ls is set for ls tasks.
	Ls *LsSpec `json:"ls,omitempty"`
	// Limits are the policy's limits; the agent's own limits apply as well.
	Limits *Limits `json:"limits,omitempty"`
}

// BackupSpec is what a backup task backs up.
type BackupSpec struct {
	Paths         []string `json:"paths"`
	Excludes      []string `json:"excludes,omitempty"`
	Tags          []string `json:"tags,omitempty"`
	ExcludeCaches bool     `json:"excludeCaches,omitempty"`
	OneFileSystem bool     `json:"oneFileSystem,omitempty"`
}

// RestoreSpec is what a restore task restores, and where to.
type RestoreSpec struct {
	// SnapshotID is a restic snapshot ID or "latest".
	SnapshotID   string   `json:"snapshotId"`
	IncludePaths []string `json:"includePaths,omitempty"`
	// Target is the directory to restore into; empty asks the agent to create a new temporary
	// directory and restore there. Agents before the field became optional refuse an empty one.
	Target string `json:"target,omitempty"`
	Verify bool   `json:"verify,omitempty"`
}

// LsSpec is what an ls task lists: Path and everything below it in the snapshot.
type LsSpec struct {
	// SnapshotID is a restic snapshot ID, a unique prefix of one, or "latest".
	SnapshotID string `json:"snapshotId"`
	// Path is an absolute, clean directory of the snapshot; "/" lists it all.
	Path string `json:"path"`
}

// Limits bound the resources one task uses. Zero means not set.
type Limits struct {
	UploadKbps      int `json:"uploadKbps,omitempty"`
	DownloadKbps    int `json:"downloadKbps,omitempty"`
	ReadConcurrency int `json:"readConcurrency,omitempty"`
}

// NewTaskMessage builds the message that asks task.AgentID to run task. policy is the task's
// policy, or nil for a task without one (an operator's restore, check, unlock or snapshots);
// backup and forget tasks need it for their paths and retention. Type-specific parameters come
// from task.Params; a check without its own readDataSubset uses the policy's, and a forget prunes
// when the task or the policy asks for it. The message is checked as an agent would check it.
func NewTaskMessage(task domain.Task, policy *domain.Policy) (TaskMessage, error) {
	m := TaskMessage{
		SchemaVersion: TaskSchemaVersion,
		Type:          TaskMessageType,
		TenantID:      task.TenantID,
		AgentID:       task.AgentID,
		TaskID:        task.ID,
		TaskType:      task.Type,
		PolicyID:      task.PolicyID,
		Attempt:       task.Attempt,
		NotBefore:     task.NotBefore.UTC(),
		Deadline:      task.Deadline.UTC(),
		Repository:    task.Repository,
	}
	if policy != nil {
		if policy.ID != task.PolicyID {
			return TaskMessage{}, fmt.Errorf("task %s belongs to policy %q, not %q", task.ID, task.PolicyID, policy.ID)
		}
		if l := (Limits{UploadKbps: policy.UploadKbps, DownloadKbps: policy.DownloadKbps, ReadConcurrency: policy.ReadConcurrency}); l != (Limits{}) {
			m.Limits = &l
		}
	}
	switch task.Type {
	case domain.TaskBackup:
		if policy == nil {
			return TaskMessage{}, fmt.Errorf("backup task %s: the policy is needed for its paths", task.ID)
		}
		m.Backup = &BackupSpec{
			Paths:         slices.Clone(policy.Paths),
			Excludes:      slices.Clone(policy.Excludes),
			Tags:          slices.Clone(policy.Tags),
			ExcludeCaches: policy.ExcludeCaches,
			OneFileSystem: policy.OneFileSystem,
		}
	case domain.TaskForget:
		if policy == nil {
			return TaskMessage{}, fmt.Errorf("forget task %s: the policy is needed for its retention", task.ID)
		}
		r := policy.Retention
		r.KeepTags = slices.Clone(r.KeepTags)
		m.Retention = &r
		m.Prune = task.Params.Prune || policy.Prune
	case domain.TaskCheck:
		m.ReadDataSubset = task.Params.ReadDataSubset
		if m.ReadDataSubset == "" && policy != nil {
			m.ReadDataSubset = policy.CheckReadDataSubset
		}
		m.ReportHealth = true
	case domain.TaskRestore:
		m.Restore = &RestoreSpec{
			SnapshotID:   task.Params.SnapshotID,
			IncludePaths: slices.Clone(task.Params.IncludePaths),
			Target:       task.Params.Target,
			Verify:       task.Params.Verify,
		}
	case domain.TaskLs:
		m.Ls = &LsSpec{SnapshotID: task.Params.SnapshotID, Path: task.Params.Path}
		if m.Ls.Path == "" {
			m.Ls.Path = "/"
		}
	}
	if err := m.Validate(); err != nil {
		return TaskMessage{}, fmt.Errorf("build task message: %w", err)
	}
	return m, nil
}

// Encode checks m and returns its JSON body, which fits in one SQS message or the error wraps
// ErrTooLarge.
func (m TaskMessage) Encode() ([]byte, error) {
	m.NotBefore, m.Deadline = m.NotBefore.UTC(), m.Deadline.UTC()
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode task message: %w", err)
	}
	body, err := marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode task message %s: %w", m.TaskID, err)
	}
	if err := checkSize("encode task message "+m.TaskID+" (shorten the policy's paths, excludes or tags)", body); err != nil {
		return nil, err
	}
	return body, nil
}

// DecodeTask reads a message from an agent queue. Fields it does not know are ignored. A body it
// cannot accept is a *RejectError: a missing or newer schemaVersion, another message type, an
// unknown taskType (errors.Is ErrUnknownType), a missing or invalid required field.
func DecodeTask(body []byte) (TaskMessage, error) {
	h, err := readHeader(body)
	if err != nil {
		return TaskMessage{}, err
	}
	if rej := checkVersion("task message", h.SchemaVersion, TaskSchemaVersion); rej != nil {
		return TaskMessage{}, rej
	}
	if h.Type != TaskMessageType {
		return TaskMessage{}, reject("", ErrUnknownType, "type %q is not %q", h.Type, TaskMessageType)
	}
	var m TaskMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return TaskMessage{}, reject("", nil, "body is not a task message: %v", err)
	}
	m.NotBefore, m.Deadline = m.NotBefore.UTC(), m.Deadline.UTC()
	if err := m.Validate(); err != nil {
		return TaskMessage{}, err
	}
	return m, nil
}

// Verify rejects a message addressed to another tenant or another agent than the one reading
// it: a queue holds one agent's tasks, so such a message was misrouted and must not run here.
func Verify(m TaskMessage, tenantID, agentID string) error {
	id := validOrEmpty(m.TaskID)
	if m.TenantID != tenantID {
		return reject(id, nil, "addressed to tenant %q, not to this agent's tenant %q", m.TenantID, tenantID)
	}
	if m.AgentID != agentID {
		return reject(id, nil, "addressed to agent %q, not to this agent %q", m.AgentID, agentID)
	}
	return nil
}

// Validate reports, as a *RejectError, every reason an agent would refuse m.
func (m TaskMessage) Validate() error {
	id := validOrEmpty(m.TaskID)
	if rej := checkVersion("task message", m.SchemaVersion, TaskSchemaVersion); rej != nil {
		rej.ID = id
		return rej
	}
	if m.Type != TaskMessageType {
		return reject(id, ErrUnknownType, "type %q is not %q", m.Type, TaskMessageType)
	}
	var p problems
	checkTenantID(&p, "tenantId", m.TenantID)
	checkID(&p, "agentId", m.AgentID)
	checkID(&p, "taskId", m.TaskID)
	if m.PolicyID != "" && !domain.ValidID(m.PolicyID) {
		p.add("policyId %q is not an ID", m.PolicyID)
	}
	switch {
	case m.TaskType == "":
		p.add("taskType is missing")
	case !m.TaskType.Valid():
		p.addKind(ErrUnknownType, "taskType %q is unknown", m.TaskType)
	}
	if m.Attempt < 1 {
		p.add("attempt must be at least 1")
	}
	switch {
	case m.NotBefore.IsZero():
		p.add("notBefore is missing")
	case m.Deadline.IsZero():
		p.add("deadline is missing")
	case !m.Deadline.After(m.NotBefore):
		p.add("deadline must be after notBefore")
	}
	switch {
	case m.Repository == "":
		p.add("repository is missing")
	case !domain.ValidName(m.Repository):
		p.add("repository %q is not a repository name", m.Repository)
	}
	switch m.TaskType {
	case domain.TaskBackup:
		m.Backup.check(&p)
	case domain.TaskForget:
		checkRetention(&p, m.Retention)
	case domain.TaskCheck:
		if m.ReadDataSubset != "" && !readDataSubsetPattern.MatchString(m.ReadDataSubset) {
			p.add("readDataSubset %q is not n/t, a percentage or a size", m.ReadDataSubset)
		}
	case domain.TaskRestore:
		m.Restore.check(&p)
	case domain.TaskLs:
		m.Ls.check(&p)
	}
	m.Limits.check(&p)
	return p.err(id)
}

func (b *BackupSpec) check(p *problems) {
	if b == nil {
		p.add("backup is missing")
		return
	}
	if len(b.Paths) == 0 {
		p.add("backup.paths is empty")
	}
	for i, path := range b.Paths {
		checkAbsPath(p, fmt.Sprintf("backup.paths[%d]", i), path)
	}
	for i, x := range b.Excludes {
		checkNonEmptyText(p, fmt.Sprintf("backup.excludes[%d]", i), x)
	}
	checkTags(p, "backup.tags", b.Tags)
}

func (r *RestoreSpec) check(p *problems) {
	if r == nil {
		p.add("restore is missing")
		return
	}
	switch {
	case r.SnapshotID == "":
		p.add("restore.snapshotId is missing")
	case len(r.SnapshotID) > 64 || hasControl(r.SnapshotID) || strings.HasPrefix(r.SnapshotID, "-"):
		p.add("restore.snapshotId %q is not a snapshot ID", r.SnapshotID)
	}
	if r.Target != "" {
		if reason := domain.TargetProblem(r.Target); reason != "" {
			p.add("restore.target %q %s", r.Target, reason)
		}
	}
	for i, path := range r.IncludePaths {
		if reason := domain.SnapshotPathProblem(path); reason != "" {
			p.add("restore.includePaths[%d] %q %s", i, path, reason)
		}
	}
}

func (l *LsSpec) check(p *problems) {
	if l == nil {
		p.add("ls is missing")
		return
	}
	if !domain.ValidSnapshotRef(l.SnapshotID) {
		p.add("ls.snapshotId %q is not a snapshot ID, a prefix of one or \"latest\"", l.SnapshotID)
	}
	if reason := domain.SnapshotPathProblem(l.Path); reason != "" {
		p.add("ls.path %q %s", l.Path, reason)
	}
}

func (l *Limits) check(p *problems) {
	if l == nil {
		return
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"uploadKbps", l.UploadKbps}, {"downloadKbps", l.DownloadKbps}} {
		if f.n < 0 || f.n > domain.MaxBandwidthKbps {
			p.add("limits.%s must be between 0 (unlimited) and %d", f.name, domain.MaxBandwidthKbps)
		}
	}
	if l.ReadConcurrency < 0 || l.ReadConcurrency > 256 {
		p.add("limits.readConcurrency must be between 0 (restic's default) and 256")
	}
}

var keepWithinPattern = regexp.MustCompile(`^(\d+y)?(\d+m)?(\d+d)?(\d+h)?$`)

func checkRetention(p *problems, r *domain.Retention) {
	if r == nil {
		p.add("retention is missing")
		return
	}
	rules := 0
	for _, c := range []struct {
		name string
		n    int
	}{{"keepLast", r.KeepLast}, {"keepHourly", r.KeepHourly}, {"keepDaily", r.KeepDaily}, {"keepWeekly", r.KeepWeekly}, {"keepMonthly", r.KeepMonthly}, {"keepYearly", r.KeepYearly}} {
		switch {
		case c.n < 0:
			p.add("retention.%s must not be negative", c.name)
		case c.n > 0:
			rules++
		}
	}
	if r.KeepWithin != "" {
		rules++
		if !keepWithinPattern.MatchString(r.KeepWithin) {
			p.add("retention.keepWithin %q is not a restic duration", r.KeepWithin)
		}
	}
	if len(r.KeepTags) > 0 {
		rules++
		checkTags(p, "retention.keepTags", r.KeepTags)
	}
	if rules == 0 {
		p.add("retention has no rule: forget would remove every snapshot")
	}
}

var readDataSubsetPattern = regexp.MustCompile(`^(\d+/\d+|\d+(\.\d+)?%|\d+[KMGT]?)$`)

// windowsAbs matches C:\dir, C:/dir and \\server\share.
var windowsAbs = regexp.MustCompile(`^([A-Za-z]:[\\/]|\\\\[^\\]+\\[^\\]+)`)

func checkAbsPath(p *problems, field, path string) {
	switch {
	case path == "":
		p.add("%s is missing", field)
	case hasControl(path):
		p.add("%s must not contain control characters", field)
	case !strings.HasPrefix(path, "/") && !windowsAbs.MatchString(path):
		p.add("%s %q is not an absolute path", field, path)
	}
}

func checkNonEmptyText(p *problems, field, s string) {
	switch {
	case s == "":
		p.add("%s is empty", field)
	case hasControl(s):
		p.add("%s must not contain control characters", field)
	}
}

func checkTags(p *problems, field string, tags []string) {
	for i, t := range tags {
		if t == "" || strings.ContainsAny(t, ", \t") || hasControl(t) {
			p.add("%s[%d] %q is not a tag", field, i, t)
		}
	}
}

func checkID(p *problems, field, id string) {
	switch {
	case id == "":
		p.add("%s is missing", field)
	case !domain.ValidID(id):
		p.add("%s %q is not an ID", field, id)
	}
}

func checkTenantID(p *problems, field, id string) {
	switch {
	case id == "":
		p.add("%s is missing", field)
	case !domain.ValidTenantID(id):
		p.add("%s %q is not a tenant ID", field, id)
	}
}

func validOrEmpty(id string) string {
	if domain.ValidID(id) {
		return id
	}
	return ""
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}
