package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func (a *app) policiesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policies", Aliases: []string{"policy"}, Short: "Manage backup policies"}
	var file string
	var force bool
	var max int
	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create the policy a YAML (or JSON) file describes, or replace the policy of that name",
		Long: `Create the policy a YAML (or JSON) file describes, or replace the one with its name.
The file holds the policy's fields as the API names them, for example:

  name: nightly
  repository: main
  paths: [/etc, /srv]
  excludes: ["*.tmp"]
  schedule: {cron: "30 2 * * *", timezone: Europe/Berlin, spread: 30m}
  retention: {keepDaily: 7, keepWeekly: 4, keepMonthly: 6}
  forgetSchedule: {cron: "0 4 * * 0"}
  prune: true

"-" reads the file from standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := readPolicyFile(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			name, _ := body["name"].(string)
			if name == "" {
				return fmt.Errorf("%s: the policy needs a name", file)
			}
			existing, err := findPolicy(cmd.Context(), c, name)
			if err != nil {
				return err
			}
			var out map[string]any
			if existing == nil {
				err = c.do(cmd.Context(), http.MethodPost, "/v1/policies", nil, body, &out)
			} else {
				body["version"] = existing["version"]
				err = c.do(cmd.Context(), http.MethodPut, "/v1/policies/"+url.PathEscape(fmt.Sprint(existing["id"])), nil, body, &out)
			}
			if err != nil {
				return err
			}
			return a.print(out, policyColumns)
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "the policy file (- for standard input)")
	_ = apply.MarkFlagRequired("file")
	list := &cobra.Command{
		Use: "list", Short: "List policies", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.showList(cmd.Context(), "/v1/policies", nil, max, policyColumns)
		},
	}
	listFlag(list, &max)
	get := &cobra.Command{
		Use: "get POLICY", Short: "Show a policy, by ID or name", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.policyID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.show(cmd.Context(), "/v1/policies/"+url.PathEscape(id), policyColumns)
		},
	}
	del := &cobra.Command{
		Use: "delete POLICY", Short: "Delete a policy, by ID or name (--force also while it is assigned)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.policyID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			q := url.Values{}
			if force {
				q.Set("force", "true")
			}
			return c.do(cmd.Context(), http.MethodDelete, "/v1/policies/"+url.PathEscape(id), q, nil, nil)
		},
	}
	del.Flags().BoolVar(&force, "force", false, "delete even while the policy is assigned to agents")
	agents := &cobra.Command{
		Use: "agents POLICY", Short: "List the agents a policy is assigned to", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.policyID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.showList(cmd.Context(), "/v1/policies/"+url.PathEscape(id)+"/agents", nil, 0, agentColumns)
		},
	}
	cmd.AddCommand(apply, list, get, del, agents)
	return cmd
}

// readPolicyFile reads a policy from YAML or JSON (JSON is YAML) into the body the API takes.
func readPolicyFile(file string, stdin io.Reader) (map[string]any, error) {
	var raw []byte
	var err error
	if file == "-" {
		raw, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		raw, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, err
	}
	var body map[string]any
	if err := yaml.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if body == nil {
		return nil, fmt.Errorf("%s: empty policy", file)
	}
	return body, nil
}

// findPolicy returns the policy named name, or nil.
func findPolicy(ctx context.Context, c *client, name string) (map[string]any, error) {
	policies, err := c.list(ctx, "/v1/policies", nil, 0)
	if err != nil {
		return nil, err
	}
	for _, p := range policies {
		if p["name"] == name {
			return p, nil
		}
	}
	return nil, nil
}

// policyID resolves a policy given by ID or by name.
func (a *app) policyID(ctx context.Context, ref string) (string, error) {
	if domain.ValidID(ref) {
		return ref, nil
	}
	c, err := a.api()
	if err != nil {
		return "", err
	}
	p, err := findPolicy(ctx, c, ref)
	if err != nil {
		return "", err
	}
	if p == nil {
		return "", errors.New("no policy named " + ref)
	}
	return fmt.Sprint(p["id"]), nil
}

func (a *app) assignCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "assign POLICY AGENT_ID...",
		Short: "Assign a policy (by ID or name) to agents, planning its schedules on each",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.policyID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			var out page
			if err := c.do(cmd.Context(), http.MethodPost, "/v1/policies/"+url.PathEscape(id)+"/agents", nil, map[string]any{"agentIds": args[1:]}, &out); err != nil {
				return err
			}
			if a.output == "json" {
				return a.print(out.Items, nil)
			}
			var rows []map[string]any
			for _, item := range out.Items {
				slots, _ := item["slots"].([]any)
				for _, s := range slots {
					if slot, ok := s.(map[string]any); ok {
						rows = append(rows, slot)
					}
				}
			}
			return a.print(rows, cols("AGENT", "agentId", "KIND", "kind", "NEXT RUN", "nextRunAt"))
		},
	}
}

func (a *app) unassignCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unassign POLICY AGENT_ID",
		Short: "Unassign a policy (by ID or name) from an agent",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.policyID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.send(cmd.Context(), http.MethodDelete, "/v1/policies/"+url.PathEscape(id)+"/agents/"+url.PathEscape(args[1]), nil, nil)
		},
	}
}
