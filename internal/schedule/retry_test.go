package schedule

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestRetryDelay(t *testing.T) {
	p := RetryPolicy{Base: 2 * time.Minute, Factor: 2, Cap: time.Hour}
	tests := []struct {
		name    string
		attempt int
		policy  RetryPolicy
		rnd     float64
		want    time.Duration
	}{
		{"first failure, least jitter", 1, p, 0, time.Minute},
		{"first failure, middle jitter", 1, p, 0.5, 90 * time.Second},
		{"first failure, most jitter", 1, p, 1, 2 * time.Minute},
		{"second failure doubles", 2, p, 0, 2 * time.Minute},
		{"third failure", 3, p, 0.5, 6 * time.Minute},
		{"fifth failure", 5, p, 0, 16 * time.Minute},
		{"sixth failure reaches the cap", 6, p, 0, 30 * time.Minute},
		{"capped delay, most jitter", 6, p, 1, time.Hour},
		{"far past the cap does not overflow", 1000, p, 0.25, 37*time.Minute + 30*time.Second},
		{"random above one is clamped", 1, p, 1.7, 2 * time.Minute},
		{"random below zero is clamped", 1, p, -3, time.Minute},
		{"attempt zero counts as one", 0, p, 0, time.Minute},
		{"negative attempt counts as one", -4, p, 0, time.Minute},
		{"factor three", 3, RetryPolicy{Base: time.Second, Factor: 3, Cap: time.Minute}, 0, 4500 * time.Millisecond},
		{"factor below one never shrinks the delay", 5, RetryPolicy{Base: 2 * time.Minute, Factor: 0.5, Cap: time.Hour}, 0, time.Minute},
		{"cap below base caps at base", 5, RetryPolicy{Base: 2 * time.Minute, Factor: 2}, 1, 2 * time.Minute},
		{"no base, no delay", 3, RetryPolicy{Factor: 2, Cap: time.Hour}, 0.5, 0},
		{"default policy", 1, DefaultRetryPolicy(), 0, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RetryDelay(tt.attempt, tt.policy, fixed(tt.rnd))
			assert.Equal(t, tt.want, got)
		})
	}
}

// For any fixed random value the delay grows with each failure, never beyond the cap, and
// never below half the un-jittered delay.
func TestRetryDelayBounds(t *testing.T) {
	p := RetryPolicy{Base: 5 * time.Second, Factor: 1.7, Cap: 5 * time.Minute}
	for _, r := range []float64{0, 0.25, 0.5, 0.75, 0.999} {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			previous := time.Duration(0)
			for attempt := 1; attempt <= 40; attempt++ {
				got := RetryDelay(attempt, p, fixed(r))
				assert.GreaterOrEqual(t, got, previous, "attempt %d", attempt)
				assert.LessOrEqual(t, got, p.Cap, "attempt %d", attempt)
				assert.GreaterOrEqual(t, got, p.Base/2, "attempt %d", attempt)
				previous = got
			}
		})
	}
}

func TestRetryAllowed(t *testing.T) {
	tests := []struct {
		name                string
		attempt, maxRetries int
		agentRetries        int
		agentBudget         int
		want                bool
	}{
		{"first failure, retries left", 1, 3, 0, DefaultAgentHourlyRetryBudget, true},
		{"last retry left", 3, 3, 0, DefaultAgentHourlyRetryBudget, true},
		{"task budget spent", 4, 3, 0, DefaultAgentHourlyRetryBudget, false},
		{"task allows no retries", 1, 0, 0, DefaultAgentHourlyRetryBudget, false},
		{"not yet tried, no retries", 0, 0, 0, DefaultAgentHourlyRetryBudget, false},
		{"agent has one retry left this hour", 1, 3, 19, 20, true},
		{"agent budget spent", 1, 3, 20, 20, false},
		{"agent budget overspent", 1, 3, 25, 20, false},
		{"agent budget of zero allows none", 1, 3, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := domain.Task{Attempt: tt.attempt, MaxRetries: tt.maxRetries}
			got := RetryAllowed(task, tt.agentRetries, tt.agentBudget)
			assert.Equal(t, tt.want, got)
		})
	}
}
