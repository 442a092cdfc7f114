package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func TestLogChunksAreStoredInOrderOnceAndCounted(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)
	st := f.start(a, task.ID, "s", "d", 201)
	ctx := context.Background()
	path := "/v1/agent/runs/" + st.RunID + "/logs"
	_, usageBefore, err := h.store.GetTenant(ctx, "acme")
	require.NoError(t, err)

	// Chunk 1 arrives before chunk 0 (a spooled chunk delivered late); both are kept in order.
	res := h.call("POST", path, a.Credential, map[string]any{"seq": 1, "lines": []string{"third", "fourth!"}})
	statusIs(t, 201, res, "chunk 1")
	assert.JSONEq(t, `{"runId":"`+st.RunID+`","seq":1,"stored":true}`, res.Body)
	statusIs(t, 201, h.call("POST", path, a.Credential, map[string]any{"seq": 0, "lines": []string{"first", "second"}}), "chunk 0")

	// The same chunk again is taken, and counted, once.
	res = h.call("POST", path, a.Credential, map[string]any{"seq": 0, "lines": []string{"first", "second"}})
	statusIs(t, 200, res, "chunk 0 again")
	assert.JSONEq(t, `{"runId":"`+st.RunID+`","seq":0,"stored":false}`, res.Body)

	run := f.run(st.RunID)
	assert.Equal(t, int64(len("first")+len("second")+len("third")+len("fourth!")), run.LogBytes)
	assert.Equal(t, int64(4), run.LogLines)
	_, usage, err := h.store.GetTenant(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, usageBefore.LogBytes+run.LogBytes, usage.LogBytes)
	assert.Equal(t, usageBefore.LogLines+4, usage.LogLines)
	chunks, _, err := h.store.ListLog(ctx, "acme", st.RunID, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, chunks, 2)
	assert.Equal(t, []string{"first", "second"}, chunks[0].Lines)
	assert.Equal(t, []string{"third", "fourth!"}, chunks[1].Lines)
	assert.Equal(t, h.clock.Add(h.deps.Settings.LogRetention).Truncate(time.Second), chunks[0].ExpiresAt, "chunks expire after the retention")

	// Chunks may arrive after the result.
	f.result(a, task.ID, map[string]any{"runId": st.RunID, "outcome": "succeeded"}, 200)
	statusIs(t, 201, h.call("POST", path, a.Credential, map[string]any{"seq": 2, "lines": []string{"late"}}), "a chunk after the result")
	assert.Equal(t, int64(5), f.run(st.RunID).LogLines)
}

func TestLogChunksRefuseBadInput(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	task := f.queuedTask(a.ID)
	st := f.start(a, task.ID, "s", "d", 201)
	path := "/v1/agent/runs/" + st.RunID + "/logs"
	big := strings.Repeat("x", 1024)
	oversized := make([]string, domain.MaxLogChunkBytes/len(big)+1)
	for i := range oversized {
		oversized[i] = big
	}
	cases := []struct {
		name   string
		path   string
		body   any
		status int
		field  string
	}{
		{"above the chunk's bytes", path, map[string]any{"seq": 0, "lines": oversized}, 413, "lines"},
		{"above the chunk's lines", path, map[string]any{"seq": 0, "lines": make([]string, domain.MaxLogChunkLines+1)}, 413, "lines"},
		{"above the body limit", path, `{"seq":0,"lines":["` + strings.Repeat("y", 1<<20) + `"]}`, 413, ""},
		{"no seq", path, map[string]any{"lines": []string{"a"}}, 422, "seq"},
		{"negative seq", path, map[string]any{"seq": -1, "lines": []string{"a"}}, 422, "seq"},
		{"seq beyond ten digits", path, map[string]any{"seq": int64(domain.MaxLogSeq) + 1, "lines": []string{"a"}}, 422, "seq"},
		{"no lines", path, map[string]any{"seq": 0, "lines": []string{}}, 422, "lines"},
		{"seq a string", path, `{"seq":"0","lines":["a"]}`, 400, "seq"},
		{"seq a fraction", path, `{"seq":1.5,"lines":["a"]}`, 400, "seq"},
		{"lines not strings", path, `{"seq":0,"lines":[1,2]}`, 400, "lines"},
		{"unknown field", path, `{"seq":0,"lines":["a"],"bytes":1}`, 400, "bytes"},
		{"run ID not an ID", "/v1/agent/runs/latest/logs", map[string]any{"seq": 0, "lines": []string{"a"}}, 400, "runId"},
		{"a run that does not exist", "/v1/agent/runs/" + domain.NewID(h.clock) + "/logs", map[string]any{"seq": 0, "lines": []string{"a"}}, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call("POST", tc.path, a.Credential, tc.body)
			statusIs(t, tc.status, res, tc.name)
			if tc.field != "" {
				assert.Contains(t, res.ErrorFields(t), tc.field)
			} else {
				assert.NotEmpty(t, errorCode(t, res))
			}
		})
	}
	run := f.run(st.RunID)
	assert.Zero(t, run.LogBytes, "no refused chunk may be counted")
	assert.Zero(t, run.LogLines)
}

