package controlplane_test

import (
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/jsii-runtime-go"

	"github.com/restic-monitor/restic-monitor/infra/controlplane"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// TestTableMatchesSharedDefinition compares the table in the template with the request that
// local set-up and the integration tests create theirs from (resources.Table).
func TestTableMatchesSharedDefinition(t *testing.T) {
	s := synth(t, baseConfig())
	name := baseConfig().Names().TableName()
	want := resources.Table.CreateTableInput(name)

	_, table := s.resource(t, "AWS::DynamoDB::Table", func(map[string]any) bool { return true })
	got := props(table)

	if got["TableName"] != name {
		t.Errorf("TableName: got %v, want %s", got["TableName"], name)
	}
	if got["BillingMode"] != string(want.BillingMode) {
		t.Errorf("BillingMode: got %v, want %s", got["BillingMode"], want.BillingMode)
	}
	var wantKeys []map[string]any
	for _, k := range want.KeySchema {
		wantKeys = append(wantKeys, map[string]any{"AttributeName": aws.ToString(k.AttributeName), "KeyType": string(k.KeyType)})
	}
	if !jsonEqual(got["KeySchema"], wantKeys) {
		t.Errorf("KeySchema: got %s, want %s", asJSON(got["KeySchema"]), asJSON(wantKeys))
	}

	var gotAttrs, wantAttrs []string
	for _, a := range got["AttributeDefinitions"].([]any) {
		m := a.(map[string]any)
		gotAttrs = append(gotAttrs, m["AttributeName"].(string)+":"+m["AttributeType"].(string))
	}
	for _, a := range want.AttributeDefinitions {
		wantAttrs = append(wantAttrs, aws.ToString(a.AttributeName)+":"+string(a.AttributeType))
	}
	sort.Strings(gotAttrs)
	sort.Strings(wantAttrs)
	if strings.Join(gotAttrs, ",") != strings.Join(wantAttrs, ",") {
		t.Errorf("AttributeDefinitions: got %v, want %v", gotAttrs, wantAttrs)
	}

	gotIndexes := map[string]string{}
	for _, ix := range got["GlobalSecondaryIndexes"].([]any) {
		m := ix.(map[string]any)
		gotIndexes[m["IndexName"].(string)] = asJSON(map[string]any{"KeySchema": m["KeySchema"], "Projection": m["Projection"]})
	}
	if len(gotIndexes) != len(want.GlobalSecondaryIndexes) {
		t.Errorf("got %d indexes, want %d", len(gotIndexes), len(want.GlobalSecondaryIndexes))
	}
	for _, ix := range want.GlobalSecondaryIndexes {
		var keys []map[string]any
		for _, k := range ix.KeySchema {
			keys = append(keys, map[string]any{"AttributeName": aws.ToString(k.AttributeName), "KeyType": string(k.KeyType)})
		}
		wantIndex := asJSON(map[string]any{"KeySchema": keys, "Projection": map[string]any{"ProjectionType": string(ix.Projection.ProjectionType)}})
		if gotIndexes[aws.ToString(ix.IndexName)] != wantIndex {
			t.Errorf("index %s: got %s, want %s", aws.ToString(ix.IndexName), gotIndexes[aws.ToString(ix.IndexName)], wantIndex)
		}
	}

	wantTTL := map[string]any{"AttributeName": resources.Table.TTLAttribute, "Enabled": true}
	if !jsonEqual(got["TimeToLiveSpecification"], wantTTL) {
		t.Errorf("TimeToLiveSpecification: got %s, want %s", asJSON(got["TimeToLiveSpecification"]), asJSON(wantTTL))
	}
	if !jsonEqual(got["PointInTimeRecoverySpecification"], map[string]any{"PointInTimeRecoveryEnabled": true}) {
		t.Errorf("PointInTimeRecoverySpecification: got %s, want enabled", asJSON(got["PointInTimeRecoverySpecification"]))
	}
	if got["DeletionProtectionEnabled"] != true {
		t.Errorf("DeletionProtectionEnabled: got %v, want true", got["DeletionProtectionEnabled"])
	}
	if table["DeletionPolicy"] != "Retain" || table["UpdateReplacePolicy"] != "Retain" {
		t.Errorf("DeletionPolicy, UpdateReplacePolicy: got %v, %v, want Retain, Retain", table["DeletionPolicy"], table["UpdateReplacePolicy"])
	}
}

func TestFunctions(t *testing.T) {
	s := synth(t, baseConfig())
	s.template.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(5))

	tableID := s.logicalID(s.stack.Table)
	agentRoleID := s.logicalID(s.stack.AgentRole)
	busID := s.logicalID(s.stack.EventBus)
	sizes := map[string][2]float64{ // memory MB, timeout s
		controlplane.FnAPI:        {512, 20},
		controlplane.FnAgentAPI:   {512, 20},
		controlplane.FnAuthorizer: {256, 5},
		controlplane.FnScheduler:  {512, 50},
		controlplane.FnNotifier:   {256, 120},
	}
	// Only the functions that seal, open or send learn where the key is and the links' base.
	notifyEnv := map[string]any{
		"RM_SECRET_KEY_ARN": ref(s.logicalID(s.stack.SecretKey)),
		"RM_PUBLIC_URL":     map[string]any{"Fn::GetAtt": getAtt(s.logicalID(s.stack.API), "ApiEndpoint")},
	}
	for name, size := range sizes {
		t.Run(name, func(t *testing.T) {
			_, fn := s.function(t, name)
			p := props(fn)
			if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" || !jsonEqual(p["Architectures"], []string{"arm64"}) {
				t.Errorf("runtime, handler, architectures: got %v, %v, %v, want provided.al2023, bootstrap, [arm64]",
					p["Runtime"], p["Handler"], p["Architectures"])
			}
			if p["MemorySize"] != size[0] || p["Timeout"] != size[1] {
				t.Errorf("memory, timeout: got %v MB, %v s, want %v MB, %v s", p["MemorySize"], p["Timeout"], size[0], size[1])
			}
			if code, _ := p["Code"].(map[string]any); code["S3Bucket"] == nil || code["S3Key"] == nil {
				t.Errorf("the code is not an uploaded asset: %s", asJSON(p["Code"]))
			}
			wantEnv := map[string]any{
				"RM_TABLE":              ref(tableID),
				"RM_STAGE":              "prod",
				"RM_TENANT":             "",
				"RM_AGENT_ROLE_ARN":     arnOf(agentRoleID),
				"RM_QUEUE_PREFIX":       "rm-prod-",
				"RM_LOG_RETENTION_DAYS": "30",
				"RM_AUDIT_RETENTION":    "365",
				"RM_EVENT_BUS":          ref(busID),
				"LOG_LEVEL":             "info",
			}
			if name == controlplane.FnAPI || name == controlplane.FnNotifier {
				maps.Copy(wantEnv, notifyEnv)
			}
			gotEnv := p["Environment"].(map[string]any)["Variables"]
			if !jsonEqual(gotEnv, wantEnv) {
				t.Errorf("environment:\ngot  %s\nwant %s", asJSON(gotEnv), asJSON(wantEnv))
			}
			logGroup := p["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)
			retention := props(s.resourcesOfType("AWS::Logs::LogGroup")[logGroup])["RetentionInDays"]
			if retention != float64(30) {
				t.Errorf("log retention: got %v days, want 30", retention)
			}
		})
	}
}

