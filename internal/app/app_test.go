package app

import (
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnvReadsEveryVariable(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		"RM_TABLE": "restic-monitor-prod", "RM_STAGE": "prod", "RM_TENANT": "acme",
		"RM_AGENT_ROLE_ARN": "arn:aws:iam::123456789012:role/agents", "RM_LOG_RETENTION_DAYS": "7",
		"RM_HEARTBEAT_SECONDS": "30", "LOG_LEVEL": "debug", "RM_EVENT_BUS": "ops-bus",
	}))
	require.NoError(t, err)
	assert.Equal(t, Config{
		Table: "restic-monitor-prod", Stage: "prod", Tenant: "acme", AgentRoleARN: "arn:aws:iam::123456789012:role/agents",
		LogRetention: 7 * 24 * time.Hour, HeartbeatInterval: 30 * time.Second, LogLevel: slog.LevelDebug, EventBus: "ops-bus",
	}, c)
	assert.Equal(t, "rm-prod-", c.Names().QueuePrefix())
}

func TestFromEnvDefaults(t *testing.T) {
	c, err := FromEnv(env(map[string]string{"RM_TABLE": "t", "RM_STAGE": "dev"}))
	require.NoError(t, err)
	assert.Equal(t, 30*24*time.Hour, c.LogRetention)
	assert.Equal(t, time.Minute, c.HeartbeatInterval)
	assert.Equal(t, slog.LevelInfo, c.LogLevel)
	assert.Equal(t, "restic-monitor-dev-events", c.EventBus, "the bus the stack creates")
}

func TestFromEnvReportsEveryProblemAtOnce(t *testing.T) {
	_, err := FromEnv(env(map[string]string{
		"RM_STAGE": "Prod-1", "RM_TENANT": "A", "RM_LOG_RETENTION_DAYS": "0", "RM_HEARTBEAT_SECONDS": "x", "LOG_LEVEL": "loud",
	}))
	require.Error(t, err)
	for _, want := range []string{"RM_TABLE", "RM_STAGE", "RM_TENANT", "RM_LOG_RETENTION_DAYS", "RM_HEARTBEAT_SECONDS", "LOG_LEVEL"} {
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
