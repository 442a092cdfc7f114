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

// queueEmpty reports whether the agent's queue holds no message, visible or in flight.
func queueEmpty(t *testing.T, cp *agenttest.ControlPlane, agentID string) bool {
	t.Helper()
	visible, hidden := queueDepth(t, cp, agentID)
	return visible == "0" && hidden == "0"
}

func queueDepth(t *testing.T, cp *agenttest.ControlPlane, agentID string) (visible, hidden string) {
	t.Helper()
	out, err := cp.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(cp.AgentQueue(agentID).URL),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	require.NoError(t, err)
	return out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)],
		out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]
}

// assertQueueEmpty checks that the agent's queue holds no message, visible or in flight.
func assertQueueEmpty(t *testing.T, cp *agenttest.ControlPlane, agentID string) {
	t.Helper()
	visible, hidden := queueDepth(t, cp, agentID)
	assert.Equal(t, "0", visible, "visible messages")
	assert.Equal(t, "0", hidden, "messages in flight")
}
