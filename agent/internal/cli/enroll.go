package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/agent/internal/atomicfile"
	"github.com/restic-monitor/restic-monitor/agent/internal/client"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/agent/internal/runner"
)

// EnvToken names the variable enroll reads the token from when --token is not given, so the
// token need not appear on a command line.
const EnvToken = "RM_ENROLL_TOKEN"

func enrollCmd(g *globals) *cobra.Command {
	var apiURL, token, hostname string
	var labels []string
	var force bool
	cmd := &cobra.Command{
		Use:   "enroll --url URL --token TOKEN",
		Short: "Register this host with the control plane and store its credentials",
		Long: `enroll registers this host with the control plane using an enrollment token (rme_...) an
operator created, and writes the agent's credentials (mode 0600) where the configuration's
credentialsFile says. When no configuration file exists yet, it writes one with the API URL and
the platform's default paths; add repositories to it before tasks can run.

The token may also come from the ` + EnvToken + ` environment variable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv(EnvToken)
			}
			if apiURL == "" || token == "" {
				return configError(errors.New("enroll needs --url and --token (or " + EnvToken + ")"))
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return configError(err)
			}
			cfg, err := g.configForEnroll(cmd, apiURL)
			if err != nil {
				return err
			}
			if hostname != "" {
				cfg.Hostname = hostname
			}
			if _, err := os.Stat(cfg.CredentialsFile); err == nil && !force {
				return configError(fmt.Errorf("%s exists: this host is enrolled already (use --force to enroll it again as a new agent)", cfg.CredentialsFile))
			}
			host, err := runner.Hostname(cfg)
			if err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), "warn")
			api, err := client.New(cfg.APIURL, "", g.version)
			if err != nil {
				return configError(err)
			}
			reg, err := api.Register(cmd.Context(), client.RegisterRequest{
				Token: token, Hostname: host, OS: runtime.GOOS, Arch: runtime.GOARCH,
				AgentVersion: g.version, ResticVersion: resticVersion(cmd.Context(), cfg, log), Labels: lbls,
			})
			if err != nil {
				if errors.Is(err, client.ErrUnauthorized) {
					return configError(errors.New("the enrollment token is unknown, revoked, expired or used up"))
				}
				return fmt.Errorf("enroll: %w", err)
			}
			creds := config.Credentials{
				APIURL: cfg.APIURL, TenantID: reg.TenantID, AgentID: reg.AgentID, AgentSecret: reg.Credential,
				QueueURL: reg.QueueURL, Region: reg.Region, EnrolledAt: time.Now().UTC(),
			}
			if err := config.SaveCredentials(cfg.CredentialsFile, creds); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "enrolled %s as agent %s of tenant %s\n", host, reg.AgentID, reg.TenantID)
			fmt.Fprintf(out, "credentials: %s\nconfiguration: %s\n", cfg.CredentialsFile, g.configPath)
			if len(cfg.Repositories) == 0 {
				fmt.Fprintln(out, "next: add the repositories your policies name to the configuration, then run `restic-monitor-agent install`")
			} else {
				fmt.Fprintln(out, "next: restic-monitor-agent install (or restic-monitor-agent run in the foreground)")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&apiURL, "url", "", "the control plane's API URL, such as https://api.example.com")
	f.StringVar(&token, "token", "", "the enrollment token (rme_...)")
	f.StringVar(&hostname, "hostname", "", "the name to enroll under (default: the configuration's hostname, else the machine's)")
	f.StringArrayVar(&labels, "label", nil, "a label key=value for this agent (repeatable)")
	f.BoolVar(&force, "force", false, "enroll again even when credentials exist, as a new agent")
	return cmd
}

// configForEnroll loads the configuration, or writes a new one for apiURL when there is none.
func (g *globals) configForEnroll(cmd *cobra.Command, apiURL string) (*config.Config, error) {
	if _, err := os.Stat(g.configPath); errors.Is(err, os.ErrNotExist) {
		if err := atomicfile.Write(g.configPath, config.Skeleton(apiURL, config.DefaultPaths()), 0o600); err != nil {
			return nil, fmt.Errorf("write configuration: %w", err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "wrote a new configuration to %s\n", g.configPath)
	}
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	if strings.TrimRight(cfg.APIURL, "/") != strings.TrimRight(apiURL, "/") {
		return nil, configError(fmt.Errorf("the configuration %s names the API %s, not %s: change apiUrl there first", g.configPath, cfg.APIURL, apiURL))
	}
	return cfg, nil
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
