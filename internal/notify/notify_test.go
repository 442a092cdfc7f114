package notify_test

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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// receiver is an HTTP test server on 127.0.0.1 that records what it is sent.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []request
	status int
}

type request struct {
	Header http.Header
	Body   []byte
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{Header: req.Header.Clone(), Body: b})
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

type fixture struct {
	t      *testing.T
	ctx    context.Context
	st     *store.Store
	n      *notify.Notifier
	sealer *notify.Sealer
	now    time.Time
	tenant string
}

func newFixture(t *testing.T) *fixture {
	cfg := testenv.AWS(t)
	st := store.New(dynamodb.NewFromConfig(cfg), testenv.Table(t, cfg))
	now := time.Now().UTC().Truncate(time.Second)
	sealer, err := notify.NewSealer([]byte(strings.Repeat("k", 32)))
	require.NoError(t, err)
	f := &fixture{t: t, ctx: context.Background(), st: st, sealer: sealer, now: now, tenant: "acme"}
	require.NoError(t, st.CreateTenant(f.ctx, domain.Tenant{ID: "acme", Name: "acme", CreatedAt: now}))
	f.n = &notify.Notifier{
		Store: st, Sealer: sealer, PublicURL: "https://monitor.example.com",
		// The receivers listen on 127.0.0.1: the private-address guard is off for them.
		HTTP:  notify.NewHTTPClient(notify.ClientOptions{AllowPrivate: true, Timeout: 5 * time.Second}),
		Retry: schedule.RetryPolicy{Base: 10 * time.Millisecond, Factor: 2, Cap: 50 * time.Millisecond}, MaxAttempts: 3,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now,
	}
	return f
}

// channel creates a channel as the API does: sealing its secret.
func (f *fixture) channel(kind domain.ChannelKind, target string, mod func(*domain.Channel)) (domain.Channel, string) {
	f.t.Helper()
	c := domain.Channel{ID: domain.NewID(f.now), Name: string(kind), Kind: kind, Enabled: true,
		Rules: domain.ChannelRules{EventTypes: events.TypeNames()}}
	secret := ""
	switch kind {
	case domain.ChannelWebhook:
		c.URL, secret = target, notify.NewWebhookSecret()
	case domain.ChannelSlack:
		c.SlackHint, secret = domain.SlackHint(target), target
	}
	if mod != nil {
		mod(&c)
	}
	sealed := ""
	if secret != "" {
		var err error
		sealed, err = f.sealer.Seal(f.tenant, c.ID, secret)
		require.NoError(f.t, err)
	}
	c, err := f.st.CreateChannel(f.ctx, f.tenant, c, sealed)
	require.NoError(f.t, err)
	return c, secret
}

func (f *fixture) deliveries(channelID string) []domain.Delivery {
	f.t.Helper()
	ds, _, err := f.st.ListDeliveries(f.ctx, f.tenant, channelID, store.Page{Limit: 100})
	require.NoError(f.t, err)
	return ds
}

func (f *fixture) taskFailed(agentID, policyID string) events.Event {
	return events.NewTaskFailed(time.Now(), domain.Task{ID: domain.NewID(f.now), TenantID: f.tenant, AgentID: agentID, PolicyID: policyID,
		Type: domain.TaskBackup, Repository: "main", Attempt: 2, RunID: domain.NewID(f.now), Error: "Fatal: wrong password or no key found"})
}

func (f *fixture) agent(hostname string, labels map[string]string) domain.Agent {
	f.t.Helper()
	tok := domain.EnrollmentToken{ID: domain.NewID(f.now), SecretHash: "h", MaxUses: 1, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}
	require.NoError(f.t, f.st.CreateEnrollmentToken(f.ctx, f.tenant, tok))
	seen := f.now
	a, err := f.st.RegisterAgent(f.ctx, f.tenant, tok.ID, domain.Agent{ID: domain.NewID(f.now), Hostname: hostname, OS: "linux", Arch: "amd64",
		AgentVersion: "1.0.0", ResticVersion: "0.17.3", Status: domain.AgentOnline, LastSeenAt: &seen, Limits: domain.DefaultLimits(),
		HeartbeatIntervalSeconds: 60, SecretHash: "x", Labels: labels, CreatedAt: f.now, UpdatedAt: f.now})
	require.NoError(f.t, err)
	return a
}

