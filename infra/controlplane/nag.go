package controlplane

import (
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// ApplyChecks runs cdk-nag's AwsSolutions rules over everything in scope when it synthesizes.
// A finding that is not suppressed below is an error, which fails `cdk synth` and the tests.
func ApplyChecks(scope constructs.IConstruct) {
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
}

// suppressFindings records, next to the resource it concerns, every AwsSolutions finding the
// design accepts and why. Each names the finding it applies to, never a whole rule for the stack.
func suppressFindings(s *Stack) {
	suppress := func(scope constructs.IConstruct, id, reason string, appliesTo ...any) {
		sup := &cdknag.NagPackSuppression{Id: jsii.String(id), Reason: jsii.String(reason)}
		if len(appliesTo) > 0 {
			sup.AppliesTo = &appliesTo
		}
		cdknag.NagSuppressions_AddResourceSuppressions(scope, &[]*cdknag.NagPackSuppression{sup}, jsii.Bool(true))
	}

	for _, r := range s.publicRoutes {
		suppress(r.route, "AwsSolutions-APIG4", PublicRouteReason(r.key))
	}

	// Agent queues are created at run time, one per agent, so no ARN of them exists when
	// the stack is deployed; the prefix is the narrowest name, and the session policy narrows
	// the agents' own credentials to one queue. The finding names the ARN with the partition,
	// region and account as tokens (an environment-agnostic stack) or resolved, so it is
	// matched by pattern.
	agentQueues := &cdknag.RegexAppliesTo{
		Regex: jsii.String("/^Resource::arn:.+:sqs:.+:.+:" + regexp.QuoteMeta(s.Config.AgentQueuePrefix()+"*") + "$/"),
	}
	for _, role := range []constructs.IConstruct{s.Roles[FnAPI], s.Roles[FnAgentAPI], s.Roles[FnScheduler], s.AgentRole} {
		suppress(role, "AwsSolutions-IAM5",
			"Agent queues are created at run time, one per agent, so the deployment's queue-name prefix is the "+
				"narrowest resource IAM can name; agents' credentials are further limited to one queue by their session policy.",
			agentQueues)
	}

	// Listing queues takes no resource but "*" (WildcardResourceReasons).
	for _, role := range []constructs.IConstruct{s.Roles[FnAPI], s.Roles[FnScheduler]} {
		suppress(role, "AwsSolutions-IAM5", WildcardResourceReasons[sidListQueues], "Resource::*")
	}

	// The dashboard: the same static files for everyone, no data in them.
	suppress(s.WebBucket, "AwsSolutions-S1",
		"The bucket holds only the dashboard's build, the same files for every visitor and no data; CloudFront "+
			"alone reads it, and every API call the dashboard makes is logged in the HTTP API's access log.")
	suppress(s.Web, "AwsSolutions-CFR3",
		"The distribution serves the dashboard's static files and passes /v1/* to the HTTP API, whose stage logs "+
			"every request with the caller's address; a second log of the same calls would hold nothing more.")
	suppress(s.Web, "AwsSolutions-CFR4",
		"The distribution answers on its CloudFront domain with CloudFront's default certificate, whose policy "+
			"CloudFront fixes; a deployment with its own domain and ACM certificate sets TLS 1.2 as the minimum.")

	suppress(s.Web, "AwsSolutions-CFR1",
		"Operators and their fleets may be anywhere; which countries to refuse is a choice of each deployment, not of the stack.")
	suppress(s.Web, "AwsSolutions-CFR2",
		"Every API call behind the distribution needs a valid key checked by the authorizer and is throttled by the "+
			"HTTP API's stage; a WAF web ACL (created in us-east-1, billed per rule) is an option a deployment can add.")

	suppress(s.AgentDLQ, "AwsSolutions-SQS3",
		"This queue is itself the dead-letter queue of every agent queue; those are created at run time, so "+
			"cdk-nag cannot see the redrive policies that point here.")
	suppress(s.SchedulerDLQ, "AwsSolutions-SQS3",
		"This queue is itself the dead-letter queue of the scheduler's EventBridge target and of its failed "+
			"asynchronous invocations, which cdk-nag does not recognise as dead-letter use.")

	suppress(s.NotifierDLQ, "AwsSolutions-SQS3",
		"This queue is itself the dead-letter queue of the notifier's queue and of the EventBridge rule's target, "+
			"which cdk-nag does not recognise as dead-letter use.")
	suppress(s.SecretKey, "AwsSolutions-SMG4",
		"The key seals every notification channel's secret in the table; rotating it would make them unreadable, "+
			"since nothing re-seals stored secrets. It changes only when an operator replaces the channels' secrets.")

	suppress(s.AlarmTopic, "AwsSolutions-SNS2",
		"Alarm notifications carry alarm names and metric values, nothing secret. CloudWatch cannot publish "+
			"to a topic encrypted with the AWS-managed SNS key, and a customer key per stack would cost more "+
			"than the data is worth protecting.")
}
