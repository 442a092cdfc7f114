// Command rmctl is restic-monitor's operator CLI. Two commands bootstrap a deployment directly
// against its DynamoDB table — `tenant create` and `apikey create` — because the API cannot be
// used before a tenant has a key. Everything else calls the tenant API at RM_API_URL with the
// API key in RM_API_KEY: agents, enrollment tokens, repositories, policies (applied from YAML
// files), assignments, tasks, runs and their logs, and the tenant itself (`tenant get`,
// `tenant delete`). `tenant delete --direct` deletes a tenant against the table and its queues,
// for an operator without its admin key.
//
// Output is JSON, or a compact table with --output table.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

// run executes one command line; errors are already printed to stderr when it returns.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	root := newRoot(&app{stdout: stdout, stderr: stderr, getenv: getenv})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "rmctl:", err)
		return err
	}
	return nil
}
