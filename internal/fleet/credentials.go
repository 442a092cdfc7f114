package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// CreateTenant stores a new tenant.
func (s *Service) CreateTenant(ctx context.Context, id, name string) (domain.Tenant, error) {
	t := domain.Tenant{ID: id, Name: name, CreatedAt: s.now()}
	if err := s.Store.CreateTenant(ctx, t); err != nil {
		return domain.Tenant{}, err
	}
	return t, nil
}

// CreateAPIKey issues an API key to an existing tenant. The credential (rm_<id>_<secret>) is
// returned only here; the store keeps a hash of the secret. A tenant being deleted gets none:
// its deletion removes its keys last and would miss one added meanwhile.
func (s *Service) CreateAPIKey(ctx context.Context, tenantID, name string, role domain.Role) (domain.APIKey, string, error) {
	d, err := s.Store.GetTenantDeletion(ctx, tenantID)
	if err != nil {
		return domain.APIKey{}, "", err
	}
	if d.Status == store.TenantDeleting {
		return domain.APIKey{}, "", fmt.Errorf("tenant %q is being deleted: %w", tenantID, domain.ErrConflict)
	}
	now := s.now()
	id, secret := domain.NewID(now), auth.NewSecret()
	k := domain.APIKey{ID: id, TenantID: tenantID, Name: name, Role: role, SecretHash: auth.Hash(secret), CreatedAt: now}
	if err := s.Store.CreateAPIKey(ctx, tenantID, k); err != nil {
		return domain.APIKey{}, "", err
	}
	k.SecretHash = ""
	return k, auth.Format(auth.PrefixAPIKey, id, secret), nil
}

// Enrollment token defaults.
const (
	DefaultEnrollmentTTL  = 24 * time.Hour
	DefaultEnrollmentUses = 1
)

// EnrollmentRequest asks for an enrollment token. Zero values take the defaults.
type EnrollmentRequest struct {
	Description string
	Labels      map[string]string
	MaxUses     int
	// ExpiresIn is a duration such as 24h or 7d (domain.ParseDuration), at most 30 days.
	ExpiresIn string
}

// CreateEnrollmentToken issues a token that enrolls up to MaxUses agents before it expires. The
// credential (rme_<id>_<secret>) is returned only here.
func (s *Service) CreateEnrollmentToken(ctx context.Context, tenantID string, req EnrollmentRequest) (domain.EnrollmentToken, string, error) {
	var p problems
	ttl := DefaultEnrollmentTTL
	if req.ExpiresIn != "" {
		d, err := domain.ParseDuration(req.ExpiresIn)
		switch {
		case err != nil:
			p.add("expiresIn", "not a duration such as 1h, 24h or 7d")
		case d < time.Minute || d > domain.MaxEnrollmentTokenTTL:
			p.add("expiresIn", "must be between 1m and 30d")
		default:
			ttl = d
		}
	}
	maxUses := req.MaxUses
	if maxUses == 0 {
		maxUses = DefaultEnrollmentUses
	}
	now := s.now()
	id, secret := domain.NewID(now), auth.NewSecret()
	t := domain.EnrollmentToken{
		ID: id, TenantID: tenantID, Description: req.Description, SecretHash: auth.Hash(secret), Labels: req.Labels,
		MaxUses: maxUses, CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	if err := p.merge(t.Validate()); err != nil {
		return domain.EnrollmentToken{}, "", err
	}
	if err := p.err(); err != nil {
		return domain.EnrollmentToken{}, "", err
	}
	if err := s.Store.CreateEnrollmentToken(ctx, tenantID, t); err != nil {
		return domain.EnrollmentToken{}, "", fmt.Errorf("create enrollment token: %w", err)
	}
	t.SecretHash = ""
	return t, auth.Format(auth.PrefixEnrollment, id, secret), nil
}
