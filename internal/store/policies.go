package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

type policyItem struct {
	key
	Entity string `json:"entity"`
	domain.Policy
}

func (it policyItem) domain() domain.Policy { return it.Policy }

type policyNameItem struct {
	key
	Entity   string `json:"entity"`
	PolicyID string `json:"policyId"`
}

func (s *Store) policyWrites(p domain.Policy) (policy, guard map[string]types.AttributeValue, err error) {
	if policy, err = marshal(policyItem{key: policyKey(p.TenantID, p.ID), Entity: entityPolicy, Policy: p}); err != nil {
		return nil, nil, err
	}
	guard, err = marshal(policyNameItem{key: policyNameKey(p.TenantID, p.Name), Entity: entityPolicyName, PolicyID: p.ID})
	return policy, guard, err
}

// CreatePolicy stores a new policy. Its name must be unique in the tenant and its repository
// must exist; otherwise domain.ErrConflict or a validation error naming the repository.
func (s *Store) CreatePolicy(ctx context.Context, tenantID string, p domain.Policy) (domain.Policy, error) {
	p.TenantID = tenantID
	if err := p.Validate(); err != nil {
		return domain.Policy{}, err
	}
	now := s.nowUTC()
	p.CreatedAt, p.UpdatedAt, p.Version = now, now, 1
	policy, guard, err := s.policyWrites(p)
	if err != nil {
		return domain.Policy{}, err
	}
	write := stamp(policy)
	notExists := aws.String("attribute_not_exists(PK)")
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: &s.table, Item: policy, ConditionExpression: notExists}},
		{Put: &types.Put{TableName: &s.table, Item: guard, ConditionExpression: notExists}},
		s.repositoryUse(tenantID, p.Repository, 1),
	}})
	if failed, ok := cancelledByCondition(err); ok {
		if s.landed(ctx, keyOf(policy), write) {
			return p, nil // an earlier attempt whose answer was lost created it
		}
		return domain.Policy{}, policyConflict(p, failed)
	}
	if err != nil {
		return domain.Policy{}, fmt.Errorf("create policy %q: %w", p.Name, err)
	}
	return p, nil
}

func (s *Store) repositoryExists(tenantID, name string) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: &s.table, Key: repoKey(tenantID, name).av(), ConditionExpression: aws.String("attribute_exists(PK)"),
	}}
}

// repositoryUse is the transaction action that counts delta more policies on a repository
// (repoItem.PolicyCount), failing when the repository does not exist.
func (s *Store) repositoryUse(tenantID, name string, delta int64) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                 &s.table,
		Key:                       repoKey(tenantID, name).av(),
		UpdateExpression:          aws.String("SET #n = if_not_exists(#n, :zero) + :delta"),
		ConditionExpression:       aws.String("attribute_exists(PK)"),
		ExpressionAttributeNames:  map[string]string{"#n": attrPolicyCount},
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0), ":delta": num(delta)},
	}}
}

// releaseRepository is the action that counts one policy fewer on a repository, or nothing when
// the repository does not exist: a policy imported in bulk was never counted, and its repository
// may be gone. Without a repository to count on, an update would create one.
func (s *Store) releaseRepository(ctx context.Context, tenantID, name string) ([]types.TransactWriteItem, error) {
	_, err := s.GetRepository(ctx, tenantID, name)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return []types.TransactWriteItem{s.repositoryUse(tenantID, name, -1)}, nil
}

// policyConflict explains which condition of a policy write failed: 0 the policy (version),
// 1 the name guard, 2 the repository.
func policyConflict(p domain.Policy, failed []int) error {
	for _, i := range failed {
		switch i {
		case 1:
			return fmt.Errorf("policy name %q is taken: %w", p.Name, domain.ErrConflict)
		case 2:
			return &domain.ValidationError{Fields: []domain.FieldError{{Field: "repository", Reason: fmt.Sprintf("no repository named %q", p.Repository)}}}
		}
	}
	return fmt.Errorf("policy %s changed meanwhile: %w", p.ID, domain.ErrConflict)
}

// GetPolicy reads a policy.
func (s *Store) GetPolicy(ctx context.Context, tenantID, policyID string) (domain.Policy, error) {
	var it policyItem
	if err := s.get(ctx, policyKey(tenantID, policyID), &it); err != nil {
		return domain.Policy{}, fmt.Errorf("get policy %s: %w", policyID, err)
	}
	return it.Policy, nil
}

