package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// list is the shape of every listing: one page of items and, when more follow, the cursor that
// continues it.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor,omitempty"`
}

func writeList[T any](w http.ResponseWriter, items []T, next string) {
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, list[T]{Items: items, NextCursor: next})
}

// listPage answers a listing that takes no query but limit and cursor with the page fetch
// returns for the request's tenant.
func listPage[T any](w http.ResponseWriter, r *http.Request, fetch func(ctx context.Context, tenantID string, page store.Page) ([]T, string, error)) error {
	return listFiltered(w, r, pageOnly, func(ctx context.Context, tenantID string, _ struct{}, page store.Page) ([]T, string, error) {
		return fetch(ctx, tenantID, page)
	}, "limit", "cursor")
}

// pageOnly reads the query of a listing with no filters.
func pageOnly(q params) (struct{}, store.Page, error) {
	page, err := q.page()
	return struct{}{}, page, err
}

// listFiltered answers a listing whose query may hold the parameters known: read turns the
// query into a filter and a page, and fetch returns that page for the request's tenant.
func listFiltered[F, T any](w http.ResponseWriter, r *http.Request, read func(params) (F, store.Page, error),
	fetch func(ctx context.Context, tenantID string, f F, page store.Page) ([]T, string, error), known ...string,
) error {
	q, err := queryParams(r, known...)
	if err != nil {
		return err
	}
	f, page, err := read(q)
	if err != nil {
		return err
	}
	items, next, err := fetch(r.Context(), tenantOf(r), f, page)
	if err != nil {
		return err
	}
	writeList(w, items, next)
	return nil
}

// writeByID answers with what call returns for the ID in the path parameter name: the read or
// the action of one resource of the request's tenant.
func writeByID[T any](w http.ResponseWriter, r *http.Request, name string, call func(ctx context.Context, tenantID, id string) (T, error)) error {
	id, err := pathID(r, name)
	if err != nil {
		return err
	}
	v, err := call(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// writeCreated answers 201 with a new resource and, in Location, where it now is.
func writeCreated(w http.ResponseWriter, location string, v any) {
	w.Header().Set("Location", location)
	writeJSON(w, http.StatusCreated, v)
}

// params reads a request's query, refusing parameters the route does not know, so a misspelt
// filter is an error rather than silently ignored.
type params struct {
	values url.Values
}

func queryParams(r *http.Request, known ...string) (params, error) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return params{}, badRequest("the query string is malformed", domain.FieldError{Field: "query", Reason: "not a valid query string"})
	}
	for name, vs := range values {
		if !slices.Contains(known, name) {
			reason := "unknown parameter"
			if len(known) > 0 {
				reason += "; this route takes " + strings.Join(known, ", ")
			}
			return params{}, fieldError(quoteField(name), reason)
		}
		if len(vs) > 1 {
			return params{}, fieldError(name, "give it once")
		}
	}
	return params{values: values}, nil
}

// quoteField shortens a caller's parameter name before it is repeated in an error.
func quoteField(name string) string {
	if r := []rune(name); len(r) > 64 {
		return string(r[:64]) + "…"
	}
	return name
}

func (p params) get(name string) string { return p.values.Get(name) }

// page reads limit and cursor.
func (p params) page() (store.Page, error) {
	var pg store.Page
	if v := p.get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return store.Page{}, fieldError("limit", "must be a whole number between 1 and 100")
		}
		pg.Limit = n
	}
	// The store checks the cursor: it must decode to keys of this very listing.
	pg.Cursor = p.get("cursor")
	return pg, nil
}

// id reads an optional ID parameter.
func (p params) id(name string) (string, error) {
	v := p.get(name)
	if v != "" && !domain.ValidID(v) {
		return "", fieldError(name, "not a valid ID")
	}
	return v, nil
}

// time reads an optional RFC 3339 time parameter.
func (p params) time(name string) (time.Time, error) {
	v := p.get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 2000 || t.Year() > 9999 {
		return time.Time{}, fieldError(name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return t.UTC(), nil
}

// taskStatus reads an optional task or run status parameter.
func (p params) taskStatus(name string) (domain.TaskStatus, error) {
	s := domain.TaskStatus(p.get(name))
	if s != "" && !s.Valid() {
		return "", fieldError(name, "must be one of pending, queued, running, retrying, succeeded, partial, failed, cancelled, expired")
	}
	return s, nil
}

// bool reads an optional true/false parameter.
func (p params) bool(name string) (bool, error) {
	switch p.get(name) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, fieldError(name, "must be true or false")
}

// repoName reads a repository name from the path.
func repoName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if !domain.ValidName(name) {
		return "", fieldError("name", "not a repository name (3–100 letters, digits, '-', '_')")
	}
	return name, nil
}

// tenantOf is the tenant the request acts for: always the authenticated principal's.
func tenantOf(r *http.Request) string { return principal(r).TenantID }

// newFleet builds the service the tenant handlers call.
func newFleet(d Deps) *fleet.Service {
	s := &fleet.Service{Store: d.Store, Log: d.Log, Now: d.now}
	if d.Queues != nil {
		s.Queues = d.Queues
	}
	if d.Dispatcher != nil {
		s.Dispatcher = d.Dispatcher
	}
	return s
}

// decodeMergePatch reads a JSON merge patch (RFC 7396) and applies it to current, the writable
// view of a resource, decoding the result strictly into out: a field the view does not have
// is refused by name, as in any other body. The patch must name version, the version of the
// resource it was written against.
func decodeMergePatch(r *http.Request, current, out any) error {
	var patch map[string]any
	if err := decode(r, &patch); err != nil {
		return err
	}
	if patch == nil {
		return badRequest("the body must be a JSON object")
	}
	if _, ok := patch["version"]; !ok {
		return &domain.ValidationError{Fields: []domain.FieldError{{Field: "version", Reason: "required: the version you read, so a change made meanwhile is not overwritten"}}}
	}
	raw, err := json.Marshal(current)
	if err != nil {
		return err
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	merged, err := json.Marshal(mergePatch(doc, patch))
	if err != nil {
		return err
	}
	strict := json.NewDecoder(bytes.NewReader(merged))
	strict.DisallowUnknownFields()
	if err := strict.Decode(out); err != nil {
		return jsonError(err)
	}
	return nil
}

// mergePatch applies an RFC 7396 merge patch: objects merge key by key, null removes a key,
// anything else replaces the target.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}
