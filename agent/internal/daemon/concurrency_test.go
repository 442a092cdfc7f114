package daemon_test

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// TestNeverMoreThanTheLimitOfResticProcesses queues five backups for an agent limited to two
// and samples the restic processes this test process has running: there are two at a time at
// most, there are two at some time, and all five backups finish.
//
// It does not run in parallel with the package's other tests, so that every restic child of
// this process is this agent's.
func TestNeverMoreThanTheLimitOfResticProcesses(t *testing.T) {
	cp := agenttest.NewControlPlane(t)
	a := newAgent(t, cp, func(c *config.Config) { c.Limits.MaxConcurrentTasks = 2 })
	// The control plane's limit is 1 for a new agent, and it only lowers the agent's own.
	cp.SetLimits(a.creds.AgentID, domain.Limits{MaxConcurrentTasks: 4})
	policy, _ := slowBackupPolicy(t, cp, a, "concurrency", 1024)

	var tasks []domain.Task
	for range 5 {
		tasks = append(tasks, cp.RunTask(domain.TaskBackup, a.creds.AgentID, policy, "", domain.TaskParams{}))
	}

	var mu sync.Mutex
	most, samples := 0, 0
	seen := map[int]bool{}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			procs, err := agenttest.ResticChildren(os.Getpid())
			if err != nil {
				continue
			}
			n := 0
			for _, p := range procs {
				// restic backup itself; restic snapshots or init would count the same way.
				if len(p.Args) > 0 && strings.HasSuffix(p.Args[0], "restic") {
					n++
					seen[p.PID] = true
				}
			}
			mu.Lock()
			most, samples = max(most, n), samples+1
			mu.Unlock()
		}
	}()
	a.start()
	for _, task := range tasks {
		got := cp.WaitTask(task.ID, agenttest.TaskTimeout, domain.TaskSucceeded, domain.TaskFailed)
		require.Equal(t, domain.TaskSucceeded, got.Status, got.Error)
	}
	close(stop)
	<-sampled

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d samples, at most %d restic processes at once, %d distinct processes", samples, most, len(seen))
	assert.Equal(t, 2, most, "two backups ran at once, never more")
	assert.GreaterOrEqual(t, len(seen), 5, "each backup ran its own restic")
	assert.Equal(t, 2, a.status().MaxConcurrent)
}
