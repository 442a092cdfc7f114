package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestTenantsAreCreatedOnceAndRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := domain.Tenant{ID: "acme", Name: "Acme Corp", CreatedAt: f.now}
	require.NoError(t, f.st.CreateTenant(f.ctx, tenant))

	got, usage, err := f.st.GetTenant(f.ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, tenant, got)
	assert.Equal(t, store.TenantUsage{}, usage, "a new tenant has used nothing")

	assert.ErrorIs(t, f.st.CreateTenant(f.ctx, tenant), domain.ErrConflict, "the same tenant again, identical")
	assert.ErrorIs(t, f.st.CreateTenant(f.ctx, domain.Tenant{ID: "acme", Name: "Other", CreatedAt: f.now}), domain.ErrConflict, "the same ID, another name")
	got, _, err = f.st.GetTenant(f.ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, "Acme Corp", got.Name, "a refused create leaves the tenant as it was")

	var ve *domain.ValidationError
	require.ErrorAs(t, f.st.CreateTenant(f.ctx, domain.Tenant{ID: "Not_A_Slug", Name: "x"}), &ve)
	assert.Equal(t, "id", ve.Fields[0].Field)

	_, _, err = f.st.GetTenant(f.ctx, "nobody")
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

func TestAPIKeysAreLookedUpListedTouchedAndRevoked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.tenant("other")

	var keys []domain.APIKey
	for i, role := range []domain.Role{domain.RoleAdmin, domain.RoleOperator, domain.RoleViewer} {
		k := domain.APIKey{ID: f.id(), Name: fmt.Sprintf("key-%d", i), Role: role, SecretHash: fmt.Sprintf("hash-%d", i), CreatedAt: f.now}
		require.NoError(t, f.st.CreateAPIKey(f.ctx, tenant, k))
		k.TenantID = tenant
		keys = append(keys, k)
	}
	require.NoError(t, f.st.CreateAPIKey(f.ctx, "other", domain.APIKey{ID: f.id(), Name: "theirs", Role: domain.RoleAdmin, SecretHash: "h", CreatedAt: f.now}))

	looked, err := f.st.LookupAPIKey(f.ctx, keys[1].ID)
	require.NoError(t, err)
	assert.Equal(t, keys[1], looked, "the lookup names the tenant and keeps the secret's hash")
	got, err := f.st.GetAPIKey(f.ctx, tenant, keys[1].ID)
	require.NoError(t, err)
	assert.Equal(t, keys[1], got)
	_, err = f.st.GetAPIKey(f.ctx, "other", keys[1].ID)
	assert.ErrorIs(t, err, domain.ErrNotFound, "another tenant's key")
	_, err = f.st.LookupAPIKey(f.ctx, f.id())
	assert.ErrorIs(t, err, domain.ErrNotFound)

	listed, _, err := f.st.ListAPIKeys(f.ctx, tenant, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, keys, listed, "the tenant's keys, oldest first")

	err = f.st.CreateAPIKey(f.ctx, tenant, domain.APIKey{ID: keys[0].ID, Name: "again", Role: domain.RoleAdmin, SecretHash: "h", CreatedAt: f.now})
	assert.ErrorIs(t, err, domain.ErrConflict, "an ID in use")
	var ve *domain.ValidationError
	require.ErrorAs(t, f.st.CreateAPIKey(f.ctx, tenant, domain.APIKey{ID: f.id(), Name: "bad-role", Role: "root", CreatedAt: f.now}), &ve)
	assert.Equal(t, "role", ve.Fields[0].Field)

	used := f.now.Add(time.Minute)
	require.NoError(t, f.st.TouchAPIKey(f.ctx, keys[0].ID, used))
	got, err = f.st.GetAPIKey(f.ctx, tenant, keys[0].ID)
	require.NoError(t, err)
	require.NotNil(t, got.LastUsedAt)
	assert.Equal(t, used, *got.LastUsedAt)
	assert.ErrorIs(t, f.st.TouchAPIKey(f.ctx, f.id(), used), domain.ErrNotFound, "touching an unknown key")

	first := f.now.Add(2 * time.Minute)
	require.NoError(t, f.st.RevokeAPIKey(f.ctx, tenant, keys[2].ID, first))
	require.NoError(t, f.st.RevokeAPIKey(f.ctx, tenant, keys[2].ID, first.Add(time.Hour)), "revoking twice")
	got, err = f.st.GetAPIKey(f.ctx, tenant, keys[2].ID)
	require.NoError(t, err)
	require.NotNil(t, got.RevokedAt)
	assert.Equal(t, first, *got.RevokedAt, "the first revocation's time stays")
	assert.False(t, got.Active())
	assert.ErrorIs(t, f.st.RevokeAPIKey(f.ctx, tenant, f.id(), first), domain.ErrNotFound, "revoking an unknown key")
}

