// Package schedule owns when recurring work happens: the planned times of a policy's backup,
// forget and check schedules for one agent, catching up after missed ticks, the overdue rule,
// and the backoff between retries. Everything here is pure: the current time and any
// randomness come in as arguments, so callers and tests decide both.
//
// A planned time is a base occurrence of the schedule (a cron match or a multiple of the
// interval) plus the agent's spread offset. All times returned are in UTC.
package schedule

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// ErrNoOccurrence means a schedule never fires, such as the cron expression "0 0 30 2 *"
// (February 30th), or has no occurrence in the direction searched.
var ErrNoOccurrence = errors.New("schedule has no occurrence")

// plan is a schedule made ready for evaluation.
type plan struct {
	cron   *cronSpec     // set for cron schedules
	every  time.Duration // set for interval schedules
	spread time.Duration
}

func compile(s domain.Schedule) (plan, error) {
	var p plan
	switch {
	case s.Cron == "" && s.Interval == "":
		return plan{}, errors.New("schedule sets neither cron nor interval")
	case s.Cron != "" && s.Interval != "":
		return plan{}, errors.New("schedule sets both cron and interval")
	case s.Cron != "":
		parsed, err := domain.ParseCron(s.Cron)
		if err != nil {
			return plan{}, fmt.Errorf("cron %q: %w", s.Cron, err)
		}
		spec, ok := parsed.(*cron.SpecSchedule)
		if !ok {
			return plan{}, fmt.Errorf("cron %q: not a calendar expression", s.Cron)
		}
		loc, err := location(s.Timezone)
		if err != nil {
			return plan{}, err
		}
		c := newCronSpec(spec, loc)
		p.cron = &c
	default:
		d, err := domain.ParseDuration(s.Interval)
		if err != nil {
			return plan{}, fmt.Errorf("interval: %w", err)
		}
		if d < domain.MinInterval {
			return plan{}, fmt.Errorf("interval %s is shorter than %s", d, domain.MinInterval)
		}
		p.every = d
	}
	if s.Spread != "" {
		d, err := domain.ParseDuration(s.Spread)
		if err != nil {
			return plan{}, fmt.Errorf("spread: %w", err)
		}
		p.spread = d
	}
	return p, nil
}

// locations caches loaded time zones: time.LoadLocation reads and parses the zone file on
// every call, and a scheduler run evaluates many schedules in the same few zones.
var locations sync.Map // name → *time.Location

// location loads an IANA time zone; the empty name is UTC. Unlike domain.Schedule.Location it
// reports a zone that cannot be loaded (a host without tzdata) instead of silently using UTC.
func location(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location), nil
	}
	if name == "Local" {
		return nil, errors.New(`time zone "Local" depends on the host: name an IANA zone`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	locations.Store(name, loc)
	return loc, nil
}

// offset is the spread offset for key: a hash of the key reduced to whole seconds in
// [0, spread). It depends only on the key and the spread, never on the time, so an agent keeps
// its place in the window from one occurrence to the next.
func (p plan) offset(key string) time.Duration {
	window := uint64(p.spread / time.Second)
	if window == 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(key)) // a hash.Hash never returns an error
	return time.Duration(h.Sum64()%window) * time.Second
}

// nextBase returns the first base occurrence strictly after t.
func (p plan) nextBase(t time.Time) (time.Time, error) {
	if p.cron == nil {
		return multipleAfter(t, p.every), nil
	}
	next, ok := p.cron.next(t)
	if !ok {
		return time.Time{}, ErrNoOccurrence
	}
	return next.UTC(), nil
}

// previousBase returns the last base occurrence at or before t.
func (p plan) previousBase(t time.Time) (time.Time, error) {
	if p.cron == nil {
		return multipleNotAfter(t, p.every), nil
	}
	prev, ok := p.cron.previous(t)
	if !ok {
		return time.Time{}, ErrNoOccurrence
	}
	return prev.UTC(), nil
}

// multipleNotAfter returns the last multiple of every since the Unix epoch at or before t.
// Intervals are whole seconds (domain.ParseDuration has no smaller unit).
func multipleNotAfter(t time.Time, every time.Duration) time.Time {
	step := int64(every / time.Second)
	sec := t.Unix()
	k := sec / step
	if sec%step < 0 {
		k-- // round towards minus infinity for times before 1970
	}
	return time.Unix(k*step, 0).UTC()
}

// multipleAfter returns the first multiple of every since the Unix epoch strictly after t.
func multipleAfter(t time.Time, every time.Duration) time.Time {
	return multipleNotAfter(t, every).Add(every)
}