func TestAWebhookDeliveryIsSignedWithTheChannelsSecretAndSentOnce(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, http.StatusNoContent)
	c, secret := f.channel(domain.ChannelWebhook, rcv.URL+"/hook", nil)
	ev := f.taskFailed(domain.NewID(f.now), domain.NewID(f.now))

	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{ev}))
	got := rcv.requests()
	require.Len(t, got, 1)
	sig := got[0].Header.Get(notify.SignatureHeader)
	assert.NoError(t, notify.Verify(secret, sig, got[0].Body, time.Now()), "the signature verifies with the secret shown at creation")
	assert.ErrorIs(t, notify.Verify(secret, sig, append(got[0].Body, ' '), time.Now()), notify.ErrBadSignature, "a changed body")
	assert.ErrorIs(t, notify.Verify(notify.NewWebhookSecret(), sig, got[0].Body, time.Now()), notify.ErrBadSignature, "another secret")
	assert.ErrorIs(t, notify.Verify(secret, sig, got[0].Body, time.Now().Add(notify.ReplayWindow+time.Minute)), notify.ErrStale,
		"a replay after the window")
	var body struct {
		EventType string            `json:"eventType"`
		Count     int               `json:"count"`
		Events    []json.RawMessage `json:"events"`
	}
	require.NoError(t, json.Unmarshal(got[0].Body, &body))
	assert.Equal(t, "task.failed", body.EventType)
	require.Len(t, body.Events, 1)
	decoded, err := events.DecodeEvent(body.Events[0])
	require.NoError(t, err, "the webhook carries the event as the events package encodes it")
	assert.Equal(t, ev.ID, decoded.ID)

	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{ev}), "EventBridge delivers the same event again")
	assert.Len(t, rcv.requests(), 1, "a redelivered event is not sent twice")
	ds := f.deliveries(c.ID)
	require.Len(t, ds, 1)
	assert.Equal(t, domain.DeliverySucceeded, ds[0].Status)
	assert.Equal(t, http.StatusNoContent, ds[0].StatusCode)
	assert.Equal(t, 1, ds[0].Attempts)
	assert.Equal(t, []string{ev.ID}, ds[0].EventIDs)
}

