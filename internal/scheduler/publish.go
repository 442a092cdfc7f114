package scheduler

import (
	"context"
	"log/slog"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// EventSource is the source of every entry the publisher puts on the bus; a rule matches the
// deployment's events by it.
const EventSource = resources.EventSource

// PutEvents limits: entries per request, and bytes per request as EventBridge counts them
// (source, detail type, detail and the rest of each entry).
const (
	maxPutEntries = 10
	maxPutBytes   = 256 * 1024
	// entryOverhead covers the time and the bus name of an entry, which count too.
	entryOverhead = 128
)

// Bus is the deployment's EventBridge bus; *eventbridge.Client is one.
type Bus interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// OutboxStore removes published events; *store.Store is one.
type OutboxStore interface {
	DeleteOutbox(ctx context.Context, entries []store.OutboxEntry) error
}

// Publisher moves the outbox's events to the bus: PutEvents in batches of ten, then removal of
// the entries the bus accepted. An entry the bus refused, or whose request failed, stays in the
// outbox for the next tick; one removed after it was accepted is never sent again. Only a
// process that dies between the two sends an event twice, with the same ID, which consumers
// dedupe by.
type Publisher struct {
	Bus     Bus
	BusName string
	Store   OutboxStore
	Log     *slog.Logger
	// Concurrency bounds the PutEvents requests in flight (0: DefaultConcurrency).
	Concurrency int
}

// PublishSummary says what one Publish did.
type PublishSummary struct {
	Published, Unpublished, Errors int
}

// Publish sends entries, oldest first, and removes from the outbox those the bus accepted.
// Entries with the same event ID are sent once.
func (p *Publisher) Publish(ctx context.Context, entries []store.OutboxEntry) PublishSummary {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	entries = uniqueEntries(entries)
	batches := packEntries(entries)
	var (
		mu  sync.Mutex
		sum PublishSummary
	)
	limit := p.Concurrency
	if limit <= 0 {
		limit = DefaultConcurrency
	}
	forEach(len(batches), limit, func(i int) {
		accepted, errs := p.put(ctx, log, batches[i])
		removed := 0
		if len(accepted) > 0 {
			if err := p.Store.DeleteOutbox(ctx, accepted); err != nil {
				// Published, but still pending: the next tick sends them again, with their IDs.
				log.ErrorContext(ctx, "remove published events from the outbox", "events", len(accepted), "error", err)
				errs++
			} else {
				removed = len(accepted)
			}
		}
		for _, e := range accepted {
			log.InfoContext(ctx, "domain event published", "event_id", e.EventID, "event_type", string(e.Type), "tenant_id", e.TenantID)
		}
		mu.Lock()
		sum.Published += len(accepted)
		sum.Unpublished += len(batches[i]) - len(accepted) + (len(accepted) - removed)
		sum.Errors += errs
		mu.Unlock()
	})
	return sum
}

// put sends one batch and returns the entries the bus accepted, and how many errors it met.
func (p *Publisher) put(ctx context.Context, log *slog.Logger, batch []store.OutboxEntry) ([]store.OutboxEntry, int) {
	in := &eventbridge.PutEventsInput{Entries: make([]ebtypes.PutEventsRequestEntry, len(batch))}
	for i, e := range batch {
		in.Entries[i] = ebtypes.PutEventsRequestEntry{
			EventBusName: aws.String(p.BusName),
			Source:       aws.String(EventSource),
			DetailType:   aws.String(string(e.Type)),
			Detail:       aws.String(string(e.Body)),
			Time:         aws.Time(e.Time),
		}
	}
	out, err := p.Bus.PutEvents(ctx, in)
	if err != nil {
		log.ErrorContext(ctx, "put events on the bus; the next tick sends them again", "events", len(batch), "error", err)
		return nil, 1
	}
	if len(out.Entries) != len(batch) {
		// Which entry an answer belongs to is lost: keep them all for the next tick.
		log.ErrorContext(ctx, "the bus answered for another number of events; the next tick sends them again",
			"events", len(batch), "answers", len(out.Entries))
		return nil, 1
	}
	var accepted []store.OutboxEntry
	errs := 0
	for i, r := range out.Entries {
		if r.ErrorCode != nil || r.EventId == nil {
			errs++
			log.WarnContext(ctx, "the bus refused an event; the next tick sends it again", "event_id", batch[i].EventID,
				"event_type", string(batch[i].Type), "tenant_id", batch[i].TenantID,
				"error_code", aws.ToString(r.ErrorCode), "error", aws.ToString(r.ErrorMessage))
			continue
		}
		accepted = append(accepted, batch[i])
	}
	return accepted, errs
}

// uniqueEntries drops repeated event IDs (an event the tick recorded may also be in the due
// index it read) and orders the rest by time.
func uniqueEntries(entries []store.OutboxEntry) []store.OutboxEntry {
	seen := make(map[string]bool, len(entries))
	out := entries[:0:0]
	for _, e := range entries {
		if !seen[e.EventID] {
			seen[e.EventID] = true
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// packEntries splits entries into PutEvents requests: at most ten entries and maxPutBytes each.
func packEntries(entries []store.OutboxEntry) [][]store.OutboxEntry {
	var batches [][]store.OutboxEntry
	var cur []store.OutboxEntry
	size := 0
	for _, e := range entries {
		n := len(EventSource) + len(e.Type) + len(e.Body) + entryOverhead
		if len(cur) == maxPutEntries || (len(cur) > 0 && size+n > maxPutBytes) {
			batches = append(batches, cur)
			cur, size = nil, 0
		}
		cur = append(cur, e)
		size += n
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}
