package events_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current encoding")

// Fixed identifiers and times, so that encodings are reproducible.
const (
	tenantID = "acme"
	agentID  = "01JQ3V5X8Y9Z0A1B2C3D4E5F6G"
	taskID   = "01JQ3W7K2M4N6P8R0T2V4X6Z8A"
	policyID = "01JQ3TB1C3D5E7F9G1H3J5K7M9"
	runID    = "01JQ3WR1R2R3R4R5R6R7R8R9RA"
	eventID  = "01JQ3X0E1E2E3E4E5E6E7E8E9E"
)

var (
	notBefore = time.Date(2025, 3, 24, 2, 0, 0, 0, time.UTC)
	deadline  = notBefore.Add(6 * time.Hour)
	now       = time.Date(2025, 3, 24, 9, 15, 30, 0, time.UTC)
)

func examplePolicy() domain.Policy {
	maxRetries := 3
	return domain.Policy{
		ID:              policyID,
		TenantID:        tenantID,
		Name:            "web-servers",
		Enabled:         true,
		Repository:      "offsite-b2",
		Paths:           []string{"/etc", "/var/www"},
		Excludes:        []string{"*.tmp", "/var/www/cache"},
		Tags:            []string{"web", "nightly"},
		ExcludeCaches:   true,
		OneFileSystem:   true,
		Schedule:        domain.Schedule{Cron: "0 2 * * *", Timezone: "Europe/Berlin", Spread: "30m"},
		Retention:       domain.Retention{KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepTags: []string{"keep"}},
		Prune:           true,
		MaxRetries:      &maxRetries,
		UploadKbps:      10240,
		DownloadKbps:    20480,
		ReadConcurrency: 4,
	}
}

func exampleTask(t domain.TaskType) domain.Task {
	return domain.Task{
		ID:         taskID,
		TenantID:   tenantID,
		AgentID:    agentID,
		Repository: "offsite-b2",
		Type:       t,
		Status:     domain.TaskPending,
		Attempt:    1,
		MaxRetries: 3,
		NotBefore:  notBefore,
		Deadline:   deadline,
		Trigger:    "operator",
	}
}

// taskExamples has one message of every task type, built the way the scheduler builds them.
func taskExamples(t *testing.T) map[string]events.TaskMessage {
	t.Helper()
	p := examplePolicy()
	build := func(task domain.Task, policy *domain.Policy) events.TaskMessage {
		m, err := events.NewTaskMessage(task, policy)
		require.NoError(t, err)
		return m
	}

	backup := exampleTask(domain.TaskBackup)
	backup.PolicyID, backup.Trigger = policyID, "schedule"
	forget := exampleTask(domain.TaskForget)
	forget.PolicyID, forget.Trigger = policyID, "schedule"
	forget.Attempt = 2
	check := exampleTask(domain.TaskCheck)
	check.Params.ReadDataSubset = "1/5"
	restore := exampleTask(domain.TaskRestore)
	restore.Params = domain.TaskParams{SnapshotID: "4f8a2c1e", IncludePaths: []string{"/var/www/site"}, Target: "/srv/restore", Verify: true}
	ls := exampleTask(domain.TaskLs)
	ls.Params = domain.TaskParams{SnapshotID: "4f8a2c1e", Path: "/var/www"}

	return map[string]events.TaskMessage{
		"backup":    build(backup, &p),
		"forget":    build(forget, &p),
		"prune":     build(exampleTask(domain.TaskPrune), nil),
		"check":     build(check, nil),
		"restore":   build(restore, nil),
		"unlock":    build(exampleTask(domain.TaskUnlock), nil),
		"snapshots": build(exampleTask(domain.TaskSnapshots), nil),
		"stats":     build(exampleTask(domain.TaskStats), nil),
		"ls":        build(ls, nil),
	}
}

