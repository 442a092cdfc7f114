package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// Every request that may change something — every tenant route but GET, and an agent's
// registration — carries a pending audit entry in its context: who (the API key, or the
// enrollment token that registers an agent), the route, the request ID and the source address.
// The handler adds what it changes (recordChange); the store writes the entry in the same
// transaction as the change. Agents' own reports (heartbeats, task progress and results, logs,
// snapshots) change only what the agent owns and are not audited.

// auditTarget says which resource a route's changes are audited under: its type, and the path
// parameter holding its ID ("" when the store learns the ID from the item it creates).
type auditTarget struct {
	resource string
	param    string
}

// auditTargets covers every route that changes something; mount refuses a changing tenant
// route missing here, so a new route cannot go unaudited.
var auditTargets = map[string]auditTarget{
	"PATCH /v1/agents/{agentId}":                          {domain.ResourceAgent, "agentId"},
	"DELETE /v1/agents/{agentId}":                         {domain.ResourceAgent, "agentId"},
	"POST /v1/enrollment-tokens":                          {domain.ResourceEnrollmentToken, ""},
	"DELETE /v1/enrollment-tokens/{tokenId}":              {domain.ResourceEnrollmentToken, "tokenId"},
	"POST /v1/repositories":                               {domain.ResourceRepository, ""},
	"PUT /v1/repositories/{name}":                         {domain.ResourceRepository, "name"},
	"DELETE /v1/repositories/{name}":                      {domain.ResourceRepository, "name"},
	"POST /v1/policies":                                   {domain.ResourcePolicy, ""},
	"PUT /v1/policies/{policyId}":                         {domain.ResourcePolicy, "policyId"},
	"PATCH /v1/policies/{policyId}":                       {domain.ResourcePolicy, "policyId"},
	"DELETE /v1/policies/{policyId}":                      {domain.ResourcePolicy, "policyId"},
	"POST /v1/policies/{policyId}/agents":                 {domain.ResourceAssignment, "policyId"},
	"DELETE /v1/policies/{policyId}/agents/{agentId}":     {domain.ResourceAssignment, "policyId"},
	"POST /v1/tasks":                                      {domain.ResourceTask, ""},
	"POST /v1/tasks/{taskId}/cancel":                      {domain.ResourceTask, "taskId"},
	"POST " + channelsPath:                                {domain.ResourceChannel, ""},
	"PATCH " + channelsPath + "/{channelId}":              {domain.ResourceChannel, "channelId"},
	"DELETE " + channelsPath + "/{channelId}":             {domain.ResourceChannel, "channelId"},
	"POST " + channelsPath + "/{channelId}/rotate-secret": {domain.ResourceChannel, "channelId"},
	"POST " + channelsPath + "/{channelId}/test":          {domain.ResourceChannel, "channelId"},
	"POST /v1/api-keys":                                   {domain.ResourceAPIKey, ""},
	"DELETE /v1/api-keys/{keyId}":                         {domain.ResourceAPIKey, "keyId"},
	"DELETE " + tenantPath:                                {domain.ResourceTenant, ""},
	"POST /v1/agent/register":                             {domain.ResourceAgent, ""},
}

// audited reports whether a route's requests carry an audit entry, and under which resource.
func audited(rt Route) (auditTarget, bool) {
	action := rt.Method + " " + rt.Pattern
	t, ok := auditTargets[action]
	if ok {
		return t, true
	}
	tenantRoute := rt.Access == AccessViewer || rt.Access == AccessOperator || rt.Access == AccessAdmin
	if tenantRoute && rt.Method != http.MethodGet && rt.Method != http.MethodHead {
		panic(fmt.Sprintf("httpapi: route %s changes something but names no audited resource", action))
	}
	return auditTarget{}, false
}

// requestIDPattern is what a request ID from API Gateway or a caller may look like; anything
// else is replaced by a new ID rather than written to the log.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:=-]{1,128}$`)

