// Package httpapi is restic-monitor's HTTP API: the tenant API under /v1 and the agent API under
// /v1/agent, as net/http handlers. API Gateway reaches them through the Lambda adapter, the local
// stack through a plain http.Server; both put the authenticated principal in the request's
// context, and every handler refuses a request without the principal its route needs.
package httpapi

import (
	"net/http"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Access is who may call a route.
type Access int

const (
	// AccessPublic routes check their own credential (registration's enrollment token).
	AccessPublic Access = iota
	// AccessViewer, AccessOperator and AccessAdmin need an API key with at least that role.
	AccessViewer
	AccessOperator
	AccessAdmin
	// AccessAgent needs an agent's credential.
	AccessAgent
)

func (a Access) String() string {
	return [...]string{"public", "viewer", "operator", "admin", "agent"}[a]
}

// Route is one method and path of the API.
type Route struct {
	Method  string
	Pattern string // net/http pattern path, e.g. /v1/agents/{agentId}
	Access  Access
	handle  func(w http.ResponseWriter, r *http.Request) error
}

// mount registers routes on mux, each behind its access check and the error mapping.
// A route that changes something gets its request's pending audit entry (audit.go).
func mount(mux *http.ServeMux, d Deps, routes []Route) {
	log := d.Log
	for _, rt := range routes {
		target, isAudited := audited(rt)
		mux.HandleFunc(rt.Method+" "+rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := allow(r, rt.Access); err != nil {
				writeError(r.Context(), w, log, err)
				return
			}
			if !isAudited {
				if err := rt.handle(w, r); err != nil {
					writeError(r.Context(), w, log, err)
				}
				return
			}
			r, pa := startAudit(d, r, rt, target)
			w.Header().Set("X-Request-Id", pa.Entry().RequestID)
			rec := &statusRecorder{ResponseWriter: w}
			if err := rt.handle(rec, r); err != nil {
				writeError(r.Context(), rec, log, err)
			}
			finishAudit(d, r, pa, rec.status)
		})
	}
	// Anything else under /v1 is a JSON 404 or 405, like every other answer.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(r.Context(), w, log, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such route"})
	})
}

// allow checks the request's principal against a route's access.
func allow(r *http.Request, access Access) error {
	if access == AccessPublic {
		return nil
	}
	p, ok := auth.PrincipalFrom(r.Context())
	if !ok {
		return domain.ErrUnauthorized
	}
	switch access {
	case AccessAgent:
		if p.Kind != auth.KindAgent {
			return domain.ErrForbidden
		}
		return nil
	case AccessViewer, AccessOperator, AccessAdmin:
		need := map[Access]domain.Role{AccessViewer: domain.RoleViewer, AccessOperator: domain.RoleOperator, AccessAdmin: domain.RoleAdmin}[access]
		if p.Kind != auth.KindAPIKey || !p.Role.Allows(need) {
			return domain.ErrForbidden
		}
		return nil
	}
	return domain.ErrForbidden
}

// principal returns the request's principal; allow has already checked it is there.
func principal(r *http.Request) auth.Principal {
	p, _ := auth.PrincipalFrom(r.Context())
	return p
}

// pathID reads an ID path parameter, refusing anything that is not an ID before any store call.
func pathID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if !domain.ValidID(id) {
		return "", fieldError(name, "not a valid ID")
	}
	return id, nil
}
