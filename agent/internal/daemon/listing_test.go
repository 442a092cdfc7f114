package daemon_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
)

type treePage struct {
	SnapshotID string                `json:"snapshotId"`
	Path       string                `json:"path"`
	ListedPath string                `json:"listedPath"`
	TaskID     string                `json:"taskId"`
	Truncated  bool                  `json:"truncated"`
	Items      []domain.ListingEntry `json:"items"`
	NextCursor string                `json:"nextCursor"`
}

// tree reads every page of one directory of a stored listing, limit entries a page.
func tree(t *testing.T, cp *agenttest.ControlPlane, agentID, snap, dir string, limit int) ([]domain.ListingEntry, treePage, int) {
	t.Helper()
	var all []domain.ListingEntry
	var first treePage
	cursor, pages := "", 0
	for {
		q := url.Values{"path": {dir}, "limit": {fmt.Sprint(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var p treePage
		cp.Call("GET", "/v1/agents/"+agentID+"/snapshots/"+snap+"/tree?"+q.Encode(), nil, &p, http.StatusOK)
		if pages == 0 {
			first = p
		}
		pages++
		require.LessOrEqual(t, len(p.Items), limit)
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all, first, pages
		}
		cursor = p.NextCursor
	}
}

func names(entries []domain.ListingEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Name
	}
	return out
}

// TestListingAndSelectiveRestore backs up a generated tree of 10,000 files with real restic,
// lists the snapshot with an ls task, pages through it through the tenant API, and restores two
// selected files byte for byte into the temporary directory the agent makes.
func TestListingAndSelectiveRestore(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	a := newAgent(t, cp)
	a.start()
	me := a.creds.AgentID

	src := filepath.Join(a.dir, "src")
	agenttest.WideTree(t, src, 10_000)
	odd := "b*?[x].txt"
	agenttest.WriteFile(t, filepath.Join(src, odd), []byte("a name full of glob characters\n"))
	agenttest.WriteFile(t, filepath.Join(src, "bzzx.txt"), []byte("matched by the unescaped glob, not named\n"))
	require.NoError(t, os.Symlink("/etc/hostname", filepath.Join(src, "link")))
	require.NoError(t, os.Mkdir(filepath.Join(src, "empty"), 0o755))

	policy := cp.Policy("listing", "main", []string{src}, domain.Retention{KeepLast: 3})
	cp.Assign(policy, me)
	backup := cp.RunTask(domain.TaskBackup, me, policy, "", domain.TaskParams{})
	done := cp.WaitTask(backup.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, done.Status, done.Error)
	snap := cp.Runs(me, backup.ID)[0].Summary.SnapshotID
	require.Len(t, snap, 64)

	var missing struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	cp.Call("GET", "/v1/agents/"+me+"/snapshots/"+snap[:12]+"/tree", nil, &missing, http.StatusNotFound)
	assert.Equal(t, "not_found", missing.Error.Code)
	assert.Contains(t, missing.Error.Message, "run an ls task")

	ls := cp.RunTask(domain.TaskLs, me, "", "main", domain.TaskParams{SnapshotID: snap[:8], Path: src})
	lsDone := cp.WaitTask(ls.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, lsDone.Status, lsDone.Error)
	lines, _ := cp.Log(cp.Runs(me, ls.ID)[0].ID)
	assert.True(t, agenttest.ContainsLine(lines, "listed 10088 entries in 85 directories"), "the log counts the entries: %v", lines)
	for _, l := range lines {
		assert.NotContains(t, l, `"struct_type":"node"`, "the listing itself stays out of the run's log")
	}

	top, page, _ := tree(t, cp, me, snap[:10], src, 100)
	assert.Equal(t, snap, page.SnapshotID, "the answer names the whole snapshot ID")
	assert.Equal(t, ls.ID, page.TaskID)
	assert.False(t, page.Truncated)
	// Directories first, then the rest, each by name.
	assert.Equal(t, []string{"d00", "d01", "d02", "d03", "d04", "d05", "d06", "d07", "empty", "wide", "b*?[x].txt", "bzzx.txt", "link"}, names(top))
	byName := map[string]domain.ListingEntry{}
	for _, e := range top {
		byName[e.Name] = e
	}
	assert.Equal(t, domain.EntrySymlink, byName["link"].Type)
	assert.Equal(t, domain.EntryFile, byName[odd].Type)
	assert.Equal(t, uint64(len("a name full of glob characters\n")), byName[odd].Size)
	assert.Equal(t, uint32(0o644), byName[odd].Mode)
	assert.Equal(t, filepath.Join(src, odd), byName[odd].Path)
	assert.Equal(t, domain.EntryDir, byName["wide"].Type)

	wide, _, pages := tree(t, cp, me, snap, filepath.Join(src, "wide"), 100)
	require.Len(t, wide, 2500, "every entry of the wide directory, across its chunks")
	assert.Equal(t, 25, pages)
	assert.True(t, slices.IsSorted(names(wide)), "entries come by name")
	assert.Equal(t, "f00000.txt", wide[0].Name)
	assert.Equal(t, "f02499.txt", wide[2499].Name)
	assert.Len(t, slices.Compact(names(wide)), 2500, "no entry twice across pages")

	nested, _, _ := tree(t, cp, me, snap, filepath.Join(src, "d03", "s07"), 37)
	require.Len(t, nested, 100)
	assert.Equal(t, filepath.Join(src, "d03", "s07", "f03700.txt"), nested[0].Path)
	empty, _, _ := tree(t, cp, me, snap, filepath.Join(src, "empty"), 50)
	assert.Empty(t, empty, "an empty directory is listed, empty")

	cp.Call("GET", "/v1/agents/"+me+"/snapshots/"+snap+"/tree?path="+url.QueryEscape(filepath.Join(src, odd)), nil, &missing, http.StatusNotFound)
	assert.Contains(t, missing.Error.Message, "is not a directory")
	cp.Call("GET", "/v1/agents/"+me+"/snapshots/"+snap+"/tree?path="+url.QueryEscape(filepath.Dir(src)), nil, &missing, http.StatusNotFound)
	assert.Contains(t, missing.Error.Message, "run an ls task with path")
	var bad struct {
		Error struct {
			Fields []domain.FieldError `json:"fields"`
		} `json:"error"`
	}
	cp.Call("GET", "/v1/agents/"+me+"/snapshots/"+snap+"/tree?path=relative", nil, &bad, http.StatusBadRequest)
	assert.Equal(t, "path", bad.Error.Fields[0].Field)
	cp.Call("GET", "/v1/agents/"+me+"/snapshots/"+snap+"/tree?path="+url.QueryEscape(src+"/../etc"), nil, &bad, http.StatusBadRequest)

	// Listing again replaces the listing.
	again := cp.RunTask(domain.TaskLs, me, "", "main", domain.TaskParams{SnapshotID: snap, Path: filepath.Join(src, "d00")})
	require.Equal(t, domain.TaskSucceeded, cp.WaitTask(again.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed).Status)
	d00, page, _ := tree(t, cp, me, snap, filepath.Join(src, "d00"), 100)
	assert.Equal(t, again.ID, page.TaskID)
	assert.Len(t, d00, 10)
	cp.Call("GET", "/v1/agents/"+me+"/snapshots/"+snap+"/tree?path="+url.QueryEscape(src), nil, &missing, http.StatusNotFound)

	// Restore two selected files, one with glob characters in its name: exactly those come back.
	restore := cp.RunTask(domain.TaskRestore, me, "", "main", domain.TaskParams{
		SnapshotID: snap, IncludePaths: []string{filepath.Join(src, odd), filepath.Join(src, "d01", "s02", "f01234.txt")}, Verify: true,
	})
	rd := cp.WaitTask(restore.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, rd.Status, rd.Error)
	run := cp.Runs(me, restore.ID)[0]
	require.NotEmpty(t, run.RestoreTarget, "the run says where the files went")
	t.Cleanup(func() { _ = os.RemoveAll(run.RestoreTarget) })
	for _, rel := range []string{odd, filepath.Join("d01", "s02", "f01234.txt")} {
		want, err := os.ReadFile(filepath.Join(src, rel))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(run.RestoreTarget, src, rel))
		require.NoError(t, err, "restored %s", rel)
		assert.True(t, bytes.Equal(want, got), "%s is restored byte for byte", rel)
	}
	var files []string
	require.NoError(t, filepath.Walk(run.RestoreTarget, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, strings.TrimPrefix(p, run.RestoreTarget))
		}
		return err
	}))
	assert.Len(t, files, 2, "nothing but the two selected files: %v", files)
}

