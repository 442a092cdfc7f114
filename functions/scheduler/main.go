// Command scheduler is the scheduler Lambda. EventBridge fires it every minute with a scheduled
// event, and it runs one tick (package scheduler) at the event's time; invoked by hand with the
// detail {"time": "<RFC 3339>"}, it runs a tick at that time. Its result is the tick's summary.
//
// Configuration: RM_TABLE, RM_STAGE and RM_TENANT as for every function (package app), and
// RM_OVERDUE_GRACE, how long after its planned time a backup must have succeeded (a duration
// such as 90m or 6h; default 2h), and RM_OFFLINE_GRACE, how long the agent of a running task
// may stay offline before the task is given up as lost (default 1h).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/restic-monitor/restic-monitor/internal/app"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
)

func main() {
	core, err := app.Load(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(1)
	}
	cfg, err := configFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(1)
	}
	lambda.Start(core.Scheduler(cfg).HandleEvent)
}

// configFromEnv reads the scheduler's own settings.
func configFromEnv(getenv func(string) string) (scheduler.Config, error) {
	var cfg scheduler.Config
	if v := getenv("RM_OVERDUE_GRACE"); v != "" {
		d, err := domain.ParseDuration(v)
		if err != nil || d < time.Minute || d > 30*24*time.Hour {
			return scheduler.Config{}, fmt.Errorf("configuration: RM_OVERDUE_GRACE must be a duration between 1m and 30d, such as 2h")
		}
		cfg.OverdueGrace = d
	}
	if v := getenv("RM_OFFLINE_GRACE"); v != "" {
		d, err := domain.ParseDuration(v)
		if err != nil || d < time.Minute || d > 7*24*time.Hour {
			return scheduler.Config{}, fmt.Errorf("configuration: RM_OFFLINE_GRACE must be a duration between 1m and 7d, such as 1h")
		}
		cfg.OfflineGrace = d
	}
	return cfg, nil
}
