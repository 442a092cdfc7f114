// Package app wires the control plane together from its configuration: it reads the
// environment once, loads the AWS configuration and builds the store, queues, dispatcher and
// API dependencies that a Lambda (at cold start) or the local stack (at start) then serves.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/deadletter"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/fleet"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/queuecreds"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/scheduler"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// Config is the deployment's configuration, from the environment.
type Config struct {
	Table  string // RM_TABLE
	Stage  string // RM_STAGE
	Tenant string // RM_TENANT, empty for the shared multi-tenant deployment
	// AgentRoleARN is the role agents' queue credentials come from (RM_AGENT_ROLE_ARN).
	AgentRoleARN string
	// LogRetention is how long run logs are kept (RM_LOG_RETENTION_DAYS, default 30).
	LogRetention time.Duration
	// ListingRetention is how long snapshot listings are kept (RM_LISTING_RETENTION_DAYS,
	// default 7); ListingMaxMiB caps one listing's compressed size (RM_LISTING_MAX_MIB, default 64).
	ListingRetention time.Duration
	ListingMaxMiB    int
	// HeartbeatInterval is how often agents report (RM_HEARTBEAT_SECONDS, default 60).
	HeartbeatInterval time.Duration
	// AuditRetention is how long audit entries are kept (RM_AUDIT_RETENTION in days, "365" or
	// "365d"; default 365).
	AuditRetention time.Duration
	// EventBus is the custom EventBridge bus the scheduler publishes domain events to
	// (RM_EVENT_BUS, default Names().EventBusName(), the bus the stack creates).
	EventBus string
	LogLevel slog.Level // LOG_LEVEL: debug, info, warn, error
}

// FromEnv reads the configuration and reports every missing or invalid variable at once.
func FromEnv(getenv func(string) string) (Config, error) {
	var problems []string
	c := Config{
		Table:             getenv("RM_TABLE"),
		Stage:             getenv("RM_STAGE"),
		Tenant:            getenv("RM_TENANT"),
		AgentRoleARN:      getenv("RM_AGENT_ROLE_ARN"),
		EventBus:          getenv("RM_EVENT_BUS"),
		LogRetention:      30 * 24 * time.Hour,
		HeartbeatInterval: time.Minute,
		AuditRetention:    store.DefaultAuditRetention,
		ListingRetention:  domain.DefaultListingRetention,
		ListingMaxMiB:     domain.DefaultListingMaxBytes >> 20,
	}
	if c.Table == "" {
		problems = append(problems, "RM_TABLE is required")
	}
	if !resources.ValidStage(c.Stage) {
		problems = append(problems, "RM_STAGE must be 1–10 lowercase letters and digits")
	}
	if c.Tenant != "" && !domain.ValidTenantID(c.Tenant) {
		problems = append(problems, "RM_TENANT must be a tenant ID")
	}
	if v := getenv("RM_LOG_RETENTION_DAYS"); v != "" {
		days, err := strconv.Atoi(v)
		if err != nil || days < 1 || days > 3650 {
			problems = append(problems, "RM_LOG_RETENTION_DAYS must be 1–3650")
		}
		c.LogRetention = time.Duration(days) * 24 * time.Hour
	}
	if v := getenv("RM_LISTING_RETENTION_DAYS"); v != "" {
		days, err := strconv.Atoi(v)
		if err != nil || days < 1 || days > 365 {
			problems = append(problems, "RM_LISTING_RETENTION_DAYS must be 1–365")
		}
		c.ListingRetention = time.Duration(days) * 24 * time.Hour
	}
	if v := getenv("RM_LISTING_MAX_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10240 {
			problems = append(problems, "RM_LISTING_MAX_MIB must be 1–10240")
		}
		c.ListingMaxMiB = n
	}
	if v := getenv("RM_HEARTBEAT_SECONDS"); v != "" {
		s, err := strconv.Atoi(v)
		if err != nil || s < 5 || s > 3600 {
			problems = append(problems, "RM_HEARTBEAT_SECONDS must be 5–3600")
		}
		c.HeartbeatInterval = time.Duration(s) * time.Second
	}
	if v := getenv("RM_AUDIT_RETENTION"); v != "" {
		days, err := strconv.Atoi(strings.TrimSuffix(v, "d"))
		if err != nil || days < 1 || days > 3650 {
			problems = append(problems, "RM_AUDIT_RETENTION must be a number of days, 1–3650 (such as 365 or 365d)")
		}
		c.AuditRetention = time.Duration(days) * 24 * time.Hour
	}
	if err := c.LogLevel.UnmarshalText([]byte(orDefault(getenv("LOG_LEVEL"), "info"))); err != nil {
		problems = append(problems, "LOG_LEVEL must be debug, info, warn or error")
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	if c.EventBus == "" {
		c.EventBus = c.Names().EventBusName()
	}
	return c, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// Names returns the deployment's resource names.
func (c Config) Names() resources.Names { return resources.Names{Stage: c.Stage, Tenant: c.Tenant} }

// Logger returns the JSON logger every process writes.
func (c Config) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: c.LogLevel}))
}

// Core are the dependencies every control-plane process shares.
type Core struct {
	Config     Config
	AWS        aws.Config
	Log        *slog.Logger
	Store      *store.Store
	Queues     *queue.Manager
	Events     *eventbridge.Client
	Dispatcher *dispatch.Dispatcher
	Auth       *auth.Authenticator
	Now        func() time.Time
}

