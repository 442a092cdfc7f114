// Package backoff is the agent's side of backing off (EPIC 15): how long a task that failed in a
// way that may pass waits before it runs again, and when the agent as a whole stops taking work
// because its tasks keep failing. It is pure state driven by the caller's clock: the daemon
// feeds it outcomes and asks it for the time the agent may take work again.
package backoff

import (
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/schedule"
)

// Policy shapes one backoff: exponential from Base by Factor up to Cap, with jitter.
type Policy = schedule.RetryPolicy

// Delay is how long to wait after the nth consecutive failure (1 for the first), with equal
// jitter from rnd (values in [0, 1)).
func Delay(n int, p Policy, rnd func() float64) time.Duration {
	return schedule.RetryDelay(n, p, rnd)
}

// Retry reports whether a task that failed tries times (1 after its first run) in a way that
// may pass should run again, given maxRetries, and after how long.
func Retry(tries, maxRetries int, p Policy, rnd func() float64) (bool, time.Duration) {
	if tries > maxRetries {
		return false, 0
	}
	return true, Delay(tries, p, rnd)
}

// Agent decides when the whole agent backs off. After Threshold transient task failures in a
// row it backs off for a delay that grows with every further failure; the first success (or any
// outcome that says the agent and its backends are fine) ends the streak. Backing off ends on
// its own when its time has passed. Agent is safe for concurrent use.
type Agent struct {
	Threshold int
	Policy    Policy
	Rand      func() float64

	mu          sync.Mutex
	consecutive int
	until       time.Time
	reason      string
}

// Failure records a transient failure at now and reports whether it put the agent into
// backoff (or lengthened it).
func (a *Agent) Failure(now time.Time, reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.consecutive++
	if a.consecutive < max(a.Threshold, 1) {
		return false
	}
	n := a.consecutive - max(a.Threshold, 1) + 1
	until := now.Add(Delay(n, a.Policy, a.Rand))
	if until.After(a.until) {
		a.until = until
	}
	a.reason = reason
	return true
}

// Success ends a streak of failures. A backoff already under way runs out on its own: the
// scheduler was told about it, and work that succeeded was taken before it began.
func (a *Agent) Success() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.consecutive = 0
}

// Until returns the end of the backoff and its reason when the agent is backing off at now.
func (a *Agent) Until(now time.Time) (time.Time, string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Before(a.until) {
		return a.until, a.reason, true
	}
	return time.Time{}, "", false
}

// Consecutive is the length of the current streak of failures.
func (a *Agent) Consecutive() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.consecutive
}
