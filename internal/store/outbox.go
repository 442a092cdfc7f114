package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/events"
)

// This file holds the outbox: every domain event is an item written in the transaction of the
// change it reports, so a change and its event exist together or not at all, and the
// scheduler's tick publishes pending items to the deployment's bus and removes them
// (docs/architecture.md, "Events"). The items sit in the tenant's partition, so deleting a
// tenant removes its unpublished events, and in the due index at the event's time, so finding
// them costs what is pending.

// OutboxEntry is one unpublished event.
type OutboxEntry struct {
	TenantID string
	EventID  string
	Type     events.EventType
	Time     time.Time
	// Body is the event's JSON, the detail of its bus entry.
	Body []byte
}

type outboxItem struct {
	key
	Entity   string `json:"entity"`
	TenantID string `json:"tenantId"`
	EventID  string `json:"eventId"`
	Type     string `json:"eventType"`
	Time     string `json:"eventTime"`
	Body     string `json:"body"`
	GSI2PK   string `json:"GSI2PK"`
	GSI2SK   string `json:"GSI2SK"`
}

func (it outboxItem) entry() (OutboxEntry, error) {
	at, err := time.Parse(timeLayout, it.Time)
	if err != nil {
		return OutboxEntry{}, fmt.Errorf("outbox item %s: time %q: %w", it.EventID, it.Time, err)
	}
	return OutboxEntry{TenantID: it.TenantID, EventID: it.EventID, Type: events.EventType(it.Type), Time: at, Body: []byte(it.Body)}, nil
}

const prefixOutbox = "OUTBOX#"

func outboxKey(t, id string) key { return key{tenantPK(t), prefixOutbox + id} }

func outboxDueSK(t, id string, at time.Time) string { return dueSK(at, prefixOutbox+t+"#"+id) }

// outboxPuts are the actions that record evs, one Put each. An event that fails its own
// validation is recorded as it is, unchecked: the change it reports happened and must not be
// refused for it, and a consumer rejects it with the reason.
func (s *Store) outboxPuts(evs []events.Event) ([]types.TransactWriteItem, error) {
	items := make([]types.TransactWriteItem, 0, len(evs))
	for _, ev := range evs {
		body, err := ev.Encode()
		if err != nil {
			if body, err = json.Marshal(ev); err != nil {
				return nil, fmt.Errorf("record event %s: %w", ev.ID, err)
			}
		}
		it := outboxItem{
			key: outboxKey(ev.TenantID, ev.ID), Entity: entityOutbox, TenantID: ev.TenantID, EventID: ev.ID,
			Type: string(ev.Type), Time: fmtTime(ev.Time), Body: string(body),
			GSI2PK: dueGSI2(shardOf(ev.TenantID, ev.ID)), GSI2SK: outboxDueSK(ev.TenantID, ev.ID, ev.Time),
		}
		m, err := marshal(it)
		if err != nil {
			return nil, fmt.Errorf("record event %s: %w", ev.ID, err)
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: m}})
	}
	return items, nil
}

// RecordEvents writes evs to the outbox on their own, for events no stored change carries.
func (s *Store) RecordEvents(ctx context.Context, evs []events.Event) error {
	items, err := s.outboxPuts(evs)
	if err != nil {
		return err
	}
	for start := 0; start < len(items); start += txLimit(ctx) {
		if err := s.transact(ctx, items[start:min(start+txLimit(ctx), len(items))]); err != nil {
			return fmt.Errorf("record %d events: %w", len(items), err)
		}
	}
	return nil
}

// OutboxEntryOf is the entry an event recorded with a change becomes, for a writer that
// publishes the events it just stored without reading them back.
func OutboxEntryOf(ev events.Event) OutboxEntry {
	body, err := ev.Encode()
	if err != nil {
		body, _ = json.Marshal(ev)
	}
	return OutboxEntry{TenantID: ev.TenantID, EventID: ev.ID, Type: ev.Type, Time: ev.Time.UTC(), Body: body}
}

// DeleteOutbox removes published entries; an entry already gone counts as removed.
func (s *Store) DeleteOutbox(ctx context.Context, entries []OutboxEntry) error {
	keys := make([]key, len(entries))
	for i, e := range entries {
		keys[i] = outboxKey(e.TenantID, e.EventID)
	}
	if err := s.batchDelete(ctx, keys); err != nil {
		return fmt.Errorf("delete %d outbox entries: %w", len(entries), err)
	}
	return nil
}

// withEvents appends to items the outbox puts of evs, failing when the transaction would have
// more actions than DynamoDB allows.
func (s *Store) withEvents(items []types.TransactWriteItem, evs []events.Event) ([]types.TransactWriteItem, error) {
	if len(evs) == 0 {
		return items, nil
	}
	puts, err := s.outboxPuts(evs)
	if err != nil {
		return nil, err
	}
	if len(items)+len(puts) > maxTransactionActions {
		return nil, fmt.Errorf("record %d events: the transaction would have %d actions, more than %d", len(evs), len(items)+len(puts), maxTransactionActions)
	}
	return append(items, puts...), nil
}
