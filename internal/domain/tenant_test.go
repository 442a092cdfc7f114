package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func TestTenantValidate(t *testing.T) {
	valid := []domain.Tenant{
		{ID: "acme", Name: "Acme Corp."},
		{ID: "abc", Name: "A"},
		{ID: "a1-b2", Name: "Müller & Söhne – Zürich"},
		{ID: "a" + strings.Repeat("b", 31), Name: strings.Repeat("n", 200)},
	}
	for _, tn := range valid {
		t.Run("valid "+tn.ID, func(t *testing.T) { assertValid(t, tn.Validate()) })
	}

	invalid := []struct {
		name   string
		tenant domain.Tenant
		want   []string
	}{
		{"empty id", domain.Tenant{Name: "Acme"}, []string{"id"}},
		{"id too short", domain.Tenant{ID: "ab", Name: "Acme"}, []string{"id"}},
		{"id too long", domain.Tenant{ID: "a" + strings.Repeat("b", 32), Name: "Acme"}, []string{"id"}},
		{"uppercase id", domain.Tenant{ID: "Acme", Name: "Acme"}, []string{"id"}},
		{"id starting with digit", domain.Tenant{ID: "1acme", Name: "Acme"}, []string{"id"}},
		{"id starting with hyphen", domain.Tenant{ID: "-acme", Name: "Acme"}, []string{"id"}},
		{"id ending with hyphen", domain.Tenant{ID: "acme-", Name: "Acme"}, []string{"id"}},
		{"underscore in id", domain.Tenant{ID: "ac_me", Name: "Acme"}, []string{"id"}},
		{"empty name", domain.Tenant{ID: "acme"}, []string{"name"}},
		{"blank name", domain.Tenant{ID: "acme", Name: "   "}, []string{"name"}},
		{"newline in name", domain.Tenant{ID: "acme", Name: "Acme\nCorp"}, []string{"name"}},
		{"name too long", domain.Tenant{ID: "acme", Name: strings.Repeat("n", 201)}, []string{"name"}},
		{"invalid UTF-8 name", domain.Tenant{ID: "acme", Name: "Acme \xff"}, []string{"name"}},
		{"everything wrong", domain.Tenant{ID: "A", Name: ""}, []string{"id", "name"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) { assertInvalid(t, tc.tenant.Validate(), tc.want...) })
	}
}

func TestTextReasons(t *testing.T) {
	err := domain.Tenant{ID: "acme", Name: strings.Repeat("n", 201)}.Validate()
	assertReasonMentions(t, err, "name", "at most 200", "got 201")
	err = domain.Tenant{ID: "acme", Name: ""}.Validate()
	assertReasonMentions(t, err, "name", "must not be empty")
	err = domain.Tenant{ID: "acme", Name: " \t"}.Validate()
	assertReasonMentions(t, err, "name", "control characters")
	err = domain.Tenant{ID: "acme", Name: "  "}.Validate()
	assertReasonMentions(t, err, "name", "blank")
}

func TestRoleAllows(t *testing.T) {
	roles := []domain.Role{domain.RoleAdmin, domain.RoleOperator, domain.RoleViewer, "", "root", "Admin"}
	// want[r] lists the requirements role r meets.
	want := map[domain.Role][]domain.Role{
		domain.RoleAdmin:    {domain.RoleAdmin, domain.RoleOperator, domain.RoleViewer},
		domain.RoleOperator: {domain.RoleOperator, domain.RoleViewer},
		domain.RoleViewer:   {domain.RoleViewer},
	}
	for _, have := range roles {
		for _, required := range roles {
			wantAllowed := false
			for _, r := range want[have] {
				wantAllowed = wantAllowed || r == required
			}
			got := have.Allows(required)
			assert.Equalf(t, wantAllowed, got, "%q.Allows(%q): got %v, want %v", have, required, got, wantAllowed)
		}
	}
}

func TestRoleValid(t *testing.T) {
	for _, r := range []domain.Role{domain.RoleAdmin, domain.RoleOperator, domain.RoleViewer} {
		assert.Truef(t, r.Valid(), "%q: got invalid, want valid", r)
	}
	for _, r := range []domain.Role{"", "root", "ADMIN", "viewer "} {
		assert.Falsef(t, r.Valid(), "%q: got valid, want invalid", r)
	}
}

func TestAPIKeyValidate(t *testing.T) {
	assertValid(t, domain.APIKey{Name: "ci deploy key", Role: domain.RoleOperator}.Validate())

	invalid := []struct {
		name string
		key  domain.APIKey
		want []string
	}{
		{"empty name", domain.APIKey{Role: domain.RoleViewer}, []string{"name"}},
		{"name too long", domain.APIKey{Name: strings.Repeat("k", 101), Role: domain.RoleViewer}, []string{"name"}},
		{"tab in name", domain.APIKey{Name: "ci\tkey", Role: domain.RoleViewer}, []string{"name"}},
		{"no role", domain.APIKey{Name: "ci"}, []string{"role"}},
		{"unknown role", domain.APIKey{Name: "ci", Role: "root"}, []string{"role"}},
		{"both", domain.APIKey{Role: "superuser"}, []string{"name", "role"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) { assertInvalid(t, tc.key.Validate(), tc.want...) })
	}
}

