package events_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// requireReject checks that err is a *RejectError with the given reason and kind.
func requireReject(t *testing.T, err error, reason string, kind error) *events.RejectError {
	t.Helper()
	var rej *events.RejectError
	require.ErrorAs(t, err, &rej)
	require.Equal(t, reason, rej.Reason)
	if kind != nil {
		require.ErrorIs(t, err, kind)
	} else {
		require.NotErrorIs(t, err, events.ErrUnknownType)
		require.NotErrorIs(t, err, events.ErrUnsupportedVersion)
	}
	return rej
}

func TestDecodeTaskRejects(t *testing.T) {
	examples := taskExamples(t)
	encoded := map[string][]byte{}
	for name, m := range examples {
		body, err := m.Encode()
		require.NoError(t, err)
		encoded[name] = body
	}
	edit := func(name string, change func(obj map[string]any)) []byte {
		return addFields(t, encoded[name], change)
	}

	cases := []struct {
		name   string
		body   []byte
		reason string
		kind   error
		// reported says whether the rejection names the task, so the agent can report it.
		reported bool
	}{
		{name: "not JSON", body: []byte(`{"schemaVersion":1,`), reason: "body is not a JSON message: unexpected end of JSON input"},
		{name: "not an object", body: []byte(`[1,2]`), reason: "body is not a JSON message: json: cannot unmarshal array into Go value of type events.header"},
		{name: "empty object", body: []byte(`{}`), reason: "schemaVersion is missing"},
		{name: "missing schemaVersion", body: edit("backup", func(o map[string]any) { delete(o, "schemaVersion") }), reason: "schemaVersion is missing"},
		{name: "newer schemaVersion", body: edit("backup", func(o map[string]any) { o["schemaVersion"] = 2; o["attempt"] = map[string]any{"n": 1} }),
			reason: "task message schemaVersion 2 is newer than this reader understands (1); upgrade it", kind: events.ErrUnsupportedVersion},
		{name: "negative schemaVersion", body: edit("backup", func(o map[string]any) { o["schemaVersion"] = -1 }),
			reason: "task message schemaVersion -1 is not supported (this reader understands 1)", kind: events.ErrUnsupportedVersion},
		{name: "another message type", body: edit("backup", func(o map[string]any) { o["type"] = "agent.offline" }),
			reason: `type "agent.offline" is not "task"`, kind: events.ErrUnknownType},
		{name: "unknown taskType", body: edit("backup", func(o map[string]any) { o["taskType"] = "defragment" }),
			reason: `taskType "defragment" is unknown`, kind: events.ErrUnknownType, reported: true},
		{name: "missing taskType", body: edit("unlock", func(o map[string]any) { delete(o, "taskType") }), reason: "taskType is missing", reported: true},
		{name: "missing tenantId", body: edit("unlock", func(o map[string]any) { delete(o, "tenantId") }), reason: "tenantId is missing", reported: true},
		{name: "invalid tenantId", body: edit("unlock", func(o map[string]any) { o["tenantId"] = "ACME Corp" }), reason: `tenantId "ACME Corp" is not a tenant ID`, reported: true},
		{name: "missing agentId", body: edit("unlock", func(o map[string]any) { delete(o, "agentId") }), reason: "agentId is missing", reported: true},
		{name: "invalid agentId", body: edit("unlock", func(o map[string]any) { o["agentId"] = "web-1" }), reason: `agentId "web-1" is not an ID`, reported: true},
		{name: "missing taskId", body: edit("unlock", func(o map[string]any) { delete(o, "taskId") }), reason: "taskId is missing"},
		{name: "invalid taskId", body: edit("unlock", func(o map[string]any) { o["taskId"] = "../../etc" }), reason: `taskId "../../etc" is not an ID`},
		{name: "invalid policyId", body: edit("backup", func(o map[string]any) { o["policyId"] = "nightly" }), reason: `policyId "nightly" is not an ID`, reported: true},
		{name: "attempt zero", body: edit("unlock", func(o map[string]any) { o["attempt"] = 0 }), reason: "attempt must be at least 1", reported: true},
		{name: "attempt of the wrong type", body: edit("unlock", func(o map[string]any) { o["attempt"] = "first" }),
			reason: "body is not a task message: json: cannot unmarshal string into Go struct field TaskMessage.attempt of type int"},
		{name: "missing notBefore", body: edit("unlock", func(o map[string]any) { delete(o, "notBefore") }), reason: "notBefore is missing", reported: true},
		{name: "missing deadline", body: edit("unlock", func(o map[string]any) { delete(o, "deadline") }), reason: "deadline is missing", reported: true},
		{name: "deadline before notBefore", body: edit("unlock", func(o map[string]any) { o["deadline"] = "2025-03-24T01:00:00Z" }),
			reason: "deadline must be after notBefore", reported: true},
		{name: "missing repository", body: edit("unlock", func(o map[string]any) { delete(o, "repository") }), reason: "repository is missing", reported: true},
		{name: "invalid repository", body: edit("unlock", func(o map[string]any) { o["repository"] = "../offsite" }),
			reason: `repository "../offsite" is not a repository name`, reported: true},
		{name: "backup without backup", body: edit("backup", func(o map[string]any) { delete(o, "backup") }), reason: "backup is missing", reported: true},
		{name: "backup without paths", body: edit("backup", func(o map[string]any) { o["backup"].(map[string]any)["paths"] = []any{} }),
			reason: "backup.paths is empty", reported: true},
		{name: "backup of a relative path", body: edit("backup", func(o map[string]any) { o["backup"].(map[string]any)["paths"] = []any{"/etc", "--password-file=x"} }),
			reason: `backup.paths[1] "--password-file=x" is not an absolute path`, reported: true},
		{name: "backup with an empty exclude", body: edit("backup", func(o map[string]any) { o["backup"].(map[string]any)["excludes"] = []any{""} }),
			reason: "backup.excludes[0] is empty", reported: true},
		{name: "backup with a tag containing a comma", body: edit("backup", func(o map[string]any) { o["backup"].(map[string]any)["tags"] = []any{"a,b"} }),
			reason: `backup.tags[0] "a,b" is not a tag`, reported: true},
		{name: "forget without retention", body: edit("forget", func(o map[string]any) { delete(o, "retention") }), reason: "retention is missing", reported: true},
		{name: "forget with an empty retention", body: edit("forget", func(o map[string]any) { o["retention"] = map[string]any{} }),
			reason: "retention has no rule: forget would remove every snapshot", reported: true},
		{name: "forget with a negative rule", body: edit("forget", func(o map[string]any) { o["retention"] = map[string]any{"keepLast": -1, "keepDaily": 7} }),
			reason: "retention.keepLast must not be negative", reported: true},
		{name: "forget with a bad keepWithin", body: edit("forget", func(o map[string]any) { o["retention"] = map[string]any{"keepWithin": "2 weeks"} }),
			reason: `retention.keepWithin "2 weeks" is not a restic duration`, reported: true},
		{name: "check with a bad readDataSubset", body: edit("check", func(o map[string]any) { o["readDataSubset"] = "half" }),
			reason: `readDataSubset "half" is not n/t, a percentage or a size`, reported: true},
		{name: "restore without restore", body: edit("restore", func(o map[string]any) { delete(o, "restore") }), reason: "restore is missing", reported: true},
		{name: "restore without snapshotId", body: edit("restore", func(o map[string]any) { delete(o["restore"].(map[string]any), "snapshotId") }),
			reason: "restore.snapshotId is missing", reported: true},
		{name: "restore of a flag", body: edit("restore", func(o map[string]any) { o["restore"].(map[string]any)["snapshotId"] = "--help" }),
			reason: `restore.snapshotId "--help" is not a snapshot ID`, reported: true},
		{name: "restore to a relative target", body: edit("restore", func(o map[string]any) { o["restore"].(map[string]any)["target"] = "restore" }),
			reason: `restore.target "restore" must be an absolute directory path`, reported: true},
		{name: "restore of a climbing path", body: edit("restore", func(o map[string]any) { o["restore"].(map[string]any)["includePaths"] = []string{"/var/../etc"} }),
			reason: `restore.includePaths[0] "/var/../etc" must not contain ".."`, reported: true},
		{name: "ls without its spec", body: edit("ls", func(o map[string]any) { delete(o, "ls") }),
			reason: "ls is missing", reported: true},
		{name: "ls of a relative path", body: edit("ls", func(o map[string]any) { o["ls"].(map[string]any)["path"] = "var" }),
			reason: `ls.path "var" must be an absolute path (starting with /)`, reported: true},
		{name: "negative bandwidth", body: edit("backup", func(o map[string]any) { o["limits"].(map[string]any)["uploadKbps"] = -5 }),
			reason: "limits.uploadKbps must be between 0 (unlimited) and 100000000", reported: true},
		{name: "too much read concurrency", body: edit("backup", func(o map[string]any) { o["limits"].(map[string]any)["readConcurrency"] = 1000 }),
			reason: "limits.readConcurrency must be between 0 (restic's default) and 256", reported: true},
		{name: "several problems at once", body: edit("restore", func(o map[string]any) { o["attempt"] = 0; o["restore"] = map[string]any{"snapshotId": ""} }),
			reason: "attempt must be at least 1; restore.snapshotId is missing", reported: true},
		{name: "body over the limit", body: append([]byte(`{"schemaVersion":1,"pad":"`), append(bytesOf('x', events.MaxBodyBytes), '"', '}')...),
			reason: "body is 256028 bytes, more than the limit of 256000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := events.DecodeTask(c.body)
			require.Zero(t, m, "a rejected message decodes to nothing")
			rej := requireReject(t, err, c.reason, c.kind)
			if c.reported {
				require.Equal(t, taskID, rej.ID)
				require.Contains(t, rej.Error(), taskID)
			} else {
				require.Empty(t, rej.ID)
			}
		})
	}
}

