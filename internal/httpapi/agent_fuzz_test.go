package httpapi_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// oddValues are JSON values that break assumptions: extreme and tiny numbers, wrong types,
// control characters, long and non-ASCII text.
var oddValues = []any{
	nil, true, false, 0, -1, 1.5, 1e308, -1e308, 1e-300, json.Number("18446744073709551616"), json.Number("-0"),
	"", " ", "\x00", "a\nb", "\u202e", strings.Repeat("é", 3000), strings.Repeat("x", 70000),
	"2026-01-01T00:00:00Z", "0000-00-00", "../../etc", "01JD0000000000000000000000", strings.Repeat("f", 64),
	[]any{}, []any{nil}, []any{"a", 1}, map[string]any{}, map[string]any{"x": []any{map[string]any{}}},
}

// TestAgentRoutesNeverFailOnWhatAClientSends sends every agent route valid bodies with one
// field at a time replaced by an odd value (and odd path IDs): whatever comes in, the answer is
// a 2xx or a 4xx with the error shape, never a 5xx.
func TestAgentRoutesNeverFailOnWhatAClientSends(t *testing.T) {
	h := newHarness(t)
	withRealCredentials(t, h)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	_, token := f.token(tokenSpec{maxUses: 10000})
	rnd := rand.New(rand.NewPCG(7, 11))
	newTask := func() (string, string) {
		task := f.queuedTask(a.ID)
		st := f.start(a, task.ID, "s", "d-"+task.ID, 201)
		return task.ID, st.RunID
	}
	taskID, runID := newTask()
	type route struct {
		path func() string
		body func() map[string]any
		cred string
	}
	routes := []route{
		{func() string { return "/v1/agent/register" }, func() map[string]any {
			b := registration(token, "fuzz")
			b["labels"] = map[string]any{"k": "v"}
			b["disks"] = []any{map[string]any{"mount": "/", "freeBytes": 1, "totalBytes": 2}}
			return b
		}, ""},
		{func() string { return "/v1/agent/heartbeat" }, func() map[string]any {
			return map[string]any{"runningTasks": []any{map[string]any{"taskId": taskID, "runId": runID, "progress": map[string]any{"percentDone": 0.5, "currentFiles": []any{"/a"}}}},
				"backoffUntil": h.clock.Add(time.Hour), "backoffReason": "r", "agentVersion": "1", "resticVersion": "2",
				"disks": []any{map[string]any{"mount": "/", "freeBytes": 1, "totalBytes": 2}}, "lastError": "e"}
		}, a.Credential},
		{func() string { return "/v1/agent/credentials" }, func() map[string]any { return map[string]any{} }, a.Credential},
		{func() string { return "/v1/agent/tasks/" + taskID + "/start" }, func() map[string]any {
			return map[string]any{"agentSession": "s", "deliveryId": "d-" + taskID}
		}, a.Credential},
		{func() string { return "/v1/agent/tasks/" + taskID + "/progress" }, func() map[string]any {
			return map[string]any{"runId": runID, "progress": map[string]any{"percentDone": 0.1, "filesDone": 1, "currentFiles": []any{"/a"}}}
		}, a.Credential},
		{func() string { return "/v1/agent/tasks/" + taskID + "/result" }, func() map[string]any {
			return map[string]any{"runId": runID, "outcome": "failed", "exitCode": 1, "error": "e", "retryable": true,
				"unreadablePaths": []any{"/x"}, "summary": map[string]any{"snapshotId": "abcdef12", "filesNew": 1, "durationSeconds": 1.5}}
		}, a.Credential},
		{func() string { return "/v1/agent/runs/" + runID + "/logs" }, func() map[string]any {
			return map[string]any{"seq": rnd.IntN(1000), "lines": []any{"l1", "l2"}}
		}, a.Credential},
		{func() string { return "/v1/agent/snapshots" }, func() map[string]any {
			return map[string]any{"repository": "main", "snapshots": []any{map[string]any{"id": strings.Repeat("a", 64), "time": h.clock,
				"hostname": "h", "paths": []any{"/p"}, "tags": []any{"t"}, "policyId": domain.NewID(h.clock), "sizeBytes": 5}}}
		}, a.Credential},
	}
	// odd returns a fresh copy of an odd value, so that mutating it cannot change the list.
	odd := func() any {
		raw, err := json.Marshal(oddValues[rnd.IntN(len(oddValues))])
		require.NoError(t, err)
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		var v any
		require.NoError(t, dec.Decode(&v))
		return v
	}
	// mutate replaces one value somewhere in v (descending into objects and arrays).
	var mutate func(v any) any
	mutate = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 || rnd.IntN(8) == 0 {
				x[fmt.Sprintf("extra%d", rnd.IntN(3))] = odd()
				return x
			}
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			k := keys[rnd.IntN(len(keys))]
			if rnd.IntN(3) == 0 {
				x[k] = mutate(x[k])
			} else {
				x[k] = odd()
			}
			return x
		case []any:
			if len(x) == 0 {
				return []any{odd()}
			}
			i := rnd.IntN(len(x))
			x[i] = mutate(x[i])
			return x
		}
		return odd()
	}
	oddPaths := []string{"/v1/agent/tasks/%s/start", "/v1/agent/tasks/%s/result", "/v1/agent/runs/%s/logs", "/v1/agent/tasks/%s/progress"}
	oddIDs := []string{"", "x", "%00", "..", strings.Repeat("Z", 26), strings.Repeat("0", 27), "01jd0000000000000000000000", "%2e%2e"}

	for i := range 600 {
		r := routes[rnd.IntN(len(routes))]
		path := r.path()
		var body any = r.body()
		switch rnd.IntN(10) {
		case 0:
			path = fmt.Sprintf(oddPaths[rnd.IntN(len(oddPaths))], oddIDs[rnd.IntN(len(oddIDs))])
		case 1:
			raw, err := json.Marshal(body)
			require.NoError(t, err)
			body = string(raw[:rnd.IntN(len(raw))])
		default:
			for range 1 + rnd.IntN(3) {
				body = mutate(body)
			}
		}
		res := h.call("POST", path, r.cred, body)
		require.Less(t, res.Status, 500, "request %d: POST %s %.300v: got %d %s", i, path, body, res.Status, res.Body)
		if res.Status >= 400 {
			var e struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(res.Body), &e), "request %d: body %s", i, res.Body)
			require.NotEmpty(t, e.Error.Code, "request %d: body %s", i, res.Body)
		}
		if res.Status < 300 && strings.HasSuffix(path, "/result") {
			taskID, runID = newTask()
		}
	}
}
