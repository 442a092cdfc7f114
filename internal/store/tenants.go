package store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

type tenantItem struct {
	key
	Entity string `json:"entity"`
	domain.Tenant
	// LogBytes and LogLines count the log the tenant's agents have sent.
	LogBytes int64 `json:"logBytes"`
	LogLines int64 `json:"logLines"`
}

// TenantUsage is what a tenant has consumed.
type TenantUsage struct {
	LogBytes int64 `json:"logBytes"`
	LogLines int64 `json:"logLines"`
}

// CreateTenant stores a new tenant; an existing ID is domain.ErrConflict.
func (s *Store) CreateTenant(ctx context.Context, t domain.Tenant) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := s.putNew(ctx, tenantItem{key: tenantKey(t.ID), Entity: entityTenant, Tenant: t}); err != nil {
		return fmt.Errorf("create tenant %q: %w", t.ID, err)
	}
	return nil
}

// GetTenant reads a tenant.
func (s *Store) GetTenant(ctx context.Context, tenantID string) (domain.Tenant, TenantUsage, error) {
	var it tenantItem
	if err := s.get(ctx, tenantKey(tenantID), &it); err != nil {
		return domain.Tenant{}, TenantUsage{}, fmt.Errorf("get tenant %q: %w", tenantID, err)
	}
	return it.Tenant, TenantUsage{LogBytes: it.LogBytes, LogLines: it.LogLines}, nil
}

type apiKeyItem struct {
	key
	GSI1PK string `json:"GSI1PK"`
	GSI1SK string `json:"GSI1SK"`
	Entity string `json:"entity"`
	domain.APIKey
	SecretHash string `json:"secretHash"`
}

func (it apiKeyItem) domain() domain.APIKey {
	k := it.APIKey
	k.SecretHash = it.SecretHash
	return k
}

// CreateAPIKey stores a new API key of the tenant.
func (s *Store) CreateAPIKey(ctx context.Context, tenantID string, k domain.APIKey) error {
	k.TenantID = tenantID
	if err := k.Validate(); err != nil {
		return err
	}
	it := apiKeyItem{key: apiKeyKey(k.ID), GSI1PK: tenantAPIKeysGSI1(tenantID), GSI1SK: prefixAPIKey + k.ID, Entity: entityAPIKey, APIKey: k, SecretHash: k.SecretHash}
	if err := s.putNew(ctx, it); err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	return nil
}

// LookupAPIKey finds an API key by its ID alone, to authenticate a request. The key names its
// tenant; the caller must check the secret before trusting it.
func (s *Store) LookupAPIKey(ctx context.Context, keyID string) (domain.APIKey, error) {
	var it apiKeyItem
	if err := s.get(ctx, apiKeyKey(keyID), &it); err != nil {
		return domain.APIKey{}, fmt.Errorf("look up API key: %w", err)
	}
	return it.domain(), nil
}

// GetAPIKey reads one of the tenant's API keys.
func (s *Store) GetAPIKey(ctx context.Context, tenantID, keyID string) (domain.APIKey, error) {
	k, err := s.LookupAPIKey(ctx, keyID)
	if err != nil {
		return domain.APIKey{}, err
	}
	if k.TenantID != tenantID {
		return domain.APIKey{}, fmt.Errorf("get API key: %w", domain.ErrNotFound)
	}
	return k, nil
}

// ListAPIKeys lists the tenant's API keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string, page Page) ([]domain.APIKey, string, error) {
	keys, next, err := list(ctx, s, listing{index: resources.GSI1, pk: tenantAPIKeysGSI1(tenantID), prefix: prefixAPIKey}, page, apiKeyItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list API keys: %w", err)
	}
	return keys, next, nil
}

// RevokeAPIKey revokes one of the tenant's keys; revoking twice keeps the first time.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) error {
	return s.revoke(ctx, apiKeyKey(keyID), tenantID, at)
}

// TouchAPIKey records that a key was used at at. It is best effort: authentication does not
// fail when the record does.
func (s *Store) TouchAPIKey(ctx context.Context, keyID string, at time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       apiKeyKey(keyID).av(),
		UpdateExpression:          aws.String("SET lastUsedAt = :at"),
		ConditionExpression:       aws.String("attribute_exists(PK)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": str(fmtTime(at))},
	})
	if conditionFailed(err) {
		return fmt.Errorf("touch API key: %w", domain.ErrNotFound)
	}
	return err
}

