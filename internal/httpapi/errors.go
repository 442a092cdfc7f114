package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Error codes of the JSON error body.
const (
	CodeInvalid         = "invalid_request"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeTooLarge        = "payload_too_large"
	CodeUnsupported     = "unsupported_media_type"
	CodeUnprocessable   = "unprocessable"
	CodeTooManyRequests = "too_many_requests"
	CodeMethod          = "method_not_allowed"
	CodeInternal        = "internal"
	CodeUnavailable     = "unavailable"
)

// Error is an error with an HTTP status and a message meant for the caller.
type Error struct {
	Status  int
	Code    string
	Message string
	Fields  []domain.FieldError
}

func (e *Error) Error() string { return e.Message }

// errorBody is the one shape of every error response.
type errorBody struct {
	Error struct {
		Code    string              `json:"code"`
		Message string              `json:"message"`
		Fields  []domain.FieldError `json:"fields,omitempty"`
	} `json:"error"`
}

// badRequest is a 400 naming the fields at fault.
func badRequest(message string, fields ...domain.FieldError) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: message, Fields: fields}
}

func fieldError(field, reason string) *Error {
	return badRequest("invalid "+field+": "+reason, domain.FieldError{Field: field, Reason: reason})
}

// statusOf is the one table from domain errors to HTTP statuses.
func statusOf(err error) *Error {
	var he *Error
	var ve *domain.ValidationError
	var te *domain.TransitionError
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &ve):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeUnprocessable, Message: "the request is not valid", Fields: ve.Fields}
	case errors.As(err, &te):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: te.Error()}
	case errors.Is(err, domain.ErrInvalidCursor):
		return badRequest("invalid cursor", domain.FieldError{Field: "cursor", Reason: "not a cursor this listing returned"})
	case errors.Is(err, domain.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "not found"}
	case errors.Is(err, domain.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: conflictMessage(err)}
	case errors.Is(err, domain.ErrUnauthorized):
		return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "missing or invalid credentials"}
	case errors.Is(err, domain.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "not allowed for this credential"}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}

// conflictMessage keeps the store's explanation of a conflict (which name is taken, which
// policy uses a repository): it names only the caller's own resources.
func conflictMessage(err error) string { return err.Error() }

// writeError answers with err's status and body. Internal errors are logged with the request's
// context and shown to the caller only as "internal error".
func writeError(ctx context.Context, w http.ResponseWriter, log *slog.Logger, err error) {
	e := statusOf(err)
	if e.Status >= 500 {
		log.ErrorContext(ctx, "request failed", "error", err)
	}
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.Fields = e.Code, e.Message, e.Fields
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="restic-monitor"`)
	}
	writeJSON(w, e.Status, body)
}