func TestSnapshotReportsReplaceTheRepositorysInventory(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a, b := f.enroll("a"), f.enroll("b")
	ctx := context.Background()
	t0 := h.clock.Add(-48 * time.Hour)
	snap := func(id string, at time.Time) map[string]any {
		return map[string]any{"id": id, "shortId": id[:8], "time": at, "hostname": "a", "paths": []string{"/srv"}, "tags": []string{"daily"}, "sizeBytes": 42}
	}
	ids := func(agentID string) map[string]string {
		snaps, _, err := h.store.ListSnapshots(ctx, "acme", agentID, store.Page{Limit: 100})
		require.NoError(t, err)
		out := map[string]string{}
		for _, s := range snaps {
			out[s.ID] = s.Repository
		}
		return out
	}
	report := func(who host, repo string, snaps ...map[string]any) response {
		if snaps == nil {
			snaps = []map[string]any{}
		}
		return h.call("POST", "/v1/agent/snapshots", who.Credential, map[string]any{"repository": repo, "snapshots": snaps})
	}
	first, second, third := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	other := strings.Repeat("d", 64)

	res := report(a, "main", snap(first, t0), snap(second, t0.Add(24*time.Hour)))
	statusIs(t, 200, res, "first report")
	assert.JSONEq(t, `{"repository":"main","stored":2,"removed":0}`, res.Body)
	statusIs(t, 200, report(a, "offsite", snap(other, t0)), "another repository")
	statusIs(t, 200, report(b, "main", snap(first, t0)), "agent b's own inventory of a shared repository")

	// Forget removed the first snapshot, a new backup added the third.
	res = report(a, "main", snap(second, t0.Add(24*time.Hour)), snap(third, h.clock))
	statusIs(t, 200, res, "second report")
	assert.JSONEq(t, `{"repository":"main","stored":2,"removed":1}`, res.Body)
	assert.Equal(t, map[string]string{second: "main", third: "main", other: "offsite"}, ids(a.ID))
	assert.Equal(t, map[string]string{first: "main"}, ids(b.ID), "a's report must not touch b's snapshots")

	// An empty repository.
	res = report(a, "offsite")
	statusIs(t, 200, res, "empty report")
	assert.JSONEq(t, `{"repository":"offsite","stored":0,"removed":1}`, res.Body)
	assert.Equal(t, map[string]string{second: "main", third: "main"}, ids(a.ID))
}

func TestSnapshotReportsRefuseBadInput(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	good := func() map[string]any {
		return map[string]any{"id": strings.Repeat("a", 64), "time": h.clock, "hostname": "a", "paths": []string{"/srv"}}
	}
	with := func(change func(map[string]any)) map[string]any {
		s := good()
		change(s)
		return map[string]any{"repository": "main", "snapshots": []map[string]any{s}}
	}
	tooMany := make([]map[string]any, 2001)
	for i := range tooMany {
		tooMany[i] = good()
	}
	cases := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"no snapshots list", map[string]any{"repository": "main"}, 422, "snapshots"},
		{"no repository", map[string]any{"snapshots": []any{}}, 422, "repository"},
		{"bad repository name", map[string]any{"repository": "../main", "snapshots": []any{}}, 422, "repository"},
		{"ID not hex", with(func(s map[string]any) { s["id"] = "latest" }), 422, "snapshots[0].id"},
		{"no time", with(func(s map[string]any) { delete(s, "time") }), 422, "snapshots[0].time"},
		{"time not RFC 3339", with(func(s map[string]any) { s["time"] = "yesterday" }), 400, "snapshots.time"},
		{"policy not an ID", with(func(s map[string]any) { s["policyId"] = "p1" }), 422, "snapshots[0].policyId"},
		{"empty path", with(func(s map[string]any) { s["paths"] = []string{""} }), 422, "snapshots[0].paths[0]"},
		{"listed twice", map[string]any{"repository": "main", "snapshots": []map[string]any{good(), good()}}, 422, "snapshots[1].id"},
		{"too many", map[string]any{"repository": "main", "snapshots": tooMany}, 422, "snapshots"},
		{"size a string", `{"repository":"main","snapshots":[{"id":"aaaaaaaa","time":"2026-01-01T00:00:00Z","sizeBytes":"1"}]}`, 400, "snapshots.sizeBytes"},
		{"tenant in a snapshot", `{"repository":"main","snapshots":[{"id":"aaaaaaaa","time":"2026-01-01T00:00:00Z","tenantId":"other"}]}`, 400, "tenantId"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call("POST", "/v1/agent/snapshots", a.Credential, tc.body)
			statusIs(t, tc.status, res, tc.name)
			assert.Contains(t, res.ErrorFields(t), tc.field)
		})
	}
	snaps, _, err := h.store.ListSnapshots(context.Background(), "acme", a.ID, store.Page{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, snaps, "no refused report may store a snapshot")
}
