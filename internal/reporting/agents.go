package reporting

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// RegisterRequest is what a host sends to enroll as an agent.
type RegisterRequest struct {
	// Token is the enrollment token, rme_<tokenId>_<secret>.
	Token         string            `json:"token"`
	Hostname      string            `json:"hostname"`
	OS            string            `json:"os"`
	Arch          string            `json:"arch"`
	AgentVersion  string            `json:"agentVersion"`
	ResticVersion string            `json:"resticVersion"`
	Labels        map[string]string `json:"labels,omitempty"`
	Disks         []domain.Disk     `json:"disks,omitempty"`
}

// Registration is a newly enrolled agent and the credential it authenticates with from now on.
type Registration struct {
	Agent domain.Agent
	// Credential is rma_<agentId>_<secret>; only its hash is stored, so it is shown only here.
	Credential string
}

// errBadToken is every enrollment-token failure, whatever its cause, so a caller learns nothing
// about which tokens exist.
var errBadToken = fmt.Errorf("enrollment token unknown, revoked, expired or used up: %w", domain.ErrUnauthorized)

// Register enrolls a host with an enrollment token: it checks the token, creates the agent's
// queues, and stores the agent and its credential while using up one use of the token. The
// token's labels apply unless the host sets the same label itself. When the agent cannot be
// stored, its queues are removed again.
func (s *Service) Register(ctx context.Context, req RegisterRequest) (Registration, error) {
	now := s.now()
	prefix, tokenID, secret, ok := auth.Parse(req.Token)
	if !ok || prefix != auth.PrefixEnrollment {
		return Registration{}, errBadToken
	}
	tok, err := s.Store.LookupEnrollmentToken(ctx, tokenID)
	if errors.Is(err, domain.ErrNotFound) {
		return Registration{}, errBadToken
	}
	if err != nil {
		return Registration{}, err
	}
	if !auth.Matches(secret, tok.SecretHash) || !tok.Usable(now) {
		return Registration{}, errBadToken
	}

	labels := maps.Clone(tok.Labels)
	if len(req.Labels) > 0 {
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, req.Labels)
	}
	agentSecret := auth.NewSecret()
	a := domain.Agent{
		ID: domain.NewID(now), TenantID: tok.TenantID,
		Hostname: req.Hostname, OS: req.OS, Arch: req.Arch, AgentVersion: req.AgentVersion, ResticVersion: req.ResticVersion,
		Labels: labels, Status: domain.AgentOnline, LastSeenAt: &now, Disks: req.Disks,
		Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: s.Settings.heartbeatSeconds(),
		SecretHash: auth.Hash(agentSecret), CreatedAt: now, UpdatedAt: now,
	}
	// Check the agent before creating queues for it.
	if err := a.Validate(); err != nil {
		return Registration{}, err
	}
	q, err := s.Queues.Ensure(ctx, a.TenantID, a.ID)
	if err != nil {
		return Registration{}, fmt.Errorf("register agent: %w", err)
	}
	a.QueueURL = q.URL
	if p := store.AuditFrom(ctx); p != nil {
		p.SetActor(tok.TenantID, domain.AuditActor{Type: domain.ActorEnrollmentToken, ID: tok.ID, Name: tok.Description})
		p.Record(a.ID, nil, a)
	}
	stored, err := s.Store.RegisterAgent(ctx, a.TenantID, tok.ID, a, events.NewAgentEnrolled(now, a))
	if err != nil {
		// The token may have been used up or revoked meanwhile; the queues must not outlive
		// the agent that was never stored, even when the request's context ended.
		if derr := s.Queues.Delete(context.WithoutCancel(ctx), a.TenantID, a.ID); derr != nil {
			s.log().ErrorContext(ctx, "queues of an agent that failed to register were left behind",
				"tenant_id", a.TenantID, "agent_id", a.ID, "error", derr)
		}
		return Registration{}, err
	}
	stored.SecretHash = ""
	s.log().InfoContext(ctx, "agent registered", "tenant_id", a.TenantID, "agent_id", a.ID, "token_id", tok.ID)
	return Registration{Agent: stored, Credential: auth.Format(auth.PrefixAgent, a.ID, agentSecret)}, nil
}

