package domain

import "time"

// Tenant is the unit of isolation: every other item belongs to exactly one tenant.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// Validate checks a tenant before it is stored.
func (t Tenant) Validate() error {
	var fe fieldErrors
	if !ValidTenantID(t.ID) {
		fe.add("id", "must be 3–32 lowercase letters, digits or inner hyphens, starting with a letter")
	}
	checkText(&fe, "name", t.Name, 1, 200)
	return fe.err()
}

// Role is what an API key may do.
type Role string

const (
	RoleAdmin    Role = "admin"    // everything, including managing API keys
	RoleOperator Role = "operator" // everything but API keys
	RoleViewer   Role = "viewer"   // read only
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleOperator || r == RoleViewer }

// Allows reports whether a principal with role r may act with the required role. An unknown role
// allows nothing and an unknown requirement is met by nobody, so a typo never opens a door.
func (r Role) Allows(required Role) bool {
	return r.Valid() && required.Valid() && r.rank() >= required.rank()
}

func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleOperator:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// APIKey is an operator credential. Only a hash of its secret is kept.
type APIKey struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenantId"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	SecretHash string     `json:"-"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
}

// Validate checks an API key before it is stored.
func (k APIKey) Validate() error {
	var fe fieldErrors
	checkText(&fe, "name", k.Name, 1, 100)
	if !k.Role.Valid() {
		fe.add("role", "must be one of admin, operator, viewer")
	}
	return fe.err()
}

// Active reports whether the key can still authenticate.
func (k APIKey) Active() bool { return k.RevokedAt == nil }

// EnrollmentToken lets a new host register as an agent of the tenant a limited number of times
// before it expires.
type EnrollmentToken struct {
	ID          string            `json:"id"`
	TenantID    string            `json:"tenantId"`
	Description string            `json:"description,omitempty"`
	SecretHash  string            `json:"-"`
	Labels      map[string]string `json:"labels,omitempty"`
	MaxUses     int               `json:"maxUses"`
	Uses        int               `json:"uses"`
	CreatedAt   time.Time         `json:"createdAt"`
	ExpiresAt   time.Time         `json:"expiresAt"`
	RevokedAt   *time.Time        `json:"revokedAt,omitempty"`
}

// Enrollment token limits.
const (
	MaxEnrollmentTokenUses = 10000
	MaxEnrollmentTokenTTL  = 30 * 24 * time.Hour
)

// Validate checks an enrollment token before it is stored.
func (e EnrollmentToken) Validate() error {
	var fe fieldErrors
	checkText(&fe, "description", e.Description, 0, 200)
	if e.MaxUses < 1 || e.MaxUses > MaxEnrollmentTokenUses {
		fe.add("maxUses", "must be between 1 and %d", MaxEnrollmentTokenUses)
	}
	if e.Uses < 0 || (e.Uses > e.MaxUses && e.MaxUses >= 1) {
		fe.add("uses", "must be between 0 and maxUses (%d), got %d", e.MaxUses, e.Uses)
	}
	if ttl := e.ExpiresAt.Sub(e.CreatedAt); ttl <= 0 || ttl > MaxEnrollmentTokenTTL {
		fe.add("expiresAt", "must be after creation and at most 30 days later")
	}
	checkLabels(&fe, "labels", e.Labels)
	return fe.err()
}

// Usable reports whether the token can enroll one more agent at now.
func (e EnrollmentToken) Usable(now time.Time) bool {
	return e.RevokedAt == nil && now.Before(e.ExpiresAt) && e.Uses < e.MaxUses
}
