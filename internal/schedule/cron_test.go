package schedule

import (
	"fmt"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

const localLayout = "2006-01-02 15:04 MST"

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

// localTime reads "2026-03-29 03:30" as a wall-clock time in zone; it must not be ambiguous.
func localTime(t testing.TB, zone, wall string) time.Time {
	t.Helper()
	got, err := time.ParseInLocation("2006-01-02 15:04", wall, mustLoad(t, zone))
	require.NoError(t, err)
	return got
}

// occurrences lists the first n planned times after from, as wall-clock readings in zone.
func occurrences(t testing.TB, s domain.Schedule, from time.Time, n int, key string) []string {
	t.Helper()
	loc := mustLoad(t, s.Timezone)
	var got []string
	at := from
	for range n {
		next, err := Next(s, at, key)
		require.NoError(t, err)
		require.Equal(t, time.UTC, next.Location(), "Next returns UTC")
		got = append(got, next.In(loc).Format(localLayout))
		at = next
	}
	return got
}

// The clock changes of 2026 used below:
//
//	Europe/Berlin     2026-03-29 02:00 CET  → 03:00 CEST   2026-10-25 03:00 CEST → 02:00 CET
//	America/New_York  2026-03-08 02:00 EST  → 03:00 EDT    2026-11-01 02:00 EDT  → 01:00 EST
//	Australia/Lord_Howe (30 minutes)
//	                  2026-10-04 02:00 +1030 → 02:30 +11   2026-04-05 02:00 +11  → 01:30 +1030
func TestNextCronAcrossDST(t *testing.T) {
	tests := []struct {
		name string
		zone string
		cron string
		from string // wall clock in zone, unambiguous
		want []string
	}{
		// Berlin, spring forward: 02:00–02:59 does not exist on 2026-03-29.
		{"Berlin spring: daily in the skipped hour runs once, shifted by the gap", "Europe/Berlin", "30 2 * * *", "2026-03-28 12:00",
			[]string{"2026-03-29 03:30 CEST", "2026-03-30 02:30 CEST", "2026-03-31 02:30 CEST"}},
		{"Berlin spring: daily at the top of the skipped hour", "Europe/Berlin", "0 2 * * *", "2026-03-28 12:00",
			[]string{"2026-03-29 03:00 CEST", "2026-03-30 02:00 CEST"}},
		{"Berlin spring: daily just after the gap is untouched", "Europe/Berlin", "0 3 * * *", "2026-03-28 12:00",
			[]string{"2026-03-29 03:00 CEST", "2026-03-30 03:00 CEST"}},
		{"Berlin spring: daily just before the gap is untouched", "Europe/Berlin", "30 1 * * *", "2026-03-28 12:00",
			[]string{"2026-03-29 01:30 CET", "2026-03-30 01:30 CEST"}},
		{"Berlin spring: @daily", "Europe/Berlin", "@daily", "2026-03-28 12:00",
			[]string{"2026-03-29 00:00 CET", "2026-03-30 00:00 CEST", "2026-03-31 00:00 CEST"}},
		{"Berlin spring: hourly loses the hour that does not exist", "Europe/Berlin", "0 * * * *", "2026-03-29 00:30",
			[]string{"2026-03-29 01:00 CET", "2026-03-29 03:00 CEST", "2026-03-29 04:00 CEST"}},
		{"Berlin spring: half-hourly", "Europe/Berlin", "*/30 * * * *", "2026-03-29 01:00",
			[]string{"2026-03-29 01:30 CET", "2026-03-29 03:00 CEST", "2026-03-29 03:30 CEST", "2026-03-29 04:00 CEST"}},
		{"Berlin spring: a shifted reading that meets a real one runs once", "Europe/Berlin", "30 2,3 * * *", "2026-03-28 12:00",
			[]string{"2026-03-29 03:30 CEST", "2026-03-30 02:30 CEST", "2026-03-30 03:30 CEST"}},
		{"Berlin spring: gap reading and earlier real reading keep their order", "Europe/Berlin", "15,45 2,3 * * *", "2026-03-29 01:00",
			[]string{"2026-03-29 03:15 CEST", "2026-03-29 03:45 CEST", "2026-03-30 02:15 CEST"}},
		{"Berlin spring: weekly on the changeover Sunday", "Europe/Berlin", "15 2 * * 0", "2026-03-28 12:00",
			[]string{"2026-03-29 03:15 CEST", "2026-04-05 02:15 CEST"}},

		// Berlin, fall back: 02:00–02:59 happens twice on 2026-10-25.
		{"Berlin autumn: daily in the repeated hour runs once", "Europe/Berlin", "30 2 * * *", "2026-10-24 12:00",
			[]string{"2026-10-25 02:30 CEST", "2026-10-26 02:30 CET", "2026-10-27 02:30 CET"}},
		{"Berlin autumn: daily just after the repeated hour", "Europe/Berlin", "0 3 * * *", "2026-10-24 12:00",
			[]string{"2026-10-25 03:00 CET", "2026-10-26 03:00 CET"}},
		{"Berlin autumn: @daily", "Europe/Berlin", "@daily", "2026-10-24 12:00",
			[]string{"2026-10-25 00:00 CEST", "2026-10-26 00:00 CET"}},
		{"Berlin autumn: hourly runs in both passes", "Europe/Berlin", "0 * * * *", "2026-10-25 01:30",
			[]string{"2026-10-25 02:00 CEST", "2026-10-25 02:00 CET", "2026-10-25 03:00 CET"}},
		{"Berlin autumn: @hourly runs in both passes", "Europe/Berlin", "@hourly", "2026-10-25 01:30",
			[]string{"2026-10-25 02:00 CEST", "2026-10-25 02:00 CET", "2026-10-25 03:00 CET"}},
		{"Berlin autumn: half-hourly runs in both passes", "Europe/Berlin", "*/30 * * * *", "2026-10-25 01:45",
			[]string{"2026-10-25 02:00 CEST", "2026-10-25 02:30 CEST", "2026-10-25 02:00 CET", "2026-10-25 02:30 CET", "2026-10-25 03:00 CET"}},
		{"Berlin autumn: minutes within one named hour run in the first pass only", "Europe/Berlin", "*/20 2 * * *", "2026-10-25 01:00",
			[]string{"2026-10-25 02:00 CEST", "2026-10-25 02:20 CEST", "2026-10-25 02:40 CEST", "2026-10-26 02:00 CET"}},
		{"Berlin autumn: every second hour is not every hour", "Europe/Berlin", "0 */2 * * *", "2026-10-25 00:30",
			[]string{"2026-10-25 02:00 CEST", "2026-10-25 04:00 CET", "2026-10-25 06:00 CET"}},

		// New York, spring forward: 02:00–02:59 does not exist on 2026-03-08.
		{"New York spring: daily in the skipped hour runs once", "America/New_York", "30 2 * * *", "2026-03-07 12:00",
			[]string{"2026-03-08 03:30 EDT", "2026-03-09 02:30 EDT"}},
		{"New York spring: daily just after the gap", "America/New_York", "0 3 * * *", "2026-03-07 12:00",
			[]string{"2026-03-08 03:00 EDT", "2026-03-09 03:00 EDT"}},
		{"New York spring: @daily", "America/New_York", "@daily", "2026-03-07 12:00",
			[]string{"2026-03-08 00:00 EST", "2026-03-09 00:00 EDT"}},
		{"New York spring: hourly", "America/New_York", "0 * * * *", "2026-03-08 00:30",
			[]string{"2026-03-08 01:00 EST", "2026-03-08 03:00 EDT", "2026-03-08 04:00 EDT"}},

		// New York, fall back: 01:00–01:59 happens twice on 2026-11-01.
		{"New York autumn: daily in the repeated hour runs once", "America/New_York", "30 1 * * *", "2026-10-31 12:00",
			[]string{"2026-11-01 01:30 EDT", "2026-11-02 01:30 EST"}},
		{"New York autumn: daily at 02:30 exists once", "America/New_York", "30 2 * * *", "2026-10-31 12:00",
			[]string{"2026-11-01 02:30 EST", "2026-11-02 02:30 EST"}},
		{"New York autumn: daily just after the change", "America/New_York", "0 3 * * *", "2026-10-31 12:00",
			[]string{"2026-11-01 03:00 EST", "2026-11-02 03:00 EST"}},
		{"New York autumn: @daily", "America/New_York", "@daily", "2026-10-31 12:00",
			[]string{"2026-11-01 00:00 EDT", "2026-11-02 00:00 EST"}},
		{"New York autumn: hourly runs in both passes", "America/New_York", "0 * * * *", "2026-11-01 00:30",
			[]string{"2026-11-01 01:00 EDT", "2026-11-01 01:00 EST", "2026-11-01 02:00 EST"}},

		// Lord Howe Island moves its clocks by 30 minutes.
		{"Lord Howe spring: shifted by a 30-minute gap", "Australia/Lord_Howe", "15 2 * * *", "2026-10-03 12:00",
			[]string{"2026-10-04 02:45 +11", "2026-10-05 02:15 +11"}},
		{"Lord Howe autumn: repeated half hour runs once", "Australia/Lord_Howe", "45 1 * * *", "2026-04-04 12:00",
			[]string{"2026-04-05 01:45 +11", "2026-04-06 01:45 +1030"}},

		{"no time zone means UTC", "", "0 6 * * 1", "2026-03-04 12:00",
			[]string{"2026-03-09 06:00 UTC", "2026-03-16 06:00 UTC"}},
		{"February 29th", "UTC", "0 0 29 2 *", "2026-03-01 00:00",
			[]string{"2028-02-29 00:00 UTC", "2032-02-29 00:00 UTC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := domain.Schedule{Cron: tt.cron, Timezone: tt.zone}
			from := localTime(t, tt.zone, tt.from)
			got := occurrences(t, s, from, len(tt.want), "")
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestRobfigCronDSTBehaviour pins what the robfig/cron version in go.mod does on its own at clock
// changes, which cronSpec corrects. If an upgrade changes it, revisit cronSpec.
func TestRobfigCronDSTBehaviour(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	tests := []struct {
		name string
		cron string
		from string
		want []string
	}{
		{"skips a daily run in the spring gap", "30 2 * * *", "2026-03-28 12:00",
			[]string{"2026-03-30 02:30 CEST"}},
		{"runs a daily job twice in the repeated hour", "30 2 * * *", "2026-10-24 12:00",
			[]string{"2026-10-25 02:30 CEST", "2026-10-25 02:30 CET"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parsed, err := domain.ParseCron(tt.cron)
			require.NoError(t, err)
			spec := *parsed.(*cron.SpecSchedule)
			spec.Location = berlin
			at := localTime(t, "Europe/Berlin", tt.from)
			var got []string
			for range tt.want {
				at = spec.Next(at)
				got = append(got, at.In(berlin).Format(localLayout))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// oracleFires decides minute by minute, independently of cronSpec's walk over zone periods,
// whether the expression fires at instant m (a whole minute): at its own reading unless that
// reading already happened before the clocks went back (for expressions not matching every
// hour), or at a reading of the spring gap shifted forward by the gap.
func oracleFires(spec *cron.SpecSchedule, everyHour bool, loc *time.Location, m time.Time) bool {
	matches := func(wall time.Time) bool { return spec.Next(wall.Add(-time.Second)).Equal(wall) }
	_, off := m.In(loc).Zone()
	_, offBefore := m.Add(-3 * time.Hour).In(loc).Zone()
	reading := wallClock(m, off)

	if matches(reading) {
		if offBefore <= off || everyHour {
			return true
		}
		// Clocks went back within the last three hours: the same reading happened offBefore-off
		// earlier if that instant still had the old offset.
		earlier := m.Add(-time.Duration(offBefore-off) * time.Second)
		if _, earlierOff := earlier.In(loc).Zone(); earlierOff != offBefore || !wallClock(earlier, earlierOff).Equal(reading) {
			return true
		}
	}
	if offBefore < off {
		// Clocks went forward within the last three hours: m stands for the reading it would have
		// had at the old offset, if no clock ever showed that reading.
		gapReading := wallClock(m, offBefore)
		y, mo, d := gapReading.Date()
		normalised := time.Date(y, mo, d, gapReading.Hour(), gapReading.Minute(), 0, 0, loc)
		_, nOff := normalised.Zone()
		if !wallClock(normalised, nOff).Equal(gapReading) && matches(gapReading) {
			return true
		}
	}
	return false
}

func TestNextCronMatchesMinuteByMinuteOracle(t *testing.T) {
	exprs := []string{"30 2 * * *", "0 2 * * *", "0 3 * * *", "@daily", "0 * * * *", "*/30 * * * *", "*/20 2 * * *",
		"0 */2 * * *", "30 2,3 * * *", "15,45 1-3 * * *", "59 * * * *", "* 2 * * *", "0 0-23 * * *"}
	windows := []struct{ zone, day string }{
		{"Europe/Berlin", "2026-03-28 12:00"}, {"Europe/Berlin", "2026-10-24 12:00"},
		{"America/New_York", "2026-03-07 12:00"}, {"America/New_York", "2026-10-31 12:00"},
		{"Australia/Lord_Howe", "2026-04-04 12:00"}, {"Australia/Lord_Howe", "2026-10-03 12:00"},
	}
	for _, w := range windows {
		loc := mustLoad(t, w.zone)
		from := localTime(t, w.zone, w.day)
		until := from.Add(36 * time.Hour)
		for _, expr := range exprs {
			t.Run(fmt.Sprintf("%s %s %s", w.zone, w.day[:10], expr), func(t *testing.T) {
				parsed, err := domain.ParseCron(expr)
				require.NoError(t, err)
				spec := *parsed.(*cron.SpecSchedule)
				spec.Location = time.UTC
				everyHour := spec.Hour&allHours == allHours

				var want []string
				for m := from.Add(time.Minute); !m.After(until); m = m.Add(time.Minute) {
					if oracleFires(&spec, everyHour, loc, m) {
						want = append(want, m.In(loc).Format(localLayout))
					}
				}
				var got []string
				s := domain.Schedule{Cron: expr, Timezone: w.zone}
				for at := from; ; {
					next, err := Next(s, at, "")
					require.NoError(t, err)
					if next.After(until) {
						break
					}
					got = append(got, next.In(loc).Format(localLayout))
					at = next
				}
				assert.Equal(t, want, got)
			})
		}
	}
}
