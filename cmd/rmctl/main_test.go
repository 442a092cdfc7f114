package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// cli runs rmctl command lines with their own environment.
type cli struct {
	t   *testing.T
	env map[string]string
}

// run runs one command line and returns its standard output and error.
func (c *cli) run(args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, &out, &errb, func(k string) string { return c.env[k] })
	return out.String(), errb.String(), err
}

// ok runs a command line that must succeed and decodes its JSON output into v (when not nil).
func (c *cli) ok(v any, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	require.NoError(c.t, err, "rmctl %s: %s", strings.Join(args, " "), errOut)
	if v != nil {
		require.NoError(c.t, json.Unmarshal([]byte(out), v), "rmctl %s printed: %s", strings.Join(args, " "), out)
	}
	return out
}

func TestBootstrapTenantAndFirstKeyAgainstTheTable(t *testing.T) {
	cfg := testenv.AWS(t)
	// rmctl reaches the test endpoint the way an operator points it at an emulator.
	t.Setenv("AWS_ENDPOINT_URL", localaws.Endpoint())
	table := testenv.Table(t, cfg)
	st := store.New(dynamodb.NewFromConfig(cfg), table)
	c := &cli{t: t, env: map[string]string{"RM_TABLE": table}}

	var tenant domain.Tenant
	c.ok(&tenant, "tenant", "create", "acme", "--name", "ACME Corp")
	assert.Equal(t, "acme", tenant.ID)
	assert.Equal(t, "ACME Corp", tenant.Name)
	stored, _, err := st.GetTenant(context.Background(), "acme")
	require.NoError(t, err)
	assert.Equal(t, "ACME Corp", stored.Name)

	_, errOut, err := c.run("tenant", "create", "acme")
	require.Error(t, err)
	assert.Contains(t, errOut, "exists already")
	_, errOut, err = c.run("tenant", "create", "Not_A_Slug")
	require.Error(t, err)
	assert.Contains(t, errOut, "id:")

	var key struct {
		domain.APIKey
		Key string `json:"key"`
	}
	c.ok(&key, "apikey", "create", "--tenant", "acme", "--role", "admin")
	assert.Equal(t, domain.RoleAdmin, key.Role)
	assert.NotContains(t, c.ok(nil, "apikey", "create", "--tenant", "acme", "--role", "viewer"), "secretHash")
	// The key is a working credential of the tenant, with its role.
	p, err := (&auth.Authenticator{Store: st}).Authenticate(context.Background(), "Bearer "+key.Key)
	require.NoError(t, err)
	assert.Equal(t, auth.Principal{TenantID: "acme", Kind: auth.KindAPIKey, ID: key.ID, Role: domain.RoleAdmin, Name: key.Name}, p)
	k, err := st.LookupAPIKey(context.Background(), key.ID)
	require.NoError(t, err)
	assert.Equal(t, auth.Hash(strings.Split(key.Key, "_")[2]), k.SecretHash, "only the hash is stored")

	out := c.ok(nil, "apikey", "create", "--tenant", "acme", "--role", "operator", "--name", "ci", "-o", "table")
	assert.Regexp(t, `(?m)^ID\s+TENANT\s+ROLE\s+KEY$`, out)
	assert.Regexp(t, `acme\s+operator\s+rm_`, out)

	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"RM_TABLE": table}, []string{"apikey", "create", "--tenant", "nobody", "--role", "admin"}, "no tenant nobody"},
		{map[string]string{"RM_TABLE": table}, []string{"apikey", "create", "--tenant", "acme", "--role", "root"}, "role"},
		{map[string]string{"RM_TABLE": table}, []string{"apikey", "create", "--role", "admin"}, `"tenant" not set`},
		{map[string]string{}, []string{"tenant", "create", "beta"}, "RM_TABLE"},
		{map[string]string{"RM_TABLE": table}, []string{"tenant", "create", "beta", "-o", "yaml"}, "--output"},
	} {
		c := &cli{t: t, env: tc.env}
		_, errOut, err := c.run(tc.args...)
		require.Error(t, err, tc.args)
		assert.Contains(t, errOut, tc.want, tc.args)
	}
}

