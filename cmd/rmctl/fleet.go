package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

var (
	agentColumns = cols("ID", "id", "HOSTNAME", "hostname", "STATUS", "status", "LAST SEEN", "lastSeenAt", "LABELS", "labels",
		"AGENT", "agentVersion", "RESTIC", "resticVersion", "VERSION", "version")
	tokenColumns  = cols("ID", "id", "DESCRIPTION", "description", "USES", "uses", "MAX", "maxUses", "EXPIRES", "expiresAt", "REVOKED", "revokedAt", "TOKEN", "token")
	healthColumns = cols("REPOSITORY", "repository", "RAW_SIZE", "stats.rawDataSize", "FILES", "stats.fileCount", "SNAPSHOTS", "stats.snapshotsCount",
		"RATIO", "stats.compressionRatio", "LAST_CHECK", "lastCheck.at", "CHECK_OK", "lastCheck.ok", "LOCKS", "locks.count", "STALE", "locks.stale",
		"CHECK_OVERDUE", "checkOverdue")
	healthHistoryColumns = cols("DATE", "date", "RAW_SIZE", "rawDataSize", "FILES", "fileCount", "SNAPSHOTS", "snapshotsCount", "CHECK_OK", "checkOk")
	repositoryColumns    = cols("NAME", "name", "BACKEND", "backend", "LOCATION", "location", "VERSION", "version")
	policyColumns        = cols("ID", "id", "NAME", "name", "ENABLED", "enabled", "REPOSITORY", "repository", "CRON", "schedule.cron",
		"INTERVAL", "schedule.interval", "PATHS", "paths", "VERSION", "version")
	taskColumns = cols("ID", "id", "TYPE", "type", "STATUS", "status", "AGENT", "agentId", "POLICY", "policyId", "ATTEMPT", "attempt",
		"CREATED", "createdAt", "ERROR", "error")
	runColumns = cols("ID", "id", "TYPE", "type", "STATUS", "status", "AGENT", "agentId", "POLICY", "policyId", "STARTED", "startedAt",
		"SNAPSHOT", "summary.snapshotId", "ADDED", "summary.dataAdded", "ERROR", "error")
)

// listFlags are the page-size flag every list command has.
func listFlag(cmd *cobra.Command, max *int) {
	cmd.Flags().IntVar(max, "limit", 0, "list at most this many (default: all)")
}

// setIf sets a query parameter when the value is not empty.
func setIf(q url.Values, name, value string) {
	if value != "" {
		q.Set(name, value)
	}
}

func (a *app) agentsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "agents", Aliases: []string{"agent"}, Short: "List, show and delete agents"}
	var status, label string
	var max int
	list := &cobra.Command{
		Use:   "list",
		Short: "List agents, optionally by status and label (key or key:value)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "status", status)
			setIf(q, "label", label)
			return a.showList(cmd.Context(), "/v1/agents", q, max, agentColumns)
		},
	}
	list.Flags().StringVar(&status, "status", "", "online or offline")
	list.Flags().StringVar(&label, "label", "", "key (has the label) or key:value")
	listFlag(list, &max)
	get := &cobra.Command{
		Use:   "get AGENT_ID",
		Short: "Show an agent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.show(cmd.Context(), "/v1/agents/"+url.PathEscape(args[0]), agentColumns)
		},
	}
	del := &cobra.Command{
		Use:   "delete AGENT_ID",
		Short: "Delete an agent with its queue, assignments and credential (its history stays)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.send(cmd.Context(), http.MethodDelete, "/v1/agents/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	cmd.AddCommand(list, get, del)
	return cmd
}

// show prints one resource.
func (a *app) show(ctx context.Context, path string, columns []column) error {
	c, err := a.api()
	if err != nil {
		return err
	}
	var out map[string]any
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &out); err != nil {
		return err
	}
	return a.print(out, columns)
}

// showList prints up to max items of a listing (0: all of them).
func (a *app) showList(ctx context.Context, path string, query url.Values, max int, columns []column) error {
	c, err := a.api()
	if err != nil {
		return err
	}
	items, err := c.list(ctx, path, query, max)
	if err != nil {
		return err
	}
	return a.print(items, columns)
}

// send makes a change and prints what the API answers, if anything.
func (a *app) send(ctx context.Context, method, path string, body any, columns []column) error {
	c, err := a.api()
	if err != nil {
		return err
	}
	var out map[string]any
	if err := c.do(ctx, method, path, nil, body, &out); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return a.print(out, columns)
}

