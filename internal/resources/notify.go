package resources

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// NotifierQueueName names the queue the notifier rule sends the bus's events to and the
// notifier reads in batches, so the events of one tick reach a channel together. It lies
// outside QueuePrefix, like the dead-letter queue, so no agent can read it.
func (n Names) NotifierQueueName() string { return n.base() + "-notifier" }

// NotifierRuleName names the rule on the deployment's bus that sends every restic-monitor
// event to the notifier's queue.
func (n Names) NotifierRuleName() string { return n.base() + "-notifier" }

// NotifierDeadLetterQueueName names the queue that keeps what the notifier failed on.
func (n Names) NotifierDeadLetterQueueName() string { return n.base() + "-notifier-dlq" }

// NotifierVisibilityTimeoutSeconds hides a batch the notifier received for longer than it can
// take: every delivery's attempts with their backoff (under a minute) for each of its channels.
const NotifierVisibilityTimeoutSeconds = 180

// NotifierRule is a rule on a bus sending the events of one source to a queue.
type NotifierRule struct {
	Bus, Rule, Queue string
	// Source is the events' source (scheduler.EventSource).
	Source string
}

// EnsureNotifierRule creates, unless they exist, the notifier's queue (with a policy letting
// EventBridge send to it from this rule only) and the rule on the bus that targets it, and
// returns the queue's URL. Local set-up and tests use it; deployments get both from the CDK
// stack.
func EnsureNotifierRule(ctx context.Context, eb *eventbridge.Client, q *sqs.Client, nr NotifierRule) (string, error) {
	bus, rule, queueName := nr.Bus, nr.Rule, nr.Queue
	created, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queueName), Attributes: map[string]string{
		"VisibilityTimeout": strconv.Itoa(NotifierVisibilityTimeoutSeconds),
	}})
	if err != nil {
		return "", fmt.Errorf("create queue %s: %w", queueName, err)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: created.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("read queue %s: %w", queueName, err)
	}
	queueARN := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	// PutRule and PutTargets replace what is there, so running this again changes nothing.
	r, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rule), EventBusName: aws.String(bus),
		EventPattern: aws.String(fmt.Sprintf(`{"source":[%q]}`, nr.Source)), State: ebtypes.RuleStateEnabled})
	if err != nil {
		return "", fmt.Errorf("put rule %s on %s: %w", rule, bus, err)
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},`+
		`"Action":"sqs:SendMessage","Resource":%q,"Condition":{"ArnEquals":{"aws:SourceArn":%q}}}]}`, queueARN, aws.ToString(r.RuleArn))
	if _, err := q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: created.QueueUrl,
		Attributes: map[string]string{"Policy": policy}}); err != nil {
		return "", fmt.Errorf("set the policy of queue %s: %w", queueName, err)
	}
	out, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(rule), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("notifier-queue"), Arn: aws.String(queueARN)}}})
	if err != nil {
		return "", fmt.Errorf("put the target of rule %s: %w", rule, err)
	}
	if out.FailedEntryCount > 0 {
		return "", fmt.Errorf("put the target of rule %s: %s", rule, aws.ToString(out.FailedEntries[0].ErrorMessage))
	}
	return aws.ToString(created.QueueUrl), nil
}
