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

// slotItem is a schedule slot. It is in the due index only while it has a next run time.
type slotItem struct {
	key
	GSI2PK string `json:"GSI2PK,omitempty"`
	GSI2SK string `json:"GSI2SK,omitempty"`
	Entity string `json:"entity"`
	domain.Slot
}

func (it slotItem) domain() domain.Slot { return it.Slot }

func newSlotItem(sl domain.Slot) slotItem {
	it := slotItem{key: slotKey(sl.TenantID, sl.PolicyID, sl.AgentID, sl.Kind), Entity: entitySlot, Slot: sl}
	if sl.NextRunAt != nil {
		it.GSI2PK = dueGSI2(shardOf(sl.TenantID, sl.PolicyID, sl.AgentID, string(sl.Kind)))
		it.GSI2SK = slotDueSK(sl.TenantID, sl.PolicyID, sl.AgentID, sl.Kind, *sl.NextRunAt)
	}
	return it
}

// GetSlot reads one schedule slot.
func (s *Store) GetSlot(ctx context.Context, tenantID, policyID, agentID string, kind domain.SlotKind) (domain.Slot, error) {
	var it slotItem
	if err := s.get(ctx, slotKey(tenantID, policyID, agentID, kind), &it); err != nil {
		return domain.Slot{}, fmt.Errorf("get slot %s/%s/%s: %w", policyID, agentID, kind, err)
	}
	return it.Slot, nil
}

// ListPolicySlots lists a policy's schedule slots, on every agent it is assigned to.
func (s *Store) ListPolicySlots(ctx context.Context, tenantID, policyID string, page Page) ([]domain.Slot, string, error) {
	slots, next, err := list(ctx, s, listing{pk: policyPK(tenantID, policyID), prefix: prefixSlot}, page, slotItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list slots of policy %s: %w", policyID, err)
	}
	return slots, next, nil
}

// PutSlot writes a slot as it is, replacing what was stored.
func (s *Store) PutSlot(ctx context.Context, tenantID string, sl domain.Slot) error {
	sl.TenantID = tenantID
	m, err := marshal(newSlotItem(sl))
	if err != nil {
		return err
	}
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: m}); err != nil {
		return fmt.Errorf("put slot: %w", err)
	}
	return nil
}

// Due is one entry of the due index: a slot whose next run time has come, a task the scheduler
// must send, retry or expire, or an agent that went silent. Exactly one is set.
type Due struct {
	Slot *domain.Slot
	Task *domain.Task
	// Agent is an online agent whose heartbeats have stopped for three intervals.
	Agent *domain.Agent
}

