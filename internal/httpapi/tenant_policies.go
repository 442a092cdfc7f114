package httpapi

import (
	"context"
	"net/http"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// policyHandlers serve /v1/policies.
type policyHandlers struct {
	d     Deps
	fleet *fleet.Service
}

// policyBody is the part of a policy a client writes: the body of create and replace, and the
// document a merge patch applies to. Version is required by replace and patch and refused by
// create.
type policyBody struct {
	Name                string           `json:"name"`
	Description         string           `json:"description,omitempty"`
	Enabled             *bool            `json:"enabled,omitempty"`
	Repository          string           `json:"repository"`
	Paths               []string         `json:"paths"`
	Excludes            []string         `json:"excludes,omitempty"`
	Tags                []string         `json:"tags,omitempty"`
	ExcludeCaches       bool             `json:"excludeCaches,omitempty"`
	OneFileSystem       bool             `json:"oneFileSystem,omitempty"`
	Schedule            domain.Schedule  `json:"schedule"`
	Retention           domain.Retention `json:"retention"`
	ForgetSchedule      *domain.Schedule `json:"forgetSchedule,omitempty"`
	Prune               bool             `json:"prune,omitempty"`
	CheckSchedule       *domain.Schedule `json:"checkSchedule,omitempty"`
	CheckReadDataSubset string           `json:"checkReadDataSubset,omitempty"`
	StatsSchedule       *domain.Schedule `json:"statsSchedule,omitempty"`
	MaxRetries          *int             `json:"maxRetries,omitempty"`
	UploadKbps          int              `json:"uploadKbps,omitempty"`
	DownloadKbps        int              `json:"downloadKbps,omitempty"`
	ReadConcurrency     int              `json:"readConcurrency,omitempty"`
	RunDeadline         string           `json:"runDeadline,omitempty"`
	Version             *int64           `json:"version,omitempty"`
}

// policy converts a body to the policy with ID id. A policy is enabled unless the body says
// otherwise.
func (b policyBody) policy(id string) domain.Policy {
	p := domain.Policy{
		ID: id, Name: b.Name, Description: b.Description, Enabled: b.Enabled == nil || *b.Enabled, Repository: b.Repository,
		Paths: b.Paths, Excludes: b.Excludes, Tags: b.Tags, ExcludeCaches: b.ExcludeCaches, OneFileSystem: b.OneFileSystem,
		Schedule: b.Schedule, Retention: b.Retention, ForgetSchedule: b.ForgetSchedule, Prune: b.Prune,
		CheckSchedule: b.CheckSchedule, CheckReadDataSubset: b.CheckReadDataSubset, StatsSchedule: b.StatsSchedule, MaxRetries: b.MaxRetries,
		UploadKbps: b.UploadKbps, DownloadKbps: b.DownloadKbps, ReadConcurrency: b.ReadConcurrency, RunDeadline: b.RunDeadline,
	}
	if b.Version != nil {
		p.Version = *b.Version
	}
	return p
}

// bodyOf is the writable view of a stored policy.
func bodyOf(p domain.Policy) policyBody {
	enabled, version := p.Enabled, p.Version
	return policyBody{
		Name: p.Name, Description: p.Description, Enabled: &enabled, Repository: p.Repository,
		Paths: p.Paths, Excludes: p.Excludes, Tags: p.Tags, ExcludeCaches: p.ExcludeCaches, OneFileSystem: p.OneFileSystem,
		Schedule: p.Schedule, Retention: p.Retention, ForgetSchedule: p.ForgetSchedule, Prune: p.Prune,
		CheckSchedule: p.CheckSchedule, CheckReadDataSubset: p.CheckReadDataSubset, StatsSchedule: p.StatsSchedule, MaxRetries: p.MaxRetries,
		UploadKbps: p.UploadKbps, DownloadKbps: p.DownloadKbps, ReadConcurrency: p.ReadConcurrency, RunDeadline: p.RunDeadline,
		Version: &version,
	}
}

func (h policyHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var b policyBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Version != nil {
		return &domain.ValidationError{Fields: []domain.FieldError{{Field: "version", Reason: "a new policy has no version; replace an existing one with PUT /v1/policies/{policyId}"}}}
	}
	next := b.policy(domain.NewID(h.d.now()))
	recordChange(r, next.ID, nil, next)
	p, err := h.fleet.CreatePolicy(r.Context(), tenantOf(r), next)
	if err != nil {
		return err
	}
	writeCreated(w, "/v1/policies/"+p.ID, p)
	return nil
}

func (h policyHandlers) list(w http.ResponseWriter, r *http.Request) error {
	return listFiltered(w, r, policyFilter, h.d.Store.ListPolicies, "repository", "limit", "cursor")
}

// policyFilter reads the filters of a policy listing.
func policyFilter(q params) (store.PolicyFilter, store.Page, error) {
	var f store.PolicyFilter
	if f.Repository = q.get("repository"); f.Repository != "" && !domain.ValidName(f.Repository) {
		return f, store.Page{}, fieldError("repository", "not a repository name (3–100 letters, digits, '-', '_')")
	}
	page, err := q.page()
	return f, page, err
}

func (h policyHandlers) get(w http.ResponseWriter, r *http.Request) error {
	return writeByID(w, r, "policyId", h.d.Store.GetPolicy)
}

// versionRequired is the answer to a replace without the version it replaces.
var versionRequired = &domain.ValidationError{Fields: []domain.FieldError{{Field: "version", Reason: "required: the version you read, so a change made meanwhile is not overwritten"}}}

func (h policyHandlers) replace(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "policyId")
	if err != nil {
		return err
	}
	var b policyBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Version == nil {
		return versionRequired
	}
	current, err := h.d.Store.GetPolicy(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	return h.update(w, r, current, b.policy(id))
}

func (h policyHandlers) patch(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "policyId")
	if err != nil {
		return err
	}
	current, err := h.d.Store.GetPolicy(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	var b policyBody
	if err := decodeMergePatch(r, bodyOf(current), &b); err != nil {
		return err
	}
	if b.Version == nil {
		return versionRequired
	}
	return h.update(w, r, current, b.policy(id))
}

func (h policyHandlers) update(w http.ResponseWriter, r *http.Request, current, p domain.Policy) error {
	// The audit log compares what the client writes, so fields the store keeps are left as read.
	next := p
	next.CreatedAt, next.TenantID = current.CreatedAt, current.TenantID
	recordChange(r, "", current, next)
	updated, err := h.fleet.UpdatePolicy(r.Context(), tenantOf(r), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, updated)
	return nil
}

func (h policyHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "policyId")
	if err != nil {
		return err
	}
	q, err := queryParams(r, "force")
	if err != nil {
		return err
	}
	force, err := q.bool("force")
	if err != nil {
		return err
	}
	if current, err := h.d.Store.GetPolicy(r.Context(), tenantOf(r), id); err == nil {
		recordChange(r, "", current, nil)
	}
	if err := h.fleet.DeletePolicy(r.Context(), tenantOf(r), id, force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// assignBody names the agents to assign a policy to.
type assignBody struct {
	AgentIDs []string `json:"agentIds"`
}

func (h policyHandlers) assign(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "policyId")
	if err != nil {
		return err
	}
	var b assignBody
	if err := decode(r, &b); err != nil {
		return err
	}
	recordChange(r, "", nil, b)
	assigned, err := h.fleet.AssignPolicy(r.Context(), tenantOf(r), id, b.AgentIDs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[fleet.Assignment]{Items: assigned})
	return nil
}

func (h policyHandlers) agents(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "policyId")
	if err != nil {
		return err
	}
	return listPage(w, r, func(ctx context.Context, tenantID string, page store.Page) ([]domain.Agent, string, error) {
		return h.fleet.PolicyAgents(ctx, tenantID, id, page)
	})
}

func (h policyHandlers) unassign(w http.ResponseWriter, r *http.Request) error {
	policyID, err := pathID(r, "policyId")
	if err != nil {
		return err
	}
	agentID, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	recordChange(r, "", assignBody{AgentIDs: []string{agentID}}, nil)
	if err := h.d.Store.Unassign(r.Context(), tenantOf(r), policyID, agentID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