// revoke sets revokedAt on a credential item of the tenant, once.
func (s *Store) revoke(ctx context.Context, k key, tenantID string, at time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       k.av(),
		UpdateExpression:          aws.String("SET revokedAt = if_not_exists(revokedAt, :at)"),
		ConditionExpression:       aws.String("attribute_exists(PK) AND tenantId = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": str(fmtTime(at)), ":t": str(tenantID)},
	})
	if conditionFailed(err) {
		return fmt.Errorf("revoke: %w", domain.ErrNotFound)
	}
	return err
}

type enrollItem struct {
	key
	GSI1PK string `json:"GSI1PK"`
	GSI1SK string `json:"GSI1SK"`
	Entity string `json:"entity"`
	TTL    int64  `json:"ttl"`
	domain.EnrollmentToken
	SecretHash string `json:"secretHash"`
}

func (it enrollItem) domain() domain.EnrollmentToken {
	e := it.EnrollmentToken
	e.SecretHash = it.SecretHash
	return e
}

// CreateEnrollmentToken stores a new enrollment token. DynamoDB removes it a day after expiry.
func (s *Store) CreateEnrollmentToken(ctx context.Context, tenantID string, e domain.EnrollmentToken) error {
	e.TenantID = tenantID
	if err := e.Validate(); err != nil {
		return err
	}
	it := enrollItem{key: enrollKey(e.ID), GSI1PK: tenantEnrollGSI1(tenantID), GSI1SK: prefixEnroll + e.ID, Entity: entityEnroll,
		TTL: ttlAt(e.ExpiresAt.Add(24 * time.Hour)), EnrollmentToken: e, SecretHash: e.SecretHash}
	if err := s.putNew(ctx, it); err != nil {
		return fmt.Errorf("create enrollment token: %w", err)
	}
	return nil
}

// LookupEnrollmentToken finds a token by its ID alone, to register an agent.
func (s *Store) LookupEnrollmentToken(ctx context.Context, tokenID string) (domain.EnrollmentToken, error) {
	var it enrollItem
	if err := s.get(ctx, enrollKey(tokenID), &it); err != nil {
		return domain.EnrollmentToken{}, fmt.Errorf("look up enrollment token: %w", err)
	}
	return it.domain(), nil
}

// ListEnrollmentTokens lists the tenant's enrollment tokens, oldest first.
func (s *Store) ListEnrollmentTokens(ctx context.Context, tenantID string, page Page) ([]domain.EnrollmentToken, string, error) {
	tokens, next, err := list(ctx, s, listing{index: resources.GSI1, pk: tenantEnrollGSI1(tenantID), prefix: prefixEnroll}, page, enrollItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list enrollment tokens: %w", err)
	}
	return tokens, next, nil
}

// RevokeEnrollmentToken revokes one of the tenant's tokens.
func (s *Store) RevokeEnrollmentToken(ctx context.Context, tenantID, tokenID string, at time.Time) error {
	return s.revoke(ctx, enrollKey(tokenID), tenantID, at)
}

// consumeEnrollment is the transaction action that uses up one use of a token, failing unless
// the token is the tenant's own, unrevoked, unexpired and has uses left at now. The token's item
// is keyed by its ID alone, so without the tenant condition one tenant could enroll agents with
// another tenant's token (and use it up).
func (s *Store) consumeEnrollment(tenantID, tokenID string, now time.Time) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName:        &s.table,
		Key:              enrollKey(tokenID).av(),
		UpdateExpression: aws.String("SET uses = uses + :one"),
		ConditionExpression: aws.String("attribute_exists(PK) AND tenantId = :t AND attribute_not_exists(revokedAt) AND " +
			"uses < maxUses AND expiresAt > :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": num(1),
			":now": str(fmtTime(now)),
			":t":   str(tenantID),
		},
	}}
}

type agentCredItem struct {
	key
	Entity     string `json:"entity"`
	TenantID   string `json:"tenantId"`
	AgentID    string `json:"agentId"`
	SecretHash string `json:"secretHash"`
}

// AgentCredential is what authenticating an agent needs.
type AgentCredential struct {
	TenantID   string
	AgentID    string
	SecretHash string
}

// LookupAgentCredential finds an agent's credential by the agent ID alone.
func (s *Store) LookupAgentCredential(ctx context.Context, agentID string) (AgentCredential, error) {
	var it agentCredItem
	if err := s.get(ctx, agentCredKey(agentID), &it); err != nil {
		return AgentCredential{}, fmt.Errorf("look up agent credential: %w", err)
	}
	return AgentCredential{TenantID: it.TenantID, AgentID: it.AgentID, SecretHash: it.SecretHash}, nil
}
