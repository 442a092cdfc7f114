package restic

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Stream says which of restic's outputs a line came from.
type Stream int

// restic prints its JSON messages on stdout and its errors, JSON or not, on stderr.
const (
	Stdout Stream = iota + 1
	Stderr
)

func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return "stream(" + strconv.Itoa(int(s)) + ")"
}

// Line is one line restic printed, ready to be shown to people.
type Line struct {
	Stream Stream
	Text   string
}

// ItemError is an error restic reported and then carried on: a file backup could not read, a
// file restore could not write, a damaged blob check found.
type ItemError struct {
	// Item is usually a path; empty when the error is about no particular item.
	Item string
	// During is what restic was doing: "scan", "archival", "restore", ...
	During  string
	Message string
}

func (e ItemError) String() string {
	if e.Item != "" && !strings.Contains(e.Message, e.Item) {
		return e.Item + ": " + e.Message
	}
	return e.Message
}

const (
	// maxLineBytes bounds one line kept for parsing. restic prints snapshot lists and forget
	// results as a single line, about 700 bytes per snapshot, so this is generous on purpose.
	maxLineBytes = 64 << 20
	// maxLogLineBytes bounds one line handed to OnLine; log chunks are 256 KiB at most.
	maxLogLineBytes = 8 << 10
	// lastLinesKept is how much of stderr an ExitError carries.
	lastLinesKept = 20
)

// collector gathers the output of one restic invocation. restic's two streams write to it from
// two goroutines; it serialises them, so parsers and OnLine never run concurrently.
type collector struct {
	mu       sync.Mutex
	redact   func(string) string
	onLine   func(Line)
	onStdout func(line []byte)
	maxLine  int
	// quietStdout keeps stdout from OnLine.
	quietStdout bool

	exitMessage string
	errors      []ItemError
	last        []string
}

func newCollector(redact func(string) string, onLine func(Line), onStdout func([]byte)) *collector {
	return &collector{redact: redact, onLine: onLine, onStdout: onStdout, maxLine: maxLineBytes}
}

// writer returns the io.WriteCloser one stream is written to; Close flushes a last line that
// ended without a newline.
func (c *collector) writer(s Stream) *lineWriter {
	return &lineWriter{max: c.maxLine, emit: func(line []byte, truncated bool) { c.line(s, line, truncated) }}
}

func (c *collector) line(s Stream, raw []byte, truncated bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == Stdout && c.quietStdout {
		if c.onStdout != nil && !truncated {
			c.onStdout(raw)
		}
		return
	}
	text := c.redact(clean(raw))
	switch s {
	case Stdout:
		// A cut line is not valid JSON; parsing it would only produce a misleading error.
		if c.onStdout != nil && !truncated {
			c.onStdout(raw)
		}
	case Stderr:
		c.stderr(raw, text)
	}
	if c.onLine != nil && text != "" {
		c.onLine(Line{Stream: s, Text: truncateLog(text, truncated)})
	}
}

// stderrMessage is every JSON message restic prints on stderr: exit_error, and error in both
// its shapes (backup and restore nest the message in an object, check does not).
type stderrMessage struct {
	MessageType string          `json:"message_type"`
	Code        int             `json:"code"`
	Message     string          `json:"message"`
	Error       json.RawMessage `json:"error"`
	During      string          `json:"during"`
	Item        string          `json:"item"`
}

func (m stderrMessage) text() string {
	if len(m.Error) > 0 {
		var nested struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(m.Error, &nested) == nil && nested.Message != "" {
			return nested.Message
		}
		var plain string
		if json.Unmarshal(m.Error, &plain) == nil && plain != "" {
			return plain
		}
	}
	return m.Message
}

func (c *collector) stderr(raw []byte, text string) {
	var m stderrMessage
	if decodeMessage(raw, &m) {
		switch m.MessageType {
		case "exit_error":
			c.exitMessage = c.redact(strings.TrimSpace(m.Message))
			c.remember(c.exitMessage)
			return
		case "error":
			e := ItemError{Item: m.Item, During: m.During, Message: c.redact(strings.TrimSpace(m.text()))}
			c.errors = append(c.errors, e)
			c.remember(e.String())
			return
		}
	}
	c.remember(text)
}

// remember keeps the last lines of stderr, one entry per line of a multi-line message.
func (c *collector) remember(text string) {
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			c.last = append(c.last, l)
		}
	}
	if n := len(c.last) - lastLinesKept; n > 0 {
		c.last = slices.Delete(c.last, 0, n)
	}
}