func (a *app) tokensCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Aliases: []string{"enrollment-tokens"}, Short: "Manage enrollment tokens, with which agents enroll"}
	var description, expiresIn string
	var maxUses, max int
	var labels []string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an enrollment token; the token is printed once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{}
			if description != "" {
				body["description"] = description
			}
			if maxUses != 0 {
				body["maxUses"] = maxUses
			}
			if expiresIn != "" {
				body["expiresIn"] = expiresIn
			}
			if len(labels) > 0 {
				m, err := parseLabels(labels)
				if err != nil {
					return err
				}
				body["labels"] = m
			}
			return a.send(cmd.Context(), http.MethodPost, "/v1/enrollment-tokens", body, tokenColumns)
		},
	}
	create.Flags().StringVar(&description, "description", "", "what the token is for")
	create.Flags().IntVar(&maxUses, "max-uses", 0, "how many agents it may enroll (default 1)")
	create.Flags().StringVar(&expiresIn, "expires-in", "", "how long it is valid, such as 2h or 7d (default 24h)")
	create.Flags().StringArrayVar(&labels, "label", nil, "key=value label for the agents it enrolls (repeatable)")
	list := &cobra.Command{
		Use: "list", Short: "List enrollment tokens", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.showList(cmd.Context(), "/v1/enrollment-tokens", nil, max, tokenColumns)
		},
	}
	listFlag(list, &max)
	revoke := &cobra.Command{
		Use: "revoke TOKEN_ID", Short: "Revoke an enrollment token", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.send(cmd.Context(), http.MethodDelete, "/v1/enrollment-tokens/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func (a *app) repositoriesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "repositories", Aliases: []string{"repository", "repos"}, Short: "Manage repositories (names, backends and locations; never secrets)"}
	var backend, location, description string
	var max, overdueDays int
	create := &cobra.Command{
		Use:   "create NAME --backend BACKEND --location LOCATION",
		Short: "Create a repository; its password stays in each agent's configuration under NAME",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"name": args[0], "backend": backend, "location": location}
			if description != "" {
				body["description"] = description
			}
			if overdueDays != 0 {
				body["checkOverdueAfterDays"] = overdueDays
			}
			return a.send(cmd.Context(), http.MethodPost, "/v1/repositories", body, repositoryColumns)
		},
	}
	create.Flags().StringVar(&backend, "backend", "", strings.Join(backendNames(), ", "))
	create.Flags().StringVar(&location, "location", "", "restic's repository string, such as s3:s3.amazonaws.com/bucket/restic")
	create.Flags().StringVar(&description, "description", "", "what the repository is for")
	create.Flags().IntVar(&overdueDays, "check-overdue-after-days", 0, "days without a successful check before it is overdue (default 7)")
	_ = create.MarkFlagRequired("backend")
	_ = create.MarkFlagRequired("location")
	list := &cobra.Command{
		Use: "list", Short: "List repositories", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.showList(cmd.Context(), "/v1/repositories", nil, max, repositoryColumns)
		},
	}
	listFlag(list, &max)
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a repository", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.show(cmd.Context(), "/v1/repositories/"+url.PathEscape(args[0]), repositoryColumns)
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a repository no policy uses", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.send(cmd.Context(), http.MethodDelete, "/v1/repositories/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	health := &cobra.Command{
		Use: "health NAME", Short: "Show a repository's size, last check, locks and daily history", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.showHealth(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(create, list, get, health, del)
	return cmd
}

// showHealth prints a repository's health: as JSON, or its current state and then its history,
// one row a day.
func (a *app) showHealth(ctx context.Context, name string) error {
	c, err := a.api()
	if err != nil {
		return err
	}
	var out map[string]any
	if err := c.do(ctx, http.MethodGet, "/v1/repositories/"+url.PathEscape(name)+"/health", nil, nil, &out); err != nil {
		return err
	}
	if a.output == "json" {
		return a.print(out, nil)
	}
	if err := a.print(out, healthColumns); err != nil {
		return err
	}
	var days []map[string]any
	if list, ok := out["history"].([]any); ok {
		for _, d := range list {
			if m, ok := d.(map[string]any); ok {
				days = append(days, m)
			}
		}
	}
	if len(days) == 0 {
		return nil
	}
	fmt.Fprintln(a.stdout)
	return writeTable(a.stdout, days, healthHistoryColumns)
}

func backendNames() []string {
	out := make([]string, len(domain.Backends))
	for i, b := range domain.Backends {
		out[i] = string(b)
	}
	return out
}

func (a *app) overviewCmd() *cobra.Command {
	return &cobra.Command{
		Use: "overview", Short: "The tenant at a glance: agents, last day's runs, overdue policies", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.show(cmd.Context(), "/v1/overview", overviewColumns)
		},
	}
}

var overviewColumns = cols("AGENTS", "agents.total", "ONLINE", "agents.online", "OFFLINE", "agents.offline",
	"BACKING OFF", "agents.backingOff", "SUCCEEDED 24H", "runs.succeeded", "FAILED 24H", "runs.failed", "RUNNING", "runs.running",
	"OVERDUE", "overdueSlots")

// parseLabels reads --label flags of the form key=value.
func parseLabels(labels []string) (map[string]string, error) {
	m := map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("--label %q: want key=value", l)
		}
		m[k] = v
	}
	return m, nil
}
