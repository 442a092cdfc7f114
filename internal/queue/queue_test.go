package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// agentQueues is one test's agent in a deployment of its own: the deployment's dead-letter
// queue and the agent's queue are named uniquely for the test and deleted after it.
type agentQueues struct {
	cfg           aws.Config
	client        *sqs.Client
	names         resources.Names
	mgr           *queue.Manager
	dlq           queue.DeadLetterQueue
	tenant, agent string
}

func newAgentQueues(t *testing.T, names resources.Names, tenant string) *agentQueues {
	t.Helper()
	cfg := testenv.AWS(t)
	client := sqs.NewFromConfig(cfg)
	a := &agentQueues{
		cfg:    cfg,
		client: client,
		names:  names,
		mgr:    queue.New(client, names),
		tenant: tenant,
		agent:  domain.NewID(time.Now()),
	}
	var err error
	a.dlq, err = a.mgr.EnsureDeadLetterQueue(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, a.mgr.DeleteDeadLetterQueue(context.Background()), "delete the dead-letter queue after the test")
	})
	t.Cleanup(func() {
		assert.NoError(t, a.mgr.Delete(context.Background(), a.tenant, a.agent), "delete the agent's queue after the test")
	})
	return a
}

// uniqueStage names a stage no other test uses, so that each test has a dead-letter queue of
// its own.
func uniqueStage() string { return "q" + testenv.UniqueName("")[:8] }

// newAgent returns an agent of a fresh tenant in a deployment of its own.
func newAgent(t *testing.T) *agentQueues {
	return newAgentQueues(t, resources.Names{Stage: uniqueStage()}, testenv.UniqueName("t"))
}

// sibling returns another agent, of another tenant, in a's deployment.
func (a *agentQueues) sibling(t *testing.T) *agentQueues {
	t.Helper()
	b := *a
	b.tenant, b.agent = testenv.UniqueName("t"), domain.NewID(time.Now())
	t.Cleanup(func() {
		assert.NoError(t, b.mgr.Delete(context.Background(), b.tenant, b.agent), "delete the agent's queue after the test")
	})
	return &b
}

func (a *agentQueues) ensure(t *testing.T) queue.AgentQueue {
	t.Helper()
	q, err := a.mgr.Ensure(t.Context(), a.tenant, a.agent)
	require.NoError(t, err)
	return q
}

func (a *agentQueues) attributes(t *testing.T, url string) map[string]string {
	t.Helper()
	out, err := a.client.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	require.NoError(t, err)
	return out.Attributes
}

func (a *agentQueues) send(t *testing.T, url string, bodies ...string) {
	t.Helper()
	msgs := make([]queue.Outgoing, len(bodies))
	for i, b := range bodies {
		msgs[i] = queue.Outgoing{ID: fmt.Sprintf("m%d", i), Body: b}
	}
	failures, err := a.mgr.SendBatch(t.Context(), url, msgs)
	require.NoError(t, err)
	require.Empty(t, failures)
}

type initializeFunc = func(context.Context, middleware.InitializeInput, middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error)

// withAPIOption returns a client for cfg with one more middleware step in every operation.
func withAPIOption(cfg aws.Config, name string, fn initializeFunc) *sqs.Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc(name, fn), middleware.After)
		})
	})
}

