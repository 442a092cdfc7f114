package schedule

import (
	"time"

	"github.com/robfig/cron/v3"
)

// allHours has one bit for each hour of the day, as in cron.SpecSchedule.Hour.
const allHours = 1<<24 - 1

// maxZonePeriods bounds the walk over a zone's offset changes when a schedule matches rarely.
// Zones with daylight saving time change twice a year, so this covers far more than the five
// years robfig/cron itself searches.
const maxZonePeriods = 64

// cronSpec evaluates a cron expression on the wall clock of a time zone.
//
// robfig/cron matches its fields against the wall clock too, but walks through a DST change
// hour by hour: a time of day that falls into the hour skipped in spring never fires that day,
// and one that falls into the hour repeated in autumn fires twice. cronSpec therefore asks
// robfig/cron only about wall-clock readings on a time line without DST (UTC) and maps each
// reading to real time itself, one zone period (a stretch with a constant UTC offset) at a time:
//
//   - a reading in a spring gap (02:30 when clocks jump from 02:00 to 03:00) fires once, shifted
//     forward by the length of the gap (03:30), the way time.Date normalises such a reading;
//   - a reading in an hour that repeats in autumn fires once, in its first pass, unless the
//     expression matches every hour of the day: then it fires in both passes, because whoever
//     asked for a run every hour wants one in every real hour;
//   - readings that coincide after the shift (02:30 shifted and a real 03:30) fire once.
type cronSpec struct {
	spec      cron.SpecSchedule // Location is UTC: it only ever sees wall-clock readings
	loc       *time.Location
	everyHour bool
}

func newCronSpec(spec *cron.SpecSchedule, loc *time.Location) cronSpec {
	s := *spec
	s.Location = time.UTC
	return cronSpec{spec: s, loc: loc, everyHour: s.Hour&allHours == allHours}
}

// wallClock returns the reading of a clock at UTC offset off (seconds) at instant t, expressed
// as a UTC time.
func wallClock(t time.Time, off int) time.Time {
	return t.UTC().Add(time.Duration(off) * time.Second)
}

// instant is the inverse of wallClock.
func instant(wall time.Time, off int) time.Time {
	return wall.Add(-time.Duration(off) * time.Second)
}

// next returns the first instant strictly after `after` at which the expression fires, and
// false when it does not fire within robfig/cron's five-year horizon.
func (c *cronSpec) next(after time.Time) (time.Time, bool) {
	period := after.In(c.loc)
	for range maxZonePeriods {
		_, off := period.Zone()
		start, end := period.ZoneBounds()
		// Instants considered in this period are after lower and from start on.
		lower := after
		if !start.IsZero() && after.Before(start) {
			lower = start.Add(-time.Nanosecond)
		}

		var best time.Time
		consider := func(t time.Time) {
			if (end.IsZero() || t.Before(end)) && (best.IsZero() || t.Before(best)) {
				best = t
			}
		}

		// spec.Next returns the first matching reading strictly after its argument.
		w := c.spec.Next(wallClock(lower, off))
		if w.IsZero() {
			return time.Time{}, false
		}
		if !start.IsZero() {
			_, prevOff := start.Add(-time.Nanosecond).In(c.loc).Zone()
			repeatedUntil := wallClock(start, prevOff)
			switch {
			case prevOff > off && !c.everyHour && w.Before(repeatedUntil):
				// Clocks went back at start: readings before repeatedUntil were already seen
				// in the previous period.
				w = c.spec.Next(repeatedUntil.Add(-time.Nanosecond))
				if w.IsZero() {
					return time.Time{}, false
				}
			case prevOff < off && lower.Before(start.Add(time.Duration(off-prevOff)*time.Second)):
				// Clocks went forward at start: readings in the gap run at the previous offset,
				// which places them just after start.
				gapEnd := wallClock(start, off)
				if g := c.spec.Next(wallClock(lower, prevOff)); !g.IsZero() && g.Before(gapEnd) {
					consider(instant(g, prevOff))
				}
			}
		}
		consider(instant(w, off))

		if !best.IsZero() {
			return best, true
		}
		if end.IsZero() {
			return time.Time{}, false
		}
		period = end
	}
	return time.Time{}, false
}

// maxLookBack bounds how far previous searches into the past: longer than the four years
// between two February 29ths.
const maxLookBack = 6 * 366 * 24 * time.Hour

// previous returns the last instant at or before notAfter at which the expression fires. It
// searches windows of doubling length back from notAfter, so a frequent expression is found in
// a few steps and a yearly one in about twenty.
func (c *cronSpec) previous(notAfter time.Time) (time.Time, bool) {
	for window := time.Minute; window <= 2*maxLookBack; window *= 2 {
		t, ok := c.next(notAfter.Add(-window))
		if !ok {
			return time.Time{}, false
		}
		if t.After(notAfter) {
			continue
		}
		for {
			u, ok := c.next(t)
			if !ok || u.After(notAfter) {
				return t, true
			}
			t = u
		}
	}
	return time.Time{}, false
}
