package domain

import (
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ChannelKind is how a notification channel delivers.
type ChannelKind string

const (
	// ChannelWebhook posts a signed JSON body to a URL.
	ChannelWebhook ChannelKind = "webhook"
	// ChannelSlack posts a readable message to a Slack incoming webhook.
	ChannelSlack ChannelKind = "slack"
	// ChannelEmail sends mail through SES to addresses that confirmed they want it.
	ChannelEmail ChannelKind = "email"
)

// ChannelKinds lists every channel kind.
var ChannelKinds = []ChannelKind{ChannelWebhook, ChannelSlack, ChannelEmail}

// Channel is where a tenant's notifications go. Its secret (a webhook's signing secret, a
// Slack webhook URL) is not part of it: the store keeps it sealed beside the channel, and the
// API shows it once.
type Channel struct {
	TenantID string      `json:"tenantId"`
	ID       string      `json:"id"`
	Name     string      `json:"name"`
	Kind     ChannelKind `json:"kind"`
	// URL is a webhook's address.
	URL string `json:"url,omitempty"`
	// SlackHint is the start of a Slack webhook URL, enough to recognise it and useless to
	// post with.
	SlackHint string `json:"slackUrlHint,omitempty"`
	// Emails are an email channel's recipients; only confirmed ones receive notifications.
	Emails  []EmailRecipient `json:"emails,omitempty"`
	Rules   ChannelRules     `json:"rules"`
	Quiet   bool             `json:"quiet"`
	Enabled bool             `json:"enabled"`
	// SecretRotatedAt is when a webhook's signing secret was made.
	SecretRotatedAt *time.Time `json:"secretRotatedAt,omitempty"`
	CreatedAt       time.Time  `json:"createdAt"`
	UpdatedAt       time.Time  `json:"updatedAt"`
	Version         int64      `json:"version"`
}

// EmailRecipient is one recipient of an email channel.
type EmailRecipient struct {
	Address     string     `json:"address"`
	Confirmed   bool       `json:"confirmed"`
	ConfirmedAt *time.Time `json:"confirmedAt,omitempty"`
}

// ChannelRules choose the events a channel gets. An event must have one of EventTypes; when
// PolicyIDs is set, its policy must be one of them; when AgentLabels is set, its agent must
// carry every one of those labels.
type ChannelRules struct {
	EventTypes  []string          `json:"eventTypes"`
	PolicyIDs   []string          `json:"policyIds,omitempty"`
	AgentLabels map[string]string `json:"agentLabels,omitempty"`
}

// Limits of a channel.
const (
	MaxChannelEmails     = 20
	MaxChannelPolicies   = 100
	MaxChannelEventTypes = 50
	maxChannelURLBytes   = 2048
)

// ConfirmedEmails returns the addresses that may receive notifications.
func (c Channel) ConfirmedEmails() []string {
	var out []string
	for _, e := range c.Emails {
		if e.Confirmed {
			out = append(out, e.Address)
		}
	}
	return out
}

// Validate checks a channel before it is stored; eventTypes are the event types that exist
// (the events package owns them, and this package cannot import it). A Slack channel's URL is
// checked by ValidChannelURL where the API reads it.
func (c Channel) Validate(eventTypes []string) error {
	var fe fieldErrors
	checkText(&fe, "name", c.Name, 1, 100)
	switch c.Kind {
	case "":
		fe.add("kind", "must not be empty")
	case ChannelWebhook:
		if reason := ChannelURLProblem(c.URL); reason != "" {
			fe.add("url", "%s", reason)
		}
	case ChannelSlack:
		if c.URL != "" {
			fe.add("url", "a slack channel takes slackUrl, not url")
		}
	case ChannelEmail:
		if c.URL != "" {
			fe.add("url", "an email channel takes emails, not url")
		}
		checkEmails(&fe, c.Emails)
	default:
		fe.add("kind", "must be one of webhook, slack, email")
	}
	if c.Kind != ChannelEmail && len(c.Emails) > 0 {
		fe.add("emails", "only an email channel has addresses")
	}
	c.Rules.check(&fe, eventTypes)
	return fe.err()
}

func checkEmails(fe *fieldErrors, emails []EmailRecipient) {
	switch {
	case len(emails) == 0:
		fe.add("emails", "an email channel needs at least one address")
		return
	case len(emails) > MaxChannelEmails:
		fe.add("emails", "at most %d addresses (got %d)", MaxChannelEmails, len(emails))
		return
	}
	seen := map[string]bool{}
	for i, e := range emails {
		field := "emails[" + strconv.Itoa(i) + "]"
		if !ValidEmail(e.Address) {
			fe.add(field, "%s is not an email address such as ops@example.com", quoteShort(e.Address))
			continue
		}
		if seen[strings.ToLower(e.Address)] {
			fe.add(field, "%s is listed twice", quoteShort(e.Address))
		}
		seen[strings.ToLower(e.Address)] = true
	}
}

// ValidEmail reports whether s is a bare address (no display name) mail can go to.
func ValidEmail(s string) bool {
	if len(s) > 254 || hasControl(s) {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s[strings.LastIndex(s, "@"):], ".")
}

// ChannelURLProblem says what is wrong with a URL a channel posts to, or "" when nothing is.
// Where it points is checked when it is dialled, so a name that resolves elsewhere later
// cannot slip past.
func ChannelURLProblem(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > maxChannelURLBytes || hasControl(s) {
		return "must be a URL of at most 2048 bytes"
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "":
		return "must be an http or https URL such as https://hooks.example.com/restic"
	case u.User != nil:
		return "must not hold credentials; the channel's secret signs every request"
	case u.Fragment != "":
		return "must not have a fragment"
	case !validPort(u.Port(), true):
		return "port must be between 1 and 65535"
	case net.ParseIP(strings.Trim(u.Hostname(), "[]")) == nil && !strings.Contains(u.Hostname(), "."):
		return "host must be a domain name or an IP address"
	}
	return ""
}

func (r ChannelRules) check(fe *fieldErrors, eventTypes []string) {
	switch {
	case len(r.EventTypes) == 0:
		fe.add("rules.eventTypes", "name at least one event type, such as task.failed")
	case len(r.EventTypes) > MaxChannelEventTypes:
		fe.add("rules.eventTypes", "at most %d event types", MaxChannelEventTypes)
	}
	seen := map[string]bool{}
	for i, t := range r.EventTypes {
		field := "rules.eventTypes[" + strconv.Itoa(i) + "]"
		switch {
		case !slices.Contains(eventTypes, t):
			fe.add(field, "%s is not an event type; known: %s", quoteShort(t), strings.Join(eventTypes, ", "))
		case seen[t]:
			fe.add(field, "%s is listed twice", quoteShort(t))
		}
		seen[t] = true
	}
	if len(r.PolicyIDs) > MaxChannelPolicies {
		fe.add("rules.policyIds", "at most %d policies", MaxChannelPolicies)
	}
	for i, p := range r.PolicyIDs {
		if !ValidID(p) {
			fe.add("rules.policyIds["+strconv.Itoa(i)+"]", "%s is not a policy ID", quoteShort(p))
		}
	}
	checkLabels(fe, "rules.agentLabels", r.AgentLabels)
}

// SlackHint shortens a Slack webhook URL to what identifies it without letting anyone post.
func SlackHint(u string) string {
	const shown = 32
	if len(u) <= shown {
		return u[:len(u)/2] + "…"
	}
	return u[:shown] + "…"
}

// DeliveryStatus is how a delivery ended.
type DeliveryStatus string

const (
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Delivery is one message sent (or given up on) to a channel: one event, or a group of events
// of one type that arrived together.
type Delivery struct {
	TenantID  string `json:"tenantId"`
	ChannelID string `json:"channelId"`
	ID        string `json:"id"`
	EventType string `json:"eventType"`
	// EventIDs are the events the message carries (the first MaxDeliveryEventIDs of them);
	// EventCount counts them all.
	EventIDs   []string       `json:"eventIds"`
	EventCount int            `json:"eventCount"`
	Test       bool           `json:"test,omitempty"`
	Status     DeliveryStatus `json:"status"`
	// StatusCode is the receiver's last HTTP status; 0 when none answered.
	StatusCode int `json:"statusCode,omitempty"`
	// LatencyMillis is how long the last attempt took.
	LatencyMillis int64     `json:"latencyMs"`
	Attempts      int       `json:"attempts"`
	Error         string    `json:"error,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
}

// MaxDeliveryEventIDs bounds the event IDs one delivery record lists.
const MaxDeliveryEventIDs = 100
