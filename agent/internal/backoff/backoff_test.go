package backoff

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestRetry(t *testing.T) {
	p := Policy{Base: 10 * time.Second, Factor: 2, Cap: time.Minute}
	for _, tc := range []struct {
		tries, max int
		rnd        float64
		retry      bool
		delay      time.Duration
	}{
		{tries: 1, max: 2, rnd: 0, retry: true, delay: 5 * time.Second},
		{tries: 1, max: 2, rnd: 0.999999, retry: true, delay: 10 * time.Second},
		{tries: 2, max: 2, rnd: 0, retry: true, delay: 10 * time.Second},
		{tries: 3, max: 2, retry: false},
		{tries: 1, max: 0, retry: false},
		{tries: 9, max: 10, rnd: 0, retry: true, delay: 30 * time.Second}, // capped at a minute, half of it at least
	} {
		retry, delay := Retry(tc.tries, tc.max, p, fixed(tc.rnd))
		assert.Equal(t, tc.retry, retry, "tries %d of max %d", tc.tries, tc.max)
		assert.InDelta(t, tc.delay, delay, float64(time.Millisecond), "tries %d", tc.tries)
	}
}

func TestAgentBacksOffAfterThresholdAndRecovers(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &Agent{Threshold: 3, Policy: Policy{Base: time.Minute, Factor: 2, Cap: 10 * time.Minute}, Rand: fixed(0.999999)}

	assert.False(t, a.Failure(now, "x"))
	assert.False(t, a.Failure(now, "x"))
	_, _, backing := a.Until(now)
	assert.False(t, backing, "two failures are below the threshold")

	assert.True(t, a.Failure(now, "repository unreachable"))
	until, reason, backing := a.Until(now)
	assert.True(t, backing)
	assert.Equal(t, "repository unreachable", reason)
	assert.InDelta(t, float64(time.Minute), float64(until.Sub(now)), float64(time.Millisecond))

	// Each further failure doubles the delay, up to the cap.
	assert.True(t, a.Failure(now, "again"))
	until, _, _ = a.Until(now)
	assert.InDelta(t, float64(2*time.Minute), float64(until.Sub(now)), float64(time.Millisecond))
	for range 10 {
		a.Failure(now, "again")
	}
	until, _, _ = a.Until(now)
	assert.InDelta(t, float64(10*time.Minute), float64(until.Sub(now)), float64(time.Millisecond))

	// It leaves backoff on its own once the time has passed.
	_, _, backing = a.Until(until)
	assert.False(t, backing)

	// A success ends the streak: the next failure does not back off again at once.
	a.Success()
	assert.Equal(t, 0, a.Consecutive())
	assert.False(t, a.Failure(until, "x"))
}

func TestAgentJitterNeverShortensBelowHalf(t *testing.T) {
	now := time.Unix(0, 0)
	a := &Agent{Threshold: 1, Policy: Policy{Base: time.Minute, Factor: 2, Cap: time.Hour}, Rand: fixed(0)}
	a.Failure(now, "x")
	until, _, _ := a.Until(now)
	assert.Equal(t, 30*time.Second, until.Sub(now))
}