// TestRoutes checks that every operation of the OpenAPI document is a route to the right
// function, behind the authorizer unless it is the registration route.
func TestRoutes(t *testing.T) {
	checkRoutes(t, synth(t, baseConfig()))
}

// TestRealOpenAPIDocument builds the stack from the repository's OpenAPI document: every
// operation there becomes a route to the right function.
func TestRealOpenAPIDocument(t *testing.T) {
	cfg := baseConfig()
	cfg.OpenAPIPath = "../../docs/openapi.yaml"
	checkRoutes(t, synth(t, cfg))
}

func checkRoutes(t *testing.T, s *synthesized) {
	t.Helper()
	want, err := controlplane.LoadRoutes(s.stack.Config.OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	s.template.ResourceCountIs(jsii.String("AWS::ApiGatewayV2::Route"), jsii.Number(float64(len(want))))

	authorizerID, authorizer := s.resource(t, "AWS::ApiGatewayV2::Authorizer", func(map[string]any) bool { return true })
	authorizerFnID, _ := s.function(t, controlplane.FnAuthorizer)
	a := props(authorizer)
	if a["AuthorizerType"] != "REQUEST" || a["AuthorizerPayloadFormatVersion"] != "2.0" || a["EnableSimpleResponses"] != true ||
		!jsonEqual(a["IdentitySource"], []string{"$request.header.Authorization"}) || a["AuthorizerResultTtlInSeconds"] != float64(0) {
		t.Errorf("authorizer: got %s, want a REQUEST authorizer, payload 2.0, simple responses, the Authorization header, no cache", asJSON(a))
	}
	if !strings.Contains(asJSON(a["AuthorizerUri"]), asJSON(getAtt(authorizerFnID, "Arn"))) {
		t.Errorf("authorizer URI: got %s, want the authorizer function's", asJSON(a["AuthorizerUri"]))
	}

	// Each integration, by logical ID, and the function it invokes.
	integrationFn := map[string]string{}
	for id, r := range s.resourcesOfType("AWS::ApiGatewayV2::Integration") {
		uri := props(r)["IntegrationUri"].(map[string]any)["Fn::GetAtt"].([]any)
		integrationFn[id] = uri[0].(string)
	}
	routes := map[string]map[string]any{}
	for _, r := range s.resourcesOfType("AWS::ApiGatewayV2::Route") {
		p := props(r)
		routes[p["RouteKey"].(string)] = p
	}
	for _, r := range want {
		t.Run(r.Key(), func(t *testing.T) {
			p, ok := routes[r.Key()]
			if !ok {
				t.Fatalf("no route %s", r.Key())
			}
			target := p["Target"].(map[string]any)["Fn::Join"].([]any)[1].([]any)
			integration := target[1].(map[string]any)["Ref"].(string)
			wantFn, _ := s.function(t, r.Function)
			if integrationFn[integration] != wantFn {
				t.Errorf("target: got function %s, want %s (%s)", integrationFn[integration], wantFn, r.Function)
			}
			if r.Public {
				if p["AuthorizationType"] != "NONE" || p["AuthorizerId"] != nil {
					t.Errorf("authorization: got %v %v, want NONE", p["AuthorizationType"], p["AuthorizerId"])
				}
			} else if p["AuthorizationType"] != "CUSTOM" || !jsonEqual(p["AuthorizerId"], ref(authorizerID)) {
				t.Errorf("authorization: got %v %v, want CUSTOM by %s", p["AuthorizationType"], asJSON(p["AuthorizerId"]), authorizerID)
			}
		})
	}
}

func TestAPIStage(t *testing.T) {
	s := synth(t, baseConfig())
	s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), assertions.Match_ObjectLike(&map[string]any{
		"StageName":  "$default",
		"AutoDeploy": true,
		"AccessLogSettings": assertions.Match_ObjectLike(&map[string]any{
			"DestinationArn": assertions.Match_AnyValue(),
			"Format":         assertions.Match_StringLikeRegexp(jsii.String(`"routeKey":"\$context.routeKey"`)),
		}),
		"DefaultRouteSettings": assertions.Match_ObjectLike(&map[string]any{
			"ThrottlingRateLimit":  100,
			"ThrottlingBurstLimit": 200,
		}),
	}))
}

