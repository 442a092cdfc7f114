package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// agentItem is an agent. While it is online it sits in the due index at the moment it would
// turn silent (three heartbeat intervals after it was last seen); every heartbeat moves that
// moment on, so the scheduler finds silent agents without looking at the others. An agent that
// came back online while the scheduler still counts it offline (OfflineSince is set) is due at
// once, so the scheduler announces its return on its next tick.
type agentItem struct {
	key
	GSI2PK string `json:"GSI2PK,omitempty"`
	GSI2SK string `json:"GSI2SK,omitempty"`
	Entity string `json:"entity"`
	domain.Agent
	SecretHash string `json:"secretHash"`
}

func (it agentItem) domain() domain.Agent {
	a := it.Agent
	a.SecretHash = it.SecretHash
	return a
}

func newAgentItem(a domain.Agent) agentItem {
	it := agentItem{key: agentKey(a.TenantID, a.ID), Entity: entityAgent, Agent: a, SecretHash: a.SecretHash}
	if a.Status == domain.AgentOnline && a.LastSeenAt != nil {
		dueAt := a.LastSeenAt.Add(3 * time.Duration(a.HeartbeatIntervalSeconds) * time.Second)
		if a.OfflineSince != nil {
			dueAt = *a.LastSeenAt
		}
		it.GSI2PK, it.GSI2SK = dueGSI2(shardOf(a.TenantID, a.ID)), agentDueSK(a.TenantID, a.ID, dueAt)
	}
	return it
}

// RegisterAgent stores a new agent, its credential and its (empty, counted) capacity item and
// uses up one use of the enrollment token, all or nothing. A token that is unknown, another tenant's, revoked, expired or used
// up is domain.ErrUnauthorized; the agent starts at version 1.
func (s *Store) RegisterAgent(ctx context.Context, tenantID, tokenID string, a domain.Agent) (domain.Agent, error) {
	a.TenantID = tenantID
	a.Version = 1
	if err := a.Validate(); err != nil {
		return domain.Agent{}, err
	}
	agent, err := marshal(newAgentItem(a))
	if err != nil {
		return domain.Agent{}, err
	}
	cred, err := marshal(agentCredItem{key: agentCredKey(a.ID), Entity: entityAgentCred, TenantID: tenantID, AgentID: a.ID, SecretHash: a.SecretHash})
	if err != nil {
		return domain.Agent{}, err
	}
	capacity, err := marshal(countedCapacity(a, nil))
	if err != nil {
		return domain.Agent{}, err
	}
	notExists := aws.String("attribute_not_exists(PK)")
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.consumeEnrollment(tenantID, tokenID, s.nowUTC()),
		{Put: &types.Put{TableName: &s.table, Item: agent, ConditionExpression: notExists}},
		{Put: &types.Put{TableName: &s.table, Item: cred, ConditionExpression: notExists}},
		{Put: &types.Put{TableName: &s.table, Item: capacity}},
	}})
	if failed, ok := cancelledByCondition(err); ok {
		if failed[0] == 0 {
			return domain.Agent{}, fmt.Errorf("register agent: enrollment token not usable: %w", domain.ErrUnauthorized)
		}
		return domain.Agent{}, fmt.Errorf("register agent %s: %w", a.ID, domain.ErrConflict)
	}
	if err != nil {
		return domain.Agent{}, fmt.Errorf("register agent: %w", err)
	}
	return a, nil
}

// GetAgent reads one of the tenant's agents.
func (s *Store) GetAgent(ctx context.Context, tenantID, agentID string) (domain.Agent, error) {
	var it agentItem
	if err := s.get(ctx, agentKey(tenantID, agentID), &it); err != nil {
		return domain.Agent{}, fmt.Errorf("get agent %s: %w", agentID, err)
	}
	return it.domain(), nil
}

// AgentFilter narrows a listing of agents. Empty fields match everything.
type AgentFilter struct {
	Status     domain.AgentStatus
	LabelKey   string
	LabelValue string
}

// ListAgents lists the tenant's agents in registration order.
func (s *Store) ListAgents(ctx context.Context, tenantID string, f AgentFilter, page Page) ([]domain.Agent, string, error) {
	l := listing{pk: tenantPK(tenantID), prefix: prefixAgent, names: map[string]string{}, values: map[string]types.AttributeValue{}}
	var conds []string
	if f.Status != "" {
		conds = append(conds, "#status = :status")
		l.names["#status"] = "status"
		l.values[":status"] = str(string(f.Status))
	}
	if f.LabelKey != "" {
		l.names["#labels"] = "labels"
		l.names["#lk"] = f.LabelKey
		if f.LabelValue != "" {
			conds = append(conds, "#labels.#lk = :lv")
			l.values[":lv"] = str(f.LabelValue)
		} else {
			conds = append(conds, "attribute_exists(#labels.#lk)")
		}
	}
	l.filter = joinAnd(conds)
	agents, next, err := list(ctx, s, l, page, agentItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list agents: %w", err)
	}
	return agents, next, nil
}

// UpdateAgent replaces an agent when its stored version is still a.Version, and returns it with
// the next version. Another writer's change in between is domain.ErrConflict. Not knowing what
// it replaces, it also copies the agent's backoff to its capacity item; ModifyAgent, which
// serves every heartbeat, does that only when the backoff changes.
func (s *Store) UpdateAgent(ctx context.Context, tenantID string, a domain.Agent) (domain.Agent, error) {
	return s.updateAgent(ctx, tenantID, a, true)
}

