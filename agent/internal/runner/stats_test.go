package runner_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/restic-monitor/restic-monitor/agent/internal/runner"
	"github.com/restic-monitor/restic-monitor/internal/restic"
)

func TestStaleLockAsResticJudgesIt(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	live := os.Getpid()
	for name, tc := range map[string]struct {
		lock  restic.Lock
		stale bool
	}{
		"fresh, live process here":           {restic.Lock{Time: now.Add(-time.Minute), Hostname: "web-1", PID: live}, false},
		"older than thirty minutes":          {restic.Lock{Time: now.Add(-31 * time.Minute), Hostname: "web-1", PID: live}, true},
		"fresh, another host's process":      {restic.Lock{Time: now.Add(-time.Minute), Hostname: "db-1", PID: 1 << 22}, false},
		"fresh, a process gone on this host": {restic.Lock{Time: now.Add(-time.Minute), Hostname: "web-1", PID: 1 << 22}, true},
	} {
		assert.Equal(t, tc.stale, runner.StaleLock(tc.lock, now, "web-1"), name)
	}
}