// NewCore builds the shared dependencies from a configuration and an AWS configuration.
func NewCore(c Config, awsCfg aws.Config, log *slog.Logger) *Core {
	now := time.Now
	st := store.New(dynamodb.NewFromConfig(awsCfg), c.Table)
	st.AuditRetention = c.AuditRetention
	qm := queue.New(sqs.NewFromConfig(awsCfg), c.Names())
	return &Core{
		Config: c, AWS: awsCfg, Log: log, Store: st, Queues: qm, Now: now, Events: eventbridge.NewFromConfig(awsCfg),
		Dispatcher: &dispatch.Dispatcher{Store: st, Sender: qm, Log: log, Now: now},
		Auth:       &auth.Authenticator{Store: st, Now: now},
	}
}

// Load reads the environment and the default AWS configuration (which honours
// AWS_ENDPOINT_URL) and builds the core. It is what a Lambda calls at cold start.
func Load(ctx context.Context) (*Core, error) {
	c, err := FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return NewCore(c, awsCfg, c.Logger()), nil
}

// APIDeps returns the HTTP API's dependencies. Queue credentials come from STS, assuming the
// agents' role with a session policy narrowed to one queue.
func (c *Core) APIDeps() httpapi.Deps {
	settings := httpapi.DefaultSettings()
	settings.Region = c.AWS.Region
	settings.LogRetention = c.Config.LogRetention
	settings.ListingRetention = c.Config.ListingRetention
	settings.ListingMaxBytes = int64(c.Config.ListingMaxMiB) << 20
	settings.HeartbeatInterval = c.Config.HeartbeatInterval
	d := httpapi.Deps{
		Store: c.Store, Queues: c.Queues, Dispatcher: c.Dispatcher, Log: c.Log, Now: c.Now, Settings: settings,
		Credentials: queuecreds.New(sts.NewFromConfig(c.AWS), c.Config.AgentRoleARN),
	}
	// A deployment without notification settings serves everything else; the notification
	// routes say what is missing.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := c.NotifyConfig(ctx, os.Getenv)
	if err == nil {
		d.Notify, err = c.Notifier(nc)
	}
	if err != nil {
		c.Log.Error("notifications are off", "error", err)
	}
	return d
}

// NotifyConfig reads the notifier's configuration (notify.ConfigFromEnv). A deployment keeps
// the secret key out of its functions' environment: RM_SECRET_KEY_ARN names the Secrets Manager
// secret that holds it, in RM_SECRET_KEY's format, and it is read here once, at cold start.
// RM_SECRET_KEY itself stays for local set-ups; setting both is a mistake, since it is unclear
// which key sealed the stored secrets.
func (c *Core) NotifyConfig(ctx context.Context, getenv func(string) string) (notify.Config, error) {
	arn := getenv("RM_SECRET_KEY_ARN")
	if arn == "" {
		return notify.ConfigFromEnv(getenv)
	}
	if getenv("RM_SECRET_KEY") != "" {
		return notify.Config{}, fmt.Errorf("configuration: set RM_SECRET_KEY or RM_SECRET_KEY_ARN, not both")
	}
	out, err := secretsmanager.NewFromConfig(c.AWS).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return notify.Config{}, fmt.Errorf("read the secret key %s: %w", arn, err)
	}
	if out.SecretString == nil {
		return notify.Config{}, fmt.Errorf("read the secret key %s: the secret holds no string", arn)
	}
	key := *out.SecretString
	return notify.ConfigFromEnv(func(k string) string {
		if k == "RM_SECRET_KEY" {
			return key
		}
		return getenv(k)
	})
}

// Notifier builds the notifier from its configuration (notify.ConfigFromEnv). Without a
// secret key it can neither seal nor open channel secrets, and says so when asked to.
func (c *Core) Notifier(nc notify.Config) (*notify.Notifier, error) {
	n := &notify.Notifier{
		Store: c.Store, PublicURL: nc.PublicURL, Log: c.Log, Now: c.Now,
		HTTP: notify.NewHTTPClient(notify.ClientOptions{Timeout: nc.Timeout, AllowPrivate: nc.AllowPrivate}),
	}
	if nc.SecretKey != nil {
		s, err := notify.NewSealer(nc.SecretKey)
		if err != nil {
			return nil, err
		}
		n.Sealer = s
	}
	if nc.From != "" {
		n.Mailer = notify.SESMailer{Client: sesv2.NewFromConfig(c.AWS), From: nc.From}
	}
	return n, nil
}

// DeadLetterDrainer returns what turns the deployment's dead letters into failed tasks. The
// dead-letter queue is found by its name (Config.Names), so no variable names it.
func (c *Core) DeadLetterDrainer() *deadletter.Drainer {
	return &deadletter.Drainer{Queue: c.Queues, Tasks: c.Store, Log: c.Log}
}

// Scheduler returns the scheduler as the scheduler Lambda runs it.
func (c *Core) Scheduler(cfg scheduler.Config) *scheduler.Scheduler {
	return &scheduler.Scheduler{
		Store: c.Store, Sender: c.Dispatcher, Emitter: scheduler.LogEmitter{Log: c.Log},
		DeadLetters: c.DeadLetterDrainer(), Log: c.Log, Config: cfg, Clock: time.Now,
		Tenants: c.Fleet(), Publisher: c.Publisher(),
	}
}

// Publisher returns what moves the outbox's events to the deployment's bus.
func (c *Core) Publisher() *scheduler.Publisher {
	bus := c.Config.EventBus
	if bus == "" {
		bus = c.Config.Names().EventBusName()
	}
	return &scheduler.Publisher{Bus: c.Events, BusName: bus, Store: c.Store, Log: c.Log}
}

// Fleet returns the tenant operations on the deployment's table and queues; the scheduler
// carries tenants' deletions on with it.
func (c *Core) Fleet() *fleet.Service {
	return &fleet.Service{Store: c.Store, Queues: c.Queues, Dispatcher: c.Dispatcher, Log: c.Log, Now: c.Now}
}
