package restic

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

const statusLine = `{"message_type":"status","percent_done":0.5,"total_files":4,"files_done":2,"total_bytes":100,"bytes_done":50,"current_files":["/data/a"]}`
const summaryLine = `{"message_type":"summary","files_new":4,"total_files_processed":4,"total_bytes_processed":100,"total_duration":1.5,"snapshot_id":"0123456789abcdef"}`

func TestLongLinesDoNotStopParsing(t *testing.T) {
	var progress []domain.Progress
	var lines []Line
	p := &backupParser{progressParser[backupSummary]{onProgress: func(pr domain.Progress) { progress = append(progress, pr) }}}
	c := newCollector(func(s string) string { return s }, func(l Line) { lines = append(lines, l) }, p.line)
	c.maxLine = 1024
	w := c.writer(Stdout)
	long := `{"message_type":"status","current_files":["` + strings.Repeat("x", 5000) + `"]}`
	_, err := fmt.Fprintf(w, "%s\n%s\n%s\n%s\n", statusLine, long, strings.Repeat("y", maxLogLineBytes*3), summaryLine)
	require.NoError(t, err)
	require.NoError(t, w.Close())

	res, err := p.finish(c.finish("backup", 0, nil))
	require.NoError(t, err)
	assert.Equal(t, "0123456789abcdef", res.Summary.SnapshotID)
	assert.Len(t, progress, 1, "the cut status line is not parsed")

	require.Len(t, lines, 4)
	assert.Equal(t, strings.Repeat("x", 1024-len(`{"message_type":"status","current_files":["`)), strings.TrimPrefix(strings.TrimSuffix(lines[1].Text, " … [line truncated]"), `{"message_type":"status","current_files":["`))
	assert.True(t, strings.HasSuffix(lines[2].Text, "[line truncated]"))
	assert.LessOrEqual(t, len(lines[2].Text), maxLogLineBytes+len(" … [line truncated]"))
}

func TestLogLinesAreBoundedEvenWhenParsingKeepsMore(t *testing.T) {
	var lines []Line
	c := newCollector(func(s string) string { return s }, func(l Line) { lines = append(lines, l) }, nil)
	w := c.writer(Stdout)
	_, err := w.Write([]byte(strings.Repeat("é", maxLogLineBytes) + "\n"))
	require.NoError(t, err)
	require.Len(t, lines, 1)
	text := strings.TrimSuffix(lines[0].Text, " … [line truncated]")
	assert.LessOrEqual(t, len(text), maxLogLineBytes)
	assert.Equal(t, strings.Repeat("é", len(text)/2), text, "cut on a character boundary")
}

func TestNoiseIsToleratedAndLogged(t *testing.T) {
	var lines []Line
	p := &backupParser{}
	c := newCollector(func(s string) string { return s }, func(l Line) { lines = append(lines, l) }, p.line)
	out, errw := c.writer(Stdout), c.writer(Stderr)
	for _, s := range []string{"using parent snapshot 4439429d\n", "{not json\n", "\n", statusLine + "\r\n", `{"message_type":"verbose_status","action":"new"}` + "\n", summaryLine} {
		_, err := out.Write([]byte(s))
		require.NoError(t, err)
	}
	require.NoError(t, out.Close())
	_, err := errw.Write([]byte("/data/gone does not exist, skipping\n[]\n"))
	require.NoError(t, err)
	require.NoError(t, errw.Close())

	res, err := p.finish(c.finish("backup", 0, nil))
	require.NoError(t, err)
	assert.Equal(t, uint64(4), res.Summary.FilesNew)
	assert.Equal(t, []Line{
		{Stdout, "using parent snapshot 4439429d"},
		{Stdout, "{not json"},
		{Stdout, statusLine},
		{Stdout, `{"message_type":"verbose_status","action":"new"}`},
		{Stdout, summaryLine},
		{Stderr, "/data/gone does not exist, skipping"},
		{Stderr, "[]"},
	}, lines, "blank lines are dropped, the last line without a newline is kept")
}

func TestSecretsNeverReachTheLog(t *testing.T) {
	repo := Repository{
		Location:     "rest:https://backup:rest-server-pass@backup.example.com:8000/web-1",
		PasswordFile: "/etc/rm/pw",
		Env: map[string]string{
			"AWS_ACCESS_KEY_ID":     "AKIAEXAMPLEKEY",
			"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG",
			"AWS_SECRET_ALT":        "wJalrXUtnFEMI/K7MDENG/longer",
			"AWS_DEFAULT_REGION":    "eu-west-1",
		},
	}
	r, err := New(repo, Options{Binary: anyExecutable(t)})
	require.NoError(t, err)

	var lines []Line
	c := newCollector(r.redact, func(l Line) { lines = append(lines, l) }, nil)
	w := c.writer(Stderr)
	_, err = fmt.Fprintf(w, "%s\n%s\n%s\n",
		"Fatal: unable to open repository at rest:https://backup:rest-server-pass@backup.example.com:8000/web-1",
		"signing with AKIAEXAMPLEKEY and wJalrXUtnFEMI/K7MDENG/longer in eu-west-1",
		`{"message_type":"exit_error","code":1,"message":"Fatal: key wJalrXUtnFEMI/K7MDENG rejected"}`)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	err = c.finish("snapshots", 1, nil).err()

	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	everything := []string{err.Error(), ee.Message}
	everything = append(everything, ee.LastLines...)
	for _, l := range lines {
		everything = append(everything, l.Text)
	}
	for _, s := range everything {
		for _, secret := range []string{"rest-server-pass", "AKIAEXAMPLEKEY", "wJalrXUtnFEMI", "longer"} {
			assert.NotContains(t, s, secret)
		}
	}
	assert.Equal(t, "signing with [redacted] and [redacted] in eu-west-1", lines[1].Text,
		"the longer secret is replaced whole; a region is not a secret")
	assert.Equal(t, "Fatal: key [redacted] rejected", ee.Message)
}

