package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Receive and visibility limits of SQS.
const (
	MaxReceiveMessages = 10
	MaxReceiveWait     = 20 * time.Second
	MaxVisibility      = 12 * time.Hour
)

// Message is a received message.
type Message struct {
	ID   string
	Body string
	// ReceiptHandle names this delivery of the message to ExtendVisibility and Delete.
	ReceiptHandle string
	// ReceiveCount is how many times the message has been delivered, this time included;
	// SQS counts approximately.
	ReceiveCount int
	SentAt       time.Time
	// Attributes are the message's String and Number message attributes.
	Attributes map[string]string
}

// Consumer receives from one queue: an agent's side of its task queue. It needs nothing but the
// queue's URL, so a client holding only short-lived credentials for that queue can use it.
type Consumer struct {
	client *sqs.Client
	url    string
}

// NewConsumer returns a Consumer of the queue at queueURL.
func NewConsumer(client *sqs.Client, queueURL string) *Consumer {
	return &Consumer{client: client, url: queueURL}
}

// URL is the queue's URL.
func (c *Consumer) URL() string { return c.url }

// Receive returns up to maxMessages (1–10) messages, waiting up to wait (0–20 s, rounded up to
// whole seconds) for the first one to arrive; it returns no messages and no error when none
// arrives in time. A wait of 0 leaves the wait to the queue's ReceiveMessageWaitTimeSeconds,
// which agent queues leave at 0: a short poll, which may miss messages that are there.
//
// Received messages stay hidden from further receives for the queue's visibility timeout
// unless extended or deleted. Cancelling ctx ends the wait at once with the context's error; a
// message SQS delivered into a cancelled request reappears after its visibility timeout.
func (c *Consumer) Receive(ctx context.Context, maxMessages int32, wait time.Duration) ([]Message, error) {
	if maxMessages < 1 || maxMessages > MaxReceiveMessages {
		return nil, fmt.Errorf("receive: max messages %d is not between 1 and %d", maxMessages, MaxReceiveMessages)
	}
	if wait < 0 || wait > MaxReceiveWait {
		return nil, fmt.Errorf("receive: wait %s is not between 0 and %s", wait, MaxReceiveWait)
	}
	out, err := c.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(c.url),
		MaxNumberOfMessages: maxMessages,
		WaitTimeSeconds:     ceilSeconds(wait),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
		MessageAttributeNames: []string{"All"},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", c.url, translate(err))
	}
	msgs := make([]Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msg, err := convertMessage(m)
		if err != nil {
			return nil, fmt.Errorf("receive from %s: %w", c.url, err)
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

func convertMessage(m types.Message) (Message, error) {
	msg := Message{
		ID:            aws.ToString(m.MessageId),
		Body:          aws.ToString(m.Body),
		ReceiptHandle: aws.ToString(m.ReceiptHandle),
	}
	if s, ok := m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]; ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			return Message{}, fmt.Errorf("message %s: receive count %q: %w", msg.ID, s, err)
		}
		msg.ReceiveCount = n
	}
	if s, ok := m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)]; ok {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Message{}, fmt.Errorf("message %s: sent timestamp %q: %w", msg.ID, s, err)
		}
		msg.SentAt = time.UnixMilli(ms).UTC()
	}
	for k, v := range m.MessageAttributes {
		if v.StringValue == nil {
			continue // binary attributes are never sent by this package
		}
		if msg.Attributes == nil {
			msg.Attributes = make(map[string]string, len(m.MessageAttributes))
		}
		msg.Attributes[k] = *v.StringValue
	}
	return msg, nil
}

// ExtendVisibility hides the message received with receiptHandle for d (0–12 h, rounded up to
// whole seconds) from now on, so that it is not delivered again while it is being worked on. A
// d of 0 makes the message visible again at once: a way to hand it back. SQS refuses to keep a
// message hidden for more than 12 hours after it was received. A message that is no longer in
// flight is ErrNotInFlight.
func (c *Consumer) ExtendVisibility(ctx context.Context, receiptHandle string, d time.Duration) error {
	if d < 0 || d > MaxVisibility {
		return fmt.Errorf("extend visibility: %s is not between 0 and %s", d, MaxVisibility)
	}
	_, err := c.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(c.url),
		ReceiptHandle:     aws.String(receiptHandle),
		VisibilityTimeout: ceilSeconds(d),
	})
	if err != nil {
		return fmt.Errorf("extend visibility in %s: %w", c.url, translate(err))
	}
	return nil
}

// Delete removes the message received with receiptHandle from the queue, once its work is done
// and recorded. SQS may accept a stale handle without deleting anything, or report it as
// ErrNotInFlight.
func (c *Consumer) Delete(ctx context.Context, receiptHandle string) error {
	_, err := c.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{
		QueueUrl:      aws.String(c.url),
		ReceiptHandle: aws.String(receiptHandle),
	})
	if err != nil {
		return fmt.Errorf("delete message from %s: %w", c.url, translate(err))
	}
	return nil
}

func ceilSeconds(d time.Duration) int32 {
	return int32((d + time.Second - 1) / time.Second)
}