func TestSchedule(t *testing.T) {
	s := synth(t, baseConfig())
	schedulerID, _ := s.function(t, controlplane.FnScheduler)
	dlqID := s.logicalID(s.stack.SchedulerDLQ)
	s.template.HasResourceProperties(jsii.String("AWS::Events::Rule"), &map[string]any{
		"ScheduleExpression": "rate(1 minute)",
		"State":              "ENABLED",
		"Targets": []any{assertions.Match_ObjectLike(&map[string]any{
			"Arn":              arnOf(schedulerID),
			"DeadLetterConfig": map[string]any{"Arn": arnOf(dlqID)},
			"RetryPolicy":      map[string]any{"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 2},
		})},
	})
	// A tick that failed in the function is not retried and lands in the same queue.
	s.template.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), &map[string]any{
		"FunctionName":             ref(schedulerID),
		"Qualifier":                "$LATEST",
		"MaximumRetryAttempts":     0,
		"MaximumEventAgeInSeconds": 60,
		"DestinationConfig":        map[string]any{"OnFailure": map[string]any{"Destination": arnOf(dlqID)}},
	})
}

func TestDeadLetterQueues(t *testing.T) {
	s := synth(t, baseConfig())
	for _, name := range []string{"restic-monitor-prod-scheduler-dlq", "restic-monitor-prod-agent-dlq"} {
		s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), &map[string]any{
			"QueueName":              name,
			"MessageRetentionPeriod": resources.DLQRetentionSeconds,
			"SqsManagedSseEnabled":   true,
		})
	}
}

