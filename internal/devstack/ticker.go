package devstack

import (
	"context"
	"encoding/json"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/restic-monitor/restic-monitor/internal/app"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
)

// Ticker runs one scheduler tick at now, as the scheduler Lambda does for an EventBridge event.
type Ticker func(ctx context.Context, now time.Time) error

// schedulerTicker builds the scheduler as its Lambda does and fires its handler with the event
// EventBridge's rate(1 minute) rule would send, since emulators never fire schedules.
func schedulerTicker(core *app.Core) Ticker {
	s := core.Scheduler(scheduler.Config{})
	return func(ctx context.Context, now time.Time) error {
		_, err := s.HandleEvent(ctx, ScheduledEvent(now))
		return err
	}
}

// ScheduledEvent is the event an EventBridge schedule rule delivers at now.
func ScheduledEvent(now time.Time) events.CloudWatchEvent {
	return events.CloudWatchEvent{
		Version: "0", ID: "local-" + now.UTC().Format("20060102T150405.000"), DetailType: "Scheduled Event", Source: "aws.events",
		AccountID: "000000000000", Time: now.UTC(), Region: "us-east-1",
		Resources: []string{"arn:aws:events:us-east-1:000000000000:rule/restic-monitor-tick"},
		Detail:    json.RawMessage(`{}`),
	}
}
