package queuetest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
	"github.com/restic-monitor/restic-monitor/internal/testenv/queuetest"
)

// agentQueue creates an agent's queue in a stage of the test's own.
func agentQueue(t *testing.T, client *sqs.Client) string {
	t.Helper()
	mgr := queue.New(client, resources.Names{Stage: "u" + testenv.UniqueName("")[:8]})
	_, err := mgr.EnsureDeadLetterQueue(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = mgr.DeleteDeadLetterQueue(context.Background()) })
	tenant, agent := testenv.UniqueName("t"), domain.NewID(time.Now())
	q, err := mgr.Ensure(t.Context(), tenant, agent)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mgr.Delete(context.Background(), tenant, agent) })
	return q.URL
}

func taskBodies(t *testing.T, n int) ([]queue.Outgoing, []string) {
	t.Helper()
	now := time.Now().UTC()
	msgs := make([]queue.Outgoing, n)
	ids := make([]string, n)
	for i := range msgs {
		ids[i] = domain.NewID(now)
		m, err := events.NewTaskMessage(domain.Task{
			ID: ids[i], TenantID: "acme", AgentID: domain.NewID(now), Repository: "main", Type: domain.TaskCheck,
			Status: domain.TaskPending, Attempt: 1, NotBefore: now, Deadline: now.Add(time.Hour),
		}, nil)
		require.NoError(t, err)
		body, err := m.Encode()
		require.NoError(t, err)
		msgs[i] = queue.Outgoing{ID: ids[i], Body: string(body)}
	}
	return msgs, ids
}

// Sending through SendBatchesTwice leaves every message in the queue at least twice, and an
// Inbox returns each once.
func TestSendBatchesTwiceDuplicatesAndTheInboxAbsorbsIt(t *testing.T) {
	t.Parallel()
	cfg := testenv.AWS(t)
	plain := sqs.NewFromConfig(cfg)
	url := agentQueue(t, plain)
	msgs, ids := taskBodies(t, 3)

	failures, err := queue.New(sqs.NewFromConfig(cfg, queuetest.SendBatchesTwice), resources.Names{}).SendBatch(t.Context(), url, msgs)
	require.NoError(t, err)
	require.Empty(t, failures)
	copies := map[string]int{}
	c := queue.NewConsumer(plain, url)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		got, err := c.Receive(t.Context(), queue.MaxReceiveMessages, time.Second)
		require.NoError(ct, err)
		for _, m := range got {
			copies[m.Body]++
			require.NoError(ct, c.Delete(t.Context(), m.ReceiptHandle))
		}
		for _, m := range msgs {
			assert.GreaterOrEqual(ct, copies[m.Body], 2, "copies of %s", m.ID)
		}
	}, time.Minute, 10*time.Millisecond)
	assert.Len(t, copies, len(msgs), "nothing but the messages sent")

	_, err = queue.New(sqs.NewFromConfig(cfg, queuetest.SendBatchesTwice), resources.Names{}).SendBatch(t.Context(), url, msgs)
	require.NoError(t, err)
	in := queuetest.NewInbox(t, plain, url)
	got := in.RequireTasks(ids[2], ids[0], ids[1])
	assert.Equal(t, []string{ids[2], ids[0], ids[1]}, queuetest.TaskIDs(got))

	// A message delivered again after it was taken is not new.
	_, err = queue.New(plain, resources.Names{}).SendBatch(t.Context(), url, msgs[:1])
	require.NoError(t, err)
	assert.Empty(t, in.Take())
}

// loseFirstReceiveAnswer is an HTTP client that drops the connection after SQS answered the
// first ReceiveMessage, as a network can: the SDK sends the receive again.
type loseFirstReceiveAnswer struct {
	lost atomic.Bool
}

func (l *loseFirstReceiveAnswer) Do(r *http.Request) (*http.Response, error) {
	receive := r.Header.Get("X-Amz-Target") == "AmazonSQS.ReceiveMessage"
	res, err := http.DefaultClient.Do(r)
	if err != nil || !receive || !l.lost.CompareAndSwap(false, true) {
		return res, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return nil, errors.New("read tcp: connection reset by peer")
}

// A receive whose answer was lost hides what it received; the Inbox waits for it to come back
// rather than take the queue for empty.
func TestTheInboxFindsWhatALostAnswerHid(t *testing.T) {
	t.Parallel()
	cfg := testenv.AWS(t)
	plain := sqs.NewFromConfig(cfg)
	url := agentQueue(t, plain)
	msgs, ids := taskBodies(t, 2)
	_, err := queue.New(plain, resources.Names{}).SendBatch(t.Context(), url, msgs)
	require.NoError(t, err)

	lossy := &loseFirstReceiveAnswer{}
	in := queuetest.NewInbox(t, sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.HTTPClient = lossy }), url)
	in.RequireTasks(ids...)
	assert.True(t, lossy.lost.Load(), "the first answer was lost")
}
