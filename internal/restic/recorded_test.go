package restic

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// The tests in this file read output recorded from restic 0.18.1 by testdata/capture.sh.

const captureDir = "/tmp/rm-restic-capture"

func TestRecordedBackupFirst(t *testing.T) {
	p := &backupParser{}
	o, _ := replay(t, "backup-first", "backup", p.line, nil)
	res, err := p.finish(o)
	require.NoError(t, err)
	assert.Equal(t, domain.Summary{
		SnapshotID:          "e3a9832c6a719eb115a158036c27ce53f3dc1ab1d331c0107e0368984457cefe",
		FilesNew:            2,
		DirsNew:             4,
		DataAdded:           2145,
		DataAddedPacked:     1735,
		TotalFilesProcessed: 2,
		TotalBytesProcessed: 25,
		DurationSeconds:     1.124087572,
	}, res.Summary)
	assert.Empty(t, res.Unreadable)
	assert.Empty(t, res.Errors)
}

func TestRecordedBackupSecondSeesTheChangedFile(t *testing.T) {
	p := &backupParser{}
	o, _ := replay(t, "backup-second", "backup", p.line, nil)
	res, err := p.finish(o)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), res.Summary.FilesChanged)
	assert.Equal(t, uint64(1), res.Summary.FilesUnmodified)
	assert.Equal(t, uint64(0), res.Summary.FilesNew)
	assert.Equal(t, uint64(4), res.Summary.DirsChanged)
	assert.Equal(t, "4ecfac40c46f898cfa5fafd77a286b2f533822d76388279bd61a770aaa0ba5ce", res.Summary.SnapshotID)
}

func TestRecordedBackupUnreadableIsPartial(t *testing.T) {
	p := &backupParser{}
	o, lines := replay(t, "backup-unreadable", "backup", p.line, nil)
	res, err := p.finish(o)

	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, Partial, ee.Kind)
	assert.Equal(t, 3, ee.Code)
	assert.Equal(t, "Warning: at least one source file could not be read", ee.Message)
	assert.False(t, ee.Retryable())

	require.NotNil(t, res, "a partial backup still made a snapshot")
	assert.Equal(t, "b4ff2a3296f6c7497d6ee35ac776e7de00c29abc57095bd3792186b69d920962", res.Summary.SnapshotID)
	// restic reports the directory twice (scan and archival); it is listed once.
	assert.Equal(t, []string{captureDir + "/src/locked-dir", captureDir + "/src/locked.txt"}, res.Unreadable)
	require.Len(t, res.Errors, 3)
	assert.Equal(t, ItemError{
		Item:    captureDir + "/src/locked.txt",
		During:  "archival",
		Message: "open " + captureDir + "/src/locked.txt: permission denied",
	}, res.Errors[1])
	assert.Equal(t, "scan", res.Errors[2].During)

	var stderr []string
	for _, l := range lines {
		if l.Stream == Stderr {
			stderr = append(stderr, l.Text)
		}
	}
	assert.Len(t, stderr, 4, "every stderr line reaches the log")
}

// A writer may get its input in any pieces; one byte at a time must give the same result.
func TestRecordedBackupReadByteByByte(t *testing.T) {
	p := &backupParser{}
	c := newCollector(func(s string) string { return s }, nil, p.line)
	for _, f := range []struct {
		s    Stream
		name string
	}{{Stdout, "backup-unreadable.stdout.jsonl"}, {Stderr, "backup-unreadable.stderr.jsonl"}} {
		raw, err := os.ReadFile(filepath.Join("testdata", f.name))
		require.NoError(t, err)
		w := c.writer(f.s)
		buf := make([]byte, 1)
		r := iotest.OneByteReader(bytes.NewReader(raw))
		for {
			n, err := r.Read(buf)
			if n > 0 {
				_, werr := w.Write(buf[:n])
				require.NoError(t, werr)
			}
			if err != nil {
				break
			}
		}
		require.NoError(t, w.Close())
	}
	res, err := p.finish(c.finish("backup", 3, nil))
	assert.Equal(t, Partial, KindOf(err))
	require.NotNil(t, res)
	assert.Len(t, res.Unreadable, 2)
	assert.Equal(t, uint64(2), res.Summary.FilesUnmodified)
}

