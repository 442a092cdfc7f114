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
	cmd.AddCommand(create, a.tenantGetCmd(), a.tenantDeleteCmd())
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
