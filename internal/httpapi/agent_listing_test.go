package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func TestListingUploadsOfARunningLsTask(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	other := f.enroll("b")
	snap := strings.Repeat("4f8a2c1e", 8)
	task := f.queuedTask(a.ID, func(t *domain.Task) {
		t.Type, t.Params = domain.TaskLs, domain.TaskParams{SnapshotID: snap[:8], Path: "/srv"}
	})
	st := f.start(a, task.ID, "s", "d", 201)
	path := "/v1/agent/tasks/" + task.ID + "/listing"
	entry := map[string]any{"name": "a.txt", "type": "file", "size": 3, "mode": 0o644, "mtime": h.clock}
	body := func(seq int, done bool, chunks ...map[string]any) map[string]any {
		if chunks == nil {
			chunks = []map[string]any{}
		}
		return map[string]any{"runId": st.RunID, "snapshotId": snap, "path": "/srv", "seq": seq, "chunks": chunks, "done": done}
	}
	files := map[string]any{"dir": "/srv", "seq": 0, "entries": []any{entry}}

	res := h.call("POST", path, a.Credential, body(0, false, files))
	statusIs(t, 200, res, "first upload")
	var reply struct {
		Repeated, Truncated bool
		Entries             int64
		ListedAt            *string `json:"listedAt"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.Body), &reply))
	assert.Equal(t, int64(1), reply.Entries)
	assert.Nil(t, reply.ListedAt)
	res = h.call("POST", path, a.Credential, body(0, false, files))
	statusIs(t, 200, res, "the same upload again")
	require.NoError(t, json.Unmarshal([]byte(res.Body), &reply))
	assert.True(t, reply.Repeated)
	assert.Equal(t, int64(1), reply.Entries)

	statusIs(t, 404, h.call("POST", path, other.Credential, body(1, false)), "another agent's task")
	bad := map[string]map[string]any{
		"chunks[0].dir":        body(1, false, map[string]any{"dir": "/etc", "seq": 0, "entries": []any{}}),
		"chunks[0].entries[0]": body(1, false, map[string]any{"dir": "/srv", "dirs": true, "seq": 0, "entries": []any{entry}}),
		"snapshotId":           {"runId": st.RunID, "snapshotId": snap[:8], "path": "/srv", "seq": 1, "chunks": []any{}},
		"path":                 {"runId": st.RunID, "snapshotId": snap, "path": "/srv/../etc", "seq": 1, "chunks": []any{}},
	}
	for field, b := range bad {
		res := h.call("POST", path, a.Credential, b)
		assert.Contains(t, []int{400, 422}, res.Status, field)
		assert.Contains(t, res.Body, `"field":"`+field+`"`, field)
	}

	res = h.call("POST", path, a.Credential, body(1, true))
	statusIs(t, 200, res, "the last upload")
	require.NoError(t, json.Unmarshal([]byte(res.Body), &reply))
	assert.NotNil(t, reply.ListedAt, "the listing is the snapshot's now")

	wrong := f.queuedTask(a.ID)
	wst := f.start(a, wrong.ID, "s", "d2", 201)
	res = h.call("POST", "/v1/agent/tasks/"+wrong.ID+"/listing", a.Credential, map[string]any{"runId": wst.RunID, "snapshotId": snap, "path": "/srv", "seq": 0, "chunks": []any{}})
	statusIs(t, 409, res, "a backup task uploads no listing")
}