// eventExamples has one event of every type, with its ID fixed.
func eventExamples() map[events.EventType]events.Event {
	lastSeen := now.Add(-20 * time.Minute)
	lastSuccess := now.Add(-50 * time.Hour)
	agent := domain.Agent{ID: agentID, TenantID: tenantID, Hostname: "web-1.example.com", LastSeenAt: &lastSeen}
	failed := exampleTask(domain.TaskBackup)
	failed.PolicyID, failed.Attempt, failed.RunID = policyID, 4, runID
	failed.Error = "restic exited with code 1: Fatal: unable to open repository at b2:acme-backups:web: <403 Forbidden>"
	lost := exampleTask(domain.TaskBackup)
	lost.PolicyID, lost.Attempt, lost.RunID = policyID, 1, runID
	lost.Error = "agent lost: offline since 2025-03-24T07:14:00Z, more than 2h0m0s, while running the task; last listed at 2025-03-24T07:10:30Z"
	expired := exampleTask(domain.TaskCheck)
	slot := domain.Slot{TenantID: tenantID, PolicyID: policyID, AgentID: agentID, Kind: domain.SlotBackup,
		LastSuccessAt: &lastSuccess, LastTaskID: taskID, WaitReason: "agent offline", Overdue: true}

	enrolled := agent
	enrolled.OS, enrolled.Arch, enrolled.AgentVersion, enrolled.ResticVersion = "linux", "arm64", "1.4.0", "0.18.0"
	enrolled.Labels = map[string]string{"env": "prod"}
	backingOff := agent
	until := now.Add(30 * time.Minute)
	backingOff.BackoffUntil, backingOff.BackoffReason = &until, "disk /var is 97% full"
	started := now.Add(-12 * time.Minute)
	finished := now.Add(-time.Minute)
	runCtx := events.RunContext{Hostname: agent.Hostname, PolicyName: "web-servers", Repository: "offsite-b2"}
	baseRun := domain.Run{ID: runID, TenantID: tenantID, AgentID: agentID, TaskID: taskID, PolicyID: policyID,
		Type: domain.TaskBackup, Attempt: 1, StartedAt: started, FinishedAt: &finished}
	succeeded := baseRun
	succeeded.Status = domain.TaskSucceeded
	succeeded.Summary = &domain.Summary{SnapshotID: "4f8a2c1e", DataAdded: 52428800, TotalBytesProcessed: 10737418240,
		TotalFilesProcessed: 120000, DurationSeconds: 655.5}
	zero, three, eleven, one := 0, 3, 11, 1
	succeeded.ExitCode = &zero
	partial := succeeded
	partial.Status, partial.ExitCode = domain.TaskPartial, &three
	partial.UnreadablePaths = []string{"/var/www/private/key.pem"}
	lockedRun := baseRun
	lockedRun.Status, lockedRun.ExitCode, lockedRun.Attempt = domain.TaskFailed, &eleven, 2
	lockedRun.Error = "restic exited with code 11: repository is already locked by PID 4242 on web-2 by root"
	checkRun := baseRun
	checkRun.Type, checkRun.PolicyID, checkRun.Status, checkRun.ExitCode = domain.TaskCheck, "", domain.TaskFailed, &one
	checkRun.Error = "restic exited with code 1: Fatal: repository contains errors"

	list := []events.Event{
		events.NewAgentOffline(now, agent),
		events.NewAgentOnline(now, agent, now.Add(-10*time.Second)),
		events.NewTaskExpired(now, expired),
		events.NewTaskFailed(now, failed),
		events.NewTaskLost(now, lost, events.LostAgentOffline, time.Date(2025, 3, 24, 7, 10, 30, 0, time.UTC)),
		events.NewSlotOverdue(now, slot),
		events.NewSlotRecovered(now, slot, now.Add(-time.Minute)),
		events.NewAgentEnrolled(now, enrolled),
		events.NewAgentBackoff(now, backingOff),
		events.NewRepositoryCheckOverdue(now, tenantID, domain.RepositoryHealth{
			Repository: "offsite-b2", LastCheckOKAt: &lastSuccess,
			LastCheck: &domain.CheckResult{At: now.Add(-2 * time.Hour), OK: false, RunID: runID, AgentID: agentID, Error: "restic exited with code 1: Fatal: repository contains errors"},
		}, lastSuccess, 2),
	}
	list = append(list, events.NewRunEnded(now, succeeded, runCtx)...)
	list = append(list, events.NewRunEnded(now, partial, runCtx)...)
	list = append(list, events.NewRunEnded(now, lockedRun, runCtx)...) // run.failed and repository.locked
	list = append(list, events.NewRunEnded(now, checkRun, events.RunContext{Hostname: agent.Hostname, Repository: "offsite-b2"})...)
	out := map[events.EventType]events.Event{}
	for _, e := range list {
		e.ID = eventID
		out[e.Type] = e
	}
	return out
}

