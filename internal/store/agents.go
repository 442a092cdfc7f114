package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/events"
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
// up is domain.ErrUnauthorized; the agent starts at version 1. The events evs are recorded with
// the agent.
func (s *Store) RegisterAgent(ctx context.Context, tenantID, tokenID string, a domain.Agent, evs ...events.Event) (domain.Agent, error) {
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
	write := stamp(agent)
	counts := newTally(tenantID)
	counts.agent(nil, &a)
	notExists := aws.String("attribute_not_exists(PK)")
	items, err := s.withEvents(append([]types.TransactWriteItem{
		s.consumeEnrollment(tenantID, tokenID, s.nowUTC()),
		{Put: &types.Put{TableName: &s.table, Item: agent, ConditionExpression: notExists}},
		{Put: &types.Put{TableName: &s.table, Item: cred, ConditionExpression: notExists}},
		{Put: &types.Put{TableName: &s.table, Item: capacity}},
	}, s.counterWrites(counts)...), evs)
	if err != nil {
		return domain.Agent{}, fmt.Errorf("register agent: %w", err)
	}
	err = s.transact(ctx, items)
	if failed, ok := cancelledByCondition(err); ok {
		if s.landed(ctx, keyOf(agent), write) {
			// An earlier attempt whose answer was lost registered the agent (and used the token).
			return a, nil
		}
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
//
// A change of the agent's status or backoff is counted on the tenant's agent counters in the
// same transaction. Not knowing the stored agent either, UpdateAgent first tries the write on
// the condition that the stored agent counts as the new one does, which needs no counter; only
// when that fails is the stored agent read to count the difference.
func (s *Store) UpdateAgent(ctx context.Context, tenantID string, a domain.Agent) (domain.Agent, error) {
	return s.updateAgent(ctx, tenantID, a, nil, true, nil)
}

// updateAgent writes a over the version it was read at. read, when known, is the agent as
// stored at that version (the write is conditioned on it, so the counters' difference follows
// from it without another read); copyBackoff puts the agent's backoff on its capacity item in
// the same transaction, and so are the outbox items of evs.
func (s *Store) updateAgent(ctx context.Context, tenantID string, a domain.Agent, read *domain.Agent, copyBackoff bool, evs []events.Event) (domain.Agent, error) {
	a.TenantID = tenantID
	if err := a.Validate(); err != nil {
		return domain.Agent{}, err
	}
	version := a.Version
	a.Version++
	a.UpdatedAt = s.nowUTC()
	m, err := marshal(newAgentItem(a))
	if err != nil {
		return domain.Agent{}, err
	}
	write := stamp(m)
	k := agentKey(tenantID, a.ID)
	var backoff []types.TransactWriteItem
	if copyBackoff {
		backoff = []types.TransactWriteItem{{Update: s.backoffUpdate(a)}}
	}
	if backoff, err = s.withEvents(backoff, evs); err != nil {
		return domain.Agent{}, fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	if read == nil {
		stored, done, err := s.putAgentCountedAlike(ctx, k, m, write, a, version, backoff)
		if done || err != nil {
			return a, err
		}
		read = &stored
	}
	counts := newTally(tenantID)
	counts.agent(read, &a)
	put := types.Put{
		TableName: &s.table, Item: m,
		ConditionExpression:       aws.String("#v = :v"),
		ExpressionAttributeNames:  map[string]string{"#v": "version"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(version)},
	}
	err = s.putWith(ctx, put, append(s.counterWrites(counts), backoff...))
	if errors.Is(err, errCountedOtherwise) {
		if s.landed(ctx, k.av(), write) {
			return a, nil
		}
		return domain.Agent{}, fmt.Errorf("update agent %s: %w", a.ID, s.missingOr(ctx, k, domain.ErrConflict))
	}
	if err != nil {
		return domain.Agent{}, fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	return a, nil
}

// putAgentCountedAlike writes an agent item m on the condition that the stored agent is at
// version and counts as a does, so that no counter changes. When the condition fails it reads
// the stored agent and returns it for the counted write, unless the write had landed after all
// (done) or the stored agent is missing or at another version (an error).
func (s *Store) putAgentCountedAlike(ctx context.Context, k key, m map[string]types.AttributeValue, write string, a domain.Agent, version int64, backoff []types.TransactWriteItem) (stored domain.Agent, done bool, err error) {
	cond, names, values := agentCountedAs(a)
	names["#v"], values[":v"] = "version", num(version)
	put := types.Put{
		TableName: &s.table, Item: m,
		ConditionExpression:      aws.String("#v = :v AND " + cond),
		ExpressionAttributeNames: names, ExpressionAttributeValues: values,
	}
	err = s.putWith(ctx, put, backoff)
	switch {
	case err == nil:
		return domain.Agent{}, true, nil
	case !errors.Is(err, errCountedOtherwise):
		return domain.Agent{}, false, fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	it, found, err := s.getAgentItem(ctx, k)
	switch {
	case err != nil:
		return domain.Agent{}, false, fmt.Errorf("update agent %s: %w", a.ID, err)
	case !found:
		return domain.Agent{}, false, fmt.Errorf("update agent %s: %w", a.ID, domain.ErrNotFound)
	case it.WriteID == write:
		return domain.Agent{}, true, nil // an earlier attempt whose answer was lost
	case it.Version != version:
		return domain.Agent{}, false, fmt.Errorf("update agent %s: %w", a.ID, domain.ErrConflict)
	}
	return it.domain(), false, nil
}

// putWith writes put together with the writes in with, in one transaction when there are any.
// A failed condition of put is errCountedOtherwise.
func (s *Store) putWith(ctx context.Context, put types.Put, with []types.TransactWriteItem) error {
	var err error
	if len(with) == 0 {
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: put.TableName, Item: put.Item, ConditionExpression: put.ConditionExpression,
			ExpressionAttributeNames: put.ExpressionAttributeNames, ExpressionAttributeValues: put.ExpressionAttributeValues,
		})
		if conditionFailed(err) {
			return errCountedOtherwise
		}
		return err
	}
	err = s.transact(ctx, append([]types.TransactWriteItem{{Put: &put}}, with...))
	if failed, ok := cancelledByCondition(err); ok && slices.Contains(failed, 0) {
		return errCountedOtherwise
	}
	return err
}

// errCountedOtherwise is an agent write's condition failing: the stored agent is not at the
// version read, or counts differently from the new one, so the write must count the difference.
var errCountedOtherwise = errors.New("the stored agent is another version or counts otherwise")

// storedAgent is an agent item as read, with the write ID of its last write.
type storedAgent struct {
	agentItem
	WriteID string `json:"writeId"`
}

// getAgentItem reads an agent item with a consistent read.
func (s *Store) getAgentItem(ctx context.Context, k key) (storedAgent, bool, error) {
	var it storedAgent
	err := s.get(ctx, k, &it)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return storedAgent{}, false, nil
	case err != nil:
		return storedAgent{}, false, err
	}
	return it, true, nil
}

// ModifyAgent reads an agent, applies change and writes it back, trying again when another
// writer got in between. change may return an error to abandon the update.
func (s *Store) ModifyAgent(ctx context.Context, tenantID, agentID string, change func(*domain.Agent) error) (domain.Agent, error) {
	a, _, err := s.ModifyAgentWith(ctx, tenantID, agentID, change, nil)
	return a, err
}

// ModifyAgentWith is ModifyAgent that records, with the agent's write, the events announce
// (which may be nil) makes of the agent as read and as it is to be stored, and returns them.
func (s *Store) ModifyAgentWith(ctx context.Context, tenantID, agentID string, change func(*domain.Agent) error, announce func(read, a domain.Agent) []events.Event) (domain.Agent, []events.Event, error) {
	for attempt := 0; ; attempt++ {
		a, err := s.GetAgent(ctx, tenantID, agentID)
		if err != nil {
			return domain.Agent{}, nil, err
		}
		read := a
		if err := change(&a); err != nil {
			return domain.Agent{}, nil, err
		}
		var evs []events.Event
		if announce != nil {
			evs = announce(read, a)
		}
		updated, err := s.updateAgent(ctx, tenantID, a, &read, !sameBackoff(read, a), evs)
		if errors.Is(err, domain.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return updated, nil, err
		}
		return updated, evs, nil
	}
}

// DeleteAgent removes an agent, its credential, its capacity item, its policy assignments and
// its schedule slots. Its tasks, runs and snapshots stay as history. An agent that does not exist is
// domain.ErrNotFound; what an interrupted delete of it left behind goes all the same, so
// deleting again completes it.
func (s *Store) DeleteAgent(ctx context.Context, tenantID, agentID string) error {
	// The agent and its credential go first: Assign checks in its own transaction that the agent
	// exists, so no assignment is added from then on. The delete holds only while the agent is
	// as read, so that it is counted as it was.
	missing := false
	for attempt := 0; ; attempt++ {
		stored, found, err := s.getAgentItem(ctx, agentKey(tenantID, agentID))
		if err != nil {
			return fmt.Errorf("delete agent %s: %w", agentID, err)
		}
		if !found {
			missing = true
			break
		}
		old := stored.domain()
		counts := newTally(tenantID)
		counts.agent(&old, nil)
		err = s.transact(ctx, append([]types.TransactWriteItem{
			{Delete: &types.Delete{
				TableName: &s.table, Key: agentKey(tenantID, agentID).av(),
				ConditionExpression:       aws.String("#v = :v"),
				ExpressionAttributeNames:  map[string]string{"#v": "version"},
				ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(old.Version)},
			}},
			{Delete: &types.Delete{
				TableName: &s.table, Key: agentCredKey(agentID).av(),
				// The credential is keyed by the agent ID alone; it goes only with its tenant's agent.
				ConditionExpression:       aws.String("attribute_not_exists(PK) OR tenantId = :t"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":t": str(tenantID)},
			}},
		}, s.counterWrites(counts)...))
		failed, cancelled := cancelledByCondition(err)
		switch {
		case cancelled && slices.Contains(failed, 1):
			return fmt.Errorf("delete agent %s: its credential is another tenant's: %w", agentID, domain.ErrConflict)
		case cancelled && attempt < 5:
			continue // the agent changed (or went) since it was read
		case cancelled:
			return fmt.Errorf("delete agent %s: it kept changing: %w", agentID, domain.ErrConflict)
		case err != nil:
			return fmt.Errorf("delete agent %s: %w", agentID, err)
		}
		break
	}
	// Then its capacity item, and its assignments and slots, found through the agent's index of
	// its policies.
	keys := []key{capacityKey(tenantID, agentID)}
	var slots []key
	var cursor string
	for {
		policies, next, err := s.ListAgentPolicies(ctx, tenantID, agentID, Page{Limit: maxPageLimit, Cursor: cursor})
		if err != nil {
			return fmt.Errorf("delete agent %s: %w", agentID, err)
		}
		for _, p := range policies {
			keys = append(keys, assignmentKey(tenantID, p, agentID))
			for _, k := range slotKinds {
				slots = append(slots, slotKey(tenantID, p, agentID, k))
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if err := s.deleteSlots(ctx, tenantID, slots); err != nil {
		return fmt.Errorf("delete agent %s: %w", agentID, err)
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