func bytesOf(b byte, n int) []byte { return []byte(strings.Repeat(string(b), n)) }

func TestVerifyRejectsMessagesForOthers(t *testing.T) {
	m := taskExamples(t)["backup"]
	require.NoError(t, events.Verify(m, tenantID, agentID))

	requireReject(t, events.Verify(m, "globex", agentID), `addressed to tenant "acme", not to this agent's tenant "globex"`, nil)
	other := "01JQ3V5X8Y9Z0A1B2C3D4E5F6H"
	rej := requireReject(t, events.Verify(m, tenantID, other), `addressed to agent "`+agentID+`", not to this agent "`+other+`"`, nil)
	require.Equal(t, taskID, rej.ID)
}

func TestNewTaskMessageRefusesWhatAnAgentWouldReject(t *testing.T) {
	p := examplePolicy()

	backup := exampleTask(domain.TaskBackup)
	backup.PolicyID = policyID
	_, err := events.NewTaskMessage(backup, nil)
	require.EqualError(t, err, "backup task "+taskID+": the policy is needed for its paths")

	forget := exampleTask(domain.TaskForget)
	forget.PolicyID = policyID
	_, err = events.NewTaskMessage(forget, nil)
	require.EqualError(t, err, "forget task "+taskID+": the policy is needed for its retention")

	other := exampleTask(domain.TaskBackup)
	other.PolicyID = "01JQ3TB1C3D5E7F9G1H3J5K7MA"
	_, err = events.NewTaskMessage(other, &p)
	require.ErrorContains(t, err, "belongs to policy")

	restore := exampleTask(domain.TaskRestore)
	restore.Params.SnapshotID = "latest"
	restore.Params.IncludePaths = []string{"etc"}
	_, err = events.NewTaskMessage(restore, nil)
	requireReject(t, err, `restore.includePaths[0] "etc" must be an absolute path (starting with /)`, nil)

	noRules := p
	noRules.Retention = domain.Retention{}
	_, err = events.NewTaskMessage(forget, &noRules)
	requireReject(t, err, "retention has no rule: forget would remove every snapshot", nil)
}

