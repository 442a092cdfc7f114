package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// The bootstrap commands write to the table directly: before a tenant has an API key, the API
// can do nothing for it. Deleting a tenant works both ways (tenant.go): through the API, or
// directly for an operator who lost the tenant's admin key.

func (a *app) tenantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Create tenants (in the table named by RM_TABLE), show and delete them"}
	var name string
	create := &cobra.Command{
		Use:   "create ID --name NAME",
		Short: "Create a tenant: ID is 3–32 lowercase letters, digits and inner hyphens",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := a.fleet(cmd.Context())
			if err != nil {
				return err
			}
			if name == "" {
				name = args[0]
			}
			t, err := f.CreateTenant(cmd.Context(), args[0], name)
			if errors.Is(err, domain.ErrConflict) {
				return errors.New("tenant " + args[0] + " exists already")
			}
			if err != nil {
				return err
			}
			return a.print(t, cols("ID", "id", "NAME", "name", "CREATED", "createdAt"))
		},
	}
	create.Flags().StringVar(&name, "name", "", "the tenant's display name (default: its ID)")
	recount := &cobra.Command{
		Use:   "recount ID",
		Short: "Rebuild a tenant's overview counters from its agents, runs and slots (once, for tenants older than the counters)",
		Long: `Rebuild a tenant's overview counters from its items and print the overview they give.

The overview reads counters that every counted change updates. A deployment whose tenants were
created before the counters existed runs this once for each tenant; it also repairs counters in
doubt. It reads the whole fleet of the tenant, and changes made while it runs may be missed, so
run it while the tenant is quiet (or run it again).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := a.fleet(cmd.Context())
			if err != nil {
				return err
			}
			o, err := f.Recount(cmd.Context(), args[0])
			if errors.Is(err, domain.ErrNotFound) {
				return errors.New("no tenant " + args[0])
			}
			if err != nil {
				return err
			}
			return a.print(o, overviewColumns)
		},
	}
	cmd.AddCommand(create, recount, a.tenantGetCmd(), a.tenantDeleteCmd())
	return cmd
}

func (a *app) apikeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Issue API keys (directly in the table named by RM_TABLE)"}
	var tenant, role, name string
	create := &cobra.Command{
		Use:   "create --tenant ID --role admin|operator|viewer",
		Short: "Issue an API key; the key is printed once and stored only as a hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := a.fleet(cmd.Context())
			if err != nil {
				return err
			}
			if name == "" {
				name = role + " key"
			}
			k, key, err := f.CreateAPIKey(cmd.Context(), tenant, name, domain.Role(role))
			if errors.Is(err, domain.ErrNotFound) {
				return errors.New("no tenant " + tenant + ": create it with `rmctl tenant create`")
			}
			if err != nil {
				return err
			}
			out := struct {
				domain.APIKey
				Key string `json:"key"`
			}{k, key}
			return a.print(out, cols("ID", "id", "TENANT", "tenantId", "ROLE", "role", "KEY", "key"))
		},
	}
	create.Flags().StringVar(&tenant, "tenant", "", "the tenant the key belongs to")
	create.Flags().StringVar(&role, "role", "", "admin, operator or viewer")
	create.Flags().StringVar(&name, "name", "", "a name to recognise the key by (default: \"<role> key\")")
	_ = create.MarkFlagRequired("tenant")
	_ = create.MarkFlagRequired("role")
	cmd.AddCommand(create)
	return cmd
}

// capacityCmd repairs what the scheduler knows of the agents' active tasks. It works on the table
// directly because it is maintenance of the deployment, run by whoever upgrades it, not
// something a tenant asks for.
func (a *app) capacityCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "capacity", Short: "Maintain the agents' capacity items (directly in the table named by RM_TABLE)"}
	var tenant string
	recount := &cobra.Command{
		Use:   "recount --tenant ID",
		Short: "Count every agent's active tasks again; run it once after upgrading from a version without capacity items",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := a.fleet(cmd.Context())
			if err != nil {
				return err
			}
			n, err := f.RecountCapacities(cmd.Context(), tenant)
			if errors.Is(err, domain.ErrNotFound) {
				return errors.New("no tenant " + tenant)
			}
			if err != nil {
				return err
			}
			out := struct {
				TenantID string `json:"tenantId"`
				Agents   int    `json:"agents"`
			}{tenant, n}
			return a.print(out, cols("TENANT", "tenantId", "AGENTS", "agents"))
		},
	}
	recount.Flags().StringVar(&tenant, "tenant", "", "the tenant whose agents to recount")
	_ = recount.MarkFlagRequired("tenant")
	cmd.AddCommand(recount)
	return cmd
}
