// Command agentapi is the agent API's Lambda: agents' requests under /v1/agent, behind the
// HTTP API and its authorizer (registration is checked by its enrollment token instead).
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
		fmt.Fprintln(os.Stderr, "agentapi:", err)
		os.Exit(1)
	}
	lambda.Start(lambdahttp.Adapter{Handler: httpapi.NewAgentHandler(core.APIDeps())}.Handle)
}
