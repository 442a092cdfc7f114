package controlplane

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// The DynamoDB actions each function uses. TransactWriteItems is no IAM action of its own: a
// transaction needs the action of each item it writes, and dynamodb:ConditionCheckItem for its
// condition checks.
var (
	tableReadWrite = []string{
		"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
		"dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
	}
	tableAuthorizer = []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}
	// The scheduler reads a tick's agents, policies and slots with BatchGetItem and ends overdue
	// checks with DeleteItem: the same actions as the APIs.
	tableScheduler = tableReadWrite
	// The notifier reads channels, agents and policies, and claims, records and finishes
	// deliveries and quiet-mode streaks item by item, on the table alone.
	tableNotifier = []string{"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
)

// The functions that seal or open channel secrets read the key once, at cold start, and those
// that send notification email send it as the deployment's identity only.
var (
	secretKeyRead = []string{"secretsmanager:GetSecretValue"}
	sesSend       = []string{"ses:SendEmail"}
)

// The SQS actions on agent queues. SendMessageBatch is authorized as sqs:SendMessage, and
// DeleteMessageBatch and ChangeMessageVisibilityBatch likewise, so no batch action appears.
var (
	queuesAPI = []string{"sqs:DeleteQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SendMessage"}
	// DeleteQueue removes a queue again when registration fails after creating it.
	queuesAgentAPI = []string{"sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:TagQueue"}
	// DeleteQueue removes the queues of a tenant being deleted, whose deletion every tick carries on.
	queuesScheduler = []string{"sqs:SendMessage", "sqs:GetQueueUrl", "sqs:DeleteQueue"}
	queuesAgent     = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
	// Deleting a tenant finds its agent queues by name (queue.Manager.ListTenantQueues): the
	// tenant API, which begins a deletion, and the scheduler, which carries it on.
	listQueues = []string{"sqs:ListQueues"}
)

// The SQS actions on the agents' dead-letter queue: the agent API finds its ARN by its name for
// the redrive policy of each queue it creates; the scheduler finds it the same way and drains it
// into failed tasks (package deadletter).
var (
	deadLettersAgentAPI  = []string{"sqs:GetQueueUrl", "sqs:GetQueueAttributes"}
	deadLettersScheduler = []string{"sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"}
	busScheduler         = []string{"events:PutEvents"}
)

// WildcardResourceReasons lists, by statement Sid, every policy statement that grants on the
// resource "*", with the reason AWS offers nothing narrower. The IAM test fails on any other.
var WildcardResourceReasons = map[string]string{
	sidListQueues: "sqs:ListQueues supports no resource-level permissions, so IAM accepts only \"*\". The code " +
		"always lists with the prefix of one tenant's agent queues, and a listing reveals queue URLs only.",
}

// sidListQueues is the statement that lets a function list queues.
const sidListQueues = "ListAgentQueues"

// grantLeastPrivilege gives each function's role, and the agents' role, exactly the actions the
// code uses, on the table (and its indexes) and on the deployment's agent queues.
func grantLeastPrivilege(s *Stack) {
	roles := s.Roles
	// The table and each of its indexes by name, from the shared definition, rather than
	// table/index/*.
	tableAndIndexes := []*string{s.Table.TableArn()}
	for _, ix := range resources.Table.Indexes {
		tableAndIndexes = append(tableAndIndexes, jsii.String(*s.Table.TableArn()+"/index/"+ix.Name))
	}
	agentQueues := jsii.String(s.AgentQueueARNPattern())

	allow := func(role awsiam.Role, sid string, actions []string, resources ...*string) {
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(sid),
			Actions:   jsii.Strings(actions...),
			Resources: &resources,
		}))
	}

	allow(roles[FnAPI], "Table", tableReadWrite, tableAndIndexes...)
	allow(roles[FnAPI], "AgentQueues", queuesAPI, agentQueues)
	allow(roles[FnAPI], sidListQueues, listQueues, jsii.String("*"))

	allow(roles[FnAgentAPI], "Table", tableReadWrite, tableAndIndexes...)
	allow(roles[FnAgentAPI], "AgentQueues", queuesAgentAPI, agentQueues)
	allow(roles[FnAgentAPI], "FindAgentDeadLetterQueue", deadLettersAgentAPI, s.AgentDLQ.QueueArn())
	allow(roles[FnAgentAPI], "VendAgentCredentials", []string{"sts:AssumeRole"}, s.AgentRole.RoleArn())

	// Authenticating reads and stamps one credential item by its key; no index.
	allow(roles[FnAuthorizer], "Credentials", tableAuthorizer, s.Table.TableArn())

	allow(roles[FnScheduler], "Table", tableScheduler, tableAndIndexes...)
	allow(roles[FnScheduler], "AgentQueues", queuesScheduler, agentQueues)
	allow(roles[FnScheduler], sidListQueues, listQueues, jsii.String("*"))
	allow(roles[FnScheduler], "DrainAgentDeadLetters", deadLettersScheduler, s.AgentDLQ.QueueArn())
	allow(roles[FnScheduler], "PublishEvents", busScheduler, s.EventBus.EventBusArn())

	// The tenant API seals channel secrets, sends confirmation email and test-sends; the
	// notifier opens secrets and delivers. Reading its queue is granted with the event source.
	allow(roles[FnNotifier], "Table", tableNotifier, s.Table.TableArn())
	for _, fn := range []string{FnAPI, FnNotifier} {
		allow(roles[fn], "ReadSecretKey", secretKeyRead, s.SecretKey.SecretArn())
		if s.Config.SESIdentity != "" {
			allow(roles[fn], "SendNotificationEmail", sesSend, jsii.String(s.SESIdentityARN()))
		}
	}

	// The most an agent can ever do; each session policy narrows it to one queue.
	allow(s.AgentRole, "OwnQueue", queuesAgent, agentQueues)
}

// SESIdentityARN is the ARN of the deployment's SES identity, the one resource notification
// email may be sent as.
func (s *Stack) SESIdentityARN() string {
	return *s.FormatArn(&awscdk.ArnComponents{
		Service:      jsii.String("ses"),
		Resource:     jsii.String("identity"),
		ResourceName: jsii.String(s.Config.SESIdentity),
		ArnFormat:    awscdk.ArnFormat_SLASH_RESOURCE_NAME,
	})
}

// AgentQueueARNPattern matches the ARN of every agent queue of the deployment:
// arn:<partition>:sqs:<region>:<account>:<AgentQueuePrefix>*. The agents' dead-letter queue is
// not among them: agents may not reach it.
func (s *Stack) AgentQueueARNPattern() string {
	return *s.FormatArn(&awscdk.ArnComponents{
		Service:   jsii.String("sqs"),
		Resource:  jsii.String(s.Config.AgentQueuePrefix() + "*"),
		ArnFormat: awscdk.ArnFormat_NO_RESOURCE_NAME,
	})
}