func TestNewTaskMessageTakesTypeFieldsFromTaskThenPolicy(t *testing.T) {
	p := examplePolicy()
	p.CheckReadDataSubset = "10%"

	check := exampleTask(domain.TaskCheck)
	check.PolicyID = policyID
	m, err := events.NewTaskMessage(check, &p)
	require.NoError(t, err)
	require.Equal(t, "10%", m.ReadDataSubset, "the policy's subset when the task has none")
	check.Params.ReadDataSubset = "2/7"
	m, err = events.NewTaskMessage(check, &p)
	require.NoError(t, err)
	require.Equal(t, "2/7", m.ReadDataSubset, "the task's own subset first")

	forget := exampleTask(domain.TaskForget)
	forget.PolicyID = policyID
	p.Prune = false
	m, err = events.NewTaskMessage(forget, &p)
	require.NoError(t, err)
	require.False(t, m.Prune)
	forget.Params.Prune = true
	m, err = events.NewTaskMessage(forget, &p)
	require.NoError(t, err)
	require.True(t, m.Prune)

	// The message owns its slices: changing the policy afterwards changes nothing that was built.
	backup := exampleTask(domain.TaskBackup)
	backup.PolicyID = policyID
	m, err = events.NewTaskMessage(backup, &p)
	require.NoError(t, err)
	p.Paths[0] = "/changed"
	require.Equal(t, "/etc", m.Backup.Paths[0])

	// No limits are sent when the policy sets none; the agent's own apply.
	p.UploadKbps, p.DownloadKbps, p.ReadConcurrency = 0, 0, 0
	m, err = events.NewTaskMessage(backup, &p)
	require.NoError(t, err)
	require.Nil(t, m.Limits)
}

