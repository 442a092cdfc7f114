package notify

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Config is the notifier's configuration, read from the environment:
//
//	RM_SECRET_KEY            32 bytes in base64 sealing channel secrets (required to create
//	                         webhook and Slack channels and to deliver to them)
//	RM_PUBLIC_URL            where people reach the API, for links in messages and in
//	                         confirmation emails
//	RM_NOTIFY_FROM           the SES-verified sender of email notifications
//	RM_NOTIFY_TIMEOUT        one delivery request's timeout (default 10s)
//	RM_NOTIFY_ALLOW_PRIVATE  1 lets deliveries reach private and loopback addresses: local
//	                         development only
type Config struct {
	SecretKey    []byte
	PublicURL    string
	From         string
	Timeout      time.Duration
	AllowPrivate bool
}

// ConfigFromEnv reads the notifier's configuration.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	var problems []string
	if v := getenv("RM_SECRET_KEY"); v != "" {
		k, err := ParseSecretKey(v)
		if err != nil {
			problems = append(problems, err.Error())
		}
		c.SecretKey = k
	}
	if v := getenv("RM_PUBLIC_URL"); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			problems = append(problems, "RM_PUBLIC_URL must be an http or https URL")
		}
		c.PublicURL = strings.TrimRight(v, "/")
	}
	if v := getenv("RM_NOTIFY_FROM"); v != "" {
		if !domain.ValidEmail(v) {
			problems = append(problems, "RM_NOTIFY_FROM must be an email address")
		}
		c.From = v
	}
	if v := getenv("RM_NOTIFY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > time.Minute {
			problems = append(problems, "RM_NOTIFY_TIMEOUT must be a duration between 1s and 1m")
		}
		c.Timeout = d
	}
	switch getenv("RM_NOTIFY_ALLOW_PRIVATE") {
	case "", "0":
	case "1":
		c.AllowPrivate = true
	default:
		problems = append(problems, "RM_NOTIFY_ALLOW_PRIVATE must be 0 or 1")
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("configuration: %w", errors.New(strings.Join(problems, "; ")))
	}
	return c, nil
}
