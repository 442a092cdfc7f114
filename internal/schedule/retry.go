package schedule

import (
	"math"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// RetryPolicy shapes exponential backoff: the delay after the first failure is about Base and
// grows by Factor with every further failure, up to Cap.
type RetryPolicy struct {
	Base   time.Duration
	Factor float64
	Cap    time.Duration
}

// DefaultRetryPolicy is the backoff between tries of a failed task: about 2, 4, 8 minutes…,
// at most an hour. Failed backups are mostly an unreachable repository or a held lock, which
// take minutes, not seconds, to clear.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{Base: 2 * time.Minute, Factor: 2, Cap: time.Hour}
}

// DefaultAgentHourlyRetryBudget is how many retries one agent may be sent in an hour, across all
// its tasks, so a host that fails everything does not keep the scheduler and its queue busy.
const DefaultAgentHourlyRetryBudget = 20

// RetryDelay returns how long to wait after `attempt` failed tries (1 after the first failure)
// before the next one. The exponential delay d = Base·Factor^(attempt−1), capped at Cap, gets
// "equal jitter": the wait is d/2 plus a random part of d/2, so retries of many tasks that
// failed together spread out, yet none comes back sooner than half the delay.
//
// rnd returns values in [0, 1), such as math/rand/v2's Float64; values outside are clamped.
// An attempt below 1 counts as 1, a Factor below 1 as 1, and a Cap below Base as Base, so the
// delay never shrinks and never grows without bound.
func RetryDelay(attempt int, p RetryPolicy, rnd func() float64) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	attempt = max(attempt, 1)
	factor := max(p.Factor, 1)
	limit := max(p.Cap, p.Base)

	d := limit
	if grown := float64(p.Base) * math.Pow(factor, float64(attempt-1)); grown < float64(limit) {
		d = time.Duration(grown)
	}
	r := min(max(rnd(), 0), 1)
	half := d / 2
	return d - half + time.Duration(r*float64(half))
}

// RetryAllowed reports whether a failed task may be tried again: the task has retries left
// (t.Attempt tries so far, t.MaxRetries retries after the first) and its agent has not used up
// its hourly retry budget. A budget of zero allows no retries.
func RetryAllowed(t domain.Task, agentRetriesLastHour, agentHourlyBudget int) bool {
	retriesUsed := max(t.Attempt-1, 0)
	return retriesUsed < t.MaxRetries && agentRetriesLastHour < agentHourlyBudget
}
