// Package reporting carries out what agents tell the control plane: enrolling, heartbeats, the
// start, progress and result of their tasks, their runs' log and their snapshot inventories.
// Every method acts for one agent, which the caller takes from the authenticated credential, and
// treats another agent's task or run exactly like a missing one. The agent API calls it; it
// speaks domain types, sentinel errors and Refusals only.
package reporting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// Queues creates, finds and removes agents' queues.
type Queues interface {
	Ensure(ctx context.Context, tenantID, agentID string) (queue.AgentQueue, error)
	Lookup(ctx context.Context, tenantID, agentID string) (queue.AgentQueue, error)
	Delete(ctx context.Context, tenantID, agentID string) error
}

// Settings are the deployment's rules for agents.
type Settings struct {
	// HeartbeatInterval is how often agents are told to report (0: one minute).
	HeartbeatInterval time.Duration
	// LogRetention is how long log chunks are kept (0: 30 days).
	LogRetention time.Duration
	// Retry shapes the backoff between tries of a failed task (zero: schedule.DefaultRetryPolicy).
	Retry schedule.RetryPolicy
	// AgentHourlyRetryBudget is how many retries one agent may use in an hour, across its tasks
	// (0: schedule.DefaultAgentHourlyRetryBudget).
	AgentHourlyRetryBudget int
	// ListingRetention is how long a snapshot listing is kept (0: domain.DefaultListingRetention).
	ListingRetention time.Duration
	// ListingMaxBytes caps one listing's compressed size (0: domain.DefaultListingMaxBytes).
	ListingMaxBytes int64
}

func (s Settings) listingRetention() time.Duration {
	if s.ListingRetention <= 0 {
		return domain.DefaultListingRetention
	}
	return s.ListingRetention
}

func (s Settings) listingMaxBytes() int64 {
	if s.ListingMaxBytes <= 0 {
		return domain.DefaultListingMaxBytes
	}
	return s.ListingMaxBytes
}

func (s Settings) heartbeatSeconds() int {
	if s.HeartbeatInterval <= 0 {
		return 60
	}
	return int(s.HeartbeatInterval / time.Second)
}

func (s Settings) logRetention() time.Duration {
	if s.LogRetention <= 0 {
		return 30 * 24 * time.Hour
	}
	return s.LogRetention
}

func (s Settings) retry() schedule.RetryPolicy {
	if s.Retry.Base <= 0 {
		return schedule.DefaultRetryPolicy()
	}
	return s.Retry
}

func (s Settings) retryBudget() int {
	if s.AgentHourlyRetryBudget <= 0 {
		return schedule.DefaultAgentHourlyRetryBudget
	}
	return s.AgentHourlyRetryBudget
}

// Service handles agents' reports.
type Service struct {
	Store    *store.Store
	Queues   Queues
	Settings Settings
	Log      *slog.Logger
	// Now is the clock.
	Now func() time.Time
	// Rand returns values in [0, 1) that jitter retry delays; nil uses math/rand/v2.
	Rand func() float64
}

// Caller is the agent a report comes from, as its credential says.
type Caller struct {
	TenantID string
	AgentID  string
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Service) rand() float64 {
	if s.Rand == nil {
		return rand.Float64()
	}
	return s.Rand()
}

// Refusal codes: each tells the agent what to do with the report (or the queue message) the
// control plane refused.
const (
	// CodeTaskFinished: the task is finished (succeeded, partial, failed, cancelled, expired).
	// Delete the message without running the task.
	CodeTaskFinished = "task_finished"
	// CodeTaskNotStartable: the task waits for a retry (a new message comes when it is due) or
	// its deadline passed. Delete the message without running the task.
	CodeTaskNotStartable = "task_not_startable"
	// CodeTaskRunning: this agent process already runs the task, started from another delivery
	// of its message. Do not start it a second time.
	CodeTaskRunning = "task_running"
	// CodeRunSuperseded: the task was started again after this run (its agent restarted), so
	// this run's reports are no longer taken. Stop it and drop its reports.
	CodeRunSuperseded = "run_superseded"
	// CodeRunFinished: the run's result is recorded; progress for it is no longer taken.
	CodeRunFinished = "run_finished"
	// CodeResultConflict: a different result is already recorded for the run.
	CodeResultConflict = "result_conflict"
)

// Refusal is a report the task's or run's current state does not allow. It is a conflict
// (domain.ErrConflict) whose Code tells the agent how to go on.
type Refusal struct {
	Code    string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// Unwrap makes a refusal a conflict for callers that do not know the codes.
func (r *Refusal) Unwrap() error { return domain.ErrConflict }

func refuse(code, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrTooLarge is a report too large to be taken in one piece.
var ErrTooLarge = errors.New("too large")

// TooLargeError names what is too large.
type TooLargeError struct {
	Field  string
	Reason string
}

func (e *TooLargeError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes it ErrTooLarge.
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// problems collects the invalid fields of one report, so all are named at once.
type problems []domain.FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, domain.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &domain.ValidationError{Fields: p}
}

// checkID requires an identifier.
func (p *problems) checkID(field, id string) {
	switch {
	case id == "":
		p.add(field, "must not be empty")
	case !domain.ValidID(id):
		p.add(field, "must be an ID (26 characters, as the API issued it)")
	}
}

// checkText requires valid UTF-8 of at most maxLen characters without control characters;
// multiline text may hold line feeds and tabs.
func (p *problems) checkText(field, s string, maxLen int, multiline bool) {
	switch {
	case !utf8.ValidString(s):
		p.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > maxLen:
		p.add(field, "must be at most %d characters long (got %d)", maxLen, utf8.RuneCountInString(s))
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t')) }):
		p.add(field, "must not contain control characters")
	}
}

// checkToken requires an opaque token the agent chose: 1–maxLen printable ASCII characters.
func (p *problems) checkToken(field, s string, maxLen int) {
	switch {
	case s == "":
		p.add(field, "must not be empty")
	case len(s) > maxLen:
		p.add(field, "must be at most %d characters long (got %d)", maxLen, len(s))
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }):
		p.add(field, "must be printable ASCII without spaces")
	}
}

// Time is an RFC 3339 time in a report. It decodes like time.Time, but a malformed value is a
// JSON type error, so the error names the field it is in.
type Time struct{ time.Time }

// UnmarshalJSON reads an RFC 3339 string.
func (t *Time) UnmarshalJSON(b []byte) error {
	if err := t.Time.UnmarshalJSON(b); err != nil {
		return &json.UnmarshalTypeError{Value: "another string", Type: reflect.TypeFor[time.Time]()}
	}
	return nil
}
