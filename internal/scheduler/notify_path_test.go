package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
)

// hook is a webhook receiver that keeps every request's body after checking its signature.
type hook struct {
	*httptest.Server
	t      *testing.T
	secret string
	mu     sync.Mutex
	bodies []webhookBody
}

type webhookBody struct {
	EventType string
	Count     int
	Events    []events.Event
}

func newHook(t *testing.T) *hook {
	h := &hook{t: t, secret: notify.NewWebhookSecret()}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := notify.Verify(h.secret, r.Header.Get(notify.SignatureHeader), b, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var body struct {
			EventType string            `json:"eventType"`
			Count     int               `json:"count"`
			Events    []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got := webhookBody{EventType: body.EventType, Count: body.Count}
		for _, raw := range body.Events {
			ev, err := events.DecodeEvent(raw)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			got.Events = append(got.Events, ev)
		}
		h.mu.Lock()
		h.bodies = append(h.bodies, got)
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) received() []webhookBody {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]webhookBody(nil), h.bodies...)
}

// notifierPath is the way from a tick to the channels: the publisher puts the outbox on a real
// bus, whose rule sends it to an SQS queue, which is read in batches and handed to the
// notifier as the Lambda's event source does.
type notifierPath struct {
	f        *fixture
	r        *busReader
	notifier *notify.Notifier
	sealer   *notify.Sealer
}

func newNotifierPath(t *testing.T, f *fixture) *notifierPath {
	r := newBusReader(t, f)
	f.publisher = &scheduler.Publisher{Bus: r.eb, BusName: r.name, Store: f.st}
	sealer, err := notify.NewSealer([]byte(strings.Repeat("s", notify.SecretKeyBytes)))
	require.NoError(t, err)
	return &notifierPath{f: f, r: r, sealer: sealer, notifier: &notify.Notifier{
		Store: f.st, Sealer: sealer,
		HTTP:  notify.NewHTTPClient(notify.ClientOptions{AllowPrivate: true, Timeout: 5 * time.Second}),
		Retry: schedule.RetryPolicy{Base: 10 * time.Millisecond, Factor: 2, Cap: 50 * time.Millisecond}, MaxAttempts: 3,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now,
	}}
}

// webhook creates a webhook channel for eventTypes, sealing the hook's secret as the API does.
func (p *notifierPath) webhook(h *hook, eventTypes ...events.EventType) domain.Channel {
	p.f.t.Helper()
	c := domain.Channel{ID: domain.NewID(time.Now()), Name: "hook", Kind: domain.ChannelWebhook, URL: h.URL, Enabled: true, Version: 1,
		CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	for _, typ := range eventTypes {
		c.Rules.EventTypes = append(c.Rules.EventTypes, string(typ))
	}
	sealed, err := p.sealer.Seal(p.f.tenant, c.ID, h.secret)
	require.NoError(p.f.t, err)
	stored, err := p.f.st.CreateChannel(p.f.ctx, p.f.tenant, c, sealed)
	require.NoError(p.f.t, err)
	return stored
}

// deliver reads the bus's queue until the events with ids all arrived, and hands them to the
// notifier in one invocation, as a batching window gathers a tick's events; then it hands
// whatever else arrives within two seconds (duplicates, strays) in another.
func (p *notifierPath) deliver(ids []string) {
	p.f.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var batch lambdaevents.SQSEvent
	deadline := time.Now().Add(time.Minute)
	for len(want) > 0 {
		require.True(p.f.t, time.Now().Before(deadline), "%d events never arrived on the bus", len(want))
		for _, m := range p.receive(1) {
			var envelope struct {
				Detail struct {
					ID string `json:"id"`
				} `json:"detail"`
			}
			require.NoError(p.f.t, json.Unmarshal([]byte(m.Body), &envelope))
			delete(want, envelope.Detail.ID)
			batch.Records = append(batch.Records, m)
		}
	}
	p.invoke(batch)
	for {
		rest := p.receive(2)
		if len(rest) == 0 {
			return
		}
		p.invoke(lambdaevents.SQSEvent{Records: rest})
	}
}

func (p *notifierPath) receive(wait int32) []lambdaevents.SQSMessage {
	res, err := p.f.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(p.r.url), MaxNumberOfMessages: 10, WaitTimeSeconds: wait})
	require.NoError(p.f.t, err)
	var out []lambdaevents.SQSMessage
	for _, m := range res.Messages {
		out = append(out, lambdaevents.SQSMessage{MessageId: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), EventSource: "aws:sqs"})
		_, err := p.f.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(p.r.url), ReceiptHandle: m.ReceiptHandle})
		require.NoError(p.f.t, err)
	}
	return out
}