func TestASlackMessageNamesHostPolicyOutcomeAndLink(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, http.StatusOK)
	_, err := f.st.CreateRepository(f.ctx, f.tenant, domain.Repository{Name: "main", Backend: domain.BackendLocal, Location: "/srv/restic"})
	require.NoError(t, err)
	p, err := f.st.CreatePolicy(f.ctx, f.tenant, domain.Policy{ID: domain.NewID(f.now), Name: "nightly-home", Enabled: true, Repository: "main",
		Paths: []string{"/home"}, Schedule: domain.Schedule{Cron: "@daily"}, Retention: domain.Retention{KeepLast: 7}})
	require.NoError(t, err)
	a := f.agent("web-1.example.com", nil)
	c, _ := f.channel(domain.ChannelSlack, rcv.URL+"/services/T000/B000/XXXXSECRET", nil)
	assert.NotContains(t, c.SlackHint, "XXXXSECRET", "the stored hint cannot post")

	ev := f.taskFailed(a.ID, p.ID)
	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{ev}))
	got := rcv.requests()
	require.Len(t, got, 1)
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Text struct{ Text string } `json:"text"`
		} `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal(got[0].Body, &msg))
	assert.Equal(t, "Task failed on web-1.example.com, policy nightly-home", msg.Text)
	require.Len(t, msg.Blocks, 1)
	text := msg.Blocks[0].Text.Text
	for _, want := range []string{"Host: web-1.example.com", "Policy: nightly-home", "Error: Fatal: wrong password or no key found",
		"<https://monitor.example.com/v1/runs/" + ev.Data.(events.TaskFailedData).RunID + "|Open the run>"} {
		assert.Contains(t, text, want)
	}

	rcv.mu.Lock()
	rcv.status = http.StatusForbidden
	rcv.mu.Unlock()
	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{f.taskFailed(a.ID, p.ID)}))
	ds := f.deliveries(c.ID)
	require.Len(t, ds, 2)
	assert.Equal(t, domain.DeliveryFailed, ds[0].Status, "newest first")
	assert.Equal(t, 1, ds[0].Attempts, "a refusal is not retried")
	assert.NotContains(t, ds[0].Error, "XXXXSECRET", "the record never shows the webhook URL")
}

func TestAQuietChannelSpeaksOncePerFailureStreakAndOnceOnRecovery(t *testing.T) {
	f := newFixture(t)
	quiet := newReceiver(t, http.StatusOK)
	loud := newReceiver(t, http.StatusOK)
	f.channel(domain.ChannelWebhook, quiet.URL, func(c *domain.Channel) { c.Quiet = true })
	f.channel(domain.ChannelWebhook, loud.URL, nil)
	agentID, policyID := domain.NewID(f.now), domain.NewID(f.now)
	for range 3 {
		require.NoError(t, f.n.Deliver(f.ctx, []events.Event{f.taskFailed(agentID, policyID)}))
	}
	assert.Len(t, quiet.requests(), 1, "a streak of three failures")
	assert.Len(t, loud.requests(), 3, "a channel that is not quiet hears every failure")

	recovered := func() events.Event {
		return events.NewSlotRecovered(time.Now(), domain.Slot{TenantID: f.tenant, PolicyID: policyID, AgentID: agentID, Kind: domain.SlotBackup}, time.Now())
	}
	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{recovered()}))
	require.Len(t, quiet.requests(), 2, "the recovery")
	assert.Contains(t, string(quiet.requests()[1].Body), `"eventType":"slot.recovered"`)
	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{recovered()}))
	assert.Len(t, quiet.requests(), 2, "a recovery without a failure before it")
	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{f.taskFailed(agentID, policyID)}))
	assert.Len(t, quiet.requests(), 3, "a new streak")
}

func TestTwoHundredAgentsOfflineInOneBatchMakeOneMessagePerChannel(t *testing.T) {
	f := newFixture(t)
	hook := newReceiver(t, http.StatusOK)
	slack := newReceiver(t, http.StatusOK)
	hc, _ := f.channel(domain.ChannelWebhook, hook.URL, nil)
	f.channel(domain.ChannelSlack, slack.URL+"/services/x", func(c *domain.Channel) { c.Quiet = true })
	var batch []events.Event
	for i := range 200 {
		batch = append(batch, events.NewAgentOffline(time.Now(), domain.Agent{TenantID: f.tenant, ID: domain.NewID(f.now),
			Hostname: fmt.Sprintf("host-%03d", i)}))
	}
	require.NoError(t, f.n.Deliver(f.ctx, batch))
	require.Len(t, hook.requests(), 1)
	require.Len(t, slack.requests(), 1)
	var body struct {
		Count  int               `json:"count"`
		Events []json.RawMessage `json:"events"`
	}
	require.NoError(t, json.Unmarshal(hook.requests()[0].Body, &body))
	assert.Equal(t, 200, body.Count)
	assert.Len(t, body.Events, 200)
	s := string(slack.requests()[0].Body)
	assert.Contains(t, s, "Agent offline: 200 events")
	assert.Contains(t, s, "host-000")
	assert.Contains(t, s, "and 180 more")
	ds := f.deliveries(hc.ID)
	require.Len(t, ds, 1)
	assert.Equal(t, 200, ds[0].EventCount)
	assert.Len(t, ds[0].EventIDs, domain.MaxDeliveryEventIDs)
}

func TestRulesChooseEventTypesPoliciesAndLabels(t *testing.T) {
	f := newFixture(t)
	prod := f.agent("db-1", map[string]string{"env": "prod"})
	dev := f.agent("dev-1", map[string]string{"env": "dev"})
	p1, p2 := domain.NewID(f.now), domain.NewID(f.now)
	byType, byPolicy, byLabel := newReceiver(t, 200), newReceiver(t, 200), newReceiver(t, 200)
	f.channel(domain.ChannelWebhook, byType.URL, func(c *domain.Channel) { c.Rules.EventTypes = []string{"agent.offline"} })
	f.channel(domain.ChannelWebhook, byPolicy.URL, func(c *domain.Channel) { c.Rules.PolicyIDs = []string{p1} })
	f.channel(domain.ChannelWebhook, byLabel.URL, func(c *domain.Channel) { c.Rules.AgentLabels = map[string]string{"env": "prod"} })
	for _, ev := range []events.Event{f.taskFailed(prod.ID, p1), f.taskFailed(dev.ID, p2), events.NewAgentOffline(time.Now(), dev)} {
		require.NoError(t, f.n.Deliver(f.ctx, []events.Event{ev}))
	}
	count := func(r *receiver) int {
		n := 0
		for _, q := range r.requests() {
			var b struct{ Count int }
			require.NoError(t, json.Unmarshal(q.Body, &b))
			n += b.Count
		}
		return n
	}
	assert.Equal(t, 1, count(byType), "only agent.offline")
	assert.Equal(t, 1, count(byPolicy), "only policy p1")
	assert.Equal(t, 1, count(byLabel), "only the prod agent")
}

func TestAFailingReceiverIsRetriedWithBackoffThenRecordedAsFailed(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, http.StatusServiceUnavailable)
	c, _ := f.channel(domain.ChannelWebhook, rcv.URL, nil)
	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{f.taskFailed(domain.NewID(f.now), "")}))
	assert.Len(t, rcv.requests(), 3, "every attempt reached the receiver")
	ds := f.deliveries(c.ID)
	require.Len(t, ds, 1)
	assert.Equal(t, domain.DeliveryFailed, ds[0].Status)
	assert.Equal(t, 3, ds[0].Attempts)
	assert.Equal(t, http.StatusServiceUnavailable, ds[0].StatusCode)
	assert.Contains(t, ds[0].Error, "503")
	sigs := map[string]bool{}
	for _, r := range rcv.requests() {
		sigs[r.Header.Get("X-Restic-Monitor-Delivery")] = true
	}
	assert.Len(t, sigs, 1, "the attempts are one delivery")
}

func TestTheGuardRefusesPrivateAddressesAndRedirectsAreNotFollowed(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		public bool
	}{{"127.0.0.1", false}, {"10.1.2.3", false}, {"169.254.169.254", false}, {"192.168.1.1", false}, {"172.16.0.1", false},
		{"100.64.0.1", false}, {"::1", false}, {"fe80::1", false}, {"fd00::1", false}, {"::ffff:127.0.0.1", false}, {"0.0.0.0", false},
		{"8.8.8.8", true}, {"2606:4700:4700::1111", true}} {
		assert.Equal(t, tc.public, notify.PublicAddress(netipMust(tc.ip)), tc.ip)
	}

	f := newFixture(t)
	rcv := newReceiver(t, http.StatusOK)
	f.n.HTTP = notify.NewHTTPClient(notify.ClientOptions{Timeout: 2 * time.Second})
	c, _ := f.channel(domain.ChannelWebhook, rcv.URL, nil)
	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{f.taskFailed(domain.NewID(f.now), "")}))
	assert.Empty(t, rcv.requests(), "nothing reached 127.0.0.1")
	ds := f.deliveries(c.ID)
	require.Len(t, ds, 1)
	assert.Equal(t, domain.DeliveryFailed, ds[0].Status)
	assert.Equal(t, 1, ds[0].Attempts, "a refused address is not retried")
	assert.Contains(t, ds[0].Error, "refused")
	for _, target := range []string{"http://10.0.0.1:9/x", "http://169.254.169.254/latest/meta-data"} {
		req, _ := http.NewRequest(http.MethodPost, target, nil)
		_, err := f.n.HTTP.Do(req)
		assert.ErrorIs(t, err, notify.ErrPrivateAddress, target)
	}

	inner := newReceiver(t, http.StatusOK)
	redirect := httptest.NewServer(http.RedirectHandler(inner.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	f.n.HTTP = notify.NewHTTPClient(notify.ClientOptions{AllowPrivate: true})
	rc, _ := f.channel(domain.ChannelWebhook, redirect.URL, nil)
	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{f.taskFailed(domain.NewID(f.now), "")}))
	assert.Empty(t, inner.requests(), "the redirect was not followed")
	ds = f.deliveries(rc.ID)
	require.Len(t, ds, 1)
	assert.Equal(t, http.StatusTemporaryRedirect, ds[0].StatusCode)
	assert.Equal(t, domain.DeliveryFailed, ds[0].Status)
}

// sesEndpoint is a local HTTP server standing in for the SES v2 endpoint: the emulator accepts
// SendEmail but offers no way to read what was sent, so the messages are read here.
type sesEndpoint struct {
	*httptest.Server
	mu   sync.Mutex
	sent []sentEmail
}

type sentEmail struct {
	From, Subject, Body string
	To                  []string
}

func newSESEndpoint(t *testing.T) *sesEndpoint {
	e := &sesEndpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v2/email/outbound-emails" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		var in struct {
			FromEmailAddress string
			Destination      struct{ ToAddresses []string }
			Content          struct {
				Simple struct {
					Subject struct{ Data string }
					Body    struct{ Text struct{ Data string } }
				}
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		e.sent = append(e.sent, sentEmail{From: in.FromEmailAddress, To: in.Destination.ToAddresses,
			Subject: in.Content.Simple.Subject.Data, Body: in.Content.Simple.Body.Text.Data})
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"MessageId":"m-1"}`))
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *sesEndpoint) emails() []sentEmail {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]sentEmail(nil), e.sent...)
}

