package restic

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is what a restic exit code means (restic's doc/075_scripting.rst, "Exit codes").
type Kind int

const (
	// Unknown is any exit code restic does not document; restic says to treat it as a failure.
	Unknown Kind = iota
	// Fatal is exit code 1: the command failed. Network and backend errors land here too.
	Fatal
	// Partial is exit code 3: backup created a snapshot but could not read some source files.
	Partial
	// RepoMissing is exit code 10: there is no repository at the location.
	RepoMissing
	// Locked is exit code 11: another restic holds a conflicting lock (possibly a stale one).
	Locked
	// WrongPassword is exit code 12: no key in the repository opens with the password.
	WrongPassword
	// Interrupted is exit code 130, or any failure after the Runner interrupted restic because
	// its context ended.
	Interrupted
)

var kindNames = map[Kind]string{
	Unknown:       "unknown failure",
	Fatal:         "failed",
	Partial:       "some source files could not be read",
	RepoMissing:   "repository does not exist",
	Locked:        "repository is locked",
	WrongPassword: "wrong password",
	Interrupted:   "interrupted",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// kindOfCode maps restic's exit codes, the one table of them in this package.
func kindOfCode(code int) Kind {
	switch code {
	case 1:
		return Fatal
	case 3:
		return Partial
	case 10:
		return RepoMissing
	case 11:
		return Locked
	case 12:
		return WrongPassword
	case 130:
		return Interrupted
	}
	return Unknown
}

// ExitError is a restic command that did not succeed.
type ExitError struct {
	// Op is the restic command: "backup", "forget", ...
	Op string
	// Code is restic's exit code, -1 when it was killed by a signal.
	Code int
	Kind Kind
	// Message is restic's own final error message (its exit_error), when it printed one.
	Message string
	// LastLines are restic's last lines on stderr, redacted, oldest first.
	LastLines []string
	// cause is the context error when the Runner interrupted restic.
	cause error
}

func (e *ExitError) Error() string {
	msg := e.Message
	if msg == "" && len(e.LastLines) > 0 {
		msg = e.LastLines[len(e.LastLines)-1]
	}
	s := fmt.Sprintf("restic %s: %s (exit code %d)", e.Op, e.Kind, e.Code)
	if msg = oneLine(msg); msg != "" {
		s += ": " + msg
	}
	return s
}

// oneLine joins a multi-line message into one line.
func oneLine(msg string) string {
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// Unwrap returns the context's error when the Runner interrupted restic, so that
// errors.Is(err, context.DeadlineExceeded) tells a deadline from a cancellation.
func (e *ExitError) Unwrap() error { return e.cause }

// Retryable reports whether running the same command again later may succeed. A lock may be
// released and a backend may come back; a missing repository, a wrong password or an unreadable
// file stay as they are until someone acts, and an interruption was asked for.
func (e *ExitError) Retryable() bool {
	switch e.Kind {
	case Locked, Fatal, Unknown:
		return true
	}
	return false
}

// KindOf returns the Kind of a restic failure anywhere in err's chain, and Unknown when err is
// not an *ExitError.
func KindOf(err error) Kind {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Kind
	}
	return Unknown
}

// Errors that are not restic exit codes.
var (
	// ErrNoSummary is a command that exited successfully without the summary it must print.
	ErrNoSummary = errors.New("restic exited successfully without a summary")
	// ErrUnexpectedOutput is output this package cannot read.
	ErrUnexpectedOutput = errors.New("unexpected restic output")
)
