package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// agentHandlers serve /v1/agents.
type agentHandlers struct {
	d     Deps
	fleet *fleet.Service
}

func (h agentHandlers) list(w http.ResponseWriter, r *http.Request) error {
	q, err := queryParams(r, "status", "label", "limit", "cursor")
	if err != nil {
		return err
	}
	var f store.AgentFilter
	if s := domain.AgentStatus(q.get("status")); s != "" {
		if !s.Valid() {
			return fieldError("status", "must be online or offline")
		}
		f.Status = s
	}
	if l := q.get("label"); l != "" {
		key, value, _ := strings.Cut(l, ":")
		probe := domain.Agent{Labels: map[string]string{key: value}}
		if err := labelsOnly(probe); err != nil {
			return fieldError("label", "must be key or key:value, with a valid label key and value")
		}
		f.LabelKey, f.LabelValue = key, value
	}
	page, err := q.page()
	if err != nil {
		return err
	}
	agents, next, err := h.d.Store.ListAgents(r.Context(), tenantOf(r), f, page)
	if err != nil {
		return err
	}
	writeList(w, agents, next)
	return nil
}

// labelsOnly checks an agent's labels with the domain's rules and nothing else.
func labelsOnly(a domain.Agent) error {
	var ve *domain.ValidationError
	if !errors.As(a.Validate(), &ve) {
		return nil
	}
	for _, f := range ve.Fields {
		if strings.HasPrefix(f.Field, "labels") {
			return ve
		}
	}
	return nil
}

func (h agentHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	a, err := h.d.Store.GetAgent(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// agentPatch is the part of an agent an operator writes, and so the document a merge patch of
// an agent applies to.
type agentPatch struct {
	Labels  map[string]string `json:"labels,omitempty"`
	Limits  domain.Limits     `json:"limits"`
	Version int64             `json:"version"`
}

func (h agentHandlers) patch(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	a, err := h.d.Store.GetAgent(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	var change agentPatch
	if err := decodeMergePatch(r, agentPatch{Labels: a.Labels, Limits: a.Limits, Version: a.Version}, &change); err != nil {
		return err
	}
	updated, err := h.fleet.UpdateAgent(r.Context(), tenantOf(r), id, fleet.AgentChange{Labels: change.Labels, Limits: change.Limits, Version: change.Version})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, updated)
	return nil
}

func (h agentHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	if err := h.fleet.DeleteAgent(r.Context(), tenantOf(r), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h agentHandlers) policies(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	q, err := queryParams(r, "limit", "cursor")
	if err != nil {
		return err
	}
	page, err := q.page()
	if err != nil {
		return err
	}
	policies, next, err := h.fleet.AgentPolicies(r.Context(), tenantOf(r), id, page)
	if err != nil {
		return err
	}
	writeList(w, policies, next)
	return nil
}

// requireAgent answers 404 for an agent the tenant does not have, rather than an empty list of
// its tasks, runs or snapshots: another tenant's agent and a mistyped ID both look missing.
func (h agentHandlers) requireAgent(r *http.Request, id string) error {
	_, err := h.d.Store.GetAgent(r.Context(), tenantOf(r), id)
	return err
}

func (h agentHandlers) tasks(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	q, err := queryParams(r, "status", "type", "from", "to", "limit", "cursor")
	if err != nil {
		return err
	}
	f, page, err := taskFilter(q)
	if err != nil {
		return err
	}
	if err := h.requireAgent(r, id); err != nil {
		return err
	}
	f.AgentID = id
	tasks, next, err := h.d.Store.ListTasks(r.Context(), tenantOf(r), f, page)
	if err != nil {
		return err
	}
	writeList(w, tasks, next)
	return nil
}

func (h agentHandlers) runs(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	q, err := queryParams(r, "policyId", "status", "since", "limit", "cursor")
	if err != nil {
		return err
	}
	f, page, err := runFilter(q)
	if err != nil {
		return err
	}
	if err := h.requireAgent(r, id); err != nil {
		return err
	}
	f.AgentID = id
	runs, next, err := h.d.Store.ListRuns(r.Context(), tenantOf(r), f, page)
	if err != nil {
		return err
	}
	writeList(w, runs, next)
	return nil
}

func (h agentHandlers) snapshots(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	q, err := queryParams(r, "limit", "cursor")
	if err != nil {
		return err
	}
	page, err := q.page()
	if err != nil {
		return err
	}
	if err := h.requireAgent(r, id); err != nil {
		return err
	}
	snaps, next, err := h.d.Store.ListSnapshots(r.Context(), tenantOf(r), id, page)
	if err != nil {
		return err
	}
	writeList(w, snaps, next)
	return nil
}
