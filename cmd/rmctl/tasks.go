package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) tasksCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tasks", Aliases: []string{"task"}, Short: "Run tasks now, list, show and cancel them"}

	var typ, agent, policy, repository, snapshot, target, subset, startWithin, lsPath string
	var includes []string
	var verify, prune bool
	run := &cobra.Command{
		Use:   "run --type TYPE --agent AGENT_ID [--policy POLICY | --repository NAME]",
		Short: "Run a task now: backup, forget, prune, check, restore, unlock, snapshots or ls",
		Long: `Run a task now on one agent.

  backup     --policy (assigned to the agent)
  forget     --policy (its retention) [--prune]
  check      --repository or --policy [--read-data-subset 1/5]
  prune, unlock, snapshots   --repository or --policy
  restore    --repository or --policy --snapshot ID|latest [--target DIR] [--include PATH]... [--verify]
  ls         --repository or --policy --snapshot ID [--path DIR]`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"type": typ, "agentId": agent}
			if policy != "" {
				id, err := a.policyID(cmd.Context(), policy)
				if err != nil {
					return err
				}
				body["policyId"] = id
			}
			setBody(body, "repository", repository)
			setBody(body, "startWithin", startWithin)
			params := map[string]any{}
			setBody(params, "snapshotId", snapshot)
			setBody(params, "target", target)
			setBody(params, "readDataSubset", subset)
			setBody(params, "path", lsPath)
			if len(includes) > 0 {
				params["includePaths"] = includes
			}
			if verify {
				params["verify"] = true
			}
			if prune {
				params["prune"] = true
			}
			if len(params) > 0 {
				body["params"] = params
			}
			return a.send(cmd.Context(), http.MethodPost, "/v1/tasks", body, taskColumns)
		},
	}
	f := run.Flags()
	f.StringVar(&typ, "type", "", "backup, forget, prune, check, restore, unlock, snapshots or ls")
	f.StringVar(&lsPath, "path", "", "ls: the directory of the snapshot to list (default /)")
	f.StringVar(&agent, "agent", "", "the agent that runs it")
	f.StringVar(&policy, "policy", "", "the policy, by ID or name")
	f.StringVar(&repository, "repository", "", "the repository, when no policy is given")
	f.StringVar(&snapshot, "snapshot", "", "restore, ls: the snapshot ID, or latest")
	f.StringVar(&target, "target", "", "restore: the absolute directory to restore into (default: a new temporary directory)")
	f.StringArrayVar(&includes, "include", nil, "restore: only this path (repeatable)")
	f.BoolVar(&verify, "verify", false, "restore: verify the restored files")
	f.BoolVar(&prune, "prune", false, "forget: prune afterwards")
	f.StringVar(&subset, "read-data-subset", "", "check: restic's --read-data-subset, such as 1/5 or 10%")
	f.StringVar(&startWithin, "start-within", "", "how long the agent has to start it, such as 30m (default 1h)")
	_ = run.MarkFlagRequired("type")
	_ = run.MarkFlagRequired("agent")

	var status, from, to string
	var max int
	list := &cobra.Command{
		Use: "list", Short: "List tasks, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "agentId", agent)
			setIf(q, "status", status)
			setIf(q, "type", typ)
			setIf(q, "from", from)
			setIf(q, "to", to)
			return a.showList(cmd.Context(), "/v1/tasks", q, max, taskColumns)
		},
	}
	lf := list.Flags()
	lf.StringVar(&agent, "agent", "", "only this agent's")
	lf.StringVar(&status, "status", "", "only in this state (pending, queued, running, succeeded, failed, ...)")
	lf.StringVar(&typ, "type", "", "only of this type")
	lf.StringVar(&from, "from", "", "created at or after this RFC 3339 time")
	lf.StringVar(&to, "to", "", "created at or before this RFC 3339 time")
	listFlag(list, &max)

	get := &cobra.Command{
		Use: "get TASK_ID", Short: "Show a task with its attempts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.show(cmd.Context(), "/v1/tasks/"+url.PathEscape(args[0]), taskColumns)
		},
	}
	cancel := &cobra.Command{
		Use:   "cancel TASK_ID",
		Short: "Cancel a task; a running one stops when its agent next reports on it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.send(cmd.Context(), http.MethodPost, "/v1/tasks/"+url.PathEscape(args[0])+"/cancel", nil, taskColumns)
		},
	}
	cmd.AddCommand(run, list, get, cancel)
	return cmd
}

func setBody(m map[string]any, key, value string) {
	if value != "" {
		m[key] = value
	}
}

func (a *app) runsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "runs", Aliases: []string{"run"}, Short: "List and show runs"}
	var agent, policy, status, since string
	var max int
	list := &cobra.Command{
		Use: "list", Short: "List runs, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "agentId", agent)
			setIf(q, "status", status)
			setIf(q, "since", since)
			if policy != "" {
				id, err := a.policyID(cmd.Context(), policy)
				if err != nil {
					return err
				}
				q.Set("policyId", id)
			}
			return a.showList(cmd.Context(), "/v1/runs", q, max, runColumns)
		},
	}
	lf := list.Flags()
	lf.StringVar(&agent, "agent", "", "only this agent's")
	lf.StringVar(&policy, "policy", "", "only this policy's, by ID or name")
	lf.StringVar(&status, "status", "", "only with this outcome (succeeded, partial, failed, ...)")
	lf.StringVar(&since, "since", "", "started at or after this RFC 3339 time")
	listFlag(list, &max)
	get := &cobra.Command{
		Use: "get RUN_ID", Short: "Show a run with restic's summary", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.show(cmd.Context(), "/v1/runs/"+url.PathEscape(args[0]), runColumns)
		},
	}
	cmd.AddCommand(list, get)
	return cmd
}

func (a *app) logsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logs RUN_ID",
		Short: "Print a run's log (with --output json, its chunks)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			chunks, err := c.list(cmd.Context(), "/v1/runs/"+url.PathEscape(args[0])+"/logs", nil, 0)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.print(chunks, nil)
			}
			var b strings.Builder
			for _, chunk := range chunks {
				lines, _ := chunk["lines"].([]any)
				for _, l := range lines {
					fmt.Fprintln(&b, l)
				}
			}
			_, err = fmt.Fprint(a.stdout, b.String())
			return err
		},
	}
}
