package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/restic-monitor/restic-monitor/events"
)

// LogEmitter writes each domain event as one structured log record, under the message
// "domain event" with the event's JSON body, until notification work consumes them from a bus.
type LogEmitter struct {
	Log *slog.Logger
}

// Emit logs every event; an event that does not encode is logged as such and reported, after the
// others were written.
func (e LogEmitter) Emit(ctx context.Context, evs []events.Event) error {
	var bad int
	for _, ev := range evs {
		body, err := ev.Encode()
		if err != nil {
			bad++
			e.Log.ErrorContext(ctx, "domain event does not encode", "event_id", ev.ID, "event_type", string(ev.Type), "error", err)
			continue
		}
		e.Log.InfoContext(ctx, "domain event", "event_id", ev.ID, "event_type", string(ev.Type), "tenant_id", ev.TenantID,
			"event", json.RawMessage(body))
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d events do not encode", bad, len(evs))
	}
	return nil
}
