package queue

import (
	"errors"
	"slices"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// ErrNotInFlight means a receipt handle no longer refers to a message being processed: the
// message was deleted, or its visibility timeout ran out and it may be delivered again.
var ErrNotInFlight = errors.New("message not in flight")

// Error codes are matched as strings, never with errors.As on the SDK's typed errors: SQS reports
// the legacy query code (AWS.SimpleQueueService.NonExistentQueue) through ErrorCode for
// compatibility, other implementations send the JSON shape name (QueueDoesNotExist), and an
// error whose name the SDK does not recognise arrives as a generic API error.
var (
	codesNoQueue         = []string{"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
	codesQueueExists     = []string{"QueueAlreadyExists", "QueueNameExists"}
	codesDeletedRecently = []string{"AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently"}
	codesNotInFlight     = []string{"AWS.SimpleQueueService.MessageNotInflight", "MessageNotInflight", "ReceiptHandleIsInvalid"}
)

// hasCode reports whether err is an SQS error with one of codes.
func hasCode(err error, codes ...string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && slices.Contains(codes, apiErr.ErrorCode())
}

// receiptGone reports whether err says a receipt handle is stale. Besides the modelled codes,
// SQS answers an expired handle with InvalidParameterValue ("Value … for parameter ReceiptHandle
// is invalid. Reason: The receipt handle has expired.").
func receiptGone(err error) bool {
	if hasCode(err, codesNotInFlight...) {
		return true
	}
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidParameterValue" &&
		strings.Contains(apiErr.ErrorMessage(), "ReceiptHandle")
}

// translate turns the SQS errors a caller acts on into sentinels and leaves others as they are.
func translate(err error) error {
	switch {
	case hasCode(err, codesNoQueue...):
		return domain.ErrNotFound
	case receiptGone(err):
		return ErrNotInFlight
	}
	return err
}
