package schedule

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

const secondsLayout = "2006-01-02 15:04:05 MST"

// Spread offsets of these keys are pinned by TestSpread: changing the hash moves every agent.
const (
	agentA = "01J0AGENTAAAAAAAAAAAAAAAAA" // 3h18m8s in a 4h window, 18m8s in 30m
	agentC = "01J0AGENTCCCCCCCCCCCCCCCCC" // 23m50s in a 4h or 30m window
)

func utc(t testing.TB, s string) time.Time {
	t.Helper()
	got, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return got
}

func TestNextInterval(t *testing.T) {
	tests := []struct {
		name     string
		schedule domain.Schedule
		after    string
		want     []string
	}{
		{"anchored at the epoch", domain.Schedule{Interval: "6h"}, "2026-05-01T05:59:59Z",
			[]string{"2026-05-01T06:00:00Z", "2026-05-01T12:00:00Z", "2026-05-01T18:00:00Z"}},
		{"strictly after an occurrence", domain.Schedule{Interval: "6h"}, "2026-05-01T06:00:00Z",
			[]string{"2026-05-01T12:00:00Z"}},
		{"strictly after, with nanoseconds", domain.Schedule{Interval: "6h"}, "2026-05-01T06:00:00.5Z",
			[]string{"2026-05-01T12:00:00Z"}},
		{"interval that does not divide a day", domain.Schedule{Interval: "7m"}, "2026-05-01T00:00:00Z",
			[]string{"2026-05-01T00:02:00Z", "2026-05-01T00:09:00Z"}},
		{"seconds", domain.Schedule{Interval: "90s"}, "2026-05-01T00:00:00Z",
			[]string{"2026-05-01T00:01:30Z", "2026-05-01T00:03:00Z"}},
		{"time zone does not move intervals", domain.Schedule{Interval: "1d", Timezone: "Europe/Berlin"}, "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"}},
		{"given in another zone, returned in UTC", domain.Schedule{Interval: "1h"}, "2026-05-01T10:30:00+02:00",
			[]string{"2026-05-01T09:00:00Z"}},
		{"with spread", domain.Schedule{Interval: "6h", Spread: "30m"}, "2026-05-01T05:00:00Z",
			[]string{"2026-05-01T06:23:50Z", "2026-05-01T12:23:50Z"}},
		{"with spread, base passed but the spread run still ahead", domain.Schedule{Interval: "6h", Spread: "30m"}, "2026-05-01T06:10:00Z",
			[]string{"2026-05-01T06:23:50Z", "2026-05-01T12:23:50Z"}},
		{"spread longer than the interval still runs once per interval", domain.Schedule{Interval: "1h", Spread: "4h"}, "2026-05-01T10:00:00Z",
			[]string{"2026-05-01T10:18:08Z", "2026-05-01T11:18:08Z", "2026-05-01T12:18:08Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := agentC
			if tt.schedule.Spread == "4h" {
				key = agentA
			}
			var got []string
			at := utc(t, tt.after)
			for range tt.want {
				next, err := Next(tt.schedule, at, key)
				require.NoError(t, err)
				got = append(got, next.Format(time.RFC3339Nano))
				at = next
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNextDailyWithSpread(t *testing.T) {
	berlin := domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin", Spread: "4h"}
	tests := []struct {
		name  string
		after string // wall clock in Berlin, with seconds
		want  []string
	}{
		// The offset is real time: on the day clocks go forward, 00:00 + 3h18m8s reads 04:18:08.
		{"across spring forward", "2026-03-27 12:00:00", []string{"2026-03-28 03:18:08 CET", "2026-03-29 04:18:08 CEST", "2026-03-30 03:18:08 CEST"}},
		{"across fall back", "2026-10-24 12:00:00", []string{"2026-10-25 02:18:08 CET", "2026-10-26 03:18:08 CET"}},
		{"base passed, spread run still ahead the same day", "2026-05-01 01:00:00", []string{"2026-05-01 03:18:08 CEST", "2026-05-02 03:18:08 CEST"}},
		{"just before the spread run", "2026-05-01 03:18:07", []string{"2026-05-01 03:18:08 CEST"}},
		{"at the spread run, the next is tomorrow", "2026-05-01 03:18:08", []string{"2026-05-02 03:18:08 CEST"}},
	}
	loc := mustLoad(t, "Europe/Berlin")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, err := time.ParseInLocation("2006-01-02 15:04:05", tt.after, loc)
			require.NoError(t, err)
			var got []string
			for range tt.want {
				next, err := Next(berlin, at, agentA)
				require.NoError(t, err)
				got = append(got, next.In(loc).Format(secondsLayout))
				at = next
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSpread(t *testing.T) {
	tests := []struct {
		name     string
		schedule domain.Schedule
		key      string
		want     time.Duration
	}{
		{"no spread", domain.Schedule{Cron: "@daily"}, agentA, 0},
		{"4h window", domain.Schedule{Cron: "@daily", Spread: "4h"}, agentA, 3*time.Hour + 18*time.Minute + 8*time.Second},
		{"30m window", domain.Schedule{Cron: "@daily", Spread: "30m"}, agentA, 18*time.Minute + 8*time.Second},
		{"another key", domain.Schedule{Cron: "@daily", Spread: "4h"}, agentC, 23*time.Minute + 50*time.Second},
		{"same key and window on another schedule", domain.Schedule{Interval: "6h", Spread: "4h"}, agentA, 3*time.Hour + 18*time.Minute + 8*time.Second},
		{"window below a second", domain.Schedule{Cron: "@daily", Spread: "0s"}, agentA, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Spread(tt.schedule, tt.key)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// A thousand hosts on @daily with a four-hour spread start at different times, evenly over the
// window, and each still runs exactly once a day.
func TestSpreadThousandAgentsOnDaily(t *testing.T) {
	s := domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin", Spread: "4h"}
	midnight := localTime(t, "Europe/Berlin", "2026-05-01 00:00")
	const agents = 1000
	perHalfHour := make([]int, 8)
	starts := map[time.Time]bool{}
	for i := range agents {
		key := fmt.Sprintf("agent-%04d", i)
		first, err := Next(s, midnight.Add(-time.Second), key)
		require.NoError(t, err)
		offset := first.Sub(midnight)
		require.GreaterOrEqual(t, offset, time.Duration(0), key)
		require.Less(t, offset, 4*time.Hour, key)
		require.Zero(t, offset%time.Second, key)
		perHalfHour[offset/(30*time.Minute)]++
		starts[first] = true

		second, err := Next(s, first, key)
		require.NoError(t, err)
		assert.Equal(t, 24*time.Hour, second.Sub(first), key)
	}
	for i, n := range perHalfHour {
		assert.InDelta(t, agents/len(perHalfHour), n, 35, "half hour %d has %d starts", i, n)
	}
	// 1,000 keys hashed into 14,400 seconds share a second now and then (about 966 distinct
	// seconds are expected); what matters is that no crowd starts together.
	assert.Greater(t, len(starts), 950, "distinct start times")
}

// Every instant lies between the previous planned time (inclusive) and the next (exclusive),
// across clock changes and with spread.
func TestPreviousAndNextAgree(t *testing.T) {
	schedules := []domain.Schedule{
		{Cron: "30 2 * * *", Timezone: "Europe/Berlin"},
		{Cron: "0 * * * *", Timezone: "Europe/Berlin"},
		{Cron: "*/20 2 * * *", Timezone: "Europe/Berlin", Spread: "15m"},
		{Cron: "@daily", Timezone: "America/New_York", Spread: "4h"},
		{Cron: "30 1 * * *", Timezone: "America/New_York"},
		{Cron: "0 9 * * 1-5", Timezone: "America/New_York"},
		{Interval: "45m", Spread: "2h"},
	}
	windows := []string{"2026-03-07T00:00:00Z", "2026-03-28T00:00:00Z", "2026-10-24T00:00:00Z", "2026-10-31T00:00:00Z"}
	for _, s := range schedules {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			for _, w := range windows {
				from := utc(t, w)
				for at := from; at.Before(from.Add(72 * time.Hour)); at = at.Add(13*time.Minute + 7*time.Second) {
					prev, err := Previous(s, at, agentA)
					require.NoError(t, err)
					next, err := Next(s, at, agentA)
					require.NoError(t, err)
					require.False(t, prev.After(at), "Previous(%s) = %s", at, prev)
					require.True(t, next.After(at), "Next(%s) = %s", at, next)

					fromPrev, err := Next(s, prev, agentA)
					require.NoError(t, err)
					require.Equal(t, next, fromPrev, "Next(Previous(%s))", at)
					prevOfNext, err := Previous(s, next, agentA)
					require.NoError(t, err)
					require.Equal(t, next, prevOfNext, "Previous(Next(%s))", at)
				}
			}
		})
	}
}

func TestPrevious(t *testing.T) {
	tests := []struct {
		name     string
		schedule domain.Schedule
		notAfter string // RFC 3339
		want     string // RFC 3339, UTC
	}{
		{"daily, earlier today", domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin"}, "2026-03-29T12:00:00+02:00", "2026-03-28T23:00:00Z"},
		{"at an occurrence", domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin"}, "2026-03-29T00:00:00+01:00", "2026-03-28T23:00:00Z"},
		{"just before an occurrence", domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin"}, "2026-03-28T23:59:59+01:00", "2026-03-27T23:00:00Z"},
		{"in the second pass of a repeated hour", domain.Schedule{Cron: "30 2 * * *", Timezone: "Europe/Berlin"}, "2026-10-25T02:45:00+01:00", "2026-10-25T00:30:00Z"},
		{"daily in the spring gap", domain.Schedule{Cron: "30 2 * * *", Timezone: "Europe/Berlin"}, "2026-03-29T12:00:00+02:00", "2026-03-29T01:30:00Z"},
		{"February 29th", domain.Schedule{Cron: "0 0 29 2 *"}, "2026-03-01T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"interval", domain.Schedule{Interval: "6h"}, "2026-05-01T05:59:59Z", "2026-05-01T00:00:00Z"},
		{"interval before 1970", domain.Schedule{Interval: "7m"}, "1969-12-31T23:59:00Z", "1969-12-31T23:53:00Z"},
		{"with spread, before today's spread run", domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin", Spread: "4h"}, "2026-03-30T02:00:00+02:00", "2026-03-29T02:18:08Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Previous(tt.schedule, utc(t, tt.notAfter), agentA)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got.Format(time.RFC3339))
			assert.Equal(t, time.UTC, got.Location())
		})
	}
}

func TestInvalidSchedules(t *testing.T) {
	tests := []struct {
		name     string
		schedule domain.Schedule
		want     string // part of the error
	}{
		{"empty", domain.Schedule{}, "neither cron nor interval"},
		{"both", domain.Schedule{Cron: "@daily", Interval: "1h"}, "both cron and interval"},
		{"bad cron", domain.Schedule{Cron: "61 * * * *"}, `cron "61 * * * *"`},
		{"@every is an interval", domain.Schedule{Cron: "@every 5m"}, "use interval"},
		{"six fields", domain.Schedule{Cron: "0 0 0 * * *"}, "expected exactly 5 fields"},
		{"unknown zone", domain.Schedule{Cron: "@daily", Timezone: "Mars/Olympus_Mons"}, `time zone "Mars/Olympus_Mons"`},
		{"host zone", domain.Schedule{Cron: "@daily", Timezone: "Local"}, "depends on the host"},
		{"bad interval", domain.Schedule{Interval: "5x"}, "interval"},
		{"interval too short", domain.Schedule{Interval: "30s"}, "shorter than 1m0s"},
		{"bad spread", domain.Schedule{Cron: "@daily", Spread: "-1h"}, "spread"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Next(tt.schedule, utc(t, "2026-05-01T00:00:00Z"), agentA)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)

			_, err = Previous(tt.schedule, utc(t, "2026-05-01T00:00:00Z"), agentA)
			require.Error(t, err)
			_, err = Spread(tt.schedule, agentA)
			require.Error(t, err)
			_, err = Overdue(tt.schedule, nil, utc(t, "2026-04-01T00:00:00Z"), utc(t, "2026-05-01T00:00:00Z"), time.Hour, agentA)
			require.Error(t, err)
		})
	}
}

func TestScheduleThatNeverFires(t *testing.T) {
	s := domain.Schedule{Cron: "0 0 30 2 *", Timezone: "Europe/Berlin"}
	now := utc(t, "2026-05-01T00:00:00Z")

	_, err := Next(s, now, agentA)
	require.ErrorIs(t, err, ErrNoOccurrence)
	_, err = Previous(s, now, agentA)
	require.ErrorIs(t, err, ErrNoOccurrence)

	overdue, err := Overdue(s, nil, now.AddDate(-1, 0, 0), now, time.Hour, agentA)
	require.NoError(t, err)
	assert.False(t, overdue, "a schedule that never fires is never overdue")
}

// dispatch is one run the scheduler sent: when it was planned and when it went out, in UTC.
type dispatch struct{ planned, at string }

// simulate runs the scheduler loop over [from, until] with a tick every minute except while
// down, and returns what it dispatched.
func simulate(t *testing.T, s domain.Schedule, key string, from, until, downFrom, downUntil time.Time) []dispatch {
	t.Helper()
	planned, err := Next(s, from.Add(-time.Nanosecond), key)
	require.NoError(t, err)
	var got []dispatch
	for now := from; !now.After(until); now = now.Add(time.Minute) {
		if !now.Before(downFrom) && now.Before(downUntil) {
			continue
		}
		if planned.After(now) {
			continue
		}
		got = append(got, dispatch{planned.Format("01-02 15:04:05"), now.Format("01-02 15:04")})
		planned, err = Advance(s, planned, now, key)
		require.NoError(t, err)
	}
	return got
}

func TestCatchUpAfterMissedTicks(t *testing.T) {
	day := utc(t, "2026-05-01T00:00:00Z")
	at := func(hm string) time.Time {
		d, err := time.ParseDuration(hm)
		require.NoError(t, err)
		return day.Add(d)
	}
	tests := []struct {
		name                string
		schedule            domain.Schedule
		key                 string
		downFrom, downUntil time.Time
		until               time.Time
		want                []dispatch
	}{
		{
			name:     "hourly, six hours down: one catch-up run",
			schedule: domain.Schedule{Cron: "0 * * * *"},
			downFrom: at("2h30m"), downUntil: at("8h30m"), until: at("11h"),
			want: []dispatch{
				{"05-01 00:00:00", "05-01 00:00"}, {"05-01 01:00:00", "05-01 01:00"}, {"05-01 02:00:00", "05-01 02:00"},
				{"05-01 03:00:00", "05-01 08:30"},
				{"05-01 09:00:00", "05-01 09:00"}, {"05-01 10:00:00", "05-01 10:00"}, {"05-01 11:00:00", "05-01 11:00"},
			},
		},
		{
			name:     "every 15 minutes, six hours down: one catch-up run",
			schedule: domain.Schedule{Interval: "15m"},
			downFrom: at("0h20m"), downUntil: at("6h20m"), until: at("6h50m"),
			want: []dispatch{
				{"05-01 00:00:00", "05-01 00:00"}, {"05-01 00:15:00", "05-01 00:15"},
				{"05-01 00:30:00", "05-01 06:20"},
				{"05-01 06:30:00", "05-01 06:30"}, {"05-01 06:45:00", "05-01 06:45"},
			},
		},
		{
			name:     "daily with spread, down across the spread run",
			schedule: domain.Schedule{Cron: "@daily", Spread: "4h"},
			key:      agentA,
			downFrom: at("1h"), downUntil: at("7h"), until: at("48h"),
			want: []dispatch{
				{"05-01 03:18:08", "05-01 07:00"},
				{"05-02 03:18:08", "05-02 03:19"},
			},
		},
		{
			name:     "never down",
			schedule: domain.Schedule{Cron: "*/30 * * * *"},
			downFrom: at("0h"), downUntil: at("0h"), until: at("1h30m"),
			want: []dispatch{
				{"05-01 00:00:00", "05-01 00:00"}, {"05-01 00:30:00", "05-01 00:30"},
				{"05-01 01:00:00", "05-01 01:00"}, {"05-01 01:30:00", "05-01 01:30"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := simulate(t, tt.schedule, tt.key, day, tt.until, tt.downFrom, tt.downUntil)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestAdvance(t *testing.T) {
	tests := []struct {
		name      string
		schedule  domain.Schedule
		plannedAt string
		now       string
		want      string
	}{
		{"on time", domain.Schedule{Cron: "0 * * * *"}, "2026-05-01T10:00:00Z", "2026-05-01T10:00:20Z", "2026-05-01T11:00:00Z"},
		{"dispatch latency does not move an interval", domain.Schedule{Interval: "6h"}, "2026-05-01T06:00:00Z", "2026-05-01T06:00:40Z", "2026-05-01T12:00:00Z"},
		{"six hours late", domain.Schedule{Cron: "0 * * * *"}, "2026-05-01T03:00:00Z", "2026-05-01T09:00:00Z", "2026-05-01T10:00:00Z"},
		{"late by less than the period", domain.Schedule{Cron: "@daily"}, "2026-05-01T00:00:00Z", "2026-05-01T05:00:00Z", "2026-05-02T00:00:00Z"},
		{"a clock behind the plan never repeats the run", domain.Schedule{Cron: "0 * * * *"}, "2026-05-01T10:00:00Z", "2026-05-01T09:59:00Z", "2026-05-01T11:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Advance(tt.schedule, utc(t, tt.plannedAt), utc(t, tt.now), "")
			require.NoError(t, err)
			assert.Equal(t, tt.want, got.Format(time.RFC3339))
		})
	}
}

func TestOverdue(t *testing.T) {
	ts := func(s string) *time.Time {
		got := utc(t, s)
		return &got
	}
	daily := domain.Schedule{Cron: "@daily"}
	tests := []struct {
		name        string
		schedule    domain.Schedule
		lastSuccess *time.Time
		since       string
		now         string
		grace       time.Duration
		key         string
		want        bool
	}{
		{"daily, succeeded today", daily, ts("2026-05-02T00:20:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T12:00:00Z", time.Hour, "", false},
		{"daily, succeeded yesterday, today's run within grace", daily, ts("2026-05-01T00:20:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T00:59:59Z", time.Hour, "", false},
		{"daily, succeeded yesterday, grace just over", daily, ts("2026-05-01T00:20:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T01:00:00Z", time.Hour, "", true},
		{"daily, success exactly at the planned time", daily, ts("2026-05-02T00:00:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T12:00:00Z", time.Hour, "", false},
		{"daily, last success two days ago", daily, ts("2026-04-30T00:20:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T00:30:00Z", time.Hour, "", true},
		{"never succeeded, created after the last judged run", daily, nil, "2026-05-01T10:00:00Z", "2026-05-02T00:30:00Z", time.Hour, "", false},
		{"never succeeded, first run's grace over", daily, nil, "2026-05-01T10:00:00Z", "2026-05-02T01:00:00Z", time.Hour, "", true},
		{"never succeeded, created at an occurrence", daily, nil, "2026-05-02T00:00:00Z", "2026-05-02T12:00:00Z", time.Hour, "", false},
		{"success before the slot existed counts from creation", daily, ts("2026-03-01T00:10:00Z"), "2026-05-01T10:00:00Z", "2026-05-02T00:30:00Z", time.Hour, "", false},
		{"no grace", daily, ts("2026-05-01T00:20:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T00:00:00Z", 0, "", true},
		{"negative grace counts as none", daily, ts("2026-05-01T00:20:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T00:00:00Z", -time.Hour, "", true},
		{"spread: today's run is not due yet", domain.Schedule{Cron: "@daily", Spread: "4h"}, ts("2026-05-01T03:30:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T04:00:00Z", time.Hour, agentA, false},
		{"spread: today's run's grace is over", domain.Schedule{Cron: "@daily", Spread: "4h"}, ts("2026-05-01T03:30:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T04:18:08Z", time.Hour, agentA, true},
		{"interval, within grace", domain.Schedule{Interval: "6h"}, ts("2026-05-01T06:10:00Z"), "2026-01-01T00:00:00Z", "2026-05-01T12:29:59Z", 30 * time.Minute, "", false},
		{"interval, grace over", domain.Schedule{Interval: "6h"}, ts("2026-05-01T06:10:00Z"), "2026-01-01T00:00:00Z", "2026-05-01T12:30:00Z", 30 * time.Minute, "", true},
		// Friday 2026-05-01 to Monday 2026-05-04: the weekend is not overdue.
		{"weekdays, Monday before the run's grace", domain.Schedule{Cron: "0 9 * * 1-5"}, ts("2026-05-01T09:30:00Z"), "2026-01-01T00:00:00Z", "2026-05-04T10:59:59Z", 2 * time.Hour, "", false},
		{"weekdays, Monday after the run's grace", domain.Schedule{Cron: "0 9 * * 1-5"}, ts("2026-05-01T09:30:00Z"), "2026-01-01T00:00:00Z", "2026-05-04T11:00:00Z", 2 * time.Hour, "", true},
		{"Berlin daily, judged in local time", domain.Schedule{Cron: "0 1 * * *", Timezone: "Europe/Berlin"}, ts("2026-05-01T23:10:00Z"), "2026-01-01T00:00:00Z", "2026-05-02T23:59:00Z", time.Hour, "", false},
		{"Berlin daily, next local run missed", domain.Schedule{Cron: "0 1 * * *", Timezone: "Europe/Berlin"}, ts("2026-05-01T23:10:00Z"), "2026-01-01T00:00:00Z", "2026-05-03T00:00:00Z", time.Hour, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Overdue(tt.schedule, tt.lastSuccess, utc(t, tt.since), utc(t, tt.now), tt.grace, tt.key)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSlots(t *testing.T) {
	backup := domain.Schedule{Cron: "@daily", Timezone: "Europe/Berlin", Spread: "2h"}
	forget := domain.Schedule{Cron: "0 4 * * 0"}
	check := domain.Schedule{Interval: "30d"}
	tests := []struct {
		name   string
		policy domain.Policy
		want   []Slot
	}{
		{"backup only", domain.Policy{Schedule: backup}, []Slot{{Type: domain.TaskBackup, Schedule: backup}, {Type: domain.TaskStats, Schedule: domain.DefaultStatsSchedule}}},
		{
			"own stats schedule",
			domain.Policy{Schedule: backup, StatsSchedule: &forget},
			[]Slot{{Type: domain.TaskBackup, Schedule: backup}, {Type: domain.TaskStats, Schedule: forget}},
		},
		{
			"all three",
			domain.Policy{Schedule: backup, ForgetSchedule: &forget, Prune: true, CheckSchedule: &check, CheckReadDataSubset: "1/5"},
			[]Slot{
				{Type: domain.TaskBackup, Schedule: backup},
				{Type: domain.TaskForget, Schedule: forget, Params: domain.TaskParams{Prune: true}},
				{Type: domain.TaskCheck, Schedule: check, Params: domain.TaskParams{ReadDataSubset: "1/5"}},
				{Type: domain.TaskStats, Schedule: domain.DefaultStatsSchedule},
			},
		},
		{
			"forget without prune",
			domain.Policy{Schedule: backup, ForgetSchedule: &forget},
			[]Slot{{Type: domain.TaskBackup, Schedule: backup}, {Type: domain.TaskForget, Schedule: forget}, {Type: domain.TaskStats, Schedule: domain.DefaultStatsSchedule}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Slots(tt.policy))
		})
	}
}

func BenchmarkNext(b *testing.B) {
	after := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
	for _, s := range []domain.Schedule{
		{Cron: "@daily"},
		{Cron: "30 2 * * *", Timezone: "Europe/Berlin", Spread: "1h"},
		{Cron: "*/5 * * * 1-5", Timezone: "America/New_York"},
		{Cron: "0 0 29 2 *", Timezone: "Europe/Berlin"},
		{Interval: "6h", Spread: "30m"},
	} {
		b.Run(fmt.Sprintf("%s%s %s", s.Cron, s.Interval, s.Timezone), func(b *testing.B) {
			for b.Loop() {
				if _, err := Next(s, after, agentA); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPrevious(b *testing.B) {
	notAfter := time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC)
	for _, s := range []domain.Schedule{
		{Cron: "@daily", Timezone: "Europe/Berlin"},
		{Cron: "@monthly", Timezone: "Europe/Berlin"},
	} {
		b.Run(s.Cron, func(b *testing.B) {
			for b.Loop() {
				if _, err := Previous(s, notAfter, agentA); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