// PolicyFilter narrows a listing of policies. Empty fields match everything.
type PolicyFilter struct {
	Repository string
}

// ListPolicies lists the tenant's policies in creation order.
func (s *Store) ListPolicies(ctx context.Context, tenantID string, f PolicyFilter, page Page) ([]domain.Policy, string, error) {
	l := listing{pk: tenantPK(tenantID), prefix: prefixPolicy}
	if f.Repository != "" {
		l.filter = "#repo = :repo"
		l.names = map[string]string{"#repo": "repository"}
		l.values = map[string]types.AttributeValue{":repo": str(f.Repository)}
	}
	policies, next, err := list(ctx, s, l, page, policyItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list policies: %w", err)
	}
	return policies, next, nil
}

// UpdatePolicy replaces a policy whose stored version is still p.Version; a rename moves the
// name guard in the same transaction.
func (s *Store) UpdatePolicy(ctx context.Context, tenantID string, p domain.Policy) (domain.Policy, error) {
	p.TenantID = tenantID
	if err := p.Validate(); err != nil {
		return domain.Policy{}, err
	}
	old, err := s.GetPolicy(ctx, tenantID, p.ID)
	if err != nil {
		return domain.Policy{}, err
	}
	if old.Version != p.Version {
		return domain.Policy{}, fmt.Errorf("update policy %s: version %d is not the stored %d: %w", p.ID, p.Version, old.Version, domain.ErrConflict)
	}
	read := p.Version
	p.Version++
	p.CreatedAt = old.CreatedAt
	p.UpdatedAt = s.nowUTC()
	policy, guard, err := s.policyWrites(p)
	if err != nil {
		return domain.Policy{}, err
	}
	write := stamp(policy)
	items := []types.TransactWriteItem{
		{Put: &types.Put{
			TableName: &s.table, Item: policy,
			ConditionExpression:       aws.String("attribute_exists(PK) AND #v = :v"),
			ExpressionAttributeNames:  map[string]string{"#v": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(read)},
		}},
	}
	if old.Name != p.Name {
		items = append(items,
			types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: guard, ConditionExpression: aws.String("attribute_not_exists(PK)")}})
	} else {
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName: &s.table, Key: policyNameKey(tenantID, p.Name).av(), ConditionExpression: aws.String("attribute_exists(PK)"),
		}})
	}
	if old.Repository == p.Repository {
		items = append(items, s.repositoryExists(tenantID, p.Repository))
	} else {
		items = append(items, s.repositoryUse(tenantID, p.Repository, 1))
		release, err := s.releaseRepository(ctx, tenantID, old.Repository)
		if err != nil {
			return domain.Policy{}, fmt.Errorf("update policy %s: %w", p.ID, err)
		}
		items = append(items, release...)
	}
	if old.Name != p.Name {
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{TableName: &s.table, Key: policyNameKey(tenantID, old.Name).av()}})
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if failed, ok := cancelledByCondition(err); ok {
		if s.landed(ctx, keyOf(policy), write) {
			return p, nil // an earlier attempt whose answer was lost wrote it
		}
		return domain.Policy{}, policyConflict(p, failed)
	}
	if err != nil {
		return domain.Policy{}, fmt.Errorf("update policy %s: %w", p.ID, err)
	}
	return p, nil
}

