package httpapi_test

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// tableItems reads every item of the test's table.
func tableItems(t *testing.T, h *harness) []map[string]types.AttributeValue {
	t.Helper()
	db := dynamodb.NewFromConfig(testenv.AWS(t))
	in := &dynamodb.ScanInput{TableName: aws.String(h.store.Table()), ConsistentRead: aws.Bool(true)}
	var items []map[string]types.AttributeValue
	for {
		out, err := db.Scan(context.Background(), in)
		require.NoError(t, err)
		items = append(items, out.Items...)
		if out.LastEvaluatedKey == nil {
			return items
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// mentions reports whether any string in an item (its keys included) contains id once every
// occurrence of other, a longer ID that contains it, is taken out.
func mentions(v types.AttributeValue, id, other string) bool {
	has := func(s string) bool { return strings.Contains(strings.ReplaceAll(s, other, ""), id) }
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return has(x.Value)
	case *types.AttributeValueMemberSS:
		for _, s := range x.Value {
			if has(s) {
				return true
			}
		}
	case *types.AttributeValueMemberL:
		for _, e := range x.Value {
			if mentions(e, id, other) {
				return true
			}
		}
	case *types.AttributeValueMemberM:
		for k, e := range x.Value {
			if has(k) || mentions(e, id, other) {
				return true
			}
		}
	}
	return false
}

func itemMentions(item map[string]types.AttributeValue, id, other string) bool {
	return mentions(&types.AttributeValueMemberM{Value: item}, id, other)
}

// itemKey names an item by its keys.
func itemKey(item map[string]types.AttributeValue) string {
	s := func(name string) string {
		v, _ := item[name].(*types.AttributeValueMemberS)
		if v == nil {
			return ""
		}
		return v.Value
	}
	return s("PK") + " | " + s("SK")
}

// deletionBody is what DELETE and GET /v1/tenant say of a deletion.
type deletionBody struct {
	TenantID       string           `json:"tenantId"`
	Status         string           `json:"status"`
	Since          time.Time        `json:"since"`
	EarliestFinish *time.Time       `json:"earliestFinish"`
	Removed        map[string]int64 `json:"removed"`
}

// The tenant to delete has one or more of every kind of item, built through the APIs as
// operators and agents build them; the other tenant, whose ID starts with the first one's, has
// its own. Deleting the first leaves nothing that mentions it — table items, keys included, and
// queues — and changes nothing of the other.
func TestDeletingATenantLeavesNothingOfItAndNothingElseChanges(t *testing.T) {
	h := newHarness(t)
	// Tokens, log chunks and retry budgets expire by the table's TTL, which runs on the real
	// clock; at the real time none of them expires during the test.
	h.clock = time.Now().UTC().Truncate(time.Second)
	ctx := context.Background()
	const doomed, kept = "acme", "acme-corp"

	w := newTenantWorld(h, doomed)
	f := &agentFixture{h: h, tenant: doomed}
	web, db, old := f.enroll("web-1"), f.enroll("db-1"), f.enroll("old-1")
	statusIs(t, 201, h.call("POST", "/v1/enrollment-tokens", w.operator, map[string]any{"maxUses": 5}), "an unused token")
	w.repository("repo-main")
	p := w.policy("nightly", "repo-main")
	w.assign(p.ID, web.ID, db.ID)
	require.NoError(t, h.store.WatchSlot(ctx, store.OverdueCheck{TenantID: doomed, PolicyID: p.ID, AgentID: web.ID, Kind: domain.SlotBackup,
		PlannedAt: h.clock, CheckAt: h.clock.Add(time.Hour)}))
	statusIs(t, 201, h.call("POST", "/v1/tasks", w.operator, map[string]any{"type": "backup", "agentId": web.ID, "policyId": p.ID}), "run now")
	w.run(web.ID, p.ID, domain.TaskSucceeded, h.clock.Add(-2*time.Hour), []string{"opened"}, []string{"saved"})

	// An agent's own reports: a run with its log, a retry, a snapshot inventory.
	report := func(a host, delivery string) {
		t.Helper()
		task := f.queuedTask(a.ID, func(t *domain.Task) { t.PolicyID, t.Repository = p.ID, "repo-main" })
		st := f.start(a, task.ID, "s", delivery, 201)
		statusIs(t, 201, h.call("POST", "/v1/agent/runs/"+st.RunID+"/logs", a.Credential, map[string]any{"seq": 0, "lines": []string{"locked"}}), "log")
		f.result(a, task.ID, map[string]any{"runId": st.RunID, "outcome": "failed", "error": "repository locked", "retryable": true}, 200)
		statusIs(t, 200, h.call("POST", "/v1/agent/snapshots", a.Credential, map[string]any{"repository": "repo-main", "snapshots": []any{
			map[string]any{"id": strings.Repeat(delivery[:1], 64), "time": h.clock.Add(-time.Hour), "hostname": "h", "paths": []string{"/data"}},
		}}), "snapshots")
	}
	report(db, "a")
	report(old, "b")
	// A deleted agent leaves its tasks, runs and snapshots as history.
	statusIs(t, 204, h.call("DELETE", "/v1/agents/"+old.ID, w.operator, nil), "delete an agent")

	wk := newTenantWorld(h, kept)
	fk := &agentFixture{h: h, tenant: kept}
	other := fk.enroll("web-1")
	wk.repository("repo-main")
	pk := wk.policy("nightly", "repo-main")
	wk.assign(pk.ID, other.ID)
	wk.run(other.ID, pk.ID, domain.TaskSucceeded, h.clock.Add(-time.Hour), []string{"opened"})
	statusIs(t, 200, h.call("POST", "/v1/agent/snapshots", other.Credential, map[string]any{"repository": "repo-main", "snapshots": []any{
		map[string]any{"id": strings.Repeat("c", 64), "time": h.clock.Add(-time.Hour), "hostname": "h", "paths": []string{"/data"}},
	}}), "snapshots of the other tenant")

	before := map[string]map[string]types.AttributeValue{}
	doomedItems := 0
	for _, item := range tableItems(t, h) {
		if itemMentions(item, doomed, kept) {
			doomedItems++
			continue
		}
		before[itemKey(item)] = item
	}
	require.Greater(t, doomedItems, 30, "the tenant to delete has items of every kind")
	queues, err := h.queues.ListTenantQueues(ctx, doomed)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{web.ID, db.ID}, queues)

	// The confirmation must name the key's tenant; only its admin keys may delete it.
	for _, path := range []string{"/v1/tenant", "/v1/tenant?confirm=", "/v1/tenant?confirm=" + kept, "/v1/tenant?confirm=ACME"} {
		res := h.call("DELETE", path, w.admin, nil)
		statusIs(t, 400, res, path)
		assert.Equal(t, []string{"confirm"}, res.ErrorFields(t), path)
	}
	res := h.call("DELETE", "/v1/tenant?confirm=acme&now=true", w.admin, nil)
	statusIs(t, 400, res, "an unknown parameter")
	assert.Equal(t, []string{"now"}, res.ErrorFields(t))
	statusIs(t, 403, h.call("DELETE", "/v1/tenant?confirm=acme", w.operator, nil), "an operator key")
	statusIs(t, 403, h.call("DELETE", "/v1/tenant?confirm=acme", web.Credential, nil), "an agent credential")
	statusIs(t, 401, h.call("DELETE", "/v1/tenant?confirm=acme", "", nil), "no credential")
	statusIs(t, 403, h.call("DELETE", "/v1/tenant?confirm=acme-corp", w.viewer, nil), "another tenant's ID with a viewer key")

	res = h.call("DELETE", "/v1/tenant?confirm=acme", w.admin, nil)
	statusIs(t, 202, res, "delete")
	var first deletionBody
	res.JSON(t, &first)
	assert.Equal(t, doomed, first.TenantID)
	assert.Equal(t, "deleting", first.Status, "the API keys and the tenant wait for requests still in flight")
	assert.Equal(t, h.clock, first.Since)
	require.NotNil(t, first.EarliestFinish)
	assert.False(t, first.EarliestFinish.Before(h.clock.Add(2*time.Minute)), "earliest finish %s", first.EarliestFinish)
	for kind, n := range map[string]int64{
		"queues": 2, "agentCredentials": 2, "repositories": 1, "policyNames": 1,
		"assignments": 2, "overdueChecks": 1, "retryBudgets": 2, "snapshots": 2,
		// a run-now task, a finished run's task, and one reported by each of two agents
		"tasks": 4, "runs": 3, "logChunks": 4,
		// enrolling three hosts and one more, unused
		"enrollmentTokens": 4,
	} {
		assert.Equal(t, n, first.Removed[kind], "removed %s: %v", kind, first.Removed)
	}
	assert.Positive(t, first.Removed["slots"])
	assert.Zero(t, first.Removed["apiKeys"], "the keys go last")
	assert.Zero(t, first.Removed["agents"], "the agents wait, as what they lead to may still change")
	assert.Zero(t, first.Removed["policies"], "so do the policies")

	// Nothing can be added while the deletion goes on; its progress can be read.
	statusIs(t, 409, h.call("POST", "/v1/repositories", w.operator, map[string]any{"name": "repo-late", "backend": "local", "location": "/srv"}), "a new repository")
	statusIs(t, 409, h.call("POST", "/v1/api-keys", w.admin, map[string]any{"name": "late", "role": "admin"}), "a new key")
	statusIs(t, 401, h.call("POST", "/v1/agent/heartbeat", web.Credential, map[string]any{}), "an agent's heartbeat")
	res = h.call("GET", "/v1/tenant", w.viewer, nil)
	statusIs(t, 200, res, "get the tenant")
	var shown struct {
		ID       string       `json:"id"`
		Status   string       `json:"status"`
		Deletion deletionBody `json:"deletion"`
	}
	res.JSON(t, &shown)
	assert.Equal(t, "deleting", shown.Status)
	assert.Equal(t, first.Removed, shown.Deletion.Removed)

	// Running it again before the in-flight requests could have ended finds nothing new.
	res = h.call("DELETE", "/v1/tenant?confirm=acme", w.admin, nil)
	statusIs(t, 202, res, "delete again")
	var again deletionBody
	res.JSON(t, &again)
	// Only the audit entry of the repeated request itself is new, and it goes with the rest.
	want := maps.Clone(first.Removed)
	want["auditEntries"]++
	assert.Equal(t, want, again.Removed)

	h.clock = first.EarliestFinish.Add(time.Second)
	res = h.call("DELETE", "/v1/tenant?confirm=acme", w.admin, nil)
	statusIs(t, 200, res, "delete after the wait")
	var done deletionBody
	res.JSON(t, &done)
	assert.Equal(t, "deleted", done.Status)
	assert.Equal(t, int64(3), done.Removed["apiKeys"])
	assert.Equal(t, int64(2), done.Removed["agents"])
	assert.Equal(t, int64(1), done.Removed["policies"])
	assert.Equal(t, first.Removed["logChunks"], done.Removed["logChunks"])
	statusIs(t, 401, h.call("DELETE", "/v1/tenant?confirm=acme", w.admin, nil), "the key went with its tenant")
	statusIs(t, 401, h.call("GET", "/v1/tenant", w.viewer, nil), "so did the viewer's")

	after := map[string]map[string]types.AttributeValue{}
	for _, item := range tableItems(t, h) {
		assert.False(t, itemMentions(item, doomed, kept), "left behind: %s", itemKey(item))
		after[itemKey(item)] = item
	}
	assert.Equal(t, len(before), len(after), "the other tenant's items")
	for k, item := range before {
		assert.Equal(t, item, after[k], "the other tenant's item %s", k)
	}
	// SQS may list a deleted queue for up to a minute.
	deadline := time.Now().Add(90 * time.Second)
	for {
		queues, err = h.queues.ListTenantQueues(ctx, doomed)
		require.NoError(t, err)
		if len(queues) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	assert.Empty(t, queues, "the tenant's queues")
	queues, err = h.queues.ListTenantQueues(ctx, kept)
	require.NoError(t, err)
	assert.Equal(t, []string{other.ID}, queues, "the other tenant's queue")
	_, err = h.queues.Lookup(ctx, kept, other.ID)
	assert.NoError(t, err)
}

// While a tenant is being deleted, every route that would change it answers 409, before it
// touches anything; reading goes on.
func TestATenantBeingDeletedRefusesEveryChange(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	_, err := h.store.BeginTenantDeletion(context.Background(), "acme")
	require.NoError(t, err)
	id := domain.NewID(h.clock)
	for _, r := range httpapi.TenantRoutes(h.deps) {
		if r.Method == http.MethodGet || r.Pattern == "/v1/tenant" {
			continue
		}
		path := strings.NewReplacer("{agentId}", id, "{tokenId}", id, "{policyId}", id, "{taskId}", id, "{keyId}", id, "{name}", "repo-main").Replace(r.Pattern)
		res := h.call(r.Method, path, w.admin, map[string]any{})
		statusIs(t, 409, res, r.Method, " ", path)
		assert.Contains(t, res.Body, "being deleted", "%s %s", r.Method, path)
	}
	statusIs(t, 200, h.call("GET", "/v1/agents", w.viewer, nil), "a listing")
	statusIs(t, 200, h.call("GET", "/v1/tenant", w.viewer, nil), "the tenant")
}