func TestAlarms(t *testing.T) {
	s := synth(t, baseConfig())
	cfg := baseConfig()
	topicID := s.logicalID(s.stack.AlarmTopic)
	alarms := map[string]map[string]any{}
	for _, r := range s.resourcesOfType("AWS::CloudWatch::Alarm") {
		p := props(r)
		alarms[p["AlarmName"].(string)] = p
	}
	if len(alarms) != len(cfg.AlarmNames()) {
		t.Errorf("got %d alarms, want %d", len(alarms), len(cfg.AlarmNames()))
	}
	for _, name := range cfg.AlarmNames() {
		a, ok := alarms[name]
		if !ok {
			t.Errorf("no alarm %s", name)
			continue
		}
		if !jsonEqual(a["AlarmActions"], []any{ref(topicID)}) || !jsonEqual(a["OKActions"], []any{ref(topicID)}) {
			t.Errorf("%s: actions got %s and %s, want the alarm topic", name, asJSON(a["AlarmActions"]), asJSON(a["OKActions"]))
		}
		if a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["TreatMissingData"] != "notBreaching" {
			t.Errorf("%s: got %v, %v", name, a["ComparisonOperator"], a["TreatMissingData"])
		}
	}

	check := func(name, namespace, metric, statistic string, threshold float64, dimension map[string]any) {
		t.Helper()
		a := alarms[name]
		if a == nil {
			return
		}
		got := map[string]any{"Namespace": a["Namespace"], "MetricName": a["MetricName"], "Statistic": a["Statistic"], "Threshold": a["Threshold"], "Dimensions": a["Dimensions"]}
		want := map[string]any{"Namespace": namespace, "MetricName": metric, "Statistic": statistic, "Threshold": threshold, "Dimensions": []any{dimension}}
		if !jsonEqual(got, want) {
			t.Errorf("%s:\ngot  %s\nwant %s", name, asJSON(got), asJSON(want))
		}
	}
	for _, fn := range []string{controlplane.FnAPI, controlplane.FnAgentAPI, controlplane.FnAuthorizer, controlplane.FnScheduler, controlplane.FnNotifier} {
		id, _ := s.function(t, fn)
		dim := map[string]any{"Name": "FunctionName", "Value": ref(id)}
		check("restic-monitor-prod-"+fn+"-errors", "AWS/Lambda", "Errors", "Sum", 1, dim)
		check("restic-monitor-prod-"+fn+"-throttles", "AWS/Lambda", "Throttles", "Sum", 1, dim)
	}
	schedulerID, _ := s.function(t, controlplane.FnScheduler)
	check("restic-monitor-prod-scheduler-duration", "AWS/Lambda", "Duration", "Maximum", 40000,
		map[string]any{"Name": "FunctionName", "Value": ref(schedulerID)})
	check("restic-monitor-prod-agent-dead-letters", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 1,
		map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": getAtt(s.logicalID(s.stack.AgentDLQ), "QueueName")}})
	check("restic-monitor-prod-scheduler-dead-letters", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 1,
		map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": getAtt(s.logicalID(s.stack.SchedulerDLQ), "QueueName")}})
	check("restic-monitor-prod-api-5xx", "AWS/ApiGateway", "5xx", "Sum", 1,
		map[string]any{"Name": "ApiId", "Value": ref(s.logicalID(s.stack.API))})
	check("restic-monitor-prod-notifier-dead-letters", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 1,
		map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": getAtt(s.logicalID(s.stack.NotifierDLQ), "QueueName")}})
	check("restic-monitor-prod-notifier-backlog", "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", 600,
		map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": getAtt(s.logicalID(s.stack.NotifierQueue), "QueueName")}})
	if a := alarms["restic-monitor-prod-notifier-rule-failures"]; a != nil {
		got := map[string]any{"Namespace": a["Namespace"], "MetricName": a["MetricName"], "Statistic": a["Statistic"], "Threshold": a["Threshold"], "Dimensions": a["Dimensions"]}
		want := map[string]any{"Namespace": "AWS/Events", "MetricName": "FailedInvocations", "Statistic": "Sum", "Threshold": 1, "Dimensions": []any{
			map[string]any{"Name": "EventBusName", "Value": ref(s.logicalID(s.stack.EventBus))},
			map[string]any{"Name": "RuleName", "Value": ref(s.logicalID(s.stack.NotifierRule))},
		}}
		if !jsonEqual(got, want) {
			t.Errorf("notifier-rule-failures:\ngot  %s\nwant %s", asJSON(got), asJSON(want))
		}
	}
}

// TestAlarmTopicAcceptsAlarms checks that the topic's policy, which replaces SNS's default one,
// lets CloudWatch publish this deployment's alarms and refuses unencrypted publishing.
func TestAlarmTopicAcceptsAlarms(t *testing.T) {
	s := synth(t, baseConfig())
	_, policy := s.resource(t, "AWS::SNS::TopicPolicy", func(map[string]any) bool { return true })
	var allow, deny bool
	for _, st := range props(policy)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
		m := st.(map[string]any)
		switch {
		case m["Effect"] == "Allow" && asJSON(m["Principal"]) == `{"Service":"cloudwatch.amazonaws.com"}` && m["Action"] == "sns:Publish":
			allow = strings.Contains(asJSON(m["Condition"]), `:alarm:restic-monitor-prod-*`) &&
				strings.Contains(asJSON(m["Condition"]), `"aws:SourceAccount":{"Ref":"AWS::AccountId"}`)
		case m["Effect"] == "Deny" && strings.Contains(asJSON(m["Condition"]), `"aws:SecureTransport":"false"`):
			deny = true
		}
	}
	if !allow || !deny {
		t.Errorf("topic policy: CloudWatch may publish this deployment's alarms %v, plain HTTP refused %v; want both:\n%s",
			allow, deny, asJSON(props(policy)["PolicyDocument"]))
	}
}

func TestOutputs(t *testing.T) {
	s := synth(t, baseConfig())
	outputs := s.json["Outputs"].(map[string]any)
	want := map[string]any{
		"TableName":                  ref(s.logicalID(s.stack.Table)),
		"AgentRoleArn":               arnOf(s.logicalID(s.stack.AgentRole)),
		"AlarmTopicArn":              ref(s.logicalID(s.stack.AlarmTopic)),
		"AgentDeadLetterQueueUrl":    ref(s.logicalID(s.stack.AgentDLQ)),
		"NotifierDeadLetterQueueUrl": ref(s.logicalID(s.stack.NotifierDLQ)),
		"SecretKeyArn":               ref(s.logicalID(s.stack.SecretKey)),
	}
	for name, value := range want {
		o, ok := outputs[name].(map[string]any)
		if !ok {
			t.Errorf("no output %s", name)
			continue
		}
		if !jsonEqual(o["Value"], value) {
			t.Errorf("output %s: got %s, want %s", name, asJSON(o["Value"]), asJSON(value))
		}
	}
	apiURL, ok := outputs["ApiUrl"].(map[string]any)
	if !ok {
		t.Fatal("no output ApiUrl")
	}
	if got := asJSON(apiURL["Value"]); !strings.Contains(got, "https://") || !strings.Contains(got, asJSON(ref(s.logicalID(s.stack.API)))) {
		t.Errorf("output ApiUrl: got %s, want the HTTP API's https URL", got)
	}
}

// TestTenantChangesNames deploys acme's own stack next to the shared one: every name that could
// collide carries the tenant, and the queue permissions shrink to acme's queues.
func TestTenantChangesNames(t *testing.T) {
	cfg := baseConfig()
	cfg.Tenant = "acme"
	s := synth(t, cfg)

	if got := *s.stack.StackName(); got != "restic-monitor-acme" {
		t.Errorf("stack name: got %s, want restic-monitor-acme", got)
	}
	s.template.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), assertions.Match_ObjectLike(&map[string]any{"TableName": "restic-monitor-acme-prod"}))
	s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), assertions.Match_ObjectLike(&map[string]any{"QueueName": "restic-monitor-acme-prod-agent-dlq"}))
	s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), assertions.Match_ObjectLike(&map[string]any{"QueueName": "restic-monitor-acme-prod-scheduler-dlq"}))
	s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), assertions.Match_ObjectLike(&map[string]any{"QueueName": "restic-monitor-acme-prod-notifier"}))
	s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), assertions.Match_ObjectLike(&map[string]any{"QueueName": "restic-monitor-acme-prod-notifier-dlq"}))
	s.template.HasResourceProperties(jsii.String("AWS::SNS::Topic"), assertions.Match_ObjectLike(&map[string]any{"TopicName": "restic-monitor-acme-prod-alarms"}))
	s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Api"), assertions.Match_ObjectLike(&map[string]any{"Name": "restic-monitor-acme-prod"}))
	for _, name := range cfg.AlarmNames() {
		if !strings.HasPrefix(name, "restic-monitor-acme-prod-") {
			t.Errorf("alarm %s does not carry the tenant", name)
		}
		s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), assertions.Match_ObjectLike(&map[string]any{"AlarmName": name}))
	}
	_, fn := s.function(t, controlplane.FnAPI)
	vars := props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
	if vars["RM_TENANT"] != "acme" || vars["RM_QUEUE_PREFIX"] != "rm-prod-" {
		t.Errorf("RM_TENANT, RM_QUEUE_PREFIX: got %v, %v, want acme, rm-prod-", vars["RM_TENANT"], vars["RM_QUEUE_PREFIX"])
	}
	if got := queueResources(t, s); len(got) == 0 || !allHaveSuffix(got, ":rm-prod-acme-*") {
		t.Errorf("queue permissions: got %v, want only rm-prod-acme-* queues", got)
	}
	if got := queueResources(t, synth(t, baseConfig())); len(got) == 0 || !allHaveSuffix(got, ":rm-prod-*") {
		t.Errorf("shared queue permissions: got %v, want rm-prod-* queues", got)
	}

	cfg.Stage = "dev"
	if got := cfg.StackName(); got != "restic-monitor-acme-dev" {
		t.Errorf("stack name of acme's dev stage: got %s, want restic-monitor-acme-dev", got)
	}
}

