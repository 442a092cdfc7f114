package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/notify"
)

// sesEndpoint is a local HTTP server standing in for the SES v2 endpoint: the emulator accepts
// SendEmail but offers no way to read what was sent.
type sesEndpoint struct {
	*httptest.Server
	mu   sync.Mutex
	sent []sentMail
}

type sentMail struct {
	To   []string
	Body string
}

func newSESEndpoint(t *testing.T) *sesEndpoint {
	e := &sesEndpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Destination struct{ ToAddresses []string }
			Content     struct {
				Simple struct {
					Body struct{ Text struct{ Data string } }
				}
			}
		}
		if r.URL.Path != "/v2/email/outbound-emails" || json.NewDecoder(r.Body).Decode(&in) != nil {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		e.sent = append(e.sent, sentMail{To: in.Destination.ToAddresses, Body: in.Content.Simple.Body.Text.Data})
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"MessageId":"m"}`))
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *sesEndpoint) mails() []sentMail {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]sentMail(nil), e.sent...)
}

// confirmToken reads the token of the last confirmation link mailed to addr.
func (e *sesEndpoint) confirmToken(t *testing.T, addr string) string {
	t.Helper()
	var token string
	for _, m := range e.mails() {
		if len(m.To) == 1 && m.To[0] == addr {
			if _, rest, ok := strings.Cut(m.Body, "/v1/notification-channels/confirm?token="); ok {
				token, _, _ = strings.Cut(rest, "\n")
			}
		}
	}
	require.NotEmpty(t, token, "no confirmation link was mailed to %s", addr)
	return token
}

type hookReceiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []struct {
		sig  string
		body []byte
	}
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, struct {
			sig  string
			body []byte
		}{req.Header.Get(notify.SignatureHeader), b})
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

type createdChannel struct {
	domain.Channel
	Secret string `json:"secret"`
}

func TestAWebhookChannelsSecretIsShownOnceAndSignsItsTestDelivery(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	rcv := newHookReceiver(t)
	res := h.call(http.MethodPost, "/v1/notification-channels", w.operator, map[string]any{
		"name": "ops hook", "kind": "webhook", "url": rcv.URL + "/rm", "rules": map[string]any{"eventTypes": []string{"task.failed"}}})
	require.Equal(t, http.StatusCreated, res.Status, res.Body)
	var c createdChannel
	res.JSON(t, &c)
	require.True(t, strings.HasPrefix(c.Secret, "whsec_"))

	for _, path := range []string{"/v1/notification-channels/" + c.ID, "/v1/notification-channels"} {
		res = h.call(http.MethodGet, path, w.viewer, nil)
		require.Equal(t, http.StatusOK, res.Status)
		assert.NotContains(t, res.Body, c.Secret, "%s never shows the secret again", path)
	}
	res = h.call(http.MethodPost, "/v1/notification-channels/"+c.ID+"/test", w.operator, nil)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	var d domain.Delivery
	res.JSON(t, &d)
	assert.Equal(t, domain.DeliverySucceeded, d.Status)
	assert.Equal(t, http.StatusOK, d.StatusCode)
	require.Len(t, rcv.got, 1)
	assert.NoError(t, notify.Verify(c.Secret, rcv.got[0].sig, rcv.got[0].body, h.clock))

	res = h.call(http.MethodGet, "/v1/notification-channels/"+c.ID+"/deliveries", w.viewer, nil)
	require.Equal(t, http.StatusOK, res.Status)
	var ds struct{ Items []domain.Delivery }
	res.JSON(t, &ds)
	assert.Equal(t, []domain.Delivery{d}, ds.Items)

	res = h.call(http.MethodPost, "/v1/notification-channels/"+c.ID+"/rotate-secret", w.operator, nil)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	var rotated createdChannel
	res.JSON(t, &rotated)
	assert.NotEqual(t, c.Secret, rotated.Secret)
	h.call(http.MethodPost, "/v1/notification-channels/"+c.ID+"/test", w.operator, nil)
	require.Len(t, rcv.got, 2)
	assert.NoError(t, notify.Verify(rotated.Secret, rcv.got[1].sig, rcv.got[1].body, h.clock), "the new secret signs")
	assert.ErrorIs(t, notify.Verify(c.Secret, rcv.got[1].sig, rcv.got[1].body, h.clock), notify.ErrBadSignature, "the old one no longer")
}

func TestChannelInputErrorsNameTheField(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	rules := map[string]any{"eventTypes": []string{"task.failed"}}
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		field  string
	}{
		{"bad url", map[string]any{"name": "a", "kind": "webhook", "url": "ftp://x.example.com", "rules": rules}, 422, "url"},
		{"url with credentials", map[string]any{"name": "a", "kind": "webhook", "url": "https://u:p@x.example.com", "rules": rules}, 422, "url"},
		{"unknown kind", map[string]any{"name": "a", "kind": "pager", "rules": rules}, 422, "kind"},
		{"unknown event type", map[string]any{"name": "a", "kind": "webhook", "url": "https://x.example.com",
			"rules": map[string]any{"eventTypes": []string{"task.failed", "backup.exploded"}}}, 422, "rules.eventTypes[1]"},
		{"no event type", map[string]any{"name": "a", "kind": "webhook", "url": "https://x.example.com", "rules": map[string]any{"eventTypes": []string{}}}, 422, "rules.eventTypes"},
		{"bad slack url", map[string]any{"name": "a", "kind": "slack", "slackUrl": "hooks.slack.com", "rules": rules}, 422, "slackUrl"},
		{"bad email", map[string]any{"name": "a", "kind": "email", "emails": []string{"ops@example.com", "Ops <x@y.com>"}, "rules": rules}, 422, "emails[1]"},
		{"bad policy id", map[string]any{"name": "a", "kind": "webhook", "url": "https://x.example.com",
			"rules": map[string]any{"eventTypes": []string{"task.failed"}, "policyIds": []string{"nope"}}}, 422, "rules.policyIds[0]"},
		{"unknown field", map[string]any{"name": "a", "kind": "webhook", "url": "https://x.example.com", "rules": rules, "secret": "mine"}, 400, "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call(http.MethodPost, "/v1/notification-channels", w.operator, tc.body)
			require.Equal(t, tc.status, res.Status, res.Body)
			assert.Contains(t, res.ErrorFields(t), tc.field)
		})
	}
	res := h.call(http.MethodPost, "/v1/notification-channels", w.viewer, map[string]any{"name": "a", "kind": "webhook", "url": "https://x.example.com", "rules": rules})
	assert.Equal(t, http.StatusForbidden, res.Status, "a viewer cannot create channels")
}

func TestAnotherTenantsChannelIsNotFound(t *testing.T) {
	h := newHarness(t)
	acme := newTenantWorld(h, "acme")
	other := newTenantWorld(h, "other")
	res := h.call(http.MethodPost, "/v1/notification-channels", acme.operator, map[string]any{
		"name": "hook", "kind": "webhook", "url": "https://hooks.example.com/x", "rules": map[string]any{"eventTypes": []string{"task.failed"}}})
	require.Equal(t, http.StatusCreated, res.Status, res.Body)
	var c createdChannel
	res.JSON(t, &c)
	for _, call := range []struct{ method, path string }{
		{http.MethodGet, "/v1/notification-channels/" + c.ID},
		{http.MethodPatch, "/v1/notification-channels/" + c.ID},
		{http.MethodDelete, "/v1/notification-channels/" + c.ID},
		{http.MethodPost, "/v1/notification-channels/" + c.ID + "/test"},
		{http.MethodPost, "/v1/notification-channels/" + c.ID + "/rotate-secret"},
		{http.MethodGet, "/v1/notification-channels/" + c.ID + "/deliveries"},
	} {
		var body any
		if call.method == http.MethodPatch {
			body = map[string]any{"version": 1, "name": "mine"}
		}
		res := h.call(call.method, call.path, other.operator, body)
		assert.Equal(t, http.StatusNotFound, res.Status, "%s %s: %s", call.method, call.path, res.Body)
	}
	res = h.call(http.MethodGet, "/v1/notification-channels", other.viewer, nil)
	assert.JSONEq(t, `{"items":[]}`, res.Body)
}

func TestAnEmailChannelConfirmsEachAddressThroughItsLink(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	res := h.call(http.MethodPost, "/v1/notification-channels", w.operator, map[string]any{
		"name": "oncall", "kind": "email", "emails": []string{"ops@example.com"}, "rules": map[string]any{"eventTypes": []string{"agent.offline"}}})
	require.Equal(t, http.StatusCreated, res.Status, res.Body)
	var c createdChannel
	res.JSON(t, &c)
	require.Len(t, c.Emails, 1)
	assert.False(t, c.Emails[0].Confirmed)
	token := h.ses.confirmToken(t, "ops@example.com")

	res = h.call(http.MethodPost, "/v1/notification-channels/"+c.ID+"/test", w.operator, nil)
	require.Equal(t, http.StatusOK, res.Status)
	var d domain.Delivery
	res.JSON(t, &d)
	assert.Equal(t, domain.DeliveryFailed, d.Status, "nothing goes to an unconfirmed address")
	assert.Len(t, h.ses.mails(), 1, "only the confirmation was mailed")

	res = h.call(http.MethodGet, "/v1/notification-channels/confirm?token=acme.0000.bad", "", nil)
	assert.Equal(t, http.StatusNotFound, res.Status, res.Body)
	res = h.call(http.MethodGet, "/v1/notification-channels/confirm?token="+token, "", nil)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	assert.Contains(t, res.Body, `"address":"ops@example.com"`)
	res = h.call(http.MethodGet, "/v1/notification-channels/"+c.ID, w.viewer, nil)
	var got domain.Channel
	res.JSON(t, &got)
	assert.True(t, got.Emails[0].Confirmed)

	res = h.call(http.MethodPost, "/v1/notification-channels/"+c.ID+"/test", w.operator, nil)
	res.JSON(t, &d)
	assert.Equal(t, domain.DeliverySucceeded, d.Status)
	mails := h.ses.mails()
	require.Len(t, mails, 2)
	assert.Contains(t, mails[1].Body, notify.TestHostname)

	res = h.call(http.MethodPatch, "/v1/notification-channels/"+c.ID, w.operator, map[string]any{
		"version": got.Version, "emails": []string{"ops@example.com", "lead@example.com"}})
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	res.JSON(t, &got)
	assert.Equal(t, []bool{true, false}, []bool{got.Emails[0].Confirmed, got.Emails[1].Confirmed}, "a kept address stays confirmed")
	h.ses.confirmToken(t, "lead@example.com")
}

// channel creates a webhook channel through the API.
func (w *tenantWorld) channel(name string) createdChannel {
	w.h.t.Helper()
	res := w.h.call(http.MethodPost, "/v1/notification-channels", w.operator, map[string]any{
		"name": name, "kind": "webhook", "url": "https://hooks.example.com/" + name, "rules": map[string]any{"eventTypes": []string{"task.failed"}}})
	require.Equal(w.h.t, http.StatusCreated, res.Status, res.Body)
	var c createdChannel
	res.JSON(w.h.t, &c)
	return c
}

func TestAnEmailChannelOnADeploymentThatSendsNoMailIsRefusedBeforeItIsStored(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	mailer := h.deps.Notify.Mailer
	h.deps.Notify.Mailer = nil
	res := h.call(http.MethodPost, "/v1/notification-channels", w.operator, map[string]any{
		"name": "oncall", "kind": "email", "emails": []string{"ops@example.com"}, "rules": map[string]any{"eventTypes": []string{"agent.offline"}}})
	assert.Equal(t, http.StatusUnprocessableEntity, res.Status, res.Body)
	assert.Contains(t, res.Body, `"field":"emails"`)
	res = h.call(http.MethodGet, "/v1/notification-channels", w.viewer, nil)
	assert.JSONEq(t, `{"items":[]}`, res.Body, "nothing was stored")

	// With a sender whose mail service is down, the channel is stored and the answer says the
	// confirmation did not go out.
	h.deps.Notify.Mailer = mailer
	h.ses.Close()
	res = h.call(http.MethodPost, "/v1/notification-channels", w.operator, map[string]any{
		"name": "oncall", "kind": "email", "emails": []string{"ops@example.com"}, "rules": map[string]any{"eventTypes": []string{"agent.offline"}}})
	assert.Equal(t, http.StatusBadGateway, res.Status, res.Body)
	assert.Contains(t, res.Body, "confirmation email could not be sent")
	res = h.call(http.MethodGet, "/v1/notification-channels", w.viewer, nil)
	assert.Contains(t, res.Body, `"name":"oncall"`)
}
