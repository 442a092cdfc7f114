package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func TestTenantRepositories(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")

	res := h.call(http.MethodPost, "/v1/repositories", w.operator, map[string]any{
		"name": "offsite", "description": "the bucket", "backend": "s3", "location": "s3:s3.amazonaws.com/acme-backups/restic",
	})
	tenantStatus(t, http.StatusCreated, res)
	var repo domain.Repository
	res.JSON(t, &repo)
	assert.Equal(t, "/v1/repositories/offsite", res.Header["Location"])
	assert.Equal(t, int64(1), repo.Version)
	assert.Equal(t, domain.BackendS3, repo.Backend)
	local := w.repository("repo-main")

	res = h.call(http.MethodPost, "/v1/repositories", w.operator, map[string]any{"name": "offsite", "backend": "local", "location": "/srv"})
	tenantStatus(t, http.StatusConflict, res, "a taken name")

	// Every invalid field at once, including the backend's own rules.
	res = h.call(http.MethodPost, "/v1/repositories", w.operator, map[string]any{"name": "x", "backend": "ftp", "location": "", "description": strings.Repeat("d", 501)})
	tenantStatus(t, http.StatusUnprocessableEntity, res)
	assert.ElementsMatch(t, []string{"name", "backend", "location", "description"}, res.ErrorFields(t))
	for name, body := range map[string]map[string]any{
		"relative local path":    {"name": "r-local", "backend": "local", "location": "srv/restic"},
		"s3 without bucket":      {"name": "r-s3", "backend": "s3", "location": "s3:s3.amazonaws.com"},
		"rest-server password":   {"name": "r-rest", "backend": "rest-server", "location": "rest:https://user:secret@host:8000/repo"},
		"sftp port out of range": {"name": "r-sftp", "backend": "sftp", "location": "sftp://user@host:70000//srv"},
	} {
		res := h.call(http.MethodPost, "/v1/repositories", w.operator, body)
		tenantStatus(t, http.StatusUnprocessableEntity, res, name)
		assert.Equal(t, []string{"location"}, res.ErrorFields(t), name)
	}

	res = h.call(http.MethodGet, "/v1/repositories", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var list struct{ Items []domain.Repository }
	res.JSON(t, &list)
	require.Len(t, list.Items, 2)
	assert.Equal(t, "offsite", list.Items[0].Name, "by name")
	assert.Equal(t, "repo-main", list.Items[1].Name)

	res = h.call(http.MethodGet, "/v1/repositories/repo-main", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var got domain.Repository
	res.JSON(t, &got)
	assert.Equal(t, local, got)
	res = h.call(http.MethodGet, "/v1/repositories/no-such-repo", w.viewer, nil)
	tenantStatus(t, http.StatusNotFound, res)
	res = h.call(http.MethodGet, "/v1/repositories/a%20b", w.viewer, nil)
	tenantStatus(t, http.StatusBadRequest, res, "a name in the path is checked first")
	assert.Equal(t, []string{"name"}, res.ErrorFields(t))

	// PUT replaces, keeps the name and the creation time, and needs the version read.
	h.clock = h.clock.Add(3600e9)
	res = h.call(http.MethodPut, "/v1/repositories/repo-main", w.operator, map[string]any{"backend": "sftp", "location": "sftp:backup@nas:/srv/restic", "version": 1})
	tenantStatus(t, http.StatusOK, res)
	var replaced domain.Repository
	res.JSON(t, &replaced)
	assert.Equal(t, domain.BackendSFTP, replaced.Backend)
	assert.Equal(t, int64(2), replaced.Version)
	assert.Equal(t, local.CreatedAt, replaced.CreatedAt)
	assert.True(t, replaced.UpdatedAt.After(local.UpdatedAt))
	for name, tc := range map[string]struct {
		body   map[string]any
		status int
		fields []string
	}{
		"stale version": {map[string]any{"backend": "local", "location": "/srv", "version": 1}, http.StatusConflict, nil},
		"no version":    {map[string]any{"backend": "local", "location": "/srv"}, http.StatusUnprocessableEntity, []string{"version"}},
		"renamed":       {map[string]any{"name": "other", "backend": "local", "location": "/srv", "version": 2}, http.StatusUnprocessableEntity, []string{"name"}},
		"invalid":       {map[string]any{"backend": "local", "location": "srv", "version": 2}, http.StatusUnprocessableEntity, []string{"location"}},
	} {
		res := h.call(http.MethodPut, "/v1/repositories/repo-main", w.operator, tc.body)
		tenantStatus(t, tc.status, res, name)
		if tc.fields != nil {
			assert.Equal(t, tc.fields, res.ErrorFields(t), name)
		}
	}
	res = h.call(http.MethodPut, "/v1/repositories/repo-main", w.operator, map[string]any{"name": "repo-main", "backend": "local", "location": "/srv", "version": 2})
	tenantStatus(t, http.StatusOK, res, "the name in the body may repeat the path's")
	res = h.call(http.MethodPut, "/v1/repositories/no-such-repo", w.operator, map[string]any{"backend": "local", "location": "/srv", "version": 1})
	tenantStatus(t, http.StatusNotFound, res)

	// A repository a policy uses cannot go.
	p := w.policy("nightly", "repo-main")
	res = h.call(http.MethodDelete, "/v1/repositories/repo-main", w.operator, nil)
	tenantStatus(t, http.StatusConflict, res)
	assert.Contains(t, res.Body, "nightly")
	res = h.call(http.MethodDelete, "/v1/policies/"+p.ID, w.operator, nil)
	tenantStatus(t, http.StatusNoContent, res)
	res = h.call(http.MethodDelete, "/v1/repositories/repo-main", w.operator, nil)
	tenantStatus(t, http.StatusNoContent, res)
	_, err := h.store.GetRepository(context.Background(), w.id, "repo-main")
	assert.ErrorIs(t, err, domain.ErrNotFound)
	res = h.call(http.MethodDelete, "/v1/repositories/repo-main", w.operator, nil)
	tenantStatus(t, http.StatusNotFound, res)
}