func (s *Store) updateAgent(ctx context.Context, tenantID string, a domain.Agent, copyBackoff bool) (domain.Agent, error) {
	a.TenantID = tenantID
	if err := a.Validate(); err != nil {
		return domain.Agent{}, err
	}
	read := a.Version
	a.Version++
	a.UpdatedAt = s.nowUTC()
	k := agentKey(tenantID, a.ID)
	var err error
	if copyBackoff {
		err = s.putAgentWithBackoff(ctx, k, a, read)
	} else {
		err = s.putVersioned(ctx, k, newAgentItem(a), read)
	}
	if err != nil {
		return domain.Agent{}, fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	return a, nil
}

// putAgentWithBackoff is putVersioned for an agent, copying its backoff to its capacity item in
// the same transaction, so the scheduler, which reads the backoff there, sees the agent's own.
func (s *Store) putAgentWithBackoff(ctx context.Context, k key, a domain.Agent, want int64) error {
	m, err := marshal(newAgentItem(a))
	if err != nil {
		return err
	}
	write := stamp(m)
	err = s.transact(ctx, []types.TransactWriteItem{
		{Put: &types.Put{
			TableName: &s.table, Item: m,
			ConditionExpression:       aws.String("attribute_exists(PK) AND #v = :v"),
			ExpressionAttributeNames:  map[string]string{"#v": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(want)},
		}},
		{Update: s.backoffUpdate(a)},
	})
	if _, failed := cancelledByCondition(err); failed {
		if s.landed(ctx, keyOf(m), write) {
			return nil
		}
		return s.missingOr(ctx, k, domain.ErrConflict)
	}
	if cancelReasons(err) != nil {
		// Still contended after a few tries: as good as another writer's change.
		return domain.ErrConflict
	}
	return err
}

// ModifyAgent reads an agent, applies change and writes it back, trying again when another
// writer got in between. change may return an error to abandon the update.
func (s *Store) ModifyAgent(ctx context.Context, tenantID, agentID string, change func(*domain.Agent) error) (domain.Agent, error) {
	for attempt := 0; ; attempt++ {
		a, err := s.GetAgent(ctx, tenantID, agentID)
		if err != nil {
			return domain.Agent{}, err
		}
		read := a
		if err := change(&a); err != nil {
			return domain.Agent{}, err
		}
		updated, err := s.updateAgent(ctx, tenantID, a, !sameBackoff(read, a))
		if errors.Is(err, domain.ErrConflict) && attempt < 5 {
			continue
		}
		return updated, err
	}
}

// DeleteAgent removes an agent, its credential, its capacity item, its policy assignments and
// its schedule slots. Its tasks, runs and snapshots stay as history. An agent that does not exist is
// domain.ErrNotFound; what an interrupted delete of it left behind goes all the same, so
// deleting again completes it.
func (s *Store) DeleteAgent(ctx context.Context, tenantID, agentID string) error {
	// The agent and its credential go first: Assign checks in its own transaction that the agent
	// exists, so no assignment is added from then on.
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Delete: &types.Delete{TableName: &s.table, Key: agentKey(tenantID, agentID).av(), ConditionExpression: aws.String("attribute_exists(PK)")}},
		{Delete: &types.Delete{
			TableName: &s.table, Key: agentCredKey(agentID).av(),
			// The credential is keyed by the agent ID alone; it goes only with its tenant's agent.
			ConditionExpression:       aws.String("attribute_not_exists(PK) OR tenantId = :t"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":t": str(tenantID)},
		}},
	}})
	failed, missing := cancelledByCondition(err)
	switch {
	case missing && failed[0] != 0:
		return fmt.Errorf("delete agent %s: its credential is another tenant's: %w", agentID, domain.ErrConflict)
	case err != nil && !missing:
		return fmt.Errorf("delete agent %s: %w", agentID, err)
	}
	// Then its capacity item, and its assignments and slots, found through the agent's index of
	// its policies.
	keys := []key{capacityKey(tenantID, agentID)}
	var cursor string
	for {
		policies, next, err := s.ListAgentPolicies(ctx, tenantID, agentID, Page{Limit: maxPageLimit, Cursor: cursor})
		if err != nil {
			return fmt.Errorf("delete agent %s: %w", agentID, err)
		}
		for _, p := range policies {
			keys = append(keys, assignmentKey(tenantID, p, agentID))
			for _, k := range slotKinds {
				keys = append(keys, slotKey(tenantID, p, agentID, k))
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if err := s.batchDelete(ctx, keys); err != nil {
		return fmt.Errorf("delete agent %s: %w", agentID, err)
	}
	if missing {
		return fmt.Errorf("delete agent %s: %w", agentID, domain.ErrNotFound)
	}
	return nil
}

// batchDelete deletes items 25 at a time.
func (s *Store) batchDelete(ctx context.Context, keys []key) error {
	reqs := make([]types.WriteRequest, len(keys))
	for i, k := range keys {
		reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k.av()}}
	}
	return s.batchWrite(ctx, reqs)
}

// batchWrite sends write requests 25 at a time, retrying what DynamoDB leaves unprocessed.
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	for len(reqs) > 0 {
		n := min(25, len(reqs))
		pending := map[string][]types.WriteRequest{s.table: reqs[:n]}
		reqs = reqs[n:]
		for attempt := 0; len(pending) > 0; attempt++ {
			if attempt > 8 {
				return fmt.Errorf("batch write: %d items left unprocessed", len(pending[s.table]))
			}
			out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return err
			}
			pending = out.UnprocessedItems
			if len(pending) > 0 {
				if err := sleepBackoff(ctx, attempt); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func joinAnd(conds []string) string { return strings.Join(conds, " AND ") }
