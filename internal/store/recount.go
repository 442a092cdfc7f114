package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// Recount rebuilds a tenant's counters from its items and returns what they now say. It reads
// every agent, the runs of the counted hours, every policy and every policy's slots, so it
// costs as much as the fleet is large: it is for a deployment that starts counting (its tenants'
// items were written before the counters existed), for a bulk import, and for repairs. It also
// puts the slots marked overdue into the overdue index, and takes unmarked ones out, for slots
// marked before the index existed.
//
// Counted changes made while it runs are not all seen by it: a change between its read of an
// item and its write of the counters is lost or counted twice. Run it while the tenant is quiet,
// or run it again.
func (s *Store) Recount(ctx context.Context, tenantID string) (Counts, error) {
	now := s.nowUTC()
	counts := newTally(tenantID)

	agents := listing{pk: tenantPK(tenantID), prefix: prefixAgent}
	err := s.queryAll(ctx, agents, "#status, backoffUntil", map[string]string{"#status": "status"}, func(m map[string]types.AttributeValue) error {
		var a domain.Agent
		if err := unmarshal(m, &a); err != nil {
			return err
		}
		counts.agent(nil, &a)
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("recount agents: %w", err)
	}

	// The runs of every hour a change is still counted in (runCounted).
	from := RunWindowStart(now).Add(-time.Hour)
	runs := listing{pk: tenantPK(tenantID), from: prefixRun + domain.IDAt(from), to: prefixRun + "~"}
	err = s.queryAll(ctx, runs, "#id, #status", map[string]string{"#id": "id", "#status": "status"}, func(m map[string]types.AttributeValue) error {
		var r domain.Run
		if err := unmarshal(m, &r); err != nil {
			return err
		}
		counts.run(r.ID, "", r.Status, now)
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("recount runs: %w", err)
	}

	var policies []string
	err = s.queryAll(ctx, listing{pk: tenantPK(tenantID), prefix: prefixPolicy}, "#id", map[string]string{"#id": "id"}, func(m map[string]types.AttributeValue) error {
		var p domain.Policy
		if err := unmarshal(m, &p); err != nil {
			return err
		}
		policies = append(policies, p.ID)
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("recount policies: %w", err)
	}
	for _, p := range policies {
		var fix []slotItem
		slots := listing{pk: policyPK(tenantID, p), prefix: prefixSlot}
		err := s.queryAll(ctx, slots, "PK, SK, GSI1PK, tenantId, policyId, agentId, #kind, overdue", map[string]string{"#kind": "kind"}, func(m map[string]types.AttributeValue) error {
			var it slotItem
			if err := unmarshal(m, &it); err != nil {
				return err
			}
			counted := slotCounted(it.Kind, it.Overdue)
			counts.overdue(false, counted)
			if counted != (it.GSI1PK != "") {
				fix = append(fix, it)
			}
			return nil
		})
		if err != nil {
			return Counts{}, fmt.Errorf("recount slots of policy %s: %w", p, err)
		}
		for _, it := range fix {
			if err := s.reindexSlot(ctx, it); err != nil {
				return Counts{}, err
			}
		}
	}

	if err := s.replaceCounters(ctx, tenantID, counts, from); err != nil {
		return Counts{}, fmt.Errorf("recount: %w", err)
	}
	return s.Counts(ctx, tenantID, RunWindowStart(now))
}

// reindexSlot puts a slot marked overdue into the overdue index, or takes an unmarked one out,
// unless its mark changed since it was read.
func (s *Store) reindexSlot(ctx context.Context, it slotItem) error {
	counted := slotCounted(it.Kind, it.Overdue)
	cond, values := slotCountedAs(counted)
	expr := "REMOVE " + resources.AttrGSI1PK + ", " + resources.AttrGSI1SK
	if counted {
		set, setValues := overdueIndexSet(it.TenantID, it.PolicyID, it.AgentID)
		expr = "SET " + set
		for k, v := range setValues {
			values[k] = v
		}
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: it.key.av(), UpdateExpression: aws.String(expr),
		ConditionExpression: aws.String("attribute_exists(PK) AND " + cond), ExpressionAttributeValues: values,
	})
	if err != nil && !conditionFailed(err) {
		return fmt.Errorf("index overdue slot %s/%s/%s: %w", it.PolicyID, it.AgentID, it.Kind, err)
	}
	return nil
}

// replaceCounters writes counts as a tenant's counters, replacing what they held; run buckets of
// hours from from on that counts has no runs in are removed.
func (s *Store) replaceCounters(ctx context.Context, tenantID string, counts *tally, from time.Time) error {
	existing, err := s.counterItems(ctx, tenantID)
	if err != nil {
		return err
	}
	items := map[string]map[string]types.AttributeValue{}
	put := func(ref counterRef, d map[string]int64) {
		m := key{tenantPK(tenantID), ref.sk}.av()
		m["entity"] = str(entityCounts)
		for attr, n := range d {
			m[attr] = num(n)
		}
		if ref.ttl != 0 {
			m[resources.AttrTTL] = num(ref.ttl)
		}
		items[ref.sk] = m
	}
	// The agent and overdue counters always exist after a recount, at zero if need be.
	put(counterRef{sk: skCountsAgents}, map[string]int64{cntOnline: 0, cntOffline: 0, cntBackingOff: 0})
	put(counterRef{sk: skCountsOverdue}, map[string]int64{cntSlots: 0})
	for ref, d := range counts.deltas {
		put(ref, d)
	}
	var reqs []types.WriteRequest
	first := runBucketSK(from)
	for _, it := range existing {
		if _, kept := items[it.SK]; !kept && (!strings.HasPrefix(it.SK, prefixCountsRuns) || it.SK >= first) {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: it.key.av()}})
		}
	}
	for _, m := range items {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: m}})
	}
	return s.batchWrite(ctx, reqs)
}

// queryAll reads every item of a listing, projected to projection (with names), and decodes
// each with decode.
func (s *Store) queryAll(ctx context.Context, l listing, projection string, names map[string]string, decode func(map[string]types.AttributeValue) error) error {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(l.pk), ":prefix": str(l.prefix)},
		ProjectionExpression:      aws.String(projection),
		ConsistentRead:            aws.Bool(true),
	}
	if l.from != "" || l.to != "" {
		in.KeyConditionExpression = aws.String("PK = :pk AND SK BETWEEN :from AND :to")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":pk": str(l.pk), ":from": str(l.from), ":to": str(l.to)}
	}
	if len(names) > 0 {
		in.ExpressionAttributeNames = names
	}
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return err
		}
		for _, m := range out.Items {
			if err := decode(m); err != nil {
				return err
			}
		}
		if out.LastEvaluatedKey == nil {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}
