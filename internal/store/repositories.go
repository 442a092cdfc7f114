package store

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

type repoItem struct {
	key
	Entity string `json:"entity"`
	domain.Repository
	// PolicyCount counts the policies that use the repository. Policy writes change it in their
	// own transactions, so DeleteRepository can refuse a repository in use with one conditional
	// delete: a check of the policies followed by a delete would let a policy created in between
	// keep a repository that no longer exists.
	PolicyCount int64 `json:"policyCount"`
}

// attrPolicyCount is the attribute of repoItem.PolicyCount.
const attrPolicyCount = "policyCount"

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

// UpdateRepository replaces a repository whose stored version is still r.Version, and returns it
// as stored. It sets the fields a caller may change, rather than putting the whole item, so
// the count of the policies that use the repository is kept.
func (s *Store) UpdateRepository(ctx context.Context, tenantID string, r domain.Repository) (domain.Repository, error) {
	r.TenantID = tenantID
	if err := r.Validate(); err != nil {
		return domain.Repository{}, err
	}
	k := repoKey(tenantID, r.Name)
	write := newWriteID()
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           &s.table,
		Key:                 k.av(),
		UpdateExpression:    aws.String("SET #desc = :desc, #backend = :backend, #loc = :loc, #overdue = :overdue, #updated = :now, #v = #v + :one, #w = :w"),
		ConditionExpression: aws.String("attribute_exists(PK) AND #v = :read"),
		ExpressionAttributeNames: map[string]string{
			"#desc": "description", "#backend": "backend", "#loc": "location", "#overdue": "checkOverdueAfterDays", "#updated": "updatedAt", "#v": "version", "#w": attrWrite,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":desc": str(r.Description), ":backend": str(string(r.Backend)), ":loc": str(r.Location), ":overdue": num(int64(r.CheckOverdueAfterDays)),
			":now": str(fmtTime(s.nowUTC())), ":one": num(1), ":read": num(r.Version), ":w": str(write),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if conditionFailed(err) {
		if s.landed(ctx, k.av(), write) {
			return s.GetRepository(ctx, tenantID, r.Name)
		}
		return domain.Repository{}, fmt.Errorf("update repository %q: %w", r.Name, s.missingOr(ctx, k, domain.ErrConflict))
	}
	if err != nil {
		return domain.Repository{}, fmt.Errorf("update repository %q: %w", r.Name, err)
	}
	var it repoItem
	if err := unmarshal(out.Attributes, &it); err != nil {
		return domain.Repository{}, err
	}
	return it.Repository, nil
}

// DeleteRepository removes a repository no policy uses; one in use is domain.ErrConflict.
func (s *Store) DeleteRepository(ctx context.Context, tenantID, name string) error {
	if _, err := s.GetRepository(ctx, tenantID, name); err != nil {
		return err
	}
	// The listing names a user in the error; the count decides.
	users, _, err := s.ListPolicies(ctx, tenantID, PolicyFilter{Repository: name}, Page{Limit: 1})
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("delete repository %q: policy %q uses it: %w", name, users[0].Name, domain.ErrConflict)
	}
	k := repoKey(tenantID, name)
	_, err = s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &s.table,
		Key:                       k.av(),
		ConditionExpression:       aws.String("attribute_exists(PK) AND (attribute_not_exists(#n) OR #n <= :zero)"),
		ExpressionAttributeNames:  map[string]string{"#n": attrPolicyCount},
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0)},
	})
	if conditionFailed(err) {
		return fmt.Errorf("delete repository %q: a policy uses it: %w", name, s.missingOr(ctx, k, domain.ErrConflict))
	}
	if err != nil {
		return fmt.Errorf("delete repository %q: %w", name, err)
	}
	return nil
}
