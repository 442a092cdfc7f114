package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/localaws"
)

// Client calls the tenant API with an API key, as an operator would.
type Client struct {
	URL, Key string
	HTTP     *http.Client
}

// APIError is an answer outside 2xx.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// Do sends one JSON request and decodes a JSON answer into out (when not nil).
func (c Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return &APIError{Status: res.StatusCode, Body: string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Conflict reports whether err is a 409 answer.
func Conflict(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusConflict
}

// Agent is one agent process the stack runs: the real agent binary, with its own configuration,
// credentials and state under Dir.
type Agent struct {
	Binary string
	Dir    string
	// ResticBinary is the restic the agent runs.
	ResticBinary string
	// Repositories are written into the agent's configuration.
	Repositories []AgentRepository
	// RestoreRoots are the directories restores may name as their target.
	RestoreRoots []string
	// HeartbeatInterval and QueueWait shorten the agent's loops for a quick demo or test.
	HeartbeatInterval, QueueWait time.Duration
	// Output receives the agent's logs.
	Output io.Writer

	cmd *exec.Cmd
	// done is closed when the process has exited; waitErr is then how it exited.
	done    chan struct{}
	waitErr error
}

// AgentRepository is one repository of an agent's configuration.
type AgentRepository struct {
	Name, Location, PasswordFile string
	Initialize                   bool
}

// ConfigPath is the agent's configuration file.
func (a *Agent) ConfigPath() string { return filepath.Join(a.Dir, "config.yaml") }

// CredentialsPath is where enroll writes the agent's credentials.
func (a *Agent) CredentialsPath() string { return filepath.Join(a.Dir, "credentials.json") }

// WriteConfig writes the agent's configuration file for the API at apiURL.
func (a *Agent) WriteConfig(apiURL string) error {
	if err := os.MkdirAll(a.Dir, 0o700); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiUrl: %q\ncredentialsFile: %q\nstateDir: %q\n", apiURL, a.CredentialsPath(), filepath.Join(a.Dir, "state"))
	fmt.Fprintf(&b, "restic:\n  binary: %q\n  cacheDir: %q\n", a.ResticBinary, filepath.Join(a.Dir, "cache"))
	if a.HeartbeatInterval > 0 {
		fmt.Fprintf(&b, "heartbeatInterval: %q\n", a.HeartbeatInterval.String())
	}
	if a.QueueWait > 0 {
		fmt.Fprintf(&b, "queue:\n  wait: %q\n", a.QueueWait.String())
	}
	b.WriteString("logLevel: info\nrepositories:\n")
	for _, r := range a.Repositories {
		fmt.Fprintf(&b, "  - name: %q\n    repository: %q\n    passwordFile: %q\n    initialize: %t\n", r.Name, r.Location, r.PasswordFile, r.Initialize)
	}
	if len(a.RestoreRoots) > 0 {
		b.WriteString("restoreRoots:\n")
		for _, root := range a.RestoreRoots {
			fmt.Fprintf(&b, "  - %q\n", root)
		}
	}
	return os.WriteFile(a.ConfigPath(), []byte(b.String()), 0o600)
}

// Enrolled reports whether the agent has credentials already.
func (a *Agent) Enrolled() bool {
	_, err := os.Stat(a.CredentialsPath())
	return err == nil
}

// AgentID reads the enrolled agent's ID from its credentials.
func (a *Agent) AgentID() (string, error) {
	b, err := os.ReadFile(a.CredentialsPath())
	if err != nil {
		return "", err
	}
	var c struct {
		AgentID string `json:"agentId"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("read %s: %w", a.CredentialsPath(), err)
	}
	return c.AgentID, nil
}

// Enroll runs `restic-monitor-agent enroll` with a token (passed in the environment, never on
// the command line).
func (a *Agent) Enroll(ctx context.Context, apiURL, token string) error {
	cmd := exec.CommandContext(ctx, a.Binary, "enroll", "--config", a.ConfigPath(), "--url", apiURL)
	cmd.Env = append(os.Environ(), "RM_ENROLL_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("enroll agent: %w: %s", err, out)
	}
	return nil
}

// Start runs `restic-monitor-agent run` in its own process group, so a Ctrl-C meant for the
// stack reaches the agent only through Stop, in order.
func (a *Agent) Start() error {
	a.cmd = exec.Command(a.Binary, "run", "--config", a.ConfigPath())
	// The agent reaches its queue at the endpoint the stack runs on, as an agent in the cloud
	// reaches SQS through the SDK's default resolution.
	a.cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+localaws.Endpoint())
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if a.Output != nil {
		a.cmd.Stdout, a.cmd.Stderr = a.Output, a.Output
	}
	if err := a.cmd.Start(); err != nil {
		return err
	}
	a.done = make(chan struct{})
	go func() {
		a.waitErr = a.cmd.Wait()
		close(a.done)
	}()
	return nil
}

// Stop sends SIGTERM and waits for the agent to finish its shutdown (it reports running tasks
// cancelled), killing it after grace.
func (a *Agent) Stop(grace time.Duration) error {
	if a.cmd == nil || a.cmd.Process == nil {
		return nil
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(grace):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	return a.waitErr
}

// Kill ends the agent at once, as a crash or power loss would.
func (a *Agent) Kill() error {
	if a.cmd == nil || a.cmd.Process == nil {
		return nil
	}
	_ = a.cmd.Process.Kill()
	<-a.done
	return nil
}

// Demo is what SetUpDemo created.
type Demo struct {
	AgentID    string
	PolicyID   string
	Repository string
	Source     string
}

// SetUpDemo creates, through the tenant API, the demo repository and policy, enrolls the agent
// if it is not enrolled yet, assigns the policy to it and, on first set-up, asks for a backup
// right away so the first snapshot does not wait for the schedule.
func SetUpDemo(ctx context.Context, c Client, a *Agent, source string, interval string) (Demo, bool, error) {
	d := Demo{Repository: "demo", Source: source}
	repoLocation := a.Repositories[0].Location
	err := c.Do(ctx, http.MethodPost, "/v1/repositories", map[string]any{
		"name": d.Repository, "backend": "local", "location": repoLocation, "description": "the dev stack's demo repository",
	}, nil)
	if err != nil && !Conflict(err) {
		return d, false, fmt.Errorf("create repository: %w", err)
	}
	var policies struct {
		Items []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"items"`
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/policies?limit=100", nil, &policies); err != nil {
		return d, false, fmt.Errorf("list policies: %w", err)
	}
	for _, p := range policies.Items {
		if p.Name == "demo-files" {
			d.PolicyID = p.ID
		}
	}
	if d.PolicyID == "" {
		var p struct {
			ID string `json:"id"`
		}
		err := c.Do(ctx, http.MethodPost, "/v1/policies", map[string]any{
			"name": "demo-files", "description": "backs up the dev stack's demo folder", "repository": d.Repository,
			"paths": []string{source}, "tags": []string{"demo"},
			"schedule":       map[string]any{"interval": interval},
			"retention":      map[string]any{"keepLast": 10, "keepHourly": 24},
			"forgetSchedule": map[string]any{"interval": "1h"},
			"checkSchedule":  map[string]any{"cron": "@daily"},
		}, &p)
		if err != nil {
			return d, false, fmt.Errorf("create policy: %w", err)
		}
		d.PolicyID = p.ID
	}
	fresh := !a.Enrolled()
	if fresh {
		var tok struct {
			Token string `json:"token"`
		}
		if err := c.Do(ctx, http.MethodPost, "/v1/enrollment-tokens", map[string]any{"description": "dev stack agent", "maxUses": 1}, &tok); err != nil {
			return d, false, fmt.Errorf("create enrollment token: %w", err)
		}
		if err := a.Enroll(ctx, c.URL, tok.Token); err != nil {
			return d, false, err
		}
	}
	id, err := a.AgentID()
	if err != nil {
		return d, false, err
	}
	d.AgentID = id
	if err := c.Do(ctx, http.MethodPost, "/v1/policies/"+url.PathEscape(d.PolicyID)+"/agents", map[string]any{"agentIds": []string{id}}, nil); err != nil {
		return d, false, fmt.Errorf("assign policy: %w", err)
	}
	return d, fresh, nil
}

// BackupNow asks for an immediate backup of the demo policy.
func BackupNow(ctx context.Context, c Client, d Demo) (string, error) {
	var t struct {
		ID string `json:"id"`
	}
	err := c.Do(ctx, http.MethodPost, "/v1/tasks", map[string]any{"type": "backup", "agentId": d.AgentID, "policyId": d.PolicyID, "params": map[string]any{}}, &t)
	return t.ID, err
}

// WriteDemoFiles fills the demo folder with a few files, unless it has some already.
func WriteDemoFiles(dir string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "notes"), 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"README.txt":              "This folder is backed up by the restic-monitor dev stack's demo policy.\nChange a file and watch the next run pick it up.\n",
		"notes/today.txt":         "Started the dev stack at " + time.Now().UTC().Format(time.RFC3339) + ".\n",
		"notes/numbers.csv":       "n,square\n1,1\n2,4\n3,9\n4,16\n",
		"config/app.yaml":         "name: demo\nreplicas: 3\n",
		"data/sample.bin":         strings.Repeat("restic-monitor demo data\n", 4096),
		"data/empty-dir/.gitkeep": "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
