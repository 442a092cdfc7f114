// Command restic-monitor-agent is the restic-monitor agent: it runs on every backed-up host,
// takes tasks from its queue and runs restic for them. See agent/README.md.
package main

import (
	"context"
	"os"

	"github.com/restic-monitor/restic-monitor/agent/internal/cli"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(cli.Main(context.Background(), version, os.Args[1:], os.Stdout, os.Stderr))
}