func TestCleanRemovesTerminalControl(t *testing.T) {
	for raw, want := range map[string]string{
		"\x1b[2Ksignal interrupt received, cleaning up": "signal interrupt received, cleaning up",
		"[0:01] 10%\r[0:02] 20%\r":                      "[0:02] 20%",
		"plain\r":                                       "plain",
		"bad \xff byte":                                 "bad \uFFFD byte",
		"  indented stays  ":                            "  indented stays",
	} {
		assert.Equal(t, want, clean([]byte(raw)), "%q", raw)
	}
}

func TestExitCodes(t *testing.T) {
	for code, want := range map[int]struct {
		kind      Kind
		retryable bool
	}{
		1:   {Fatal, true},
		2:   {Unknown, true},
		3:   {Partial, false},
		10:  {RepoMissing, false},
		11:  {Locked, true},
		12:  {WrongPassword, false},
		130: {Interrupted, false},
		42:  {Unknown, true},
		-1:  {Unknown, true},
	} {
		err := (&outcome{op: "check", code: code, lastLines: []string{"last words"}}).err()
		var ee *ExitError
		require.ErrorAs(t, err, &ee, "exit %d", code)
		assert.Equal(t, want.kind, ee.Kind, "exit %d", code)
		assert.Equal(t, code, ee.Code)
		assert.Equal(t, want.retryable, ee.Retryable(), "exit %d", code)
		assert.Equal(t, fmt.Sprintf("restic check: %s (exit code %d): last words", want.kind, code), err.Error())
	}
	assert.NoError(t, (&outcome{op: "check"}).err())
}

func TestInterruptionDecidesTheKind(t *testing.T) {
	cause := fmt.Errorf("agent shutting down: %w", context.Canceled)
	for _, code := range []int{1, 130, -1, 12} {
		err := (&outcome{op: "backup", code: code, cause: cause}).err()
		assert.Equal(t, Interrupted, KindOf(err), "exit %d", code)
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, cause)
	}
	// Exit code 3 means restic finished and saved the snapshot before it noticed.
	err := (&outcome{op: "backup", code: 3, cause: cause}).err()
	assert.Equal(t, Partial, KindOf(err))
	assert.False(t, errors.Is(err, context.Canceled))
}

func TestKindNames(t *testing.T) {
	for k := Unknown; k <= Interrupted; k++ {
		assert.NotContains(t, k.String(), "kind(")
	}
	assert.Equal(t, "kind(99)", Kind(99).String())
	assert.Equal(t, "stdout", Stdout.String())
	assert.Equal(t, "stderr", Stderr.String())
}

func TestItemErrorString(t *testing.T) {
	assert.Equal(t, "open /a: permission denied", ItemError{Item: "/a", Message: "open /a: permission denied"}.String())
	assert.Equal(t, "/a: read error", ItemError{Item: "/a", Message: "read error"}.String())
	assert.Equal(t, "pack damaged", ItemError{Message: "pack damaged"}.String())
}

func TestProgressFromRestoreStatus(t *testing.T) {
	var got []domain.Progress
	p := &restoreParser{progressParser[RestoreResult]{onProgress: func(pr domain.Progress) { got = append(got, pr) }}}
	p.line([]byte(`{"message_type":"status","seconds_elapsed":3,"percent_done":0.25,"total_files":8,"files_restored":2,"total_bytes":400,"bytes_restored":100}`))
	require.Len(t, got, 1)
	assert.Equal(t, domain.Progress{PercentDone: 0.25, TotalFiles: 8, FilesDone: 2, TotalBytes: 400, BytesDone: 100}, got[0])
	_, err := p.finish(&outcome{op: "restore"})
	assert.ErrorIs(t, err, ErrNoSummary)
}

func TestUnreadableSnapshotListIsReported(t *testing.T) {
	p := &snapshotsParser{}
	p.line([]byte(`[{"id": 5}]`))
	_, err := p.finish(&outcome{op: "snapshots"})
	assert.ErrorIs(t, err, ErrUnexpectedOutput)

	p = &snapshotsParser{}
	_, err = p.finish(&outcome{op: "snapshots"})
	assert.ErrorIs(t, err, ErrUnexpectedOutput)

	p = &snapshotsParser{}
	p.line([]byte(`[]`))
	list, err := p.finish(&outcome{op: "snapshots"})
	require.NoError(t, err)
	assert.NotNil(t, list)
	assert.Empty(t, list)
}