func TestEnsureIsIdempotentAndRedrivesToTheDeploymentsDLQ(t *testing.T) {
	t.Parallel()
	a := newAgent(t)

	first := a.ensure(t)
	second := a.ensure(t)
	require.Equal(t, first, second)
	found, err := a.mgr.Lookup(t.Context(), a.tenant, a.agent)
	require.NoError(t, err)
	require.Equal(t, first, found)

	name := a.names.AgentQueueName(a.tenant, a.agent)
	assert.True(t, strings.HasSuffix(first.URL, "/"+name), "queue URL %s", first.URL)
	assert.True(t, strings.HasSuffix(first.ARN, ":"+name), "queue ARN %s", first.ARN)
	assert.True(t, strings.HasSuffix(a.dlq.ARN, ":"+a.names.DeadLetterQueueName()), "DLQ ARN %s", a.dlq.ARN)

	attrs := a.attributes(t, first.URL)
	assert.Equal(t, a.dlq.ARN, redriveTarget(t, attrs))
	assert.Equal(t, strconv.Itoa(resources.QueueVisibilityTimeoutSeconds), attrs["VisibilityTimeout"])
	assert.Equal(t, strconv.Itoa(resources.QueueRetentionSeconds), attrs["MessageRetentionPeriod"])
	assert.Equal(t, strconv.Itoa(resources.DLQRetentionSeconds), a.attributes(t, a.dlq.URL)["MessageRetentionPeriod"])

	// Another tenant's agent of the same deployment redrives to the same queue.
	b := a.sibling(t)
	other := b.ensure(t)
	require.NotEqual(t, first.URL, other.URL)
	assert.Equal(t, a.dlq.ARN, redriveTarget(t, b.attributes(t, other.URL)))
}

