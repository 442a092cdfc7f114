package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

var (
	tenantColumns   = cols("ID", "id", "NAME", "name", "STATUS", "status", "CREATED", "createdAt", "REMOVED", "deletion.removed")
	deletionColumns = cols("TENANT", "tenantId", "STATUS", "status", "SINCE", "since", "EARLIEST FINISH", "earliestFinish", "REMOVED", "removed")
)

// directPass is how long one pass of a deletion run by rmctl works before it records its
// progress and starts the next.
const directPass = time.Minute

// tenantGetCmd shows the key's tenant through the API.
func (a *app) tenantGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get",
		Short: "Show the tenant of RM_API_KEY, and how far its deletion has come while it is being deleted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.show(cmd.Context(), "/v1/tenant", tenantColumns)
		},
	}
}

// tenantDeleteCmd deletes a tenant: through the API with an admin key, or, with --direct,
// against the table and the queues, for an operator without a key.
func (a *app) tenantDeleteCmd() *cobra.Command {
	var confirm string
	var direct, noWait bool
	cmd := &cobra.Command{
		Use:   "delete --confirm ID [--direct [--no-wait]]",
		Short: "Delete a tenant with all it has: agents and their queues, policies, history, API keys",
		Long: `Delete a tenant with all it has: its agents and their queues, enrollment tokens, repositories,
policies, tasks, runs, logs, snapshot records, and last its API keys. It cannot be undone.

Without --direct, the tenant of RM_API_KEY (an admin key) is deleted through the API at
RM_API_URL; --confirm must name it. The API does what it can at once and the scheduler does the
rest; ` + "`rmctl tenant get`" + ` shows the progress until the deletion ends and the key stops working
(401). Running the command again is safe.

With --direct, rmctl deletes the tenant named by --confirm itself, in the table named by RM_TABLE
and among the agent queues of the stage RM_STAGE (and RM_TENANT for a tenant's own stack), with
your AWS credentials: for an operator who lost the tenant's admin key. It runs until the deletion
ends, waiting out the two minutes the deletion leaves requests still in flight; --no-wait stops
after one pass and leaves the rest to the deployment's scheduler. Interrupted, it goes on where
it stopped when run again; run on a tenant that is gone, it checks that nothing of it is left.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if direct {
				return a.deleteTenantDirect(cmd.Context(), confirm, noWait)
			}
			if noWait {
				return errors.New("--no-wait goes with --direct: through the API, the scheduler always finishes the deletion")
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			var out map[string]any
			if err := c.do(cmd.Context(), http.MethodDelete, "/v1/tenant", url.Values{"confirm": {confirm}}, nil, &out); err != nil {
				return err
			}
			if out["status"] != string(store.TenantDeleted) {
				fmt.Fprintln(a.stderr, "rmctl: the deletion goes on in the scheduler; `rmctl tenant get` shows its progress until the key stops working")
			}
			return a.print(out, deletionColumns)
		},
	}
	cmd.Flags().StringVar(&confirm, "confirm", "", "the ID of the tenant to delete (required)")
	cmd.Flags().BoolVar(&direct, "direct", false, "delete in the table and the queues directly, without an API key")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "with --direct: one pass only; the deployment's scheduler finishes the deletion")
	_ = cmd.MarkFlagRequired("confirm")
	return cmd
}

// deleteTenantDirect runs a tenant's deletion against the table and the queues until it ends
// (or for one pass with noWait), and prints how it stands.
func (a *app) deleteTenantDirect(ctx context.Context, tenantID string, noWait bool) error {
	f, err := a.deleter(ctx)
	if err != nil {
		return err
	}
	for {
		d, err := f.DeleteTenant(ctx, tenantID, time.Now().Add(directPass))
		if errors.Is(err, domain.ErrNotFound) {
			// Gone already (or never there): make sure nothing of it is left.
			removed, err := f.SweepTenant(ctx, tenantID)
			if err != nil {
				return err
			}
			return a.print(store.TenantDeletion{TenantID: tenantID, Status: store.TenantDeleted, Removed: removed}, deletionColumns)
		}
		if err != nil {
			return err
		}
		if d.Status == store.TenantDeleted || noWait {
			return a.print(d, deletionColumns)
		}
		wait := 2 * time.Second
		if d.EarliestFinish != nil && time.Until(*d.EarliestFinish) > wait {
			wait = time.Until(*d.EarliestFinish)
			fmt.Fprintf(a.stderr, "rmctl: deleting %s: waiting until %s for requests still in flight to end\n",
				tenantID, d.EarliestFinish.Local().Format(time.TimeOnly))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("deleting %s stopped; run the command again to go on: %w", tenantID, ctx.Err())
		case <-t.C:
		}
	}
}

// deleter returns the fleet service on the table named by RM_TABLE and the agent queues of the
// deployment named by RM_STAGE and RM_TENANT.
func (a *app) deleter(ctx context.Context) (*fleet.Service, error) {
	table := a.getenv("RM_TABLE")
	if table == "" {
		return nil, errors.New("RM_TABLE must name the DynamoDB table")
	}
	names := resources.Names{Stage: a.getenv("RM_STAGE"), Tenant: a.getenv("RM_TENANT")}
	if !resources.ValidStage(names.Stage) {
		return nil, errors.New("RM_STAGE must name the deployment's stage (1–10 lowercase letters and digits): its agent queues are rm-<stage>-<tenant>-<agent>")
	}
	if names.Tenant != "" && !domain.ValidTenantID(names.Tenant) {
		return nil, errors.New("RM_TENANT must be empty or name the tenant of a tenant's own stack")
	}
	cfg, err := localaws.LoadForTool(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return &fleet.Service{Store: store.New(dynamodb.NewFromConfig(cfg), table), Queues: queue.New(sqs.NewFromConfig(cfg), names)}, nil
}
