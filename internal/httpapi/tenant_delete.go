package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// tenantPath is the key's own tenant.
const tenantPath = "/v1/tenant"

// tenantHandlers serve /v1/tenant: the tenant of the key, and its deletion.
type tenantHandlers struct {
	d     Deps
	fleet *fleet.Service
}

// tenantView is a tenant as the API shows it.
type tenantView struct {
	domain.Tenant
	Status store.TenantStatus `json:"status"`
	Usage  store.TenantUsage  `json:"usage"`
	// Deletion is there while the tenant is being deleted.
	Deletion *store.TenantDeletion `json:"deletion,omitempty"`
}

func (h tenantHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id := tenantOf(r)
	t, usage, err := h.d.Store.GetTenant(r.Context(), id)
	if err != nil {
		return err
	}
	d, err := h.fleet.TenantDeletion(r.Context(), id)
	if err != nil {
		return err
	}
	v := tenantView{Tenant: t, Status: d.Status, Usage: usage}
	if d.Status == store.TenantDeleting {
		v.Deletion = &d
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// apiDeletionBudget is how long DELETE /v1/tenant works before it answers, within the API's
// own timeout (20 s); the scheduler carries the deletion on.
const apiDeletionBudget = 10 * time.Second

// deletionReserve is the time a request keeps, before its context's deadline, to record its
// progress and answer.
const deletionReserve = 5 * time.Second

// delete deletes the key's tenant: everything it has, its agent queues, and last its API keys,
// this key too. The query must confirm the tenant's ID. What cannot be done in the request is
// done by the scheduler; the answer is 202 until the deletion ends, 200 for the call that ends
// it, and from then on the key no longer exists (401).
func (h tenantHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	q, err := queryParams(r, "confirm")
	if err != nil {
		return err
	}
	id := tenantOf(r)
	switch confirm := q.get("confirm"); {
	case confirm == "":
		return fieldError("confirm", fmt.Sprintf("required: the ID of this key's tenant (%s), to confirm that all of it goes", id))
	case confirm != id:
		return fieldError("confirm", fmt.Sprintf("%q is not the ID of this key's tenant (%s)", quoteField(confirm), id))
	}
	d, err := h.fleet.DeleteTenant(r.Context(), id, deletionDeadline(r.Context()))
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if d.Status == store.TenantDeleted {
		status = http.StatusOK
	}
	writeJSON(w, status, d)
	return nil
}

// deletionDeadline is when a deletion started by a request stops working.
func deletionDeadline(ctx context.Context) time.Time {
	until := time.Now().Add(apiDeletionBudget)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-deletionReserve).Before(until) {
		until = dl.Add(-deletionReserve)
	}
	return until
}

// refuseWhileDeleting guards the routes that add to or change what a tenant has: while the
// tenant is being deleted they answer 409, so that nothing new appears behind the deletion.
// Reading goes on, and so does the deletion itself.
func refuseWhileDeleting(d Deps, routes []Route) []Route {
	for i, rt := range routes {
		if rt.Method == http.MethodGet || rt.Pattern == tenantPath {
			continue
		}
		handle := rt.handle
		routes[i].handle = func(w http.ResponseWriter, r *http.Request) error {
			id := tenantOf(r)
			del, err := d.Store.GetTenantDeletion(r.Context(), id)
			switch {
			case errors.Is(err, domain.ErrNotFound):
				// Its keys outlive the tenant item only while a deletion ends.
			case err != nil:
				return err
			case del.Status == store.TenantActive:
				return handle(w, r)
			}
			return &Error{Status: http.StatusConflict, Code: CodeConflict,
				Message: fmt.Sprintf("tenant %s is being deleted: nothing can be added or changed", id)}
		}
	}
	return routes
}