// DeletePolicy removes a policy, its name guard, its assignments and its schedule slots. Its
// runs and tasks stay as history. A policy that does not exist is domain.ErrNotFound; what an
// interrupted delete of it left behind goes all the same, so deleting again completes it.
func (s *Store) DeletePolicy(ctx context.Context, tenantID, policyID string) error {
	for attempt := 0; ; attempt++ {
		p, err := s.GetPolicy(ctx, tenantID, policyID)
		if errors.Is(err, domain.ErrNotFound) {
			if err := s.deletePartition(ctx, tenantID, policyPK(tenantID, policyID)); err != nil {
				return fmt.Errorf("delete policy %s: %w", policyID, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		// The policy goes first, with the name guard it was read with (a rename meanwhile fails
		// the version condition, or its new guard would be left to block the name for ever) and
		// its count on the repository.
		release, err := s.releaseRepository(ctx, tenantID, p.Repository)
		if err != nil {
			return fmt.Errorf("delete policy %s: %w", policyID, err)
		}
		items := append([]types.TransactWriteItem{
			{Delete: &types.Delete{
				TableName: &s.table, Key: policyKey(tenantID, policyID).av(),
				ConditionExpression:       aws.String("attribute_exists(PK) AND #v = :v"),
				ExpressionAttributeNames:  map[string]string{"#v": "version"},
				ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(p.Version)},
			}},
			{Delete: &types.Delete{TableName: &s.table, Key: policyNameKey(tenantID, p.Name).av()}},
		}, release...)
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if _, ok := cancelledByCondition(err); ok {
			if attempt < 5 {
				continue
			}
			return fmt.Errorf("delete policy %s: it kept changing: %w", policyID, domain.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("delete policy %s: %w", policyID, err)
		}
		// Then everything under the policy's partition: assignments, slots, overdue checks.
		// Assign checks in its own transaction that the policy exists, so none is added from
		// now on, and a consistent read sees every one added before.
		if err := s.deletePartition(ctx, tenantID, policyPK(tenantID, policyID)); err != nil {
			return fmt.Errorf("delete policy %s: %w", policyID, err)
		}
		return nil
	}
}

// deletePartition deletes every item of one of a tenant's partitions. Slots in it go through
// deleteSlots, so those marked overdue are counted off.
func (s *Store) deletePartition(ctx context.Context, tenantID, pk string) error {
	var keys, slots []key
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
		ProjectionExpression:      aws.String("PK, SK"),
		ConsistentRead:            aws.Bool(true),
	}
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return err
		}
		for _, item := range out.Items {
			var k key
			if err := unmarshal(item, &k); err != nil {
				return err
			}
			if strings.HasPrefix(k.SK, prefixSlot) {
				slots = append(slots, k)
			} else {
				keys = append(keys, k)
			}
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	if err := s.deleteSlots(ctx, tenantID, slots); err != nil {
		return err
	}
	return s.batchDelete(ctx, keys)
}

type assignmentItem struct {
	key
	GSI1PK string `json:"GSI1PK"`
	GSI1SK string `json:"GSI1SK"`
	Entity string `json:"entity"`
	domain.Assignment
}

// Assign binds a policy to an agent and writes the assignment's schedule slots, all or nothing.
// Both must exist (else domain.ErrNotFound). Assigning again replaces the slots, so it also
// serves to reschedule.
func (s *Store) Assign(ctx context.Context, tenantID, policyID, agentID string, slots []domain.Slot) error {
	if err := validateSlots(slots); err != nil {
		return err
	}
	a := domain.Assignment{TenantID: tenantID, PolicyID: policyID, AgentID: agentID, CreatedAt: s.nowUTC()}
	item, err := marshal(assignmentItem{
		key: assignmentKey(tenantID, policyID, agentID), GSI1PK: agentPoliciesGSI1(tenantID, agentID), GSI1SK: prefixPolicy + policyID,
		Entity: entityAssignment, Assignment: a,
	})
	if err != nil {
		return err
	}
	// Each slot write holds only while the slot is marked overdue as read, so that a change of
	// the mark is counted; when a slot changed meanwhile, they are read again.
	kinds := make([]key, len(slotKinds))
	for i, k := range slotKinds {
		kinds[i] = slotKey(tenantID, policyID, agentID, k)
	}
	exists := aws.String("attribute_exists(PK)")
	for attempt := 0; ; attempt++ {
		stored, err := s.slotsCounted(ctx, kinds)
		if err != nil {
			return fmt.Errorf("assign policy %s to agent %s: %w", policyID, agentID, err)
		}
		counts := newTally(tenantID)
		items := []types.TransactWriteItem{
			{ConditionCheck: &types.ConditionCheck{TableName: &s.table, Key: policyKey(tenantID, policyID).av(), ConditionExpression: exists}},
			{ConditionCheck: &types.ConditionCheck{TableName: &s.table, Key: agentKey(tenantID, agentID).av(), ConditionExpression: exists}},
			{Put: &types.Put{TableName: &s.table, Item: item}},
		}
		given := map[domain.SlotKind]bool{}
		for _, sl := range slots {
			sl.TenantID, sl.PolicyID, sl.AgentID = tenantID, policyID, agentID
			given[sl.Kind] = true
			m, err := marshal(newSlotItem(sl))
			if err != nil {
				return err
			}
			k := slotKey(tenantID, policyID, agentID, sl.Kind)
			items = append(items, slotWrite(types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: m}}, sl.Kind, stored[k], slotCounted(sl.Kind, sl.Overdue), counts))
		}
		// Replacing means a kind the policy no longer schedules (its forget or check schedule was
		// removed) loses its slot, or the scheduler would keep dispatching it.
		for _, kind := range slotKinds {
			if !given[kind] {
				k := slotKey(tenantID, policyID, agentID, kind)
				items = append(items, slotWrite(types.TransactWriteItem{Delete: &types.Delete{TableName: &s.table, Key: k.av()}}, kind, stored[k], false, counts))
			}
		}
		err = s.transact(ctx, append(items, s.counterWrites(counts)...))
		if failed, ok := cancelledByCondition(err); ok {
			switch {
			case slices.Contains(failed, 0):
				return fmt.Errorf("assign: policy %s: %w", policyID, domain.ErrNotFound)
			case slices.Contains(failed, 1):
				return fmt.Errorf("assign: agent %s: %w", agentID, domain.ErrNotFound)
			case attempt < maxSlotTries:
				continue
			}
			return fmt.Errorf("assign policy %s to agent %s: its slots kept changing: %w", policyID, agentID, domain.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("assign policy %s to agent %s: %w", policyID, agentID, err)
		}
		return nil
	}
}

// validateSlots checks an assignment's slots: each of a known kind, at most one of each. A slot
// of another kind would outlive its assignment (unassigning removes the known kinds), and two of
// one kind would be two writes to one item, which a transaction refuses.
func validateSlots(slots []domain.Slot) error {
	var fields []domain.FieldError
	seen := map[domain.SlotKind]bool{}
	for i, sl := range slots {
		field := fmt.Sprintf("slots[%d].kind", i)
		switch {
		case !slices.Contains(slotKinds, sl.Kind):
			fields = append(fields, domain.FieldError{Field: field, Reason: "must be backup, forget, check or stats"})
		case seen[sl.Kind]:
			fields = append(fields, domain.FieldError{Field: field, Reason: fmt.Sprintf("a second %s slot: one of each kind at most", sl.Kind)})
		}
		seen[sl.Kind] = true
	}
	if len(fields) > 0 {
		return &domain.ValidationError{Fields: fields}
	}
	return nil
}

// Unassign removes a policy from an agent with the assignment's slots. Removing an assignment
// that does not exist is domain.ErrNotFound.
func (s *Store) Unassign(ctx context.Context, tenantID, policyID, agentID string) error {
	if err := s.deleteExisting(ctx, assignmentKey(tenantID, policyID, agentID)); err != nil {
		return fmt.Errorf("unassign policy %s from agent %s: %w", policyID, agentID, err)
	}
	keys := make([]key, 0, len(slotKinds))
	for _, k := range slotKinds {
		keys = append(keys, slotKey(tenantID, policyID, agentID, k))
	}
	if err := s.deleteSlots(ctx, tenantID, keys); err != nil {
		return fmt.Errorf("unassign policy %s from agent %s: %w", policyID, agentID, err)
	}
	return nil
}

// ListPolicyAgents lists the IDs of the agents a policy is assigned to.
func (s *Store) ListPolicyAgents(ctx context.Context, tenantID, policyID string, page Page) ([]string, string, error) {
	ids, next, err := list(ctx, s, listing{pk: policyPK(tenantID, policyID), prefix: prefixAgent}, page,
		func(it assignmentItem) string { return it.AgentID })
	if err != nil {
		return nil, "", fmt.Errorf("list agents of policy %s: %w", policyID, err)
	}
	return ids, next, nil
}

// ListAgentPolicies lists the IDs of the policies assigned to an agent.
func (s *Store) ListAgentPolicies(ctx context.Context, tenantID, agentID string, page Page) ([]string, string, error) {
	ids, next, err := list(ctx, s, listing{index: resources.GSI1, pk: agentPoliciesGSI1(tenantID, agentID), prefix: prefixPolicy}, page,
		func(it assignmentItem) string { return it.PolicyID })
	if err != nil {
		return nil, "", fmt.Errorf("list policies of agent %s: %w", agentID, err)
	}
	return ids, next, nil
}
