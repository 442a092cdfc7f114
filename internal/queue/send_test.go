package queue

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func outgoing(n, bodySize int) []Outgoing {
	msgs := make([]Outgoing, n)
	for i := range msgs {
		msgs[i] = Outgoing{ID: fmt.Sprintf("m%d", i), Body: strings.Repeat("x", bodySize)}
	}
	return msgs
}

func TestChunkKeepsEachRequestWithinTenMessagesAnd256KiB(t *testing.T) {
	const kib = 1024
	withAttr := outgoing(2, 128*kib)
	withAttr[0].Attributes = map[string]string{"k": "v"} // 128 KiB + 8 bytes: the pair no longer fits
	tests := []struct {
		name string
		msgs []Outgoing
		want []int // messages per request
	}{
		{"none", nil, nil},
		{"one", outgoing(1, 10), []int{1}},
		{"exactly ten", outgoing(10, 10), []int{10}},
		{"twenty-five small", outgoing(25, 10), []int{10, 10, 5}},
		{"three of 100 KiB", outgoing(3, 100*kib), []int{2, 1}},
		{"ten of 26 KiB exceed 256 KiB", outgoing(10, 26*kib), []int{9, 1}},
		{"two of 128 KiB fill one request", outgoing(2, 128*kib), []int{2}},
		{"attributes count towards the size", withAttr, []int{1, 1}},
		{"a full-size message travels alone", append(outgoing(1, 10), outgoing(1, 256*kib)...), []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches := chunk(tt.msgs)
			var got []int
			var flat []Outgoing
			for _, b := range batches {
				got = append(got, len(b))
				flat = append(flat, b...)
				size := 0
				for _, m := range b {
					size += payloadSize(m)
				}
				assert.LessOrEqual(t, size, maxPayloadBytes)
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.msgs, flat, "messages keep their order and none is lost")
		})
	}
}

func TestSendBatchRejectsInvalidMessagesWithoutSending(t *testing.T) {
	// The manager has no client: any attempt to send would panic.
	m := New(nil, namesForTest)
	valid := Outgoing{ID: "ok", Body: "fine"}
	tests := []struct {
		name string
		bad  Outgoing
		want string
	}{
		{"empty id", Outgoing{Body: "b"}, "id must be"},
		{"id with a dot", Outgoing{ID: "a.b", Body: "b"}, "id must be"},
		{"id of 81 characters", Outgoing{ID: strings.Repeat("a", 81), Body: "b"}, "id must be"},
		{"repeated id", Outgoing{ID: "ok", Body: "b"}, "earlier message"},
		{"empty body", Outgoing{ID: "x"}, "body is empty"},
		{"NUL in body", Outgoing{ID: "x", Body: "a\x00b"}, "characters SQS does not accept"},
		{"invalid UTF-8", Outgoing{ID: "x", Body: "a\xffb"}, "characters SQS does not accept"},
		{"U+FFFF in body", Outgoing{ID: "x", Body: "a\uffffb"}, "characters SQS does not accept"},
		{"body over 256 KiB", Outgoing{ID: "x", Body: strings.Repeat("b", maxPayloadBytes+1)}, "more than"},
		{"attributes push it over 256 KiB", Outgoing{ID: "x", Body: strings.Repeat("b", maxPayloadBytes-5), Attributes: map[string]string{"k": "v"}}, "more than"},
		{"reserved attribute name", Outgoing{ID: "x", Body: "b", Attributes: map[string]string{"AWS.trace": "v"}}, "reserved"},
		{"attribute name with a space", Outgoing{ID: "x", Body: "b", Attributes: map[string]string{"a b": "v"}}, "may hold only"},
		{"attribute name with two periods", Outgoing{ID: "x", Body: "b", Attributes: map[string]string{"a..b": "v"}}, "period"},
		{"empty attribute value", Outgoing{ID: "x", Body: "b", Attributes: map[string]string{"k": ""}}, "non-empty"},
		{"eleven attributes", Outgoing{ID: "x", Body: "b", Attributes: elevenAttributes()}, "at most 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failures, err := m.SendBatch(context.Background(), "http://unused", []Outgoing{valid, tt.bad})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			require.Len(t, failures, 2, "every message is reported when none is sent")
			assert.Equal(t, Failure{ID: "ok", Message: "not sent: another message in the call is invalid"}, failures[0])
			assert.Equal(t, tt.bad.ID, failures[1].ID)
			assert.True(t, failures[1].SenderFault)
			assert.Contains(t, failures[1].Message, tt.want)
		})
	}
}

func TestSendBatchAcceptsTheLargestValidMessage(t *testing.T) {
	msg := Outgoing{
		ID:         strings.Repeat("A", maxEntryIDLen),
		Body:       "tab\tnewline\nemoji 😀 " + strings.Repeat("b", 100),
		Attributes: map[string]string{"task.type": "backup", "Trace-ID_1": "x"},
	}
	msg.Body += strings.Repeat("c", maxPayloadBytes-payloadSize(msg))
	require.Equal(t, maxPayloadBytes, payloadSize(msg))
	failures, err := validateOutgoing([]Outgoing{msg})
	require.NoError(t, err)
	assert.Nil(t, failures)
}

func TestSendBatchOfNothingSendsNothing(t *testing.T) {
	failures, err := New(nil, namesForTest).SendBatch(context.Background(), "http://unused", nil)
	require.NoError(t, err)
	assert.Nil(t, failures)
}

func elevenAttributes() map[string]string {
	attrs := map[string]string{}
	for i := range 11 {
		attrs[fmt.Sprintf("a%d", i)] = "v"
	}
	return attrs
}