func TestEnrollmentTokensAreListedRevokedAndExpireByTTL(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.tenant("other")
	a := f.token(tenant, func(e *domain.EnrollmentToken) {
		e.Description, e.Labels, e.MaxUses = "web servers", map[string]string{"role": "web"}, 5
	})
	b := f.token(tenant)
	f.token("other")

	got, err := f.st.LookupEnrollmentToken(f.ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, a, got)
	_, err = f.st.LookupEnrollmentToken(f.ctx, f.id())
	assert.ErrorIs(t, err, domain.ErrNotFound)

	listed, _, err := f.st.ListEnrollmentTokens(f.ctx, tenant, store.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{a.ID, b.ID}, idsOf(listed, func(e domain.EnrollmentToken) string { return e.ID }), "oldest first, the tenant's own")

	raw := f.rawItem("ENROLL#"+a.ID, "META")
	ttl, ok := raw[resources.AttrTTL].(*types.AttributeValueMemberN)
	require.True(t, ok, "the token carries the TTL attribute: %v", raw[resources.AttrTTL])
	assert.Equal(t, fmt.Sprint(a.ExpiresAt.Add(24*time.Hour).Unix()), ttl.Value, "DynamoDB removes it a day after it expires")

	require.NoError(t, f.st.RevokeEnrollmentToken(f.ctx, tenant, a.ID, f.now))
	got, err = f.st.LookupEnrollmentToken(f.ctx, a.ID)
	require.NoError(t, err)
	require.NotNil(t, got.RevokedAt)
	assert.Equal(t, f.now, *got.RevokedAt)
	assert.ErrorIs(t, f.st.RevokeEnrollmentToken(f.ctx, tenant, f.id(), f.now), domain.ErrNotFound)

	var ve *domain.ValidationError
	err = f.st.CreateEnrollmentToken(f.ctx, tenant, domain.EnrollmentToken{ID: f.id(), MaxUses: 0, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)})
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "maxUses", ve.Fields[0].Field)
	assert.ErrorIs(t, f.st.CreateEnrollmentToken(f.ctx, tenant, b), domain.ErrConflict, "an ID in use")
}

func TestRegisterAgentUsesUpItsTokenAndStoresTheCredential(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	tok := f.token(tenant, func(e *domain.EnrollmentToken) { e.MaxUses = 2 })

	a := newAgent(f.id(), f.now)
	a.Labels = map[string]string{"env": "prod"}
	registered, err := f.st.RegisterAgent(f.ctx, tenant, tok.ID, a)
	require.NoError(t, err)
	assert.Equal(t, tenant, registered.TenantID)
	assert.Equal(t, int64(1), registered.Version, "an agent starts at version 1")
	stored, err := f.st.GetAgent(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, registered, stored)

	cred, err := f.st.LookupAgentCredential(f.ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, store.AgentCredential{TenantID: tenant, AgentID: a.ID, SecretHash: "agent-hash"}, cred)
	_, err = f.st.LookupAgentCredential(f.ctx, f.id())
	assert.ErrorIs(t, err, domain.ErrNotFound)

	got, err := f.st.LookupEnrollmentToken(f.ctx, tok.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, got.Uses)

	_, err = f.st.RegisterAgent(f.ctx, tenant, tok.ID, newAgent(a.ID, f.now))
	assert.ErrorIs(t, err, domain.ErrConflict, "an agent ID in use")
	got, err = f.st.LookupEnrollmentToken(f.ctx, tok.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, got.Uses, "a refused registration uses nothing up")

	bad := newAgent(f.id(), f.now)
	bad.HeartbeatIntervalSeconds = 1
	_, err = f.st.RegisterAgent(f.ctx, tenant, tok.ID, bad)
	var ve *domain.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "heartbeatIntervalSeconds", ve.Fields[0].Field)
}

func TestRegisterAgentRefusesUnusableTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tenant := f.tenant("acme")
	f.tenant("other")

	usedUp := f.token(tenant)
	_, err := f.st.RegisterAgent(f.ctx, tenant, usedUp.ID, newAgent(f.id(), f.now))
	require.NoError(t, err, "the token's one use")

	revoked := f.token(tenant)
	require.NoError(t, f.st.RevokeEnrollmentToken(f.ctx, tenant, revoked.ID, f.now))

	tokens := map[string]string{
		"used up": usedUp.ID,
		"revoked": revoked.ID,
		"expired": f.token(tenant, func(e *domain.EnrollmentToken) {
			e.CreatedAt, e.ExpiresAt = f.now.Add(-2*time.Hour), f.now.Add(-time.Hour)
		}).ID,
		"expiring this instant": f.token(tenant, func(e *domain.EnrollmentToken) {
			e.CreatedAt, e.ExpiresAt = f.now.Add(-time.Hour), f.now
		}).ID,
		"unknown":          f.id(),
		"another tenant's": f.token("other").ID,
	}
	for name, tokenID := range tokens {
		before, lookupErr := f.st.LookupEnrollmentToken(f.ctx, tokenID)
		a := newAgent(f.id(), f.now)
		_, err := f.st.RegisterAgent(f.ctx, tenant, tokenID, a)
		assert.ErrorIs(t, err, domain.ErrUnauthorized, name)
		_, err = f.st.GetAgent(f.ctx, tenant, a.ID)
		assert.ErrorIs(t, err, domain.ErrNotFound, "%s: no agent is stored", name)
		_, err = f.st.LookupAgentCredential(f.ctx, a.ID)
		assert.ErrorIs(t, err, domain.ErrNotFound, "%s: no credential is stored", name)
		if lookupErr == nil {
			after, err := f.st.LookupEnrollmentToken(f.ctx, tokenID)
			require.NoError(t, err)
			assert.Equal(t, before.Uses, after.Uses, "%s: the token's uses do not change", name)
		}
	}
}
