package bench_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// BenchmarkListing backs up a generated tree of RM_BENCH_LIST_FILES files (default 100,000)
// and measures snapshot browsing: the wall time of the agent's ls task from the operator's
// request to the listing stored, the compressed bytes stored, and the latency of the tree API's
// pages (RM_BENCH_PAGES of them, default 500; loopback HTTP, the handler and its DynamoDB reads).
// For comparison it times restic ls of one directory run directly, which is what a browser that
// re-runs restic pays for every directory it shows.
func BenchmarkListing(b *testing.B) {
	files := envInt("RM_BENCH_LIST_FILES", 100_000)
	pages := envInt("RM_BENCH_PAGES", 500)
	cp := agenttest.NewControlPlane(b)
	h := agenttest.NewHost(b, cp, agentBinary, agenttest.HostOptions{LogLevel: "info", QueueWait: 20 * time.Second})
	src := filepath.Join(h.Dir, "tree")
	agenttest.WideTree(b, src, files)
	policy := cp.Policy("bench-listing", "main", []string{src}, domain.Retention{KeepLast: 1})
	cp.Assign(policy, h.AgentID)
	h.Start(false)
	repo := filepath.Join(h.Dir, "repo")
	restic := agenttest.ResticBinary(b)
	cmd := exec.Command(restic, "init")
	cmd.Env = []string{"RESTIC_REPOSITORY=" + repo, "RESTIC_PASSWORD_FILE=" + filepath.Join(h.Dir, "password"), "HOME=" + h.Dir}
	out, err := cmd.CombinedOutput()
	require.NoError(b, err, "%s", out)

	backup := cp.RunTask(domain.TaskBackup, h.AgentID, policy, "", domain.TaskParams{})
	done := cp.WaitTask(backup.ID, 30*time.Minute, domain.TaskSucceeded, domain.TaskFailed)
	require.Equal(b, domain.TaskSucceeded, done.Status, done.Error)
	snap := cp.Runs(h.AgentID, backup.ID)[0].Summary.SnapshotID

	var lsTime time.Duration
	for range b.N {
		began := time.Now()
		ls := cp.RunTask(domain.TaskLs, h.AgentID, "", "main", domain.TaskParams{SnapshotID: snap, Path: src})
		got := cp.WaitTask(ls.ID, 30*time.Minute, domain.TaskSucceeded, domain.TaskFailed)
		require.Equal(b, domain.TaskSucceeded, got.Status, got.Error)
		lsTime = got.FinishedAt.Sub(began)
	}
	l, err := cp.Store.GetListing(context.Background(), cp.Tenant, h.AgentID, snap)
	require.NoError(b, err)
	require.False(b, l.Truncated)

	// restic ls of one directory, directly: the price of each directory a re-running browser shows.
	direct := make([]time.Duration, 0, 5)
	for range 5 {
		cmd := exec.Command(restic, "--json", "--no-lock", "ls", snap, filepath.Join(src, "wide"))
		cmd.Env = []string{"RESTIC_REPOSITORY=" + repo, "RESTIC_PASSWORD_FILE=" + filepath.Join(h.Dir, "password"),
			"RESTIC_CACHE_DIR=" + filepath.Join(h.Dir, "cache"), "HOME=" + h.Dir}
		cmd.Stdout = io.Discard
		began := time.Now()
		require.NoError(b, cmd.Run())
		direct = append(direct, time.Since(began))
	}

	// Pages of the tree API: the wide directory's pages in turn, and first pages of nested ones.
	lat := make([]time.Duration, 0, pages)
	wideDir := filepath.Join(src, "wide")
	cursor := ""
	for i := range pages {
		dir, cur := wideDir, cursor
		if i%2 == 1 {
			dir, cur = filepath.Join(src, fmt.Sprintf("d%02d", i/2%max(1, (files-2500)/1000)), fmt.Sprintf("s%02d", i%10)), ""
		}
		q := url.Values{"path": {dir}, "limit": {"100"}}
		if cur != "" {
			q.Set("cursor", cur)
		}
		var page struct {
			Items      []domain.ListingEntry `json:"items"`
			NextCursor string                `json:"nextCursor"`
		}
		began := time.Now()
		cp.Call("GET", "/v1/agents/"+h.AgentID+"/snapshots/"+snap+"/tree?"+q.Encode(), nil, &page, http.StatusOK)
		lat = append(lat, time.Since(began))
		require.NotEmpty(b, page.Items)
		if i%2 == 0 {
			cursor = page.NextCursor
		}
	}
	slices.Sort(lat)
	slices.Sort(direct)
	pct := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	b.ReportMetric(lsTime.Seconds(), "ls-task-s")
	b.ReportMetric(float64(l.Bytes), "stored-bytes")
	b.ReportMetric(float64(pct(lat, 0.5).Microseconds())/1000, "page-p50-ms")
	b.ReportMetric(float64(pct(lat, 0.95).Microseconds())/1000, "page-p95-ms")
	fmt.Printf("listing of %d files (%d entries in %d chunks): ls task %s end to end; %d bytes stored (%.1f bytes an entry)\n",
		files, l.Entries, l.Chunks, lsTime.Round(time.Millisecond), l.Bytes, float64(l.Bytes)/float64(l.Entries))
	fmt.Printf("tree API, %d pages of up to 100 entries: p50 %s, p95 %s, max %s\n",
		len(lat), pct(lat, 0.5).Round(10*time.Microsecond), pct(lat, 0.95).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	fmt.Printf("restic ls of one directory (2,500 entries) run directly, 5 times: best %s, median %s\n",
		direct[0].Round(time.Millisecond), direct[2].Round(time.Millisecond))
	require.Equal(b, 0, h.Signal(syscall.SIGTERM, time.Minute))
	_ = os.RemoveAll(src)
}
