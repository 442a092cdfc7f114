package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/notify"
)

// channelHandlers serve /v1/notification-channels.
type channelHandlers struct {
	d Deps
}

const channelsPath = "/v1/notification-channels"

// channelBody is what a client writes of a channel. slackUrl is write-only: it is a secret,
// and answers show only its start.
type channelBody struct {
	Name     string              `json:"name"`
	Kind     domain.ChannelKind  `json:"kind"`
	URL      string              `json:"url,omitempty"`
	SlackURL string              `json:"slackUrl,omitempty"`
	Emails   []string            `json:"emails,omitempty"`
	Rules    domain.ChannelRules `json:"rules"`
	Quiet    bool                `json:"quiet"`
	Enabled  *bool               `json:"enabled,omitempty"`
}

// channelPatch is the writable view of a stored channel that a merge patch applies to.
type channelPatch struct {
	Name     string              `json:"name"`
	URL      string              `json:"url,omitempty"`
	SlackURL string              `json:"slackUrl,omitempty"`
	Emails   []string            `json:"emails,omitempty"`
	Rules    domain.ChannelRules `json:"rules"`
	Quiet    bool                `json:"quiet"`
	Enabled  bool                `json:"enabled"`
	Version  int64               `json:"version"`
}

// channelWithSecret is a channel as created or re-keyed: the only answers that show its
// signing secret.
type channelWithSecret struct {
	domain.Channel
	Secret string `json:"secret,omitempty"`
}

func (h channelHandlers) notifier() (*notify.Notifier, error) {
	if h.d.Notify == nil || h.d.Notify.Sealer == nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "notifications are not configured for this deployment (RM_SECRET_KEY)"}
	}
	return h.d.Notify, nil
}

// canMail refuses new email recipients, before anything is stored, on a deployment that sends
// no email.
func canMail(n *notify.Notifier, addresses []string) error {
	if len(addresses) == 0 || n.Mailer != nil {
		return nil
	}
	return &domain.ValidationError{Fields: []domain.FieldError{{Field: "emails",
		Reason: "this deployment sends no email: it has no sender address (RM_NOTIFY_FROM)"}}}
}

// sendConfirmations mails each new address its confirmation link. The channel is stored by
// then; a mail that could not be sent leaves its address unconfirmed, which the answer says.
func sendConfirmations(r *http.Request, n *notify.Notifier, c domain.Channel, addresses []string) error {
	if len(addresses) == 0 {
		return nil
	}
	if err := n.SendConfirmations(r.Context(), c, addresses); err != nil {
		// The cause is logged with the answer's status; the caller sees what it can act on.
		return fmt.Errorf("%w: %w", &Error{Status: http.StatusBadGateway, Code: CodeUnavailable,
			Message: "channel " + c.ID + " is stored, but its confirmation email could not be sent; its addresses stay unconfirmed until they are removed and added again"}, err)
	}
	return nil
}

// checkChannel validates a channel with what only the API sees: a Slack channel's URL.
func checkChannel(c domain.Channel, slackURL string) error {
	var fields []domain.FieldError
	if err := c.Validate(events.TypeNames()); err != nil {
		var ve *domain.ValidationError
		if !errors.As(err, &ve) {
			return err
		}
		fields = ve.Fields
	}
	if c.Kind == domain.ChannelSlack {
		if reason := domain.ChannelURLProblem(slackURL); reason != "" {
			fields = append(fields, domain.FieldError{Field: "slackUrl", Reason: reason})
		}
	} else if slackURL != "" {
		fields = append(fields, domain.FieldError{Field: "slackUrl", Reason: "only a slack channel has a Slack URL"})
	}
	if len(fields) > 0 {
		return &domain.ValidationError{Fields: fields}
	}
	return nil
}

