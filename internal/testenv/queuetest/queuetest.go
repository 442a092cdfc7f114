// Package queuetest reads agent queues in tests as SQS delivers them: at least once. A standard
// queue may hold a message twice (an SDK retry of a send whose answer was lost) or deliver one
// again after it was deleted, so a test asserts that every task it expects arrives and nothing
// else does, never how many copies arrive. Exactly once is what the store and the API
// guarantee, and tests assert it there. A receive whose answer was lost hides what it received
// until its visibility lapses, so an empty answer right after one proves nothing. It is
// imported only by tests.
package queuetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/queue"
)

const (
	// emptyWait is how long a receive waits before a queue counts as empty. A long poll asks
	// every SQS server, where a short one may miss messages that are there.
	emptyWait = time.Second
	// lostHide is how long a received message stays hidden when the answer that carried it is
	// lost: the SDK then sends the receive again, and the retry does not see the message until
	// this has passed.
	lostHide = 3 * time.Second
)

// Inbox is one queue read by a test: each Take receives and deletes what waits there.
type Inbox struct {
	t      testing.TB
	client *sqs.Client
	url    string
	taken  map[string]bool // bodies already returned
}

// NewInbox reads the queue at queueURL with client.
func NewInbox(t testing.TB, client *sqs.Client, queueURL string) *Inbox {
	return &Inbox{t: t, client: client, url: queueURL, taken: map[string]bool{}}
}

// Take receives every message waiting in the queue, deletes it, and returns the task messages
// not seen before, in the order they arrived. Copies of one message are one message: a body
// the Inbox returned already, in this Take or an earlier one, is not returned again. A body that
// is no task message fails the test.
func (in *Inbox) Take() []events.TaskMessage {
	in.t.Helper()
	ctx := context.Background()
	var out []events.TaskMessage
	// The queue is empty once a receive finds nothing and no message can be hidden by a receive
	// whose answer was lost.
	var hiddenUntil time.Time
	for {
		res, err := in.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(in.url),
			MaxNumberOfMessages: queue.MaxReceiveMessages,
			WaitTimeSeconds:     int32(emptyWait / time.Second),
			VisibilityTimeout:   int32(lostHide / time.Second),
		})
		require.NoError(in.t, err, "receive from %s", in.url)
		if attempts, ok := retry.GetAttemptResults(res.ResultMetadata); ok && len(attempts.Results) > 1 {
			hiddenUntil = time.Now().Add(lostHide)
		}
		if len(res.Messages) == 0 && time.Now().After(hiddenUntil) {
			return out
		}
		for _, m := range res.Messages {
			_, err := in.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(in.url), ReceiptHandle: m.ReceiptHandle})
			require.NoError(in.t, err, "delete from %s", in.url)
			body := aws.ToString(m.Body)
			if in.taken[body] {
				continue
			}
			in.taken[body] = true
			tm, err := events.DecodeTask([]byte(body))
			require.NoError(in.t, err, "message %s: %s", aws.ToString(m.MessageId), body)
			out = append(out, tm)
		}
	}
}

// TaskIDs lists the task IDs of msgs, in order.
func TaskIDs(msgs []events.TaskMessage) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.TaskID
	}
	return ids
}

// RequireTasks takes what waits in the queue and fails the test unless it is one message for
// each of taskIDs (in any order), however many copies of each arrived. It returns the messages
// in the order of taskIDs.
func (in *Inbox) RequireTasks(taskIDs ...string) []events.TaskMessage {
	in.t.Helper()
	msgs := in.Take()
	got := TaskIDs(msgs)
	require.ElementsMatch(in.t, taskIDs, got, "task messages in the queue (got first)")
	byID := make([]events.TaskMessage, len(taskIDs))
	for i, id := range taskIDs {
		byID[i] = msgs[slices.Index(got, id)]
	}
	return byID
}

// SendBatchesTwice is an option for sqs.NewFromConfig that sends every SendMessageBatch request
// twice, as the SDK does when it retries a request whose answer was lost: each message then
// waits in its queue twice. The caller sees the second answer.
func SendBatchesTwice(o *sqs.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("sendBatchesTwice",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if _, ok := in.Parameters.(*sqs.SendMessageBatchInput); ok {
					if _, _, err := next.HandleInitialize(ctx, in); err != nil {
						return middleware.InitializeOutput{}, middleware.Metadata{}, err
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	})
}
