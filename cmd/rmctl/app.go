package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// app is what every command shares: where output goes, the environment, and the output format.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	output         string
	// httpClient calls the API; tests may replace it.
	httpClient *http.Client
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "rmctl",
		Short: "Operate restic-monitor: tenants, keys, agents, policies, tasks and runs",
		Long: `rmctl operates restic-monitor.

Bootstrapping works directly against the DynamoDB table named by RM_TABLE, with your AWS
credentials, or at AWS_ENDPOINT_URL when it is set (the local emulator, LocalStack):
  rmctl tenant create acme --name "ACME Corp"
  rmctl apikey create --tenant acme --role admin
  rmctl capacity recount --tenant acme    (once, after upgrading from a version without it)

Everything else calls the API at RM_API_URL with the key in RM_API_KEY:
  rmctl agents list --status online
  rmctl repositories create main --backend s3 --location s3:s3.amazonaws.com/acme/restic
  rmctl repositories health main
  rmctl policies apply -f nightly.yaml
  rmctl assign nightly AGENT_ID...
  rmctl tasks run --type backup --policy nightly --agent AGENT_ID
  rmctl runs list --policy nightly
  rmctl logs RUN_ID
  rmctl tenant get
  rmctl tenant delete --confirm acme

An operator who lost the tenant's admin key deletes it against the table and the queues:
  RM_STAGE=prod rmctl tenant delete --confirm acme --direct`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if a.output != "json" && a.output != "table" {
				return fmt.Errorf("--output must be json or table, not %q", a.output)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "json", "output format: json or table")
	root.AddCommand(
		a.tenantCmd(), a.apikeyCmd(), a.capacityCmd(),
		a.agentsCmd(), a.tokensCmd(), a.repositoriesCmd(), a.policiesCmd(), a.notifyCmd(), a.assignCmd(), a.unassignCmd(),
		a.tasksCmd(), a.snapshotsCmd(), a.runsCmd(), a.logsCmd(), a.overviewCmd(), a.auditCmd(), a.dashboardCmd(),
	)
	return root
}

// fleet returns the service bootstrapping works with, on the table named by RM_TABLE.
func (a *app) fleet(ctx context.Context) (*fleet.Service, error) {
	table := a.getenv("RM_TABLE")
	if table == "" {
		return nil, errors.New("RM_TABLE must name the DynamoDB table")
	}
	cfg, err := localaws.LoadForTool(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return &fleet.Service{Store: store.New(dynamodb.NewFromConfig(cfg), table)}, nil
}

// api returns a client of the API named by RM_API_URL, with the key in RM_API_KEY.
func (a *app) api() (*client, error) {
	base := strings.TrimRight(a.getenv("RM_API_URL"), "/")
	if base == "" {
		return nil, errors.New("RM_API_URL must be the API's URL, such as http://127.0.0.1:8080")
	}
	key := a.getenv("RM_API_KEY")
	if key == "" {
		return nil, errors.New("RM_API_KEY must hold an API key (rm_...); `rmctl apikey create` makes the first one")
	}
	hc := a.httpClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &client{base: base, key: key, http: hc}, nil
}
