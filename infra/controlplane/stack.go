package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// The functions, each built by `make build` into LambdaDir/<name>/bootstrap.
const (
	FnAPI        = "api"        // tenant-facing REST API
	FnAgentAPI   = "agentapi"   // agent-facing REST API
	FnAuthorizer = "authorizer" // the HTTP API's Lambda authorizer
	FnScheduler  = "scheduler"  // fired every minute by EventBridge
	FnNotifier   = "notifier"   // delivers the bus's events to notification channels
)

// functionSpec sizes one function. Memory buys CPU as well: Go cold starts and DynamoDB
// round trips get faster up to about 512 MB, past which the API functions gain little.
type functionSpec struct {
	name, id    string
	memoryMB    float64
	timeoutSecs float64
	description string
}

var functionSpecs = []functionSpec{
	// The HTTP API gives up on an integration after 30 s; answering within 20 s leaves the
	// client a real error instead of a gateway timeout.
	{FnAPI, "ApiFunction", 512, 20, "restic-monitor tenant API"},
	{FnAgentAPI, "AgentApiFunction", 512, 20, "restic-monitor agent API"},
	// Every authenticated request waits for the authorizer: one GetItem and one UpdateItem.
	{FnAuthorizer, "AuthorizerFunction", 256, 5, "restic-monitor API authorizer"},
	// A tick must end before the next one starts a minute later; overlapping ticks are safe
	// (slots are claimed conditionally) but waste work. The duration alarm fires at 80 %.
	{FnScheduler, "SchedulerFunction", 512, 50, "restic-monitor scheduler"},
	// One batch is up to notifierBatchSize events; a delivery takes up to four attempts of
	// RM_NOTIFY_TIMEOUT (10 s) with about 7 s of backoff, and a batch's channels are served
	// one after the other. The timeout stays below the claim lease (3 minutes) that keeps a
	// retried batch from sending an event twice.
	{FnNotifier, "NotifierFunction", 256, 120, "restic-monitor notifier"},
}

// The notifier reads its queue in batches: the events one scheduler tick publishes arrive
// within seconds of each other, and a batch lets it send a channel one grouped message for
// them (500 hosts going offline at once) rather than one each.
const (
	notifierBatchSize          = 100
	notifierBatchWindowSeconds = 10
	// A message that failed this many invocations is kept in the notifier's dead-letter queue.
	notifierMaxReceives = 5
	// notifierBacklogAlarmSeconds is how old the oldest waiting event may grow before the
	// backlog alarm fires: far beyond one batching window, so only a stuck notifier trips it.
	notifierBacklogAlarmSeconds = 600
)

// schedulerDurationAlarmRatio is how close to its timeout the scheduler may run before the
// duration alarm fires.
const schedulerDurationAlarmRatio = 0.8

// apiThrottle bounds the whole HTTP API per second, far above what a fleet's heartbeats need and
// low enough that a runaway client cannot run up the bill.
var apiThrottle = &awsapigatewayv2.ThrottleSettings{RateLimit: jsii.Number(100), BurstLimit: jsii.Number(200)}

// Stack is the deployed control plane. Its fields reach the parts that callers and tests need.
type Stack struct {
	awscdk.Stack
	Config     Config
	Routes     []Route
	Table      awsdynamodb.Table
	Functions  map[string]awslambda.Function
	Roles      map[string]awsiam.Role // each function's execution role
	API        awsapigatewayv2.HttpApi
	APIStage   awsapigatewayv2.HttpStage
	AgentRole  awsiam.Role
	AlarmTopic awssns.Topic
	// SchedulerDLQ keeps ticks that EventBridge could not deliver or that failed in the function.
	SchedulerDLQ awssqs.Queue
	// AgentDLQ is the dead-letter queue every agent queue of the deployment redrives to, so
	// that one alarm sees every dead letter and the scheduler drains them into failed tasks.
	// The functions find it by its name, from resources.Names.
	AgentDLQ awssqs.Queue
	// EventBus is the deployment's custom bus, which the scheduler publishes every domain event
	// to from the outbox; notifications are rules on it. Named from resources.Names.
	EventBus awsevents.EventBus
	// NotifierRule sends every restic-monitor event on the bus to NotifierQueue, which the
	// notifier reads in batches. NotifierDLQ keeps the events EventBridge could not put on the
	// queue and the messages the notifier failed on notifierMaxReceives times.
	NotifierRule  awsevents.Rule
	NotifierQueue awssqs.Queue
	NotifierDLQ   awssqs.Queue
	// SecretKey holds the key that seals notification channels' secrets (RM_SECRET_KEY's
	// format). The API and the notifier read it at cold start by its ARN (RM_SECRET_KEY_ARN).
	SecretKey awssecretsmanager.Secret
	// WebBucket holds the dashboard's build; Web serves it, and the API under /v1/*, on one
	// origin.
	WebBucket awss3.Bucket
	Web       awscloudfront.Distribution

	publicRoutes []publicRoute
}

