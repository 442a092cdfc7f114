package events

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// EventSchemaVersion is the version of the Event envelope and of every data type this package
// writes and reads. Adding an optional field keeps the version; removing, renaming or
// reinterpreting one raises it.
const EventSchemaVersion = 1

// EventType names what happened.
type EventType string

// The domain events the scheduler decides; run_events.go has those reports cause.
const (
	TypeAgentOffline  EventType = "agent.offline"  // an agent missed three heartbeats
	TypeAgentOnline   EventType = "agent.online"   // an offline agent was heard from again
	TypeTaskExpired   EventType = "task.expired"   // a task's deadline passed before it started
	TypeTaskFailed    EventType = "task.failed"    // a task failed for good, its retries spent
	TypeTaskLost      EventType = "task.lost"      // a running task was given up: its agent was lost
	TypeSlotOverdue   EventType = "slot.overdue"   // a schedule slot has not succeeded when it should have
	TypeSlotRecovered EventType = "slot.recovered" // an overdue slot succeeded again
	// TypeRepositoryCheckOverdue: a repository had no successful check for its
	// checkOverdueAfterDays; once per episode, until a check succeeds again.
	TypeRepositoryCheckOverdue EventType = "repository.check_overdue"
)

// EventTypes lists every event type.
var EventTypes = []EventType{
	TypeAgentOffline, TypeAgentOnline, TypeTaskExpired, TypeTaskFailed, TypeTaskLost, TypeSlotOverdue, TypeSlotRecovered,
	TypeRunSucceeded, TypeRunFailed, TypeRunPartial, TypeCheckFailed, TypeRepositoryLocked, TypeAgentEnrolled, TypeAgentBackoff,
	TypeRepositoryCheckOverdue,
}

// Event is the envelope of every domain event. Data holds one of the *Data types of this
// package, by value; a consumer switches on its type.
type Event struct {
	SchemaVersion int       `json:"schemaVersion"`
	ID            string    `json:"id"`
	Type          EventType `json:"type"`
	TenantID      string    `json:"tenantId"`
	Time          time.Time `json:"time"`
	Data          EventData `json:"data"`
}

// EventData is the payload of one event type. The set is closed: only this package's types
// implement it.
type EventData interface {
	EventType() EventType
	check(p *problems)
}

// AgentOfflineData is the data of agent.offline.
type AgentOfflineData struct {
	AgentID  string `json:"agentId"`
	Hostname string `json:"hostname"`
	// LastSeenAt is the agent's last heartbeat; nil when it never sent one.
	LastSeenAt *time.Time `json:"lastSeenAt,omitempty"`
}

// AgentOnlineData is the data of agent.online.
type AgentOnlineData struct {
	AgentID  string `json:"agentId"`
	Hostname string `json:"hostname"`
	// LastSeenAt is the heartbeat that brought the agent back.
	LastSeenAt time.Time `json:"lastSeenAt"`
}

// TaskExpiredData is the data of task.expired.
type TaskExpiredData struct {
	TaskID     string          `json:"taskId"`
	AgentID    string          `json:"agentId"`
	PolicyID   string          `json:"policyId,omitempty"`
	TaskType   domain.TaskType `json:"taskType"`
	Repository string          `json:"repository"`
	Attempt    int             `json:"attempt"`
	Deadline   time.Time       `json:"deadline"`
}

// TaskFailedData is the data of task.failed: the task's final failure.
type TaskFailedData struct {
	TaskID     string          `json:"taskId"`
	AgentID    string          `json:"agentId"`
	PolicyID   string          `json:"policyId,omitempty"`
	TaskType   domain.TaskType `json:"taskType"`
	Repository string          `json:"repository"`
	// Attempts is how many times the task was tried.
	Attempts int `json:"attempts"`
	// RunID is the last attempt's run, where its log is.
	RunID string `json:"runId,omitempty"`
	// Error is the last attempt's error, at most MaxEventErrorBytes long.
	Error string `json:"error,omitempty"`
}

// LostReason says how the scheduler found a running task's agent lost.
type LostReason string

