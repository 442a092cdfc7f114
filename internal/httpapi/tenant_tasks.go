package httpapi

import (
	"context"
	"net/http"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// taskHandlers serve /v1/tasks.
type taskHandlers struct {
	d     Deps
	fleet *fleet.Service
}

// taskBody asks for a task to run now.
type taskBody struct {
	Type        domain.TaskType   `json:"type"`
	AgentID     string            `json:"agentId"`
	PolicyID    string            `json:"policyId,omitempty"`
	Repository  string            `json:"repository,omitempty"`
	Params      domain.TaskParams `json:"params"`
	StartWithin string            `json:"startWithin,omitempty"`
}

func (h taskHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var b taskBody
	if err := decode(r, &b); err != nil {
		return err
	}
	recordChange(r, "", nil, b)
	t, err := h.fleet.RunTask(r.Context(), tenantOf(r), fleet.TaskRequest{
		Type: b.Type, AgentID: b.AgentID, PolicyID: b.PolicyID, Repository: b.Repository, Params: b.Params, StartWithin: b.StartWithin,
	})
	if err != nil {
		return err
	}
	writeCreated(w, "/v1/tasks/"+t.ID, t)
	return nil
}

// taskFilter reads the filters of a task listing (all but agentId, which routes supply their
// own way).
func taskFilter(q params) (store.TaskFilter, store.Page, error) {
	var f store.TaskFilter
	var err error
	if f.Status, err = q.taskStatus("status"); err != nil {
		return f, store.Page{}, err
	}
	if t := domain.TaskType(q.get("type")); t != "" {
		if !t.Valid() {
			return f, store.Page{}, fieldError("type", "must be one of "+domain.TaskTypeNames)
		}
		f.Type = t
	}
	if f.From, err = q.time("from"); err != nil {
		return f, store.Page{}, err
	}
	if f.To, err = q.time("to"); err != nil {
		return f, store.Page{}, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return f, store.Page{}, fieldError("to", "must not be before from")
	}
	page, err := q.page()
	return f, page, err
}

func (h taskHandlers) list(w http.ResponseWriter, r *http.Request) error {
	return listFiltered(w, r, withAgentID(taskFilter, func(f *store.TaskFilter, id string) { f.AgentID = id }),
		h.d.Store.ListTasks, "agentId", "status", "type", "from", "to", "limit", "cursor")
}

// withAgentID extends the filter read to the agentId parameter, read after the rest, that
// listings across agents take.
func withAgentID[F any](read func(params) (F, store.Page, error), set func(*F, string)) func(params) (F, store.Page, error) {
	return func(q params) (F, store.Page, error) {
		f, page, err := read(q)
		if err != nil {
			return f, page, err
		}
		id, err := q.id("agentId")
		set(&f, id)
		return f, page, err
	}
}

func (h taskHandlers) get(w http.ResponseWriter, r *http.Request) error {
	return writeByID(w, r, "taskId", h.d.Store.GetTask)
}

func (h taskHandlers) cancel(w http.ResponseWriter, r *http.Request) error {
	if id, err := pathID(r, "taskId"); err == nil {
		if t, err := h.d.Store.GetTask(r.Context(), tenantOf(r), id); err == nil {
			recordChange(r, "", taskState{Status: t.Status}, taskState{Status: domain.TaskCancelled})
		}
	}
	return writeByID(w, r, "taskId", h.fleet.CancelTask)
}

// taskState is what cancelling a task changes, for the audit log.
type taskState struct {
	Status domain.TaskStatus `json:"status"`
}

// runHandlers serve /v1/runs.
type runHandlers struct {
	d Deps
}

// MaxLogPage is the most log chunks one page returns: chunks hold up to 256 KiB each, and a
// Lambda response must stay under 6 MB.
const MaxLogPage = 10

// runFilter reads the filters of a run listing (all but agentId).
func runFilter(q params) (store.RunFilter, store.Page, error) {
	var f store.RunFilter
	var err error
	if f.PolicyID, err = q.id("policyId"); err != nil {
		return f, store.Page{}, err
	}
	if f.Status, err = q.taskStatus("status"); err != nil {
		return f, store.Page{}, err
	}
	if f.Since, err = q.time("since"); err != nil {
		return f, store.Page{}, err
	}
	page, err := q.page()
	return f, page, err
}

func (h runHandlers) list(w http.ResponseWriter, r *http.Request) error {
	return listFiltered(w, r, withAgentID(runFilter, func(f *store.RunFilter, id string) { f.AgentID = id }),
		h.d.Store.ListRuns, "agentId", "policyId", "status", "since", "limit", "cursor")
}

func (h runHandlers) get(w http.ResponseWriter, r *http.Request) error {
	return writeByID(w, r, "runId", h.d.Store.GetRun)
}

func (h runHandlers) logs(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "runId")
	if err != nil {
		return err
	}
	return listPage(w, r, func(ctx context.Context, tenantID string, page store.Page) ([]domain.LogChunk, string, error) {
		if page.Limit == 0 || page.Limit > MaxLogPage {
			page.Limit = MaxLogPage
		}
		if _, err := h.d.Store.GetRun(ctx, tenantID, id); err != nil {
			return nil, "", err
		}
		return h.d.Store.ListLog(ctx, tenantID, id, page)
	})
}