func recipients(addrs []string, before []domain.EmailRecipient) []domain.EmailRecipient {
	var out []domain.EmailRecipient
	for _, a := range addrs {
		r := domain.EmailRecipient{Address: a}
		for _, b := range before {
			if strings.EqualFold(b.Address, a) {
				r = b
			}
		}
		out = append(out, r)
	}
	return out
}

func unconfirmed(rs []domain.EmailRecipient) []string {
	var out []string
	for _, r := range rs {
		if !r.Confirmed {
			out = append(out, r.Address)
		}
	}
	return out
}

func (h channelHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var b channelBody
	if err := decode(r, &b); err != nil {
		return err
	}
	now := h.d.now()
	c := domain.Channel{ID: domain.NewID(now), Name: b.Name, Kind: b.Kind, URL: b.URL, Emails: recipients(b.Emails, nil),
		Rules: b.Rules, Quiet: b.Quiet, Enabled: b.Enabled == nil || *b.Enabled}
	if err := checkChannel(c, b.SlackURL); err != nil {
		return err
	}
	n, err := h.notifier()
	if err != nil {
		return err
	}
	var secret, sealed string
	switch c.Kind {
	case domain.ChannelWebhook:
		secret = notify.NewWebhookSecret()
		c.SecretRotatedAt = &now
		sealed, err = n.Sealer.Seal(tenantOf(r), c.ID, secret)
	case domain.ChannelSlack:
		c.SlackHint = domain.SlackHint(b.SlackURL)
		sealed, err = n.Sealer.Seal(tenantOf(r), c.ID, b.SlackURL)
	}
	if err != nil {
		return err
	}
	if err := canMail(n, unconfirmed(c.Emails)); err != nil {
		return err
	}
	recordChange(r, c.ID, nil, c)
	c, err = h.d.Store.CreateChannel(r.Context(), tenantOf(r), c, sealed)
	if err != nil {
		return err
	}
	if err := sendConfirmations(r, n, c, unconfirmed(c.Emails)); err != nil {
		return err
	}
	writeCreated(w, channelsPath+"/"+c.ID, channelWithSecret{Channel: c, Secret: secret})
	return nil
}

func (h channelHandlers) list(w http.ResponseWriter, r *http.Request) error {
	return listPage(w, r, h.d.Store.ListChannels)
}

func (h channelHandlers) get(w http.ResponseWriter, r *http.Request) error {
	return writeByID(w, r, "channelId", h.d.Store.GetChannel)
}

