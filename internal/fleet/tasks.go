package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Start windows of a task asked to run now: it expires when its agent has not started it within.
const (
	DefaultStartWithin = time.Hour
	MaxStartWithin     = 7 * 24 * time.Hour
)

// TaskRequest asks for a task to run now.
type TaskRequest struct {
	Type    domain.TaskType
	AgentID string
	// PolicyID is required for backup and forget (the paths, the retention); for the other
	// types it may name the repository instead of Repository.
	PolicyID   string
	Repository string
	Params     domain.TaskParams
	// StartWithin is how long the agent has to start the task (a duration such as 30m or 2h).
	StartWithin string
}

// paramsFor says which TaskParams fields each task type reads.
var paramsFor = map[domain.TaskType][]string{
	domain.TaskRestore: {"snapshotId", "includePaths", "target", "verify"},
	domain.TaskLs:      {"snapshotId", "path"},
	domain.TaskForget:  {"prune"},
	domain.TaskCheck:   {"readDataSubset"},
}

// setParams names the TaskParams fields that are set, in the order the message lists them.
func setParams(tp domain.TaskParams) []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"snapshotId", tp.SnapshotID != ""}, {"includePaths", len(tp.IncludePaths) > 0}, {"target", tp.Target != ""},
		{"verify", tp.Verify}, {"path", tp.Path != ""}, {"prune", tp.Prune}, {"readDataSubset", tp.ReadDataSubset != ""},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// RunTask creates a task that runs now, then sends it to the agent's queue. The task is returned
// as it stands afterwards: queued when the message went out, pending when sending failed (the
// scheduler sends pending tasks on its next tick), failed when it can never be sent.
func (s *Service) RunTask(ctx context.Context, tenantID string, req TaskRequest) (domain.Task, error) {
	t, err := s.newTask(ctx, tenantID, req)
	if err != nil {
		return domain.Task{}, err
	}
	t, err = s.Store.CreateTask(ctx, tenantID, t)
	if err != nil {
		return domain.Task{}, err
	}
	if s.Dispatcher == nil {
		return t, nil
	}
	res := s.Dispatcher.Send(ctx, []domain.Task{t})
	if len(res) == 1 && res[0].Err != nil && !res[0].Failed {
		s.log().WarnContext(ctx, "task left pending for the scheduler", "tenant_id", tenantID, "agent_id", t.AgentID, "task_id", t.ID, "error", res[0].Err)
	}
	if len(res) == 1 && res[0].Queued {
		// The agent may already have picked it up; the stored task says where it is now.
		t.Status = domain.TaskQueued
	}
	stored, err := s.Store.GetTask(ctx, tenantID, t.ID)
	if err != nil {
		return t, nil
	}
	return stored, nil
}

