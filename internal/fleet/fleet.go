// Package fleet carries out what operators ask of their fleet when it takes more than one store
// call: issuing credentials, updating and deleting agents (with their queues), planning a
// policy's schedule slots on its agents and re-planning them when the policy changes, running a
// task now, cancelling one, summing up a tenant for a dashboard, and deleting a whole tenant. The tenant API and rmctl
// call it; it speaks domain types and sentinel errors only.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// QueueDeleter deletes an agent's queues, and finds a tenant's agent queues to delete them all;
// *queue.Manager is one.
type QueueDeleter interface {
	Delete(ctx context.Context, tenantID, agentID string) error
	ListTenantQueues(ctx context.Context, tenantID string) ([]string, error)
}

// TaskSender sends tasks to their agents' queues.
type TaskSender interface {
	Send(ctx context.Context, tasks []domain.Task) []dispatch.Result
}

// Service is the tenant's side of restic-monitor.
type Service struct {
	Store *store.Store
	// Queues deletes a deleted agent's queues; nil leaves them (only tools without SQS do that),
	// and refuses to delete a tenant.
	Queues QueueDeleter
	// Dispatcher sends a task that was asked to run now; nil leaves it pending, and the
	// scheduler sends it on its next tick.
	Dispatcher TaskSender
	Log        *slog.Logger
	// Now is the clock.
	Now func() time.Time
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

// problems collects invalid fields of one request, so all are reported at once.
type problems []domain.FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, domain.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// merge adds the fields of a validation error; other errors are returned as they are.
func (p *problems) merge(err error) error {
	if err == nil {
		return nil
	}
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		*p = append(*p, ve.Fields...)
		return nil
	}
	return err
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &domain.ValidationError{Fields: p}
}

// allPages calls list with successive cursors until the listing ends.
func allPages[T any](ctx context.Context, list func(ctx context.Context, page store.Page) ([]T, string, error)) ([]T, error) {
	var out []T
	page := store.Page{Limit: 100}
	for {
		items, next, err := list(ctx, page)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		page.Cursor = next
	}
}
