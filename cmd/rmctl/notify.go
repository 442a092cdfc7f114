package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

var (
	channelColumns = cols("ID", "id", "NAME", "name", "KIND", "kind", "URL", "url", "EVENTS", "rules.eventTypes", "QUIET", "quiet",
		"ENABLED", "enabled", "VERSION", "version")
	deliveryColumns = cols("ID", "id", "EVENT", "eventType", "EVENTS", "eventCount", "STATUS", "status", "CODE", "statusCode",
		"LATENCY MS", "latencyMs", "ATTEMPTS", "attempts", "ERROR", "error", "AT", "createdAt")
)

func (a *app) notifyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "notify", Short: "Manage notification channels and see their deliveries"}
	channels := &cobra.Command{Use: "channels", Aliases: []string{"channel"}, Short: "Manage notification channels"}
	var max int
	list := &cobra.Command{
		Use: "list", Short: "List notification channels", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.showList(cmd.Context(), "/v1/notification-channels", nil, max, channelColumns)
		},
	}
	listFlag(list, &max)
	var (
		kind, target, name string
		emails, types      []string
		policies, labels   []string
		quiet              bool
	)
	create := &cobra.Command{
		Use:   "create NAME --kind webhook|slack|email --events TYPE,...",
		Short: "Create a notification channel; a webhook's signing secret is printed once",
		Long: `Create a notification channel.

  rmctl notify channels create ops --kind webhook --url https://hooks.example.com/rm --events task.failed,slot.overdue
  rmctl notify channels create chat --kind slack --url https://hooks.slack.com/services/... --events agent.offline --quiet
  rmctl notify channels create oncall --kind email --email ops@example.com --events task.failed --label env=prod

Each email address is sent a confirmation link and receives nothing until it is opened.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name = args[0]
			rules := map[string]any{"eventTypes": types}
			if len(policies) > 0 {
				rules["policyIds"] = policies
			}
			if len(labels) > 0 {
				m, err := parseLabels(labels)
				if err != nil {
					return err
				}
				rules["agentLabels"] = m
			}
			body := map[string]any{"name": name, "kind": kind, "rules": rules, "quiet": quiet}
			switch kind {
			case "slack":
				body["slackUrl"] = target
			case "email":
				body["emails"] = emails
			default:
				body["url"] = target
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			var out map[string]any
			if err := c.do(cmd.Context(), http.MethodPost, "/v1/notification-channels", nil, body, &out); err != nil {
				return err
			}
			if err := a.print(out, channelColumns); err != nil {
				return err
			}
			if s, ok := out["secret"].(string); ok && s != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "signing secret (shown only now): %s\n", s)
			}
			return nil
		},
	}
	create.Flags().StringVar(&kind, "kind", "webhook", "webhook, slack or email")
	create.Flags().StringVar(&target, "url", "", "the webhook or Slack incoming-webhook URL")
	create.Flags().StringSliceVar(&emails, "email", nil, "an address of an email channel (repeat for more)")
	create.Flags().StringSliceVar(&types, "events", nil, "the event types the channel gets, such as task.failed,agent.offline")
	create.Flags().StringSliceVar(&policies, "policy", nil, "only events of this policy ID (repeat for more)")
	create.Flags().StringSliceVar(&labels, "label", nil, "only events of agents with this key=value label (repeat for more)")
	create.Flags().BoolVar(&quiet, "quiet", false, "one message per failure streak and one on recovery")
	_ = create.MarkFlagRequired("events")
	get := &cobra.Command{
		Use: "get CHANNEL", Short: "Show a notification channel", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.show(cmd.Context(), "/v1/notification-channels/"+url.PathEscape(args[0]), channelColumns)
		},
	}
	del := &cobra.Command{
		Use: "delete CHANNEL", Short: "Delete a notification channel and its delivery log", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			return c.do(cmd.Context(), http.MethodDelete, "/v1/notification-channels/"+url.PathEscape(args[0]), nil, nil, nil)
		},
	}
	channels.AddCommand(list, create, get, del)
	test := &cobra.Command{
		Use: "test CHANNEL", Short: "Deliver a synthetic event to a channel now and show the delivery", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			var out map[string]any
			if err := c.do(cmd.Context(), http.MethodPost, "/v1/notification-channels/"+url.PathEscape(args[0])+"/test", nil, nil, &out); err != nil {
				return err
			}
			return a.print(out, deliveryColumns)
		},
	}
	var dmax int
	deliveries := &cobra.Command{
		Use: "deliveries CHANNEL", Short: "List a channel's deliveries, newest first", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.showList(cmd.Context(), "/v1/notification-channels/"+url.PathEscape(args[0])+"/deliveries", nil, dmax, deliveryColumns)
		},
	}
	listFlag(deliveries, &dmax)
	cmd.AddCommand(channels, test, deliveries)
	return cmd
}
