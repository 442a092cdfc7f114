package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// answerLoser drops the answer to the next request of an operation after the endpoint carried
// it out, as a connection reset while reading the response would. The SDK then sends the same
// request again.
type answerLoser struct {
	mu   sync.Mutex
	lose map[string]int // operation name → answers still to lose
	lost int
}

func (l *answerLoser) next(op string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lose[op]++
}

func (l *answerLoser) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("loseAnswer",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				op := awsmiddleware.GetOperationName(ctx)
				l.mu.Lock()
				defer l.mu.Unlock()
				if err == nil && l.lose[op] > 0 {
					l.lose[op]--
					l.lost++
					return out, md, errors.New("read tcp: connection reset by peer")
				}
				return out, md, err
			}), middleware.Before)
	})
}

// TestWritesWhoseAnswerWasLostAreNotReportedAsLost sends writes whose first answer is lost, so
// the SDK's retry finds the condition failing on the write's own earlier attempt. The store must
// report such a write as done, not as a conflict another writer caused.
func TestWritesWhoseAnswerWasLostAreNotReportedAsLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	loser := &answerLoser{lose: map[string]int{}}
	flaky := store.New(dynamodb.NewFromConfig(f.cfg, loser.option), f.st.Table())
	flaky.Now = f.st.Now
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant)

	loser.next("PutItem")
	assert.NoError(t, flaky.CreateTenant(f.ctx, domain.Tenant{ID: "beta", Name: "Beta", CreatedAt: f.now}), "CreateTenant")

	// The agent's update copies its backoff to its capacity item in the same transaction.
	loser.next("TransactWriteItems")
	changed := a
	changed.Labels = map[string]string{"env": "prod"}
	_, err := flaky.UpdateAgent(f.ctx, tenant, changed)
	assert.NoError(t, err, "UpdateAgent")

	// A heartbeat that leaves the backoff as it was is one write of the agent alone.
	loser.next("PutItem")
	updated, err := flaky.ModifyAgent(f.ctx, tenant, a.ID, func(a *domain.Agent) error {
		a.LastError = "disk almost full"
		return nil
	})
	assert.NoError(t, err, "ModifyAgent")

	// Tasks that occupy the agent, or stop doing so, are written with its capacity item.
	tk := f.task(tenant, a.ID)
	loser.next("TransactWriteItems")
	_, err = flaky.TransitionTask(f.ctx, tenant, tk.ID, domain.TaskCancelled, nil)
	assert.NoError(t, err, "TransitionTask")

	loser.next("TransactWriteItems")
	created, err := flaky.CreateTask(f.ctx, tenant, newTask(f.id(), a.ID, f.now))
	assert.NoError(t, err, "CreateTask")

	retry := f.task(tenant, a.ID, func(t *domain.Task) { t.Status, t.NextRetryAt = domain.TaskRetrying, ptr(f.now) })
	loser.next("TransactWriteItems")
	assert.Equal(t, []error{nil}, flaky.MarkTasksQueued(f.ctx, []domain.Task{retry}), "MarkTasksQueued of a retry")

	repo, err := f.st.GetRepository(f.ctx, tenant, "main-repo")
	require.NoError(t, err)
	loser.next("UpdateItem")
	repo.Description = "changed"
	_, err = flaky.UpdateRepository(f.ctx, tenant, repo)
	assert.NoError(t, err, "UpdateRepository")

	pending := f.task(tenant, a.ID)
	pending.Deadline = f.now.Add(2 * time.Hour)
	loser.next("UpdateItem")
	assert.Equal(t, []error{nil}, flaky.MarkTasksQueued(f.ctx, []domain.Task{pending}), "MarkTasksQueued")

	// Going offline is counted, so it is a transaction with the tenant's agent counters.
	loser.next("TransactWriteItems")
	offline, err := flaky.SetAgentOffline(f.ctx, updated, f.now)
	require.NoError(t, err)
	assert.True(t, offline, "SetAgentOffline: this writer took the agent offline")

	// A policy is written with its name guard and its repository's policy count.
	loser.next("TransactWriteItems")
	pol, err := flaky.CreatePolicy(f.ctx, tenant, newPolicy(f.id(), "nightly", "main-repo"))
	assert.NoError(t, err, "CreatePolicy")
	loser.next("TransactWriteItems")
	pol.Name = "nightly-home"
	pol, err = flaky.UpdatePolicy(f.ctx, tenant, pol)
	assert.NoError(t, err, "UpdatePolicy")
	stored, err := f.st.GetPolicy(f.ctx, tenant, pol.ID)
	require.NoError(t, err)
	assert.Equal(t, "nightly-home", stored.Name)
	assert.Equal(t, int64(2), stored.Version, "the policy was created once and updated once")

	assert.Equal(t, 11, loser.lost, "every write lost its first answer")
	got, err := f.st.GetAgent(f.ctx, tenant, a.ID)
	require.NoError(t, err)
	assert.Equal(t, updated.Version+1, got.Version, "each write happened once")
	assert.ElementsMatch(t, []string{created.ID, retry.ID, pending.ID}, activeIDs(t, f, tenant, a.ID),
		"the agent's capacity item holds its active tasks")
}