const (
	// LostAgentOffline: the agent was offline for longer than the scheduler allows a run.
	LostAgentOffline LostReason = "agent_offline"
	// LostNotListed: the agent kept sending heartbeats, but they stopped listing the task.
	LostNotListed LostReason = "not_listed"
	// LostAgentDeleted: the agent was deleted while the task ran.
	LostAgentDeleted LostReason = "agent_deleted"
)

// Valid reports whether r is a known reason.
func (r LostReason) Valid() bool {
	return r == LostAgentOffline || r == LostNotListed || r == LostAgentDeleted
}

// TaskLostData is the data of task.lost: a running task failed for good because its agent was
// lost, so nobody will report how its run ended. It replaces task.failed for that task; the
// run's real outcome may still be reported later, and is then recorded on the run only.
type TaskLostData struct {
	TaskID     string          `json:"taskId"`
	AgentID    string          `json:"agentId"`
	PolicyID   string          `json:"policyId,omitempty"`
	TaskType   domain.TaskType `json:"taskType"`
	Repository string          `json:"repository"`
	// Attempts is how many times the task was tried, the lost one included.
	Attempts int `json:"attempts"`
	// RunID is the run that was given up.
	RunID  string     `json:"runId,omitempty"`
	Reason LostReason `json:"reason"`
	// LastListedAt is when the agent last reported the task running (its heartbeat, or the
	// run's start).
	LastListedAt time.Time `json:"lastListedAt"`
	// Error says what happened, at most MaxEventErrorBytes long.
	Error string `json:"error,omitempty"`
}

// SlotOverdueData is the data of slot.overdue.
type SlotOverdueData struct {
	PolicyID string          `json:"policyId"`
	AgentID  string          `json:"agentId"`
	Kind     domain.SlotKind `json:"kind"`
	// LastSuccessAt is nil when the slot never succeeded.
	LastSuccessAt *time.Time `json:"lastSuccessAt,omitempty"`
	LastTaskID    string     `json:"lastTaskId,omitempty"`
	// WaitReason says why the scheduler is holding the slot back, when it is.
	WaitReason string `json:"waitReason,omitempty"`
}

// SlotRecoveredData is the data of slot.recovered.
type SlotRecoveredData struct {
	PolicyID      string          `json:"policyId"`
	AgentID       string          `json:"agentId"`
	Kind          domain.SlotKind `json:"kind"`
	LastSuccessAt time.Time       `json:"lastSuccessAt"`
	LastTaskID    string          `json:"lastTaskId,omitempty"`
}

// RepositoryCheckOverdueData is the data of repository.check_overdue.
type RepositoryCheckOverdueData struct {
	Repository string `json:"repository"`
	// LastCheckOKAt is the latest successful check; nil when none succeeded since the
	// repository's health was first reported (Since).
	LastCheckOKAt *time.Time `json:"lastCheckOkAt,omitempty"`
	Since         time.Time  `json:"since"`
	AfterDays     int        `json:"afterDays"`
	// LastCheck is the latest check, when one ran: it may have failed.
	LastCheckAt    *time.Time `json:"lastCheckAt,omitempty"`
	LastCheckError string     `json:"lastCheckError,omitempty"`
}

// EventType implements EventData.
func (RepositoryCheckOverdueData) EventType() EventType { return TypeRepositoryCheckOverdue }

// NewRepositoryCheckOverdue reports that h's repository went afterDays without a successful
// check, counted from since.
func NewRepositoryCheckOverdue(now time.Time, tenantID string, h domain.RepositoryHealth, since time.Time, afterDays int) Event {
	d := RepositoryCheckOverdueData{Repository: h.Repository, LastCheckOKAt: utcPtr(h.LastCheckOKAt), Since: since.UTC(), AfterDays: afterDays}
	if h.LastCheck != nil {
		at := h.LastCheck.At.UTC()
		d.LastCheckAt, d.LastCheckError = &at, truncate(h.LastCheck.Error, MaxEventErrorBytes)
	}
	return newEvent(now, tenantID, d)
}

