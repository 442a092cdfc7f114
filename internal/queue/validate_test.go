package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

var namesForTest = resources.Names{Stage: "test"}

const agentForTest = "01JDZZZZZZZZZZZZZZZZZZZZZZ"

func TestManagerRejectsNamesOutsideTheQueueNameBudget(t *testing.T) {
	// No client: a rejected name must never reach SQS.
	tests := []struct {
		name           string
		stage, tenant  string
		agent, wantErr string
	}{
		{"stage of 11 characters", "abcdefghijk", "acme", agentForTest, "invalid stage"},
		{"stage with a hyphen", "pr-1", "acme", agentForTest, "invalid stage"},
		{"tenant of 33 characters", "test", "t" + strings.Repeat("0", 32), agentForTest, "invalid tenant id"},
		{"tenant in upper case", "test", "Acme", agentForTest, "invalid tenant id"},
		{"agent that is not a ULID", "test", "acme", "agent-1", "invalid agent id"},
		{"agent ID too long", "test", "acme", agentForTest + "0", "invalid agent id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(nil, resources.Names{Stage: tt.stage})
			ctx := context.Background()
			_, err := m.Ensure(ctx, tt.tenant, tt.agent)
			assert.ErrorContains(t, err, tt.wantErr, "Ensure")
			_, err = m.Lookup(ctx, tt.tenant, tt.agent)
			assert.ErrorContains(t, err, tt.wantErr, "Lookup")
			assert.ErrorContains(t, m.Delete(ctx, tt.tenant, tt.agent), tt.wantErr, "Delete")
		})
	}
}

func TestManagerRejectsADeploymentWhoseDeadLetterQueueNameWouldNotFit(t *testing.T) {
	// No client: a rejected name must never reach SQS.
	for _, names := range []resources.Names{
		{Stage: "abcdefghijk"},
		{Stage: "prod", Tenant: "t" + strings.Repeat("0", 32)},
	} {
		m := New(nil, names)
		ctx := context.Background()
		_, err := m.EnsureDeadLetterQueue(ctx)
		assert.ErrorContains(t, err, "invalid", "EnsureDeadLetterQueue %+v", names)
		_, err = m.DeadLetterQueue(ctx)
		assert.ErrorContains(t, err, "invalid", "DeadLetterQueue %+v", names)
		assert.ErrorContains(t, m.DeleteDeadLetterQueue(ctx), "invalid", "DeleteDeadLetterQueue %+v", names)
		_, err = m.DeadLetters(ctx, 1)
		assert.ErrorContains(t, err, "invalid", "DeadLetters %+v", names)
		_, err = m.ReceiveDeadLetters(ctx, 1, 0)
		assert.ErrorContains(t, err, "invalid", "ReceiveDeadLetters %+v", names)
		assert.ErrorContains(t, m.DeleteDeadLetter(ctx, "r"), "invalid", "DeleteDeadLetter %+v", names)
	}
}

func TestConsumerRejectsArgumentsSQSWouldRefuse(t *testing.T) {
	c := NewConsumer(nil, "http://unused")
	ctx := context.Background()
	for _, tt := range []struct {
		max  int32
		wait time.Duration
		want string
	}{
		{0, 0, "max messages 0"},
		{11, 0, "max messages 11"},
		{1, -time.Second, "wait -1s"},
		{1, 20*time.Second + time.Millisecond, "wait 20.001s"},
	} {
		_, err := c.Receive(ctx, tt.max, tt.wait)
		assert.ErrorContains(t, err, tt.want)
	}
	assert.ErrorContains(t, c.ExtendVisibility(ctx, "r", -time.Second), "not between 0 and 12h")
	assert.ErrorContains(t, c.ExtendVisibility(ctx, "r", 12*time.Hour+time.Second), "not between 0 and 12h")
}

func TestCeilSecondsNeverShortens(t *testing.T) {
	for d, want := range map[time.Duration]int32{
		0:                       0,
		time.Nanosecond:         1,
		time.Second:             1,
		1500 * time.Millisecond: 2,
		20 * time.Second:        20,
		12 * time.Hour:          43200,
	} {
		assert.Equal(t, want, ceilSeconds(d), "%s", d)
	}
}

func TestTranslateUnderstandsBothErrorDialects(t *testing.T) {
	apiErr := func(code, msg string) error {
		return fmt.Errorf("operation error SQS: %w", &smithy.GenericAPIError{Code: code, Message: msg})
	}
	tests := []struct {
		err  error
		want error
	}{
		{apiErr("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."), domain.ErrNotFound},
		{apiErr("QueueDoesNotExist", "The specified queue does not exist."), domain.ErrNotFound},
		{apiErr("ReceiptHandleIsInvalid", "The receipt handle is not valid"), ErrNotInFlight},
		{apiErr("AWS.SimpleQueueService.MessageNotInflight", "Message is not in flight"), ErrNotInFlight},
		{apiErr("MessageNotInflight", "Message is not in flight"), ErrNotInFlight},
		{apiErr("InvalidParameterValue", "Value AQEB for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."), ErrNotInFlight},
	}
	for _, tt := range tests {
		assert.ErrorIs(t, translate(tt.err), tt.want, "%v", tt.err)
	}

	other := apiErr("InvalidParameterValue", "Value 50000 for parameter VisibilityTimeout is invalid.")
	assert.Same(t, other, translate(other), "unrelated errors pass through")
	plain := errors.New("connection reset")
	assert.Same(t, plain, translate(plain))
	require.True(t, hasCode(apiErr("QueueAlreadyExists", ""), codesQueueExists...))
	require.True(t, hasCode(apiErr("QueueNameExists", ""), codesQueueExists...))
	require.False(t, hasCode(plain, codesQueueExists...))
}