// TestRestoreRefusesTargetsOutsideItsRoots sends restores the control plane cannot judge — a
// target outside the agent's restore roots, one that escapes through a symlink, a non-empty
// one — and checks that the agent fails each run with its reason and writes nothing.
func TestRestoreRefusesTargetsOutsideItsRoots(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	roots := t.TempDir()
	outside := t.TempDir()
	a := newAgent(t, cp, func(c *config.Config) { c.RestoreRoots = []string{roots} })
	a.start()
	me := a.creds.AgentID

	src := filepath.Join(a.dir, "src")
	agenttest.WriteFile(t, filepath.Join(src, "secret.txt"), []byte("restored only where allowed\n"))
	policy := cp.Policy("refusals", "main", []string{src}, domain.Retention{KeepLast: 1})
	cp.Assign(policy, me)
	backup := cp.RunTask(domain.TaskBackup, me, policy, "", domain.TaskParams{})
	require.Equal(t, domain.TaskSucceeded, cp.WaitTask(backup.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed).Status)

	require.NoError(t, os.Symlink(outside, filepath.Join(roots, "escape")))
	agenttest.WriteFile(t, filepath.Join(roots, "full", "keep.txt"), []byte("already here\n"))
	cases := map[string]struct{ target, reason string }{
		"outside the roots":      {filepath.Join(outside, "r"), "outside the agent's restoreRoots"},
		"escape through symlink": {filepath.Join(roots, "escape", "r"), "outside the agent's restoreRoots"},
		"symlink itself":         {filepath.Join(roots, "escape"), "outside the agent's restoreRoots"},
		"not empty":              {filepath.Join(roots, "full"), "exists and is not empty"},
	}
	for name, c := range cases {
		task := cp.RunTask(domain.TaskRestore, me, "", "main", domain.TaskParams{SnapshotID: "latest", Target: c.target})
		got := cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
		require.Equal(t, domain.TaskFailed, got.Status, name)
		assert.Contains(t, got.Error, "restore refused", name)
		assert.Contains(t, got.Error, c.reason, name)
	}
	left, err := os.ReadDir(outside)
	require.NoError(t, err)
	assert.Empty(t, left, "nothing was written outside the restore roots")
	full, err := os.ReadDir(filepath.Join(roots, "full"))
	require.NoError(t, err)
	assert.Len(t, full, 1, "the non-empty target was left alone")

	// The control plane refuses a traversal before it reaches any agent.
	var bad struct {
		Error struct {
			Fields []domain.FieldError `json:"fields"`
		} `json:"error"`
	}
	cp.Call("POST", "/v1/tasks", map[string]any{"type": "restore", "agentId": me, "repository": "main",
		"params": map[string]any{"snapshotId": "latest", "target": roots + "/../etc"}}, &bad, http.StatusUnprocessableEntity)
	require.NotEmpty(t, bad.Error.Fields)
	assert.Equal(t, "params.target", bad.Error.Fields[0].Field)

	// Inside the roots it restores.
	ok := cp.RunTask(domain.TaskRestore, me, "", "main", domain.TaskParams{SnapshotID: "latest", Target: filepath.Join(roots, "new", "dir")})
	got := cp.WaitTask(ok.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)
	b, err := os.ReadFile(filepath.Join(roots, "new", "dir", src, "secret.txt"))
	require.NoError(t, err)
	assert.Equal(t, "restored only where allowed\n", string(b))
}

