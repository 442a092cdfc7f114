// Package agenttest holds what the agent's tests share: the real restic binary, file trees to
// back up and compare, and a view of the restic processes a test's agent has running. It is
// imported only by tests.
package agenttest

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/testenv/restictest"
)

// ResticBinary returns the real restic, or ends the test without one (see restictest.Binary).
func ResticBinary(t testing.TB) string {
	t.Helper()
	return restictest.Binary(t)
}

// WriteFile writes data to path, creating its directories.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// RandomTree writes n files of size bytes under dir that neither compress nor deduplicate.
func RandomTree(t testing.TB, dir string, n, size int) {
	t.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{byte(n), byte(size >> 10), 7}))
	buf := make([]byte, size)
	for i := range n {
		for j := 0; j < len(buf); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(buf); k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		WriteFile(t, filepath.Join(dir, fmt.Sprintf("file-%03d", i)), buf)
	}
}

// AssertSameTree compares the regular files under want with those under got, byte for byte,
// and checks that got holds no file want lacks.
func AssertSameTree(t testing.TB, want, got string) {
	t.Helper()
	files := map[string]bool{}
	require.NoError(t, filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(want, p)
		files[rel] = true
		w, err := os.ReadFile(p)
		require.NoError(t, err)
		g, err := os.ReadFile(filepath.Join(got, rel))
		require.NoError(t, err, rel)
		assert.True(t, bytes.Equal(w, g), "%s differs after restore", rel)
		return nil
	}))
	require.NotEmpty(t, files)
	require.NoError(t, filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if !d.IsDir() {
			rel, _ := filepath.Rel(got, p)
			assert.True(t, files[rel], "%s was restored but is not in the source", rel)
		}
		return nil
	}))
}

// Proc is a running process.
type Proc struct {
	PID  int
	Args []string
	Env  []string
}

// ResticChildren lists the running restic processes whose parent is ppid, read from /proc.
// restic may run behind nice or ionice, which exec it in place, so the process name is what
// counts.
func ResticChildren(ppid int) ([]Proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var procs []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone already
		}
		// stat is "pid (comm) state ppid ...", and comm may contain spaces or parentheses.
		s := string(stat)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		fields := strings.Fields(s[rp+1:])
		if len(fields) < 2 || s[lp+1:rp] != "restic" || fields[0] == "Z" {
			continue
		}
		if parent, _ := strconv.Atoi(fields[1]); parent != ppid {
			continue
		}
		p := Proc{PID: pid}
		if raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil {
			p.Args = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		}
		if raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil {
			p.Env = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// WideTree writes n small files under dir for listings: a quarter of them (at most 2,500) in
// dir/wide, the rest 100 to a directory in dir/dNN/sNN, two levels deep. Each file holds its own
// path relative to dir.
func WideTree(t testing.TB, dir string, n int) {
	t.Helper()
	wide := min(n/4, 2500)
	for i := range n {
		var rel string
		if i < wide {
			rel = filepath.Join("wide", fmt.Sprintf("f%05d.txt", i))
		} else {
			j := i - wide
			rel = filepath.Join(fmt.Sprintf("d%02d", j/1000), fmt.Sprintf("s%02d", j/100%10), fmt.Sprintf("f%05d.txt", j))
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