func TestCapacityRecountAgainstTheTable(t *testing.T) {
	cfg := testenv.AWS(t)
	t.Setenv("AWS_ENDPOINT_URL", localaws.Endpoint())
	table := testenv.Table(t, cfg)
	db := dynamodb.NewFromConfig(cfg)
	st := store.New(db, table)
	ctx := context.Background()
	c := &cli{t: t, env: map[string]string{"RM_TABLE": table}}
	c.ok(nil, "tenant", "create", "acme")

	// Two agents with a running task each, whose capacity items were left behind by an older
	// version: one missed its task, the other never had an item.
	now := time.Now().UTC()
	var b store.Bulk
	for range 2 {
		a := domain.Agent{
			ID: domain.NewID(now), TenantID: "acme", Hostname: "host", OS: "linux", Arch: "amd64", AgentVersion: "1.0.0",
			Status: domain.AgentOnline, LastSeenAt: &now, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60,
			CreatedAt: now, UpdatedAt: now, Version: 1,
		}
		b.Agents = append(b.Agents, a)
	}
	require.NoError(t, st.Import(ctx, b, 1))
	var running []string
	for _, a := range b.Agents {
		task, err := st.CreateTask(ctx, "acme", domain.Task{
			ID: domain.NewID(now), AgentID: a.ID, Repository: "main", Type: domain.TaskBackup, Status: domain.TaskRunning,
			Attempt: 1, NotBefore: now, Deadline: now.Add(time.Hour), Trigger: "operator",
		})
		require.NoError(t, err)
		running = append(running, task.ID)
	}
	require.NoError(t, st.Import(ctx, store.Bulk{Agents: b.Agents[:1]}, 1), "an import without the agent's task")
	_, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &table, Key: map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "TENANT#acme"}, "SK": &types.AttributeValueMemberS{Value: "CAPACITY#" + b.Agents[1].ID},
	}})
	require.NoError(t, err)
	refs := []store.AgentRef{{TenantID: "acme", AgentID: b.Agents[0].ID}}
	before, err := st.GetCapacities(ctx, refs)
	require.NoError(t, err)
	require.Empty(t, before[refs[0]].Active, "the stale item is trusted until it is recounted")

	var out struct {
		TenantID string `json:"tenantId"`
		Agents   int    `json:"agents"`
	}
	c.ok(&out, "capacity", "recount", "--tenant", "acme")
	assert.Equal(t, "acme", out.TenantID)
	assert.Equal(t, 2, out.Agents)
	refs = append(refs, store.AgentRef{TenantID: "acme", AgentID: b.Agents[1].ID})
	after, err := st.GetCapacities(ctx, refs)
	require.NoError(t, err)
	for i, ref := range refs {
		assert.Equal(t, []store.ActiveTask{{ID: running[i], Type: domain.TaskBackup}}, after[ref].Active, "agent %d", i)
	}

	_, errOut, err := c.run("capacity", "recount", "--tenant", "nobody")
	require.Error(t, err)
	assert.Contains(t, errOut, "no tenant nobody")
	_, errOut, err = c.run("capacity", "recount")
	require.Error(t, err)
	assert.Contains(t, errOut, `"tenant" not set`)
}

