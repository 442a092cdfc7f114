package controlplane_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/restic-monitor/restic-monitor/infra/controlplane"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// TestNotifierPipeline follows an event from the bus to the notifier: a rule on the
// deployment's bus for restic-monitor's events, an encrypted queue read in batches, and one
// dead-letter queue for what cannot be put on the queue or keeps failing.
func TestNotifierPipeline(t *testing.T) {
	s := synth(t, baseConfig())
	busID := s.logicalID(s.stack.EventBus)
	queueID := s.logicalID(s.stack.NotifierQueue)
	dlqID := s.logicalID(s.stack.NotifierDLQ)
	notifierID, _ := s.function(t, controlplane.FnNotifier)

	s.template.HasResourceProperties(jsii.String("AWS::Events::Rule"), &map[string]any{
		"EventBusName": ref(busID),
		"EventPattern": map[string]any{"source": []any{resources.EventSource}},
		"State":        "ENABLED",
		"Targets": []any{assertions.Match_ObjectLike(&map[string]any{
			"Arn":              arnOf(queueID),
			"DeadLetterConfig": map[string]any{"Arn": arnOf(dlqID)},
			"RetryPolicy":      map[string]any{"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185},
		})},
	})

	s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), &map[string]any{
		"QueueName":            "restic-monitor-prod-notifier",
		"VisibilityTimeout":    720, // six times the notifier's timeout
		"SqsManagedSseEnabled": true,
		"RedrivePolicy":        map[string]any{"deadLetterTargetArn": arnOf(dlqID), "maxReceiveCount": 5},
	})
	s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), &map[string]any{
		"QueueName":              "restic-monitor-prod-notifier-dlq",
		"MessageRetentionPeriod": resources.DLQRetentionSeconds,
		"SqsManagedSseEnabled":   true,
	})

	_, mapping := s.resource(t, "AWS::Lambda::EventSourceMapping", func(map[string]any) bool { return true })
	want := map[string]any{
		"EventSourceArn":                 arnOf(queueID),
		"FunctionName":                   ref(notifierID),
		"BatchSize":                      100,
		"MaximumBatchingWindowInSeconds": 10,
		"Tags":                           []any{map[string]any{"Key": "restic-monitor:stage", "Value": "prod"}},
	}
	if got := props(mapping); !jsonEqual(got, want) {
		t.Errorf("event source mapping:\ngot  %s\nwant %s (no partial batch failures: the handler fails a batch or none of it)", asJSON(got), asJSON(want))
	}
	_, fn := s.function(t, controlplane.FnNotifier)
	if timeout := props(fn)["Timeout"].(float64); timeout <= 10 {
		t.Errorf("the notifier's timeout %v s does not outlast its batching window", timeout)
	}

	// In the queues' resource policies only EventBridge, for this rule, may put messages on the
	// queue and its dead-letter queue.
	ruleID := s.logicalID(s.stack.NotifierRule)
	// The target's grant also lets it look the queue up; the dead-letter queue is only sent to.
	sends := map[string]string{
		queueID: `["sqs:GetQueueAttributes","sqs:GetQueueUrl","sqs:SendMessage"]`,
		dlqID:   `["sqs:SendMessage"]`,
	}
	for q, actions := range sends {
		var found bool
		for _, st := range allStatements(s.json) {
			m := st.doc
			if m["Effect"] != "Allow" || m["Principal"] == nil || !strings.Contains(asJSON(m["Resource"]), asJSON(arnOf(q))) {
				continue
			}
			found = true
			if asJSON(m["Principal"]) != `{"Service":"events.amazonaws.com"}` || asJSON(sortedStrings(m["Action"])) != actions ||
				!strings.Contains(asJSON(m["Condition"]), asJSON(arnOf(ruleID))) {
				t.Errorf("queue %s allows more than the rule sending to it: %s", q, asJSON(m))
			}
		}
		if !found {
			t.Errorf("queue %s: EventBridge may not send to it", q)
		}
	}
}

// TestSecretKey checks the generated sealing key: URL-safe base64 of 32 bytes, kept when the
// stack goes, and readable by the API and the notifier alone (TestLeastPrivilege).
func TestSecretKey(t *testing.T) {
	s := synth(t, baseConfig())
	id := s.logicalID(s.stack.SecretKey)
	secret := s.resourcesOfType("AWS::SecretsManager::Secret")[id]
	if secret == nil {
		t.Fatal("no secret key")
	}
	if secret["DeletionPolicy"] != "Retain" || secret["UpdateReplacePolicy"] != "Retain" {
		t.Errorf("DeletionPolicy, UpdateReplacePolicy: got %v, %v, want Retain", secret["DeletionPolicy"], secret["UpdateReplacePolicy"])
	}
	gen := props(secret)["GenerateSecretString"].(map[string]any)
	if gen["PasswordLength"] != float64(43) || gen["IncludeSpace"] != false || gen["RequireEachIncludedType"] != false {
		t.Errorf("generator: got %s", asJSON(gen))
	}
	// What remains of the printable ASCII characters Secrets Manager draws from must be exactly
	// the URL-safe base64 alphabet.
	excluded := gen["ExcludeCharacters"].(string)
	var alphabet strings.Builder
	for c := byte('!'); c <= '~'; c++ {
		if !strings.ContainsRune(excluded, rune(c)) {
			alphabet.WriteByte(c)
		}
	}
	const urlSafe = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
	if alphabet.String() != urlSafe {
		t.Errorf("generated characters: got %q, want %q", alphabet.String(), urlSafe)
	}
	for _, name := range []string{controlplane.FnAgentAPI, controlplane.FnAuthorizer, controlplane.FnScheduler} {
		_, fn := s.function(t, name)
		if strings.Contains(asJSON(props(fn)["Environment"]), id) {
			t.Errorf("%s is told where the secret key is", name)
		}
	}
}

// TestNotificationSettings hands the notifier and the API the sender and public URL the
// deployment names.
func TestNotificationSettings(t *testing.T) {
	cfg := baseConfig()
	cfg.SESIdentity, cfg.NotifyFrom, cfg.PublicURL = "example.com", "backups@example.com", "https://monitor.example.com"
	s := synth(t, cfg)
	for _, name := range []string{controlplane.FnAPI, controlplane.FnNotifier} {
		_, fn := s.function(t, name)
		vars := props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
		if vars["RM_NOTIFY_FROM"] != "backups@example.com" || vars["RM_PUBLIC_URL"] != "https://monitor.example.com" {
			t.Errorf("%s: RM_NOTIFY_FROM, RM_PUBLIC_URL: got %v, %v", name, vars["RM_NOTIFY_FROM"], vars["RM_PUBLIC_URL"])
		}
	}
	_, fn := s.function(t, controlplane.FnScheduler)
	if vars := props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any); vars["RM_NOTIFY_FROM"] != nil {
		t.Errorf("the scheduler sends no email, yet is told the sender")
	}
	_, fn = synth(t, baseConfig()).function(t, controlplane.FnNotifier)
	if vars := props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any); vars["RM_NOTIFY_FROM"] != nil {
		t.Errorf("without an SES identity the notifier is given a sender: %v", vars["RM_NOTIFY_FROM"])
	}
}