// publicRoute is a route served without the authorizer, with the reason it may be.
type publicRoute struct {
	route awsapigatewayv2.HttpRoute
	key   string
}

// New defines the whole deployment described by cfg as a stack in scope, named cfg.StackName().
func New(scope constructs.Construct, cfg Config) (*Stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	routes, err := LoadRoutes(cfg.OpenAPIPath)
	if err != nil {
		return nil, err
	}
	if err := checkBootstraps(cfg.LambdaDir); err != nil {
		return nil, err
	}

	props := &awscdk.StackProps{
		StackName:   jsii.String(cfg.StackName()),
		Description: jsii.String(description(cfg)),
		// A nil account or region leaves the stack environment-agnostic: it synthesizes with
		// no credentials and resolves both at deploy time.
		Env: &awscdk.Environment{Account: optional(cfg.Account), Region: optional(cfg.Region)},
	}
	if cfg.Packaging == PackagingSAM {
		// The SAM CLI uploads code itself and knows nothing of the CDK bootstrap stack.
		props.Synthesizer = awscdk.NewDefaultStackSynthesizer(&awscdk.DefaultStackSynthesizerProps{
			GenerateBootstrapVersionRule: jsii.Bool(false),
		})
	}
	s := &Stack{
		Stack:     awscdk.NewStack(scope, jsii.String(cfg.StackName()), props),
		Config:    cfg,
		Routes:    routes,
		Functions: map[string]awslambda.Function{},
		Roles:     map[string]awsiam.Role{},
	}
	awscdk.Tags_Of(s.Stack).Add(jsii.String("restic-monitor:stage"), jsii.String(cfg.Stage), nil)
	if cfg.Tenant != "" {
		awscdk.Tags_Of(s.Stack).Add(jsii.String("restic-monitor:tenant"), jsii.String(cfg.Tenant), nil)
	}

	s.Table = newTable(s.Stack, cfg)
	s.SchedulerDLQ = newDeadLetterQueue(s.Stack, "SchedulerDeadLetters", cfg.baseName()+"-scheduler-dlq")
	s.AgentDLQ = newDeadLetterQueue(s.Stack, "AgentDeadLetters", cfg.Names().DeadLetterQueueName())
	s.EventBus = awsevents.NewEventBus(s.Stack, jsii.String("DomainEvents"), &awsevents.EventBusProps{
		EventBusName: jsii.String(cfg.Names().EventBusName()),
		Description:  jsii.String("restic-monitor domain events (" + cfg.baseName() + ")"),
	})
	s.newAlarmTopic()
	s.newSecretKey()
	s.newNotifierQueues()
	s.newHTTPAPI()

	for _, spec := range functionSpecs {
		s.Roles[spec.name] = awsiam.NewRole(s.Stack, jsii.String(spec.id+"Role"), &awsiam.RoleProps{
			AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
			Description: jsii.String("runs the " + spec.description),
		})
	}
	// The agent API hands agents credentials of this role, narrowed by a session policy to the
	// one agent's queue; only the agent API's own role may assume it.
	s.AgentRole = awsiam.NewRole(s.Stack, jsii.String("AgentQueueRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewArnPrincipal(s.Roles[FnAgentAPI].RoleArn()),
		Description: jsii.String("assumed by the agent API for one agent at a time; the session policy names that agent's queue"),
	})

	env := map[string]*string{
		"RM_TABLE":              s.Table.TableName(),
		"RM_STAGE":              jsii.String(cfg.Stage),
		"RM_TENANT":             jsii.String(cfg.Tenant),
		"RM_AGENT_ROLE_ARN":     s.AgentRole.RoleArn(),
		"RM_QUEUE_PREFIX":       jsii.String(cfg.Names().QueuePrefix()),
		"RM_LOG_RETENTION_DAYS": jsii.String(strconv.Itoa(cfg.LogRetentionDays)),
		"RM_AUDIT_RETENTION":    jsii.String(strconv.Itoa(cfg.AuditRetentionDays)),
		"RM_EVENT_BUS":          s.EventBus.EventBusName(),
		"LOG_LEVEL":             jsii.String(cfg.LogLevel),
	}
	// Only the functions that seal or open channel secrets, or send notifications, learn where
	// the key is and whom to send as.
	publicURL := s.Config.PublicURL
	if publicURL == "" {
		publicURL = *s.API.ApiEndpoint()
	}
	notifyEnv := map[string]*string{
		"RM_SECRET_KEY_ARN": s.SecretKey.SecretArn(),
		"RM_PUBLIC_URL":     jsii.String(publicURL),
	}
	if from := s.Config.Sender(); from != "" {
		notifyEnv["RM_NOTIFY_FROM"] = jsii.String(from)
	}
	extraEnv := map[string]map[string]*string{FnAPI: notifyEnv, FnNotifier: notifyEnv}
	for _, spec := range functionSpecs {
		fnEnv := maps.Clone(env)
		maps.Copy(fnEnv, extraEnv[spec.name])
		fn, err := s.newFunction(spec, s.Roles[spec.name], fnEnv)
		if err != nil {
			return nil, err
		}
		s.Functions[spec.name] = fn
	}

	grantLeastPrivilege(s)
	s.newRoutes()
	s.newWeb()
	s.newSchedule()
	s.newNotifications()
	s.newAlarms()
	s.newOutputs()
	suppressFindings(s)
	return s, nil
}

