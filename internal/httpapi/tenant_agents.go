package httpapi

import (
	"context"
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
	return listFiltered(w, r, agentFilter, h.d.Store.ListAgents, "status", "label", "limit", "cursor")
}

// agentFilter reads the filters of an agent listing.
func agentFilter(q params) (store.AgentFilter, store.Page, error) {
	var f store.AgentFilter
	if s := domain.AgentStatus(q.get("status")); s != "" {
		if !s.Valid() {
			return f, store.Page{}, fieldError("status", "must be online or offline")
		}
		f.Status = s
	}
	if l := q.get("label"); l != "" {
		key, value, _ := strings.Cut(l, ":")
		probe := domain.Agent{Labels: map[string]string{key: value}}
		if err := labelsOnly(probe); err != nil {
			return f, store.Page{}, fieldError("label", "must be key or key:value, with a valid label key and value")
		}
		f.LabelKey, f.LabelValue = key, value
	}
	page, err := q.page()
	return f, page, err
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
	return writeByID(w, r, "agentId", h.d.Store.GetAgent)
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
	recordChange(r, "", agentPatch{Labels: a.Labels, Limits: a.Limits}, agentPatch{Labels: change.Labels, Limits: change.Limits})
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
	if a, err := h.d.Store.GetAgent(r.Context(), tenantOf(r), id); err == nil {
		recordChange(r, "", a, nil)
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
	return listPage(w, r, func(ctx context.Context, tenantID string, page store.Page) ([]domain.Policy, string, error) {
		return h.fleet.AgentPolicies(ctx, tenantID, id, page)
	})
}

// requireAgent answers 404 for an agent the tenant does not have, rather than an empty list of
// its tasks, runs or snapshots: another tenant's agent and a mistyped ID both look missing.
func (h agentHandlers) requireAgent(ctx context.Context, tenantID, id string) error {
	_, err := h.d.Store.GetAgent(ctx, tenantID, id)
	return err
}

func (h agentHandlers) tasks(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	return listFiltered(w, r, taskFilter, func(ctx context.Context, tenantID string, f store.TaskFilter, page store.Page) ([]domain.Task, string, error) {
		if err := h.requireAgent(ctx, tenantID, id); err != nil {
			return nil, "", err
		}
		f.AgentID = id
		return h.d.Store.ListTasks(ctx, tenantID, f, page)
	}, "status", "type", "from", "to", "limit", "cursor")
}

func (h agentHandlers) runs(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	return listFiltered(w, r, runFilter, func(ctx context.Context, tenantID string, f store.RunFilter, page store.Page) ([]domain.Run, string, error) {
		if err := h.requireAgent(ctx, tenantID, id); err != nil {
			return nil, "", err
		}
		f.AgentID = id
		return h.d.Store.ListRuns(ctx, tenantID, f, page)
	}, "policyId", "status", "since", "limit", "cursor")
}

func (h agentHandlers) snapshots(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	return listPage(w, r, func(ctx context.Context, tenantID string, page store.Page) ([]domain.Snapshot, string, error) {
		if err := h.requireAgent(ctx, tenantID, id); err != nil {
			return nil, "", err
		}
		return h.d.Store.ListSnapshots(ctx, tenantID, id, page)
	})
}