func (h channelHandlers) patch(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "channelId")
	if err != nil {
		return err
	}
	// A body that is not JSON is refused as such before the channel is looked up.
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		return jsonError(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var probe map[string]any
	if err := decode(r, &probe); err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	stored, err := h.d.Store.GetChannel(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	view := channelPatch{Name: stored.Name, URL: stored.URL, Rules: stored.Rules, Quiet: stored.Quiet, Enabled: stored.Enabled, Version: stored.Version}
	for _, e := range stored.Emails {
		view.Emails = append(view.Emails, e.Address)
	}
	var p channelPatch
	if err := decodeMergePatch(r, view, &p); err != nil {
		return err
	}
	next := stored
	next.Name, next.URL, next.Rules, next.Quiet, next.Enabled, next.Version = p.Name, p.URL, p.Rules, p.Quiet, p.Enabled, p.Version
	next.Emails = recipients(p.Emails, stored.Emails)
	slackURL := p.SlackURL
	if stored.Kind == domain.ChannelSlack && slackURL == "" {
		// The stored URL stays; only a new one is checked.
		slackURL = "https://unchanged.invalid/"
	}
	if err := checkChannel(next, slackURL); err != nil {
		return err
	}
	var sealed *string
	if p.SlackURL != "" {
		n, err := h.notifier()
		if err != nil {
			return err
		}
		s, err := n.Sealer.Seal(tenantOf(r), id, p.SlackURL)
		if err != nil {
			return err
		}
		sealed, next.SlackHint = &s, domain.SlackHint(p.SlackURL)
	}
	var added []string
	for _, e := range unconfirmed(next.Emails) {
		if !slices.ContainsFunc(stored.Emails, func(s domain.EmailRecipient) bool { return strings.EqualFold(s.Address, e) }) {
			added = append(added, e)
		}
	}
	var n *notify.Notifier
	if len(added) > 0 {
		if n, err = h.notifier(); err != nil {
			return err
		}
		if err := canMail(n, added); err != nil {
			return err
		}
	}
	recordChange(r, "", stored, next)
	c, err := h.d.Store.UpdateChannel(r.Context(), tenantOf(r), next, sealed)
	if err != nil {
		return err
	}
	if err := sendConfirmations(r, n, c, added); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (h channelHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "channelId")
	if err != nil {
		return err
	}
	if stored, err := h.d.Store.GetChannel(r.Context(), tenantOf(r), id); err == nil {
		recordChange(r, "", stored, nil)
	}
	if err := h.d.Store.DeleteChannel(r.Context(), tenantOf(r), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateSecret gives a webhook channel a new signing secret and shows it, once.
func (h channelHandlers) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "channelId")
	if err != nil {
		return err
	}
	stored, err := h.d.Store.GetChannel(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	if stored.Kind != domain.ChannelWebhook {
		return &domain.ValidationError{Fields: []domain.FieldError{{Field: "kind", Reason: "only a webhook channel has a signing secret"}}}
	}
	n, err := h.notifier()
	if err != nil {
		return err
	}
	secret := notify.NewWebhookSecret()
	sealed, err := n.Sealer.Seal(tenantOf(r), id, secret)
	if err != nil {
		return err
	}
	now := h.d.now()
	before := stored
	stored.SecretRotatedAt = &now
	recordChange(r, "", before, stored)
	c, err := h.d.Store.UpdateChannel(r.Context(), tenantOf(r), stored, &sealed)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, channelWithSecret{Channel: c, Secret: secret})
	return nil
}

func (h channelHandlers) test(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "channelId")
	if err != nil {
		return err
	}
	n, err := h.notifier()
	if err != nil {
		return err
	}
	d, err := n.TestSend(r.Context(), tenantOf(r), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (h channelHandlers) deliveries(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "channelId")
	if err != nil {
		return err
	}
	q, err := queryParams(r, "limit", "cursor")
	if err != nil {
		return err
	}
	page, err := q.page()
	if err != nil {
		return err
	}
	ds, next, err := h.d.Store.ListDeliveries(r.Context(), tenantOf(r), id, page)
	if err != nil {
		return err
	}
	writeList(w, ds, next)
	return nil
}

// confirmation is the answer to a confirmation link.
type confirmation struct {
	Address     string    `json:"address"`
	Confirmed   bool      `json:"confirmed"`
	ConfirmedAt time.Time `json:"confirmedAt"`
}

// confirm is the public end of an email confirmation link: the token is the credential.
func (h channelHandlers) confirm(w http.ResponseWriter, r *http.Request) error {
	q, err := queryParams(r, "token")
	if err != nil {
		return err
	}
	token := q.get("token")
	if token == "" {
		return fieldError("token", "required: the token of the confirmation link")
	}
	if h.d.Notify == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "notifications are not configured for this deployment"}
	}
	addr, err := h.d.Notify.Confirm(r.Context(), token)
	if errors.Is(err, notify.ErrBadToken) {
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error()}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, confirmation{Address: addr, Confirmed: true, ConfirmedAt: h.d.now()})
	return nil
}

// PublicRoutes are the routes a link in an email reaches, without an API key: the token in
// the link is the credential.
func PublicRoutes(d Deps) []Route {
	c := channelHandlers{d: d}
	return []Route{
		{http.MethodGet, channelsPath + "/confirm", AccessPublic, c.confirm},
		{http.MethodPost, channelsPath + "/confirm", AccessPublic, c.confirm},
	}
}
