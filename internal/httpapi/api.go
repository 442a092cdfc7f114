package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/dispatch"
	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// QueueCredentials are short-lived AWS credentials good only for one agent's queue.
type QueueCredentials struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	SessionToken    string    `json:"sessionToken"`
	Expiration      time.Time `json:"expiration"`
}

// CredentialVendor issues queue credentials scoped to one queue.
type CredentialVendor interface {
	QueueCredentials(ctx context.Context, tenantID, agentID, queueARN string) (QueueCredentials, error)
}

// Settings are the deployment's tunables the API applies.
type Settings struct {
	// Region is the AWS region agents talk to for their queues.
	Region string
	// LogRetention is how long run logs are kept.
	LogRetention time.Duration
	// ListingRetention is how long a snapshot listing is kept, ListingMaxBytes the compressed
	// size it is cut at (zero: the domain's defaults).
	ListingRetention time.Duration
	ListingMaxBytes  int64
	// HeartbeatInterval is how often agents are told to report.
	HeartbeatInterval time.Duration
	// OverdueGrace is how late a backup may be before its policy counts as overdue.
	OverdueGrace time.Duration
	// Retry shapes the backoff between tries of a failed task (zero: schedule.DefaultRetryPolicy).
	Retry schedule.RetryPolicy
	// AgentHourlyRetryBudget is how many retries one agent may use in an hour, across all its
	// tasks (0: schedule.DefaultAgentHourlyRetryBudget).
	AgentHourlyRetryBudget int
}

// DefaultSettings are the settings when a deployment sets none.
func DefaultSettings() Settings {
	return Settings{Region: "us-east-1", LogRetention: 30 * 24 * time.Hour, HeartbeatInterval: time.Minute, OverdueGrace: time.Hour,
		Retry: schedule.DefaultRetryPolicy(), AgentHourlyRetryBudget: schedule.DefaultAgentHourlyRetryBudget}
}

// Deps are what the API handlers use. They are built once per process (per Lambda cold start).
type Deps struct {
	Store       *store.Store
	Queues      *queue.Manager
	Dispatcher  *dispatch.Dispatcher
	Credentials CredentialVendor
	Log         *slog.Logger
	Now         func() time.Time
	Settings    Settings
	// Notify seals channel secrets, sends test deliveries and email confirmations; without it
	// the notification routes that need it answer 503.
	Notify *notify.Notifier
}

func (d Deps) now() time.Time { return d.Now().UTC() }

// NewTenantHandler serves the tenant API (/v1/...), for operators' API keys.
func NewTenantHandler(d Deps) http.Handler {
	mux := http.NewServeMux()
	mount(mux, d, append(TenantRoutes(d), PublicRoutes(d)...))
	return mux
}

// NewAgentHandler serves the agent API (/v1/agent/...).
func NewAgentHandler(d Deps) http.Handler {
	mux := http.NewServeMux()
	mount(mux, d, AgentRoutes(d))
	return mux
}

// NewHandler serves both APIs on one mux, as the local stack does.
func NewHandler(d Deps) http.Handler {
	mux := http.NewServeMux()
	mount(mux, d, slices.Concat(TenantRoutes(d), PublicRoutes(d), AgentRoutes(d)))
	return mux
}

// Authenticate is the local stand-in for the Lambda authorizer: it authenticates the
// Authorization header with the same logic and puts the principal in the request's context.
// A request without valid credentials goes on without a principal, and its route refuses it.
func Authenticate(a *auth.Authenticator, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("Authorization"); h != "" {
			p, err := a.Authenticate(r.Context(), h)
			switch {
			case err == nil:
				r = r.WithContext(auth.WithPrincipal(r.Context(), p))
			case !errors.Is(err, auth.ErrUnauthenticated):
				writeError(r.Context(), w, log, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
