package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/client"
	"github.com/restic-monitor/restic-monitor/agent/internal/spool"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
)

// flushLoop delivers what waits in the spool: at start (what an earlier process left), then
// every FlushInterval with jitter, and faster while deliveries fail — up to the interval.
func (d *Daemon) flushLoop(ctx context.Context) {
	failures := 0
	for {
		if d.flushSpool(ctx) {
			failures = 0
		} else {
			failures++
		}
		wait := time.Duration(float64(d.FlushInterval) * (0.8 + 0.4*d.rand()))
		if failures > 0 {
			wait = min(wait, schedule.RetryDelay(failures, schedule.RetryPolicy{Base: 2 * time.Second, Factor: 2, Cap: d.FlushInterval}, d.rand))
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// flushSpool tries every spooled item once, in order, and reports whether the spool is empty of
// what it could deliver. Results of tasks this process is still working on are left to them.
func (d *Daemon) flushSpool(ctx context.Context) bool {
	items, err := d.Spool.List()
	if err != nil {
		d.Log.Error("cannot read the spool", "error", err.Error())
		return false
	}
	defer func() { d.Metrics.SetSpooled(d.Spool.Len()) }()
	ok := true
	for _, it := range items {
		if ctx.Err() != nil {
			return false
		}
		if it.Kind == spool.KindResult && d.isRunning(it.TaskID) {
			continue
		}
		delivered, err := d.deliverItem(ctx, it)
		if err != nil {
			d.Log.Warn("spooled item not delivered yet", "key", it.Key, "error", err.Error())
			if !delivered {
				// The API is away; the rest would fail the same way.
				return false
			}
		}
		if delivered {
			_ = d.Spool.Remove(it.Key)
		} else {
			ok = false
		}
	}
	return ok
}

func (d *Daemon) isRunning(taskID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.running[taskID]
	return ok
}

// deliverItem sends one spooled item. delivered is true when the item is done with: stored,
// stored before, or refused for good (kept, it could never be delivered).
func (d *Daemon) deliverItem(ctx context.Context, it spool.Item) (delivered bool, err error) {
	switch it.Kind {
	case spool.KindResult:
		var res client.Result
		if err := it.Decode(&res); err != nil {
			return true, err
		}
		_, err = d.API.Result(ctx, it.TaskID, res)
	case spool.KindLog:
		var chunk client.LogChunk
		if err := it.Decode(&chunk); err != nil {
			return true, err
		}
		_, err = d.API.AppendLog(ctx, it.RunID, chunk)
	default:
		return true, errors.New("unknown spool item kind " + it.Kind)
	}
	switch {
	case err == nil:
		d.Log.Info("delivered a spooled item", "key", it.Key, "task_id", it.TaskID, "run_id", it.RunID)
		return true, nil
	case errors.Is(err, client.ErrUnauthorized):
		return false, err
	case client.Permanent(err):
		// Refused for good (the run was superseded, the task deleted): keeping it would only
		// retry forever.
		d.Log.Warn("the control plane refused a spooled item; dropping it", "key", it.Key, "error", err.Error())
		return true, nil
	}
	d.Metrics.APIError(string(it.Kind))
	return false, err
}

// flushRunLog delivers the spooled log chunks of one run, in order. It stops at the first that
// cannot be delivered yet.
func (d *Daemon) flushRunLog(ctx context.Context, runID string) error {
	items, err := d.Spool.List()
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.Kind != spool.KindLog || it.RunID != runID {
			continue
		}
		delivered, err := d.deliverItem(ctx, it)
		if delivered {
			_ = d.Spool.Remove(it.Key)
			continue
		}
		return err
	}
	return nil
}
