// Package notify delivers domain events to the notification channels of their tenant: it
// matches each event against a channel's rules, keeps quiet channels to one message per
// failure streak and one per recovery, groups events of one type that arrive together into one
// message, and delivers signed webhooks, Slack messages and email with bounded retries,
// recording every delivery in the channel's log. It owns the sealing of channel secrets, the
// webhook signature and the outbound HTTP client that refuses private addresses.
package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// Mailer sends one plain-text email.
type Mailer interface {
	SendEmail(ctx context.Context, to []string, subject, text string) error
}

// Notifier delivers events to channels. Its fields are set once; it is safe for concurrent use.
type Notifier struct {
	Store  *store.Store
	Sealer *Sealer
	// HTTP sends webhook and Slack deliveries (NewHTTPClient).
	HTTP *http.Client
	// Mailer sends email; without one, email channels fail their deliveries.
	Mailer Mailer
	// PublicURL is where people reach the API, for links in messages (RM_PUBLIC_URL).
	PublicURL string
	// Retry shapes the backoff between attempts of one delivery (zero: DefaultRetry).
	Retry schedule.RetryPolicy
	// MaxAttempts bounds the attempts of one delivery (0: DefaultMaxAttempts).
	MaxAttempts int
	Log         *slog.Logger
	Now         func() time.Time
}

// DefaultRetry is the backoff between attempts of a delivery: about 1, 2, 4 s. A receiver that
// is down for longer is recorded as failed, and the next event tries it again.
var DefaultRetry = schedule.RetryPolicy{Base: time.Second, Factor: 2, Cap: 8 * time.Second}

// DefaultMaxAttempts is how many times one delivery is tried.
const DefaultMaxAttempts = 4

// claimLease is how long an invocation holds the right to send an event to a channel; it
// outlasts every attempt of a delivery with its backoff, so only a holder that died loses it.
const claimLease = 3 * time.Minute

func (n *Notifier) now() time.Time { return n.Now().UTC() }

func (n *Notifier) retry() schedule.RetryPolicy {
	if n.Retry.Base > 0 {
		return n.Retry
	}
	return DefaultRetry
}

func (n *Notifier) maxAttempts() int {
	if n.MaxAttempts > 0 {
		return n.MaxAttempts
	}
	return DefaultMaxAttempts
}

