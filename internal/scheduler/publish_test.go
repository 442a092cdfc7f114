package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// busReader is a custom bus with a rule that sends everything from restic-monitor to an SQS
// queue, which is how a test sees what was published.
type busReader struct {
	t    *testing.T
	eb   *eventbridge.Client
	sqs  *sqs.Client
	name string
	url  string
	seen map[string]events.Event // by event ID: SQS may deliver a message twice
	// deliveries counts the messages per event ID, duplicates included.
	deliveries map[string]int
}

func newBusReader(t *testing.T, f *fixture) *busReader {
	t.Helper()
	cfg := testenv.AWS(t)
	r := &busReader{t: t, eb: eventbridge.NewFromConfig(cfg), sqs: f.sqs, name: testenv.UniqueName("bus"),
		seen: map[string]events.Event{}, deliveries: map[string]int{}}
	require.NoError(t, resources.EnsureEventBus(f.ctx, r.eb, r.name))
	t.Cleanup(func() {
		_, _ = r.eb.DeleteEventBus(context.Background(), &eventbridge.DeleteEventBusInput{Name: aws.String(r.name)})
	})
	q, err := f.sqs.CreateQueue(f.ctx, &sqs.CreateQueueInput{QueueName: aws.String(testenv.UniqueName("busq"))})
	require.NoError(t, err)
	r.url = aws.ToString(q.QueueUrl)
	t.Cleanup(func() { _, _ = f.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
	attrs, err := f.sqs.GetQueueAttributes(f.ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	require.NoError(t, err)
	_, err = r.eb.PutRule(f.ctx, &eventbridge.PutRuleInput{Name: aws.String("all"), EventBusName: aws.String(r.name),
		EventPattern: aws.String(`{"source":["` + scheduler.EventSource + `"]}`)})
	require.NoError(t, err)
	_, err = r.eb.PutTargets(f.ctx, &eventbridge.PutTargetsInput{Rule: aws.String("all"), EventBusName: aws.String(r.name),
		Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)])}}})
	require.NoError(t, err)
	return r
}

// await reads the queue until the events with the given IDs all arrived, and returns them.
func (r *busReader) await(ids ...string) []events.Event {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	missing := func() []string {
		var m []string
		for _, id := range ids {
			if _, ok := r.seen[id]; !ok {
				m = append(m, id)
			}
		}
		return m
	}
	for len(missing()) > 0 {
		require.True(r.t, time.Now().Before(deadline), "events never arrived on the bus: %v", missing())
		r.drain(1)
	}
	out := make([]events.Event, len(ids))
	for i, id := range ids {
		out[i] = r.seen[id]
	}
	return out
}

// drain receives what is in the queue, waiting up to wait seconds for the first message.
func (r *busReader) drain(wait int32) {
	r.t.Helper()
	for {
		res, err := r.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(r.url), MaxNumberOfMessages: 10, WaitTimeSeconds: wait})
		require.NoError(r.t, err)
		if len(res.Messages) == 0 {
			return
		}
		for _, m := range res.Messages {
			var envelope struct {
				Source     string          `json:"source"`
				DetailType string          `json:"detail-type"`
				Detail     json.RawMessage `json:"detail"`
			}
			require.NoError(r.t, json.Unmarshal([]byte(aws.ToString(m.Body)), &envelope))
			require.Equal(r.t, scheduler.EventSource, envelope.Source)
			ev, err := events.DecodeEvent(envelope.Detail)
			require.NoError(r.t, err, "detail: %s", envelope.Detail)
			require.Equal(r.t, string(ev.Type), envelope.DetailType)
			r.seen[ev.ID] = ev
			r.deliveries[ev.ID]++
			_, err = r.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(r.url), ReceiptHandle: m.ReceiptHandle})
			require.NoError(r.t, err)
		}
		wait = 0
	}
}

// failingBus fails PutEvents while down is set, as a network outage does, and otherwise passes
// requests to the real bus; failEntries makes it answer each entry with an error instead.
type failingBus struct {
	real scheduler.Bus
	mu   sync.Mutex
	down bool
	// refuse is how many entries of the next request the bus refuses, from the first.
	refuse int
	calls  int
}

func (b *failingBus) PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, opts ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	b.mu.Lock()
	down, refuse := b.down, b.refuse
	b.refuse = 0
	b.calls++
	b.mu.Unlock()
	if down {
		return nil, errors.New("put events: dial tcp: connection refused")
	}
	if refuse == 0 {
		return b.real.PutEvents(ctx, in, opts...)
	}
	rest := &eventbridge.PutEventsInput{Entries: in.Entries[refuse:]}
	out := &eventbridge.PutEventsOutput{FailedEntryCount: int32(refuse)}
	for range refuse {
		out.Entries = append(out.Entries, ebtypes.PutEventsResultEntry{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("try again")})
	}
	if len(rest.Entries) > 0 {
		real, err := b.real.PutEvents(ctx, rest, opts...)
		if err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, real.Entries...)
	}
	return out, nil
}

// crashingOutbox is an outbox store whose removals fail, as when the process dies between the
// bus accepting the events and their removal.
type crashingOutbox struct{}