// newAlarmTopic makes the topic every alarm notifies, and subscribes the alarm address if any.
func (s *Stack) newAlarmTopic() {
	s.AlarmTopic = awssns.NewTopic(s.Stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
		TopicName:   jsii.String(s.Config.baseName() + "-alarms"),
		DisplayName: jsii.String("restic-monitor alarms (" + s.Config.baseName() + ")"),
		EnforceSSL:  jsii.Bool(true),
	})
	// The topic's policy (which enforcing TLS creates) replaces SNS's default one, so it names
	// the publisher the alarms need: CloudWatch, for this account's alarms of this deployment.
	s.AlarmTopic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarms"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  jsii.Strings(*s.AlarmTopic.TopicArn()),
		Conditions: &map[string]any{
			"ArnLike": map[string]any{"aws:SourceArn": s.FormatArn(&awscdk.ArnComponents{
				Service:      jsii.String("cloudwatch"),
				Resource:     jsii.String("alarm"),
				ResourceName: jsii.String(s.Config.baseName() + "-*"),
				ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
			})},
			"StringEquals": map[string]any{"aws:SourceAccount": s.Account()},
		},
	}))
	if s.Config.AlarmEmail != "" {
		s.AlarmTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.Config.AlarmEmail), nil))
	}
}

func description(cfg Config) string {
	d := "restic-monitor control plane, stage " + cfg.Stage
	if cfg.Tenant == "" {
		return d + ", shared by all tenants"
	}
	return d + ", tenant " + cfg.Tenant
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return jsii.String(s)
}

// checkBootstraps fails early, naming every function whose executable is missing, instead of
// leaving the CDK to report one missing asset folder.
func checkBootstraps(dir string) error {
	var missing []error
	for _, spec := range functionSpecs {
		p := filepath.Join(dir, spec.name, "bootstrap")
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, fmt.Errorf("%s is missing", p))
		} else if err != nil {
			missing = append(missing, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the Lambda executables are not built (run make build): %w", errors.Join(missing...))
	}
	return nil
}

