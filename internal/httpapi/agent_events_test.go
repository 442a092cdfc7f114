package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// outbox reads the tenant's pending events from the table, as the scheduler's tick finds them
// in the due index, grouped by type.
func (f *agentFixture) outbox() map[events.EventType][]events.Event {
	f.h.t.Helper()
	out := map[events.EventType][]events.Event{}
	for shard := range resources.DueShards {
		page := store.Page{Limit: 100}
		for {
			due, next, err := f.h.store.QueryDue(context.Background(), shard, f.h.clock.Add(24*time.Hour), page)
			require.NoError(f.h.t, err)
			for _, d := range due {
				if d.Outbox == nil || d.Outbox.TenantID != f.tenant {
					continue
				}
				ev, err := events.DecodeEvent(d.Outbox.Body)
				require.NoError(f.h.t, err, "outbox item %s: %s", d.Outbox.EventID, d.Outbox.Body)
				require.Equal(f.h.t, d.Outbox.Type, ev.Type)
				out[ev.Type] = append(out[ev.Type], ev)
			}
			if next == "" {
				break
			}
			page.Cursor = next
		}
	}
	return out
}

// only returns the one event of type typ in the outbox, failing when there is not exactly one.
func onlyEvent(t *testing.T, box map[events.EventType][]events.Event, typ events.EventType) events.Event {
	t.Helper()
	require.Len(t, box[typ], 1, "%s events in the outbox: %v", typ, box[typ])
	return box[typ][0]
}

func TestRegistrationRecordsOneAgentEnrolled(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("web-1")

	box := f.outbox()
	ev := onlyEvent(t, box, events.TypeAgentEnrolled)
	assert.Equal(t, "acme", ev.TenantID)
	assert.Len(t, box, 1, "registration records nothing else: %v", box)
	data, ok := ev.Data.(events.AgentEnrolledData)
	require.True(t, ok, "%T", ev.Data)
	assert.Equal(t, a.ID, data.AgentID)
	assert.Equal(t, "web-1", data.Hostname)
}

