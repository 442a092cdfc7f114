package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnvReadsEveryVariable(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		"RM_TABLE": "restic-monitor-prod", "RM_STAGE": "prod", "RM_TENANT": "acme",
		"RM_AGENT_ROLE_ARN": "arn:aws:iam::123456789012:role/agents", "RM_LOG_RETENTION_DAYS": "7",
		"RM_HEARTBEAT_SECONDS": "30", "LOG_LEVEL": "debug", "RM_EVENT_BUS": "ops-bus", "RM_AUDIT_RETENTION": "90d",
		"RM_LISTING_RETENTION_DAYS": "2", "RM_LISTING_MAX_MIB": "16",
	}))
	require.NoError(t, err)
	assert.Equal(t, Config{
		Table: "restic-monitor-prod", Stage: "prod", Tenant: "acme", AgentRoleARN: "arn:aws:iam::123456789012:role/agents",
		LogRetention: 7 * 24 * time.Hour, HeartbeatInterval: 30 * time.Second, LogLevel: slog.LevelDebug, EventBus: "ops-bus",
		AuditRetention:   90 * 24 * time.Hour,
		ListingRetention: 2 * 24 * time.Hour, ListingMaxMiB: 16,
	}, c)
	assert.Equal(t, "rm-prod-", c.Names().QueuePrefix())
}

func TestFromEnvDefaults(t *testing.T) {
	c, err := FromEnv(env(map[string]string{"RM_TABLE": "t", "RM_STAGE": "dev"}))
	require.NoError(t, err)
	assert.Equal(t, 30*24*time.Hour, c.LogRetention)
	assert.Equal(t, time.Minute, c.HeartbeatInterval)
	assert.Equal(t, 365*24*time.Hour, c.AuditRetention)
	assert.Equal(t, 7*24*time.Hour, c.ListingRetention)
	assert.Equal(t, 64, c.ListingMaxMiB)
	assert.Equal(t, slog.LevelInfo, c.LogLevel)
	assert.Equal(t, "restic-monitor-dev-events", c.EventBus, "the bus the stack creates")
}

func TestFromEnvReportsEveryProblemAtOnce(t *testing.T) {
	_, err := FromEnv(env(map[string]string{
		"RM_STAGE": "Prod-1", "RM_TENANT": "A", "RM_LOG_RETENTION_DAYS": "0", "RM_HEARTBEAT_SECONDS": "x", "LOG_LEVEL": "loud",
		"RM_AUDIT_RETENTION":        "forever",
		"RM_LISTING_RETENTION_DAYS": "0", "RM_LISTING_MAX_MIB": "lots",
	}))
	require.Error(t, err)
	for _, want := range []string{"RM_TABLE", "RM_STAGE", "RM_TENANT", "RM_LOG_RETENTION_DAYS", "RM_HEARTBEAT_SECONDS", "LOG_LEVEL", "RM_AUDIT_RETENTION", "RM_LISTING_RETENTION_DAYS", "RM_LISTING_MAX_MIB"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestTheDeadLetterDrainerUsesTheCoresQueuesAndStore(t *testing.T) {
	c, err := FromEnv(env(map[string]string{"RM_TABLE": "restic-monitor-prod", "RM_STAGE": "prod"}))
	require.NoError(t, err)
	core := NewCore(c, aws.Config{Region: "eu-west-1"}, slog.New(slog.DiscardHandler))
	d := core.DeadLetterDrainer()
	assert.Same(t, core.Queues, d.Queue)
	assert.Same(t, core.Store, d.Tasks)
	assert.Same(t, core.Log, d.Log)
	assert.Equal(t, "restic-monitor-prod-agent-dlq", c.Names().DeadLetterQueueName(), "found by name, from RM_STAGE and RM_TENANT")
}

// TestNotifyConfigReadsTheSecretKeyFromSecretsManager goes through Secrets Manager as a deployed
// function does: the key is stored in a secret in the format the stack generates (43 characters
// of URL-safe base64), and only its ARN is in the environment.
func TestNotifyConfigReadsTheSecretKeyFromSecretsManager(t *testing.T) {
	awsCfg := testenv.AWS(t)
	ctx := context.Background()
	sm := secretsmanager.NewFromConfig(awsCfg)
	c, err := FromEnv(env(map[string]string{"RM_TABLE": "t", "RM_STAGE": "prod"}))
	require.NoError(t, err)
	core := NewCore(c, awsCfg, slog.New(slog.DiscardHandler))

	key := make([]byte, notify.SecretKeyBytes)
	_, _ = rand.Read(key)
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(testenv.UniqueName("rm-test-key-")),
		SecretString: aws.String(base64.RawURLEncoding.EncodeToString(key)),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = sm.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: out.ARN, ForceDeleteWithoutRecovery: aws.Bool(true)})
	})

	nc, err := core.NotifyConfig(ctx, env(map[string]string{"RM_SECRET_KEY_ARN": *out.ARN, "RM_NOTIFY_FROM": "alerts@example.com"}))
	require.NoError(t, err)
	assert.Equal(t, key, nc.SecretKey)
	assert.Equal(t, "alerts@example.com", nc.From, "the other settings still come from the environment")

	_, err = core.NotifyConfig(ctx, env(map[string]string{"RM_SECRET_KEY_ARN": *out.ARN, "RM_SECRET_KEY": base64.StdEncoding.EncodeToString(key)}))
	assert.ErrorContains(t, err, "not both")

	missing := strings.Replace(*out.ARN, "rm-test-key-", "rm-test-gone-", 1)
	_, err = core.NotifyConfig(ctx, env(map[string]string{"RM_SECRET_KEY_ARN": missing}))
	assert.ErrorContains(t, err, missing)

	wrong, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(testenv.UniqueName("rm-test-key-")), SecretString: aws.String("hunter2-not-a-key"),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = sm.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: wrong.ARN, ForceDeleteWithoutRecovery: aws.Bool(true)})
	})
	_, err = core.NotifyConfig(ctx, env(map[string]string{"RM_SECRET_KEY_ARN": *wrong.ARN}))
	require.ErrorContains(t, err, "32 bytes")
	assert.NotContains(t, err.Error(), "hunter2", "the secret's value never appears in an error")
}
