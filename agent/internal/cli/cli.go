// Package cli is the restic-monitor-agent command line: enroll, run, install, uninstall,
// status and version. It wires the agent's parts together from the configuration file; the
// parts themselves live in their own packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/internal/restic"
)

// Exit codes beyond 0 (success) and 1 (failure).
const (
	// ExitConfig (EX_CONFIG) means the configuration or the enrollment must be fixed before the
	// agent can run; the systemd unit does not restart the agent for it.
	ExitConfig = 78
)

// ExitError carries the process's exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func configError(err error) error { return &ExitError{Code: ExitConfig, Err: err} }

// Main runs the command line with args and returns the process's exit code.
func Main(ctx context.Context, version string, args []string, stdout, stderr io.Writer) int {
	root := newRoot(version)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "error:", err)
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

type globals struct {
	version    string
	configPath string
}

func newRoot(version string) *cobra.Command {
	g := &globals{version: version}
	root := &cobra.Command{
		Use:   "restic-monitor-agent",
		Short: "Run restic backups for the restic-monitor control plane",
		Long: `restic-monitor-agent runs on every host whose files are backed up. It enrolls with the
restic-monitor control plane once, then long-polls its own task queue, runs restic for each task
(backup, forget, prune, check, restore, unlock, snapshots) and reports progress, logs and results.
Repository passwords and backend credentials stay in its configuration on this host.

Typical set-up:
  restic-monitor-agent enroll --url https://api.example.com --token rme_...
  $EDITOR ` + config.DefaultPaths().Config + `   # add repositories
  restic-monitor-agent install                     # systemd unit or launchd daemon
  restic-monitor-agent status`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", config.DefaultConfigPath(),
		"configuration file (env "+config.EnvConfig+")")
	root.AddCommand(enrollCmd(g), runCmd(g), installCmd(g), uninstallCmd(g), statusCmd(g), versionCmd(g))
	return root
}

func (g *globals) load() (*config.Config, error) {
	c, err := config.Load(g.configPath)
	if err != nil {
		return nil, configError(err)
	}
	return c, nil
}

// newLogger returns the agent's JSON logger at level.
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// resticVersion is the version of the configured restic, or "" with a warning when it does not
// run: tasks then fail with restic's own error, which the control plane shows.
func resticVersion(ctx context.Context, c *config.Config, log *slog.Logger) string {
	v, err := restic.Version(ctx, restic.Options{Binary: c.Restic.Binary})
	if err != nil {
		log.Warn("restic does not run; tasks will fail until it does", "binary", c.Restic.Binary, "error", err.Error())
		return ""
	}
	return v
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent's version (and restic's, when the configuration names one that runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "restic-monitor-agent %s (%s, %s/%s)\n", g.version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			bin := "restic"
			if c, err := config.Load(g.configPath); err == nil {
				bin = c.Restic.Binary
			}
			if v, err := restic.Version(cmd.Context(), restic.Options{Binary: bin}); err == nil {
				fmt.Fprintf(out, "restic %s (%s)\n", v, bin)
			} else {
				fmt.Fprintf(out, "restic: not runnable (%s)\n", bin)
			}
			return nil
		},
	}
}

// statusPath is where the running agent writes its status.
func statusPath(c *config.Config) string { return filepath.Join(c.StateDir, "status.json") }
