package httpapi_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/queuecreds"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

const agentRoleARN = "arn:aws:iam::000000000000:role/rm-test-agents"

// assumeRoleRecorder keeps every AssumeRole request the SDK sends: the emulator answers
// AssumeRole without enforcing session policies, so the test checks the policy that was sent.
type assumeRoleRecorder struct {
	mu    sync.Mutex
	calls []sts.AssumeRoleInput
}

func (r *assumeRoleRecorder) last(t *testing.T) sts.AssumeRoleInput {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.calls, "no AssumeRole request was sent")
	return r.calls[len(r.calls)-1]
}

// withRealCredentials gives the harness a credential vendor on the endpoint's STS.
func withRealCredentials(t *testing.T, h *harness) *assumeRoleRecorder {
	rec := &assumeRoleRecorder{}
	client := sts.NewFromConfig(testenv.AWS(t), func(o *sts.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("recordAssumeRole",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					if p, ok := in.Parameters.(*sts.AssumeRoleInput); ok {
						rec.mu.Lock()
						rec.calls = append(rec.calls, *p)
						rec.mu.Unlock()
					}
					return next.HandleInitialize(ctx, in)
				}), middleware.Before)
		})
	})
	h.deps.Credentials = queuecreds.New(client, agentRoleARN)
	h.rebuildAgentAPI()
	return rec
}

type credentialsAnswer struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	SessionToken    string    `json:"sessionToken"`
	Expiration      time.Time `json:"expiration"`
	QueueURL        string    `json:"queueUrl"`
	Region          string    `json:"region"`
}

func TestCredentialsAreScopedToTheCallersOwnQueue(t *testing.T) {
	h := newHarness(t)
	rec := withRealCredentials(t, h)
	f := newAgentFixture(h, "acme")
	ctx := context.Background()

	for _, a := range []host{f.enroll("a"), f.enroll("b")} {
		res := h.call("POST", "/v1/agent/credentials", a.Credential, nil)

		statusIs(t, 200, res, "credentials for ", a.ID)
		var out credentialsAnswer
		res.JSON(t, &out)
		assert.NotEmpty(t, out.AccessKeyID)
		assert.NotEmpty(t, out.SecretAccessKey)
		assert.NotEmpty(t, out.SessionToken)
		assert.False(t, out.Expiration.IsZero(), "expiration: got zero")
		assert.Equal(t, a.QueueURL, out.QueueURL)
		assert.Equal(t, "us-east-1", out.Region)

		q, err := h.queues.Lookup(ctx, "acme", a.ID)
		require.NoError(t, err)
		in := rec.last(t)
		assert.Equal(t, agentRoleARN, aws.ToString(in.RoleArn))
		assert.Equal(t, "rm-acme-"+a.ID, aws.ToString(in.RoleSessionName))
		assert.Equal(t, int32(3600), aws.ToInt32(in.DurationSeconds), "credentials last one hour")
		var policy struct {
			Version   string
			Statement []struct {
				Effect   string
				Action   []string
				Resource any
			}
		}
		require.NoError(t, json.Unmarshal([]byte(aws.ToString(in.Policy)), &policy), "policy: %s", aws.ToString(in.Policy))
		require.Len(t, policy.Statement, 1, "policy: %s", aws.ToString(in.Policy))
		st := policy.Statement[0]
		assert.Equal(t, "Allow", st.Effect)
		assert.Equal(t, q.ARN, st.Resource, "the session policy names exactly %s's queue", a.ID)
		assert.ElementsMatch(t, []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}, st.Action)
	}
}

func TestCredentialsBodyIsOptionalButStrict(t *testing.T) {
	h := newHarness(t)
	withRealCredentials(t, h)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	statusIs(t, 200, h.call("POST", "/v1/agent/credentials", a.Credential, "{}"), "empty object")
	res := h.call("POST", "/v1/agent/credentials", a.Credential, `{"queueArn":"arn:aws:sqs:us-east-1:000000000000:*"}`)
	statusIs(t, 400, res, "a queue named by the caller")
	assert.Equal(t, []string{"queueArn"}, res.ErrorFields(t))
	statusIs(t, 400, h.call("POST", "/v1/agent/credentials", a.Credential, `{`), "broken JSON")
}

func TestCredentialsWithoutAVendorAreUnavailable(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	res := h.call("POST", "/v1/agent/credentials", a.Credential, nil)
	statusIs(t, 503, res, "no vendor configured")
	assert.Equal(t, "unavailable", errorCode(t, res))
}

// An agent whose queue is gone gets a 404, not credentials for nothing (and not a 500).
func TestCredentialsForAnAgentWithoutItsQueueAreNotFound(t *testing.T) {
	h := newHarness(t)
	rec := withRealCredentials(t, h)
	f := newAgentFixture(h, "acme")
	a := f.enroll("a")
	require.NoError(t, h.queues.Delete(context.Background(), "acme", a.ID))

	res := h.call("POST", "/v1/agent/credentials", a.Credential, nil)

	statusIs(t, 404, res, "credentials without a queue")
	assert.Empty(t, rec.calls, "no role may be assumed for a missing queue")
}
