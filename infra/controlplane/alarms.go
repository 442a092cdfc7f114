package controlplane

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/jsii-runtime-go"
)

// AlarmNames returns the name of every alarm the stack defines, for documentation and tests.
func (c Config) AlarmNames() []string {
	var names []string
	for _, spec := range functionSpecs {
		names = append(names, c.baseName()+"-"+spec.name+"-errors", c.baseName()+"-"+spec.name+"-throttles")
	}
	return append(names,
		c.baseName()+"-scheduler-duration",
		c.baseName()+"-scheduler-dead-letters",
		c.baseName()+"-agent-dead-letters",
		c.baseName()+"-api-5xx",
		c.baseName()+"-notifier-dead-letters",
		c.baseName()+"-notifier-rule-failures",
		c.baseName()+"-notifier-backlog",
	)
}

// newAlarms watches what needs a person: functions that fail or are throttled, a scheduler tick
// that nears its timeout, dead letters, server errors at the API, and events that do not reach
// the notifier or wait too long for it. Every alarm notifies the
// alarm topic when it fires and when it clears; missing data (no traffic) is fine.
func (s *Stack) newAlarms() {
	action := awscloudwatchactions.NewSnsAction(s.AlarmTopic)
	five := awscdk.Duration_Minutes(jsii.Number(5))
	alarm := func(id, suffix, description string, metric awscloudwatch.IMetric, threshold float64) {
		a := awscloudwatch.NewAlarm(s.Stack, jsii.String(id+"Alarm"), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(s.Config.baseName() + "-" + suffix),
			AlarmDescription:   jsii.String(description),
			Metric:             metric,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		a.AddAlarmAction(action)
		a.AddOkAction(action)
	}
	sum := &awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")}
	peak := &awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}

	for _, spec := range functionSpecs {
		fn := s.Functions[spec.name]
		alarm(spec.id+"Errors", spec.name+"-errors",
			fmt.Sprintf("The %s failed (an error it returned, a panic or a timeout) in the last 5 minutes.", spec.description),
			fn.MetricErrors(sum), 1)
		alarm(spec.id+"Throttles", spec.name+"-throttles",
			fmt.Sprintf("Invocations of the %s were throttled: the account's Lambda concurrency is exhausted.", spec.description),
			fn.MetricThrottles(sum), 1)
	}

	var timeout float64
	for _, spec := range functionSpecs {
		if spec.name == FnScheduler {
			timeout = spec.timeoutSecs
		}
	}
	alarm("SchedulerDuration", "scheduler-duration",
		fmt.Sprintf("A scheduler tick ran for more than %.0f%% of its %.0f s timeout: due work is outgrowing one tick.",
			schedulerDurationAlarmRatio*100, timeout),
		s.Functions[FnScheduler].MetricDuration(peak), schedulerDurationAlarmRatio*timeout*1000)

	alarm("SchedulerDeadLetters", "scheduler-dead-letters",
		"Scheduler ticks failed or could not be delivered; they are kept in "+s.Config.baseName()+"-scheduler-dlq.",
		s.SchedulerDLQ.MetricApproximateNumberOfMessagesVisible(peak), 1)
	alarm("AgentDeadLetters", "agent-dead-letters",
		"Agent tasks kept failing and were moved to "+s.Config.Names().DeadLetterQueueName()+".",
		s.AgentDLQ.MetricApproximateNumberOfMessagesVisible(peak), 1)

	alarm("NotifierDeadLetters", "notifier-dead-letters",
		"Events could not be put on the notifier's queue, or the notifier failed on them repeatedly; they are kept in "+
			s.Config.baseName()+"-notifier-dlq.",
		s.NotifierDLQ.MetricApproximateNumberOfMessagesVisible(peak), 1)
	// A rule on a custom bus reports its metrics under both the bus's and the rule's name.
	alarm("NotifierRuleFailures", "notifier-rule-failures",
		"EventBridge failed to deliver domain events to the notifier's queue and could not keep them either.",
		awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:  jsii.String("AWS/Events"),
			MetricName: jsii.String("FailedInvocations"),
			DimensionsMap: &map[string]*string{
				"EventBusName": s.EventBus.EventBusName(),
				"RuleName":     s.NotifierRule.RuleName(),
			},
			Period:    five,
			Statistic: jsii.String("Sum"),
		}), 1)
	alarm("NotifierBacklog", "notifier-backlog",
		fmt.Sprintf("An event has waited more than %d s for the notifier: it is failing, throttled or cannot keep up.",
			notifierBacklogAlarmSeconds),
		s.NotifierQueue.MetricApproximateAgeOfOldestMessage(peak), notifierBacklogAlarmSeconds)

	alarm("ApiServerErrors", "api-5xx",
		"The HTTP API answered with 5xx: a function failed or timed out, or the authorizer did.",
		s.API.MetricServerError(sum), 1)
}