func (d RepositoryCheckOverdueData) check(p *problems) {
	if !domain.ValidName(d.Repository) {
		p.add("data.repository %q is not a repository name", d.Repository)
	}
	if d.Since.IsZero() {
		p.add("data.since is missing")
	}
	if d.AfterDays < 1 {
		p.add("data.afterDays must be at least 1")
	}
}

// EventType implements EventData.
func (AgentOfflineData) EventType() EventType { return TypeAgentOffline }

// EventType implements EventData.
func (AgentOnlineData) EventType() EventType { return TypeAgentOnline }

// EventType implements EventData.
func (TaskExpiredData) EventType() EventType { return TypeTaskExpired }

// EventType implements EventData.
func (TaskFailedData) EventType() EventType { return TypeTaskFailed }

// EventType implements EventData.
func (TaskLostData) EventType() EventType { return TypeTaskLost }

// EventType implements EventData.
func (SlotOverdueData) EventType() EventType { return TypeSlotOverdue }

// EventType implements EventData.
func (SlotRecoveredData) EventType() EventType { return TypeSlotRecovered }

// MaxEventErrorBytes bounds the error text a task.failed event carries; the full log stays with
// the run.
const MaxEventErrorBytes = 4096

// NewAgentOffline reports that a went offline at now.
func NewAgentOffline(now time.Time, a domain.Agent) Event {
	return newEvent(now, a.TenantID, AgentOfflineData{AgentID: a.ID, Hostname: a.Hostname, LastSeenAt: utcPtr(a.LastSeenAt)})
}

// NewAgentOnline reports that a, offline until now, was heard from at lastSeenAt.
func NewAgentOnline(now time.Time, a domain.Agent, lastSeenAt time.Time) Event {
	return newEvent(now, a.TenantID, AgentOnlineData{AgentID: a.ID, Hostname: a.Hostname, LastSeenAt: lastSeenAt.UTC()})
}

// NewTaskExpired reports that t's deadline passed before it started.
func NewTaskExpired(now time.Time, t domain.Task) Event {
	return newEvent(now, t.TenantID, TaskExpiredData{
		TaskID: t.ID, AgentID: t.AgentID, PolicyID: t.PolicyID, TaskType: t.Type,
		Repository: t.Repository, Attempt: t.Attempt, Deadline: t.Deadline.UTC(),
	})
}

// NewTaskFailed reports that t failed for good. Its error is cut to MaxEventErrorBytes.
func NewTaskFailed(now time.Time, t domain.Task) Event {
	return newEvent(now, t.TenantID, TaskFailedData{
		TaskID: t.ID, AgentID: t.AgentID, PolicyID: t.PolicyID, TaskType: t.Type,
		Repository: t.Repository, Attempts: Tries(t), RunID: t.RunID, Error: truncate(t.Error, MaxEventErrorBytes),
	})
}

// Tries is how many times t was tried, as task.failed and task.lost report it: a retrying
// task's Attempt names the try that was still to come, so its attempts decide.
func Tries(t domain.Task) int {
	n := 0
	for _, a := range t.Attempts {
		n = max(n, a.Number)
	}
	if n == 0 {
		n = t.Attempt
	}
	return max(n, 1)
}

// NewTaskLost reports that t, failed at now, was given up for reason: its run (t.RunID) was
// last listed at lastListedAt. Its error is cut to MaxEventErrorBytes.
func NewTaskLost(now time.Time, t domain.Task, reason LostReason, lastListedAt time.Time) Event {
	return newEvent(now, t.TenantID, TaskLostData{
		TaskID: t.ID, AgentID: t.AgentID, PolicyID: t.PolicyID, TaskType: t.Type, Repository: t.Repository,
		Attempts: Tries(t), RunID: t.RunID, Reason: reason, LastListedAt: lastListedAt.UTC(),
		Error: truncate(t.Error, MaxEventErrorBytes),
	})
}

