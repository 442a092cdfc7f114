package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// This file keeps the audit log. A request that changes something carries a pending entry in its
// context (WithAudit); the first write the store makes under that context takes the entry into
// the same DynamoDB transaction — a single write becomes a transaction of two actions — so a
// change without its entry cannot be stored, and a write that fails stores no entry. The entry
// is put on the condition that it does not exist yet: a retry of a transaction whose answer was
// lost finds its own entry there, which proves the first attempt landed, so it reports success
// and no second entry is written.

// DefaultAuditRetention is how long audit entries are kept when a deployment sets nothing.
const DefaultAuditRetention = 365 * 24 * time.Hour

// PendingAudit is the audit entry of a request in progress. The API fills in who and how when
// the request arrives, the handler what changed; the store writes it with the first change.
type PendingAudit struct {
	mu     sync.Mutex
	entry  domain.AuditEntry
	landed bool
}

// NewPendingAudit starts the entry of a request to tenantID.
func NewPendingAudit(tenantID string, now time.Time, actor domain.AuditActor, action string, res domain.AuditResource, requestID, sourceIP string) *PendingAudit {
	return &PendingAudit{entry: domain.AuditEntry{
		ID: domain.NewID(now), TenantID: tenantID, Time: now.UTC(), Actor: actor, Action: action,
		Resource: res, Changes: []domain.AuditChange{}, RequestID: requestID, SourceIP: sourceIP,
	}}
}

// SetActor names who makes the change and in which tenant, for requests whose actor is known
// only once the handler has checked a credential (an agent's registration with an enrollment
// token). Until both are known, writes carry no entry.
func (p *PendingAudit) SetActor(tenantID string, a domain.AuditActor) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.entry.TenantID, p.entry.Actor = tenantID, a
}

// Record notes what the change does to the resource: its state before and after (nil for a
// create or a delete). A non-empty id names the resource, when the route does not.
func (p *PendingAudit) Record(id string, before, after any) {
	changes := domain.AuditChanges(before, after)
	p.mu.Lock()
	defer p.mu.Unlock()
	if id != "" {
		p.entry.Resource.ID = id
	}
	p.entry.Changes = changes
}

// Landed reports whether the entry is stored.
func (p *PendingAudit) Landed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.landed
}

// Entry returns the entry as it stands.
func (p *PendingAudit) Entry() domain.AuditEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.entry
}

type auditCtxKey struct{}

// WithAudit returns a context whose writes carry p.
func WithAudit(ctx context.Context, p *PendingAudit) context.Context {
	return context.WithValue(ctx, auditCtxKey{}, p)
}

// AuditFrom returns the pending entry a context carries, or nil.
func AuditFrom(ctx context.Context) *PendingAudit {
	p, _ := ctx.Value(auditCtxKey{}).(*PendingAudit)
	return p
}

// auditItem is an audit entry as stored: flat attributes, the changes as one JSON string.
type auditItem struct {
	key
	Entity       string    `json:"entity"`
	GSI1PK       string    `json:"GSI1PK"`
	GSI1SK       string    `json:"GSI1SK"`
	GSI2PK       string    `json:"GSI2PK"`
	GSI2SK       string    `json:"GSI2SK"`
	GSI3PK       string    `json:"GSI3PK"`
	GSI3SK       string    `json:"GSI3SK"`
	ID           string    `json:"id"`
	Time         time.Time `json:"time"`
	ActorType    string    `json:"actorType"`
	ActorID      string    `json:"actorId"`
	ActorName    string    `json:"actorName,omitempty"`
	Action       string    `json:"action"`
	ResourceType string    `json:"resourceType"`
	ResourceID   string    `json:"resourceId"`
	Changes      string    `json:"changes"`
	RequestID    string    `json:"requestId,omitempty"`
	SourceIP     string    `json:"sourceIp,omitempty"`
	ExpiresAt    time.Time `json:"expiresAt"`
	TTL          int64     `json:"ttl"`
}

func (it auditItem) domain() domain.AuditEntry {
	e := domain.AuditEntry{
		ID: it.ID, Time: it.Time, Action: it.Action, RequestID: it.RequestID, SourceIP: it.SourceIP, ExpiresAt: it.ExpiresAt,
		Actor:    domain.AuditActor{Type: it.ActorType, ID: it.ActorID, Name: it.ActorName},
		Resource: domain.AuditResource{Type: it.ResourceType, ID: it.ResourceID},
		Changes:  []domain.AuditChange{},
	}
	_ = json.Unmarshal([]byte(it.Changes), &e.Changes)
	return e
}

