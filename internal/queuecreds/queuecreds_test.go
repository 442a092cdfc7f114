package queuecreds_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queuecreds"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

const (
	roleARN  = "arn:aws:iam::123456789012:role/rm-prod-agents"
	queueARN = "arn:aws:sqs:eu-central-1:123456789012:rm-prod-acme-01JD0000000000000000000000"
)

// fakeSTS records AssumeRole calls and answers with out or err.
type fakeSTS struct {
	calls []*sts.AssumeRoleInput
	out   *sts.AssumeRoleOutput
	err   error
}

func (f *fakeSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	f.calls = append(f.calls, in)
	return f.out, f.err
}

func answer(exp time.Time) *sts.AssumeRoleOutput {
	return &sts.AssumeRoleOutput{Credentials: &types.Credentials{
		AccessKeyId: aws.String("ASIAEXAMPLE"), SecretAccessKey: aws.String("secret"), SessionToken: aws.String("token"), Expiration: &exp,
	}}
}

// policyOf decodes a session policy into its one statement, failing on anything more.
func policyOf(t *testing.T, policy string) map[string]any {
	t.Helper()
	var doc struct {
		Version   string
		Statement []map[string]any
	}
	dec := json.NewDecoder(strings.NewReader(policy))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&doc), "policy: %s", policy)
	assert.Equal(t, "2012-10-17", doc.Version)
	require.Len(t, doc.Statement, 1, "policy: %s", policy)
	return doc.Statement[0]
}

func TestQueueCredentialsAssumeTheRoleWithAPolicyForOneQueue(t *testing.T) {
	exp := time.Date(2026, 11, 2, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	fake := &fakeSTS{out: answer(exp)}
	v := queuecreds.New(fake, roleARN)
	agentID := "01JD0000000000000000000000"

	got, err := v.QueueCredentials(context.Background(), "acme", agentID, queueARN)

	require.NoError(t, err)
	assert.Equal(t, "ASIAEXAMPLE", got.AccessKeyID)
	assert.Equal(t, "secret", got.SecretAccessKey)
	assert.Equal(t, "token", got.SessionToken)
	assert.Equal(t, exp.UTC(), got.Expiration)
	assert.Equal(t, time.UTC, got.Expiration.Location())
	require.Len(t, fake.calls, 1)
	in := fake.calls[0]
	assert.Equal(t, roleARN, aws.ToString(in.RoleArn))
	assert.Equal(t, "rm-acme-"+agentID, aws.ToString(in.RoleSessionName))
	assert.Equal(t, int32(3600), aws.ToInt32(in.DurationSeconds))
	st := policyOf(t, aws.ToString(in.Policy))
	assert.Equal(t, "Allow", st["Effect"])
	assert.Equal(t, queueARN, st["Resource"], "the policy names exactly the agent's queue")
	assert.ElementsMatch(t, []any{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}, st["Action"])
	assert.Empty(t, in.PolicyArns, "no managed policy may widen the session")
}

func TestQueueCredentialsRefuseAnythingButOneQueuesARN(t *testing.T) {
	for _, arn := range []string{
		"",
		"*",
		"arn:aws:sqs:eu-central-1:123456789012:*",
		"arn:aws:sqs:eu-central-1:123456789012:rm-prod-*",
		"arn:aws:sqs:eu-central-1:123456789012:rm-prod-acme-?",
		"arn:aws:sqs:*:123456789012:rm-prod-acme-a",
		"arn:aws:sqs:eu-central-1:*:rm-prod-acme-a",
		"arn:aws:sqs:eu-central-1:1234:rm-prod-acme-a",
		"arn:aws:s3:::rm-prod-acme-a",
		"arn:aws:sqs:eu-central-1:123456789012:rm prod",
		"arn:aws:sqs:eu-central-1:123456789012:" + strings.Repeat("q", 81),
		queueARN + "\n",
	} {
		fake := &fakeSTS{out: answer(time.Now())}
		_, err := queuecreds.New(fake, roleARN).QueueCredentials(context.Background(), "acme", "01JD0000000000000000000000", arn)
		assert.Error(t, err, "ARN %q: got no error, want a refusal", arn)
		assert.Empty(t, fake.calls, "ARN %q: STS was called", arn)
	}
	for _, arn := range []string{queueARN, "arn:aws-cn:sqs:cn-north-1:123456789012:q", "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q.fifo"} {
		_, err := queuecreds.SessionPolicy(arn)
		assert.NoError(t, err, "ARN %q", arn)
	}
}

func TestSessionNameFitsSTSForTheLongestTenant(t *testing.T) {
	tenant := "a" + strings.Repeat("b", 30) + "c"
	require.True(t, domain.ValidTenantID(tenant))
	name, err := queuecreds.SessionName(tenant, domain.NewID(time.Now()))
	require.NoError(t, err)
	assert.LessOrEqual(t, len(name), 64, "session name %q", name)
	for _, bad := range [][2]string{{"Acme", "01JD0000000000000000000000"}, {"acme", "not-an-id"}, {"", "01JD0000000000000000000000"}} {
		_, err := queuecreds.SessionName(bad[0], bad[1])
		assert.Error(t, err, "tenant %q, agent %q", bad[0], bad[1])
	}
}

func TestQueueCredentialsReportSTSFailuresAndIncompleteAnswers(t *testing.T) {
	ctx := context.Background()
	denied := errors.New("AccessDenied")
	_, err := queuecreds.New(&fakeSTS{err: denied}, roleARN).QueueCredentials(ctx, "acme", "01JD0000000000000000000000", queueARN)
	assert.ErrorIs(t, err, denied)

	incomplete := answer(time.Now())
	incomplete.Credentials.SessionToken = nil
	_, err = queuecreds.New(&fakeSTS{out: incomplete}, roleARN).QueueCredentials(ctx, "acme", "01JD0000000000000000000000", queueARN)
	assert.Error(t, err)
	_, err = queuecreds.New(&fakeSTS{out: &sts.AssumeRoleOutput{}}, roleARN).QueueCredentials(ctx, "acme", "01JD0000000000000000000000", queueARN)
	assert.Error(t, err)
}

// Against the endpoint the same call path runs through the real SDK client.
func TestQueueCredentialsFromTheEndpoint(t *testing.T) {
	cfg := testenv.AWS(t)
	v := queuecreds.New(sts.NewFromConfig(cfg), "arn:aws:iam::000000000000:role/rm-test-agents")
	before := time.Now()

	got, err := v.QueueCredentials(context.Background(), "acme", domain.NewID(before), "arn:aws:sqs:us-east-1:000000000000:rm-test-acme-q")

	require.NoError(t, err)
	assert.NotEmpty(t, got.AccessKeyID)
	assert.NotEmpty(t, got.SecretAccessKey)
	assert.NotEmpty(t, got.SessionToken)
	assert.WithinDuration(t, before.Add(queuecreds.Duration), got.Expiration, 5*time.Minute)
}
