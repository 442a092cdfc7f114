package httpapi_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestTenantPolicyCreateGetListReplace(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	w.repository("repo-main")
	w.repository("repo-offsite")

	res := h.call(http.MethodPost, "/v1/policies", w.operator, tenantPolicyBody("nightly", "repo-main"))
	tenantStatus(t, http.StatusCreated, res)
	var p domain.Policy
	res.JSON(t, &p)
	assert.True(t, domain.ValidID(p.ID))
	assert.Equal(t, "/v1/policies/"+p.ID, res.Header["Location"])
	assert.True(t, p.Enabled, "a policy is enabled unless the body says otherwise")
	assert.Equal(t, int64(1), p.Version)
	assert.Equal(t, "acme", p.TenantID)

	res = h.call(http.MethodPost, "/v1/policies", w.operator, tenantPolicyBody("nightly", "repo-offsite"))
	tenantStatus(t, http.StatusConflict, res, "a taken name")
	body := tenantPolicyBody("versioned", "repo-main")
	body["version"] = 3
	res = h.call(http.MethodPost, "/v1/policies", w.operator, body)
	tenantStatus(t, http.StatusUnprocessableEntity, res, "a version on create")
	assert.Equal(t, []string{"version"}, res.ErrorFields(t))
	offsite := w.policy("offsite", "repo-offsite")

	res = h.call(http.MethodGet, "/v1/policies/"+p.ID, w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var got domain.Policy
	res.JSON(t, &got)
	assert.Equal(t, p, got)

	res = h.call(http.MethodGet, "/v1/policies", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var all struct{ Items []domain.Policy }
	res.JSON(t, &all)
	assert.ElementsMatch(t, []string{p.ID, offsite.ID}, policyIDs(all.Items))
	res = h.call(http.MethodGet, "/v1/policies?repository=repo-offsite", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	res.JSON(t, &all)
	assert.Equal(t, []string{offsite.ID}, policyIDs(all.Items))

	// PUT replaces everything: fields left out are cleared, a rename moves the name.
	replacement := tenantPolicyBody("nightly-v2", "repo-offsite")
	delete(replacement, "forgetSchedule")
	replacement["enabled"] = false
	replacement["version"] = p.Version
	res = h.call(http.MethodPut, "/v1/policies/"+p.ID, w.operator, replacement)
	tenantStatus(t, http.StatusOK, res)
	var replaced domain.Policy
	res.JSON(t, &replaced)
	assert.Equal(t, "nightly-v2", replaced.Name)
	assert.Equal(t, "repo-offsite", replaced.Repository)
	assert.Nil(t, replaced.ForgetSchedule)
	assert.False(t, replaced.Enabled)
	assert.Equal(t, p.Version+1, replaced.Version)
	assert.Equal(t, p.CreatedAt, replaced.CreatedAt)

	res = h.call(http.MethodPut, "/v1/policies/"+p.ID, w.operator, replacement)
	tenantStatus(t, http.StatusConflict, res, "a stale version")
	delete(replacement, "version")
	res = h.call(http.MethodPut, "/v1/policies/"+p.ID, w.operator, replacement)
	tenantStatus(t, http.StatusUnprocessableEntity, res, "no version")
	assert.Equal(t, []string{"version"}, res.ErrorFields(t))
	replacement["version"] = replaced.Version
	replacement["name"] = "offsite"
	res = h.call(http.MethodPut, "/v1/policies/"+p.ID, w.operator, replacement)
	tenantStatus(t, http.StatusConflict, res, "renamed onto a taken name")
	replacement["name"], replacement["repository"] = "nightly-v2", "repo-missing"
	res = h.call(http.MethodPut, "/v1/policies/"+p.ID, w.operator, replacement)
	tenantStatus(t, http.StatusUnprocessableEntity, res, "a repository that does not exist")
	assert.Equal(t, []string{"repository"}, res.ErrorFields(t))
	res = h.call(http.MethodPut, "/v1/policies/"+domain.NewID(h.clock), w.operator, replacement)
	tenantStatus(t, http.StatusNotFound, res)

	// The old name is free again.
	w.policy("nightly", "repo-main")
}

func TestTenantPolicyPatchIsAMergePatch(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	w.repository("repo-main")
	body := tenantPolicyBody("nightly", "repo-main")
	body["tags"] = []string{"a", "b"}
	body["description"] = "the nightly run"
	res := h.call(http.MethodPost, "/v1/policies", w.operator, body)
	tenantStatus(t, http.StatusCreated, res)
	var p domain.Policy
	res.JSON(t, &p)

	res = w.patch("/v1/policies/"+p.ID, `{"version":1,"retention":{"keepDaily":14,"keepWeekly":null},"description":null,"tags":["c"]}`)
	tenantStatus(t, http.StatusOK, res)
	var patched domain.Policy
	res.JSON(t, &patched)
	assert.Equal(t, domain.Retention{KeepDaily: 14}, patched.Retention, "objects merge key by key; null removes")
	assert.Empty(t, patched.Description, "null clears")
	assert.Equal(t, []string{"c"}, patched.Tags, "arrays are replaced")
	assert.Equal(t, p.Paths, patched.Paths, "what the patch leaves out stays")
	assert.Equal(t, p.Schedule, patched.Schedule)
	assert.Equal(t, int64(2), patched.Version)

	for name, tc := range map[string]struct {
		patch  string
		status int
		fields []string
	}{
		"stale version":     {`{"version":1,"description":"x"}`, http.StatusConflict, nil},
		"no version":        {`{"description":"x"}`, http.StatusUnprocessableEntity, []string{"version"}},
		"unknown field":     {`{"version":2,"colour":"red"}`, http.StatusBadRequest, []string{"colour"}},
		"read-only field":   {`{"version":2,"id":"01JC3Z8Q4T2V6M0R5K9XW7YB1D"}`, http.StatusBadRequest, []string{"id"}},
		"wrong type":        {`{"version":2,"paths":"/data"}`, http.StatusBadRequest, []string{"paths"}},
		"nested wrong type": {`{"version":2,"schedule":{"cron":5}}`, http.StatusBadRequest, []string{"schedule.cron"}},
		"invalid result":    {`{"version":2,"paths":null,"retention":null}`, http.StatusUnprocessableEntity, []string{"paths", "retention"}},
		"not an object":     {`[1,2]`, http.StatusBadRequest, []string{"body"}},
		"null":              {`null`, http.StatusBadRequest, nil},
	} {
		res := w.patch("/v1/policies/"+p.ID, tc.patch)
		tenantStatus(t, tc.status, res, name)
		if tc.fields != nil {
			assert.ElementsMatch(t, tc.fields, res.ErrorFields(t), name)
		}
	}
	stored, err := h.store.GetPolicy(context.Background(), w.id, p.ID)
	require.NoError(t, err)
	assert.Equal(t, patched, stored, "refused patches change nothing")
}

// patch sends a merge patch with its own media type, as an operator.
func (w *tenantWorld) patch(path, patch string) response {
	w.h.t.Helper()
	return w.raw(http.MethodPatch, path, w.operator, patch, map[string]string{"content-type": "application/merge-patch+json"})
}

func TestTenantPolicyFieldRules(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	w.repository("repo-main")
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	// Each rule of a policy, broken once: the answer is 422 naming exactly that field.
	cases := map[string]struct {
		change func(b map[string]any)
		field  string
	}{
		"empty path":     {func(b map[string]any) { b["paths"] = []string{""} }, "paths[0]"},
		"relative path":  {func(b map[string]any) { b["paths"] = []string{"/etc", "data"} }, "paths[1]"},
		"no paths":       {func(b map[string]any) { b["paths"] = []string{} }, "paths"},
		"too many paths": {func(b map[string]any) { b["paths"] = many(101, func(i int) string { return "/d" + strconv.Itoa(i) }) }, "paths"},
		"too many excludes": {func(b map[string]any) {
			b["excludes"] = many(1001, func(i int) string { return "*.tmp" + strconv.Itoa(i) })
		}, "excludes"},
		"too many tags":          {func(b map[string]any) { b["tags"] = many(51, func(i int) string { return "t" + strconv.Itoa(i) }) }, "tags"},
		"bad cron":               {func(b map[string]any) { b["schedule"] = map[string]any{"cron": "61 * * * *"} }, "schedule.cron"},
		"six-field cron":         {func(b map[string]any) { b["schedule"] = map[string]any{"cron": "0 0 2 * * *"} }, "schedule.cron"},
		"unknown timezone":       {func(b map[string]any) { b["schedule"] = map[string]any{"cron": "@daily", "timezone": "Mars/Olympus"} }, "schedule.timezone"},
		"interval under 1m":      {func(b map[string]any) { b["schedule"] = map[string]any{"interval": "30s"} }, "schedule.interval"},
		"cron and interval":      {func(b map[string]any) { b["schedule"] = map[string]any{"cron": "@daily", "interval": "1h"} }, "schedule"},
		"no schedule":            {func(b map[string]any) { b["schedule"] = map[string]any{} }, "schedule"},
		"all-zero retention":     {func(b map[string]any) { b["retention"] = map[string]any{"keepDaily": 0} }, "retention"},
		"negative keep":          {func(b map[string]any) { b["retention"] = map[string]any{"keepDaily": -1} }, "retention.keepDaily"},
		"bad keepWithin":         {func(b map[string]any) { b["retention"] = map[string]any{"keepWithin": "forever"} }, "retention.keepWithin"},
		"name too long":          {func(b map[string]any) { b["name"] = strings.Repeat("n", 101) }, "name"},
		"name too short":         {func(b map[string]any) { b["name"] = "ab" }, "name"},
		"name with spaces":       {func(b map[string]any) { b["name"] = "night ly" }, "name"},
		"control in name":        {func(b map[string]any) { b["name"] = "night\x07ly" }, "name"},
		"control in path":        {func(b map[string]any) { b["paths"] = []string{"/da\tta"} }, "paths[0]"},
		"control in desc":        {func(b map[string]any) { b["description"] = "line\x00break" }, "description"},
		"control in exclude":     {func(b map[string]any) { b["excludes"] = []string{"*.tmp\n"} }, "excludes[0]"},
		"description too long":   {func(b map[string]any) { b["description"] = strings.Repeat("d", 1001) }, "description"},
		"bad forget schedule":    {func(b map[string]any) { b["forgetSchedule"] = map[string]any{"interval": "10s"} }, "forgetSchedule.interval"},
		"bad check schedule":     {func(b map[string]any) { b["checkSchedule"] = map[string]any{"cron": "@fortnightly"} }, "checkSchedule.cron"},
		"prune without forget":   {func(b map[string]any) { delete(b, "forgetSchedule"); b["prune"] = true }, "prune"},
		"bad read-data-subset":   {func(b map[string]any) { b["checkReadDataSubset"] = "6/5" }, "checkReadDataSubset"},
		"too many retries":       {func(b map[string]any) { b["maxRetries"] = 21 }, "maxRetries"},
		"negative bandwidth":     {func(b map[string]any) { b["uploadKbps"] = -1 }, "uploadKbps"},
		"run deadline too short": {func(b map[string]any) { b["runDeadline"] = "30s" }, "runDeadline"},
		"bad spread":             {func(b map[string]any) { b["schedule"] = map[string]any{"cron": "@daily", "spread": "2d"} }, "schedule.spread"},
		"bad tag":                {func(b map[string]any) { b["tags"] = []string{"a,b"} }, "tags[0]"},
		"repository name":        {func(b map[string]any) { b["repository"] = "no such/repo" }, "repository"},
		"excludes too long for a task message": {func(b map[string]any) {
			b["excludes"] = many(1000, func(i int) string { return "/" + strings.Repeat("x", 300) + strconv.Itoa(i) })
		}, "excludes"},
		"paths too long for a task message": {func(b map[string]any) {
			b["paths"] = many(100, func(i int) string { return "/" + strings.Repeat("p", 3000) + strconv.Itoa(i) })
		}, "paths"},
		"missing repository": {func(b map[string]any) { b["repository"] = "repo-missing" }, "repository"},
	}
	for name, tc := range cases {
		body := tenantPolicyBody("nightly", "repo-main")
		tc.change(body)
		res := h.call(http.MethodPost, "/v1/policies", w.operator, body)
		tenantStatus(t, http.StatusUnprocessableEntity, res, name)
		assert.Equal(t, []string{tc.field}, res.ErrorFields(t), name)
		assert.Equal(t, "unprocessable", tenantErrorCode(t, res), name)
	}

	// Several broken rules are reported together.
	body := tenantPolicyBody(strings.Repeat("n", 101), "repo-main")
	body["paths"] = []string{"relative"}
	body["schedule"] = map[string]any{"interval": "5s", "timezone": "Nowhere/Land"}
	body["retention"] = map[string]any{}
	res := h.call(http.MethodPost, "/v1/policies", w.operator, body)
	tenantStatus(t, http.StatusUnprocessableEntity, res)
	assert.ElementsMatch(t, []string{"name", "paths[0]", "schedule.interval", "schedule.timezone", "retention"}, res.ErrorFields(t))

	policies, _, err := h.store.ListPolicies(context.Background(), w.id, store.PolicyFilter{}, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, policies, "no invalid policy was stored")

	// The rules hold for replace and patch as much as for create.
	p := w.policy("nightly", "repo-main")
	bad := tenantPolicyBody("nightly", "repo-main")
	bad["paths"], bad["version"] = []string{"data"}, p.Version
	res = h.call(http.MethodPut, "/v1/policies/"+p.ID, w.operator, bad)
	tenantStatus(t, http.StatusUnprocessableEntity, res)
	assert.Equal(t, []string{"paths[0]"}, res.ErrorFields(t))
	res = w.patch("/v1/policies/"+p.ID, `{"version":1,"schedule":{"timezone":"Atlantis/Lost"}}`)
	tenantStatus(t, http.StatusUnprocessableEntity, res)
	assert.Equal(t, []string{"schedule.timezone"}, res.ErrorFields(t))
}

// slotsOf reads a policy's slots on an agent by kind.
func slotsOf(t *testing.T, h *harness, tenantID, policyID, agentID string) map[domain.SlotKind]domain.Slot {
	t.Helper()
	slots, _, err := h.store.ListPolicySlots(context.Background(), tenantID, policyID, store.Page{})
	require.NoError(t, err)
	out := map[domain.SlotKind]domain.Slot{}
	for _, sl := range slots {
		if sl.AgentID == agentID {
			out[sl.Kind] = sl
		}
	}
	return out
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestTenantPolicyAssignPlansSlotsAndUpdatesReplanThem(t *testing.T) {
	h := newHarness(t) // the clock is 2037-11-02T10:00:00Z, a Monday; Berlin is UTC+1
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	b := w.agent("web-2", nil)
	w.repository("repo-main")
	body := tenantPolicyBody("nightly", "repo-main")
	body["checkSchedule"] = map[string]any{"cron": "0 5 * * 0"}
	res := h.call(http.MethodPost, "/v1/policies", w.operator, body)
	tenantStatus(t, http.StatusCreated, res)
	var p domain.Policy
	res.JSON(t, &p)

	res = h.call(http.MethodPost, "/v1/policies/"+p.ID+"/agents", w.operator, map[string]any{"agentIds": []string{a.ID, b.ID}})
	tenantStatus(t, http.StatusOK, res)
	var assigned struct {
		Items []struct {
			AgentID string        `json:"agentId"`
			Slots   []domain.Slot `json:"slots"`
		}
	}
	res.JSON(t, &assigned)
	require.Len(t, assigned.Items, 2)
	assert.Len(t, assigned.Items[0].Slots, 4, "backup, forget, check and the daily stats")

	slots := slotsOf(t, h, w.id, p.ID, a.ID)
	require.Len(t, slots, 4)
	statsAt := *slots[domain.SlotStats].NextRunAt
	assert.False(t, statsAt.Before(mustTime("2037-11-03T04:00:00Z")), "the default stats schedule: 04:00 UTC, got %s", statsAt)
	assert.True(t, statsAt.Before(mustTime("2037-11-03T06:00:00Z")), "within a two-hour spread, got %s", statsAt)
	assert.Equal(t, mustTime("2037-11-03T01:30:00Z"), *slots[domain.SlotBackup].NextRunAt, "02:30 in Berlin")
	assert.Equal(t, mustTime("2037-11-03T00:00:00Z"), *slots[domain.SlotForget].NextRunAt, "every day at UTC midnight")
	assert.Equal(t, mustTime("2037-11-08T05:00:00Z"), *slots[domain.SlotCheck].NextRunAt, "Sunday 05:00 UTC")

	res = h.call(http.MethodGet, "/v1/policies/"+p.ID+"/agents", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var agents agentPage
	res.JSON(t, &agents)
	assert.ElementsMatch(t, []string{a.ID, b.ID}, agentIDs(agents.Items))

	// Assigning again later keeps the runs already planned.
	h.clock = h.clock.Add(20 * time.Hour)
	w.assign(p.ID, a.ID)
	assert.Equal(t, mustTime("2037-11-03T01:30:00Z"), *slotsOf(t, h, w.id, p.ID, a.ID)[domain.SlotBackup].NextRunAt)

	// A changed backup schedule re-plans the backup slots on every agent; the others stay.
	res = w.patch("/v1/policies/"+p.ID, `{"version":1,"schedule":{"cron":"0 4 * * *","timezone":null}}`)
	tenantStatus(t, http.StatusOK, res)
	for _, agent := range []string{a.ID, b.ID} {
		slots := slotsOf(t, h, w.id, p.ID, agent)
		assert.Equal(t, mustTime("2037-11-04T04:00:00Z"), *slots[domain.SlotBackup].NextRunAt)
		assert.Equal(t, mustTime("2037-11-03T00:00:00Z"), *slots[domain.SlotForget].NextRunAt)
	}

	// Removing the forget schedule removes the forget slots.
	res = w.patch("/v1/policies/"+p.ID, `{"version":2,"forgetSchedule":null}`)
	tenantStatus(t, http.StatusOK, res)
	slots = slotsOf(t, h, w.id, p.ID, a.ID)
	assert.NotContains(t, slots, domain.SlotForget)
	assert.Contains(t, slots, domain.SlotCheck)

	// A disabled policy's slots leave the due index; enabling it plans them from now.
	res = w.patch("/v1/policies/"+p.ID, `{"version":3,"enabled":false}`)
	tenantStatus(t, http.StatusOK, res)
	for kind, sl := range slotsOf(t, h, w.id, p.ID, a.ID) {
		assert.Nil(t, sl.NextRunAt, kind)
	}
	h.clock = mustTime("2037-11-05T12:00:00Z")
	res = w.patch("/v1/policies/"+p.ID, `{"version":4,"enabled":true}`)
	tenantStatus(t, http.StatusOK, res)
	slots = slotsOf(t, h, w.id, p.ID, b.ID)
	assert.Equal(t, mustTime("2037-11-06T04:00:00Z"), *slots[domain.SlotBackup].NextRunAt)
	assert.Equal(t, mustTime("2037-11-08T05:00:00Z"), *slots[domain.SlotCheck].NextRunAt)

	// Unassigning removes the agent's slots; a second time there is nothing to remove.
	res = h.call(http.MethodDelete, "/v1/policies/"+p.ID+"/agents/"+b.ID, w.operator, nil)
	tenantStatus(t, http.StatusNoContent, res)
	assert.Empty(t, slotsOf(t, h, w.id, p.ID, b.ID))
	res = h.call(http.MethodDelete, "/v1/policies/"+p.ID+"/agents/"+b.ID, w.operator, nil)
	tenantStatus(t, http.StatusNotFound, res)
	assert.NotEmpty(t, slotsOf(t, h, w.id, p.ID, a.ID), "other agents keep theirs")
}

func TestTenantPolicyAssignRefusesUnknownAgents(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	w.repository("repo-main")
	p := w.policy("nightly", "repo-main")
	missing := domain.NewID(h.clock)

	for name, tc := range map[string]struct {
		body   any
		status int
		fields []string
	}{
		"no agents":     {map[string]any{"agentIds": []string{}}, http.StatusUnprocessableEntity, []string{"agentIds"}},
		"missing agent": {map[string]any{"agentIds": []string{a.ID, missing}}, http.StatusUnprocessableEntity, []string{"agentIds[1]"}},
		"not an ID":     {map[string]any{"agentIds": []string{"web-1"}}, http.StatusUnprocessableEntity, []string{"agentIds[0]"}},
		"twice":         {map[string]any{"agentIds": []string{a.ID, a.ID}}, http.StatusUnprocessableEntity, []string{"agentIds[1]"}},
		"wrong type":    {map[string]any{"agentIds": a.ID}, http.StatusBadRequest, []string{"agentIds"}},
		"unknown field": {map[string]any{"agentIds": []string{a.ID}, "agents": []string{a.ID}}, http.StatusBadRequest, []string{"agents"}},
		"too many":      {map[string]any{"agentIds": manyIDs(h, 101)}, http.StatusUnprocessableEntity, []string{"agentIds"}},
	} {
		res := h.call(http.MethodPost, "/v1/policies/"+p.ID+"/agents", w.operator, tc.body)
		tenantStatus(t, tc.status, res, name)
		assert.ElementsMatch(t, tc.fields, res.ErrorFields(t), name)
	}
	assert.Empty(t, slotsOf(t, h, w.id, p.ID, a.ID), "a refused request assigns nobody")
	res := h.call(http.MethodPost, "/v1/policies/"+missing+"/agents", w.operator, map[string]any{"agentIds": []string{a.ID}})
	tenantStatus(t, http.StatusNotFound, res)
}

func manyIDs(h *harness, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = domain.NewID(h.clock)
	}
	return out
}

func TestTenantPolicyDisabledAssignmentIsNotDue(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	w.repository("repo-main")
	body := tenantPolicyBody("paused", "repo-main")
	body["enabled"] = false
	res := h.call(http.MethodPost, "/v1/policies", w.operator, body)
	tenantStatus(t, http.StatusCreated, res)
	var p domain.Policy
	res.JSON(t, &p)
	w.assign(p.ID, a.ID)
	slots := slotsOf(t, h, w.id, p.ID, a.ID)
	require.Len(t, slots, 3, "backup, forget and stats")
	for kind, sl := range slots {
		assert.Nil(t, sl.NextRunAt, kind)
	}
}

func TestTenantPolicyDeleteRefusedWhileAssigned(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	a := w.agent("web-1", nil)
	w.repository("repo-main")
	p := w.policy("nightly", "repo-main")
	w.assign(p.ID, a.ID)

	res := h.call(http.MethodDelete, "/v1/policies/"+p.ID, w.operator, nil)
	tenantStatus(t, http.StatusConflict, res)
	assert.Contains(t, res.Body, "force=true")
	res = h.call(http.MethodDelete, "/v1/policies/"+p.ID+"?force=yes", w.operator, nil)
	tenantStatus(t, http.StatusBadRequest, res)
	assert.Equal(t, []string{"force"}, res.ErrorFields(t))
	_, err := h.store.GetPolicy(context.Background(), w.id, p.ID)
	require.NoError(t, err, "a refused delete deletes nothing")

	res = h.call(http.MethodDelete, "/v1/policies/"+p.ID+"?force=true", w.operator, nil)
	tenantStatus(t, http.StatusNoContent, res)
	_, err = h.store.GetPolicy(context.Background(), w.id, p.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound)
	assert.Empty(t, slotsOf(t, h, w.id, p.ID, a.ID))
	ids, _, err := h.store.ListAgentPolicies(context.Background(), w.id, a.ID, store.Page{})
	require.NoError(t, err)
	assert.Empty(t, ids)

	// An unassigned policy goes without force; the name can be used again.
	q := w.policy("nightly", "repo-main")
	res = h.call(http.MethodDelete, "/v1/policies/"+q.ID, w.operator, nil)
	tenantStatus(t, http.StatusNoContent, res)
	res = h.call(http.MethodDelete, "/v1/policies/"+q.ID, w.operator, nil)
	tenantStatus(t, http.StatusNotFound, res)
}
