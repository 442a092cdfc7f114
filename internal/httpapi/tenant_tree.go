package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// treeResponse is one page of one directory of a stored snapshot listing.
type treeResponse struct {
	SnapshotID string    `json:"snapshotId"`
	Path       string    `json:"path"`
	ListedPath string    `json:"listedPath"`
	ListedAt   time.Time `json:"listedAt"`
	TaskID     string    `json:"taskId"`
	RunID      string    `json:"runId"`
	Truncated  bool      `json:"truncated"`
	ExpiresAt  time.Time `json:"expiresAt"`
	// Items are the directory's subdirectories by name, then its other entries by name.
	Items      []domain.ListingEntry `json:"items"`
	NextCursor string                `json:"nextCursor,omitempty"`
}

// tree pages through a directory of the listing an ls task stored, without running restic.
func (h agentHandlers) tree(w http.ResponseWriter, r *http.Request) error {
	agentID, err := pathID(r, "agentId")
	if err != nil {
		return err
	}
	q, err := queryParams(r, "path", "limit", "cursor")
	if err != nil {
		return err
	}
	ref := r.PathValue("snapshotId")
	if ref == "latest" || !domain.ValidSnapshotRef(ref) {
		return fieldError("snapshotId", "must be a snapshot ID or a prefix of one (8–64 hexadecimal digits)")
	}
	dir := q.get("path")
	if dir == "" {
		dir = "/"
	}
	if reason := domain.SnapshotPathProblem(dir); reason != "" {
		return fieldError("path", reason)
	}
	page, err := q.page()
	if err != nil {
		return err
	}
	ctx, tenantID := r.Context(), tenantOf(r)
	if err := h.requireAgent(ctx, tenantID, agentID); err != nil {
		return err
	}
	l, err := h.d.Store.GetListing(ctx, tenantID, agentID, ref)
	var ve *domain.ValidationError
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound,
			Message: "no listing is stored for snapshot " + ref + " of this agent: run an ls task (POST /v1/tasks with type \"ls\") first"}
	case errors.As(err, &ve) && len(ve.Fields) > 0:
		return fieldError(ve.Fields[0].Field, ve.Fields[0].Reason)
	case err != nil:
		return err
	}
	if !domain.Within(dir, l.Path) {
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound,
			Message: "the listing of snapshot " + l.SnapshotID + " covers " + l.Path + " only: run an ls task with path " + dir}
	}
	items, next, found, err := h.d.Store.ListDirectory(ctx, tenantID, l, dir, page)
	if err != nil {
		return err
	}
	if !found {
		msg := dir + " is not a directory in the listing of snapshot " + l.SnapshotID
		if l.Truncated {
			msg += " (the listing is truncated: it reached its size cap; list a smaller path)"
		}
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: msg}
	}
	writeJSON(w, http.StatusOK, treeResponse{
		SnapshotID: l.SnapshotID, Path: dir, ListedPath: l.Path, ListedAt: l.ListedAt, TaskID: l.TaskID, RunID: l.RunID,
		Truncated: l.Truncated, ExpiresAt: l.ExpiresAt, Items: items, NextCursor: next,
	})
	return nil
}