// TestListingPastItsCapIsTruncated lists a tree bigger than the control plane's cap: the task
// succeeds, and the tree answer says the listing is truncated.
func TestListingPastItsCapIsTruncated(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t, func(s *httpapi.Settings) { s.ListingMaxBytes = 16 << 10 })
	a := newAgent(t, cp)
	a.start()
	me := a.creds.AgentID
	src := filepath.Join(a.dir, "src")
	agenttest.WideTree(t, src, 4000)
	policy := cp.Policy("capped", "main", []string{src}, domain.Retention{KeepLast: 1})
	cp.Assign(policy, me)
	backup := cp.RunTask(domain.TaskBackup, me, policy, "", domain.TaskParams{})
	require.Equal(t, domain.TaskSucceeded, cp.WaitTask(backup.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed).Status)
	snap := cp.Runs(me, backup.ID)[0].Summary.SnapshotID

	ls := cp.RunTask(domain.TaskLs, me, "", "main", domain.TaskParams{SnapshotID: snap, Path: src})
	got := cp.WaitTask(ls.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)
	lines, _ := cp.Log(cp.Runs(me, ls.ID)[0].ID)
	assert.True(t, agenttest.ContainsLine(lines, "truncated"), "the log says the listing was cut: %v", lines)
	var p treePage
	first := filepath.Join(src, "d00", "s00")
	cp.Call("GET", "/v1/agents/"+me+"/snapshots/"+snap+"/tree?path="+url.QueryEscape(first), nil, &p, http.StatusOK)
	assert.True(t, p.Truncated, "the answer says the listing is truncated")
	assert.Len(t, p.Items, 50, "what fit under the cap is there")
	var missing struct {
		Error struct{ Message string } `json:"error"`
	}
	cp.Call("GET", "/v1/agents/"+me+"/snapshots/"+snap+"/tree?path="+url.QueryEscape(src), nil, &missing, http.StatusNotFound)
	assert.Contains(t, missing.Error.Message, "truncated", "a directory past the cap is missing, and the answer says why")
}
