package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/atomicfile"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Credentials are the agent's identity, issued at enrollment. The file holding them is the
// agent's only proof of who it is; it is written with mode 0600.
type Credentials struct {
	APIURL      string    `json:"apiUrl"`
	TenantID    string    `json:"tenantId"`
	AgentID     string    `json:"agentId"`
	AgentSecret string    `json:"agentSecret"`
	QueueURL    string    `json:"queueUrl"`
	Region      string    `json:"region"`
	EnrolledAt  time.Time `json:"enrolledAt"`
}

// String never shows the secret.
func (c Credentials) String() string {
	return fmt.Sprintf("agent %s of tenant %s at %s", c.AgentID, c.TenantID, c.APIURL)
}

// Validate checks that c can be used.
func (c Credentials) Validate() error {
	var errs []error
	if !domain.ValidTenantID(c.TenantID) {
		errs = append(errs, errors.New("tenantId is missing or invalid"))
	}
	if !domain.ValidID(c.AgentID) {
		errs = append(errs, errors.New("agentId is missing or invalid"))
	}
	if c.AgentSecret == "" {
		errs = append(errs, errors.New("agentSecret is missing"))
	}
	if c.QueueURL == "" {
		errs = append(errs, errors.New("queueUrl is missing"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("region is missing"))
	}
	return errors.Join(errs...)
}

// LoadCredentials reads the credentials file at path.
func LoadCredentials(path string) (Credentials, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Credentials{}, fmt.Errorf("no credentials at %s: enroll the agent first (restic-monitor-agent enroll --url URL --token TOKEN)", path)
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("read credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(raw, &c); err != nil {
		return Credentials{}, fmt.Errorf("credentials %s: not valid JSON", path)
	}
	if err := c.Validate(); err != nil {
		return Credentials{}, fmt.Errorf("credentials %s: %w", path, err)
	}
	return c, nil
}

// SaveCredentials writes c to path with mode 0600, atomically: a crash leaves the old file or
// the new one, never half of one.
func SaveCredentials(path string, c Credentials) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode credentials: %w", err)
	}
	if err := atomicfile.Write(path, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}
