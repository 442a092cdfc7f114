package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	domainevents "github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func TestJudgeRunning(t *testing.T) {
	start := time.Date(2026, 5, 4, 2, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	ptr := func(t time.Time) *time.Time { return &t }
	const offlineGrace = 30 * time.Minute
	task := domain.Task{ID: "01JD000000000000000000TASK", Status: domain.TaskRunning, StartedAt: ptr(start), UpdatedAt: start}
	run := func(listed *time.Time) *domain.Run {
		return &domain.Run{ID: "01JD0000000000000000000RUN", Status: domain.TaskRunning, StartedAt: start, LastListedAt: listed}
	}
	online := func(lastSeen time.Duration) domain.Agent {
		return domain.Agent{Status: domain.AgentOnline, LastSeenAt: ptr(at(lastSeen)), HeartbeatIntervalSeconds: 60}
	}
	offline := func(lastSeen, since time.Duration) domain.Agent {
		a := online(lastSeen)
		a.Status, a.OfflineSince = domain.AgentOffline, ptr(at(since))
		return a
	}

	cases := []struct {
		name   string
		run    *domain.Run
		agent  domain.Agent
		found  bool
		now    time.Duration
		reason domainevents.LostReason // "" when not lost
		why    string
		next   time.Duration
	}{
		{"listed by the last heartbeat", run(ptr(at(10 * time.Minute))), online(10 * time.Minute), true, 10*time.Minute + 5*time.Second,
			"", "", 14 * time.Minute},
		{"just started, not listed yet", run(nil), online(30 * time.Second), true, 40 * time.Second, "", "", 4 * time.Minute},
		{"heartbeats left it out, still within three intervals", run(ptr(at(time.Minute))), online(3*time.Minute + 30*time.Second), true, 3*time.Minute + 31*time.Second,
			"", "", 5 * time.Minute},
		{"a heartbeat at the very end of the grace", run(ptr(at(time.Minute))), online(4 * time.Minute), true, 4*time.Minute + time.Second,
			"", "", 5*time.Minute + time.Second},
		{"a heartbeat after the grace without it", run(ptr(at(time.Minute))), online(4*time.Minute + time.Second), true, 4*time.Minute + 2*time.Second,
			domainevents.LostNotListed, "agent lost: its heartbeats stopped listing the task: last listed at 2026-05-04T02:01:00Z, last heartbeat at 2026-05-04T02:04:01Z", 0},
		{"never listed after its start", run(nil), online(3*time.Minute + time.Second), true, 4 * time.Minute,
			domainevents.LostNotListed, "last listed at 2026-05-04T02:00:00Z", 0},
		{"the agent went quiet: left to go offline", run(ptr(at(time.Minute))), online(2 * time.Minute), true, 6 * time.Minute, "", "", 7 * time.Minute},
		{"offline within the grace", run(ptr(at(time.Minute))), offline(2*time.Minute, 6*time.Minute), true, 35 * time.Minute, "", "", 36 * time.Minute},
		{"offline past the grace", run(ptr(at(time.Minute))), offline(2*time.Minute, 6*time.Minute), true, 36 * time.Minute,
			domainevents.LostAgentOffline, "agent lost: offline since 2026-05-04T02:06:00Z, more than 30m0s, while running the task; last listed at 2026-05-04T02:01:00Z", 0},
		{"offline, but listed since it went offline", run(ptr(at(40 * time.Minute))), offline(2*time.Minute, 6*time.Minute), true, 42 * time.Minute,
			"", "", 43 * time.Minute},
		{"the agent was deleted", run(ptr(at(time.Minute))), domain.Agent{}, false, 2 * time.Minute,
			domainevents.LostAgentDeleted, "agent lost: the agent was deleted while running the task", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := judgeRunning(task, tc.run, tc.agent, tc.found, at(tc.now), offlineGrace)
			if tc.reason == "" {
				assert.False(t, v.lost, "got lost: %s", v.why)
				assert.Equal(t, at(tc.next), v.next, "next look: got %s, want %s", v.next, at(tc.next))
				return
			}
			assert.True(t, v.lost, "got not lost, next look at %s", v.next)
			assert.Equal(t, tc.reason, v.reason)
			assert.True(t, strings.Contains(v.why, tc.why), "why: got %q, want it to contain %q", v.why, tc.why)
		})
	}
}

func TestLastListedIsTheLatestSignOfTheRun(t *testing.T) {
	start := time.Date(2026, 5, 4, 2, 0, 0, 0, time.UTC)
	listed, before := start.Add(time.Minute), start.Add(-time.Minute)
	task := domain.Task{StartedAt: &before, UpdatedAt: start}
	assert.Equal(t, listed, lastListed(task, &domain.Run{StartedAt: start, LastListedAt: &listed}))
	assert.Equal(t, start, lastListed(task, &domain.Run{StartedAt: start, LastListedAt: &before}), "a listing from before a restart does not count")
	assert.Equal(t, start, lastListed(task, &domain.Run{StartedAt: start}))
	assert.Equal(t, before, lastListed(task, nil), "without a run, the task's start")
	assert.Equal(t, start, lastListed(domain.Task{UpdatedAt: start}, nil))
}