func TestRunResultsRecordTheirEventOnce(t *testing.T) {
	cases := []struct {
		name     string
		taskType domain.TaskType
		body     map[string]any
		// want are the events the result records, one each.
		want   []events.EventType
		check  func(t *testing.T, box map[events.EventType][]events.Event, runID string)
		absent []events.EventType
	}{
		{
			name: "succeeded backup", taskType: domain.TaskBackup,
			body: map[string]any{"outcome": "succeeded", "exitCode": 0, "summary": map[string]any{"snapshotId": "1a2b3c4d", "dataAdded": 4096, "durationSeconds": 12.5}},
			want: []events.EventType{events.TypeRunSucceeded},
			check: func(t *testing.T, box map[events.EventType][]events.Event, runID string) {
				d := box[events.TypeRunSucceeded][0].Data.(events.RunSucceededData)
				assert.Equal(t, runID, d.RunID)
				assert.Equal(t, "1a2b3c4d", d.SnapshotID)
				assert.Equal(t, uint64(4096), d.BytesAdded)
				assert.Equal(t, 12.5, d.DurationSeconds)
			},
		},
		{
			name: "partial backup", taskType: domain.TaskBackup,
			body: map[string]any{"outcome": "partial", "exitCode": 3, "unreadablePaths": []string{"/srv/secret.key"}, "error": "1 file could not be read",
				"summary": map[string]any{"snapshotId": "abcdef12"}},
			want: []events.EventType{events.TypeRunPartial},
			check: func(t *testing.T, box map[events.EventType][]events.Event, runID string) {
				d := box[events.TypeRunPartial][0].Data.(events.RunPartialData)
				assert.Equal(t, runID, d.RunID)
				assert.Equal(t, []string{"/srv/secret.key"}, d.UnreadablePaths)
				require.NotNil(t, d.ExitCode)
				assert.Equal(t, 3, *d.ExitCode)
			},
			absent: []events.EventType{events.TypeRunSucceeded, events.TypeRunFailed},
		},
		{
			name: "wrong password", taskType: domain.TaskBackup,
			body: map[string]any{"outcome": "failed", "exitCode": 12, "error": "Fatal: wrong password or no key found", "retryable": false},
			want: []events.EventType{events.TypeRunFailed, events.TypeTaskFailed},
			check: func(t *testing.T, box map[events.EventType][]events.Event, runID string) {
				d := box[events.TypeRunFailed][0].Data.(events.RunFailedData)
				assert.Equal(t, runID, d.RunID)
				require.NotNil(t, d.ExitCode)
				assert.Equal(t, 12, *d.ExitCode)
				assert.Equal(t, events.ReasonWrongPassword, d.Reason)
				assert.Contains(t, d.Error, "wrong password")
			},
			absent: []events.EventType{events.TypeRepositoryLocked, events.TypeCheckFailed},
		},
		{
			name: "failed check", taskType: domain.TaskCheck,
			body: map[string]any{"outcome": "failed", "exitCode": 1, "error": "Fatal: repository contains errors", "retryable": false},
			want: []events.EventType{events.TypeCheckFailed, events.TypeTaskFailed},
			check: func(t *testing.T, box map[events.EventType][]events.Event, runID string) {
				d := box[events.TypeCheckFailed][0].Data.(events.CheckFailedData)
				assert.Equal(t, runID, d.RunID)
				assert.Equal(t, domain.TaskCheck, d.TaskType)
				assert.Equal(t, events.ReasonFailed, d.Reason)
			},
			absent: []events.EventType{events.TypeRunFailed},
		},
		{
			name: "locked repository", taskType: domain.TaskBackup,
			body: map[string]any{"outcome": "failed", "exitCode": 11, "error": "Fatal: unable to create lock in backend: repository is already locked", "retryable": false},
			want: []events.EventType{events.TypeRunFailed, events.TypeRepositoryLocked, events.TypeTaskFailed},
			check: func(t *testing.T, box map[events.EventType][]events.Event, runID string) {
				d := box[events.TypeRepositoryLocked][0].Data.(events.RepositoryLockedData)
				assert.Equal(t, runID, d.RunID)
				assert.Equal(t, "main", d.Repository)
				assert.Equal(t, events.ReasonRepositoryLocked, box[events.TypeRunFailed][0].Data.(events.RunFailedData).Reason)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			f := newAgentFixture(h, "acme")
			a := f.enroll("web-1")
			task := f.queuedTask(a.ID, func(t *domain.Task) { t.Type = tc.taskType })
			st := f.start(a, task.ID, "s", "d", 201)
			h.clock = h.clock.Add(10 * time.Minute)
			body := map[string]any{"runId": st.RunID}
			for k, v := range tc.body {
				body[k] = v
			}
			f.result(a, task.ID, body, 200)
			// The agent's spool delivering the result again records nothing more.
			h.clock = h.clock.Add(time.Minute)
			assert.True(t, f.result(a, task.ID, body, 200).Repeated)

			box := f.outbox()
			for _, typ := range tc.want {
				ev := onlyEvent(t, box, typ)
				assert.Equal(t, "acme", ev.TenantID)
			}
			for _, typ := range tc.absent {
				assert.Empty(t, box[typ], "no %s", typ)
			}
			tc.check(t, box, st.RunID)
		})
	}
}

func TestHeartbeatRecordsOneAgentBackoffPerChange(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("web-1")
	beat := func(body map[string]any) {
		t.Helper()
		body["agentVersion"], body["resticVersion"] = "1.3.0", "0.18.1"
		statusIs(t, 200, h.call("POST", "/v1/agent/heartbeat", a.Credential, body), "heartbeat")
	}
	h.clock = h.clock.Add(time.Minute)
	beat(map[string]any{})
	assert.Empty(t, f.outbox()[events.TypeAgentBackoff], "no backoff, no event")

	until := h.clock.Add(30 * time.Minute)
	h.clock = h.clock.Add(time.Minute)
	beat(map[string]any{"backoffUntil": until, "backoffReason": "disk full"})
	ev := onlyEvent(t, f.outbox(), events.TypeAgentBackoff)
	d := ev.Data.(events.AgentBackoffData)
	assert.Equal(t, a.ID, d.AgentID)
	require.NotNil(t, d.BackoffUntil)
	assert.True(t, until.Equal(*d.BackoffUntil))
	assert.Equal(t, "disk full", d.Reason)

	// The same backoff reported again is no change.
	h.clock = h.clock.Add(time.Minute)
	beat(map[string]any{"backoffUntil": until, "backoffReason": "disk full"})
	assert.Len(t, f.outbox()[events.TypeAgentBackoff], 1, "a repeated backoff records nothing")

	// Its end is one more.
	h.clock = h.clock.Add(time.Minute)
	beat(map[string]any{})
	ended := f.outbox()[events.TypeAgentBackoff]
	require.Len(t, ended, 2)
	var last events.AgentBackoffData
	for _, e := range ended {
		if e.ID != ev.ID {
			last = e.Data.(events.AgentBackoffData)
		}
	}
	assert.Nil(t, last.BackoffUntil, "the backoff ended")
}