func allHaveSuffix(list []string, suffix string) bool {
	for _, s := range list {
		if !strings.HasSuffix(s, suffix) {
			return false
		}
	}
	return true
}

// queueResources returns, rendered as strings, the resources of every statement that grants an
// action on agent queues.
func queueResources(t *testing.T, s *synthesized) []string {
	t.Helper()
	var out []string
	for _, st := range allStatements(s.json) {
		if !strings.HasPrefix(strings.Join(sortedStrings(st.doc["Action"]), ","), "sqs:") || st.doc["Effect"] != "Allow" {
			continue
		}
		for _, r := range resourceList(st.doc["Resource"]) {
			// A plain string is no queue pattern: "*", for actions that take no resource.
			m, ok := r.(map[string]any)
			if !ok {
				continue
			}
			if j, ok := m["Fn::Join"]; ok {
				var b strings.Builder
				for _, part := range j.([]any)[1].([]any) {
					if str, ok := part.(string); ok {
						b.WriteString(str)
					}
				}
				if strings.HasSuffix(b.String(), "*") {
					out = append(out, b.String())
				}
			}
		}
	}
	return out
}

func TestSAMPackaging(t *testing.T) {
	cfg := baseConfig()
	cfg.Packaging = controlplane.PackagingSAM
	s := synth(t, cfg)
	if params, ok := s.json["Parameters"].(map[string]any); ok && params["BootstrapVersion"] != nil {
		t.Error("the SAM template still checks the CDK bootstrap version")
	}
	if rules, ok := s.json["Rules"].(map[string]any); ok && rules["CheckBootstrapVersion"] != nil {
		t.Error("the SAM template still has the CDK bootstrap rule")
	}
	outdir := *awscdk.Stage_Of(s.stack.Stack).Outdir()
	for name := range s.stack.Functions {
		_, fn := s.function(t, name)
		code, ok := props(fn)["Code"].(string)
		if !ok {
			t.Errorf("%s: Code is %s, want a local path for sam deploy", name, asJSON(props(fn)["Code"]))
			continue
		}
		if _, err := os.Stat(filepath.Join(outdir, code, "bootstrap")); err != nil {
			t.Errorf("%s: Code %s has no bootstrap next to the template: %v", name, code, err)
		}
	}
}

func TestMissingExecutablesAreNamed(t *testing.T) {
	cfg := baseConfig()
	cfg.LambdaDir = t.TempDir()
	_, err := controlplane.New(awscdk.NewApp(&awscdk.AppProps{Context: &flags}), cfg)
	if err == nil || !strings.Contains(err.Error(), "make build") || !strings.Contains(err.Error(), filepath.Join("scheduler", "bootstrap")) {
		t.Errorf("got %v, want an error that names the missing executables and make build", err)
	}
}