// NewSlotOverdue reports that s has not succeeded when it should have.
func NewSlotOverdue(now time.Time, s domain.Slot) Event {
	return newEvent(now, s.TenantID, SlotOverdueData{
		PolicyID: s.PolicyID, AgentID: s.AgentID, Kind: s.Kind,
		LastSuccessAt: utcPtr(s.LastSuccessAt), LastTaskID: s.LastTaskID, WaitReason: s.WaitReason,
	})
}

// NewSlotRecovered reports that s, overdue until now, succeeded at lastSuccessAt.
func NewSlotRecovered(now time.Time, s domain.Slot, lastSuccessAt time.Time) Event {
	return newEvent(now, s.TenantID, SlotRecoveredData{
		PolicyID: s.PolicyID, AgentID: s.AgentID, Kind: s.Kind,
		LastSuccessAt: lastSuccessAt.UTC(), LastTaskID: s.LastTaskID,
	})
}

func newEvent(now time.Time, tenantID string, data EventData) Event {
	return Event{
		SchemaVersion: EventSchemaVersion,
		ID:            domain.NewID(now),
		Type:          data.EventType(),
		TenantID:      tenantID,
		Time:          now.UTC(),
		Data:          data,
	}
}

// Encode checks e and returns its JSON body, or an error wrapping ErrTooLarge when it exceeds
// MaxBodyBytes.
func (e Event) Encode() ([]byte, error) {
	e.Time = e.Time.UTC()
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	body, err := marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	if err := checkSize("encode event "+e.ID, body); err != nil {
		return nil, err
	}
	return body, nil
}

