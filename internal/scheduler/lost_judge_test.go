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
	start := time.Date(2037, 5, 4, 2, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	ptr := func(t time.Time) *time.Time { return &t }
	rules := lostRules{offline: 30 * time.Minute, redelivery: 5 * time.Minute}
	const m, s = time.Minute, time.Second
	const none = time.Duration(-1)
	task := domain.Task{ID: "01JD000000000000000000TASK", Status: domain.TaskRunning, StartedAt: ptr(start), UpdatedAt: start}
	run := func(listed, unlisted time.Duration) *domain.Run {
		r := &domain.Run{ID: "01JD0000000000000000000RUN", Status: domain.TaskRunning, StartedAt: start}
		if listed != none {
			r.LastListedAt = ptr(at(listed))
		}
		if unlisted != none {
			r.UnlistedAt = ptr(at(unlisted))
		}
		return r
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
		// unlisted is the miss to record on the run, none for none.
		unlisted time.Duration
	}{
		{"listed by the last heartbeat", run(10*m, none), online(10 * m), true, 10*m + 5*s, "", "", 14 * m, none},
		{"just started, not listed yet", run(none, none), online(30 * s), true, 40 * s, "", "", 4 * m, none},
		{"heartbeats left it out, still within three intervals", run(m, none), online(3*m + 30*s), true, 3*m + 31*s, "", "", 5 * m, none},
		{"a heartbeat at the very end of the grace", run(m, none), online(4 * m), true, 4*m + s, "", "", 5*m + s, none},
		{"a heartbeat after the grace without it: the miss is recorded", run(m, none), online(4*m + s), true, 4*m + 2*s,
			"", "", 10*m + s, 4*m + s},
		{"never listed after its start", run(none, none), online(3*m + s), true, 4 * m, "", "", 9*m + s, 3*m + s},
		{"left out, within the redelivery window", run(m, 4*m+s), online(9*m + s), true, 9*m + 2*s, "", "", 10*m + 2*s, none},
		{"left out past the redelivery window", run(m, 4*m+s), online(9*m + 2*s), true, 9*m + 3*s, domainevents.LostNotListed,
			"agent lost: its heartbeats stopped listing the task: last listed at 2037-05-04T02:01:00Z, left out since 2037-05-04T02:04:01Z, last heartbeat at 2037-05-04T02:09:02Z",
			0, none},
		{"listed again since the miss", run(12*m, 4*m+s), online(12 * m), true, 12*m + 5*s, "", "", 16 * m, none},
		{"left out again later: a new miss", run(12*m, 4*m+s), online(15*m + 30*s), true, 15*m + 31*s, "", "", 21*m + 30*s, 15*m + 30*s},
		{"without its run, the window runs from the grace's end", nil, online(8*m + s), true, 8*m + 2*s, domainevents.LostNotListed,
			"left out since 2037-05-04T02:03:00Z", 0, none},
		{"the agent went quiet: left to go offline", run(m, none), online(2 * m), true, 6 * m, "", "", 7 * m, none},
		{"offline within the grace", run(m, none), offline(2*m, 6*m), true, 35 * m, "", "", 36 * m, none},
		{"offline past the grace", run(m, none), offline(2*m, 6*m), true, 36 * m, domainevents.LostAgentOffline,
			"agent lost: offline since 2037-05-04T02:06:00Z, more than 30m0s, while running the task; last listed at 2037-05-04T02:01:00Z", 0, none},
		{"offline, but listed since it went offline", run(40*m, none), offline(2*m, 6*m), true, 42 * m, "", "", 43 * m, none},
		{"the agent was deleted", run(m, none), domain.Agent{}, false, 2 * m, domainevents.LostAgentDeleted,
			"agent lost: the agent was deleted while running the task", 0, none},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := judgeRunning(task, tc.run, tc.agent, tc.found, at(tc.now), rules)
			if tc.reason == "" {
				assert.False(t, v.lost, "got lost: %s", v.why)
				assert.Equal(t, at(tc.next), v.next, "next look: got %s, want %s", v.next, at(tc.next))
				if tc.unlisted == none {
					assert.Nil(t, v.unlisted, "got a miss to record at %v", v.unlisted)
				} else if assert.NotNil(t, v.unlisted, "got no miss to record") {
					assert.Equal(t, at(tc.unlisted), *v.unlisted)
				}
				return
			}
			assert.True(t, v.lost, "got not lost, next look at %s", v.next)
			assert.Equal(t, tc.reason, v.reason)
			assert.True(t, strings.Contains(v.why, tc.why), "why: got %q, want it to contain %q", v.why, tc.why)
		})
	}
}

func TestLastListedIsTheLatestSignOfTheRun(t *testing.T) {
	start := time.Date(2037, 5, 4, 2, 0, 0, 0, time.UTC)
	listed, before := start.Add(time.Minute), start.Add(-time.Minute)
	task := domain.Task{StartedAt: &before, UpdatedAt: start}
	assert.Equal(t, listed, lastListed(task, &domain.Run{StartedAt: start, LastListedAt: &listed}))
	assert.Equal(t, start, lastListed(task, &domain.Run{StartedAt: start, LastListedAt: &before}), "a listing from before a restart does not count")
	assert.Equal(t, start, lastListed(task, &domain.Run{StartedAt: start}))
	assert.Equal(t, before, lastListed(task, nil), "without a run, the task's start")
	assert.Equal(t, start, lastListed(domain.Task{UpdatedAt: start}, nil))
}
