package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/client"
	"github.com/restic-monitor/restic-monitor/agent/internal/runner"
)

// heartbeatLoop reports the agent's state every heartbeat interval (the control plane's, once
// it has said one) and whenever the state changes in a way the scheduler must know: backing
// off, stopping.
func (d *Daemon) heartbeatLoop(ctx context.Context) {
	for {
		d.sendHeartbeat(ctx)
		interval := d.heartbeatInterval()
		// ±10 % jitter keeps a fleet restarted together from beating in step.
		wait := time.Duration(float64(interval) * (0.9 + 0.2*d.rand()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.heartbeatNow:
			t.Stop()
		case <-t.C:
		}
	}
}

func (d *Daemon) heartbeatSoon() {
	select {
	case d.heartbeatNow <- struct{}{}:
	default:
	}
}

func (d *Daemon) heartbeatInterval() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hbInterval()
}

// hbInterval is the interval the control plane asked for, else the configured one. d.mu held.
func (d *Daemon) hbInterval() time.Duration {
	if d.serverHeartbeat > 0 {
		return d.serverHeartbeat
	}
	return d.Config.HeartbeatInterval.D()
}

// heartbeat builds the report of the agent's state now.
func (d *Daemon) heartbeat() client.Heartbeat {
	hb := client.Heartbeat{AgentVersion: d.AgentVersion, ResticVersion: d.ResticVersion, Disks: disks(d.Config.StateDir)}
	if until, reason, ok := d.backoff.Until(d.now()); ok {
		u := until.UTC()
		hb.BackoffUntil, hb.BackoffReason = &u, truncate(reason, 500)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	hb.LastError = truncate(d.lastError, 4096)
	for _, t := range d.running {
		t.mu.Lock()
		if t.runID != "" {
			rt := client.RunningTask{TaskID: t.msg.TaskID, RunID: t.runID}
			if t.progress != nil {
				p := clampProgress(*t.progress)
				rt.Progress = &p
			}
			hb.RunningTasks = append(hb.RunningTasks, rt)
		}
		t.mu.Unlock()
	}
	return hb
}

func (d *Daemon) sendHeartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reply, err := d.API.Heartbeat(ctx, d.heartbeat())
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		d.Metrics.APIError("heartbeat")
		if errors.Is(err, client.ErrUnauthorized) {
			d.fatal(ErrCredentialsRejected)
			return
		}
		d.Log.Warn("heartbeat failed", "error", err.Error())
		return
	}
	d.Metrics.HeartbeatSent()
	d.apply(reply)
}

// apply takes the control plane's settings — its limits lower the agent's own, never raise
// them — and stops the tasks an operator cancelled.
func (d *Daemon) apply(reply client.HeartbeatReply) {
	s := reply.Settings
	d.mu.Lock()
	d.lastHB = d.now()
	if s.HeartbeatIntervalSeconds >= 5 {
		d.serverHeartbeat = time.Duration(s.HeartbeatIntervalSeconds) * time.Second
	}
	d.serverLimits = runner.Limits{UploadKbps: s.Limits.UploadKbps, DownloadKbps: s.Limits.DownloadKbps, CPUQuotaPercent: s.Limits.CPUQuotaPercent}
	limit := d.Config.Limits.MaxConcurrentTasks
	if s.Limits.MaxConcurrentTasks > 0 {
		limit = min(limit, s.Limits.MaxConcurrentTasks)
	}
	var cancel []*task
	for _, id := range reply.CancelledTasks {
		if t, ok := d.running[id]; ok {
			cancel = append(cancel, t)
		}
	}
	d.mu.Unlock()
	if old := d.slots.max(); old != limit {
		d.Log.Info("concurrency limit changed", "max_concurrent_tasks", limit, "local_limit", d.Config.Limits.MaxConcurrentTasks)
	}
	d.slots.setLimit(limit)
	for _, t := range cancel {
		t.log.Info("an operator cancelled the task; interrupting restic")
		t.stop(errOperatorCancel)
	}
	d.markDirty()
}