// Next returns the first planned time of s strictly after `after`.
//
// A cron schedule is matched against the wall clock in its time zone (UTC when none is set);
// see cronSpec for what happens when clocks change. An interval schedule fires at the
// multiples of the interval since the Unix epoch, whatever its time zone, so "6h" runs at 00:00,
// 06:00, 12:00 and 18:00 UTC and never drifts with dispatch latency; use cron for local times.
//
// With a spread, every planned time is the base occurrence plus Spread(s, spreadKey). The
// offset is a fixed amount of real time, so a run spread past a DST change keeps its distance
// from the base occurrence, not its wall-clock time. spreadKey is normally the agent ID.
func Next(s domain.Schedule, after time.Time, spreadKey string) (time.Time, error) {
	p, err := compile(s)
	if err != nil {
		return time.Time{}, err
	}
	return p.next(after, spreadKey)
}

func (p plan) next(after time.Time, key string) (time.Time, error) {
	off := p.offset(key)
	// The planned time base+off is after `after` exactly when base is after after-off. Searching
	// from after-off finds the base occurrence whose spread run is still ahead, even when the base
	// itself has passed; adding the offset to Next(after) instead would skip that run.
	base, err := p.nextBase(after.Add(-off))
	if err != nil {
		return time.Time{}, err
	}
	return base.Add(off), nil
}

// Previous returns the last planned time of s at or before notAfter, or ErrNoOccurrence when
// there is none within six years. Every instant t lies in [Previous(t), Next(t)).
func Previous(s domain.Schedule, notAfter time.Time, spreadKey string) (time.Time, error) {
	p, err := compile(s)
	if err != nil {
		return time.Time{}, err
	}
	return p.previous(notAfter, spreadKey)
}

func (p plan) previous(notAfter time.Time, key string) (time.Time, error) {
	off := p.offset(key)
	base, err := p.previousBase(notAfter.Add(-off))
	if err != nil {
		return time.Time{}, err
	}
	return base.Add(off), nil
}

// Advance returns the planned time that follows a dispatch: the run planned at plannedAt was
// dispatched by the tick at now. The next run is the first planned time after both, so a
// scheduler that was down for six hours dispatches one catch-up run for an hourly schedule,
// not six; the occurrences in between are skipped, not queued.
func Advance(s domain.Schedule, plannedAt, now time.Time, spreadKey string) (time.Time, error) {
	after := now
	if plannedAt.After(now) {
		after = plannedAt
	}
	return Next(s, after, spreadKey)
}

// Spread returns the offset added to every planned time of s for spreadKey: a deterministic
// value in [0, spread) in whole seconds, zero without a spread. Different keys spread evenly
// over the window.
func Spread(s domain.Schedule, spreadKey string) (time.Duration, error) {
	p, err := compile(s)
	if err != nil {
		return 0, err
	}
	return p.offset(spreadKey), nil
}

// Overdue reports whether a policy×agent has gone without a successful run for longer than its
// schedule allows. The run planned at P is expected to have succeeded by P+grace, so the slot
// is overdue when P is the latest planned time with P+grace ≤ now and no success happened at or
// after P. For a daily 00:00 backup with one hour of grace that means: from 01:00 on, overdue
// unless there was a success since 00:00 today; before 01:00, overdue unless there was one since
// 00:00 yesterday.
//
// lastSuccess is nil when the slot never succeeded; since is when the slot was created, so a
// new slot is first judged on a run planned after it existed. A negative grace counts as zero.
func Overdue(s domain.Schedule, lastSuccess *time.Time, since, now time.Time, grace time.Duration, spreadKey string) (bool, error) {
	grace = max(grace, 0)
	reference := since
	if lastSuccess != nil && lastSuccess.After(since) {
		reference = *lastSuccess
	}
	due, err := Previous(s, now.Add(-grace), spreadKey)
	if errors.Is(err, ErrNoOccurrence) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return reference.Before(due), nil
}

// Slot is one recurring task of a policy on each of its agents: what runs, and when.
type Slot struct {
	Type     domain.TaskType
	Schedule domain.Schedule
	Params   domain.TaskParams
}

// Slots returns a policy's recurring tasks: its backup always, its forget (with prune when the
// policy asks for it) and its check when those have schedules of their own.
func Slots(p domain.Policy) []Slot {
	slots := []Slot{{Type: domain.TaskBackup, Schedule: p.Schedule}}
	if p.ForgetSchedule != nil {
		slots = append(slots, Slot{Type: domain.TaskForget, Schedule: *p.ForgetSchedule, Params: domain.TaskParams{Prune: p.Prune}})
	}
	if p.CheckSchedule != nil {
		slots = append(slots, Slot{Type: domain.TaskCheck, Schedule: *p.CheckSchedule, Params: domain.TaskParams{ReadDataSubset: p.CheckReadDataSubset}})
	}
	// Every policy reports its repository's health daily unless it says otherwise.
	slots = append(slots, Slot{Type: domain.TaskStats, Schedule: p.Stats()})
	return slots
}