// outcome is what one restic invocation left behind once it exited.
type outcome struct {
	op          string
	code        int
	cause       error
	exitMessage string
	errors      []ItemError
	lastLines   []string
}

func (c *collector) finish(op string, code int, cause error) *outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &outcome{
		op: op, code: code, cause: cause,
		exitMessage: c.exitMessage,
		errors:      slices.Clone(c.errors),
		lastLines:   slices.Clone(c.last),
	}
}

// err is nil for exit code 0 and the *ExitError for any other.
func (o *outcome) err() error {
	if o.code == 0 {
		return nil
	}
	e := &ExitError{Op: o.op, Code: o.code, Kind: kindOfCode(o.code), Message: o.exitMessage, LastLines: o.lastLines}
	// After SIGINT restic exits with 130 or, as often, with 1 and "context canceled"; either
	// way the cause is the interruption. Exit code 3 still means the snapshot was saved.
	if o.cause != nil && e.Kind != Partial {
		e.Kind = Interrupted
		e.cause = o.cause
	}
	return e
}

// decodeMessage decodes a JSON object line; anything else is restic's plain-text noise.
func decodeMessage(raw []byte, v any) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, v) == nil
}

// decodeDocument decodes a line holding a whole JSON array, restic's single-document output.
func decodeDocument(raw []byte, v any) (ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

// lineWriter splits a stream into lines without ever holding more than max bytes of one line:
// the rest of a longer line is dropped and the line reported as truncated.
type lineWriter struct {
	max       int
	buf       []byte
	truncated bool
	emit      func(line []byte, truncated bool)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.add(p)
			break
		}
		w.add(p[:i])
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

// Close emits a final line that restic did not end with a newline.
func (w *lineWriter) Close() error {
	if len(w.buf) > 0 || w.truncated {
		w.flush()
	}
	return nil
}

func (w *lineWriter) add(p []byte) {
	if room := w.max - len(w.buf); len(p) > room {
		p = p[:max(room, 0)]
		w.truncated = true
	}
	w.buf = append(w.buf, p...)
}

func (w *lineWriter) flush() {
	w.emit(bytes.TrimSuffix(w.buf, []byte("\r")), w.truncated)
	w.truncated = false
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not keep a huge buffer alive for the status lines that follow
	} else {
		w.buf = w.buf[:0]
	}
}

// terminalControl matches the ANSI sequences restic writes even when not on a terminal (it
// clears the progress line before printing "signal interrupt received").
var terminalControl = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// clean turns raw output into text: valid UTF-8, no terminal control sequences, and of a line
// rewritten with carriage returns only what was written last.
func clean(raw []byte) string {
	s := terminalControl.ReplaceAllString(string(raw), "")
	if i := strings.LastIndexByte(strings.TrimRight(s, "\r"), '\r'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimRight(strings.ToValidUTF8(s, "\uFFFD"), "\r \t")
}

func truncateLog(text string, truncated bool) string {
	if len(text) <= maxLogLineBytes && !truncated {
		return text
	}
	cut := min(len(text), maxLogLineBytes)
	for cut > 0 && cut < len(text) && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + " … [line truncated]"
}

// secretNameParts mark a backend variable whose value must never be shown.
var secretNameParts = []string{"SECRET", "PASS", "TOKEN", "KEY", "CREDENTIAL", "SAS", "AUTH"}

// urlPassword finds the password in user:password@ inside a repository URL.
var urlPassword = regexp.MustCompile(`//[^/@:\s]*:([^/@\s]+)@`)

// secretsOf lists the values that must not appear in anything this package reports.
func secretsOf(repo Repository) []string {
	var secrets []string
	for k, v := range repo.Env {
		upper := strings.ToUpper(k)
		if len(v) >= 4 && slices.ContainsFunc(secretNameParts, func(p string) bool { return strings.Contains(upper, p) }) {
			secrets = append(secrets, v)
		}
	}
	for _, m := range urlPassword.FindAllStringSubmatch(repo.Location, -1) {
		secrets = append(secrets, m[1])
	}
	return secrets
}

// newRedactor replaces every secret with a marker, longest first so that a secret containing
// another is replaced whole.
func newRedactor(secrets []string) func(string) string {
	if len(secrets) == 0 {
		return func(s string) string { return s }
	}
	secrets = slices.Clone(secrets)
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, "[redacted]")
	}
	return strings.NewReplacer(pairs...).Replace
}
