package queue

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// ListTenantQueues returns the IDs of the agents of tenantID that have a task queue, found by
// the queues' names rather than by the table, so that it also finds a queue whose agent was
// never stored (a registration that failed and could not remove it). Deleting a tenant uses it
// to leave no queue behind.
//
// SQS lists by name prefix, and the prefix of tenant "acme" also starts the names of tenant
// "acme-corp"'s queues; only a name whose rest is exactly an agent ID is the tenant's. SQS's
// listing is eventually consistent: a queue created or deleted in the last minute may be
// missing from it or still in it.
func (m *Manager) ListTenantQueues(ctx context.Context, tenantID string) ([]string, error) {
	if err := m.checkDeployment(); err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	if !domain.ValidTenantID(tenantID) {
		return nil, fmt.Errorf("list queues: invalid tenant id %q", tenantID)
	}
	prefix := m.names.AgentQueueName(tenantID, "")
	in := &sqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix), MaxResults: aws.Int32(1000)}
	var agents []string
	for {
		out, err := m.client.ListQueues(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list queues %s*: %w", prefix, translate(err))
		}
		for _, u := range out.QueueUrls {
			name := u[strings.LastIndex(u, "/")+1:]
			if agent, ok := strings.CutPrefix(name, prefix); ok && domain.ValidID(agent) {
				agents = append(agents, agent)
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return agents, nil
		}
		in.NextToken = out.NextToken
	}
}