// Deliver sends events to the channels of their tenants. Events of one type that reach a
// channel together become one message. A redelivered event is not sent again to a channel
// that has it. An error means some channel could not be read or recorded; the events may be
// handed in again.
func (n *Notifier) Deliver(ctx context.Context, evs []events.Event) error {
	byTenant := map[string][]events.Event{}
	for _, e := range evs {
		byTenant[e.TenantID] = append(byTenant[e.TenantID], e)
	}
	var errs []error
	for tenantID, tevs := range byTenant {
		sort.SliceStable(tevs, func(i, j int) bool { return tevs[i].Time.Before(tevs[j].Time) })
		if err := n.deliverTenant(ctx, tenantID, tevs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Notifier) deliverTenant(ctx context.Context, tenantID string, evs []events.Event) error {
	channels, err := n.Store.AllChannels(ctx, tenantID)
	if err != nil {
		return err
	}
	look := &lookups{st: n.Store, tenantID: tenantID, agents: map[string]*domain.Agent{}, policies: map[string]*domain.Policy{}}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, ch := range channels {
		if !ch.Enabled {
			continue
		}
		wg.Go(func() {
			if err := n.deliverChannel(ctx, ch, evs, look); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("channel %s: %w", ch.ID, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (n *Notifier) deliverChannel(ctx context.Context, ch store.SealedChannel, evs []events.Event, look *lookups) error {
	var byType []*message
	index := map[events.EventType]*message{}
	for _, e := range evs {
		it := n.describe(ctx, e, look)
		match, err := matches(ctx, ch.Channel, it, look)
		if err != nil {
			return err
		}
		if !match {
			continue
		}
		claimed, err := n.Store.ClaimEvent(ctx, ch.TenantID, ch.ID, e.ID, n.now().Add(claimLease))
		if err != nil {
			return err
		}
		if !claimed {
			continue
		}
		if ch.Quiet {
			speak, err := n.speaks(ctx, ch, it)
			if err != nil {
				return err
			}
			if !speak {
				if err := n.Store.FinishEvent(ctx, ch.TenantID, ch.ID, e.ID); err != nil {
					return err
				}
				continue
			}
		}
		m := index[e.Type]
		if m == nil {
			m = &message{Type: e.Type}
			index[e.Type] = m
			byType = append(byType, m)
		}
		m.Items = append(m.Items, it)
	}
	var errs []error
	for _, m := range byType {
		d := n.send(ctx, ch, *m)
		if err := n.Store.PutDelivery(ctx, d); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, it := range m.Items {
			if err := n.Store.FinishEvent(ctx, ch.TenantID, ch.ID, it.Event.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// speaks decides whether a quiet channel sends an event: the first failure of a streak and
// the recovery that ends one; other events always.
func (n *Notifier) speaks(ctx context.Context, ch store.SealedChannel, it item) (bool, error) {
	subject := it.Facts.subject()
	if subject == "" {
		return true, nil
	}
	switch roles[it.Event.Type] {
	case roleFailure:
		return n.Store.StartStreak(ctx, ch.TenantID, ch.ID, subject, it.Event.ID)
	case roleRecovery:
		// A recovery nobody heard the failure of is news to no one.
		return n.Store.EndStreak(ctx, ch.TenantID, ch.ID, subject)
	}
	return true, nil
}

// matches applies a channel's rules to an event.
func matches(ctx context.Context, c domain.Channel, it item, look *lookups) (bool, error) {
	if !slices.Contains(c.Rules.EventTypes, string(it.Event.Type)) {
		return false, nil
	}
	if len(c.Rules.PolicyIDs) > 0 && !slices.Contains(c.Rules.PolicyIDs, it.Facts.PolicyID) {
		return false, nil
	}
	if len(c.Rules.AgentLabels) > 0 {
		if it.Facts.AgentID == "" {
			return false, nil
		}
		a, err := look.agent(ctx, it.Facts.AgentID)
		if err != nil {
			return false, err
		}
		if a == nil {
			return false, nil
		}
		for k, v := range c.Rules.AgentLabels {
			if got, ok := a.Labels[k]; !ok || got != v {
				return false, nil
			}
		}
	}
	return true, nil
}

// describe reads what a message shows of an event, looking up the host and policy names the
// event does not carry.
func (n *Notifier) describe(ctx context.Context, e events.Event, look *lookups) item {
	f := factsOf(e)
	it := item{Event: e, Facts: f, Host: f.Hostname, Policy: f.PolicyName}
	if it.Host == "" && f.AgentID != "" {
		if a, err := look.agent(ctx, f.AgentID); err == nil && a != nil {
			it.Host = a.Hostname
		}
	}
	if it.Policy == "" && f.PolicyID != "" {
		if p, err := look.policy(ctx, f.PolicyID); err == nil && p != nil {
			it.Policy = p.Name
		}
	}
	it.Link = n.link(f)
	return it
}

func (n *Notifier) link(f facts) string {
	if n.PublicURL == "" {
		return ""
	}
	base := strings.TrimRight(n.PublicURL, "/")
	switch {
	case f.RunID != "":
		return base + "/v1/runs/" + f.RunID
	case f.TaskID != "":
		return base + "/v1/tasks/" + f.TaskID
	case f.AgentID != "":
		return base + "/v1/agents/" + f.AgentID
	}
	return ""
}

// lookups caches the agents and policies one batch names; nil marks one that does not exist.
type lookups struct {
	st       *store.Store
	tenantID string
	mu       sync.Mutex
	agents   map[string]*domain.Agent
	policies map[string]*domain.Policy
}

func (l *lookups) agent(ctx context.Context, id string) (*domain.Agent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, ok := l.agents[id]; ok {
		return a, nil
	}
	a, err := l.st.GetAgent(ctx, l.tenantID, id)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		l.agents[id] = nil
		return nil, nil
	case err != nil:
		return nil, err
	}
	l.agents[id] = &a
	return &a, nil
}

func (l *lookups) policy(ctx context.Context, id string) (*domain.Policy, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.policies[id]; ok {
		return p, nil
	}
	p, err := l.st.GetPolicy(ctx, l.tenantID, id)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		l.policies[id] = nil
		return nil, nil
	case err != nil:
		return nil, err
	}
	l.policies[id] = &p
	return &p, nil
}

// attemptResult is how one attempt of a delivery went.
type attemptResult struct {
	status  int
	err     error
	retry   bool
	latency time.Duration
}

// send delivers one message to a channel, retrying what may succeed later, and returns the
// record of the delivery.
func (n *Notifier) send(ctx context.Context, ch store.SealedChannel, m message) domain.Delivery {
	d := domain.Delivery{
		TenantID: ch.TenantID, ChannelID: ch.ID, ID: domain.NewID(n.now()), EventType: string(m.Type),
		EventCount: len(m.Items), Test: m.Test, CreatedAt: n.now(),
	}
	for _, it := range m.Items {
		if len(d.EventIDs) < domain.MaxDeliveryEventIDs {
			d.EventIDs = append(d.EventIDs, it.Event.ID)
		}
	}
	attempt, err := n.attempter(ch, m, d.ID)
	if err != nil {
		d.Status, d.Error = domain.DeliveryFailed, err.Error()
		return d
	}
	var last attemptResult
	for d.Attempts = 1; ; d.Attempts++ {
		last = attempt(ctx)
		if last.err == nil || !last.retry || d.Attempts >= n.maxAttempts() {
			break
		}
		wait := schedule.RetryDelay(d.Attempts, n.retry(), mrand.Float64)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			last.err = fmt.Errorf("%w (gave up: %v)", last.err, ctx.Err())
		case <-t.C:
			continue
		}
		break
	}
	d.StatusCode, d.LatencyMillis = last.status, last.latency.Milliseconds()
	if last.err != nil {
		d.Status, d.Error = domain.DeliveryFailed, truncateUTF8(last.err.Error(), 1000)
		n.Log.WarnContext(ctx, "delivery failed", "tenant_id", ch.TenantID, "channel_id", ch.ID, "delivery_id", d.ID,
			"event_type", d.EventType, "attempts", d.Attempts, "status_code", d.StatusCode, "error", d.Error)
		return d
	}
	d.Status = domain.DeliverySucceeded
	return d
}

// attempter returns what one attempt of a delivery to ch does.
func (n *Notifier) attempter(ch store.SealedChannel, m message, deliveryID string) (func(context.Context) attemptResult, error) {
	switch ch.Kind {
	case domain.ChannelWebhook:
		secret, err := n.open(ch)
		if err != nil {
			return nil, err
		}
		body, err := m.webhookBody(deliveryID, ch.ID)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) attemptResult {
			h := http.Header{}
			h.Set(SignatureHeader, Sign(secret, n.now(), body))
			h.Set("X-Restic-Monitor-Event", string(m.Type))
			h.Set("X-Restic-Monitor-Delivery", deliveryID)
			return n.post(ctx, ch.URL, h, body)
		}, nil
	case domain.ChannelSlack:
		hook, err := n.open(ch)
		if err != nil {
			return nil, err
		}
		body, err := m.slackBody()
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) attemptResult { return n.post(ctx, hook, http.Header{}, body) }, nil
	case domain.ChannelEmail:
		to := ch.ConfirmedEmails()
		if len(to) == 0 {
			return nil, errors.New("no address of the channel is confirmed yet")
		}
		if n.Mailer == nil {
			return nil, errors.New("email is not configured for this deployment")
		}
		subject, text := m.subject(), m.text()
		return func(ctx context.Context) attemptResult {
			start := time.Now()
			err := n.Mailer.SendEmail(ctx, to, subject, text)
			return attemptResult{err: err, retry: err != nil, latency: time.Since(start)}
		}, nil
	}
	return nil, fmt.Errorf("channel kind %q cannot be delivered", ch.Kind)
}

func (n *Notifier) open(ch store.SealedChannel) (string, error) {
	if n.Sealer == nil {
		return "", errors.New("no secret key is configured (RM_SECRET_KEY)")
	}
	return n.Sealer.Open(ch.TenantID, ch.ID, ch.Sealed)
}

// post sends one request. Errors never repeat the URL: a Slack webhook URL is a secret.
func (n *Notifier) post(ctx context.Context, target string, h http.Header, body []byte) attemptResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return attemptResult{err: errors.New("the channel's URL cannot be requested")}
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "restic-monitor-notifier/1")
	start := time.Now()
	res, err := n.HTTP.Do(req)
	latency := time.Since(start)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return attemptResult{err: err, retry: !errors.Is(err, ErrPrivateAddress), latency: latency}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	r := attemptResult{status: res.StatusCode, latency: latency}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
	case res.StatusCode >= 300 && res.StatusCode < 400:
		r.err = fmt.Errorf("the receiver answered %d; redirects are not followed", res.StatusCode)
	case res.StatusCode == http.StatusRequestTimeout || res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
		r.err, r.retry = fmt.Errorf("the receiver answered %d", res.StatusCode), true
	default:
		r.err = fmt.Errorf("the receiver refused the delivery with %d", res.StatusCode)
	}
	return r
}

// TestHostname is the host a test delivery's synthetic event names.
const TestHostname = "test.restic-monitor.invalid"

// TestSend delivers a synthetic agent.offline event to a channel at once, whatever its rules,
// records the delivery in the channel's log and returns it.
func (n *Notifier) TestSend(ctx context.Context, tenantID, channelID string) (domain.Delivery, error) {
	c, sealed, err := n.Store.GetChannelSealed(ctx, tenantID, channelID)
	if err != nil {
		return domain.Delivery{}, err
	}
	now := n.now()
	e := events.NewAgentOffline(now, domain.Agent{TenantID: tenantID, ID: domain.NewID(now), Hostname: TestHostname})
	m := message{Type: e.Type, Test: true, Items: []item{{Event: e, Facts: factsOf(e), Host: TestHostname}}}
	d := n.send(ctx, store.SealedChannel{Channel: c, Sealed: sealed}, m)
	if err := n.Store.PutDelivery(ctx, d); err != nil {
		return domain.Delivery{}, err
	}
	return d, nil
}

// SendConfirmations emails each address a link that confirms it wants the channel's
// notifications. Only the token's hash is stored.
func (n *Notifier) SendConfirmations(ctx context.Context, c domain.Channel, addresses []string) error {
	if len(addresses) == 0 {
		return nil
	}
	if n.Mailer == nil {
		return errors.New("email is not configured for this deployment")
	}
	for _, addr := range addresses {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return err
		}
		secret := base64.RawURLEncoding.EncodeToString(raw)
		if err := n.Store.PutEmailConfirmation(ctx, c.TenantID, c.ID, tokenHash(secret), addr); err != nil {
			return err
		}
		token := c.TenantID + "." + c.ID + "." + secret
		link := strings.TrimRight(n.PublicURL, "/") + "/v1/notification-channels/confirm?token=" + token
		text := fmt.Sprintf("restic-monitor was asked to send the notifications of channel %q (tenant %s) to %s.\n\n"+
			"To receive them, open this link within 7 days:\n%s\n\nIf you did not expect this, ignore this message; nothing will be sent to you.\n",
			c.Name, c.TenantID, addr, link)
		if err := n.Mailer.SendEmail(ctx, []string{addr}, "Confirm restic-monitor notifications", text); err != nil {
			return fmt.Errorf("send confirmation: %w", err)
		}
	}
	return nil
}

func tokenHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// ErrBadToken is a confirmation token that is malformed, unknown or expired.
var ErrBadToken = errors.New("the confirmation link is not valid or has expired")

// Confirm marks the address a confirmation token was made for as confirmed and returns it.
func (n *Notifier) Confirm(ctx context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || !domain.ValidTenantID(parts[0]) || !domain.ValidID(parts[1]) || len(parts[2]) != 43 {
		return "", ErrBadToken
	}
	addr, err := n.Store.ConfirmEmail(ctx, parts[0], parts[1], tokenHash(parts[2]))
	if errors.Is(err, domain.ErrNotFound) {
		return "", ErrBadToken
	}
	return addr, err
}
