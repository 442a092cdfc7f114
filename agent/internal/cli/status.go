package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/agent/internal/daemon"
	"github.com/restic-monitor/restic-monitor/agent/internal/spool"
)

func statusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the agent is doing now, from its local state",
		Long: `status reads the status file the running agent keeps in its state directory: whether it runs,
the tasks it is running with their progress, whether it backs off, its last heartbeat and error,
and how many results and log chunks wait in the spool for the API. It needs no network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			st, err := daemon.ReadStatus(statusPath(cfg))
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintln(cmd.OutOrStdout(), "the agent has not run on this host yet (no status file in "+cfg.StateDir+")")
				return &ExitError{Code: 3, Err: errors.New("not running")}
			}
			if err != nil {
				return err
			}
			alive := processAlive(st.PID)
			if !alive && st.State != "stopped" {
				st.State = "not running (last seen " + st.State + ")"
			}
			// The spool is read directly: it is the truth even when the agent is not running.
			if sp, err := spool.Open(cfg.SpoolDir); err == nil {
				st.Spooled = sp.Len()
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st, alive, time.Now())
			if !alive {
				return &ExitError{Code: 3, Err: errors.New("not running")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func printStatus(w io.Writer, st daemon.Status, alive bool, now time.Time) {
	ago := func(t time.Time) string { return now.Sub(t).Round(time.Second).String() + " ago" }
	fmt.Fprintf(w, "state:      %s\n", st.State)
	if alive {
		fmt.Fprintf(w, "pid:        %d, up since %s\n", st.PID, st.StartedAt.Local().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "agent:      %s (tenant %s), version %s, restic %s\n", st.AgentID, st.TenantID, st.Version, st.ResticVersion)
	if st.LastHeartbeatAt != nil {
		fmt.Fprintf(w, "heartbeat:  %s\n", ago(*st.LastHeartbeatAt))
	} else {
		fmt.Fprintln(w, "heartbeat:  none yet")
	}
	fmt.Fprintf(w, "tasks:      %d running of at most %d\n", len(st.Running), st.MaxConcurrent)
	for _, t := range st.Running {
		line := fmt.Sprintf("  %s %s on %s, started %s", t.Type, t.TaskID, t.Repository, ago(t.StartedAt))
		if p := t.Progress; p != nil {
			line += fmt.Sprintf(", %.1f%% (%d/%d files", 100*p.PercentDone, p.FilesDone, p.TotalFiles)
			if p.SecondsLeft > 0 {
				line += fmt.Sprintf(", about %s left", (time.Duration(p.SecondsLeft) * time.Second).String())
			}
			line += ")"
		}
		fmt.Fprintln(w, line)
	}
	if st.BackoffUntil != nil && st.BackoffUntil.After(now) {
		fmt.Fprintf(w, "backing off until %s: %s\n", st.BackoffUntil.Local().Format(time.RFC3339), st.BackoffReason)
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", st.LastError)
	}
	fmt.Fprintf(w, "spool:      %d results and log chunks waiting for the API\n", st.Spooled)
}
