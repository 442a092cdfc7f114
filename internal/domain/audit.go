package domain

import (
	"encoding/json"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"
)

// AuditEntry records one change made through the tenant API, or one agent enrollment: who made
// it, when, through which route, to what, and how the resource's fields changed. The store writes
// it in the same transaction as the change.
type AuditEntry struct {
	ID        string        `json:"id"` // a ULID: entries sort by time
	TenantID  string        `json:"-"`
	Time      time.Time     `json:"time"`
	Actor     AuditActor    `json:"actor"`
	Action    string        `json:"action"` // method and route template, "POST /v1/policies"
	Resource  AuditResource `json:"resource"`
	Changes   []AuditChange `json:"changes"`
	RequestID string        `json:"requestId,omitempty"`
	SourceIP  string        `json:"sourceIp,omitempty"`
	ExpiresAt time.Time     `json:"expiresAt"`
}

// Actor types of an audit entry.
const (
	ActorAPIKey          = "apiKey"
	ActorAgent           = "agent"
	ActorEnrollmentToken = "enrollmentToken"
)

// AuditActor is who made a change.
type AuditActor struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Resource types of an audit entry.
const (
	ResourceAgent           = "agent"
	ResourceEnrollmentToken = "enrollmentToken"
	ResourceRepository      = "repository"
	ResourcePolicy          = "policy"
	ResourceAssignment      = "assignment"
	ResourceTask            = "task"
	ResourceChannel         = "notificationChannel"
	ResourceAPIKey          = "apiKey"
	ResourceTenant          = "tenant"
)

// AuditResourceTypes are the resource types audit entries name, for validating filters.
var AuditResourceTypes = []string{ResourceAgent, ResourceEnrollmentToken, ResourceRepository, ResourcePolicy,
	ResourceAssignment, ResourceTask, ResourceChannel, ResourceAPIKey, ResourceTenant}

// AuditResource is what a change was made to.
type AuditResource struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// AuditChange is one changed field: From is absent for a field that did not exist before, To for
// one that no longer does.
type AuditChange struct {
	Field string          `json:"field"`
	From  json.RawMessage `json:"from,omitempty"`
	To    json.RawMessage `json:"to,omitempty"`
}

// Redacted replaces a secret's value in an audit entry.
const Redacted = "[redacted]"

// redactedJSON is Redacted as a JSON value.
var redactedJSON = json.RawMessage(`"` + Redacted + `"`)

// bookkeeping fields change on every write (or, for createdAt, are the entry's own time) and say
// nothing an operator asked for.
var bookkeeping = map[string]bool{"version": true, "createdAt": true, "updatedAt": true, "tenantId": true}

// secretField reports whether a field's name marks its value as a secret. The domain types keep
// secrets out of their JSON already; this is the second line, for a field that ever slips in,
// and for the secrets a response carries (an API key's or enrollment token's credential, an agent
// secret, a webhook's signing secret or a Slack webhook URL).
func secretField(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "env", "environment", "url":
		// A channel's URL is a webhook's address or, for Slack, the secret itself; repositories
		// and agents say "location", which is checked for passwords instead.
		return true
	}
	for _, s := range []string{"secret", "password", "passwd", "token", "hash", "sealed", "credential", "credentials"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// AuditChanges returns the fields that differ between before and after (either may be nil: a
// create or a delete), as dotted paths of their JSON form ("schedule.cron"), sorted by path.
// Secrets become Redacted, and a URL's password is redacted wherever it appears.
func AuditChanges(before, after any) []AuditChange {
	from, to := flatten(before), flatten(after)
	paths := map[string]bool{}
	for p := range from {
		paths[p] = true
	}
	for p := range to {
		paths[p] = true
	}
	out := []AuditChange{}
	for p := range paths {
		f, fok := from[p]
		t, tok := to[p]
		if fok && tok && reflect.DeepEqual(f, t) {
			continue
		}
		c := AuditChange{Field: p}
		secret := false
		segs := strings.Split(p, ".")
		for i, seg := range segs {
			// A label's key is the operator's word ("env"), not a field of ours.
			if i > 0 && segs[i-1] == "labels" {
				continue
			}
			secret = secret || secretField(seg)
		}
		if fok {
			c.From = auditValue(f, secret)
		}
		if tok {
			c.To = auditValue(t, secret)
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

func auditValue(v any, secret bool) json.RawMessage {
	if secret {
		return redactedJSON
	}
	v = redactURLs(v)
	b, err := json.Marshal(v)
	if err != nil {
		return redactedJSON
	}
	return b
}

// urlPassword matches the password of a URL's user information ("://user:password@"), wherever
// the URL stands in a value (restic's "rest:https://user:pw@host/" puts it after a prefix).
var urlPassword = regexp.MustCompile(`(://[^/?#@:\s]*):[^/?#@\s]*@`)

// redactURLs replaces the password of any URL in v.
func redactURLs(v any) any {
	switch x := v.(type) {
	case string:
		return urlPassword.ReplaceAllString(x, "${1}:"+Redacted+"@")
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = redactURLs(x[i])
		}
		return out
	}
	return v
}

// flatten turns a value's JSON form into leaf paths. Objects nest as dotted paths; lists and
// scalars are leaves, compared whole. Bookkeeping fields at the top level are left out.
func flatten(v any) map[string]any {
	out := map[string]any{}
	if v == nil {
		return out
	}
	b, err := json.Marshal(v)
	if err != nil {
		return out
	}
	var root any
	if json.Unmarshal(b, &root) != nil {
		return out
	}
	m, ok := root.(map[string]any)
	if !ok {
		out["value"] = root
		return out
	}
	for k := range bookkeeping {
		delete(m, k)
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(p, sub)
				continue
			}
			out[p] = v
		}
	}
	walk("", m)
	return out
}
