// Package auth owns restic-monitor's credentials: their format, how secrets are generated and
// hashed, and how a presented credential becomes a principal. Three kinds exist:
//
//	rm_<keyId>_<secret>    an operator's API key (role admin, operator or viewer)
//	rma_<agentId>_<secret> an agent's secret, issued at registration
//	rme_<tokenId>_<secret> an enrollment token, good for registering agents
//
// Only a SHA-256 hash of each secret is stored; secrets carry 256 bits of randomness, so a
// plain hash suffices and comparison is constant-time.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// Kind is what kind of principal a credential stands for.
type Kind string

const (
	KindAPIKey Kind = "apikey"
	KindAgent  Kind = "agent"
)

// Principal is an authenticated caller. The tenant always comes from here.
type Principal struct {
	TenantID string      `json:"tenantId"`
	Kind     Kind        `json:"kind"`
	ID       string      `json:"id"` // API key ID or agent ID
	Role     domain.Role `json:"role,omitempty"`
	// Name is an API key's name, for the audit log.
	Name string `json:"name,omitempty"`
}

// Credential prefixes.
const (
	PrefixAPIKey     = "rm"
	PrefixAgent      = "rma"
	PrefixEnrollment = "rme"
)

var secretEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a new random secret of 256 bits, in lowercase base32 (no '_').
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return strings.ToLower(secretEncoding.EncodeToString(b))
}

// Hash returns the stored form of a secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Matches compares a presented secret with a stored hash in constant time.
func Matches(secret, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(Hash(secret)), []byte(hash)) == 1
}

// Format joins a credential's parts.
func Format(prefix, id, secret string) string { return prefix + "_" + id + "_" + secret }

// Parse splits a credential into prefix, ID and secret. It checks the shape only.
func Parse(token string) (prefix, id, secret string, ok bool) {
	prefix, rest, ok1 := strings.Cut(token, "_")
	id, secret, ok2 := strings.Cut(rest, "_")
	if !ok1 || !ok2 || !domain.ValidID(id) || len(secret) != 52 || strings.ContainsAny(secret, "_ ") {
		return "", "", "", false
	}
	switch prefix {
	case PrefixAPIKey, PrefixAgent, PrefixEnrollment:
		return prefix, id, secret, true
	}
	return "", "", "", false
}

// Store is what authentication reads.
type Store interface {
	LookupAPIKey(ctx context.Context, keyID string) (domain.APIKey, error)
	TouchAPIKey(ctx context.Context, keyID string, at time.Time) error
	LookupAgentCredential(ctx context.Context, agentID string) (store.AgentCredential, error)
}

// Authenticator turns an Authorization header into a principal.
type Authenticator struct {
	Store Store
	Now   func() time.Time
}

// ErrUnauthenticated is every authentication failure, whatever its cause, so a caller learns
// nothing about which keys exist.
var ErrUnauthenticated = fmt.Errorf("missing or invalid credentials: %w", domain.ErrUnauthorized)

// Authenticate checks "Bearer <credential>" and returns its principal. Store failures other
// than a missing credential are returned as they are, so they surface as errors, not as 401s.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (Principal, error) {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	prefix, id, secret, ok := Parse(strings.TrimSpace(token))
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	switch prefix {
	case PrefixAPIKey:
		k, err := a.Store.LookupAPIKey(ctx, id)
		if errors.Is(err, domain.ErrNotFound) {
			return Principal{}, ErrUnauthenticated
		}
		if err != nil {
			return Principal{}, err
		}
		if !Matches(secret, k.SecretHash) || !k.Active() {
			return Principal{}, ErrUnauthenticated
		}
		// Recording last use must not fail the request.
		_ = a.Store.TouchAPIKey(ctx, id, a.now())
		return Principal{TenantID: k.TenantID, Kind: KindAPIKey, ID: k.ID, Role: k.Role, Name: k.Name}, nil
	case PrefixAgent:
		c, err := a.Store.LookupAgentCredential(ctx, id)
		if errors.Is(err, domain.ErrNotFound) {
			return Principal{}, ErrUnauthenticated
		}
		if err != nil {
			return Principal{}, err
		}
		if !Matches(secret, c.SecretHash) {
			return Principal{}, ErrUnauthenticated
		}
		return Principal{TenantID: c.TenantID, Kind: KindAgent, ID: c.AgentID}, nil
	}
	// Enrollment tokens authenticate only registration, which checks them itself.
	return Principal{}, ErrUnauthenticated
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal a context carries.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok && p.TenantID != "" && p.ID != ""
}

// Authorizer context keys: the authorizer Lambda returns these, API Gateway passes them on to
// the API Lambdas, which rebuild the principal from them.
const (
	ContextTenant = "tenantId"
	ContextKind   = "principalType"
	ContextID     = "principalId"
	ContextRole   = "role"
	ContextName   = "principalName"
)

// Context returns the authorizer context that carries p.
func (p Principal) Context() map[string]any {
	return map[string]any{ContextTenant: p.TenantID, ContextKind: string(p.Kind), ContextID: p.ID, ContextRole: string(p.Role), ContextName: p.Name}
}

// FromContext rebuilds a principal from an authorizer context, refusing an incomplete or
// malformed one: the API Lambdas do not trust that an authorizer ran.
func FromContext(m map[string]any) (Principal, bool) {
	get := func(k string) string { v, _ := m[k].(string); return v }
	p := Principal{TenantID: get(ContextTenant), Kind: Kind(get(ContextKind)), ID: get(ContextID), Role: domain.Role(get(ContextRole)), Name: get(ContextName)}
	if !domain.ValidTenantID(p.TenantID) || !domain.ValidID(p.ID) {
		return Principal{}, false
	}
	switch p.Kind {
	case KindAPIKey:
		return p, p.Role.Valid()
	case KindAgent:
		return p, p.Role == ""
	}
	return Principal{}, false
}
