// Command api is the tenant API's Lambda: operators' requests under /v1, behind the HTTP API
// and its authorizer.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/restic-monitor/restic-monitor/internal/app"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/lambdahttp"
)

func main() {
	core, err := app.Load(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
	lambda.Start(lambdahttp.Adapter{Handler: httpapi.NewTenantHandler(core.APIDeps())}.Handle)
}
