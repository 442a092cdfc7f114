// Package controlplane is restic-monitor's deployment as one CDK stack: the table, the five
// Lambdas, the HTTP API and its routes, the schedule, the role agents assume for their queues,
// the dead-letter queues and the alarms. Table keys, queue attributes and names come from
// internal/resources, so the cloud, a laptop and the tests build the same resources.
package controlplane

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// DefaultStage is the stage deployed when neither context nor environment names one. Its stack
// name carries no stage suffix: `cdk deploy -c tenant=acme` deploys restic-monitor-acme.
const DefaultStage = "prod"

// Packaging says who uploads the Lambda code of the synthesized template.
type Packaging string

const (
	// PackagingCDK leaves assets to the CDK CLI (`cdk deploy`), which needs `cdk bootstrap`.
	PackagingCDK Packaging = "cdk"
	// PackagingSAM points each function's Code at its local folder and drops the bootstrap
	// version check, so `sam deploy` can package and deploy the template on its own.
	PackagingSAM Packaging = "sam"
)

// Config is everything that varies between deployments.
type Config struct {
	Stage  string
	Tenant string // empty for the shared multi-tenant deployment

	// Account and Region pin the stack to an environment; empty leaves it environment-agnostic,
	// which is what synthesizing without credentials needs.
	Account, Region string

	// OpenAPIPath is the document whose paths become the HTTP API's routes.
	OpenAPIPath string
	// LambdaDir holds one folder per function (api, agentapi, authorizer, scheduler, notifier), each with
	// the `bootstrap` executable that `make build` writes.
	LambdaDir string

	// LogRetentionDays bounds the functions' and the API's CloudWatch logs, and is handed to
	// the functions (RM_LOG_RETENTION_DAYS) for the run logs they store.
	LogRetentionDays int
	// AuditRetentionDays is how long the audit log keeps an entry (RM_AUDIT_RETENTION).
	AuditRetentionDays int
	LogLevel           string
	// AlarmEmail, when set, subscribes an address to the alarm topic.
	AlarmEmail string

	// SESIdentity is the SES identity (an email address or a domain) notification email is
	// sent from. The API and the notifier may send as this identity only; empty grants no SES
	// permission at all, and email channels cannot deliver.
	SESIdentity string
	// NotifyFrom is the sender address of notification email (RM_NOTIFY_FROM): SESIdentity
	// itself when that is an address, else an address in its domain.
	NotifyFrom string
	// PublicURL is where people reach the API, for links in notifications and confirmation
	// email (RM_PUBLIC_URL); empty means the HTTP API's own endpoint.
	PublicURL string

	Packaging Packaging
}

// Names returns the shared resource names of the deployment.
func (c Config) Names() resources.Names { return resources.Names{Stage: c.Stage, Tenant: c.Tenant} }

// StackName names the CloudFormation stack: restic-monitor, restic-monitor-<tenant>, and with a
// stage other than DefaultStage a -<stage> suffix, so stages can share an account.
func (c Config) StackName() string {
	name := "restic-monitor"
	if c.Tenant != "" {
		name += "-" + c.Tenant
	}
	if c.Stage != DefaultStage {
		name += "-" + c.Stage
	}
	return name
}

// baseName starts the names of the stack's own named resources (queues, topic, alarms, API). It
// is the table's name, which resources derives from stage and tenant.
func (c Config) baseName() string { return c.Names().TableName() }

// AgentQueuePrefix is the name prefix of every agent queue this deployment may touch:
// rm-<stage>- for the shared deployment, rm-<stage>-<tenant>- for a tenant's own. IAM policies
// are limited to it.
func (c Config) AgentQueuePrefix() string {
	p := c.Names().QueuePrefix()
	if c.Tenant != "" {
		p += c.Tenant + "-"
	}
	return p
}

// retentionDays are the retention periods CloudWatch Logs accepts, by number of days.
var retentionDays = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
	150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
	1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
	2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS, 3288: awslogs.RetentionDays_NINE_YEARS,
	3653: awslogs.RetentionDays_TEN_YEARS,
}

var validLogLevels = []string{"debug", "info", "warn", "error"}

// Validate reports the first setting a deployment cannot be built from.
func (c Config) Validate() error {
	if !resources.ValidStage(c.Stage) {
		return fmt.Errorf("stage %q: want 1–10 lowercase letters and digits, starting with a letter", c.Stage)
	}
	if c.Tenant != "" && !domain.ValidTenantID(c.Tenant) {
		return fmt.Errorf("tenant %q: want 3–32 lowercase letters, digits and inner hyphens", c.Tenant)
	}
	if c.AuditRetentionDays < 1 || c.AuditRetentionDays > 3650 {
		return fmt.Errorf("audit retention %d days: must be 1–3650", c.AuditRetentionDays)
	}
	if _, ok := retentionDays[c.LogRetentionDays]; !ok {
		days := make([]int, 0, len(retentionDays))
		for d := range retentionDays {
			days = append(days, d)
		}
		sort.Ints(days)
		return fmt.Errorf("log retention %d days: CloudWatch Logs accepts only %v", c.LogRetentionDays, days)
	}
	if !slices.Contains(validLogLevels, c.LogLevel) {
		return fmt.Errorf("log level %q: want one of %v", c.LogLevel, validLogLevels)
	}
	if c.Packaging != PackagingCDK && c.Packaging != PackagingSAM {
		return fmt.Errorf("packaging %q: want %q or %q", c.Packaging, PackagingCDK, PackagingSAM)
	}
	if err := c.validateEmail(); err != nil {
		return err
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("public URL %q: want an https URL without query or fragment", c.PublicURL)
		}
	}
	if c.OpenAPIPath == "" || c.LambdaDir == "" {
		return fmt.Errorf("the OpenAPI document and the Lambda folder must be named")
	}
	return nil
}