// newTask checks a request, reporting every problem at once, and builds its pending task.
func (s *Service) newTask(ctx context.Context, tenantID string, req TaskRequest) (domain.Task, error) {
	var p problems
	if !req.Type.Valid() {
		p.add("type", "must be one of %s", domain.TaskTypeNames)
	}
	if !domain.ValidID(req.AgentID) {
		p.add("agentId", "must be an agent ID")
	} else if _, err := s.Store.GetAgent(ctx, tenantID, req.AgentID); errors.Is(err, domain.ErrNotFound) {
		p.add("agentId", "no agent %s", req.AgentID)
	} else if err != nil {
		return domain.Task{}, err
	}
	var policy *domain.Policy
	switch {
	case req.PolicyID == "":
		if req.Type == domain.TaskBackup || req.Type == domain.TaskForget {
			p.add("policyId", "a %s runs a policy: name it", req.Type)
		}
	case !domain.ValidID(req.PolicyID):
		p.add("policyId", "must be a policy ID")
	default:
		pol, err := s.Store.GetPolicy(ctx, tenantID, req.PolicyID)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			p.add("policyId", "no policy %s", req.PolicyID)
		case err != nil:
			return domain.Task{}, err
		default:
			policy = &pol
		}
	}
	repository := req.Repository
	switch {
	case policy != nil && repository != "" && repository != policy.Repository:
		p.add("repository", "policy %s uses repository %q: leave repository out or name that one", policy.ID, policy.Repository)
	case policy != nil:
		repository = policy.Repository
	case repository == "" && req.PolicyID == "":
		p.add("repository", "name the repository, or a policy that uses it")
	case repository != "" && !domain.ValidName(repository):
		p.add("repository", "must name a repository (3–100 letters, digits, '-', '_')")
	case repository != "":
		_, err := s.Store.GetRepository(ctx, tenantID, repository)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			p.add("repository", "no repository named %q", repository)
		case err != nil:
			return domain.Task{}, err
		}
	}
	if req.Type.Valid() {
		allowed := map[string]bool{}
		for _, name := range paramsFor[req.Type] {
			allowed[name] = true
		}
		for _, name := range setParams(req.Params) {
			if !allowed[name] {
				p.add("params."+name, "a %s task does not take %s", req.Type, name)
			}
		}
	}
	// A backup runs on the agents the policy is assigned to; the backup slot exists exactly
	// while the policy is assigned to the agent.
	if req.Type == domain.TaskBackup && policy != nil && domain.ValidID(req.AgentID) {
		_, err := s.Store.GetSlot(ctx, tenantID, policy.ID, req.AgentID, domain.SlotBackup)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			p.add("agentId", "policy %s is not assigned to agent %s: assign it first", policy.ID, req.AgentID)
		case err != nil:
			return domain.Task{}, err
		}
	}
	window := DefaultStartWithin
	if req.StartWithin != "" {
		d, err := domain.ParseDuration(req.StartWithin)
		switch {
		case err != nil:
			p.add("startWithin", "not a duration such as 30m, 2h or 1d")
		case d < time.Minute || d > MaxStartWithin:
			p.add("startWithin", "must be between 1m and 7d")
		default:
			window = d
		}
	}
	now := s.now()
	t := domain.Task{
		ID: domain.NewID(now), TenantID: tenantID, AgentID: req.AgentID, PolicyID: req.PolicyID, Repository: repository,
		Type: req.Type, Status: domain.TaskPending, Params: req.Params, Attempt: 1, MaxRetries: domain.DefaultMaxRetries,
		NotBefore: now, Deadline: now.Add(window), Trigger: "operator", CreatedAt: now, UpdatedAt: now,
	}
	if policy != nil {
		t.MaxRetries = policy.Retries()
	}
	if len(p) > 0 {
		// Report what the task's own rules say of its parameters (a restore's target, say) in
		// the same answer; its other fields were checked above.
		var ve *domain.ValidationError
		if errors.As(t.Validate(), &ve) {
			for _, f := range ve.Fields {
				if strings.HasPrefix(f.Field, "params.") && !slices.ContainsFunc(p, func(g domain.FieldError) bool { return g.Field == f.Field }) {
					p = append(p, f)
				}
			}
		}
		return domain.Task{}, p.err()
	}
	if err := t.Validate(); err != nil {
		return domain.Task{}, err
	}
	return t, nil
}

// CancelTask cancels a task that has not finished. A task that has not started is never run:
// the agent refuses to start a cancelled task when its message arrives. A running task is
// marked cancelled at once; its agent learns of it when it next reports on the task, and
// interrupts restic. A finished task cannot be cancelled (*domain.TransitionError).
func (s *Service) CancelTask(ctx context.Context, tenantID, taskID string) (domain.Task, error) {
	now := s.now()
	t, err := s.Store.TransitionTask(ctx, tenantID, taskID, domain.TaskCancelled, func(t *domain.Task) {
		t.FinishedAt = &now
		t.NextRetryAt = nil
		t.Error = "cancelled by an operator"
	})
	if err != nil {
		return domain.Task{}, fmt.Errorf("cancel task %s: %w", taskID, err)
	}
	return t, nil
}