func TestRecordedBackupInterrupted(t *testing.T) {
	var progress []domain.Progress
	p := &backupParser{progressParser[backupSummary]{onProgress: func(pr domain.Progress) { progress = append(progress, pr) }}}
	o, lines := replay(t, "backup-interrupted", "backup", p.line, context.Canceled)
	res, err := p.finish(o)
	assert.Nil(t, res)

	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, Interrupted, ee.Kind, "restic exited %d after SIGINT; the interruption is what counts", ee.Code)
	assert.Equal(t, 1, ee.Code)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "Fatal: unable to save snapshot: context canceled", ee.Message)
	assert.Equal(t, []string{"signal interrupt received, cleaning up", "Fatal: unable to save snapshot: context canceled"}, ee.LastLines)

	require.Len(t, progress, 2)
	assert.Equal(t, domain.Progress{
		PercentDone:  0.024134904146194458,
		TotalFiles:   32,
		TotalBytes:   134217728,
		BytesDone:    3239332,
		SecondsLeft:  4,
		CurrentFiles: []string{captureDir + "/big/f1", captureDir + "/big/f10"},
	}, progress[1])
	assert.Contains(t, lines, Line{Stream: Stderr, Text: "signal interrupt received, cleaning up"},
		"terminal control sequences are removed from log lines")
}

func TestRecordedBackupInterruptedWithoutOurCancelIsFatal(t *testing.T) {
	p := &backupParser{}
	o, _ := replay(t, "backup-interrupted", "backup", p.line, nil)
	_, err := p.finish(o)
	assert.Equal(t, Fatal, KindOf(err))
	assert.NotErrorIs(t, err, context.Canceled)
}

func TestBackupExitingZeroWithoutSummaryIsAnError(t *testing.T) {
	// The interrupted recording's stdout has status lines but no summary.
	p := &backupParser{}
	c := newCollector(func(s string) string { return s }, nil, p.line)
	feed(t, c.writer(Stdout), "backup-interrupted.stdout.jsonl")
	res, err := p.finish(c.finish("backup", 0, nil))
	assert.Nil(t, res)
	assert.ErrorIs(t, err, ErrNoSummary)
}

func TestRecordedBackupLocked(t *testing.T) {
	p := &backupParser{}
	o, _ := replay(t, "backup-locked", "backup", p.line, nil)
	res, err := p.finish(o)
	assert.Nil(t, res)
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, Locked, ee.Kind)
	assert.Equal(t, 11, ee.Code)
	assert.True(t, ee.Retryable())
	assert.True(t, strings.HasPrefix(ee.Message, "unable to create lock in backend: repository is already locked exclusively"), ee.Message)
	assert.Contains(t, ee.LastLines, "the `unlock` command can be used to remove stale locks")
	assert.Contains(t, err.Error(), "restic backup: repository is locked (exit code 11): unable to create lock in backend")
	assert.NotContains(t, err.Error(), "\n")
}

func TestRecordedWrongPassword(t *testing.T) {
	p := &snapshotsParser{}
	o, _ := replay(t, "wrong-password", "snapshots", p.line, nil)
	list, err := p.finish(o)
	assert.Nil(t, list)
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, WrongPassword, ee.Kind)
	assert.Equal(t, 12, ee.Code)
	assert.Equal(t, "Fatal: wrong password or no key found", ee.Message)
	assert.False(t, ee.Retryable())
	assert.Equal(t, "restic snapshots: wrong password (exit code 12): Fatal: wrong password or no key found", err.Error())
}

func TestRecordedRepoMissing(t *testing.T) {
	p := &snapshotsParser{}
	o, _ := replay(t, "repo-missing", "snapshots", p.line, nil)
	_, err := p.finish(o)
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, RepoMissing, ee.Kind)
	assert.Equal(t, 10, ee.Code)
	assert.False(t, ee.Retryable())
	assert.Equal(t, []string{
		"Fatal: repository does not exist: unable to open config file: stat " + captureDir + "/no-such-repo/config: no such file or directory",
		"Is there a repository at the following location?",
		captureDir + "/no-such-repo",
	}, ee.LastLines)
}