func sesClient(t *testing.T, endpoint string) *sesv2.Client {
	cfg := testenv.AWS(t)
	return sesv2.NewFromConfig(cfg, func(o *sesv2.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}

func TestAnEmailAddressReceivesNothingUntilItConfirms(t *testing.T) {
	f := newFixture(t)
	ses := newSESEndpoint(t)
	f.n.Mailer = notify.SESMailer{Client: sesClient(t, ses.URL), From: "alerts@monitor.example.com"}
	c, _ := f.channel(domain.ChannelEmail, "", func(c *domain.Channel) {
		c.Emails = []domain.EmailRecipient{{Address: "ops@example.com"}}
	})
	require.NoError(t, f.n.SendConfirmations(f.ctx, c, []string{"ops@example.com"}))
	mails := ses.emails()
	require.Len(t, mails, 1)
	assert.Equal(t, []string{"ops@example.com"}, mails[0].To)
	assert.Equal(t, "alerts@monitor.example.com", mails[0].From)
	_, link, ok := strings.Cut(mails[0].Body, "https://monitor.example.com/v1/notification-channels/confirm?token=")
	require.True(t, ok, "the confirmation mail holds the link: %s", mails[0].Body)
	token, _, _ := strings.Cut(link, "\n")

	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{f.taskFailed(domain.NewID(f.now), "")}))
	assert.Len(t, ses.emails(), 1, "nothing goes to an address before it confirms")
	ds := f.deliveries(c.ID)
	require.Len(t, ds, 1)
	assert.Equal(t, domain.DeliveryFailed, ds[0].Status)
	assert.Contains(t, ds[0].Error, "confirmed")

	_, err := f.n.Confirm(f.ctx, token[:len(token)-1]+"x")
	assert.ErrorIs(t, err, notify.ErrBadToken, "a forged token")
	addr, err := f.n.Confirm(f.ctx, token)
	require.NoError(t, err)
	assert.Equal(t, "ops@example.com", addr)
	_, err = f.n.Confirm(f.ctx, token)
	assert.ErrorIs(t, err, notify.ErrBadToken, "a link works once")

	require.NoError(t, f.n.Deliver(f.ctx, []events.Event{f.taskFailed(domain.NewID(f.now), "")}))
	mails = ses.emails()
	require.Len(t, mails, 2)
	assert.Equal(t, []string{"ops@example.com"}, mails[1].To)
	assert.Contains(t, mails[1].Subject, "Task failed")
	assert.Contains(t, mails[1].Body, "Error: Fatal: wrong password")
}