func TestAPIKeyActive(t *testing.T) {
	revoked := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	assert.True(t, domain.APIKey{}.Active(), "a key never revoked: got inactive, want active")
	assert.False(t, domain.APIKey{RevokedAt: &revoked}.Active(), "a revoked key: got active, want inactive")
}

func validToken() domain.EnrollmentToken {
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return domain.EnrollmentToken{
		ID:          "01JNB7Q1V3W4X5Y6Z7A8B9C0D1",
		TenantID:    "acme",
		Description: "rack 4 web servers",
		Labels:      map[string]string{"env": "prod", "rack": "4"},
		MaxUses:     10,
		CreatedAt:   created,
		ExpiresAt:   created.Add(24 * time.Hour),
	}
}

func TestEnrollmentTokenValidate(t *testing.T) {
	valid := []struct {
		name   string
		mutate func(*domain.EnrollmentToken)
	}{
		{"as built", func(*domain.EnrollmentToken) {}},
		{"no description or labels", func(e *domain.EnrollmentToken) { e.Description, e.Labels = "", nil }},
		{"single use", func(e *domain.EnrollmentToken) { e.MaxUses = 1 }},
		{"most uses", func(e *domain.EnrollmentToken) { e.MaxUses = domain.MaxEnrollmentTokenUses }},
		{"used up", func(e *domain.EnrollmentToken) { e.Uses = e.MaxUses }},
		{"longest life", func(e *domain.EnrollmentToken) { e.ExpiresAt = e.CreatedAt.Add(domain.MaxEnrollmentTokenTTL) }},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			e := validToken()
			tc.mutate(&e)
			assertValid(t, e.Validate())
		})
	}

	invalid := []struct {
		name   string
		mutate func(*domain.EnrollmentToken)
		want   []string
	}{
		{"no uses", func(e *domain.EnrollmentToken) { e.MaxUses = 0 }, []string{"maxUses"}},
		{"too many uses", func(e *domain.EnrollmentToken) { e.MaxUses = domain.MaxEnrollmentTokenUses + 1 }, []string{"maxUses"}},
		{"negative uses", func(e *domain.EnrollmentToken) { e.Uses = -1 }, []string{"uses"}},
		{"used beyond its limit", func(e *domain.EnrollmentToken) { e.Uses = e.MaxUses + 1 }, []string{"uses"}},
		{"expires at creation", func(e *domain.EnrollmentToken) { e.ExpiresAt = e.CreatedAt }, []string{"expiresAt"}},
		{"expires before creation", func(e *domain.EnrollmentToken) { e.ExpiresAt = e.CreatedAt.Add(-time.Hour) }, []string{"expiresAt"}},
		{"lives too long", func(e *domain.EnrollmentToken) {
			e.ExpiresAt = e.CreatedAt.Add(domain.MaxEnrollmentTokenTTL + time.Second)
		}, []string{"expiresAt"}},
		{"description too long", func(e *domain.EnrollmentToken) { e.Description = strings.Repeat("d", 201) }, []string{"description"}},
		{"escape in description", func(e *domain.EnrollmentToken) { e.Description = "rack \x1b[31m4" }, []string{"description"}},
		{"bad label key", func(e *domain.EnrollmentToken) { e.Labels = map[string]string{"bad key": "x"} }, []string{`labels["bad key"]`}},
		{"everything wrong", func(e *domain.EnrollmentToken) {
			e.Description = "a\nb"
			e.MaxUses = 0
			e.Uses = -3
			e.ExpiresAt = time.Time{}
			e.Labels = map[string]string{"": "x"}
		}, []string{"description", "maxUses", "uses", "expiresAt", `labels[""]`}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			e := validToken()
			tc.mutate(&e)
			assertInvalid(t, e.Validate(), tc.want...)
		})
	}
}

func TestEnrollmentTokenUsable(t *testing.T) {
	base := validToken()
	revokedAt := base.CreatedAt.Add(time.Hour)
	cases := []struct {
		name   string
		mutate func(*domain.EnrollmentToken)
		now    time.Time
		want   bool
	}{
		{"fresh", func(*domain.EnrollmentToken) {}, base.CreatedAt.Add(time.Minute), true},
		{"one use left", func(e *domain.EnrollmentToken) { e.Uses = e.MaxUses - 1 }, base.CreatedAt.Add(time.Minute), true},
		{"a moment before expiry", func(*domain.EnrollmentToken) {}, base.ExpiresAt.Add(-time.Nanosecond), true},
		{"at expiry", func(*domain.EnrollmentToken) {}, base.ExpiresAt, false},
		{"after expiry", func(*domain.EnrollmentToken) {}, base.ExpiresAt.Add(time.Hour), false},
		{"used up", func(e *domain.EnrollmentToken) { e.Uses = e.MaxUses }, base.CreatedAt.Add(time.Minute), false},
		{"revoked", func(e *domain.EnrollmentToken) { e.RevokedAt = &revokedAt }, base.CreatedAt.Add(2 * time.Hour), false},
		{"revoked, checked before the revocation time", func(e *domain.EnrollmentToken) { e.RevokedAt = &revokedAt }, base.CreatedAt, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			tc.mutate(&e)
			got := e.Usable(tc.now)
			assert.Equalf(t, tc.want, got, "Usable: got %v, want %v", got, tc.want)
		})
	}
}
