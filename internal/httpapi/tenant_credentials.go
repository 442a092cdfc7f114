package httpapi

import (
	"net/http"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
)

// credentialHandlers serve /v1/enrollment-tokens and /v1/api-keys. A new credential is in the
// response to its creation and nowhere else: the store keeps only a hash of its secret.
type credentialHandlers struct {
	d     Deps
	fleet *fleet.Service
}

// enrollmentBody asks for an enrollment token; every field is optional ({} takes the defaults:
// one use, valid for 24 hours).
type enrollmentBody struct {
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	MaxUses     int               `json:"maxUses,omitempty"`
	ExpiresIn   string            `json:"expiresIn,omitempty"`
}

// createdEnrollmentToken is a new token with its credential.
type createdEnrollmentToken struct {
	domain.EnrollmentToken
	Token string `json:"token"`
}

func (h credentialHandlers) createEnrollmentToken(w http.ResponseWriter, r *http.Request) error {
	var b enrollmentBody
	if err := decode(r, &b); err != nil {
		return err
	}
	recordChange(r, "", nil, b)
	t, token, err := h.fleet.CreateEnrollmentToken(r.Context(), tenantOf(r), fleet.EnrollmentRequest{
		Description: b.Description, Labels: b.Labels, MaxUses: b.MaxUses, ExpiresIn: b.ExpiresIn,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, createdEnrollmentToken{EnrollmentToken: t, Token: token})
	return nil
}

func (h credentialHandlers) listEnrollmentTokens(w http.ResponseWriter, r *http.Request) error {
	return listPage(w, r, h.d.Store.ListEnrollmentTokens)
}

func (h credentialHandlers) revokeEnrollmentToken(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "tokenId")
	if err != nil {
		return err
	}
	now := h.d.now()
	if t, err := h.d.Store.LookupEnrollmentToken(r.Context(), id); err == nil && t.TenantID == tenantOf(r) {
		recordRevocation(r, t.RevokedAt, now)
	}
	if err := h.d.Store.RevokeEnrollmentToken(r.Context(), tenantOf(r), id, now); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revocation is what revoking a credential changes, for the audit log.
type revocation struct {
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// recordRevocation notes what revoking a credential changes: nothing when it was revoked
// already, since the first revocation's time is kept.
func recordRevocation(r *http.Request, revokedAt *time.Time, now time.Time) {
	after := revokedAt
	if after == nil {
		after = &now
	}
	recordChange(r, "", revocation{RevokedAt: revokedAt}, revocation{RevokedAt: after})
}

// apiKeyBody asks for an API key.
type apiKeyBody struct {
	Name string      `json:"name"`
	Role domain.Role `json:"role"`
}

// createdAPIKey is a new API key with its credential.
type createdAPIKey struct {
	domain.APIKey
	Key string `json:"key"`
}

func (h credentialHandlers) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	var b apiKeyBody
	if err := decode(r, &b); err != nil {
		return err
	}
	recordChange(r, "", nil, b)
	k, key, err := h.fleet.CreateAPIKey(r.Context(), tenantOf(r), b.Name, b.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, createdAPIKey{APIKey: k, Key: key})
	return nil
}

func (h credentialHandlers) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	return listPage(w, r, h.d.Store.ListAPIKeys)
}

func (h credentialHandlers) revokeAPIKey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "keyId")
	if err != nil {
		return err
	}
	now := h.d.now()
	if k, err := h.d.Store.LookupAPIKey(r.Context(), id); err == nil && k.TenantID == tenantOf(r) {
		recordRevocation(r, k.RevokedAt, now)
	}
	if err := h.d.Store.RevokeAPIKey(r.Context(), tenantOf(r), id, now); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func overview(f *fleet.Service) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := queryParams(r); err != nil {
			return err
		}
		o, err := f.Overview(r.Context(), tenantOf(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, o)
		return nil
	}
}