func TestEncodeRefusesTaskOverTheSQSLimit(t *testing.T) {
	p := examplePolicy()
	p.Excludes = nil
	for range 1000 {
		p.Excludes = append(p.Excludes, "/var/www/"+strings.Repeat("long-directory-name/", 20)+"**")
	}
	backup := exampleTask(domain.TaskBackup)
	backup.PolicyID = policyID
	m, err := events.NewTaskMessage(backup, &p)
	require.NoError(t, err)

	body, err := m.Encode()
	require.Nil(t, body)
	require.ErrorIs(t, err, events.ErrTooLarge)
	require.ErrorContains(t, err, "more than the limit of 256000")
	require.ErrorContains(t, err, taskID)
}

func TestEncodeRefusesAnInvalidTaskMessage(t *testing.T) {
	m := taskExamples(t)["unlock"]
	m.SchemaVersion = 0
	_, err := m.Encode()
	requireReject(t, err, "schemaVersion is missing", nil)
	require.ErrorContains(t, err, "encode task message: rejected message "+taskID)
}

func TestDecodeEventRejects(t *testing.T) {
	offline, err := eventExamples()[events.TypeAgentOffline].Encode()
	require.NoError(t, err)
	edit := func(change func(obj map[string]any)) []byte { return addFields(t, offline, change) }

	cases := []struct {
		name, reason string
		body         []byte
		kind         error
	}{
		{name: "not JSON", body: []byte(`nope`), reason: "body is not a JSON message: invalid character 'o' in literal null (expecting 'u')"},
		{name: "missing schemaVersion", body: edit(func(o map[string]any) { delete(o, "schemaVersion") }), reason: "schemaVersion is missing"},
		{name: "newer schemaVersion", body: edit(func(o map[string]any) { o["schemaVersion"] = 3; o["data"] = "opaque" }),
			reason: "event schemaVersion 3 is newer than this reader understands (1); upgrade it", kind: events.ErrUnsupportedVersion},
		{name: "unknown type", body: edit(func(o map[string]any) { o["type"] = "repository.full" }),
			reason: `event type "repository.full" is unknown`, kind: events.ErrUnknownType},
		{name: "missing type", body: edit(func(o map[string]any) { delete(o, "type") }), reason: "type is missing"},
		{name: "missing data", body: edit(func(o map[string]any) { delete(o, "data") }), reason: "data is missing"},
		{name: "malformed data", body: edit(func(o map[string]any) { o["data"] = []any{1} }),
			reason: "data of agent.offline is malformed: json: cannot unmarshal array into Go value of type events.AgentOfflineData"},
		{name: "invalid tenant", body: edit(func(o map[string]any) { o["tenantId"] = "" }), reason: "tenantId is missing"},
		{name: "invalid id", body: edit(func(o map[string]any) { o["id"] = "42" }), reason: `id "42" is not an ID`},
		{name: "missing time", body: edit(func(o map[string]any) { delete(o, "time") }), reason: "time is missing"},
		{name: "invalid agent in data", body: edit(func(o map[string]any) { o["data"].(map[string]any)["agentId"] = "web-1" }),
			reason: `data.agentId "web-1" is not an ID`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := events.DecodeEvent(c.body)
			require.Zero(t, e)
			requireReject(t, err, c.reason, c.kind)
		})
	}
}