// apiServer serves both APIs on a local port, as the local stack does, against a fresh table.
func apiServer(t *testing.T) (*cli, *store.Store, *queue.Manager) {
	t.Helper()
	cfg := testenv.AWS(t)
	t.Setenv("AWS_ENDPOINT_URL", localaws.Endpoint())
	table := testenv.Table(t, cfg)
	st := store.New(dynamodb.NewFromConfig(cfg), table)
	qm := queue.New(sqs.NewFromConfig(cfg), resources.Names{Stage: "c" + testenv.UniqueName("")[:8]})
	_, err := qm.EnsureDeadLetterQueue(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = qm.DeleteDeadLetterQueue(context.Background()) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	deps := httpapi.Deps{
		Store: st, Queues: qm, Log: log, Now: time.Now, Settings: httpapi.DefaultSettings(),
		Dispatcher: &dispatch.Dispatcher{Store: st, Sender: qm, Log: log, Now: time.Now},
	}
	srv := httptest.NewServer(httpapi.Authenticate(&auth.Authenticator{Store: st}, log, httpapi.NewHandler(deps)))
	t.Cleanup(srv.Close)

	boot := &cli{t: t, env: map[string]string{"RM_TABLE": table}}
	boot.ok(nil, "tenant", "create", "acme")
	var key struct {
		Key string `json:"key"`
	}
	boot.ok(&key, "apikey", "create", "--tenant", "acme", "--role", "admin")
	return &cli{t: t, env: map[string]string{"RM_API_URL": srv.URL, "RM_API_KEY": key.Key}}, st, qm
}

func TestEverydayCommandsAgainstTheAPI(t *testing.T) {
	c, st, qm := apiServer(t)
	ctx := context.Background()

	var repo domain.Repository
	c.ok(&repo, "repositories", "create", "main", "--backend", "local", "--location", "/srv/restic", "--description", "the NAS")
	assert.Equal(t, "main", repo.Name)
	assert.Regexp(t, `(?m)^main\s+local\s+/srv/restic\s+1$`, c.ok(nil, "repositories", "list", "-o", "table"))
	var overdue domain.Repository
	c.ok(&overdue, "repositories", "create", "weekly", "--backend", "local", "--location", "/srv/weekly", "--check-overdue-after-days", "14")
	assert.Equal(t, 14, overdue.CheckOverdueAfterDays)
	var health domain.RepositoryHealth
	c.ok(&health, "repositories", "health", "weekly")
	assert.Equal(t, 14, health.CheckOverdueAfterDays)
	assert.Empty(t, health.History)
	at := time.Now().UTC()
	require.NoError(t, st.RecordHealth(ctx, "acme", store.HealthReport{Repository: "weekly", At: at, AgentID: domain.NewID(at),
		OverdueAfter: overdue.OverdueAfter(), Stats: &domain.RepoStats{RawDataSize: 4096, FileCount: 12, SnapshotsCount: 3},
		Check: &domain.CheckResult{At: at, OK: true, RunID: domain.NewID(at), AgentID: domain.NewID(at)}}))
	healthTable := c.ok(nil, "repositories", "health", "weekly", "-o", "table")
	assert.Regexp(t, `(?m)^weekly\s+4096\s+12\s+3\s`, healthTable, "the current health")
	assert.Regexp(t, `(?m)^`+at.Format(time.DateOnly)+`\s+4096\s+12\s+3\s+true$`, healthTable, "today's point")

	dir := t.TempDir()
	file := filepath.Join(dir, "nightly.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
name: nightly
repository: main
paths: [/etc, /srv]
schedule: {cron: "30 2 * * *", timezone: Europe/Berlin}
retention: {keepDaily: 7, keepWeekly: 4}
`), 0o600))
	var created domain.Policy
	c.ok(&created, "policies", "apply", "-f", file)
	assert.Equal(t, int64(1), created.Version)
	assert.Equal(t, []string{"/etc", "/srv"}, created.Paths)

	// Applying again replaces the policy of that name.
	require.NoError(t, os.WriteFile(file, []byte(`
name: nightly
repository: main
paths: [/etc, /srv]
excludes: ["*.tmp"]
schedule: {cron: "30 2 * * *", timezone: Europe/Berlin}
retention: {keepDaily: 14}
`), 0o600))
	var replaced domain.Policy
	c.ok(&replaced, "policies", "apply", "-f", file)
	assert.Equal(t, created.ID, replaced.ID)
	assert.Equal(t, int64(2), replaced.Version)
	assert.Equal(t, []string{"*.tmp"}, replaced.Excludes)
	assert.Equal(t, domain.Retention{KeepDaily: 14}, replaced.Retention)

	// A broken file is refused with every field named.
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("name: broken\nrepository: main\npaths: [relative]\nschedule: {interval: 10s}\nretention: {}\n"), 0o600))
	_, errOut, err := c.run("policies", "apply", "-f", bad)
	require.Error(t, err)
	assert.Contains(t, errOut, "422 unprocessable")
	for _, field := range []string{"paths[0]", "schedule.interval", "retention"} {
		assert.Contains(t, errOut, field)
	}
	require.NoError(t, os.WriteFile(bad, []byte("name: broken\ncolour: red\n"), 0o600))
	_, errOut, err = c.run("policies", "apply", "-f", bad)
	require.Error(t, err)
	assert.Contains(t, errOut, "colour: unknown field")

	table := c.ok(nil, "policies", "list", "-o", "table")
	assert.Regexp(t, `(?m)^ID\s+NAME\s+ENABLED\s+REPOSITORY`, table)
	assert.Contains(t, table, "nightly")
	var byName domain.Policy
	c.ok(&byName, "policies", "get", "nightly")
	assert.Equal(t, created.ID, byName.ID)

	// An agent enrolls with a token the CLI made.
	var token struct {
		domain.EnrollmentToken
		Token string `json:"token"`
	}
	c.ok(&token, "tokens", "create", "--max-uses", "2", "--expires-in", "2h", "--label", "site=fra1")
	assert.Equal(t, map[string]string{"site": "fra1"}, token.Labels)
	now := time.Now().UTC()
	agent, err := st.RegisterAgent(ctx, "acme", token.ID, domain.Agent{
		ID: domain.NewID(now), Hostname: "web-1", OS: "linux", Arch: "amd64", AgentVersion: "1.0.0", Labels: token.Labels,
		Status: domain.AgentOnline, LastSeenAt: &now, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60, SecretHash: auth.Hash(auth.NewSecret()),
	})
	require.NoError(t, err)
	q, err := qm.Ensure(ctx, "acme", agent.ID)
	require.NoError(t, err)
	t.Cleanup(func() { _ = qm.Delete(context.Background(), "acme", agent.ID) })
	_, err = st.ModifyAgent(ctx, "acme", agent.ID, func(a *domain.Agent) error { a.QueueURL = q.URL; return nil })
	require.NoError(t, err)

	var agents []domain.Agent
	c.ok(&agents, "agents", "list", "--status", "online", "--label", "site:fra1")
	require.Len(t, agents, 1)
	assert.Equal(t, agent.ID, agents[0].ID)
	assert.Regexp(t, agent.ID+`\s+web-1\s+online`, c.ok(nil, "agents", "list", "-o", "table"))
	var one domain.Agent
	c.ok(&one, "agents", "get", agent.ID)
	assert.Equal(t, "web-1", one.Hostname)

	assignTable := c.ok(nil, "assign", "nightly", agent.ID, "-o", "table")
	assert.Regexp(t, agent.ID+`\s+backup\s+20`, assignTable)

	var task domain.Task
	c.ok(&task, "tasks", "run", "--type", "backup", "--policy", "nightly", "--agent", agent.ID)
	assert.Equal(t, domain.TaskQueued, task.Status)
	assert.Equal(t, created.ID, task.PolicyID)
	var restore domain.Task
	c.ok(&restore, "tasks", "run", "--type", "restore", "--repository", "main", "--agent", agent.ID,
		"--snapshot", "latest", "--target", "/srv/restore", "--include", "/etc/hosts", "--verify")
	assert.Equal(t, domain.TaskParams{SnapshotID: "latest", Target: "/srv/restore", IncludePaths: []string{"/etc/hosts"}, Verify: true}, restore.Params)
	var tasks []domain.Task
	c.ok(&tasks, "tasks", "list", "--agent", agent.ID, "--type", "backup")
	require.Len(t, tasks, 1)
	assert.Equal(t, task.ID, tasks[0].ID)
	var cancelled domain.Task
	c.ok(&cancelled, "tasks", "cancel", restore.ID)
	assert.Equal(t, domain.TaskCancelled, cancelled.Status)
	var got domain.Task
	c.ok(&got, "tasks", "get", restore.ID)
	assert.Equal(t, domain.TaskCancelled, got.Status)
	_, errOut, err = c.run("tasks", "cancel", restore.ID)
	require.Error(t, err)
	assert.Contains(t, errOut, "409 conflict")

	// Browsing: an ls task, the stored tree page by page, a selective restore.
	var lsTask domain.Task
	c.ok(&lsTask, "snapshots", "ls", "--agent", agent.ID, "--repository", "main", "--snapshot", "4f8a2c1e", "--path", "/etc")
	assert.Equal(t, domain.TaskLs, lsTask.Type)
	assert.Equal(t, domain.TaskParams{SnapshotID: "4f8a2c1e", Path: "/etc"}, lsTask.Params)
	_, errOut, err = c.run("snapshots", "tree", "--agent", agent.ID, "--snapshot", "4f8a2c1e", "--path", "/etc")
	require.Error(t, err)
	assert.Contains(t, errOut, "run an ls task")
	snapID := strings.Repeat("4f8a2c1e", 8)
	var entries []domain.ListingEntry
	for i := range 120 {
		entries = append(entries, domain.ListingEntry{Name: fmt.Sprintf("f%03d", i), Type: domain.EntryFile, Size: uint64(i), Mode: 0o644, MTime: now})
	}
	chunk, err := store.EncodeChunk(domain.DirChunk{Dir: "/etc", Entries: entries})
	require.NoError(t, err)
	listRun := domain.NewID(now)
	_, err = st.UploadListingChunks(ctx, "acme", store.ListingUpload{
		Listing: domain.Listing{AgentID: agent.ID, SnapshotID: snapID, Path: "/etc", TaskID: lsTask.ID, RunID: listRun, ExpiresAt: time.Now().Add(time.Hour)},
		Chunks:  []store.EncodedChunk{chunk}, MaxBytes: 1 << 20,
	})
	require.NoError(t, err)
	_, err = st.FinishListing(ctx, "acme", agent.ID, listRun, now)
	require.NoError(t, err)
	var all []domain.ListingEntry
	c.ok(&all, "snapshots", "tree", "--agent", agent.ID, "--snapshot", "4f8a2c1e", "--path", "/etc", "--all")
	require.Len(t, all, 120, "--all follows the cursors")
	assert.Equal(t, "/etc/f119", all[119].Path)
	var page struct {
		SnapshotID string                `json:"snapshotId"`
		Items      []domain.ListingEntry `json:"items"`
		NextCursor string                `json:"nextCursor"`
	}
	c.ok(&page, "snapshots", "tree", "--agent", agent.ID, "--snapshot", "4f8a2c1e", "--path", "/etc", "--limit", "7")
	assert.Equal(t, snapID, page.SnapshotID)
	assert.Len(t, page.Items, 7)
	assert.NotEmpty(t, page.NextCursor)
	var sel domain.Task
	c.ok(&sel, "snapshots", "restore", "--agent", agent.ID, "--repository", "main", "--snapshot", "4f8a2c1e", "--include", "/etc/f001", "--include", "/etc/f002")
	assert.Equal(t, domain.TaskParams{SnapshotID: "4f8a2c1e", IncludePaths: []string{"/etc/f001", "/etc/f002"}}, sel.Params)
	_, errOut, err = c.run("snapshots", "restore", "--agent", agent.ID, "--repository", "main", "--snapshot", "4f8a2c1e", "--include", "/etc/../root")
	require.Error(t, err)
	assert.Contains(t, errOut, "params.includePaths[0]")

	// A run the agent reported, with its log.
	run, err := st.CreateRun(ctx, "acme", domain.Run{ID: domain.NewID(now), AgentID: agent.ID, TaskID: task.ID, PolicyID: created.ID,
		Type: domain.TaskBackup, Attempt: 1, Status: domain.TaskSucceeded, StartedAt: now, Summary: &domain.Summary{SnapshotID: "4f8a2c1e", FilesNew: 3}})
	require.NoError(t, err)
	for seq, lines := range [][]string{{"open repository"}, {"processed 3 files", "snapshot 4f8a2c1e saved"}} {
		_, err := st.AppendLog(ctx, "acme", domain.LogChunk{RunID: run.ID, Seq: int64(seq), Lines: lines, ExpiresAt: now.Add(24 * time.Hour)})
		require.NoError(t, err)
	}
	var runs []domain.Run
	c.ok(&runs, "runs", "list", "--policy", "nightly")
	require.Len(t, runs, 1)
	assert.Regexp(t, run.ID+`\s+backup\s+succeeded`, c.ok(nil, "runs", "list", "-o", "table"))
	var gotRun domain.Run
	c.ok(&gotRun, "runs", "get", run.ID)
	assert.Equal(t, "4f8a2c1e", gotRun.Summary.SnapshotID)
	assert.Equal(t, "open repository\nprocessed 3 files\nsnapshot 4f8a2c1e saved\n", c.ok(nil, "logs", run.ID, "-o", "table"))
	var chunks []domain.LogChunk
	c.ok(&chunks, "logs", run.ID)
	assert.Len(t, chunks, 2)

	var overview map[string]any
	c.ok(&overview, "overview")
	assert.Equal(t, float64(1), lookup(overview, "agents.online"))
	assert.Equal(t, float64(0), lookup(overview, "overdueSlots"))
	assert.Regexp(t, `(?m)^AGENTS\s+ONLINE\s+OFFLINE\s+BACKING OFF\s+SUCCEEDED 24H\s+FAILED 24H\s+RUNNING\s+OVERDUE\n1\s+1\s+0\s+0\s`,
		c.ok(nil, "overview", "-o", "table"))

	// Deleting a policy that is assigned needs --force.
	_, errOut, err = c.run("policies", "delete", "nightly")
	require.Error(t, err)
	assert.Contains(t, errOut, "409 conflict")
	c.ok(nil, "policies", "delete", "nightly", "--force")
	_, errOut, err = c.run("policies", "get", "nightly")
	require.Error(t, err)
	assert.Contains(t, errOut, "no policy named nightly")

	// Without the API's address or key nothing is sent.
	for _, env := range []map[string]string{{"RM_API_KEY": "rm_x"}, {"RM_API_URL": "http://127.0.0.1:1"}} {
		_, errOut, err := (&cli{t: t, env: env}).run("agents", "list")
		require.Error(t, err)
		assert.Contains(t, errOut, "RM_API_")
	}
	c.env["RM_API_KEY"] = auth.Format(auth.PrefixAPIKey, domain.NewID(now), auth.NewSecret())
	_, errOut, err = c.run("agents", "list")
	require.Error(t, err)
	assert.Contains(t, errOut, "401 unauthorized")
}

func TestRecountRebuildsTheCountersOfATenantOlderThanThem(t *testing.T) {
	cfg := testenv.AWS(t)
	t.Setenv("AWS_ENDPOINT_URL", localaws.Endpoint())
	table := testenv.Table(t, cfg)
	db := dynamodb.NewFromConfig(cfg)
	st := store.New(db, table)
	ctx := context.Background()
	c := &cli{t: t, env: map[string]string{"RM_TABLE": table}}
	c.ok(nil, "tenant", "create", "acme")

	// An agent of a deployment that kept no counters yet: its counter is removed behind the
	// store's back.
	now := time.Now().UTC()
	tok := domain.EnrollmentToken{ID: domain.NewID(now), SecretHash: "token-hash", MaxUses: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	require.NoError(t, st.CreateEnrollmentToken(ctx, "acme", tok))
	_, err := st.RegisterAgent(ctx, "acme", tok.ID, domain.Agent{
		ID: domain.NewID(now), Hostname: "web-1", OS: "linux", Arch: "amd64", AgentVersion: "1.0.0", Status: domain.AgentOnline,
		LastSeenAt: &now, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60, SecretHash: "agent-hash", CreatedAt: now, UpdatedAt: now,
	})
	require.NoError(t, err)
	_, err = db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &table, Key: map[string]types.AttributeValue{
		resources.AttrPK: &types.AttributeValueMemberS{Value: "TENANT#acme"}, resources.AttrSK: &types.AttributeValueMemberS{Value: "COUNTS#AGENTS"},
	}})
	require.NoError(t, err)
	counts, err := st.Counts(ctx, "acme", store.RunWindowStart(now))
	require.NoError(t, err)
	require.Zero(t, counts.Agents.Total(), "no counters yet")

	var o map[string]any
	c.ok(&o, "tenant", "recount", "acme")
	assert.Equal(t, float64(1), lookup(o, "agents.total"))
	assert.Equal(t, float64(1), lookup(o, "agents.online"))
	counts, err = st.Counts(ctx, "acme", store.RunWindowStart(now))
	require.NoError(t, err)
	assert.Equal(t, int64(1), counts.Agents.Online, "the overview counts from here on")
	assert.Regexp(t, `(?m)^AGENTS\s+ONLINE\s+OFFLINE.*\n1\s+1\s+0\s`, c.ok(nil, "tenant", "recount", "acme", "-o", "table"))

	_, errOut, err := c.run("tenant", "recount", "nobody")
	require.Error(t, err)
	assert.Contains(t, errOut, "no tenant nobody")
}
