package daemon_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
)

// assertQueueEmpty checks that the agent's queue holds no message, visible or in flight.
func assertQueueEmpty(t *testing.T, cp *agenttest.ControlPlane, agentID string) {
	t.Helper()
	out, err := cp.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(cp.AgentQueue(agentID).URL),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	require.NoError(t, err)
	assert.Equal(t, "0", out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	assert.Equal(t, "0", out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
}