func TestEventDataMustMatchItsType(t *testing.T) {
	e := eventExamples()[events.TypeAgentOffline]
	e.Type = events.TypeAgentOnline
	_, err := e.Encode()
	requireReject(t, err, `type "agent.online" does not match its data, which is agent.offline`, nil)

	e.Data = nil
	_, err = e.Encode()
	requireReject(t, err, "data is missing", nil)
}

func TestSlotEventsCheckTheirData(t *testing.T) {
	e := eventExamples()[events.TypeSlotRecovered]
	d := e.Data.(events.SlotRecoveredData)
	d.Kind = "prune"
	e.Data = d
	_, err := e.Encode()
	requireReject(t, err, `data.kind "prune" is not backup, forget or check`, nil)

	failed := eventExamples()[events.TypeTaskFailed]
	fd := failed.Data.(events.TaskFailedData)
	fd.Attempts = 0
	failed.Data = fd
	_, err = failed.Encode()
	requireReject(t, err, "data.attempts must be at least 1", nil)
}

func TestTaskLostChecksItsData(t *testing.T) {
	for want, change := range map[string]func(*events.TaskLostData){
		`data.reason "vanished" is not agent_offline, not_listed or agent_deleted`: func(d *events.TaskLostData) { d.Reason = "vanished" },
		"data.lastListedAt is missing":                                             func(d *events.TaskLostData) { d.LastListedAt = time.Time{} },
		"data.attempts must be at least 1":                                         func(d *events.TaskLostData) { d.Attempts = 0 },
		`data.runId "r1" is not an ID`:                                             func(d *events.TaskLostData) { d.RunID = "r1" },
	} {
		e := eventExamples()[events.TypeTaskLost]
		d := e.Data.(events.TaskLostData)
		change(&d)
		e.Data = d
		_, err := e.Encode()
		requireReject(t, err, want, nil)
	}
}

func TestNewEventsGetIDsAndUTCTimes(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	a := events.NewAgentOffline(now.In(berlin), domain.Agent{ID: agentID, TenantID: tenantID, Hostname: "db-1"})
	b := events.NewAgentOffline(now.In(berlin), domain.Agent{ID: agentID, TenantID: tenantID, Hostname: "db-1"})
	require.True(t, domain.ValidID(a.ID))
	require.NotEqual(t, a.ID, b.ID, "every event has its own ID, so consumers can drop duplicates")
	require.Equal(t, time.UTC, a.Time.Location())
	require.Nil(t, a.Data.(events.AgentOfflineData).LastSeenAt, "an agent never heard from has no last heartbeat")
	body, err := a.Encode()
	require.NoError(t, err)
	require.NotContains(t, string(body), "lastSeenAt")
}

func TestTaskFailedCutsLongErrorsAtACharacter(t *testing.T) {
	task := exampleTask(domain.TaskBackup)
	task.Attempt = 3
	task.Error = strings.Repeat("ü", events.MaxEventErrorBytes) // two bytes each
	e := events.NewTaskFailed(now, task)
	msg := e.Data.(events.TaskFailedData).Error
	require.LessOrEqual(t, len(msg), events.MaxEventErrorBytes)
	require.Greater(t, len(msg), events.MaxEventErrorBytes-2)
	require.True(t, utf8.ValidString(msg))

	_, err := e.Encode()
	require.NoError(t, err)
}
