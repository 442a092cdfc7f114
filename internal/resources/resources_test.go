package resources_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

func TestEnsureTableIsIdempotentAndMatchesDefinition(t *testing.T) {
	cfg := testenv.AWS(t)
	name := testenv.Table(t, cfg)
	client := dynamodb.NewFromConfig(cfg)
	ctx := context.Background()

	require.NoError(t, resources.EnsureTable(ctx, client, name), "second EnsureTable on an existing table")

	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	require.NoError(t, err)
	got := map[string][2]string{}
	for _, g := range out.Table.GlobalSecondaryIndexes {
		got[aws.ToString(g.IndexName)] = [2]string{aws.ToString(g.KeySchema[0].AttributeName), aws.ToString(g.KeySchema[1].AttributeName)}
	}
	for _, ix := range resources.Table.Indexes {
		require.Equal(t, [2]string{ix.PartitionKey, ix.SortKey}, got[ix.Name], "index %s", ix.Name)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	require.NoError(t, err)
	require.Equal(t, resources.Table.TTLAttribute, aws.ToString(ttl.TimeToLiveDescription.AttributeName))
}

func TestQueueNamesFitSQSLimit(t *testing.T) {
	tenant := "t234567890123456789012345678901x"
	agent := "01JDZZZZZZZZZZZZZZZZZZZZZZ"
	require.Len(t, tenant, 32)
	shared := resources.Names{Stage: "abcdefghij"}
	own := resources.Names{Stage: "abcdefghij", Tenant: tenant}
	require.LessOrEqual(t, len(shared.AgentQueueName(tenant, agent)), 80)
	require.LessOrEqual(t, len(own.DeadLetterQueueName()), 80, own.DeadLetterQueueName())
	require.True(t, resources.ValidStage("prod"))
	require.False(t, resources.ValidStage("Prod-1"))
}

func TestTheDeadLetterQueueIsNamedAfterTheTableAndOutsideTheAgentQueues(t *testing.T) {
	for _, n := range []resources.Names{{Stage: "prod"}, {Stage: "dev", Tenant: "acme"}} {
		got := n.DeadLetterQueueName()
		require.Equal(t, n.TableName()+"-agent-dlq", got)
		require.False(t, strings.HasPrefix(got, n.QueuePrefix()), "%s: the agents' role, limited to %s, must not reach it", got, n.QueuePrefix())
	}
	require.Equal(t, "restic-monitor-prod-agent-dlq", resources.Names{Stage: "prod"}.DeadLetterQueueName())
	require.Equal(t, "restic-monitor-acme-dev-agent-dlq", resources.Names{Stage: "dev", Tenant: "acme"}.DeadLetterQueueName())
}
