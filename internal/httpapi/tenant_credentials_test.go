package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

type createdToken struct {
	domain.EnrollmentToken
	Token string `json:"token"`
}

func TestTenantEnrollmentTokens(t *testing.T) {
	h := newHarness(t)
	// Tokens live by the real clock here: the table's TTL would remove tokens that expired in
	// the past of the real time, however the test clock sees them.
	h.clock = time.Now().UTC().Truncate(time.Second)
	w := newTenantWorld(h, "acme")

	res := h.call(http.MethodPost, "/v1/enrollment-tokens", w.operator, map[string]any{})
	tenantStatus(t, http.StatusCreated, res)
	var def createdToken
	res.JSON(t, &def)
	assert.Equal(t, 1, def.MaxUses, "one use by default")
	assert.Equal(t, h.clock.Add(24*time.Hour), def.ExpiresAt, "a day by default")
	prefix, id, secret, ok := auth.Parse(def.Token)
	require.True(t, ok, "the token is a credential: %s", def.Token)
	assert.Equal(t, auth.PrefixEnrollment, prefix)
	assert.Equal(t, def.ID, id)

	// Only the hash is stored, and the hash appears in no response.
	stored, err := h.store.LookupEnrollmentToken(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, auth.Hash(secret), stored.SecretHash)
	assert.NotContains(t, res.Body, stored.SecretHash)
	assert.NotContains(t, res.Body, "secretHash")

	res = h.call(http.MethodPost, "/v1/enrollment-tokens", w.operator, map[string]any{
		"description": "rack 4", "labels": map[string]string{"site": "fra1"}, "maxUses": 20, "expiresIn": "7d",
	})
	tenantStatus(t, http.StatusCreated, res)
	var rack createdToken
	res.JSON(t, &rack)
	assert.Equal(t, 20, rack.MaxUses)
	assert.Equal(t, h.clock.Add(7*24*time.Hour), rack.ExpiresAt)
	assert.Equal(t, map[string]string{"site": "fra1"}, rack.Labels)

	res = h.call(http.MethodPost, "/v1/enrollment-tokens", w.operator, map[string]any{
		"maxUses": 0, "expiresIn": "31d", "labels": map[string]string{"-bad": "x"}, "description": "a\x00b",
	})
	tenantStatus(t, http.StatusUnprocessableEntity, res)
	assert.ElementsMatch(t, []string{"expiresIn", `labels["-bad"]`, "description"}, res.ErrorFields(t))
	res = h.call(http.MethodPost, "/v1/enrollment-tokens", w.operator, map[string]any{"maxUses": 10001, "expiresIn": "soon"})
	tenantStatus(t, http.StatusUnprocessableEntity, res)
	assert.ElementsMatch(t, []string{"maxUses", "expiresIn"}, res.ErrorFields(t))
	res = h.call(http.MethodPost, "/v1/enrollment-tokens", w.viewer, map[string]any{})
	tenantStatus(t, http.StatusForbidden, res)

	res = h.call(http.MethodGet, "/v1/enrollment-tokens", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var list struct{ Items []domain.EnrollmentToken }
	res.JSON(t, &list)
	assert.ElementsMatch(t, []string{def.ID, rack.ID}, []string{list.Items[0].ID, list.Items[1].ID})
	assert.NotContains(t, res.Body, "secretHash")
	assert.NotContains(t, res.Body, `"token"`, "the credential is shown once")
	assert.NotContains(t, res.Body, secret)

	res = h.call(http.MethodDelete, "/v1/enrollment-tokens/"+rack.ID, w.operator, nil)
	tenantStatus(t, http.StatusNoContent, res)
	revoked, err := h.store.LookupEnrollmentToken(context.Background(), rack.ID)
	require.NoError(t, err)
	require.NotNil(t, revoked.RevokedAt)
	assert.False(t, revoked.Usable(h.clock))
	res = h.call(http.MethodDelete, "/v1/enrollment-tokens/"+rack.ID, w.operator, nil)
	tenantStatus(t, http.StatusNoContent, res, "revoking again")
	res = h.call(http.MethodDelete, "/v1/enrollment-tokens/"+domain.NewID(h.clock), w.operator, nil)
	tenantStatus(t, http.StatusNotFound, res)

	// The token works for registration: the store accepts it until it is used up.
	_, err = h.store.RegisterAgent(context.Background(), w.id, def.ID, domain.Agent{
		ID: domain.NewID(h.clock), Hostname: "web-1", OS: "linux", Arch: "amd64", AgentVersion: "1.0.0",
		Status: domain.AgentOffline, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60, SecretHash: auth.Hash(auth.NewSecret()),
	})
	require.NoError(t, err)
}

type createdKey struct {
	domain.APIKey
	Key string `json:"key"`
}

func TestTenantAPIKeys(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")

	res := h.call(http.MethodPost, "/v1/api-keys", w.admin, map[string]any{"name": "ci", "role": "operator"})
	tenantStatus(t, http.StatusCreated, res)
	var ci createdKey
	res.JSON(t, &ci)
	assert.Equal(t, domain.RoleOperator, ci.Role)
	assert.Equal(t, "acme", ci.TenantID)
	assert.True(t, strings.HasPrefix(ci.Key, "rm_"+ci.ID+"_"), ci.Key)
	stored, err := h.store.LookupAPIKey(context.Background(), ci.ID)
	require.NoError(t, err)
	assert.NotContains(t, res.Body, stored.SecretHash)
	assert.NotContains(t, res.Body, "secretHash")

	// The new key works, with its role.
	res = h.call(http.MethodGet, "/v1/agents", ci.Key, nil)
	tenantStatus(t, http.StatusOK, res)
	res = h.call(http.MethodGet, "/v1/api-keys", ci.Key, nil)
	tenantStatus(t, http.StatusForbidden, res, "an operator key does not manage keys")

	res = h.call(http.MethodPost, "/v1/api-keys", w.admin, map[string]any{"name": "", "role": "root"})
	tenantStatus(t, http.StatusUnprocessableEntity, res)
	assert.ElementsMatch(t, []string{"name", "role"}, res.ErrorFields(t))
	res = h.call(http.MethodPost, "/v1/api-keys", w.admin, map[string]any{"name": "x", "role": "admin", "tenantId": "other"})
	tenantStatus(t, http.StatusBadRequest, res, "the tenant comes from the credential, never from the body")
	assert.Equal(t, []string{"tenantId"}, res.ErrorFields(t))

	res = h.call(http.MethodGet, "/v1/api-keys", w.admin, nil)
	tenantStatus(t, http.StatusOK, res)
	var list struct{ Items []domain.APIKey }
	res.JSON(t, &list)
	assert.Len(t, list.Items, 4, "admin, operator, viewer and ci")
	assert.NotContains(t, res.Body, "secretHash")
	assert.NotContains(t, res.Body, `"key"`)
	for _, k := range list.Items {
		if k.ID == ci.ID {
			assert.NotNil(t, k.LastUsedAt, "last use is recorded")
		}
	}

	res = h.call(http.MethodDelete, "/v1/api-keys/"+ci.ID, w.admin, nil)
	tenantStatus(t, http.StatusNoContent, res)
	res = h.call(http.MethodGet, "/v1/agents", ci.Key, nil)
	tenantStatus(t, http.StatusUnauthorized, res, "a revoked key")
	res = h.call(http.MethodDelete, "/v1/api-keys/"+ci.ID, w.admin, nil)
	tenantStatus(t, http.StatusNoContent, res, "revoking again")
	res = h.call(http.MethodDelete, "/v1/api-keys/"+domain.NewID(h.clock), w.admin, nil)
	tenantStatus(t, http.StatusNotFound, res)

	keys, _, err := h.store.ListAPIKeys(context.Background(), w.id, store.Page{})
	require.NoError(t, err)
	assert.Len(t, keys, 4, "revoking keeps the key, revoked")
}
