package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// TestTheAgentRefusesRestoresTheControlPlaneShouldHaveRefused hands the runner task messages
// that the API refuses (traversal in the target or in a selected path, relative paths) as a
// control plane with a bug, or a forged message, would send them: the agent refuses each one
// itself, before restic starts, and writes nothing.
func TestTheAgentRefusesRestoresTheControlPlaneShouldHaveRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := f.backedUp(t, map[string]string{"a.txt": "a\n"})

	roots := filepath.Join(f.dir, "roots")
	require.NoError(t, os.MkdirAll(roots, 0o755))
	f.cfg.RestoreRoots = []string{roots}
	outside := filepath.Join(f.dir, "outside")
	inside := filepath.Join(roots, "r")

	cases := map[string]struct {
		spec   events.RestoreSpec
		reason string
	}{
		"target climbing out of the roots": {events.RestoreSpec{Target: roots + "/../outside"}, `climbs with ".."`},
		"relative target":                  {events.RestoreSpec{Target: "outside"}, "not an absolute path"},
		"selected path climbing out":       {events.RestoreSpec{Target: inside, IncludePaths: []string{src + "/../../etc/passwd"}}, `must not contain ".."`},
		"relative selected path":           {events.RestoreSpec{Target: inside, IncludePaths: []string{"a.txt"}}, "must be an absolute path"},
	}
	for name, c := range cases {
		m := message(domain.TaskRestore, "main")
		spec := c.spec
		spec.SnapshotID = "latest"
		m.Restore = &spec
		got := f.run(t, m)
		require.Equal(t, domain.TaskFailed, got.Status, name)
		assert.Contains(t, got.Error, "restore refused", name)
		assert.Contains(t, got.Error, c.reason, name)
	}
	assert.NotContains(t, f.startedOps(), "restore", "restic never ran for a refused restore")
	assert.NoDirExists(t, outside)
	left, err := os.ReadDir(roots)
	require.NoError(t, err)
	assert.Empty(t, left, "nothing was created inside the roots either")
}

// TestSelectedPathsAreNamesNotPatternsAndRestoreWithoutRootsGoesToANewDirectory restores one
// file whose name is a glob pattern matching its neighbour on an agent without restoreRoots:
// the file alone comes back, into a new temporary directory the result names.
func TestSelectedPathsAreNamesNotPatternsAndRestoreWithoutRootsGoesToANewDirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := f.backedUp(t, map[string]string{
		"[x].txt":   "the bracketed one\n",
		"x.txt":     "what the pattern [x].txt matches\n",
		"other.txt": "not selected\n",
	})

	m := message(domain.TaskRestore, "main")
	m.Restore = &events.RestoreSpec{SnapshotID: "latest", IncludePaths: []string{filepath.Join(src, "[x].txt")}, Verify: true}
	got := f.run(t, m)
	require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)
	require.NotEmpty(t, got.RestoreTarget)
	t.Cleanup(func() { _ = os.RemoveAll(got.RestoreTarget) })
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(got.RestoreTarget, tmp+string(filepath.Separator)), "%s is a new directory under %s", got.RestoreTarget, tmp)

	b, err := os.ReadFile(filepath.Join(got.RestoreTarget, src, "[x].txt"))
	require.NoError(t, err)
	assert.Equal(t, "the bracketed one\n", string(b))
	assert.NoFileExists(t, filepath.Join(got.RestoreTarget, src, "x.txt"), "the selected name is not read as a pattern")
	assert.NoFileExists(t, filepath.Join(got.RestoreTarget, src, "other.txt"))
}

// backedUp writes files into a new source folder and backs it up into the main repository.
func (f *fixture) backedUp(t *testing.T, files map[string]string) string {
	t.Helper()
	src := filepath.Join(f.dir, "src")
	for name, content := range files {
		agenttest.WriteFile(t, filepath.Join(src, name), []byte(content))
	}
	backup := f.run(t, backupMessage("main", src))
	require.Equal(t, domain.TaskSucceeded, backup.Status, backup.Error)
	return src
}
