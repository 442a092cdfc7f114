// Command notifier is the notifier Lambda. An EventBridge rule on the deployment's bus sends
// it restic-monitor's domain events, one by one or in SQS batches, and it delivers each to the
// matching notification channels of the event's tenant (package notify).
//
// Configuration: RM_TABLE, RM_STAGE and RM_TENANT as for every function (package app), and
// the notifier's own: RM_SECRET_KEY (or RM_SECRET_KEY_ARN, the Secrets Manager secret holding
// it, app.Core.NotifyConfig), RM_PUBLIC_URL, RM_NOTIFY_FROM, RM_NOTIFY_TIMEOUT and
// RM_NOTIFY_ALLOW_PRIVATE (notify.Config).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/restic-monitor/restic-monitor/internal/app"
)

func main() {
	ctx := context.Background()
	core, err := app.Load(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifier:", err)
		os.Exit(1)
	}
	nc, err := core.NotifyConfig(ctx, os.Getenv)
	if err == nil && nc.SecretKey == nil {
		err = fmt.Errorf("configuration: RM_SECRET_KEY or RM_SECRET_KEY_ARN is required")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifier:", err)
		os.Exit(1)
	}
	n, err := core.Notifier(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifier:", err)
		os.Exit(1)
	}
	lambda.Start(n.HandleInvocation)
}