// newTable builds the single table from resources.Table: its keys, its indexes (all
// attributes projected, all keys strings) and its TTL attribute.
func newTable(scope constructs.Construct, cfg Config) awsdynamodb.Table {
	spec := resources.Table
	key := func(name string) *awsdynamodb.Attribute {
		return &awsdynamodb.Attribute{Name: jsii.String(name), Type: awsdynamodb.AttributeType_STRING}
	}
	t := awsdynamodb.NewTable(scope, jsii.String("Table"), &awsdynamodb.TableProps{
		TableName:           jsii.String(cfg.Names().TableName()),
		PartitionKey:        key(spec.PartitionKey),
		SortKey:             key(spec.SortKey),
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String(spec.TTLAttribute),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		// Every tenant's backup history lives here: neither an API call nor deleting the stack
		// may remove it.
		DeletionProtection: jsii.Bool(true),
		RemovalPolicy:      awscdk.RemovalPolicy_RETAIN,
	})
	for _, ix := range spec.Indexes {
		t.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:      jsii.String(ix.Name),
			PartitionKey:   key(ix.PartitionKey),
			SortKey:        key(ix.SortKey),
			ProjectionType: awsdynamodb.ProjectionType_ALL,
		})
	}
	return t
}

// newDeadLetterQueue makes a queue that keeps what it receives as long as resources keeps the
// agents' dead letters.
func newDeadLetterQueue(scope constructs.Construct, id, name string) awssqs.Queue {
	return awssqs.NewQueue(scope, jsii.String(id), &awssqs.QueueProps{
		QueueName:       jsii.String(name),
		RetentionPeriod: awscdk.Duration_Seconds(jsii.Number(resources.DLQRetentionSeconds)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
}

func (s *Stack) newFunction(spec functionSpec, role awsiam.Role, env map[string]*string) (awslambda.Function, error) {
	logs := awslogs.NewLogGroup(s.Stack, jsii.String(spec.id+"Logs"), &awslogs.LogGroupProps{
		Retention: retentionDays[s.Config.LogRetentionDays],
	})
	// A named statement: the IAM test and cdk-nag's review both read the log stream wildcard
	// through it.
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("WriteOwnLogs"),
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: jsii.Strings(*logs.LogGroupArn()),
	}))
	props := &awslambda.FunctionProps{
		Description:  jsii.String(spec.description),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(s.Config.LambdaDir, spec.name)), nil),
		MemorySize:   jsii.Number(spec.memoryMB),
		Timeout:      awscdk.Duration_Seconds(jsii.Number(spec.timeoutSecs)),
		Role:         role,
		LogGroup:     logs,
		Environment:  &env,
	}
	if spec.name == FnScheduler {
		// A failed tick is not retried: the next one comes within a minute and covers the same
		// due slots. The failure itself is kept in the dead-letter queue, which alarms.
		props.RetryAttempts = jsii.Number(0)
		props.MaxEventAge = awscdk.Duration_Seconds(jsii.Number(60))
		props.OnFailure = awslambdadestinations.NewSqsDestination(s.SchedulerDLQ)
	}
	fn := awslambda.NewFunction(s.Stack, jsii.String(spec.id), props)
	if s.Config.Packaging == PackagingSAM {
		// The asset is staged into the cloud assembly next to the template; `sam deploy`
		// zips the folder a local Code path names and uploads it.
		asset, ok := fn.Node().TryFindChild(jsii.String("Code")).(awss3assets.Asset)
		if !ok {
			return nil, fmt.Errorf("function %s: no code asset to hand to SAM", spec.name)
		}
		cfn := fn.Node().DefaultChild().(awslambda.CfnFunction)
		cfn.AddPropertyOverride(jsii.String("Code"), asset.AssetPath())
		awscdk.Validations_Of(cfn).Acknowledge(&awscdk.Acknowledgment{
			Id:     jsii.String("CloudFormation-Validate::W3002"),
			Reason: jsii.String("a local Code path is meant for sam deploy, which packages it"),
		})
	}
	return fn, nil
}

