package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// tickDetail is the detail of an event that runs a tick by hand: {"time": "<RFC 3339>"} runs it
// at that time, for a catch-up or a test.
type tickDetail struct {
	Time *time.Time `json:"time"`
}

// TickTime returns the time a tick for ev runs at: the detail's "time" when the event carries
// one (a tick run by hand), else the event's own time (EventBridge's scheduled events are
// stamped with the minute they were due). A tick plans as of its time — the start windows of the
// tasks it dispatches count from it — so a tick run by hand names the present, or a moment
// whose due work it is meant to replay.
func TickTime(ev events.CloudWatchEvent) (time.Time, error) {
	if len(ev.Detail) > 0 && string(ev.Detail) != "null" {
		var d tickDetail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			return time.Time{}, fmt.Errorf("event detail: %w", err)
		}
		if d.Time != nil {
			if d.Time.IsZero() {
				return time.Time{}, errors.New(`event detail: "time" is zero`)
			}
			return d.Time.UTC(), nil
		}
	}
	if ev.Time.IsZero() {
		return time.Time{}, errors.New(`event has no time: invoke with an EventBridge scheduled event or a detail {"time": "<RFC 3339>"}`)
	}
	return ev.Time.UTC(), nil
}

// HandleEvent is the Lambda handler: one tick at the event's time. The summary is the
// function's result, so a tick run by hand shows what it did.
func (s *Scheduler) HandleEvent(ctx context.Context, ev events.CloudWatchEvent) (Summary, error) {
	now, err := TickTime(ev)
	if err != nil {
		return Summary{}, err
	}
	var start time.Time
	if s.Clock != nil {
		start = s.Clock()
	}
	sum, err := s.Tick(ctx, now)
	if s.Clock != nil {
		sum.DurationMS = s.Clock().Sub(start).Milliseconds()
	}
	log := s.Log
	if log != nil {
		log.InfoContext(ctx, "tick", "event_id", ev.ID, "now", now, "due", sum.Due, "dispatched", sum.Dispatched,
			"claimed", sum.Claimed, "resent", sum.Resent, "retried", sum.Retried, "lost", sum.Lost, "unsent", sum.Unsent,
			"waiting", sum.Waiting, "expired", sum.Expired, "failed", sum.Failed, "offline", sum.Offline, "online", sum.Online,
			"overdue", sum.Overdue, "recovered", sum.Recovered, "dead_lettered", sum.DeadLettered, "errors", sum.Errors, "duration_ms", sum.DurationMS,
			"tenants_deleting", sum.TenantsDeleting, "tenants_deleted", sum.TenantsDeleted)
	}
	return sum, err
}