// domainName is a DNS name of at least two labels, as SES verifies domains.
var domainName = regexp.MustCompile(`^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

func (c Config) validateEmail() error {
	switch {
	case c.SESIdentity == "" && c.NotifyFrom != "":
		return fmt.Errorf("notify from %q: name the SES identity it belongs to (sesIdentity)", c.NotifyFrom)
	case c.SESIdentity == "":
		return nil
	case strings.Contains(c.SESIdentity, "@"):
		if !domain.ValidEmail(c.SESIdentity) {
			return fmt.Errorf("SES identity %q: want an email address or a domain", c.SESIdentity)
		}
		if c.NotifyFrom != "" && !strings.EqualFold(c.NotifyFrom, c.SESIdentity) {
			return fmt.Errorf("notify from %q: SES identity %s is one address, so mail can only be sent from it", c.NotifyFrom, c.SESIdentity)
		}
	default:
		if len(c.SESIdentity) > 253 || !domainName.MatchString(c.SESIdentity) {
			return fmt.Errorf("SES identity %q: want an email address or a domain", c.SESIdentity)
		}
		at := strings.LastIndex(c.NotifyFrom, "@")
		if c.NotifyFrom == "" || !domain.ValidEmail(c.NotifyFrom) || !strings.EqualFold(c.NotifyFrom[at+1:], c.SESIdentity) {
			return fmt.Errorf("notify from %q: with the domain identity %s, name a sender address in that domain (notifyFrom)", c.NotifyFrom, c.SESIdentity)
		}
	}
	return nil
}

// Sender is the address notification email is sent from, or "" when the deployment sends none.
func (c Config) Sender() string {
	if c.NotifyFrom == "" && strings.Contains(c.SESIdentity, "@") {
		return c.SESIdentity
	}
	return c.NotifyFrom
}

// ConfigFrom reads the deployment's settings from the CDK context (`-c key=value` or cdk.json),
// falling back to the environment that getenv reads, then to defaults:
//
//	context            environment                                      default
//	stage              RM_STAGE                                         prod
//	tenant             RM_TENANT                                        (shared)
//	account            CDK_DEFAULT_ACCOUNT                              (environment-agnostic)
//	region             CDK_DEFAULT_REGION, AWS_REGION, AWS_DEFAULT_REGION (environment-agnostic)
//	openapi            RM_OPENAPI                                       ../docs/openapi.yaml
//	lambdaDir          RM_LAMBDA_DIR                                    ../bin/lambda
//	logRetentionDays   RM_LOG_RETENTION_DAYS                            30
//	auditRetentionDays RM_AUDIT_RETENTION                               365
//	logLevel           LOG_LEVEL                                        info
//	alarmEmail         RM_ALARM_EMAIL                                   (no subscription)
//	sesIdentity        RM_SES_IDENTITY                                  (no email notifications)
//	notifyFrom         RM_NOTIFY_FROM                                   sesIdentity, if an address
//	publicUrl          RM_PUBLIC_URL                                    the HTTP API's endpoint
//	packaging          RM_PACKAGING                                     cdk
func ConfigFrom(node constructs.Node, getenv func(string) string) (Config, error) {
	get := func(key string, envs ...string) string {
		if v := node.TryGetContext(jsii.String(key)); v != nil {
			return strings.TrimSpace(fmt.Sprint(v))
		}
		for _, e := range envs {
			if v := strings.TrimSpace(getenv(e)); v != "" {
				return v
			}
		}
		return ""
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	days, err := strconv.Atoi(or(get("logRetentionDays", "RM_LOG_RETENTION_DAYS"), "30"))
	if err != nil {
		return Config{}, fmt.Errorf("log retention days: %w", err)
	}
	auditDays, err := strconv.Atoi(strings.TrimSuffix(or(get("auditRetentionDays", "RM_AUDIT_RETENTION"), "365"), "d"))
	if err != nil {
		return Config{}, fmt.Errorf("audit retention days: %w", err)
	}
	cfg := Config{
		AuditRetentionDays: auditDays,
		Stage:              or(get("stage", "RM_STAGE"), DefaultStage),
		Tenant:             get("tenant", "RM_TENANT"),
		Account:            get("account", "CDK_DEFAULT_ACCOUNT"),
		Region:             get("region", "CDK_DEFAULT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
		OpenAPIPath:        or(get("openapi", "RM_OPENAPI"), "../docs/openapi.yaml"),
		LambdaDir:          or(get("lambdaDir", "RM_LAMBDA_DIR"), "../bin/lambda"),
		LogRetentionDays:   days,
		LogLevel:           strings.ToLower(or(get("logLevel", "LOG_LEVEL"), "info")),
		AlarmEmail:         get("alarmEmail", "RM_ALARM_EMAIL"),
		SESIdentity:        get("sesIdentity", "RM_SES_IDENTITY"),
		NotifyFrom:         get("notifyFrom", "RM_NOTIFY_FROM"),
		PublicURL:          strings.TrimRight(get("publicUrl", "RM_PUBLIC_URL"), "/"),
		Packaging:          Packaging(or(get("packaging", "RM_PACKAGING"), string(PackagingCDK))),
	}
	return cfg, cfg.Validate()
}

// LoadContext returns the "context" object of a cdk.json file: the feature flags that decide
// what the CDK synthesizes. The CLI passes them to the app itself; an app run directly (make
// synth) or a test must load them, or it builds a different template.
func LoadContext(cdkJSON string) (map[string]any, error) {
	raw, err := os.ReadFile(cdkJSON)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("read %s: %w", cdkJSON, err)
	}
	if len(doc.Context) == 0 {
		return nil, fmt.Errorf("%s has no context", cdkJSON)
	}
	return doc.Context, nil
}