// newSecretKey generates the sealing key: 43 characters drawn from the 64 of URL-safe base64
// are 32 random bytes in RM_SECRET_KEY's format. It is kept when the stack is deleted, like the
// table whose sealed secrets it opens.
func (s *Stack) newSecretKey() {
	s.SecretKey = awssecretsmanager.NewSecret(s.Stack, jsii.String("NotificationSecretKey"), &awssecretsmanager.SecretProps{
		Description: jsii.String("restic-monitor: the key sealing notification channels' secrets (" + s.Config.baseName() + ")"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength:          jsii.Number(43),
			ExcludeCharacters:       jsii.String("!\"#$%&'()*+,./:;<=>?@[\\]^`{|}~"),
			IncludeSpace:            jsii.Bool(false),
			RequireEachIncludedType: jsii.Bool(false),
		},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
}

// newNotifierQueues makes the notifier's input queue and its dead-letter queue. A message
// stays invisible for six function timeouts while a batch is being delivered, as AWS advises
// for queues a function reads.
func (s *Stack) newNotifierQueues() {
	var timeout float64
	for _, spec := range functionSpecs {
		if spec.name == FnNotifier {
			timeout = spec.timeoutSecs
		}
	}
	s.NotifierDLQ = newDeadLetterQueue(s.Stack, "NotifierDeadLetters", s.Config.Names().NotifierDeadLetterQueueName())
	s.NotifierQueue = awssqs.NewQueue(s.Stack, jsii.String("NotifierQueue"), &awssqs.QueueProps{
		QueueName:         jsii.String(s.Config.Names().NotifierQueueName()),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(6 * timeout)),
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: s.NotifierDLQ, MaxReceiveCount: jsii.Number(notifierMaxReceives)},
	})
}

// newNotifications sends the bus's restic-monitor events to the notifier's queue and the
// queue's batches to the notifier. The handler fails a whole batch or none of it (dedupe by
// event and channel keeps a retried batch from sending twice), so the event source reports no
// partial batch failures.
func (s *Stack) newNotifications() {
	s.NotifierRule = awsevents.NewRule(s.Stack, jsii.String("NotifierEvents"), &awsevents.RuleProps{
		RuleName:     jsii.String(s.Config.Names().NotifierRuleName()),
		Description:  jsii.String("restic-monitor domain events to the notifier (" + s.Config.baseName() + ")"),
		EventBus:     s.EventBus,
		EventPattern: &awsevents.EventPattern{Source: jsii.Strings(resources.EventSource)},
	})
	s.NotifierRule.AddTarget(awseventstargets.NewSqsQueue(s.NotifierQueue, &awseventstargets.SqsQueueProps{
		// EventBridge keeps retrying a queue it cannot reach for a day, then keeps the event.
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(24)),
		RetryAttempts:   jsii.Number(185),
		DeadLetterQueue: s.NotifierDLQ,
	}))
	s.Functions[FnNotifier].AddEventSource(awslambdaeventsources.NewSqsEventSource(s.NotifierQueue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:         jsii.Number(notifierBatchSize),
		MaxBatchingWindow: awscdk.Duration_Seconds(jsii.Number(notifierBatchWindowSeconds)),
	}))
}

// newHTTPAPI makes the HTTP API and its logged stage; newRoutes adds the routes once the
// functions exist, which in turn learn the API's endpoint for the links they send.
func (s *Stack) newHTTPAPI() {
	s.API = awsapigatewayv2.NewHttpApi(s.Stack, jsii.String("HttpApi"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String(s.Config.baseName()),
		Description:        jsii.String("restic-monitor API (" + s.Config.baseName() + ")"),
		CreateDefaultStage: jsii.Bool(false),
	})
	accessLogs := awslogs.NewLogGroup(s.Stack, jsii.String("HttpApiAccessLogs"), &awslogs.LogGroupProps{
		Retention: retentionDays[s.Config.LogRetentionDays],
	})
	s.APIStage = s.API.AddStage(jsii.String("DefaultStage"), &awsapigatewayv2.HttpStageOptions{
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle:   apiThrottle,
	})
	s.APIStage.Node().DefaultChild().(awsapigatewayv2.CfnStage).SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format:         jsii.String(accessLogFormat()),
	})
}