// QueryDue returns the entries of one due-index shard that are due at or before now, oldest
// first, at most limit of them, with a cursor for the rest. It spans tenants: it serves the
// scheduler, which acts on every tenant's behalf.
func (s *Store) QueryDue(ctx context.Context, shard int, now time.Time, page Page) ([]Due, string, error) {
	if shard < 0 || shard >= resources.DueShards {
		return nil, "", fmt.Errorf("query due: shard %d out of range", shard)
	}
	l := listing{index: resources.GSI2, pk: dueGSI2(shard), from: "0", to: fmtTime(now) + "#~"}
	var due []Due
	next, err := s.query(ctx, l, page, func(m map[string]types.AttributeValue) error {
		var head struct {
			Entity string `json:"entity"`
		}
		if err := unmarshal(m, &head); err != nil {
			return err
		}
		switch head.Entity {
		case entitySlot:
			var it slotItem
			if err := unmarshal(m, &it); err != nil {
				return err
			}
			due = append(due, Due{Slot: &it.Slot})
		case entityTask:
			var it taskItem
			if err := unmarshal(m, &it); err != nil {
				return err
			}
			due = append(due, Due{Task: &it.Task})
		case entityAgent:
			var it agentItem
			if err := unmarshal(m, &it); err != nil {
				return err
			}
			a := it.domain()
			due = append(due, Due{Agent: &a})
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("query due shard %d: %w", shard, err)
	}
	return due, next, nil
}

// Claim moves a due slot to its next run time and creates the task for the run it claims. It
// wins only if the slot still has the next run time it was read with, so two schedulers that
// read the same slot cannot both create a task.
type Claim struct {
	// Slot is the slot as read from the due index; its NextRunAt is the condition.
	Slot domain.Slot
	// Next is the slot's next run time after this one.
	Next time.Time
	// Task is the task to create; it is usually pending, to be sent afterwards.
	Task domain.Task
}

// ClaimResult says how one claim ended.
type ClaimResult struct {
	Won bool
	// Err is set when the claim could not be decided (not when another scheduler won it).
	Err error
}

// maxClaimsPerTransaction keeps a transaction within DynamoDB's 100 actions (two per claim).
const maxClaimsPerTransaction = 50

// ClaimSlots decides a batch of claims with as few requests as it can: claims share
// transactions of up to 100 actions; when a condition cancels a shared transaction, its claims
// are decided one by one, so one lost claim does not lose the others.
func (s *Store) ClaimSlots(ctx context.Context, claims []Claim) []ClaimResult {
	results := make([]ClaimResult, len(claims))
	for start := 0; start < len(claims); start += maxClaimsPerTransaction {
		end := min(start+maxClaimsPerTransaction, len(claims))
		s.claimChunk(ctx, claims[start:end], results[start:end])
	}
	return results
}

func (s *Store) claimChunk(ctx context.Context, claims []Claim, results []ClaimResult) {
	items := make([]types.TransactWriteItem, 0, 2*len(claims))
	for i, c := range claims {
		actions, err := s.claimActions(c)
		if err != nil {
			results[i].Err = err
			continue
		}
		items = append(items, actions...)
	}
	if len(items) == 0 {
		return
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err == nil {
		for i := range results {
			results[i].Won = results[i].Err == nil
		}
		return
	}
	if len(claims) == 1 {
		if _, ok := cancelledByCondition(err); ok {
			return
		}
		results[0].Err = fmt.Errorf("claim slot: %w", err)
		return
	}
	// Decide each claim on its own: one lost or conflicting claim cancels a shared transaction.
	for i := range claims {
		if results[i].Err == nil {
			s.claimChunk(ctx, claims[i:i+1], results[i:i+1])
		}
	}
}

func (s *Store) claimActions(c Claim) ([]types.TransactWriteItem, error) {
	if c.Slot.NextRunAt == nil {
		return nil, fmt.Errorf("claim slot %s/%s: slot is not due", c.Slot.PolicyID, c.Slot.AgentID)
	}
	if err := c.Task.Validate(); err != nil {
		return nil, err
	}
	next := c.Slot
	next.NextRunAt = &c.Next
	now := s.nowUTC()
	next.LastDispatchedAt, next.LastTaskID, next.WaitReason = &now, c.Task.ID, ""
	slot, err := marshal(newSlotItem(next))
	if err != nil {
		return nil, err
	}
	t := c.Task
	t.TenantID = c.Slot.TenantID
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	t.UpdatedAt = now
	task, err := marshal(newTaskItem(t, 1))
	if err != nil {
		return nil, err
	}
	return []types.TransactWriteItem{
		{Put: &types.Put{
			TableName: &s.table, Item: slot,
			ConditionExpression:       aws.String("nextRunAt = :expected"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":expected": str(fmtTime(*c.Slot.NextRunAt))},
		}},
		{Put: &types.Put{TableName: &s.table, Item: task, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
	}, nil
}

// SetSlotWait records why a due slot was not dispatched, keeping it due. It changes nothing
// when the slot moved on meanwhile.
func (s *Store) SetSlotWait(ctx context.Context, sl domain.Slot, reason string) error {
	if sl.NextRunAt == nil {
		return nil
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       slotKey(sl.TenantID, sl.PolicyID, sl.AgentID, sl.Kind).av(),
		UpdateExpression:          aws.String("SET waitReason = :r"),
		ConditionExpression:       aws.String("nextRunAt = :expected"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":r": str(reason), ":expected": str(fmtTime(*sl.NextRunAt))},
	})
	if err != nil && !conditionFailed(err) {
		return fmt.Errorf("record slot wait: %w", err)
	}
	return nil
}