func (p *notifierPath) invoke(batch lambdaevents.SQSEvent) {
	p.f.t.Helper()
	raw, err := json.Marshal(batch)
	require.NoError(p.f.t, err)
	require.NoError(p.f.t, p.notifier.HandleInvocation(context.Background(), raw))
}

func ids(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestAnOverdueSlotNotifiesOnceAndItsRecoveryOnce(t *testing.T) {
	f := newFixture(t)
	f.config.OverdueGrace = 30 * time.Minute
	path := newNotifierPath(t, f)
	h := newHook(t)
	path.webhook(h, events.TypeSlotOverdue, events.TypeSlotRecovered)
	a := f.agent(nil)
	p := f.policy(nil)
	f.assign(p, a, base)

	f.tick(base)
	path.deliver(ids(only(f.events.take(), events.TypeSlotOverdue, events.TypeSlotRecovered)))
	sum := f.tick(base.Add(31 * time.Minute))
	require.Equal(t, 1, sum.Overdue)
	overdue := only(f.events.take(), events.TypeSlotOverdue)
	require.Len(t, overdue, 1)
	path.deliver(ids(overdue))
	got := h.received()
	require.Len(t, got, 1, "one message for the overdue slot")
	assert.Equal(t, "slot.overdue", got[0].EventType)
	require.Len(t, got[0].Events, 1)
	assert.Equal(t, overdue[0].ID, got[0].Events[0].ID)
	assert.Equal(t, a.ID, got[0].Events[0].Data.(events.SlotOverdueData).AgentID)

	// Later ticks announce nothing again; the backup succeeds and the slot recovers once.
	f.tick(base.Add(40 * time.Minute))
	require.NoError(t, f.st.MarkSlotSucceeded(f.ctx, f.tenant, p.ID, a.ID, domain.SlotBackup, base.Add(45*time.Minute)))
	f.tick(base.Add(61 * time.Minute))
	f.tick(base.Add(63 * time.Minute))
	recovered := only(f.events.take(), events.TypeSlotRecovered, events.TypeSlotOverdue)
	require.Equal(t, []events.EventType{events.TypeSlotRecovered}, eventTypes(recovered))
	path.deliver(ids(recovered))
	f.tick(base.Add(2 * time.Hour))
	path.deliver(nil)

	got = h.received()
	require.Len(t, got, 2, "the overdue slot, then its recovery: %+v", got)
	assert.Equal(t, "slot.recovered", got[1].EventType)
	require.Len(t, got[1].Events, 1)
	assert.Equal(t, recovered[0].ID, got[1].Events[0].ID)
}

func TestTwoHundredAgentsGoingOfflineInOneTickAreOneMessagePerChannel(t *testing.T) {
	f := newFixture(t)
	path := newNotifierPath(t, f)
	ops, oncall := newHook(t), newHook(t)
	path.webhook(ops, events.TypeAgentOffline)
	path.webhook(oncall, events.TypeAgentOffline, events.TypeAgentOnline)
	// Registered without queues: going offline needs none.
	now := f.clock.Now()
	agents := map[string]bool{}
	for i := range 200 {
		a := domain.Agent{
			ID: domain.NewID(now), Hostname: fmt.Sprintf("host-%03d", i), OS: "linux", Arch: "amd64", AgentVersion: "1.0.0", ResticVersion: "0.18.1",
			Status: domain.AgentOnline, LastSeenAt: &now, Limits: domain.Limits{MaxConcurrentTasks: 1},
			HeartbeatIntervalSeconds: 60, SecretHash: "unused", CreatedAt: now, UpdatedAt: now, QueueURL: "http://127.0.0.1:1/unused",
		}
		stored, err := f.st.RegisterAgent(f.ctx, f.tenant, f.token, a)
		require.NoError(t, err)
		agents[stored.ID] = true
	}
	sum := f.tick(base.Add(5 * time.Minute))
	require.Equal(t, 200, sum.Offline)
	offline := only(f.events.take(), events.TypeAgentOffline)
	require.Len(t, offline, 200)
	// The registrations' agent.enrolled events go out with them, and no channel takes them.
	path.deliver(ids(offline))

	for name, h := range map[string]*hook{"ops": ops, "oncall": oncall} {
		got := h.received()
		require.Len(t, got, 1, "%s: one grouped message", name)
		assert.Equal(t, "agent.offline", got[0].EventType)
		assert.Equal(t, 200, got[0].Count)
		seen := map[string]bool{}
		for _, ev := range got[0].Events {
			seen[ev.Data.(events.AgentOfflineData).AgentID] = true
		}
		assert.Equal(t, agents, seen, "%s: every agent, once", name)
	}
}