// newRoutes routes every operation of the OpenAPI document to its function, behind the
// authorizer unless the route is public.
func (s *Stack) newRoutes() {
	authorizer := awsapigatewayv2authorizers.NewHttpLambdaAuthorizer(jsii.String("Authorizer"), s.Functions[FnAuthorizer],
		&awsapigatewayv2authorizers.HttpLambdaAuthorizerProps{
			AuthorizerName: jsii.String("restic-monitor"),
			ResponseTypes:  &[]awsapigatewayv2authorizers.HttpLambdaResponseType{awsapigatewayv2authorizers.HttpLambdaResponseType_SIMPLE},
			IdentitySource: jsii.Strings("$request.header.Authorization"),
			// No caching: a revoked API key or agent secret stops working at once, and the
			// authorizer records each key's last use.
			ResultsCacheTtl: awscdk.Duration_Seconds(jsii.Number(0)),
		})
	// One integration per function, invoked through one permission for the whole API rather
	// than one per route, which would crowd the function's resource policy.
	integrations := map[string]awsapigatewayv2.HttpRouteIntegration{}
	for _, fn := range []struct{ name, id string }{{FnAPI, "ApiIntegration"}, {FnAgentAPI, "AgentApiIntegration"}} {
		integrations[fn.name] = awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String(fn.id), s.Functions[fn.name],
			&awsapigatewayv2integrations.HttpLambdaIntegrationProps{ScopePermissionToRoute: jsii.Bool(false)})
	}
	for _, r := range s.Routes {
		var auth awsapigatewayv2.IHttpRouteAuthorizer = authorizer
		if r.Public {
			auth = awsapigatewayv2.NewHttpNoneAuthorizer()
		}
		added := s.API.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(r.Path),
			Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod(r.Method)},
			Integration: integrations[r.Function],
			Authorizer:  auth,
		})
		if r.Public {
			for _, route := range *added {
				s.publicRoutes = append(s.publicRoutes, publicRoute{route: route, key: r.Key()})
			}
		}
	}
}

// accessLogFormat is one JSON object per request, with what it takes to follow a request from
// the gateway into a function's logs.
func accessLogFormat() string {
	b, err := json.Marshal(map[string]string{
		"requestId":        "$context.requestId",
		"ip":               "$context.identity.sourceIp",
		"requestTime":      "$context.requestTime",
		"method":           "$context.httpMethod",
		"routeKey":         "$context.routeKey",
		"status":           "$context.status",
		"protocol":         "$context.protocol",
		"responseLength":   "$context.responseLength",
		"latencyMs":        "$context.responseLatency",
		"integrationError": "$context.integrationErrorMessage",
		"authorizerError":  "$context.authorizer.error",
	})
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return string(b)
}

// newSchedule fires the scheduler every minute.
func (s *Stack) newSchedule() {
	rule := awsevents.NewRule(s.Stack, jsii.String("SchedulerTick"), &awsevents.RuleProps{
		Description: jsii.String("restic-monitor scheduler tick (" + s.Config.baseName() + ")"),
		Schedule:    awsevents.Schedule_Expression(jsii.String("rate(1 minute)")),
	})
	rule.AddTarget(awseventstargets.NewLambdaFunction(s.Functions[FnScheduler], &awseventstargets.LambdaFunctionProps{
		// A tick that cannot be delivered within a minute is superseded by the next one.
		MaxEventAge:     awscdk.Duration_Seconds(jsii.Number(60)),
		RetryAttempts:   jsii.Number(2),
		DeadLetterQueue: s.SchedulerDLQ,
	}))
}

func (s *Stack) newOutputs() {
	out := func(id, description string, value *string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(description), Value: value})
	}
	out("ApiUrl", "base URL of the HTTP API, for operators and agents", s.APIStage.Url())
	out("TableName", "the DynamoDB table", s.Table.TableName())
	out("AgentRoleArn", "the role the agent API hands agents credentials of", s.AgentRole.RoleArn())
	out("AlarmTopicArn", "the SNS topic every alarm notifies; subscribe to it", s.AlarmTopic.TopicArn())
	out("AgentDeadLetterQueueUrl", "where agent tasks that kept failing end up", s.AgentDLQ.QueueUrl())
	out("NotifierDeadLetterQueueUrl", "where events the notifier could not deliver end up", s.NotifierDLQ.QueueUrl())
	out("DashboardUrl", "the dashboard, with the API on the same origin under /v1", jsii.String("https://"+*s.Web.DistributionDomainName()))
	out("DashboardBucketName", "the dashboard's files; make deploy uploads them (rmctl dashboard publish)", s.WebBucket.BucketName())
	out("SecretKeyArn", "the Secrets Manager secret sealing notification channels' secrets; back it up", s.SecretKey.SecretArn())
}
