// Package queue owns the per-agent SQS queues: each agent's task queue and its dead-letter queue,
// created and deleted idempotently (Manager), task messages sent to them in batches
// (Manager.SendBatch), and the agent's side of a queue: long-poll receive, visibility extension
// and delete (Consumer). A missing queue is reported as domain.ErrNotFound; no SDK error type
// leaves the package as something a caller has to inspect.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// AgentQueue locates an agent's task queue and its dead-letter queue.
type AgentQueue struct {
	URL    string
	ARN    string
	DLQURL string
	DLQARN string
}

// Manager creates, finds and deletes agents' queues and sends task messages to them. It is safe
// for concurrent use.
type Manager struct {
	client *sqs.Client
	names  resources.Names
}

// New returns a Manager for the queues of the deployment that names describes.
func New(client *sqs.Client, names resources.Names) *Manager {
	return &Manager{client: client, names: names}
}

// queueNames derives the names of an agent's queue and dead-letter queue after checking that
// every part is one the 80-character budget of resources.Names allows for.
func (m *Manager) queueNames(tenantID, agentID string) (queue, dlq string, err error) {
	if !resources.ValidStage(m.names.Stage) {
		return "", "", fmt.Errorf("invalid stage %q", m.names.Stage)
	}
	if !domain.ValidTenantID(tenantID) {
		return "", "", fmt.Errorf("invalid tenant id %q", tenantID)
	}
	if !domain.ValidID(agentID) {
		return "", "", fmt.Errorf("invalid agent id %q", agentID)
	}
	return m.names.AgentQueueName(tenantID, agentID), m.names.AgentDLQName(tenantID, agentID), nil
}

// Ensure creates the agent's dead-letter queue and then its task queue, whose redrive policy
// names the dead-letter queue, unless they exist. When SQS refuses to create a queue because
// one exists with other attributes, that queue's attributes are brought in line with resources
// instead. Calling it again returns the same queues.
//
// SQS refuses to recreate a queue name for 60 seconds after it was deleted; Ensure then fails
// and may be retried later.
func (m *Manager) Ensure(ctx context.Context, tenantID, agentID string) (AgentQueue, error) {
	name, dlqName, err := m.queueNames(tenantID, agentID)
	if err != nil {
		return AgentQueue{}, fmt.Errorf("ensure queues: %w", err)
	}
	var q AgentQueue
	if q.DLQURL, q.DLQARN, err = m.ensureQueue(ctx, dlqName, resources.DLQAttributes()); err != nil {
		return AgentQueue{}, err
	}
	if q.URL, q.ARN, err = m.ensureQueue(ctx, name, resources.QueueAttributes(q.DLQARN)); err != nil {
		return AgentQueue{}, err
	}
	return q, nil
}

func (m *Manager) ensureQueue(ctx context.Context, name string, attrs map[string]string) (url, arn string, err error) {
	out, err := m.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	switch {
	case err == nil:
		url = aws.ToString(out.QueueUrl)
	case hasCode(err, codesQueueExists...):
		// SQS refuses CreateQueue when an attribute differs from the existing queue's, which
		// happens after resources changes and, on some implementations, when the stored
		// RedrivePolicy merely formats maxReceiveCount differently. Update it instead.
		if url, err = m.queueURL(ctx, name); err != nil {
			return "", "", err
		}
		_, err = m.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: attrs})
		if err != nil {
			return "", "", fmt.Errorf("update queue %s: %w", name, translate(err))
		}
	case hasCode(err, codesDeletedRecently...):
		return "", "", fmt.Errorf("create queue %s: deleted less than a minute ago, try again later: %w", name, err)
	default:
		return "", "", fmt.Errorf("create queue %s: %w", name, err)
	}
	if arn, err = m.queueARN(ctx, url); err != nil {
		return "", "", err
	}
	return url, arn, nil
}

// Lookup finds the agent's queues. It returns domain.ErrNotFound unless both exist.
func (m *Manager) Lookup(ctx context.Context, tenantID, agentID string) (AgentQueue, error) {
	name, dlqName, err := m.queueNames(tenantID, agentID)
	if err != nil {
		return AgentQueue{}, fmt.Errorf("look up queues: %w", err)
	}
	var q AgentQueue
	if q.URL, err = m.queueURL(ctx, name); err != nil {
		return AgentQueue{}, err
	}
	if q.DLQURL, err = m.queueURL(ctx, dlqName); err != nil {
		return AgentQueue{}, err
	}
	if q.ARN, err = m.queueARN(ctx, q.URL); err != nil {
		return AgentQueue{}, err
	}
	if q.DLQARN, err = m.queueARN(ctx, q.DLQURL); err != nil {
		return AgentQueue{}, err
	}
	return q, nil
}

// Delete deletes the agent's task queue and then its dead-letter queue, with any messages in
// them. Queues that do not exist count as deleted, so Delete can be repeated.
//
// SQS takes up to 60 seconds to finish a deletion; until then Lookup may still find the queues.
func (m *Manager) Delete(ctx context.Context, tenantID, agentID string) error {
	name, dlqName, err := m.queueNames(tenantID, agentID)
	if err != nil {
		return fmt.Errorf("delete queues: %w", err)
	}
	// The task queue goes first so that no queue is left redriving into a deleted one.
	for _, n := range []string{name, dlqName} {
		url, err := m.queueURL(ctx, n)
		if errors.Is(err, domain.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		_, err = m.client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
		if err != nil && !hasCode(err, codesNoQueue...) {
			return fmt.Errorf("delete queue %s: %w", n, err)
		}
	}
	return nil
}

// DeadLetters returns up to maxMessages (1–10) messages from the agent's dead-letter queue for
// inspection and leaves them there: they are made visible again at once, so each call counts as
// one more receive of them. Like any receive, it may return fewer messages than the queue holds.
func (m *Manager) DeadLetters(ctx context.Context, tenantID, agentID string, maxMessages int32) ([]Message, error) {
	_, dlqName, err := m.queueNames(tenantID, agentID)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	url, err := m.queueURL(ctx, dlqName)
	if err != nil {
		return nil, err
	}
	// A one-second long poll asks every SQS server, where a short poll samples only some.
	msgs, err := NewConsumer(m.client, url).Receive(ctx, maxMessages, time.Second)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i, msg := range msgs {
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			ReceiptHandle:     aws.String(msg.ReceiptHandle),
			VisibilityTimeout: 0,
		}
	}
	out, err := m.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{
		QueueUrl: aws.String(url),
		Entries:  entries,
	})
	if err != nil {
		return nil, fmt.Errorf("release dead letters: %w", translate(err))
	}
	if len(out.Failed) > 0 {
		f := out.Failed[0]
		return nil, fmt.Errorf("release dead letters: %d of %d failed, first: %s: %s",
			len(out.Failed), len(entries), aws.ToString(f.Code), aws.ToString(f.Message))
	}
	return msgs, nil
}

// queueURL resolves a queue name; a missing queue is domain.ErrNotFound.
func (m *Manager) queueURL(ctx context.Context, name string) (string, error) {
	out, err := m.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("get queue url %s: %w", name, translate(err))
	}
	return aws.ToString(out.QueueUrl), nil
}

func (m *Manager) queueARN(ctx context.Context, url string) (string, error) {
	out, err := m.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", fmt.Errorf("get queue arn %s: %w", url, translate(err))
	}
	arn := out.Attributes[string(types.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", fmt.Errorf("get queue arn %s: no QueueArn in response", url)
	}
	return arn, nil
}
