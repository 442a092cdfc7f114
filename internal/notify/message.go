package notify

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/restic-monitor/restic-monitor/events"
)

// facts are what a message says about an event. They are read from the event's data by their
// JSON names rather than by its Go type, so an event type the events package adds is described
// without a change here.
type facts struct {
	AgentID    string          `json:"agentId"`
	Hostname   string          `json:"hostname"`
	PolicyID   string          `json:"policyId"`
	PolicyName string          `json:"policyName"`
	TaskID     string          `json:"taskId"`
	RunID      string          `json:"runId"`
	Repository string          `json:"repository"`
	Kind       string          `json:"kind"`
	Outcome    string          `json:"outcome"`
	Reason     string          `json:"reason"`
	Error      string          `json:"error"`
	Duration   json.RawMessage `json:"duration"`
	ExitCode   *int            `json:"exitCode"`
}

func factsOf(e events.Event) facts {
	var f facts
	if b, err := json.Marshal(e.Data); err == nil {
		_ = json.Unmarshal(b, &f)
	}
	return f
}

// role is what an event means for a failure streak.
type role int

const (
	roleNeutral  role = iota
	roleFailure       // something is wrong with the subject
	roleRecovery      // the subject is well again
)

// roles classifies the event types by name, the ones the events package has yet to add
// included, so they take part in quiet mode as soon as they exist.
var roles = map[events.EventType]role{
	events.TypeAgentOffline: roleFailure, events.TypeTaskFailed: roleFailure, events.TypeTaskLost: roleFailure,
	events.TypeTaskExpired: roleFailure, events.TypeSlotOverdue: roleFailure,
	"run.failed": roleFailure, "run.partial": roleFailure, "check.failed": roleFailure,
	"agent.backoff": roleFailure, "repository.locked": roleFailure, "repository.check_overdue": roleFailure,
	events.TypeAgentOnline: roleRecovery, events.TypeSlotRecovered: roleRecovery, "run.succeeded": roleRecovery,
}

// subject names what an event's streak is about: the policy on an agent when the event names
// both, else the agent, else the repository; "" when none.
func (f facts) subject() string {
	switch {
	case f.PolicyID != "" && f.AgentID != "":
		return "POLICY#" + f.PolicyID + "#AGENT#" + f.AgentID
	case f.AgentID != "":
		return "AGENT#" + f.AgentID
	case f.Repository != "":
		return "REPO#" + f.Repository
	}
	return ""
}

// item is one event as a message shows it, with what the notifier looked up.
type item struct {
	Event  events.Event
	Facts  facts
	Host   string
	Policy string
	Link   string
}

// headline is a one-line summary of one event.
func (it item) headline() string {
	var b strings.Builder
	b.WriteString(titleOf(it.Event.Type))
	if it.Host != "" {
		fmt.Fprintf(&b, " on %s", it.Host)
	}
	if it.Policy != "" {
		fmt.Fprintf(&b, ", policy %s", it.Policy)
	}
	return b.String()
}

// details are the lines below the headline.
func (it item) details() []string {
	f := it.Facts
	var out []string
	add := func(label, v string) {
		if v != "" {
			out = append(out, label+": "+v)
		}
	}
	add("Host", it.Host)
	add("Policy", it.Policy)
	add("Outcome", f.Outcome)
	if len(f.Duration) > 0 && string(f.Duration) != "null" {
		add("Duration", strings.Trim(string(f.Duration), `"`))
	}
	if f.ExitCode != nil {
		add("Exit code", fmt.Sprint(*f.ExitCode))
	}
	add("Repository", f.Repository)
	add("Reason", f.Reason)
	add("Error", firstLine(f.Error, 300))
	add("Time", it.Event.Time.UTC().Format("2006-01-02 15:04:05 UTC"))
	add("Link", it.Link)
	return out
}

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > n {
		s = truncateUTF8(s, n) + "…"
	}
	return s
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