// DecodeEvent reads an event. Fields it does not know are ignored. A body it cannot accept is a
// *RejectError; an event type it does not know matches ErrUnknownType, so a consumer older than
// its producer can skip it.
func DecodeEvent(body []byte) (Event, error) {
	h, err := readHeader(body)
	if err != nil {
		return Event{}, err
	}
	if rej := checkVersion("event", h.SchemaVersion, EventSchemaVersion); rej != nil {
		return Event{}, rej
	}
	var raw struct {
		Event
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return Event{}, reject("", nil, "body is not an event: %v", err)
	}
	e := raw.Event
	e.Time = e.Time.UTC()
	id := validOrEmpty(e.ID)
	if len(raw.Data) == 0 || string(raw.Data) == "null" {
		return Event{}, reject(id, nil, "data is missing")
	}
	switch e.Type {
	case TypeAgentOffline:
		e.Data, err = decodeData[AgentOfflineData](raw.Data)
	case TypeAgentOnline:
		e.Data, err = decodeData[AgentOnlineData](raw.Data)
	case TypeTaskExpired:
		e.Data, err = decodeData[TaskExpiredData](raw.Data)
	case TypeTaskFailed:
		e.Data, err = decodeData[TaskFailedData](raw.Data)
	case TypeTaskLost:
		e.Data, err = decodeData[TaskLostData](raw.Data)
	case TypeSlotOverdue:
		e.Data, err = decodeData[SlotOverdueData](raw.Data)
	case TypeSlotRecovered:
		e.Data, err = decodeData[SlotRecoveredData](raw.Data)
	case TypeRunSucceeded:
		e.Data, err = decodeData[RunSucceededData](raw.Data)
	case TypeRunFailed:
		e.Data, err = decodeData[RunFailedData](raw.Data)
	case TypeRunPartial:
		e.Data, err = decodeData[RunPartialData](raw.Data)
	case TypeCheckFailed:
		e.Data, err = decodeData[CheckFailedData](raw.Data)
	case TypeRepositoryLocked:
		e.Data, err = decodeData[RepositoryLockedData](raw.Data)
	case TypeAgentEnrolled:
		e.Data, err = decodeData[AgentEnrolledData](raw.Data)
	case TypeAgentBackoff:
		e.Data, err = decodeData[AgentBackoffData](raw.Data)
	case TypeRepositoryCheckOverdue:
		e.Data, err = decodeData[RepositoryCheckOverdueData](raw.Data)
	case "":
		return Event{}, reject(id, nil, "type is missing")
	default:
		return Event{}, reject(id, ErrUnknownType, "event type %q is unknown", e.Type)
	}
	if err != nil {
		return Event{}, reject(id, nil, "data of %s is malformed: %v", e.Type, err)
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

func decodeData[T EventData](raw json.RawMessage) (EventData, error) {
	var d T
	err := json.Unmarshal(raw, &d)
	return d, err
}

// Validate reports, as a *RejectError, every reason a consumer would refuse e.
func (e Event) Validate() error {
	id := validOrEmpty(e.ID)
	if rej := checkVersion("event", e.SchemaVersion, EventSchemaVersion); rej != nil {
		rej.ID = id
		return rej
	}
	var p problems
	checkID(&p, "id", e.ID)
	checkTenantID(&p, "tenantId", e.TenantID)
	if e.Time.IsZero() {
		p.add("time is missing")
	}
	switch {
	case e.Data == nil:
		p.add("data is missing")
	case e.Type != e.Data.EventType():
		p.add("type %q does not match its data, which is %s", e.Type, e.Data.EventType())
	default:
		e.Data.check(&p)
	}
	return p.err(id)
}

func (d AgentOfflineData) check(p *problems) {
	checkID(p, "data.agentId", d.AgentID)
	checkNonEmptyText(p, "data.hostname", d.Hostname)
}

func (d AgentOnlineData) check(p *problems) {
	checkID(p, "data.agentId", d.AgentID)
	checkNonEmptyText(p, "data.hostname", d.Hostname)
	if d.LastSeenAt.IsZero() {
		p.add("data.lastSeenAt is missing")
	}
}

func (d TaskExpiredData) check(p *problems) {
	checkTaskRef(p, d.TaskID, d.AgentID, d.PolicyID, d.TaskType)
	if d.Deadline.IsZero() {
		p.add("data.deadline is missing")
	}
}

func (d TaskFailedData) check(p *problems) {
	checkTaskRef(p, d.TaskID, d.AgentID, d.PolicyID, d.TaskType)
	if d.Attempts < 1 {
		p.add("data.attempts must be at least 1")
	}
	if d.RunID != "" && !domain.ValidID(d.RunID) {
		p.add("data.runId %q is not an ID", d.RunID)
	}
}

func (d TaskLostData) check(p *problems) {
	checkTaskRef(p, d.TaskID, d.AgentID, d.PolicyID, d.TaskType)
	if d.Attempts < 1 {
		p.add("data.attempts must be at least 1")
	}
	if d.RunID != "" && !domain.ValidID(d.RunID) {
		p.add("data.runId %q is not an ID", d.RunID)
	}
	if !d.Reason.Valid() {
		p.add("data.reason %q is not agent_offline, not_listed or agent_deleted", d.Reason)
	}
	if d.LastListedAt.IsZero() {
		p.add("data.lastListedAt is missing")
	}
}

func (d SlotOverdueData) check(p *problems) {
	checkSlotRef(p, d.PolicyID, d.AgentID, d.Kind)
}

func (d SlotRecoveredData) check(p *problems) {
	checkSlotRef(p, d.PolicyID, d.AgentID, d.Kind)
	if d.LastSuccessAt.IsZero() {
		p.add("data.lastSuccessAt is missing")
	}
}

func checkTaskRef(p *problems, taskID, agentID, policyID string, t domain.TaskType) {
	checkID(p, "data.taskId", taskID)
	checkID(p, "data.agentId", agentID)
	if policyID != "" && !domain.ValidID(policyID) {
		p.add("data.policyId %q is not an ID", policyID)
	}
	if !t.Valid() {
		p.add("data.taskType %q is unknown", t)
	}
}

func checkSlotRef(p *problems, policyID, agentID string, kind domain.SlotKind) {
	checkID(p, "data.policyId", policyID)
	checkID(p, "data.agentId", agentID)
	switch kind {
	case domain.SlotBackup, domain.SlotForget, domain.SlotCheck, domain.SlotStats:
	default:
		p.add("data.kind %q is not backup, forget or check", kind)
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
