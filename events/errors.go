package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxBodyBytes bounds an encoded message. SQS accepts 256 KiB per message, message attributes
// included; the difference is left for them.
const MaxBodyBytes = 250 * 1024

// Kinds of rejection a reader may want to tell apart, matched with errors.Is on a *RejectError.
var (
	// ErrUnsupportedVersion: the message is of a schema version this reader does not know,
	// usually a newer one; upgrading the reader helps.
	ErrUnsupportedVersion = errors.New("unsupported schema version")
	// ErrUnknownType: the message, task or event type is not one this reader knows.
	ErrUnknownType = errors.New("unknown type")
)

// ErrTooLarge is returned by Encode when a message does not fit in MaxBodyBytes.
var ErrTooLarge = errors.New("message too large")

// RejectError says why a message can never be processed. Retrying cannot help: the reader
// reports Reason and leaves the message to the dead-letter queue.
type RejectError struct {
	// ID is the message's task or event ID when it could be read and is valid, so the rejection
	// can be reported against it; empty otherwise.
	ID string
	// Reason lists every problem found, separated by "; ".
	Reason string
	// kind is ErrUnsupportedVersion, ErrUnknownType or nil.
	kind error
}

func (e *RejectError) Error() string {
	if e.ID == "" {
		return "rejected message: " + e.Reason
	}
	return "rejected message " + e.ID + ": " + e.Reason
}

// Unwrap lets errors.Is tell an unsupported version or an unknown type from other rejections.
func (e *RejectError) Unwrap() error { return e.kind }

// problems collects what is wrong with one message while it is checked.
type problems struct {
	reasons []string
	kind    error
}

func (p *problems) add(format string, args ...any) {
	p.reasons = append(p.reasons, fmt.Sprintf(format, args...))
}

// addKind records a problem that errors.Is can match; the first kind recorded wins.
func (p *problems) addKind(kind error, format string, args ...any) {
	if p.kind == nil {
		p.kind = kind
	}
	p.add(format, args...)
}

func (p *problems) err(id string) error {
	if len(p.reasons) == 0 {
		return nil
	}
	return &RejectError{ID: id, Reason: strings.Join(p.reasons, "; "), kind: p.kind}
}

func reject(id string, kind error, format string, args ...any) *RejectError {
	return &RejectError{ID: id, Reason: fmt.Sprintf(format, args...), kind: kind}
}

// header is what every message starts with; it is read first so that a message of an unknown
// version is rejected for its version rather than for a field whose shape changed.
type header struct {
	SchemaVersion int    `json:"schemaVersion"`
	Type          string `json:"type"`
}

func readHeader(body []byte) (header, error) {
	if len(body) > MaxBodyBytes {
		return header{}, reject("", nil, "body is %d bytes, more than the limit of %d", len(body), MaxBodyBytes)
	}
	var h header
	if err := json.Unmarshal(body, &h); err != nil {
		return header{}, reject("", nil, "body is not a JSON message: %v", err)
	}
	return h, nil
}

// checkVersion rejects a message whose version is missing or not the one this reader knows.
func checkVersion(what string, got, known int) *RejectError {
	switch {
	case got == 0:
		return reject("", nil, "schemaVersion is missing")
	case got > known:
		return reject("", ErrUnsupportedVersion, "%s schemaVersion %d is newer than this reader understands (%d); upgrade it", what, got, known)
	case got != known:
		return reject("", ErrUnsupportedVersion, "%s schemaVersion %d is not supported (this reader understands %d)", what, got, known)
	}
	return nil
}

// marshal encodes v compactly without escaping <, > and &, which are common in exclude
// patterns and error messages and need no escaping outside HTML.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func checkSize(what string, body []byte) error {
	if len(body) > MaxBodyBytes {
		return fmt.Errorf("%s: %w: %d bytes, more than the limit of %d", what, ErrTooLarge, len(body), MaxBodyBytes)
	}
	return nil
}