func newAuditItem(e domain.AuditEntry, retention time.Duration) auditItem {
	changes, _ := json.Marshal(e.Changes)
	sk := prefixAudit + e.ID
	e.ExpiresAt = e.Time.Add(retention)
	return auditItem{
		key: auditKey(e.TenantID, e.ID), Entity: entityAudit,
		GSI1PK: auditResourceGSI1(e.TenantID, e.Resource.Type, e.Resource.ID), GSI1SK: sk,
		GSI2PK: auditTypeGSI2(e.TenantID, e.Resource.Type), GSI2SK: sk,
		GSI3PK: auditActorGSI3(e.TenantID, e.Actor.ID), GSI3SK: sk,
		ID: e.ID, Time: e.Time, ActorType: e.Actor.Type, ActorID: e.Actor.ID, ActorName: e.Actor.Name,
		Action: e.Action, ResourceType: e.Resource.Type, ResourceID: e.Resource.ID, Changes: string(changes),
		RequestID: e.RequestID, SourceIP: e.SourceIP, ExpiresAt: e.ExpiresAt, TTL: ttlAt(e.ExpiresAt),
	}
}

// resourceEntities tell, for a create whose route names no ID, which written item is the
// resource, and which of its attributes is its ID.
var resourceEntities = map[string][2]string{
	domain.ResourceAgent: {entityAgent, "id"}, domain.ResourceEnrollmentToken: {entityEnroll, "id"},
	domain.ResourceRepository: {entityRepository, "name"}, domain.ResourcePolicy: {entityPolicy, "id"},
	domain.ResourceTask: {entityTask, "id"}, domain.ResourceChannel: {entityChannel, "id"},
	domain.ResourceAPIKey: {entityAPIKey, "id"},
}

// auditAction returns the Put of the entry that p holds, naming the resource from the written
// items when nothing named it yet.
func (s *Store) auditAction(p *PendingAudit, writes []types.TransactWriteItem) (types.TransactWriteItem, error) {
	e := p.entry
	if e.Resource.ID == "" {
		if want, ok := resourceEntities[e.Resource.Type]; ok {
			for _, w := range writes {
				if w.Put == nil {
					continue
				}
				if ent, ok := w.Put.Item["entity"].(*types.AttributeValueMemberS); ok && ent.Value == want[0] {
					if id, ok := w.Put.Item[want[1]].(*types.AttributeValueMemberS); ok {
						e.Resource.ID = id.Value
						p.entry.Resource.ID = id.Value
						break
					}
				}
			}
		}
	}
	m, err := marshal(newAuditItem(e, s.auditRetention()))
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Put: &types.Put{
		TableName: &s.table, Item: m, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	}}, nil
}

func (s *Store) auditRetention() time.Duration {
	if s.AuditRetention > 0 {
		return s.AuditRetention
	}
	return DefaultAuditRetention
}

// PutAudit stores a request's entry on its own, for a request that changed nothing in the table
// (a test delivery to a channel). An entry already stored is left alone.
func (s *Store) PutAudit(ctx context.Context, p *PendingAudit) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.landed {
		return nil
	}
	a, err := s.auditAction(p, nil)
	if err != nil {
		return err
	}
	_, err = s.db.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: a.Put.TableName, Item: a.Put.Item, ConditionExpression: a.Put.ConditionExpression})
	if err != nil && !conditionFailed(err) {
		return fmt.Errorf("put audit entry: %w", err)
	}
	p.landed = true
	return nil
}

// AuditFilter narrows an audit listing. Zero fields match everything.
type AuditFilter struct {
	ResourceType string
	ResourceID   string // only with ResourceType
	ActorID      string
	Since, Until time.Time
}

// ListAudit lists a tenant's audit entries, newest first. The most selective filter picks the
// partition read (a resource, then an actor, then a resource type, else the whole log), the
// time range bounds its sort keys, and the other filters apply as a filter expression.
func (s *Store) ListAudit(ctx context.Context, tenantID string, f AuditFilter, page Page) ([]domain.AuditEntry, string, error) {
	l := listing{reverse: true, from: prefixAudit, to: prefixAudit + "~", names: map[string]string{}, values: map[string]types.AttributeValue{}}
	if !f.Since.IsZero() {
		l.from = prefixAudit + domain.IDAt(f.Since)
	}
	if !f.Until.IsZero() {
		// The largest ID of the last millisecond the range holds.
		l.to = prefixAudit + domain.IDAt(f.Until)[:10] + "ZZZZZZZZZZZZZZZZ"
	}
	var filters []string
	filterOn := func(attr, v string) {
		n := fmt.Sprintf("#f%d", len(filters))
		l.names[n], l.values[":"+n[1:]] = attr, str(v)
		filters = append(filters, n+" = :"+n[1:])
	}
	switch {
	case f.ResourceID != "":
		l.index, l.pk = resources.GSI1, auditResourceGSI1(tenantID, f.ResourceType, f.ResourceID)
		if f.ActorID != "" {
			filterOn("actorId", f.ActorID)
		}
	case f.ActorID != "":
		l.index, l.pk = resources.GSI3, auditActorGSI3(tenantID, f.ActorID)
		if f.ResourceType != "" {
			filterOn("resourceType", f.ResourceType)
		}
	case f.ResourceType != "":
		l.index, l.pk = resources.GSI2, auditTypeGSI2(tenantID, f.ResourceType)
	default:
		l.pk = tenantPK(tenantID)
	}
	for i, c := range filters {
		if i > 0 {
			l.filter += " AND "
		}
		l.filter += c
	}
	entries, next, err := list(ctx, s, l, page, auditItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list audit entries: %w", err)
	}
	return entries, next, nil
}