// redriveTarget returns the dead-letter queue a queue's RedrivePolicy names, after checking the
// policy's receive count.
func redriveTarget(t *testing.T, attrs map[string]string) string {
	t.Helper()
	var redrive struct {
		DeadLetterTargetArn string      `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.Number `json:"maxReceiveCount"` // SQS stores a number; a string is accepted too
	}
	require.NoError(t, json.Unmarshal([]byte(attrs["RedrivePolicy"]), &redrive), "RedrivePolicy %q", attrs["RedrivePolicy"])
	assert.Equal(t, strconv.Itoa(resources.MaxReceiveCount), redrive.MaxReceiveCount.String())
	return redrive.DeadLetterTargetArn
}

func TestEnsureDeadLetterQueueIsIdempotentAndFoundByAnyManager(t *testing.T) {
	t.Parallel()
	a := newAgent(t)

	again, err := a.mgr.EnsureDeadLetterQueue(t.Context())
	require.NoError(t, err)
	assert.Equal(t, a.dlq, again)
	assert.True(t, strings.HasSuffix(a.dlq.URL, "/"+a.names.DeadLetterQueueName()), "DLQ URL %s", a.dlq.URL)

	// A Manager that did not create the queue (a Lambda, where the stack did) finds it.
	found, err := queue.New(a.client, a.names).DeadLetterQueue(t.Context())
	require.NoError(t, err)
	assert.Equal(t, a.dlq, found)
}

func TestEnsureWithoutTheDeadLetterQueueCreatesNothing(t *testing.T) {
	t.Parallel()
	cfg := testenv.AWS(t)
	mgr := queue.New(sqs.NewFromConfig(cfg), resources.Names{Stage: uniqueStage()})
	tenant, agent := testenv.UniqueName("t"), domain.NewID(time.Now())

	_, err := mgr.Ensure(t.Context(), tenant, agent)
	require.ErrorIs(t, err, queue.ErrNoDeadLetterQueue)
	assert.NotErrorIs(t, err, domain.ErrNotFound, "a deployment fault, not a missing thing the caller asked for")
	_, err = mgr.Lookup(t.Context(), tenant, agent)
	require.ErrorIs(t, err, domain.ErrNotFound, "no agent queue without somewhere for its dead letters to go")

	_, err = mgr.DeadLetters(t.Context(), 1)
	require.ErrorIs(t, err, queue.ErrNoDeadLetterQueue)
	_, err = mgr.ReceiveDeadLetters(t.Context(), 1, 0)
	require.ErrorIs(t, err, queue.ErrNoDeadLetterQueue)
}

func TestADeletedDeadLetterQueueIsForgotten(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	_, err := a.mgr.DeadLetters(t.Context(), 1) // remembered from here on
	require.NoError(t, err)

	require.NoError(t, a.mgr.DeleteDeadLetterQueue(t.Context()))
	require.NoError(t, a.mgr.DeleteDeadLetterQueue(t.Context()), "second delete")
	// SQS may take up to a minute to forget a deleted queue.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := a.mgr.ReceiveDeadLetters(t.Context(), 1, 0)
		assert.ErrorIs(c, err, queue.ErrNoDeadLetterQueue)
	}, 70*time.Second, 200*time.Millisecond)
}

func TestEnsureUpdatesAQueueWhoseAttributesDiffer(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	q := a.ensure(t)
	_, err := a.client.SetQueueAttributes(t.Context(), &sqs.SetQueueAttributesInput{
		QueueUrl:   aws.String(q.URL),
		Attributes: map[string]string{"VisibilityTimeout": "30"},
	})
	require.NoError(t, err)

	// SQS answers CreateQueue with QueueAlreadyExists when an attribute differs from the
	// existing queue's; not every emulator does, so the answer is given here.
	name := a.names.AgentQueueName(a.tenant, a.agent)
	var refused atomic.Int32
	client := withAPIOption(a.cfg, "refuseCreate", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if c, ok := in.Parameters.(*sqs.CreateQueueInput); ok && aws.ToString(c.QueueName) == name {
			refused.Add(1)
			return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{
				Code:    "QueueAlreadyExists",
				Message: "A queue already exists with the same name and a different value for attribute VisibilityTimeout",
			}
		}
		return next.HandleInitialize(ctx, in)
	})

	got, err := queue.New(client, a.names).Ensure(t.Context(), a.tenant, a.agent)
	require.NoError(t, err)
	require.Equal(t, int32(1), refused.Load())
	assert.Equal(t, q, got)
	assert.Equal(t, strconv.Itoa(resources.QueueVisibilityTimeoutSeconds), a.attributes(t, q.URL)["VisibilityTimeout"])
}

func TestLookupOfAnAgentWithoutAQueueIsNotFound(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	_, err := a.mgr.Lookup(t.Context(), a.tenant, a.agent)
	require.ErrorIs(t, err, domain.ErrNotFound)
}

func TestDeleteIsIdempotent(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	a.ensure(t)

	require.NoError(t, a.mgr.Delete(t.Context(), a.tenant, a.agent))
	require.NoError(t, a.mgr.Delete(t.Context(), a.tenant, a.agent), "second delete")
	// SQS may take up to a minute to forget a deleted queue.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := a.mgr.Lookup(t.Context(), a.tenant, a.agent)
		assert.ErrorIs(c, err, domain.ErrNotFound)
	}, 70*time.Second, 200*time.Millisecond)

	never := domain.NewID(time.Now())
	require.NoError(t, a.mgr.Delete(t.Context(), a.tenant, never), "deleting queues that never existed")

	// The deployment's dead-letter queue stays for the other agents.
	found, err := queue.New(a.client, a.names).DeadLetterQueue(t.Context())
	require.NoError(t, err)
	assert.Equal(t, a.dlq, found)
}

func TestSendBatchSendsTwentyFiveMessagesInThreeRequests(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	q := a.ensure(t)
	var requests atomic.Int32
	counting := withAPIOption(a.cfg, "countSendBatch", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if _, ok := in.Parameters.(*sqs.SendMessageBatchInput); ok {
			requests.Add(1)
		}
		return next.HandleInitialize(ctx, in)
	})

	msgs := make([]queue.Outgoing, 25)
	want := map[string]string{} // body -> task attribute
	for i := range msgs {
		id := fmt.Sprintf("task-%02d", i)
		msgs[i] = queue.Outgoing{ID: id, Body: "body of " + id, Attributes: map[string]string{"task": id}}
		want[msgs[i].Body] = id
	}
	sentAt := time.Now()
	failures, err := queue.New(counting, a.names).SendBatch(t.Context(), q.URL, msgs)
	require.NoError(t, err)
	require.Empty(t, failures)
	require.Equal(t, int32(3), requests.Load(), "SendMessageBatch requests")

	c := queue.NewConsumer(a.client, q.URL)
	got := map[string]string{} // copies of one message count once
	deadline := time.Now().Add(time.Minute)
	for len(got) < len(msgs) && time.Now().Before(deadline) {
		received, err := c.Receive(t.Context(), queue.MaxReceiveMessages, time.Second)
		require.NoError(t, err)
		for _, m := range received {
			got[m.Body] = m.Attributes["task"]
			assert.Equal(t, 1, m.ReceiveCount)
			assert.WithinDuration(t, sentAt, m.SentAt, time.Minute)
			require.NoError(t, c.Delete(t.Context(), m.ReceiptHandle))
		}
	}
	require.Equal(t, want, got)
}

func TestSendBatchToAMissingQueueReportsEveryMessage(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	q := a.ensure(t)
	// A queue URL of the same shape whose queue never existed.
	missing := strings.TrimSuffix(q.URL, a.names.AgentQueueName(a.tenant, a.agent)) +
		a.names.AgentQueueName(a.tenant, domain.NewID(time.Now()))

	msgs := make([]queue.Outgoing, 12)
	want := make([]string, len(msgs))
	for i := range msgs {
		want[i] = fmt.Sprintf("m%d", i)
		msgs[i] = queue.Outgoing{ID: want[i], Body: "b"}
	}
	// SQS fails the whole request (reported as domain.ErrNotFound), some emulators each entry;
	// either way every message comes back as not sent.
	failures, err := a.mgr.SendBatch(t.Context(), missing, msgs)
	if err != nil {
		require.ErrorIs(t, err, domain.ErrNotFound)
	}
	got := make([]string, len(failures))
	for i, f := range failures {
		got[i] = f.ID
	}
	require.ElementsMatch(t, want, got)
}

func TestReceiveReturnsAMessageSentDuringTheLongPoll(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	q := a.ensure(t)
	c := queue.NewConsumer(a.client, q.URL)

	sent := make(chan error, 1)
	time.AfterFunc(500*time.Millisecond, func() {
		_, err := a.mgr.SendBatch(context.Background(), q.URL, []queue.Outgoing{{ID: "late", Body: "arrived mid-wait"}})
		sent <- err
	})
	start := time.Now()
	msgs, err := c.Receive(t.Context(), 1, queue.MaxReceiveWait)
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.NoError(t, <-sent)
	require.Len(t, msgs, 1, "the poll waited for the message")
	assert.Equal(t, "arrived mid-wait", msgs[0].Body)
	// SQS stamps the message in whole milliseconds.
	assert.False(t, msgs[0].SentAt.Before(start.Truncate(time.Millisecond)), "sent at %s, after the poll began at %s", msgs[0].SentAt, start)
	assert.Less(t, elapsed, queue.MaxReceiveWait, "the poll returned when the message arrived, before its wait ended")
	require.NoError(t, c.Delete(t.Context(), msgs[0].ReceiptHandle))
}

func TestReceiveReturnsNothingWhenTheWaitEnds(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	c := queue.NewConsumer(a.client, a.ensure(t).URL)

	start := time.Now()
	msgs, err := c.Receive(t.Context(), queue.MaxReceiveMessages, time.Second)
	elapsed := time.Since(start)
	require.NoError(t, err)
	assert.Empty(t, msgs)
	assert.GreaterOrEqual(t, elapsed, 900*time.Millisecond, "the poll waited")
	assert.Less(t, elapsed, queue.MaxReceiveWait, "for its own wait, not the longest")
}

func TestReceiveEndsWhenTheContextIsCancelled(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	c := queue.NewConsumer(a.client, a.ensure(t).URL)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	msgs, err := c.Receive(ctx, 1, queue.MaxReceiveWait)
	elapsed := time.Since(start)
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, msgs)
	assert.Less(t, elapsed, queue.MaxReceiveWait, "a 20 s poll ended before its wait did")
}

// TestExtendVisibilityKeepsAMessageHiddenPastItsTimeout receives two messages and extends one:
// the other comes back once the queue's own timeout passed, the extended one does not.
func TestExtendVisibilityKeepsAMessageHiddenPastItsTimeout(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	q := a.ensure(t)
	// Two seconds instead of the real five minutes keeps the test short.
	_, err := a.client.SetQueueAttributes(t.Context(), &sqs.SetQueueAttributesInput{
		QueueUrl:   aws.String(q.URL),
		Attributes: map[string]string{"VisibilityTimeout": "2"},
	})
	require.NoError(t, err)
	a.send(t, q.URL, "long backup", "left alone")
	c := queue.NewConsumer(a.client, q.URL)

	// Each message is received, and the backup's extended as soon as it arrives.
	received := map[string]queue.Message{} // by body
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		msgs, err := c.Receive(t.Context(), queue.MaxReceiveMessages, time.Second)
		require.NoError(ct, err)
		for _, m := range msgs {
			if _, ok := received[m.Body]; ok {
				continue
			}
			received[m.Body] = m
			if m.Body == "long backup" {
				require.NoError(ct, c.ExtendVisibility(t.Context(), m.ReceiptHandle, 10*time.Minute))
			}
		}
		assert.Len(ct, received, 2)
	}, time.Minute, 10*time.Millisecond)
	backup, other := received["long backup"], received["left alone"]

	// The one left alone comes back after the queue's timeout; the extended one stays hidden.
	// Whatever comes back is hidden for good, so that only the backup can come back next.
	receiveUntil := func(id string, forbidden string) queue.Message {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			require.True(t, time.Now().Before(deadline), "message %s did not come back within a minute", id)
			msgs, err := c.Receive(t.Context(), queue.MaxReceiveMessages, time.Second)
			require.NoError(t, err)
			var found *queue.Message
			for _, m := range msgs {
				require.NotEqual(t, forbidden, m.ID, "the extended message came back")
				if m.ID == id {
					found = &m
					continue
				}
				require.NoError(t, c.ExtendVisibility(t.Context(), m.ReceiptHandle, 10*time.Minute))
			}
			if found != nil {
				return *found
			}
		}
	}
	back := receiveUntil(other.ID, backup.ID)
	require.NoError(t, c.ExtendVisibility(t.Context(), back.ReceiptHandle, 10*time.Minute))

	// A zero extension hands the message back at once.
	require.NoError(t, c.ExtendVisibility(t.Context(), backup.ReceiptHandle, 0))
	again := receiveUntil(backup.ID, "")
	assert.Equal(t, 2, again.ReceiveCount)
	require.NoError(t, c.Delete(t.Context(), again.ReceiptHandle))
}

func TestADeletedMessageIsNoLongerInFlight(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	q := a.ensure(t)
	a.send(t, q.URL, "done")
	c := queue.NewConsumer(a.client, q.URL)

	msgs, err := c.Receive(t.Context(), 1, queue.MaxReceiveWait)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	done := msgs[0]
	require.NoError(t, c.Delete(t.Context(), done.ReceiptHandle))

	err = c.ExtendVisibility(t.Context(), done.ReceiptHandle, time.Minute)
	require.ErrorIs(t, err, queue.ErrNotInFlight)
	// Another copy SQS may hold is another message; the deleted one is gone.
	msgs, err = c.Receive(t.Context(), queue.MaxReceiveMessages, time.Second)
	require.NoError(t, err)
	for _, m := range msgs {
		assert.NotEqual(t, done.ID, m.ID, "the deleted message came back")
	}
}

func TestMessagesNeverDeletedMoveToTheDeploymentsDLQ(t *testing.T) {
	t.Parallel()
	a := newAgent(t)
	b := a.sibling(t)
	ids := map[string]string{}   // message ID -> body, of every copy SQS held
	counts := map[string][]int{} // message ID -> its receive counts
	for _, agent := range []*agentQueues{a, b} {
		q := agent.ensure(t)
		agent.send(t, q.URL, "poison for "+agent.agent)
		c := queue.NewConsumer(agent.client, q.URL)
		// Received and handed back until the queue gives up on it: after MaxReceiveCount receives
		// it is gone.
		for i, seen := 0, false; ; i++ {
			require.Less(t, i, 4*resources.MaxReceiveCount, "the message never left the task queue")
			msgs, err := c.Receive(t.Context(), queue.MaxReceiveMessages, time.Second)
			require.NoError(t, err)
			if len(msgs) == 0 && seen {
				break
			}
			seen = seen || len(msgs) > 0
			for _, m := range msgs {
				ids[m.ID] = m.Body
				counts[m.ID] = append(counts[m.ID], m.ReceiveCount)
				require.NoError(t, c.ExtendVisibility(t.Context(), m.ReceiptHandle, 0), "hand back after receive %d", m.ReceiveCount)
			}
		}
	}
	bodies := map[string]bool{}
	for id, body := range ids {
		bodies[body] = true
		assert.Equal(t, []int{1, 2, 3, 4, 5}, counts[id], "receive counts of %s", id)
	}
	assert.Equal(t, map[string]bool{"poison for " + a.agent: true, "poison for " + b.agent: true}, bodies)

	// Both agents' dead letters are in the one queue; reading them leaves them there.
	peek := func() map[string]string {
		got := map[string]string{}
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			dead, err := a.mgr.DeadLetters(t.Context(), queue.MaxReceiveMessages)
			require.NoError(ct, err)
			for _, m := range dead {
				got[m.ID] = m.Body
			}
			require.Len(ct, got, len(ids))
		}, time.Minute, 100*time.Millisecond)
		return got
	}
	require.Equal(t, ids, peek())
	require.Equal(t, ids, peek(), "peeking again finds them still there")

	// Receiving and deleting them empties the queue.
	deleted := map[string]bool{}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		msgs, err := a.mgr.ReceiveDeadLetters(t.Context(), queue.MaxReceiveMessages, time.Second)
		require.NoError(ct, err)
		for _, m := range msgs {
			require.NoError(ct, a.mgr.DeleteDeadLetter(t.Context(), m.ReceiptHandle))
			deleted[m.ID] = true
		}
		require.Len(ct, deleted, len(ids))
	}, time.Minute, 100*time.Millisecond)
	left, err := a.mgr.DeadLetters(t.Context(), queue.MaxReceiveMessages)
	require.NoError(t, err)
	for _, m := range left {
		assert.NotContains(t, ids, m.ID, "a deleted dead letter came back")
	}
}

func TestQueueNamesFitTheLimitForTheLongestStageAndTenant(t *testing.T) {
	t.Parallel()
	stage := "q" + testenv.UniqueName("")[:9]
	tenant := testenv.UniqueName("t" + strings.Repeat("0", 19))
	require.True(t, resources.ValidStage(stage))
	require.Len(t, stage, 10)
	require.Len(t, tenant, 32)
	require.True(t, domain.ValidTenantID(tenant))
	// A tenant's own deployment has the longest dead-letter queue name.
	a := newAgentQueues(t, resources.Names{Stage: stage, Tenant: tenant}, tenant)

	q := a.ensure(t)
	for _, name := range []string{a.names.DeadLetterQueueName(), a.names.AgentQueueName(a.tenant, a.agent)} {
		assert.LessOrEqual(t, len(name), 80, "%s", name)
	}
	assert.True(t, strings.HasSuffix(a.dlq.URL, "/"+a.names.DeadLetterQueueName()), "DLQ URL %s", a.dlq.URL)
	assert.Equal(t, a.dlq.ARN, redriveTarget(t, a.attributes(t, q.URL)))
	found, err := a.mgr.Lookup(t.Context(), a.tenant, a.agent)
	require.NoError(t, err)
	assert.Equal(t, q, found)
}