// The emulator serves SES v2 SendEmail; this sends through it as the deployed notifier would.
func TestSESMailerSendsThroughTheEmulator(t *testing.T) {
	m := notify.SESMailer{Client: sesClient(t, ""), From: "alerts@monitor.example.com"}
	require.NoError(t, m.SendEmail(context.Background(), []string{"ops@example.com"}, "subject", "text"))
}

func TestTestSendDeliversASyntheticEventAtOnce(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, http.StatusAccepted)
	c, secret := f.channel(domain.ChannelWebhook, rcv.URL, func(c *domain.Channel) { c.Rules.EventTypes = []string{"slot.overdue"} })
	d, err := f.n.TestSend(f.ctx, f.tenant, c.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.DeliverySucceeded, d.Status)
	assert.True(t, d.Test)
	assert.Equal(t, http.StatusAccepted, d.StatusCode)
	got := rcv.requests()
	require.Len(t, got, 1, "whatever the channel's rules")
	assert.NoError(t, notify.Verify(secret, got[0].Header.Get(notify.SignatureHeader), got[0].Body, time.Now()))
	assert.Contains(t, string(got[0].Body), `"test":true`)
	assert.Equal(t, []domain.Delivery{d}, f.deliveries(c.ID))
}

func TestTheLambdaReadsEventBridgeEventsAndSQSBatchesOfThem(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, http.StatusOK)
	f.channel(domain.ChannelWebhook, rcv.URL, nil)
	envelope := func(e events.Event) string {
		detail, err := e.Encode()
		require.NoError(t, err)
		b, err := json.Marshal(map[string]any{"version": "0", "id": domain.NewID(f.now), "source": notify.Source,
			"detail-type": string(e.Type), "time": e.Time, "region": "us-east-1", "account": "000000000000", "resources": []string{},
			"detail": json.RawMessage(detail)})
		require.NoError(t, err)
		return string(b)
	}
	one := envelope(f.taskFailed(domain.NewID(f.now), ""))
	require.NoError(t, f.n.HandleInvocation(f.ctx, json.RawMessage(one)))
	require.Len(t, rcv.requests(), 1)

	unknown := strings.Replace(envelope(f.taskFailed(domain.NewID(f.now), "")), `"type":"task.failed"`, `"type":"task.exploded"`, 1)
	var records []map[string]string
	for range 5 {
		records = append(records, map[string]string{"messageId": domain.NewID(f.now), "body": envelope(events.NewAgentOffline(time.Now(),
			domain.Agent{TenantID: f.tenant, ID: domain.NewID(f.now), Hostname: "h"}))})
	}
	records = append(records, map[string]string{"messageId": "u", "body": unknown}, map[string]string{"messageId": "j", "body": "not json"})
	batch, err := json.Marshal(map[string]any{"Records": records})
	require.NoError(t, err)
	require.NoError(t, f.n.HandleInvocation(f.ctx, batch), "what cannot be read is dropped, the rest delivered")
	got := rcv.requests()
	require.Len(t, got, 2, "the batch's five events went as one message")
	assert.Contains(t, string(got[1].Body), `"count":5`)
}