// requestID returns the request's ID: API Gateway's (the Lambda adapter sets the header from
// it), a well-formed one the caller sent, or a new one.
func requestID(d Deps, r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); requestIDPattern.MatchString(id) {
		return id
	}
	return domain.NewID(d.now())
}

// sourceIP is the caller's address: API Gateway's sourceIp behind the Lambda adapter, the TCP
// peer locally. Forwarding headers are the caller's to forge and are not read.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if net.ParseIP(host) == nil {
		return ""
	}
	return host
}

// startAudit puts a request's pending entry in its context.
func startAudit(d Deps, r *http.Request, rt Route, t auditTarget) (*http.Request, *store.PendingAudit) {
	res := domain.AuditResource{Type: t.resource}
	if t.param != "" {
		res.ID = r.PathValue(t.param)
	}
	var tenantID string
	var actor domain.AuditActor
	if p, ok := auth.PrincipalFrom(r.Context()); ok && p.Kind == auth.KindAPIKey {
		tenantID, actor = p.TenantID, domain.AuditActor{Type: domain.ActorAPIKey, ID: p.ID, Name: p.Name}
		if t.resource == domain.ResourceTenant {
			res.ID = p.TenantID
		}
	}
	id := requestID(d, r)
	pa := store.NewPendingAudit(tenantID, d.now(), actor, rt.Method+" "+rt.Pattern, res, id, sourceIP(r))
	return r.WithContext(store.WithAudit(r.Context(), pa)), pa
}

// finishAudit stores the entry of a request that succeeded without writing to the table (a test
// delivery): the request happened, so the log says so.
func finishAudit(d Deps, r *http.Request, pa *store.PendingAudit, status int) {
	if status >= 400 || pa.Landed() || pa.Entry().TenantID == "" || pa.Entry().Actor.ID == "" {
		return
	}
	if err := d.Store.PutAudit(r.Context(), pa); err != nil {
		d.Log.ErrorContext(r.Context(), "audit entry of a request that wrote nothing was not stored", "request_id", pa.Entry().RequestID, "error", err)
	}
}

// recordChange notes what a request changes: the resource's state before and after (nil for a
// create or a delete), and its ID when the route does not name it.
func recordChange(r *http.Request, id string, before, after any) {
	if pa := store.AuditFrom(r.Context()); pa != nil {
		pa.Record(id, before, after)
	}
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// auditHandlers serve /v1/audit.
type auditHandlers struct {
	d Deps
}

func (h auditHandlers) list(w http.ResponseWriter, r *http.Request) error {
	return listFiltered(w, r, auditFilter, h.d.Store.ListAudit, "resource", "actor", "since", "until", "limit", "cursor")
}

// auditFilter reads the filters of an audit listing.
func auditFilter(q params) (store.AuditFilter, store.Page, error) {
	var f store.AuditFilter
	if v := q.get("resource"); v != "" {
		typ, id, hasID := strings.Cut(v, "/")
		if !slices.Contains(domain.AuditResourceTypes, typ) {
			return f, store.Page{}, fieldError("resource", "must be a type ("+strings.Join(domain.AuditResourceTypes, ", ")+"), optionally followed by /ID")
		}
		if hasID && !validResourceID(typ, id) {
			return f, store.Page{}, fieldError("resource", "the ID after "+typ+"/ is not a valid "+typ+" ID")
		}
		f.ResourceType, f.ResourceID = typ, id
	}
	var err error
	if f.ActorID, err = q.id("actor"); err != nil {
		return f, store.Page{}, fieldError("actor", "not a valid API key, agent or enrollment token ID")
	}
	if f.Since, err = q.time("since"); err != nil {
		return f, store.Page{}, err
	}
	if f.Until, err = q.time("until"); err != nil {
		return f, store.Page{}, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return f, store.Page{}, fieldError("until", "must not be before since")
	}
	page, err := q.page()
	return f, page, err
}

func validResourceID(typ, id string) bool {
	switch typ {
	case domain.ResourceRepository:
		return domain.ValidName(id)
	case domain.ResourceTenant:
		return domain.ValidTenantID(id)
	}
	return domain.ValidID(id)
}
