package main

import (
	"errors"
	"net/url"

	"github.com/spf13/cobra"
)

// auditColumns are the table view of audit entries.
var auditColumns = cols("TIME", "time", "ACTOR", "actor.id", "NAME", "actor.name", "ACTION", "action",
	"RESOURCE", "resource.type", "ID", "resource.id", "REQUEST", "requestId", "SOURCE", "sourceIp")

// defaultAuditEntries is how many entries rmctl audit shows without --limit or --all.
const defaultAuditEntries = 50

func (a *app) auditCmd() *cobra.Command {
	var resource, actor, since, until string
	var max int
	var all bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log, newest first (the last 50 entries unless --limit or --all)",
		Long: "Show who changed what: every change made through the API and every agent enrollment,\n" +
			"with the fields it changed (secrets shown as [redacted]).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && max > 0 {
				return errors.New("--all and --limit do not go together")
			}
			q := url.Values{}
			setIf(q, "resource", resource)
			setIf(q, "actor", actor)
			setIf(q, "since", since)
			setIf(q, "until", until)
			switch {
			case all:
				max = 0
			case max == 0:
				max = defaultAuditEntries
			}
			return a.showList(cmd.Context(), "/v1/audit", q, max, auditColumns)
		},
	}
	f := cmd.Flags()
	f.StringVar(&resource, "resource", "", "only entries of this resource type (agent, policy, repository, ...) or TYPE/ID")
	f.StringVar(&actor, "actor", "", "only changes made by this API key, agent or enrollment token ID")
	f.StringVar(&since, "since", "", "only entries at or after this RFC 3339 time")
	f.StringVar(&until, "until", "", "only entries at or before this RFC 3339 time")
	f.IntVar(&max, "limit", 0, "show at most this many entries (default 50)")
	f.BoolVar(&all, "all", false, "show every entry")
	return cmd
}
