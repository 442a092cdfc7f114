package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/agent/internal/service"
)

// stopMargin is the time, beyond the shutdown and interrupt grace periods, the service manager
// gives the agent to report before it kills it.
const stopMargin = 30 * time.Second

func serviceSpec(g *globals, cfg *config.Config, binary string) (service.Spec, error) {
	conf, err := filepath.Abs(g.configPath)
	if err != nil {
		return service.Spec{}, err
	}
	return service.Spec{
		Binary: binary, Config: conf,
		StopTimeout: cfg.ShutdownGrace.D() + cfg.Restic.InterruptGrace.D() + stopMargin,
	}, nil
}

func installCmd(g *globals) *cobra.Command {
	var root, binary string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the agent as a system service (systemd on Linux, launchd on macOS) and start it",
		Long: `install copies this binary to --binary, restricts the configuration and the credentials file to
their owner (mode 0600: they hold repository credentials and the agent's secret), writes a
systemd unit (` + service.DefinitionPath("linux") + `) or a launchd daemon
(` + service.DefinitionPath("darwin") + `) and starts it. Enroll first.

With --root, the configuration and credentials are read from under that directory, the files
are written under it and no service manager is touched: to prepare an image, or to look at
what would be installed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
				return fmt.Errorf("install supports Linux (systemd) and macOS (launchd), not %s", runtime.GOOS)
			}
			cfg, err := g.loadUnder(root)
			if err != nil {
				return err
			}
			if _, err := config.LoadCredentials(withRoot(root, cfg.CredentialsFile)); err != nil {
				return configError(err)
			}
			spec, err := serviceSpec(g, cfg, binary)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			in := service.Installer{Root: root, GOOS: runtime.GOOS, Out: cmd.OutOrStdout()}
			return in.Install(spec, self, []string{spec.Config, cfg.CredentialsFile})
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "install under this directory instead of / (no service is started)")
	cmd.Flags().StringVar(&binary, "binary", config.DefaultPaths().Binary, "where the agent's binary is installed")
	return cmd
}

func uninstallCmd(g *globals) *cobra.Command {
	var root, binary string
	var purge bool
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop and remove the agent's system service and binary",
		Long: `uninstall stops the service and removes its definition and the installed binary. The
configuration, credentials, spool and state stay, unless --purge removes them too (results still
waiting in the spool are then lost).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadUnder(root)
			if err != nil {
				return err
			}
			spec, err := serviceSpec(g, cfg, binary)
			if err != nil {
				return err
			}
			var remove []string
			if purge {
				remove = []string{spec.Config, cfg.CredentialsFile, cfg.SpoolDir, cfg.StateDir}
				if cfg.Restic.CacheDir != "" {
					remove = append(remove, cfg.Restic.CacheDir)
				}
			}
			in := service.Installer{Root: root, GOOS: runtime.GOOS, Out: cmd.OutOrStdout()}
			return in.Uninstall(spec, remove)
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "uninstall from under this directory instead of /")
	cmd.Flags().StringVar(&binary, "binary", config.DefaultPaths().Binary, "where the agent's binary was installed")
	cmd.Flags().BoolVar(&purge, "purge", false, "also remove the configuration, credentials, spool, state and restic cache")
	return cmd
}

// loadUnder reads the configuration the service will use: --config names its path on the
// target system, which lies under root.
func (g *globals) loadUnder(root string) (*config.Config, error) {
	c, err := config.Load(withRoot(root, g.configPath))
	if err != nil {
		return nil, configError(err)
	}
	return c, nil
}

func withRoot(root, p string) string {
	if root == "" {
		return p
	}
	return filepath.Join(root, p)
}
