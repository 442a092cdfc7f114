// Package bench measures the agent: its footprint while idle and its overhead on a large
// backup compared with restic run directly. Run it with agent/bench/run.sh, which prints the
// figures docs/benchmarks.md records. It runs nothing under plain go test (benchmarks only).
package bench_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
)

var agentBinary string

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("AWS_ENDPOINT_URL") == "" {
		_ = os.Setenv("AWS_ENDPOINT_URL", localaws.Endpoint())
	}
	code := func() int {
		if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
			return m.Run() // no benchmark asked for: nothing to build
		}
		bin, remove, err := agenttest.BuildAgent("bench")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer remove()
		agentBinary = bin
		return m.Run()
	}()
	os.Exit(code)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// procStat returns a process's CPU time (user + system, all threads) and its resident and
// peak resident memory.
func procStat(b *testing.B, pid int) (cpu time.Duration, rss, hwm int64) {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(b, err)
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// After the name: state(3) ppid(4) … utime(14) stime(15), counted from 1.
	utime, _ := strconv.ParseInt(fields[14-3], 10, 64)
	stime, _ := strconv.ParseInt(fields[15-3], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	cpu = time.Duration(utime+stime) * time.Second / ticksPerSecond
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			if f[0] == "VmRSS:" {
				rss = kib << 10
			} else {
				hwm = kib << 10
			}
		}
	}
	return cpu, rss, hwm
}

// BenchmarkIdle runs the agent with nothing to do — 20 s long polls of an empty queue and a
// heartbeat a minute, as deployed — and reports its memory and CPU over RM_BENCH_IDLE_SECONDS
// (default 60).
func BenchmarkIdle(b *testing.B) {
	seconds := envInt("RM_BENCH_IDLE_SECONDS", 60)
	cp := agenttest.NewControlPlane(b, func(s *httpapi.Settings) { s.HeartbeatInterval = time.Minute })
	h := agenttest.NewHost(b, cp, agentBinary, agenttest.HostOptions{
		LogLevel: "info", QueueWait: 20 * time.Second, HeartbeatInterval: time.Minute,
	})
	h.Start(false)
	time.Sleep(3 * time.Second) // past start-up: configuration, restic version, first heartbeat
	pid := h.PID()
	cpu0, _, _ := procStat(b, pid)
	start := time.Now()
	for range b.N {
		time.Sleep(time.Duration(seconds) * time.Second)
	}
	elapsed := time.Since(start)
	cpu1, rss, hwm := procStat(b, pid)
	cpu := cpu1 - cpu0
	b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	fmt.Printf("agent idle for %s: RSS %.1f MiB (peak %.1f MiB), CPU %s (%.3f %% of one core)\n",
		elapsed.Round(time.Second), float64(rss)/(1<<20), float64(hwm)/(1<<20), cpu, 100*cpu.Seconds()/elapsed.Seconds())
	require.Equal(b, 0, h.Signal(syscall.SIGTERM, 30*time.Second))
}

// BenchmarkBackup backs up a generated tree of RM_BENCH_TREE_MIB MiB (default 1024) of
// incompressible files into a fresh repository, once with restic run directly and once as a
// task the agent runs, RM_BENCH_ROUNDS times each (default 4, alternating), and reports the
// best and the median wall time of each and the ratio of the best (the machine is shared, so
// the best time is the one least disturbed). The agent's time is end to end: from the operator's
// request to the result stored by the control plane.
func BenchmarkBackup(b *testing.B) {
	mib := envInt("RM_BENCH_TREE_MIB", 1024)
	rounds := envInt("RM_BENCH_ROUNDS", 4)
	restic := agenttest.ResticBinary(b)
	cp := agenttest.NewControlPlane(b)
	h := agenttest.NewHost(b, cp, agentBinary, agenttest.HostOptions{LogLevel: "info", QueueWait: 20 * time.Second})
	src := filepath.Join(h.Dir, "tree")
	const fileMiB = 8
	agenttest.RandomTree(b, src, max(mib/fileMiB, 1), fileMiB<<20)
	policy := cp.Policy("bench", "main", []string{src}, domain.Retention{KeepLast: 1})
	cp.Assign(policy, h.AgentID)
	h.Start(false)

	repoEnv := func(repo string) []string {
		return []string{"RESTIC_REPOSITORY=" + repo, "RESTIC_PASSWORD_FILE=" + filepath.Join(h.Dir, "password"),
			"RESTIC_CACHE_DIR=" + filepath.Join(h.Dir, "cache"), "HOME=" + h.Dir, "PATH=" + os.Getenv("PATH")}
	}
	restic1 := func(env []string, args ...string) {
		cmd := exec.Command(restic, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, "%s", out)
	}
	var direct, agent []time.Duration
	for round := range rounds * b.N {
		// restic directly, into a fresh repository.
		repo := filepath.Join(h.Dir, fmt.Sprintf("direct-%d", round))
		restic1(repoEnv(repo), "init")
		began := time.Now()
		restic1(repoEnv(repo), "--json", "backup", "--host=bench", "--", src)
		direct = append(direct, time.Since(began))
		require.NoError(b, os.RemoveAll(repo))

		// The agent, into its repository made fresh as well.
		repo = filepath.Join(h.Dir, "repo")
		require.NoError(b, os.RemoveAll(repo))
		restic1(repoEnv(repo), "init")
		began = time.Now()
		task := cp.RunTask(domain.TaskBackup, h.AgentID, policy, "", domain.TaskParams{})
		done := cp.WaitTask(task.ID, 30*time.Minute, domain.TaskSucceeded, domain.TaskFailed)
		require.Equal(b, domain.TaskSucceeded, done.Status, done.Error)
		require.NotNil(b, done.FinishedAt)
		agent = append(agent, done.FinishedAt.Sub(began))
		fmt.Printf("round %d: restic %s, agent %s\n", round+1, direct[round].Round(time.Millisecond), agent[round].Round(time.Millisecond))
	}
	sorted := func(d []time.Duration) []time.Duration {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s
	}
	best := func(d []time.Duration) time.Duration { return sorted(d)[0] }
	median := func(d []time.Duration) time.Duration {
		s := sorted(d)
		return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
	}
	ratio := best(agent).Seconds() / best(direct).Seconds()
	b.ReportMetric(best(direct).Seconds(), "restic-s")
	b.ReportMetric(best(agent).Seconds(), "agent-s")
	b.ReportMetric(ratio, "ratio")
	fmt.Printf("backup of %d MiB, %d rounds: restic directly best %s median %s; through the agent best %s median %s; ratio of the best %.3f, of the medians %.3f\n",
		mib, len(direct), best(direct).Round(time.Millisecond), median(direct).Round(time.Millisecond),
		best(agent).Round(time.Millisecond), median(agent).Round(time.Millisecond), ratio, median(agent).Seconds()/median(direct).Seconds())
	require.Equal(b, 0, h.Signal(syscall.SIGTERM, time.Minute))
}
