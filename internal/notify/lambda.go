package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	rmevents "github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// Source is the EventBridge source of restic-monitor's domain events.
const Source = resources.EventSource

// HandleInvocation is the notifier Lambda's handler. It takes one EventBridge event (a rule
// targeting the function) or a batch of SQS messages each holding one (a rule targeting a
// queue the function reads with a batching window): in a batch, the events of one tick arrive
// together, so a channel gets one grouped message for them rather than one each. Events it
// cannot read are logged and dropped, since no retry would make them readable; an error from
// the store fails the invocation so the events come again, and dedupe keeps what was sent.
func (n *Notifier) HandleInvocation(ctx context.Context, raw json.RawMessage) error {
	var probe struct {
		Records    []events.SQSMessage `json:"Records"`
		DetailType string              `json:"detail-type"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return fmt.Errorf("notifier: the invocation is not JSON: %w", err)
	}
	var bodies [][]byte
	if probe.Records != nil {
		for _, r := range probe.Records {
			bodies = append(bodies, []byte(r.Body))
		}
	} else {
		bodies = append(bodies, raw)
	}
	var evs []rmevents.Event
	for _, b := range bodies {
		e, ok := n.readEvent(ctx, b)
		if ok {
			evs = append(evs, e)
		}
	}
	return n.Deliver(ctx, evs)
}

func (n *Notifier) readEvent(ctx context.Context, body []byte) (rmevents.Event, bool) {
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(body, &ev); err != nil || len(ev.Detail) == 0 {
		n.Log.WarnContext(ctx, "dropped a message that is not an EventBridge event")
		return rmevents.Event{}, false
	}
	if ev.Source != Source {
		n.Log.WarnContext(ctx, "dropped an event of another source", "source", ev.Source)
		return rmevents.Event{}, false
	}
	e, err := rmevents.DecodeEvent(ev.Detail)
	switch {
	case errors.Is(err, rmevents.ErrUnknownType):
		n.Log.InfoContext(ctx, "skipped an event type this notifier does not know", "detail_type", ev.DetailType)
		return rmevents.Event{}, false
	case err != nil:
		n.Log.WarnContext(ctx, "dropped an event that does not decode", "detail_type", ev.DetailType, "error", err)
		return rmevents.Event{}, false
	}
	return e, true
}