var titles = map[events.EventType]string{
	events.TypeAgentOffline: "Agent offline", events.TypeAgentOnline: "Agent back online",
	events.TypeTaskFailed: "Task failed", events.TypeTaskExpired: "Task expired", events.TypeTaskLost: "Task lost",
	events.TypeSlotOverdue: "Backup overdue", events.TypeSlotRecovered: "Backup recovered",
	"run.succeeded": "Backup succeeded", "run.failed": "Backup failed", "run.partial": "Backup partially failed",
	"agent.enrolled": "Agent enrolled", "agent.backoff": "Agent backing off", "check.failed": "Repository check failed",
	"repository.locked": "Repository locked", "repository.check_overdue": "Repository check overdue",
}

func titleOf(t events.EventType) string {
	if s, ok := titles[t]; ok {
		return s
	}
	return string(t)
}

// message is what one delivery says: one event, or many of one type grouped.
type message struct {
	Type  events.EventType
	Items []item
	Test  bool
}

// groupShown is how many events a grouped human-readable message names before "and N more".
const groupShown = 20

func (m message) subject() string {
	prefix := ""
	if m.Test {
		prefix = "[test] "
	}
	if len(m.Items) == 1 {
		return prefix + m.Items[0].headline()
	}
	return fmt.Sprintf("%s%s: %d events", prefix, titleOf(m.Type), len(m.Items))
}

// text is the message as plain text, for email and Slack.
func (m message) text() string {
	var b strings.Builder
	if len(m.Items) == 1 {
		for _, l := range m.Items[0].details() {
			b.WriteString(l + "\n")
		}
		return b.String()
	}
	hosts := make([]string, 0, len(m.Items))
	for _, it := range m.Items {
		h := it.Host
		if h == "" {
			h = it.Facts.AgentID
		}
		if it.Policy != "" {
			h += " (" + it.Policy + ")"
		}
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	shown := hosts[:min(len(hosts), groupShown)]
	for _, h := range shown {
		b.WriteString("• " + h + "\n")
	}
	if more := len(hosts) - len(shown); more > 0 {
		fmt.Fprintf(&b, "… and %d more\n", more)
	}
	return b.String()
}

// slackBody is an incoming-webhook payload: text for notifications and clients without
// blocks, and a section block in Slack's mrkdwn.
func (m message) slackBody() ([]byte, error) {
	head := "*" + slackEscape(m.subject()) + "*"
	body := slackEscape(m.text())
	if len(m.Items) == 1 && m.Items[0].Link != "" {
		body = strings.Replace(body, "Link: "+slackEscape(m.Items[0].Link), "<"+m.Items[0].Link+"|Open the run>", 1)
	}
	return json.Marshal(map[string]any{
		"text": m.subject(),
		"blocks": []any{
			map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": head + "\n" + body}},
		},
	})
}

// slackEscape escapes what Slack's mrkdwn gives meaning to.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// webhookPayload is the body of a webhook delivery: the events, as the events package encodes
// them, under one envelope naming the delivery.
type webhookPayload struct {
	DeliveryID string            `json:"deliveryId"`
	ChannelID  string            `json:"channelId"`
	EventType  events.EventType  `json:"eventType"`
	Count      int               `json:"count"`
	Test       bool              `json:"test,omitempty"`
	Events     []json.RawMessage `json:"events"`
}

func (m message) webhookBody(deliveryID, channelID string) ([]byte, error) {
	p := webhookPayload{DeliveryID: deliveryID, ChannelID: channelID, EventType: m.Type, Count: len(m.Items), Test: m.Test}
	for _, it := range m.Items {
		b, err := json.Marshal(it.Event)
		if err != nil {
			return nil, fmt.Errorf("encode event %s: %w", it.Event.ID, err)
		}
		p.Events = append(p.Events, b)
	}
	return json.Marshal(p)
}
