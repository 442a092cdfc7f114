package restic

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// replay feeds a recording from testdata (see testdata/capture.sh) through the same collector
// a live restic writes to, and returns the outcome and the log lines it produced. cause stands
// for the context error of an interrupted run.
func replay(t *testing.T, name, op string, onStdout func([]byte), cause error) (*outcome, []Line) {
	t.Helper()
	var lines []Line
	c := newCollector(func(s string) string { return s }, func(l Line) { lines = append(lines, l) }, onStdout)
	feed(t, c.writer(Stdout), name+".stdout.jsonl")
	feed(t, c.writer(Stderr), name+".stderr.jsonl")
	raw, err := os.ReadFile(filepath.Join("testdata", name+".exit"))
	require.NoError(t, err)
	code, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	return c.finish(op, code, cause), lines
}

func feed(t *testing.T, w io.WriteCloser, file string) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	require.NoError(t, err)
	defer f.Close()
	_, err = io.Copy(w, f)
	require.NoError(t, err)
	require.NoError(t, w.Close())
}
