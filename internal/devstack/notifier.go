package devstack

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/restic-monitor/restic-monitor/internal/notify"
)

// Batching of the notifier's queue, as the Lambda's event source mapping does it: a batch is
// what arrives within batchWindow of its first message, up to batchSize messages, so the events
// one tick publishes reach a channel as one grouped message.
const (
	batchSize   = 100
	batchWindow = time.Second
	pollWait    = 20 // seconds, SQS's longest wait
)

// notifierLoop reads the notifier's queue and hands each batch to the notifier exactly as the
// Lambda's SQS event source does, deleting the messages only once the batch was handled: a
// batch that fails, or a process stopped mid-batch, is received again after the visibility
// timeout, and the notifier's dedupe keeps what was already sent.
type notifierLoop struct {
	sqs      *sqs.Client
	queueURL string
	queueARN string
	region   string
	notifier *notify.Notifier
	log      *slog.Logger
}

func (l *notifierLoop) run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		msgs, err := l.receive(ctx)
		if err == nil && len(msgs) > 0 {
			err = l.handle(ctx, msgs)
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		l.log.Error("notifier batch failed", "error", err, "failures", failures)
		// Back off with jitter, up to half a minute, so a broken store is not hammered.
		wait := min(time.Second<<min(failures, 5), 30*time.Second)
		wait = wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// receive long-polls for the first message, then gathers what else arrives within the window.
func (l *notifierLoop) receive(ctx context.Context) ([]sqstypes.Message, error) {
	var msgs []sqstypes.Message
	wait := int32(pollWait)
	var deadline time.Time
	for len(msgs) < batchSize {
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			wait = int32(min(left.Round(time.Second), time.Second) / time.Second)
		}
		res, err := l.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(l.queueURL), MaxNumberOfMessages: int32(min(10, batchSize-len(msgs))), WaitTimeSeconds: wait,
		})
		if err != nil {
			// What was received stays hidden until its visibility timeout and comes again.
			return nil, err
		}
		if len(res.Messages) == 0 {
			if deadline.IsZero() {
				continue
			}
			break
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(batchWindow)
		}
		msgs = append(msgs, res.Messages...)
	}
	return msgs, nil
}

func (l *notifierLoop) handle(ctx context.Context, msgs []sqstypes.Message) error {
	batch := events.SQSEvent{Records: make([]events.SQSMessage, len(msgs))}
	for i, m := range msgs {
		batch.Records[i] = events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			EventSource: "aws:sqs", EventSourceARN: l.queueARN, AWSRegion: l.region,
		}
	}
	raw, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	if err := l.notifier.HandleInvocation(ctx, raw); err != nil {
		return err
	}
	for start := 0; start < len(msgs); start += 10 {
		var entries []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range msgs[start:min(start+10, len(msgs))] {
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		// A message whose deletion fails is handled again later; dedupe keeps it from being sent twice.
		out, err := l.sqs.DeleteMessageBatch(context.WithoutCancel(ctx), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(l.queueURL), Entries: entries})
		if err != nil {
			return err
		}
		for _, f := range out.Failed {
			l.log.Warn("could not delete a handled notifier message", "code", aws.ToString(f.Code))
		}
	}
	l.log.Info("notifier batch handled", "messages", len(msgs))
	return nil
}
