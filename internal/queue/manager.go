// Package queue owns the SQS queues of a deployment: each agent's task queue and the one
// dead-letter queue all of them redrive to, created, found and deleted idempotently (Manager);
// task messages sent to agent queues in batches (Manager.SendBatch); dead letters read and
// removed (Manager.ReceiveDeadLetters, Manager.DeleteDeadLetter); and the agent's side of its
// queue: long-poll receive, visibility extension and delete (Consumer). A missing agent queue is
// reported as domain.ErrNotFound, a missing dead-letter queue as ErrNoDeadLetterQueue; no SDK
// error type leaves the package as something a caller has to inspect.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// ErrNoDeadLetterQueue means the deployment's dead-letter queue does not exist. The CDK stack
// creates it; local set-up and tests create it with Manager.EnsureDeadLetterQueue. It is a fault
// of the deployment, not of a request, so it is not domain.ErrNotFound.
var ErrNoDeadLetterQueue = errors.New("the deployment's dead-letter queue does not exist")

// AgentQueue locates an agent's task queue.
type AgentQueue struct {
	URL string
	ARN string
}

// DeadLetterQueue locates the deployment's dead-letter queue.
type DeadLetterQueue struct {
	URL string
	ARN string
}

// Manager creates, finds and deletes agents' queues, sends task messages to them and reads the
// deployment's dead-letter queue. It is safe for concurrent use.
type Manager struct {
	client *sqs.Client
	names  resources.Names

	// dlq is the dead-letter queue once found. Its URL and ARN follow from its name, so they
	// stay right for the Manager's life.
	mu  sync.Mutex
	dlq DeadLetterQueue
}

// New returns a Manager for the queues of the deployment that names describes.
func New(client *sqs.Client, names resources.Names) *Manager {
	return &Manager{client: client, names: names}
}

// checkDeployment checks that names describe a deployment whose queue names fit SQS's limit.
func (m *Manager) checkDeployment() error {
	if !resources.ValidStage(m.names.Stage) {
		return fmt.Errorf("invalid stage %q", m.names.Stage)
	}
	if m.names.Tenant != "" && !domain.ValidTenantID(m.names.Tenant) {
		return fmt.Errorf("invalid deployment tenant %q", m.names.Tenant)
	}
	return nil
}

// queueName derives the name of an agent's queue after checking that every part is one the
// 80-character budget of resources.Names allows for.
func (m *Manager) queueName(tenantID, agentID string) (string, error) {
	if err := m.checkDeployment(); err != nil {
		return "", err
	}
	if !domain.ValidTenantID(tenantID) {
		return "", fmt.Errorf("invalid tenant id %q", tenantID)
	}
	if !domain.ValidID(agentID) {
		return "", fmt.Errorf("invalid agent id %q", agentID)
	}
	return m.names.AgentQueueName(tenantID, agentID), nil
}

// Ensure creates the agent's task queue unless it exists, with a redrive policy naming the
// deployment's dead-letter queue, which must exist (ErrNoDeadLetterQueue otherwise). When SQS
// refuses to create the queue because it exists with other attributes, its attributes are
// brought in line with resources instead. Calling it again returns the same queue.
//
// SQS refuses to recreate a queue name for 60 seconds after it was deleted; Ensure then fails
// and may be retried later.
func (m *Manager) Ensure(ctx context.Context, tenantID, agentID string) (AgentQueue, error) {
	name, err := m.queueName(tenantID, agentID)
	if err != nil {
		return AgentQueue{}, fmt.Errorf("ensure queue: %w", err)
	}
	dlq, err := m.deadLetterQueue(ctx)
	if err != nil {
		return AgentQueue{}, fmt.Errorf("ensure queue %s: %w", name, err)
	}
	var q AgentQueue
	if q.URL, q.ARN, err = m.ensureQueue(ctx, name, resources.QueueAttributes(dlq.ARN)); err != nil {
		return AgentQueue{}, err
	}
	return q, nil
}

// EnsureDeadLetterQueue creates the deployment's dead-letter queue unless it exists, and
// returns it. Local set-up and tests call it; in the cloud the CDK stack creates the queue, and
// the functions may not create queues outside the agent queues' prefix.
func (m *Manager) EnsureDeadLetterQueue(ctx context.Context) (DeadLetterQueue, error) {
	if err := m.checkDeployment(); err != nil {
		return DeadLetterQueue{}, fmt.Errorf("ensure dead-letter queue: %w", err)
	}
	var dlq DeadLetterQueue
	var err error
	if dlq.URL, dlq.ARN, err = m.ensureQueue(ctx, m.names.DeadLetterQueueName(), resources.DLQAttributes()); err != nil {
		return DeadLetterQueue{}, err
	}
	m.mu.Lock()
	m.dlq = dlq
	m.mu.Unlock()
	return dlq, nil
}

// DeleteDeadLetterQueue deletes the deployment's dead-letter queue and the dead letters in it,
// for tests and local tear-down; a queue that does not exist counts as deleted. Agent queues
// that still redrive to it keep messages they would have moved there.
func (m *Manager) DeleteDeadLetterQueue(ctx context.Context) error {
	if err := m.checkDeployment(); err != nil {
		return fmt.Errorf("delete dead-letter queue: %w", err)
	}
	m.mu.Lock()
	m.dlq = DeadLetterQueue{}
	m.mu.Unlock()
	return m.deleteQueue(ctx, m.names.DeadLetterQueueName())
}