func TestRecordedSnapshots(t *testing.T) {
	p := &snapshotsParser{}
	o, _ := replay(t, "snapshots", "snapshots", p.line, nil)
	list, err := p.finish(o)
	require.NoError(t, err)
	require.Len(t, list, 3)
	ids := []string{list[0].ID, list[1].ID, list[2].ID}
	assert.Equal(t, []string{
		"e3a9832c6a719eb115a158036c27ce53f3dc1ab1d331c0107e0368984457cefe",
		"4ecfac40c46f898cfa5fafd77a286b2f533822d76388279bd61a770aaa0ba5ce",
		"b4ff2a3296f6c7497d6ee35ac776e7de00c29abc57095bd3792186b69d920962",
	}, ids)
	first := list[0]
	assert.Equal(t, "e3a9832c", first.ShortID)
	assert.Equal(t, "capture-host", first.Hostname)
	assert.Equal(t, []string{"daily"}, first.Tags)
	assert.Equal(t, []string{captureDir + "/src"}, first.Paths)
	assert.Equal(t, "restic 0.18.1", first.ProgramVersion)
	assert.Empty(t, first.Parent)
	assert.Equal(t, first.ID, list[1].Parent)
	require.NotNil(t, first.Summary)
	assert.Equal(t, uint64(25), first.Summary.TotalBytesProcessed)

	d := first.Domain()
	assert.Equal(t, "e3a9832c6a719eb115a158036c27ce53f3dc1ab1d331c0107e0368984457cefe", d.ID)
	assert.Equal(t, time.Date(2026, 11, 27, 0, 25, 43, 295790245, time.UTC), d.Time.UTC())
	assert.Equal(t, uint64(25), d.SizeBytes)
	assert.Equal(t, "capture-host", d.Hostname)
}

func TestRecordedForget(t *testing.T) {
	p := &forgetParser{}
	o, _ := replay(t, "forget", "forget", p.line, nil)
	res, err := p.finish(o)
	require.NoError(t, err)
	require.Len(t, res.Groups, 1)
	g := res.Groups[0]
	assert.Equal(t, "capture-host", g.Host)
	assert.Equal(t, []string{captureDir + "/src"}, g.Paths)
	assert.Equal(t, []string{"b4ff2a32", "4ecfac40"}, shortIDs(res.Kept))
	assert.Equal(t, []string{"e3a9832c"}, shortIDs(res.Removed))
	require.Len(t, g.Reasons, 2)
	assert.Equal(t, []string{"last snapshot"}, g.Reasons[0].Matches)
	assert.Equal(t, "b4ff2a32", g.Reasons[0].Snapshot.ShortID)
}

func TestRecordedForgetWithPrune(t *testing.T) {
	p := &forgetParser{}
	o, lines := replay(t, "forget-prune", "forget", p.line, nil)
	res, err := p.finish(o)
	require.NoError(t, err)
	assert.Equal(t, []string{"11212067"}, shortIDs(res.Kept))
	assert.Equal(t, []string{"b4ff2a32", "4ecfac40"}, shortIDs(res.Removed))
	// prune's plain text follows the JSON on stdout and only goes to the log.
	assert.Contains(t, lines, Line{Stream: Stdout, Text: "[0:00] 100.00%  2 / 2 packs repacked"})
	assert.Equal(t, Line{Stream: Stdout, Text: "done"}, lines[len(lines)-1])
}

func TestForgetWithNoMatchingSnapshotPrintsNothing(t *testing.T) {
	p := &forgetParser{}
	c := newCollector(func(s string) string { return s }, nil, p.line)
	res, err := p.finish(c.finish("forget", 0, nil))
	require.NoError(t, err)
	assert.Empty(t, res.Groups)
	assert.Empty(t, res.Removed)
}

