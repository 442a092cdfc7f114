package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/agent/internal/client"
	"github.com/restic-monitor/restic-monitor/agent/internal/config"
	"github.com/restic-monitor/restic-monitor/agent/internal/daemon"
	"github.com/restic-monitor/restic-monitor/agent/internal/metrics"
	"github.com/restic-monitor/restic-monitor/agent/internal/runner"
	"github.com/restic-monitor/restic-monitor/agent/internal/spool"
	"github.com/restic-monitor/restic-monitor/internal/queue"
)

func runCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground (what the service runs)",
		Long: `run starts the agent: it heartbeats, long-polls its task queue and runs restic for each
task, within the configured limits. Logs are JSON lines on stderr.

SIGTERM or Ctrl-C stops it in order: no new tasks are taken, running restic gets the configured
shutdownGrace to finish, then it is interrupted, its run is reported as cancelled and the task
goes back to the queue. A second signal interrupts restic at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			creds, err := config.LoadCredentials(cfg.CredentialsFile)
			if err != nil {
				return configError(err)
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.LogLevel)
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()

			apiURL := cfg.APIURL
			api, err := client.New(apiURL, creds.AgentSecret, g.version)
			if err != nil {
				return configError(err)
			}
			sqsClient, err := client.NewQueueClient(ctx, api, creds.Region)
			if err != nil {
				return err
			}
			sp, err := spool.Open(cfg.SpoolDir)
			if err != nil {
				return err
			}
			host, err := runner.Hostname(cfg)
			if err != nil {
				return err
			}
			d := &daemon.Daemon{
				Config: cfg, Credentials: creds, API: api,
				Queue:        queue.NewConsumer(sqsClient, creds.QueueURL),
				Runner:       &runner.Runner{Config: cfg, Hostname: host},
				Spool:        sp,
				Metrics:      metrics.New(),
				Log:          log,
				AgentVersion: g.version, ResticVersion: resticVersion(ctx, cfg, log),
				StatusPath: statusPath(cfg),
			}

			// The first SIGTERM or SIGINT begins an orderly stop; a second one interrupts restic
			// at once.
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sigs)
			go func() {
				n := 0
				for {
					select {
					case sig := <-sigs:
						n++
						log.Info("signal received", "signal", sig.String())
						if n == 1 {
							stop()
						} else {
							d.Interrupt()
						}
					case <-cmd.Context().Done():
						return
					}
				}
			}()

			err = d.Run(ctx)
			if errors.Is(err, daemon.ErrCredentialsRejected) {
				return configError(fmt.Errorf("%w (credentials: %s)", err, cfg.CredentialsFile))
			}
			return err
		},
	}
}