// Heartbeat is an agent's periodic report of its state. It describes the agent as it is now:
// backoffUntil, backoffReason and lastError replace what was reported before (absent clears
// them); versions and disks replace what was reported only when present.
type Heartbeat struct {
	RunningTasks []RunningTask `json:"runningTasks,omitempty"`
	// BackoffUntil asks for no new work before that time; BackoffReason says why.
	BackoffUntil  *Time         `json:"backoffUntil,omitempty"`
	BackoffReason string        `json:"backoffReason,omitempty"`
	AgentVersion  string        `json:"agentVersion,omitempty"`
	ResticVersion string        `json:"resticVersion,omitempty"`
	Disks         []domain.Disk `json:"disks,omitempty"`
	LastError     string        `json:"lastError,omitempty"`
}

// RunningTask is one task an agent is running, with its latest progress.
type RunningTask struct {
	TaskID   string           `json:"taskId"`
	RunID    string           `json:"runId"`
	Progress *domain.Progress `json:"progress,omitempty"`
}

// Heartbeat limits.
const (
	MaxRunningTasks   = 100
	MaxBackoff        = 7 * 24 * time.Hour
	MaxReasonLength   = 500
	MaxLastErrorChars = 4096
)

// HeartbeatReply is the agent as recorded after a heartbeat, and which of the tasks it
// reported running an operator has cancelled since.
type HeartbeatReply struct {
	Agent          domain.Agent
	CancelledTasks []string
}

func (hb Heartbeat) validate(now time.Time) error {
	var p problems
	if len(hb.RunningTasks) > MaxRunningTasks {
		p.add("runningTasks", "at most %d tasks (got %d)", MaxRunningTasks, len(hb.RunningTasks))
	} else {
		seen := map[string]bool{}
		for i, rt := range hb.RunningTasks {
			field := fmt.Sprintf("runningTasks[%d]", i)
			p.checkID(field+".taskId", rt.TaskID)
			p.checkID(field+".runId", rt.RunID)
			if seen[rt.TaskID] {
				p.add(field+".taskId", "task %s is listed twice", rt.TaskID)
			}
			seen[rt.TaskID] = true
			if rt.Progress != nil {
				checkProgress(&p, field+".progress", *rt.Progress)
			}
		}
	}
	if hb.BackoffUntil != nil && hb.BackoffUntil.After(now.Add(MaxBackoff)) {
		p.add("backoffUntil", "must be at most 7 days ahead")
	}
	p.checkText("backoffReason", hb.BackoffReason, MaxReasonLength, false)
	p.checkText("lastError", hb.LastError, MaxLastErrorChars, true)
	return p.err()
}

// Heartbeat records that the agent is alive and what it reported: its running tasks are listed
// on their runs, with their progress, and it is online (again), last seen now — which moves the
// moment it would count as silent. The scheduler, which owns the agent's status events, sees the
// change.
//
// The runs are written before the agent: a scheduler that sees this heartbeat on the agent then
// also sees the tasks it listed, and never counts a task lost because its agent's heartbeats
// seemed to leave it out.
func (s *Service) Heartbeat(ctx context.Context, c Caller, hb Heartbeat) (HeartbeatReply, error) {
	now := s.now()
	if err := hb.validate(now); err != nil {
		return HeartbeatReply{}, err
	}
	cancelled := []string{}
	for _, rt := range hb.RunningTasks {
		stop, err := s.noteRunning(ctx, c, rt, now)
		if err != nil {
			return HeartbeatReply{}, err
		}
		if stop {
			cancelled = append(cancelled, rt.TaskID)
		}
	}
	a, _, err := s.Store.ModifyAgentWith(ctx, c.TenantID, c.AgentID, func(a *domain.Agent) error {
		a.Status, a.LastSeenAt = domain.AgentOnline, &now
		a.HeartbeatIntervalSeconds = s.Settings.heartbeatSeconds()
		a.BackoffUntil, a.BackoffReason = nil, ""
		if hb.BackoffUntil != nil && hb.BackoffUntil.After(now) {
			until := hb.BackoffUntil.UTC()
			a.BackoffUntil, a.BackoffReason = &until, hb.BackoffReason
		}
		a.LastError = hb.LastError
		if hb.AgentVersion != "" {
			a.AgentVersion = hb.AgentVersion
		}
		if hb.ResticVersion != "" {
			a.ResticVersion = hb.ResticVersion
		}
		if hb.Disks != nil {
			a.Disks = hb.Disks
		}
		return nil
	}, func(read, a domain.Agent) []events.Event {
		if sameBackoff(read, a) {
			return nil
		}
		return []events.Event{events.NewAgentBackoff(now, a)}
	})
	if err != nil {
		return HeartbeatReply{}, err
	}
	a.SecretHash = ""
	return HeartbeatReply{Agent: a, CancelledTasks: cancelled}, nil
}