func TestRecordedCheck(t *testing.T) {
	for _, name := range []string{"check", "check-subset"} {
		t.Run(name, func(t *testing.T) {
			p := &checkParser{}
			o, _ := replay(t, name, "check", p.line, nil)
			res, err := p.finish(o)
			require.NoError(t, err)
			assert.Equal(t, &CheckResult{}, res)
		})
	}
}

func TestRecordedCheckDamaged(t *testing.T) {
	p := &checkParser{}
	o, _ := replay(t, "check-damaged", "check", p.line, nil)
	res, err := p.finish(o)
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, Fatal, ee.Kind)
	assert.Equal(t, "Fatal: repository contains errors", ee.Message)
	require.NotNil(t, res, "the summary says what is broken")
	assert.Equal(t, int64(2), res.NumErrors)
	assert.Equal(t, []string{"34e3cf25e56e1782b7238040e7a2bca9c1c241a1529ada88f50633f90f7aa5ab"}, res.BrokenPacks)
	require.Len(t, res.Errors, 6)
	assert.Equal(t, "error for tree 00cafef5:", res.Errors[0])
	assert.Contains(t, res.Errors[2], "ciphertext verification failed")
}

func TestRecordedRestore(t *testing.T) {
	p := &restoreParser{}
	o, _ := replay(t, "restore", "restore", p.line, nil)
	res, err := p.finish(o)
	require.NoError(t, err)
	assert.Equal(t, &RestoreResult{TotalFiles: 2, FilesRestored: 5, TotalBytes: 38, BytesRestored: 38}, res)
}

func TestRecordedInit(t *testing.T) {
	p := &initParser{}
	o, _ := replay(t, "init", "init", p.line, nil)
	id, err := p.finish(o)
	require.NoError(t, err)
	assert.Equal(t, "fecf57986581374ad729fd74cf1285cf2e36798eb9fb7540d72ffbc6352a5ca3", id)
}

func TestRecordedVersion(t *testing.T) {
	p := &versionParser{}
	o, _ := replay(t, "version", "version", p.line, nil)
	v, err := p.finish(o)
	require.NoError(t, err)
	assert.Equal(t, "0.18.1", v)
}

func TestRecordedUnlock(t *testing.T) {
	o, lines := replay(t, "unlock-stale", "unlock", nil, nil)
	require.NoError(t, o.err())
	assert.Equal(t, []Line{{Stream: Stdout, Text: "successfully removed 1 locks"}}, lines)

	o, lines = replay(t, "unlock-nothing", "unlock", nil, nil)
	require.NoError(t, o.err())
	assert.Empty(t, lines)
}

func TestEveryRecordingIsUsed(t *testing.T) {
	exits, err := filepath.Glob(filepath.Join("testdata", "*.exit"))
	require.NoError(t, err)
	used := []string{
		"backup-first", "backup-second", "backup-third", "backup-unreadable", "backup-interrupted", "backup-locked",
		"check", "check-subset", "check-damaged", "forget", "forget-prune", "init", "repo-missing", "restore",
		"snapshots", "unlock-nothing", "unlock-stale", "version", "wrong-password",
	}
	var got []string
	for _, e := range exits {
		got = append(got, strings.TrimSuffix(filepath.Base(e), ".exit"))
	}
	assert.ElementsMatch(t, got, used, "a recording without a test, or a test without its recording")

	// backup-third exists to give forget --prune something to remove; it is an ordinary backup.
	p := &backupParser{}
	o, _ := replay(t, "backup-third", "backup", p.line, nil)
	res, err := p.finish(o)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), res.Summary.FilesNew, "the two files of the unreadable backup, readable again")
}

func shortIDs(s []Snapshot) []string {
	ids := make([]string, len(s))
	for i, x := range s {
		ids[i] = x.ShortID
	}
	return ids
}

func TestErrorsAsThroughWrapping(t *testing.T) {
	p := &snapshotsParser{}
	o, _ := replay(t, "wrong-password", "snapshots", p.line, nil)
	_, err := p.finish(o)
	wrapped := errors.Join(errors.New("task 01J"), err)
	assert.Equal(t, WrongPassword, KindOf(wrapped))
	assert.Equal(t, Unknown, KindOf(errors.New("not restic")))
}
