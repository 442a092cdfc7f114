package httpapi

import (
	"net/http"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// repositoryHandlers serve /v1/repositories.
type repositoryHandlers struct {
	d Deps
}

// repositoryBody is the part of a repository a client writes. Name is required on create and,
// when given on replace, must be the name in the path (repositories are not renamed).
// Version is required on replace.
type repositoryBody struct {
	Name        string         `json:"name,omitempty"`
	Description string         `json:"description,omitempty"`
	Backend     domain.Backend `json:"backend"`
	Location    string         `json:"location"`
	// CheckOverdueAfterDays: see domain.Repository.
	CheckOverdueAfterDays int    `json:"checkOverdueAfterDays,omitempty"`
	Version               *int64 `json:"version,omitempty"`
}

func (b repositoryBody) repository() domain.Repository {
	r := domain.Repository{Name: b.Name, Description: b.Description, Backend: b.Backend, Location: b.Location, CheckOverdueAfterDays: b.CheckOverdueAfterDays}
	if b.Version != nil {
		r.Version = *b.Version
	}
	return r
}

func (h repositoryHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var b repositoryBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Version != nil {
		return &domain.ValidationError{Fields: []domain.FieldError{{Field: "version", Reason: "a new repository has no version; replace an existing one with PUT /v1/repositories/{name}"}}}
	}
	recordChange(r, b.Name, nil, b.repository())
	repo, err := h.d.Store.CreateRepository(r.Context(), tenantOf(r), b.repository())
	if err != nil {
		return err
	}
	writeCreated(w, "/v1/repositories/"+repo.Name, repo)
	return nil
}

func (h repositoryHandlers) list(w http.ResponseWriter, r *http.Request) error {
	return listPage(w, r, h.d.Store.ListRepositories)
}

func (h repositoryHandlers) get(w http.ResponseWriter, r *http.Request) error {
	name, err := repoName(r)
	if err != nil {
		return err
	}
	repo, err := h.d.Store.GetRepository(r.Context(), tenantOf(r), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, repo)
	return nil
}

func (h repositoryHandlers) replace(w http.ResponseWriter, r *http.Request) error {
	name, err := repoName(r)
	if err != nil {
		return err
	}
	var b repositoryBody
	if err := decode(r, &b); err != nil {
		return err
	}
	var fields []domain.FieldError
	if b.Name != "" && b.Name != name {
		fields = append(fields, domain.FieldError{Field: "name", Reason: "must be the name in the path: a repository cannot be renamed"})
	}
	if b.Version == nil {
		fields = append(fields, versionRequired.Fields...)
	}
	if len(fields) > 0 {
		return &domain.ValidationError{Fields: fields}
	}
	b.Name = name
	stored, err := h.d.Store.GetRepository(r.Context(), tenantOf(r), name)
	if err != nil {
		return err
	}
	// The store writes the repository whole; what the client does not write carries over.
	next := b.repository()
	next.CreatedAt = stored.CreatedAt
	recordChange(r, "", stored, next)
	repo, err := h.d.Store.UpdateRepository(r.Context(), tenantOf(r), next)
	if err != nil {
		return err
	}
	if repo.OverdueAfterDays() != stored.OverdueAfterDays() {
		// The overdue check follows the new number of days at once, not at the old time.
		if err := h.d.Store.RescheduleHealth(r.Context(), tenantOf(r), repo); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, repo)
	return nil
}

// health answers GET /v1/repositories/{name}/health: the repository's latest stats, check and
// locks, and one point a day for 90 days.
func (h repositoryHandlers) health(w http.ResponseWriter, r *http.Request) error {
	name, err := repoName(r)
	if err != nil {
		return err
	}
	repo, err := h.d.Store.GetRepository(r.Context(), tenantOf(r), name)
	if err != nil {
		return err
	}
	health, err := h.d.Store.GetHealth(r.Context(), tenantOf(r), repo, h.d.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, health)
	return nil
}

func (h repositoryHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	name, err := repoName(r)
	if err != nil {
		return err
	}
	if stored, err := h.d.Store.GetRepository(r.Context(), tenantOf(r), name); err == nil {
		recordChange(r, "", stored, nil)
	}
	if err := h.d.Store.DeleteRepository(r.Context(), tenantOf(r), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