func (crashingOutbox) DeleteOutbox(context.Context, []store.OutboxEntry) error {
	return errors.New("process killed")
}

// pending lists the outbox entries the due index holds at now.
func (f *fixture) pending(now time.Time) []store.OutboxEntry {
	f.t.Helper()
	var out []store.OutboxEntry
	for shard := range resources.DueShards {
		due, _, err := f.st.QueryDue(f.ctx, shard, now, store.Page{Limit: 100})
		require.NoError(f.t, err)
		for _, d := range due {
			if d.Outbox != nil {
				out = append(out, *d.Outbox)
			}
		}
	}
	return out
}

func TestEventsOfATickArriveOnTheBusOnce(t *testing.T) {
	f := newFixture(t)
	r := newBusReader(t, f)
	f.publisher = &scheduler.Publisher{Bus: r.eb, BusName: r.name, Store: f.st}
	a := f.agent(func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 60 })

	sum := f.tick(base.Add(5 * time.Minute)) // three heartbeats missed
	require.Equal(t, 1, sum.Offline)
	require.Equal(t, 1, sum.Published)
	offline := only(f.events.take(), events.TypeAgentOffline)
	require.Len(t, offline, 1)
	got := r.await(offline[0].ID)
	require.Equal(t, a.ID, got[0].Data.(events.AgentOfflineData).AgentID)
	require.Equal(t, a.Hostname, got[0].Data.(events.AgentOfflineData).Hostname)
	require.Empty(t, f.pending(base.Add(time.Hour)), "published events leave the outbox")

	// The next ticks send nothing again.
	f.tick(base.Add(6 * time.Minute))
	r.drain(2)
	require.Equal(t, 1, r.deliveries[offline[0].ID])
}

func TestEventsThePutFailsForAreSentByTheNextTick(t *testing.T) {
	f := newFixture(t)
	r := newBusReader(t, f)
	bus := &failingBus{real: r.eb, down: true}
	f.publisher = &scheduler.Publisher{Bus: bus, BusName: r.name, Store: f.st}
	var agents []domain.Agent
	for range 12 {
		agents = append(agents, f.agent(func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 60 }))
	}

	f.clock.Set(base.Add(5 * time.Minute))
	sum, err := f.scheduler(f.qm).Tick(f.ctx, base.Add(5*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 12, sum.Offline, "the changes are stored although the bus is down")
	require.Equal(t, 0, sum.Published)
	require.Equal(t, 12, sum.Unpublished)
	offline := only(f.events.take(), events.TypeAgentOffline)
	require.Len(t, offline, 12)
	require.Len(t, f.pending(base.Add(5*time.Minute)), 12, "every event waits in the outbox")

	// The bus is back but refuses two entries of the first request: those wait once more.
	bus.mu.Lock()
	bus.down, bus.refuse = false, 2
	bus.mu.Unlock()
	f.clock.Set(base.Add(6 * time.Minute))
	sum, err = f.scheduler(f.qm).Tick(f.ctx, base.Add(6*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 2, sum.Errors, "each refused entry is an error of the tick")
	require.Equal(t, 10, sum.Published)
	require.Len(t, f.pending(base.Add(6*time.Minute)), 2)

	sum = f.tick(base.Add(7 * time.Minute))
	require.Equal(t, 2, sum.Published)
	require.Empty(t, f.pending(base.Add(7*time.Minute)))
	ids := make([]string, len(offline))
	for i, ev := range offline {
		ids[i] = ev.ID
	}
	got := r.await(ids...)
	hosts := map[string]bool{}
	for _, ev := range got {
		hosts[ev.Data.(events.AgentOfflineData).AgentID] = true
	}
	require.Len(t, hosts, len(agents), "one agent.offline per agent, none lost")
	r.drain(2)
	for _, id := range ids {
		require.Equal(t, 1, r.deliveries[id], "event %s", id)
	}
}

func TestACrashBeforeTheRemovalSendsTheSameEventAgain(t *testing.T) {
	f := newFixture(t)
	r := newBusReader(t, f)
	f.publisher = &scheduler.Publisher{Bus: r.eb, BusName: r.name, Store: crashingOutbox{}}
	f.agent(func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 60 })

	f.clock.Set(base.Add(5 * time.Minute))
	sum, err := f.scheduler(f.qm).Tick(f.ctx, base.Add(5*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, sum.Errors, "the failed removal is an error of the tick")
	offline := only(f.events.take(), events.TypeAgentOffline)
	require.Len(t, offline, 1)
	first := r.await(offline[0].ID)[0]

	// A tick with a working store sends it again, with the same ID, and removes it.
	f.publisher = &scheduler.Publisher{Bus: r.eb, BusName: r.name, Store: f.st}
	delete(r.seen, offline[0].ID)
	sum = f.tick(base.Add(6 * time.Minute))
	require.Equal(t, 1, sum.Published)
	again := r.await(offline[0].ID)[0]
	require.Equal(t, first, again, "the same event, for consumers to dedupe")
	require.Empty(t, f.pending(base.Add(6*time.Minute)))
}
