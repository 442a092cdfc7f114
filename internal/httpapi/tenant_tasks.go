package httpapi

import (
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
	t, err := h.fleet.RunTask(r.Context(), tenantOf(r), fleet.TaskRequest{
		Type: b.Type, AgentID: b.AgentID, PolicyID: b.PolicyID, Repository: b.Repository, Params: b.Params, StartWithin: b.StartWithin,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/tasks/"+t.ID)
	writeJSON(w, http.StatusCreated, t)
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
			return f, store.Page{}, fieldError("type", "must be one of backup, forget, prune, check, restore, unlock, snapshots")
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
	q, err := queryParams(r, "agentId", "status", "type", "from", "to", "limit", "cursor")
	if err != nil {
		return err
	}
	f, page, err := taskFilter(q)
	if err != nil {
		return err
	}
	if f.AgentID, err = q.id("agentId"); err != nil {
		return err
	}
	tasks, next, err := h.d.Store.ListTasks(r.Context(), tenantOf(r), f, page)
	if err != nil {
		return err
	}
	writeList(w, tasks, next)
	return nil
}

func (h taskHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "taskId")
	if err != nil {
		return err
	}
	t, err := h.d.Store.GetTask(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (h taskHandlers) cancel(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "taskId")
	if err != nil {
		return err
	}
	t, err := h.fleet.CancelTask(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
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
	q, err := queryParams(r, "agentId", "policyId", "status", "since", "limit", "cursor")
	if err != nil {
		return err
	}
	f, page, err := runFilter(q)
	if err != nil {
		return err
	}
	if f.AgentID, err = q.id("agentId"); err != nil {
		return err
	}
	runs, next, err := h.d.Store.ListRuns(r.Context(), tenantOf(r), f, page)
	if err != nil {
		return err
	}
	writeList(w, runs, next)
	return nil
}

func (h runHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "runId")
	if err != nil {
		return err
	}
	run, err := h.d.Store.GetRun(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, run)
	return nil
}

func (h runHandlers) logs(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "runId")
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
	if page.Limit == 0 || page.Limit > MaxLogPage {
		page.Limit = MaxLogPage
	}
	if _, err := h.d.Store.GetRun(r.Context(), tenantOf(r), id); err != nil {
		return err
	}
	chunks, next, err := h.d.Store.ListLog(r.Context(), tenantOf(r), id, page)
	if err != nil {
		return err
	}
	writeList(w, chunks, next)
	return nil
}
