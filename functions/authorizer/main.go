// Command authorizer is the HTTP API's Lambda REQUEST authorizer: it authenticates the
// Authorization header (an API key or an agent secret) and passes the tenant, principal and
// role on to the API Lambdas as context.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/restic-monitor/restic-monitor/internal/app"
	"github.com/restic-monitor/restic-monitor/internal/lambdahttp"
)

func main() {
	core, err := app.Load(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "authorizer:", err)
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context, ev events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
		return lambdahttp.Authorize(ctx, core.Auth, ev)
	})
}
