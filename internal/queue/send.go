package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Limits of one SendMessageBatch request. 256 KiB is the payload limit every SQS implementation
// accepts, for one message as for a whole batch; a message's size is its body plus the name,
// type and value of each of its attributes.
const (
	maxBatchEntries = 10
	maxPayloadBytes = 256 * 1024
	maxEntryIDLen   = 80
	maxAttributes   = 10
	maxAttrNameLen  = 256
)

// Outgoing is one message to send.
type Outgoing struct {
	// ID names the message in its request and in the failures SendBatch returns; a task ID
	// serves well. 1–80 letters, digits, hyphens and underscores, unique within one SendBatch.
	ID   string
	Body string
	// Attributes travel as String message attributes (at most 10, values not empty).
	Attributes map[string]string
}

// Failure is a message that SendBatch did not get accepted.
type Failure struct {
	ID string
	// Code is SQS's error code for a rejected entry; it is empty when the entry was never
	// sent or its whole request failed, and Message then says why.
	Code    string
	Message string
	// SenderFault means the message itself is at fault: sending it again unchanged fails again.
	SenderFault bool
}

// SendBatch sends msgs to the queue at queueURL in as few SendMessageBatch requests as SQS's
// limits allow (10 messages and 256 KiB each) and returns the messages that were not accepted,
// so the caller can retry exactly those.
//
// The failures list every message not known to be accepted, whatever err is. If msgs are
// invalid, nothing is sent, the offending messages are failures with SenderFault set and the
// rest are failures too. If a request fails as a whole (domain.ErrNotFound for a missing queue,
// or the context's error), nothing more is sent and err says why.
func (m *Manager) SendBatch(ctx context.Context, queueURL string, msgs []Outgoing) ([]Failure, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	if failures, err := validateOutgoing(msgs); err != nil {
		return failures, fmt.Errorf("send batch: %w", err)
	}
	var failures []Failure
	batches := chunk(msgs)
	for i, batch := range batches {
		entries := make([]types.SendMessageBatchRequestEntry, len(batch))
		for j, msg := range batch {
			entries[j] = types.SendMessageBatchRequestEntry{
				Id:                aws.String(msg.ID),
				MessageBody:       aws.String(msg.Body),
				MessageAttributes: messageAttributes(msg.Attributes),
			}
		}
		out, err := m.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{
			QueueUrl: aws.String(queueURL),
			Entries:  entries,
		})
		if err != nil {
			for _, unsent := range batches[i:] {
				for _, msg := range unsent {
					failures = append(failures, Failure{ID: msg.ID, Message: err.Error()})
				}
			}
			return failures, fmt.Errorf("send batch to %s: %w", queueURL, translate(err))
		}
		for _, f := range out.Failed {
			failures = append(failures, Failure{
				ID:          aws.ToString(f.Id),
				Code:        aws.ToString(f.Code),
				Message:     aws.ToString(f.Message),
				SenderFault: f.SenderFault,
			})
		}
	}
	return failures, nil
}

func messageAttributes(attrs map[string]string) map[string]types.MessageAttributeValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make(map[string]types.MessageAttributeValue, len(attrs))
	for k, v := range attrs {
		out[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return out
}

// chunk splits msgs, in order, into batches within the request limits. Every message must fit
// the payload limit on its own, which validateOutgoing ensures.
func chunk(msgs []Outgoing) [][]Outgoing {
	var batches [][]Outgoing
	start, size := 0, 0
	for i, msg := range msgs {
		n := payloadSize(msg)
		if i > start && (i-start == maxBatchEntries || size+n > maxPayloadBytes) {
			batches = append(batches, msgs[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(msgs) {
		batches = append(batches, msgs[start:])
	}
	return batches
}

// payloadSize is what SQS counts against its size limit for msg.
func payloadSize(msg Outgoing) int {
	n := len(msg.Body)
	for k, v := range msg.Attributes {
		n += len(k) + len("String") + len(v)
	}
	return n
}

// validateOutgoing checks every message; when any is invalid it returns a failure for each
// message and an error naming the first problem.
func validateOutgoing(msgs []Outgoing) ([]Failure, error) {
	problems := make([]string, len(msgs))
	seen := make(map[string]bool, len(msgs))
	var first error
	for i, msg := range msgs {
		problem := checkOutgoing(msg)
		if problem == "" && seen[msg.ID] {
			problem = "id used by an earlier message"
		}
		seen[msg.ID] = true
		if problem != "" {
			problems[i] = problem
			if first == nil {
				first = fmt.Errorf("message %d (id %q): %s", i, msg.ID, problem)
			}
		}
	}
	if first == nil {
		return nil, nil
	}
	failures := make([]Failure, len(msgs))
	for i, msg := range msgs {
		failures[i] = Failure{ID: msg.ID, Message: problems[i], SenderFault: problems[i] != ""}
		if problems[i] == "" {
			failures[i].Message = "not sent: another message in the call is invalid"
		}
	}
	return failures, first
}

func checkOutgoing(msg Outgoing) string {
	switch {
	case !validEntryID(msg.ID):
		return "id must be 1–80 letters, digits, hyphens or underscores"
	case msg.Body == "":
		return "body is empty"
	case !validText(msg.Body):
		return "body has characters SQS does not accept"
	case len(msg.Attributes) > maxAttributes:
		return fmt.Sprintf("%d attributes, at most %d allowed", len(msg.Attributes), maxAttributes)
	}
	for k, v := range msg.Attributes {
		if err := checkAttributeName(k); err != nil {
			return fmt.Sprintf("attribute %q: %v", k, err)
		}
		if v == "" || !validText(v) {
			return fmt.Sprintf("attribute %q: value must be non-empty text SQS accepts", k)
		}
	}
	if n := payloadSize(msg); n > maxPayloadBytes {
		return fmt.Sprintf("%d bytes with attributes, more than %d", n, maxPayloadBytes)
	}
	return ""
}

func validEntryID(id string) bool {
	if id == "" || len(id) > maxEntryIDLen {
		return false
	}
	for _, r := range id {
		if !isAlnum(r) && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

// checkAttributeName applies SQS's rules for message attribute names.
func checkAttributeName(name string) error {
	lower := strings.ToLower(name)
	switch {
	case name == "" || len(name) > maxAttrNameLen:
		return errors.New("name must be 1–256 characters")
	case strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon."):
		return errors.New("names starting with AWS. or Amazon. are reserved")
	case strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, ".."):
		return errors.New("name must not start or end with a period or hold two in a row")
	}
	for _, r := range name {
		if !isAlnum(r) && r != '-' && r != '_' && r != '.' {
			return errors.New("name may hold only letters, digits, hyphens, underscores and periods")
		}
	}
	return nil
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// validText reports whether s is UTF-8 made only of the characters SQS allows in a message:
// tab, newline, carriage return and Unicode from U+0020 on, except surrogates, U+FFFE and U+FFFF.
func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
		case r >= 0x20 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}