// noteRunning records that a heartbeat at now listed a task as running — on its run, with the
// progress it carried, in the one write the progress always needed — and says whether an
// operator cancelled the task. A task or run that is not the caller's is ignored, as if it did
// not exist; so is a run that is not the task's current one, or no longer runs.
func (s *Service) noteRunning(ctx context.Context, c Caller, rt RunningTask, now time.Time) (cancelled bool, err error) {
	t, err := s.Store.GetTask(ctx, c.TenantID, rt.TaskID)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && t.AgentID != c.AgentID) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if t.RunID == rt.RunID {
		var progress *domain.Progress
		if rt.Progress != nil {
			progress = cleanProgress(*rt.Progress)
		}
		if _, err := s.Store.NoteRunListed(ctx, c.TenantID, c.AgentID, t.ID, rt.RunID, now, progress); err != nil {
			return false, err
		}
	}
	return t.Status == domain.TaskCancelled, nil
}

// QueueOf returns the URL and ARN of the caller's own task queue.
func (s *Service) QueueOf(ctx context.Context, c Caller) (url, arn string, err error) {
	if _, err := s.Store.GetAgent(ctx, c.TenantID, c.AgentID); err != nil {
		return "", "", err
	}
	q, err := s.Queues.Lookup(ctx, c.TenantID, c.AgentID)
	if err != nil {
		return "", "", fmt.Errorf("queue of agent %s: %w", c.AgentID, err)
	}
	return q.URL, q.ARN, nil
}

// Progress limits.
const (
	maxCurrentFiles = 20
	maxPathChars    = 4096
)

func checkProgress(p *problems, field string, pr domain.Progress) {
	if pr.PercentDone < 0 || pr.PercentDone > 1 {
		p.add(field+".percentDone", "must be a fraction between 0 and 1, as restic reports it")
	}
	if len(pr.CurrentFiles) > maxCurrentFiles {
		p.add(field+".currentFiles", "at most %d files (got %d)", maxCurrentFiles, len(pr.CurrentFiles))
		return
	}
	for i, f := range pr.CurrentFiles {
		checkPath(p, fmt.Sprintf("%s.currentFiles[%d]", field, i), f)
	}
}

// checkPath bounds a path the agent reports. File names may hold any character but '/' and NUL,
// so only the length is checked.
func checkPath(p *problems, field, path string) {
	if path == "" || len(path) > maxPathChars {
		p.add(field, "must be 1–%d bytes long", maxPathChars)
	}
}

// cleanProgress is progress as stored: its fraction rounded to a millionth.
func cleanProgress(pr domain.Progress) *domain.Progress {
	pr.PercentDone = roundTo(pr.PercentDone, 1e6)
	return &pr
}

// sameBackoff reports whether two versions of an agent ask for the same backoff; a change is
// announced with agent.backoff.
func sameBackoff(a, b domain.Agent) bool {
	if a.BackoffUntil == nil || b.BackoffUntil == nil {
		return a.BackoffUntil == nil && b.BackoffUntil == nil
	}
	return a.BackoffUntil.Equal(*b.BackoffUntil) && a.BackoffReason == b.BackoffReason
}
