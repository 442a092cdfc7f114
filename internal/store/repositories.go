package store

import (
	"context"
	"fmt"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

type repoItem struct {
	key
	Entity string `json:"entity"`
	domain.Repository
}

func (it repoItem) domain() domain.Repository { return it.Repository }

// CreateRepository stores a new repository; an existing name is domain.ErrConflict.
func (s *Store) CreateRepository(ctx context.Context, tenantID string, r domain.Repository) (domain.Repository, error) {
	r.TenantID = tenantID
	if err := r.Validate(); err != nil {
		return domain.Repository{}, err
	}
	now := s.nowUTC()
	r.CreatedAt, r.UpdatedAt, r.Version = now, now, 1
	if err := s.putNew(ctx, repoItem{key: repoKey(tenantID, r.Name), Entity: entityRepository, Repository: r}); err != nil {
		return domain.Repository{}, fmt.Errorf("create repository %q: %w", r.Name, err)
	}
	return r, nil
}

// GetRepository reads a repository by name.
func (s *Store) GetRepository(ctx context.Context, tenantID, name string) (domain.Repository, error) {
	var it repoItem
	if err := s.get(ctx, repoKey(tenantID, name), &it); err != nil {
		return domain.Repository{}, fmt.Errorf("get repository %q: %w", name, err)
	}
	return it.Repository, nil
}

// ListRepositories lists the tenant's repositories by name.
func (s *Store) ListRepositories(ctx context.Context, tenantID string, page Page) ([]domain.Repository, string, error) {
	repos, next, err := list(ctx, s, listing{pk: tenantPK(tenantID), prefix: prefixRepo}, page, repoItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list repositories: %w", err)
	}
	return repos, next, nil
}

// UpdateRepository replaces a repository whose stored version is still r.Version.
func (s *Store) UpdateRepository(ctx context.Context, tenantID string, r domain.Repository) (domain.Repository, error) {
	r.TenantID = tenantID
	if err := r.Validate(); err != nil {
		return domain.Repository{}, err
	}
	read := r.Version
	r.Version++
	r.UpdatedAt = s.nowUTC()
	if err := s.putVersioned(ctx, repoKey(tenantID, r.Name), repoItem{key: repoKey(tenantID, r.Name), Entity: entityRepository, Repository: r}, read); err != nil {
		return domain.Repository{}, fmt.Errorf("update repository %q: %w", r.Name, err)
	}
	return r, nil
}

// DeleteRepository removes a repository no policy uses; one in use is domain.ErrConflict.
func (s *Store) DeleteRepository(ctx context.Context, tenantID, name string) error {
	if _, err := s.GetRepository(ctx, tenantID, name); err != nil {
		return err
	}
	users, _, err := s.ListPolicies(ctx, tenantID, PolicyFilter{Repository: name}, Page{Limit: 1})
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("delete repository %q: policy %q uses it: %w", name, users[0].Name, domain.ErrConflict)
	}
	if err := s.deleteExisting(ctx, repoKey(tenantID, name)); err != nil {
		return fmt.Errorf("delete repository %q: %w", name, err)
	}
	return nil
}
