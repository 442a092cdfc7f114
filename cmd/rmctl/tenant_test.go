package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// deletionOut is what rmctl prints of a deletion.
type deletionOut struct {
	TenantID string           `json:"tenantId"`
	Status   string           `json:"status"`
	Removed  map[string]int64 `json:"removed"`
}

func TestTenantDeleteThroughTheAPI(t *testing.T) {
	c, _, _ := apiServer(t)
	var tenant struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	c.ok(&tenant, "tenant", "get")
	assert.Equal(t, "acme", tenant.ID)
	assert.Equal(t, "active", tenant.Status)
	c.ok(nil, "repositories", "create", "main", "--backend", "local", "--location", "/srv/restic")

	for args, want := range map[string][]string{
		"no confirmation":   {"tenant", "delete"},
		"another tenant":    {"tenant", "delete", "--confirm", "globex"},
		"--no-wait via API": {"tenant", "delete", "--confirm", "acme", "--no-wait"},
	} {
		_, errOut, err := c.run(want...)
		require.Error(t, err, args)
		assert.Contains(t, errOut, map[string]string{
			"no confirmation": `"confirm" not set`, "another tenant": "400 invalid_request", "--no-wait via API": "goes with --direct",
		}[args], args)
	}

	out, errOut, err := c.run("tenant", "delete", "--confirm", "acme")
	require.NoError(t, err, errOut)
	assert.Contains(t, errOut, "goes on in the scheduler")
	var d deletionOut
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	assert.Equal(t, "deleting", d.Status)
	assert.Equal(t, int64(1), d.Removed["repositories"])
	c.ok(&tenant, "tenant", "get")
	assert.Equal(t, "deleting", tenant.Status)
	// The audit entries of the repository and of the deletion itself go with the tenant.
	assert.Regexp(t, `acme\s+acme\s+deleting\s+\S+\s+auditEntries=2,repositories=1`, c.ok(nil, "tenant", "get", "-o", "table"))
	_, errOut, err = c.run("repositories", "create", "other", "--backend", "local", "--location", "/srv")
	require.Error(t, err)
	assert.Contains(t, errOut, "409 conflict")
}

func TestTenantDeleteDirectlyAgainstTheTableAndQueues(t *testing.T) {
	cfg := testenv.AWS(t)
	t.Setenv("AWS_ENDPOINT_URL", localaws.Endpoint())
	ctx := context.Background()
	table := testenv.Table(t, cfg)
	stage := "r" + testenv.UniqueName("")[:8]
	st := store.New(dynamodb.NewFromConfig(cfg), table)
	qm := queue.New(sqs.NewFromConfig(cfg), resources.Names{Stage: stage})
	_, err := qm.EnsureDeadLetterQueue(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = qm.DeleteDeadLetterQueue(context.Background()) })
	c := &cli{t: t, env: map[string]string{"RM_TABLE": table, "RM_STAGE": stage}}

	// Each tenant has an admin key (lost, as far as the operator goes) and an agent with a queue.
	enroll := func(tenant string) string {
		t.Helper()
		c.ok(nil, "tenant", "create", tenant)
		c.ok(nil, "apikey", "create", "--tenant", tenant, "--role", "admin")
		now := time.Now().UTC()
		tokenID := domain.NewID(now)
		require.NoError(t, st.CreateEnrollmentToken(ctx, tenant, domain.EnrollmentToken{ID: tokenID, SecretHash: "h", MaxUses: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
		a := domain.Agent{ID: domain.NewID(now), Hostname: "web-1", OS: "linux", Arch: "amd64", AgentVersion: "1.0.0", Status: domain.AgentOnline,
			LastSeenAt: &now, Limits: domain.DefaultLimits(), HeartbeatIntervalSeconds: 60, SecretHash: auth.Hash(auth.NewSecret())}
		_, err := qm.Ensure(ctx, tenant, a.ID)
		require.NoError(t, err)
		t.Cleanup(func() { _ = qm.Delete(context.Background(), tenant, a.ID) })
		_, err = st.RegisterAgent(ctx, tenant, tokenID, a)
		require.NoError(t, err)
		return a.ID
	}
	enroll("acme")
	globexAgent := enroll("globex")

	_, errOut, err := (&cli{t: t, env: map[string]string{"RM_TABLE": table}}).run("tenant", "delete", "--confirm", "acme", "--direct")
	require.Error(t, err)
	assert.Contains(t, errOut, "RM_STAGE")

	// A deletion the API began three minutes ago and that stopped: rmctl finishes it at once.
	past := func() time.Time { return time.Now().Add(-3 * time.Minute) }
	earlier := store.New(dynamodb.NewFromConfig(cfg), table)
	earlier.Now = past
	began, err := (&fleet.Service{Store: earlier, Queues: qm, Now: past}).DeleteTenant(ctx, "acme", time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, store.TenantDeleting, began.Status)
	var d deletionOut
	c.ok(&d, "tenant", "delete", "--confirm", "acme", "--direct")
	assert.Equal(t, deletionOut{TenantID: "acme", Status: "deleted", Removed: map[string]int64{
		"agents": 1, "agentCredentials": 1, "enrollmentTokens": 1, "queues": 1, "apiKeys": 1,
		"capacityItems": 1, "counterItems": 1,
	}}, d)
	_, err = st.GetTenantDeletion(ctx, "acme")
	assert.ErrorIs(t, err, domain.ErrNotFound)
	// SQS may list a deleted queue for up to a minute.
	assert.Eventually(t, func() bool {
		queues, err := qm.ListTenantQueues(ctx, "acme")
		return err == nil && len(queues) == 0
	}, 90*time.Second, time.Second, "the tenant's queues are gone")

	// Run again, it confirms that nothing is left.
	var again deletionOut
	c.ok(&again, "tenant", "delete", "--confirm", "acme", "--direct")
	assert.Equal(t, deletionOut{TenantID: "acme", Status: "deleted", Removed: map[string]int64{}}, again)

	// --no-wait makes one pass and leaves the end to the scheduler.
	var globex deletionOut
	c.ok(&globex, "tenant", "delete", "--confirm", "globex", "--direct", "--no-wait")
	assert.Equal(t, "deleting", globex.Status)
	assert.Equal(t, int64(1), globex.Removed["agentCredentials"])
	assert.Equal(t, int64(1), globex.Removed["queues"], "the queue of agent %s", globexAgent)
}
