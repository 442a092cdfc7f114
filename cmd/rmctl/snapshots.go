package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

var (
	listedSnapshotColumns = cols("ID", "id", "SHORT", "shortId", "TIME", "time", "HOST", "hostname", "PATHS", "paths")
	treeColumns           = cols("TYPE", "type", "SIZE", "size", "MODE", "mode", "MTIME", "mtime", "PATH", "path")
)

// snapshotsCmd browses snapshots through the listings ls tasks store, and restores from them.
func (a *app) snapshotsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshots", Aliases: []string{"snapshot"}, Short: "List an agent's snapshots, browse their trees and restore files from them"}
	var agent, repository, policy, snapshot, path, cursor, target string
	var includes []string
	var verify, all bool
	var max, limit int

	resolveRepo := func(cmd *cobra.Command, body map[string]any) error {
		if policy != "" {
			id, err := a.policyID(cmd.Context(), policy)
			if err != nil {
				return err
			}
			body["policyId"] = id
		}
		setBody(body, "repository", repository)
		return nil
	}

	list := &cobra.Command{
		Use: "list --agent AGENT_ID", Short: "List the snapshots the agent last reported, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.showList(cmd.Context(), "/v1/agents/"+url.PathEscape(agent)+"/snapshots", nil, max, listedSnapshotColumns)
		},
	}
	listFlag(list, &max)

	ls := &cobra.Command{
		Use:   "ls --agent AGENT_ID --repository NAME --snapshot ID [--path DIR]",
		Short: "Start an ls task: the agent lists the snapshot's tree below --path and stores it for browsing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"type": "ls", "agentId": agent}
			if err := resolveRepo(cmd, body); err != nil {
				return err
			}
			params := map[string]any{"snapshotId": snapshot}
			setBody(params, "path", path)
			body["params"] = params
			return a.send(cmd.Context(), http.MethodPost, "/v1/tasks", body, taskColumns)
		},
	}

	tree := &cobra.Command{
		Use:   "tree --agent AGENT_ID --snapshot ID [--path DIR] [--all | --limit N --cursor C]",
		Short: "Show one directory of a listed snapshot: subdirectories first, then the rest, by name",
		Long: `Show one directory of a snapshot an ls task listed, read from the stored listing (restic
does not run). Without --all one page is shown with its nextCursor; --all follows the cursors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := "/v1/agents/" + url.PathEscape(agent) + "/snapshots/" + url.PathEscape(snapshot) + "/tree"
			q := url.Values{}
			setIf(q, "path", path)
			if all {
				if cursor != "" {
					return errors.New("--all starts at the beginning: leave --cursor out")
				}
				return a.showList(cmd.Context(), p, q, 0, treeColumns)
			}
			if limit != 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			setIf(q, "cursor", cursor)
			c, err := a.api()
			if err != nil {
				return err
			}
			var out map[string]any
			if err := c.do(cmd.Context(), http.MethodGet, p, q, nil, &out); err != nil {
				return err
			}
			if a.output == "table" {
				if items, ok := out["items"].([]any); ok {
					rows := make([]map[string]any, 0, len(items))
					for _, it := range items {
						if m, ok := it.(map[string]any); ok {
							rows = append(rows, m)
						}
					}
					if out["truncated"] == true {
						fmt.Fprintln(cmd.ErrOrStderr(), "note: the listing is truncated (it reached its size cap)")
					}
					if next, _ := out["nextCursor"].(string); next != "" {
						defer fmt.Fprintln(cmd.ErrOrStderr(), "more: --cursor "+next)
					}
					return a.print(rows, treeColumns)
				}
			}
			return a.print(out, treeColumns)
		},
	}
	tf := tree.Flags()
	tf.BoolVar(&all, "all", false, "every entry of the directory, across pages")
	tf.IntVar(&limit, "limit", 0, "entries per page (1–100, default 50)")
	tf.StringVar(&cursor, "cursor", "", "continue where the previous page ended")

	restore := &cobra.Command{
		Use:   "restore --agent AGENT_ID --repository NAME --snapshot ID --include PATH... [--target DIR] [--verify]",
		Short: "Restore selected files and directories of a snapshot",
		Long: `Restore selected files and directories of a snapshot. Paths are taken literally (glob
characters included). Without --target the agent restores into a new temporary directory and
reports it as the run's restoreTarget; a --target must be inside the agent's restoreRoots and
missing or empty, or the agent refuses.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"type": "restore", "agentId": agent}
			if err := resolveRepo(cmd, body); err != nil {
				return err
			}
			params := map[string]any{"snapshotId": snapshot, "includePaths": includes}
			setBody(params, "target", target)
			if verify {
				params["verify"] = true
			}
			body["params"] = params
			return a.send(cmd.Context(), http.MethodPost, "/v1/tasks", body, taskColumns)
		},
	}
	rf := restore.Flags()
	rf.StringArrayVar(&includes, "include", nil, "a path of the snapshot to restore (repeatable)")
	rf.StringVar(&target, "target", "", "the absolute directory to restore into (default: a new temporary directory)")
	rf.BoolVar(&verify, "verify", false, "read the restored files back and compare them")
	_ = restore.MarkFlagRequired("include")

	for _, c := range []*cobra.Command{list, ls, tree, restore} {
		c.Flags().StringVar(&agent, "agent", "", "the agent")
		_ = c.MarkFlagRequired("agent")
	}
	for _, c := range []*cobra.Command{ls, tree, restore} {
		c.Flags().StringVar(&snapshot, "snapshot", "", "the snapshot ID or a unique prefix of it")
		_ = c.MarkFlagRequired("snapshot")
	}
	for _, c := range []*cobra.Command{ls, tree} {
		c.Flags().StringVar(&path, "path", "", "an absolute directory of the snapshot (default /)")
	}
	for _, c := range []*cobra.Command{ls, restore} {
		c.Flags().StringVar(&repository, "repository", "", "the repository")
		c.Flags().StringVar(&policy, "policy", "", "or the policy whose repository it is, by ID or name")
	}
	cmd.AddCommand(list, ls, tree, restore)
	return cmd
}
