package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/atomicfile"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// States of the agent, as the status file and `status` show them.
const (
	stateIdle     = "idle"
	stateRunning  = "running"
	stateBackoff  = "backing-off"
	stateStopping = "stopping"
	stateStopped  = "stopped"
)

// Status is what the agent is doing, written to the status file for `restic-monitor-agent
// status`. It holds no secret.
type Status struct {
	PID             int          `json:"pid"`
	Version         string       `json:"version"`
	ResticVersion   string       `json:"resticVersion"`
	TenantID        string       `json:"tenantId"`
	AgentID         string       `json:"agentId"`
	State           string       `json:"state"`
	StartedAt       time.Time    `json:"startedAt"`
	UpdatedAt       time.Time    `json:"updatedAt"`
	MaxConcurrent   int          `json:"maxConcurrentTasks"`
	Running         []StatusTask `json:"running"`
	BackoffUntil    *time.Time   `json:"backoffUntil,omitempty"`
	BackoffReason   string       `json:"backoffReason,omitempty"`
	LastHeartbeatAt *time.Time   `json:"lastHeartbeatAt,omitempty"`
	LastError       string       `json:"lastError,omitempty"`
	Spooled         int          `json:"spooled"`
}

// StatusTask is one running task.
type StatusTask struct {
	TaskID     string           `json:"taskId"`
	RunID      string           `json:"runId,omitempty"`
	Type       domain.TaskType  `json:"type"`
	Repository string           `json:"repository"`
	PolicyID   string           `json:"policyId,omitempty"`
	StartedAt  time.Time        `json:"startedAt"`
	Progress   *domain.Progress `json:"progress,omitempty"`
}

// ReadStatus reads a status file.
func ReadStatus(path string) (Status, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Status{}, fmt.Errorf("read status: %w", err)
	}
	var s Status
	if err := json.Unmarshal(raw, &s); err != nil {
		return Status{}, fmt.Errorf("status file %s: %w", path, err)
	}
	return s, nil
}

func (d *Daemon) setState(s string) {
	d.mu.Lock()
	changed := d.state != s
	d.state = s
	d.mu.Unlock()
	if changed {
		d.markDirty()
		if s == stateStopping || s == stateBackoff {
			d.heartbeatSoon()
		}
	}
}

func (d *Daemon) markDirty() {
	select {
	case d.statusDirty <- struct{}{}:
	default:
	}
}

// statusLoop writes the status file when something changed, at most once a second.
func (d *Daemon) statusLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.statusDirty:
		}
		d.writeStatus()
		if !sleep(ctx, time.Second) {
			return
		}
	}
}

func (d *Daemon) status() Status {
	now := d.now()
	s := Status{
		PID: os.Getpid(), Version: d.AgentVersion, ResticVersion: d.ResticVersion,
		TenantID: d.Credentials.TenantID, AgentID: d.Credentials.AgentID,
		UpdatedAt: now.UTC(), MaxConcurrent: d.slots.max(), Running: []StatusTask{}, Spooled: d.Spool.Len(),
	}
	if until, reason, ok := d.backoff.Until(now); ok {
		u := until.UTC()
		s.BackoffUntil, s.BackoffReason = &u, reason
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s.State, s.StartedAt, s.LastError = d.state, d.startedAt.UTC(), d.lastError
	if s.State == stateRunning && len(d.running) == 0 {
		s.State = stateIdle
	}
	if !d.lastHB.IsZero() {
		hb := d.lastHB.UTC()
		s.LastHeartbeatAt = &hb
	}
	for _, t := range d.running {
		t.mu.Lock()
		st := StatusTask{TaskID: t.msg.TaskID, RunID: t.runID, Type: t.msg.TaskType, Repository: t.msg.Repository,
			PolicyID: t.msg.PolicyID, StartedAt: t.startedAt.UTC()}
		if t.progress != nil {
			p := *t.progress
			st.Progress = &p
		}
		t.mu.Unlock()
		s.Running = append(s.Running, st)
	}
	return s
}

func (d *Daemon) writeStatus() {
	if d.StatusPath == "" {
		return
	}
	raw, err := json.MarshalIndent(d.status(), "", "  ")
	if err != nil {
		return
	}
	if err := atomicfile.Write(d.StatusPath, append(raw, '\n'), 0o644); err != nil {
		d.Log.Warn("cannot write the status file", "path", d.StatusPath, "error", err.Error())
	}
}
