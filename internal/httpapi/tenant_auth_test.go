package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// concretePath fills a route's path parameters with IDs (and a repository name) of things that
// need not exist.
func concretePath(h *harness, pattern string, ids map[string]string) string {
	path := pattern
	for _, name := range pathParam.FindAllString(pattern, -1) {
		param := strings.Trim(name, "{}")
		v, ok := ids[param]
		if !ok {
			v = domain.NewID(h.clock)
			if param == "name" {
				v = "repo-main"
			}
		}
		path = strings.Replace(path, name, v, 1)
	}
	return path
}

// bodyFor is a body for routes that take one: an empty object, which no handler accepts as a
// complete request but every one reads.
func bodyFor(method string) any {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return map[string]any{}
	}
	return nil
}

func TestTenantRoutesRefuseBadCredentialsWith401(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	revoked := h.apiKey(w.id, domain.RoleAdmin)
	_, revokedID, _, ok := auth.Parse(revoked)
	require.True(t, ok)
	require.NoError(t, h.store.RevokeAPIKey(context.Background(), w.id, revokedID, h.clock))
	_, adminID, _, _ := auth.Parse(w.admin)

	credentials := map[string]string{
		"missing":        "",
		"malformed":      "not-a-key",
		"no secret":      "rm_" + adminID,
		"short secret":   "rm_" + adminID + "_abc",
		"unknown prefix": "rx_" + adminID + "_" + auth.NewSecret(),
		"wrong secret":   auth.Format(auth.PrefixAPIKey, adminID, auth.NewSecret()),
		"unknown key":    auth.Format(auth.PrefixAPIKey, domain.NewID(h.clock), auth.NewSecret()),
		"enrollment":     auth.Format(auth.PrefixEnrollment, domain.NewID(h.clock), auth.NewSecret()),
		"revoked":        revoked,
	}
	cases := 0
	for _, r := range httpapi.TenantRoutes(h.deps) {
		path := concretePath(h, r.Pattern, nil)
		for name, cred := range credentials {
			res := h.call(r.Method, path, cred, bodyFor(r.Method))
			tenantStatus(t, http.StatusUnauthorized, res, r.Method, " ", r.Pattern, ": ", name)
			assert.Equal(t, "unauthorized", tenantErrorCode(t, res), name)
			assert.Contains(t, res.Header["Www-Authenticate"], "Bearer", name)
			cases++
		}
	}
	// Through raw headers: another scheme, a bearer with nothing after it, a key without a scheme.
	for _, header := range []string{"Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", w.admin} {
		res := w.raw(http.MethodGet, "/v1/agents", "", "", map[string]string{"authorization": header})
		tenantStatus(t, http.StatusUnauthorized, res, header)
		cases++
	}
	t.Logf("authentication: %d cases, every one 401", cases)
}

func TestTenantRoutesEnforceRoles(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	creds := []struct {
		name string
		cred string
		role domain.Role // "" for the agent
	}{
		{"viewer", w.viewer, domain.RoleViewer},
		{"operator", w.operator, domain.RoleOperator},
		{"admin", w.admin, domain.RoleAdmin},
		{"agent", a.Credential, ""},
	}
	need := map[httpapi.Access]domain.Role{httpapi.AccessViewer: domain.RoleViewer, httpapi.AccessOperator: domain.RoleOperator, httpapi.AccessAdmin: domain.RoleAdmin}
	forbidden, allowed := 0, 0
	for _, r := range httpapi.TenantRoutes(h.deps) {
		required, ok := need[r.Access]
		require.True(t, ok, "tenant route %s %s must need an API key role, not %s", r.Method, r.Pattern, r.Access)
		path := concretePath(h, r.Pattern, nil)
		for _, c := range creds {
			res := h.call(r.Method, path, c.cred, bodyFor(r.Method))
			what := c.name + " " + r.Method + " " + r.Pattern
			if c.role.Allows(required) {
				assert.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, res.Status, "%s: %s", what, res.Body)
				assert.Less(t, res.Status, 500, "%s: %s", what, res.Body)
				allowed++
				continue
			}
			tenantStatus(t, http.StatusForbidden, res, what)
			assert.Equal(t, "forbidden", tenantErrorCode(t, res), what)
			forbidden++
		}
	}
	// The weak roles by name, as the issue asks: a viewer cannot write, an operator cannot
	// manage keys, an agent cannot use the tenant API at all.
	res := h.call(http.MethodPost, "/v1/repositories", w.viewer, map[string]any{"name": "r-1", "backend": "local", "location": "/srv"})
	tenantStatus(t, http.StatusForbidden, res)
	res = h.call(http.MethodPost, "/v1/api-keys", w.operator, map[string]any{"name": "k", "role": "admin"})
	tenantStatus(t, http.StatusForbidden, res)
	res = h.call(http.MethodGet, "/v1/agents/"+a.ID, a.Credential, nil)
	tenantStatus(t, http.StatusForbidden, res)
	repos, _, err := h.store.ListRepositories(context.Background(), w.id, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, repos, "the viewer's write wrote nothing")
	t.Logf("roles: %d forbidden cases (403), %d allowed cases", forbidden+3, allowed)
}
