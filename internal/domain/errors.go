package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Adapters translate their own failures into these; the HTTP layer maps each
// to one status code.
var (
	ErrNotFound          = errors.New("not found")
	ErrConflict          = errors.New("conflict")
	ErrInvalidTransition = errors.New("invalid state transition")
	ErrInvalidCursor     = errors.New("invalid cursor")
	ErrUnauthorized      = errors.New("unauthorized")
	ErrForbidden         = errors.New("forbidden")
)

// FieldError names one invalid field by its JSON path and says why it is invalid.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError carries every invalid field of one input, so a caller can fix all at once.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// TransitionError reports a task state change that the task's current state does not allow.
type TransitionError struct {
	TaskID  string
	Current TaskStatus
	To      TaskStatus
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("task %s: cannot move from %q to %q", e.TaskID, e.Current, e.To)
}

func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }

// fieldErrors collects problems while an input is checked.
type fieldErrors []FieldError

func (fe *fieldErrors) add(field, format string, args ...any) {
	*fe = append(*fe, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (fe fieldErrors) err() error {
	if len(fe) == 0 {
		return nil
	}
	return &ValidationError{Fields: fe}
}
