package controlplane_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/restic-monitor/restic-monitor/infra/controlplane"
)

func configFrom(t *testing.T, context map[string]any, env map[string]string) (controlplane.Config, error) {
	t.Helper()
	merged := map[string]any{}
	for k, v := range flags {
		merged[k] = v
	}
	for k, v := range context {
		merged[k] = v
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &merged})
	return controlplane.ConfigFrom(app.Node(), func(k string) string { return env[k] })
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := configFrom(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := controlplane.Config{
		Stage:              "prod",
		OpenAPIPath:        "../docs/openapi.yaml",
		LambdaDir:          "../bin/lambda",
		LogRetentionDays:   30,
		AuditRetentionDays: 365,
		LogLevel:           "info",
		Packaging:          controlplane.PackagingCDK,
	}
	if cfg != want {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
	if got := cfg.StackName(); got != "restic-monitor" {
		t.Errorf("stack name: got %s, want restic-monitor", got)
	}
}

func TestConfigContextBeatsEnvironment(t *testing.T) {
	env := map[string]string{
		"RM_STAGE": "staging", "RM_TENANT": "globex", "CDK_DEFAULT_ACCOUNT": "111111111111",
		"AWS_REGION": "eu-west-1", "RM_LOG_RETENTION_DAYS": "90", "LOG_LEVEL": "DEBUG",
	}
	cfg, err := configFrom(t, nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stage != "staging" || cfg.Tenant != "globex" || cfg.Account != "111111111111" || cfg.Region != "eu-west-1" ||
		cfg.LogRetentionDays != 90 || cfg.LogLevel != "debug" {
		t.Errorf("from the environment: got %+v", cfg)
	}
	if got := cfg.StackName(); got != "restic-monitor-globex-staging" {
		t.Errorf("stack name: got %s, want restic-monitor-globex-staging", got)
	}

	cfg, err = configFrom(t, map[string]any{"stage": "dev", "tenant": "acme", "region": "us-east-2", "logRetentionDays": 14}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stage != "dev" || cfg.Tenant != "acme" || cfg.Region != "us-east-2" || cfg.LogRetentionDays != 14 {
		t.Errorf("context over environment: got %+v", cfg)
	}
}

func TestConfigRejects(t *testing.T) {
	for name, c := range map[string]struct {
		context map[string]any
		want    string
	}{
		"stage too long":          {map[string]any{"stage": "production1"}, "stage"},
		"stage upper case":        {map[string]any{"stage": "Prod"}, "stage"},
		"tenant with _":           {map[string]any{"tenant": "ac_me"}, "tenant"},
		"tenant too short":        {map[string]any{"tenant": "ab"}, "tenant"},
		"odd retention":           {map[string]any{"logRetentionDays": 31}, "retention"},
		"retention not number":    {map[string]any{"logRetentionDays": "month"}, "retention"},
		"log level":               {map[string]any{"logLevel": "verbose"}, "log level"},
		"packaging":               {map[string]any{"packaging": "zip"}, "packaging"},
		"SES identity":            {map[string]any{"sesIdentity": "not a domain"}, "SES identity"},
		"SES address":             {map[string]any{"sesIdentity": "alerts@@example.com"}, "SES identity"},
		"sender without identity": {map[string]any{"notifyFrom": "alerts@example.com"}, "sesIdentity"},
		"sender other address":    {map[string]any{"sesIdentity": "alerts@example.com", "notifyFrom": "ops@example.com"}, "only be sent from it"},
		"domain without sender":   {map[string]any{"sesIdentity": "example.com"}, "notifyFrom"},
		"sender outside domain":   {map[string]any{"sesIdentity": "example.com", "notifyFrom": "alerts@example.org"}, "notifyFrom"},
		"public URL http":         {map[string]any{"publicUrl": "http://monitor.example.com"}, "public URL"},
		"public URL query":        {map[string]any{"publicUrl": "https://monitor.example.com/?a=b"}, "public URL"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := configFrom(t, c.context, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error about %s", err, c.want)
			}
		})
	}
}

func TestConfigEmailSettings(t *testing.T) {
	cfg, err := configFrom(t, map[string]any{"sesIdentity": "alerts@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SESIdentity != "alerts@example.com" || cfg.Sender() != "alerts@example.com" {
		t.Errorf("an address identity sends as itself: got identity %q, sender %q", cfg.SESIdentity, cfg.Sender())
	}
	cfg, err = configFrom(t, nil, map[string]string{
		"RM_SES_IDENTITY": "example.com", "RM_NOTIFY_FROM": "backups@example.com", "RM_PUBLIC_URL": "https://monitor.example.com/",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SESIdentity != "example.com" || cfg.Sender() != "backups@example.com" || cfg.PublicURL != "https://monitor.example.com" {
		t.Errorf("a domain identity with its sender: got %+v", cfg)
	}
	if cfg, _ := configFrom(t, nil, nil); cfg.Sender() != "" {
		t.Errorf("no identity, no sender: got %q", cfg.Sender())
	}
}

func TestQueuePrefixes(t *testing.T) {
	cfg := controlplane.Config{Stage: "prod"}
	if got := cfg.AgentQueuePrefix(); got != cfg.Names().QueuePrefix() || got != "rm-prod-" {
		t.Errorf("shared: got %s, want rm-prod-", got)
	}
	cfg.Tenant = "acme"
	if got := cfg.AgentQueuePrefix(); got != "rm-prod-acme-" {
		t.Errorf("tenant: got %s, want rm-prod-acme-", got)
	}
	// Every agent queue of the tenant falls under the prefix; the dead-letter queue, which holds
	// every agent's dead letters, does not, so the agents' role cannot reach it.
	if q := cfg.Names().AgentQueueName("acme", "01J00000000000000000000000"); !strings.HasPrefix(q, cfg.AgentQueuePrefix()) {
		t.Errorf("queue %s is outside %s", q, cfg.AgentQueuePrefix())
	}
	if q := cfg.Names().DeadLetterQueueName(); strings.HasPrefix(q, cfg.AgentQueuePrefix()) {
		t.Errorf("dead-letter queue %s is under %s", q, cfg.AgentQueuePrefix())
	}
}