// golden compares body, indented, with testdata/name.json, or rewrites the file under -update.
func golden(t *testing.T, name string, body []byte) []byte {
	t.Helper()
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, body, "", "  "))
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		require.NoError(t, os.WriteFile(path, pretty.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file; run go test ./events -update to write it")
	if got := pretty.String(); got != string(want) {
		t.Errorf("%s: the encoding changed; if that is intended, keep old readers working and rerun with -update\ngot:\n%s\nwant:\n%s", path, got, want)
	}
	return want
}

func TestTaskMessagesMatchGoldenFiles(t *testing.T) {
	examples := taskExamples(t)
	require.Len(t, examples, len(domain.TaskTypes), "one example per task type")
	for name, m := range examples {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, domain.TaskType(name), m.TaskType)
			body, err := m.Encode()
			require.NoError(t, err)
			committed := golden(t, "task-"+name, body)

			// The committed file is the contract: it must decode to the message it was made from.
			got, err := events.DecodeTask(committed)
			require.NoError(t, err)
			require.Equal(t, m, got)
		})
	}
}

func TestEventsMatchGoldenFiles(t *testing.T) {
	examples := eventExamples()
	require.Len(t, examples, len(events.EventTypes), "one example per event type")
	for typ, e := range examples {
		t.Run(string(typ), func(t *testing.T) {
			body, err := e.Encode()
			require.NoError(t, err)
			committed := golden(t, "event-"+string(typ), body)

			got, err := events.DecodeEvent(committed)
			require.NoError(t, err)
			require.Equal(t, e, got)
			require.Equal(t, typ, got.Data.EventType())
		})
	}
}

// addFields decodes body as a JSON object, lets change add to or alter it, and re-encodes it.
func addFields(t *testing.T, body []byte, change func(obj map[string]any)) []byte {
	t.Helper()
	var obj map[string]any
	require.NoError(t, json.Unmarshal(body, &obj))
	change(obj)
	out, err := json.Marshal(obj)
	require.NoError(t, err)
	return out
}

func TestDecodeTaskIgnoresFieldsAddedLater(t *testing.T) {
	for name, m := range taskExamples(t) {
		t.Run(name, func(t *testing.T) {
			body, err := m.Encode()
			require.NoError(t, err)
			body = addFields(t, body, func(obj map[string]any) {
				obj["priority"] = 7
				obj["compression"] = map[string]any{"level": "max"}
				obj["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
				for _, nested := range []string{"backup", "restore", "limits", "retention"} {
					if sub, ok := obj[nested].(map[string]any); ok {
						sub["addedInAMinorRelease"] = []any{1, "two"}
					}
				}
			})
			got, err := events.DecodeTask(body)
			require.NoError(t, err)
			require.Equal(t, m, got)
		})
	}
}

func TestDecodeEventIgnoresFieldsAddedLater(t *testing.T) {
	for typ, e := range eventExamples() {
		t.Run(string(typ), func(t *testing.T) {
			body, err := e.Encode()
			require.NoError(t, err)
			body = addFields(t, body, func(obj map[string]any) {
				obj["source"] = "scheduler"
				obj["data"].(map[string]any)["severity"] = "warning"
			})
			got, err := events.DecodeEvent(body)
			require.NoError(t, err)
			require.Equal(t, e, got)
		})
	}
}

func TestTaskTimesAreUTC(t *testing.T) {
	task := exampleTask(domain.TaskUnlock)
	berlin := time.FixedZone("CET", 3600)
	task.NotBefore, task.Deadline = notBefore.In(berlin), deadline.In(berlin)
	m, err := events.NewTaskMessage(task, nil)
	require.NoError(t, err)
	body, err := m.Encode()
	require.NoError(t, err)
	require.Contains(t, string(body), `"notBefore":"2025-03-24T02:00:00Z","deadline":"2025-03-24T08:00:00Z"`)

	// A writer that sends an offset still means the same instant.
	body = addFields(t, body, func(obj map[string]any) { obj["deadline"] = "2025-03-24T09:00:00+01:00" })
	got, err := events.DecodeTask(body)
	require.NoError(t, err)
	require.Equal(t, deadline, got.Deadline)
}

func TestEveryGoldenFileHasAnExample(t *testing.T) {
	want := map[string]bool{}
	for name := range taskExamples(t) {
		want["task-"+name+".json"] = true
	}
	for typ := range eventExamples() {
		want["event-"+string(typ)+".json"] = true
	}
	entries, err := os.ReadDir("testdata")
	require.NoError(t, err)
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Name()] = true
	}
	require.Equal(t, want, got, "testdata/ holds exactly one golden file per message type")
}