// DeadLetterQueue finds the deployment's dead-letter queue: ErrNoDeadLetterQueue when it does
// not exist. Once found it is remembered, so Ensure costs no extra request per agent.
func (m *Manager) DeadLetterQueue(ctx context.Context) (DeadLetterQueue, error) {
	if err := m.checkDeployment(); err != nil {
		return DeadLetterQueue{}, fmt.Errorf("find dead-letter queue: %w", err)
	}
	return m.deadLetterQueue(ctx)
}

func (m *Manager) deadLetterQueue(ctx context.Context) (DeadLetterQueue, error) {
	m.mu.Lock()
	dlq := m.dlq
	m.mu.Unlock()
	if dlq.URL != "" {
		return dlq, nil
	}
	// Two first callers may both look it up; they find the same queue.
	name := m.names.DeadLetterQueueName()
	url, err := m.queueURL(ctx, name)
	if errors.Is(err, domain.ErrNotFound) {
		return DeadLetterQueue{}, fmt.Errorf("%w: %s", ErrNoDeadLetterQueue, name)
	}
	if err != nil {
		return DeadLetterQueue{}, err
	}
	arn, err := m.queueARN(ctx, url)
	if errors.Is(err, domain.ErrNotFound) {
		return DeadLetterQueue{}, fmt.Errorf("%w: %s", ErrNoDeadLetterQueue, name)
	}
	if err != nil {
		return DeadLetterQueue{}, err
	}
	dlq = DeadLetterQueue{URL: url, ARN: arn}
	m.mu.Lock()
	m.dlq = dlq
	m.mu.Unlock()
	return dlq, nil
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

// Lookup finds the agent's task queue; domain.ErrNotFound when it does not exist.
func (m *Manager) Lookup(ctx context.Context, tenantID, agentID string) (AgentQueue, error) {
	name, err := m.queueName(tenantID, agentID)
	if err != nil {
		return AgentQueue{}, fmt.Errorf("look up queue: %w", err)
	}
	var q AgentQueue
	if q.URL, err = m.queueURL(ctx, name); err != nil {
		return AgentQueue{}, err
	}
	if q.ARN, err = m.queueARN(ctx, q.URL); err != nil {
		return AgentQueue{}, err
	}
	return q, nil
}

// Delete deletes the agent's task queue with any messages in it; dead letters it already
// redrove stay in the deployment's dead-letter queue. A queue that does not exist counts as
// deleted, so Delete can be repeated.
//
// SQS takes up to 60 seconds to finish a deletion; until then Lookup may still find the queue.
func (m *Manager) Delete(ctx context.Context, tenantID, agentID string) error {
	name, err := m.queueName(tenantID, agentID)
	if err != nil {
		return fmt.Errorf("delete queue: %w", err)
	}
	return m.deleteQueue(ctx, name)
}

func (m *Manager) deleteQueue(ctx context.Context, name string) error {
	url, err := m.queueURL(ctx, name)
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = m.client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	if err != nil && !hasCode(err, codesNoQueue...) {
		return fmt.Errorf("delete queue %s: %w", name, err)
	}
	return nil
}

// ReceiveDeadLetters receives up to maxMessages (1–10) messages from the deployment's
// dead-letter queue, waiting up to wait (0–20 s) for the first, as Consumer.Receive does. The
// messages stay hidden for the queue's visibility timeout; one that is not deleted with
// DeleteDeadLetter comes back after it.
func (m *Manager) ReceiveDeadLetters(ctx context.Context, maxMessages int32, wait time.Duration) ([]Message, error) {
	c, err := m.deadLetterConsumer(ctx)
	if err != nil {
		return nil, fmt.Errorf("receive dead letters: %w", err)
	}
	msgs, err := c.Receive(ctx, maxMessages, wait)
	return msgs, m.deadLetterQueueGone(err)
}

// DeleteDeadLetter removes the dead letter received with receiptHandle, once it is dealt with.
func (m *Manager) DeleteDeadLetter(ctx context.Context, receiptHandle string) error {
	c, err := m.deadLetterConsumer(ctx)
	if err != nil {
		return fmt.Errorf("delete dead letter: %w", err)
	}
	return m.deadLetterQueueGone(c.Delete(ctx, receiptHandle))
}

// deadLetterQueueGone turns err, from a request to the remembered dead-letter queue, into
// ErrNoDeadLetterQueue when the queue has gone, and forgets the queue so the next call looks it
// up again.
func (m *Manager) deadLetterQueueGone(err error) error {
	if !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	m.mu.Lock()
	m.dlq = DeadLetterQueue{}
	m.mu.Unlock()
	return fmt.Errorf("%w: %s", ErrNoDeadLetterQueue, m.names.DeadLetterQueueName())
}

func (m *Manager) deadLetterConsumer(ctx context.Context) (*Consumer, error) {
	if err := m.checkDeployment(); err != nil {
		return nil, err
	}
	dlq, err := m.deadLetterQueue(ctx)
	if err != nil {
		return nil, err
	}
	return NewConsumer(m.client, dlq.URL), nil
}

// DeadLetters returns up to maxMessages (1–10) messages from the deployment's dead-letter queue
// for inspection and leaves them there: they are made visible again at once, so each call counts
// as one more receive of them. Like any receive, it may return fewer messages than the queue
// holds.
func (m *Manager) DeadLetters(ctx context.Context, maxMessages int32) ([]Message, error) {
	c, err := m.deadLetterConsumer(ctx)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	url := c.URL()
	// A one-second long poll asks every SQS server, where a short poll samples only some.
	msgs, err := c.Receive(ctx, maxMessages, time.Second)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", m.deadLetterQueueGone(err))
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
