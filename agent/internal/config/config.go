// Package config owns the agent's configuration file: its YAML shape, the platform's default
// paths, the defaults of every setting, and validation that reports every problem at once with
// the path of the field it concerns. Repository passwords and backend variables are configured
// here and nowhere else: they stay on the host.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Config is the agent's configuration file.
type Config struct {
	// APIURL is the control plane's base URL, e.g. https://api.example.com.
	APIURL string `yaml:"apiUrl"`
	// CredentialsFile holds the agent's identity and secret, written by enroll.
	CredentialsFile string `yaml:"credentialsFile"`
	// StateDir holds the status file and, unless SpoolDir says otherwise, the spool.
	StateDir string `yaml:"stateDir"`
	// SpoolDir holds results and log chunks waiting for the API.
	SpoolDir string `yaml:"spoolDir"`
	// Hostname is reported at enrollment and given to restic as the snapshots' host; empty uses
	// the machine's hostname.
	Hostname string            `yaml:"hostname"`
	Labels   map[string]string `yaml:"labels"`

	Restic Restic `yaml:"restic"`
	Limits Limits `yaml:"limits"`
	Queue  Queue  `yaml:"queue"`
	Retry  Retry  `yaml:"retry"`

	// HeartbeatInterval is how often the agent reports; the control plane may ask for another.
	HeartbeatInterval Duration `yaml:"heartbeatInterval"`
	// ShutdownGrace is how long running tasks may go on after SIGTERM before restic is
	// interrupted.
	ShutdownGrace Duration `yaml:"shutdownGrace"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"logLevel"`
	// MetricsListen is host:port for the Prometheus endpoint; empty serves no metrics.
	MetricsListen string `yaml:"metricsListen"`

	Repositories []Repository `yaml:"repositories"`

	// RestoreRoots are the directories a restore task may name as its target (the target must
	// lie inside one, symlinks resolved, and be empty or missing). Empty allows no chosen
	// target: a restore then goes into a new temporary directory the agent creates.
	RestoreRoots []string `yaml:"restoreRoots"`
}

// Restic says how restic is run.
type Restic struct {
	// Binary is restic's path, or a name looked up in PATH.
	Binary string `yaml:"binary"`
	// CacheDir is restic's cache; empty uses restic's default under HOME.
	CacheDir string `yaml:"cacheDir"`
	// InterruptGrace is how long restic may take to stop after SIGINT before it is killed.
	InterruptGrace Duration `yaml:"interruptGrace"`
}

// Limits bound what the agent does at once. Limits the control plane sends can only lower them.
type Limits struct {
	MaxConcurrentTasks int `yaml:"maxConcurrentTasks"`
	// UploadKbps and DownloadKbps cap restic's bandwidth in KiB/s; zero is unlimited.
	UploadKbps   int `yaml:"uploadKbps"`
	DownloadKbps int `yaml:"downloadKbps"`
	// CPUQuotaPercent limits the CPUs restic uses (GOMAXPROCS) to this share of the machine's.
	CPUQuotaPercent int `yaml:"cpuQuotaPercent"`
	// Nice (0–19), IOClass ("", "best-effort", "idle") and IOLevel (0–7) lower restic's priority.
	Nice    int    `yaml:"nice"`
	IOClass string `yaml:"ioClass"`
	IOLevel int    `yaml:"ioLevel"`
}

// Queue shapes the long poll of the agent's queue.
type Queue struct {
	// Wait is the long-poll wait, 1–20 s.
	Wait Duration `yaml:"wait"`
	// VisibilityTimeout is how long a received task stays hidden from other receives; the agent
	// extends it while the task runs. A crashed agent's task reappears after it.
	VisibilityTimeout Duration `yaml:"visibilityTimeout"`
}

// Retry shapes the backoff of failed tasks and of the agent as a whole.
type Retry struct {
	// MaxRetries is how many times a task that failed in a way that may pass (a locked
	// repository, an unreachable backend) is run again before its failure is reported.
	MaxRetries int      `yaml:"maxRetries"`
	Base       Duration `yaml:"base"`
	Cap        Duration `yaml:"cap"`
	// AgentBackoffAfter is how many tasks in a row must fail before the agent stops taking
	// work for a while (AgentBackoffBase, growing to AgentBackoffCap) and says so in its
	// heartbeat.
	AgentBackoffAfter int      `yaml:"agentBackoffAfter"`
	AgentBackoffBase  Duration `yaml:"agentBackoffBase"`
	AgentBackoffCap   Duration `yaml:"agentBackoffCap"`
}

// Repository is one restic repository the control plane may name in a task.
type Repository struct {
	Name string `yaml:"name"`
	// Repository is restic's location string (RESTIC_REPOSITORY).
	Repository string `yaml:"repository"`
	// PasswordFile or PasswordCommand, exactly one, gives restic the password.
	PasswordFile    string `yaml:"passwordFile"`
	PasswordCommand string `yaml:"passwordCommand"`
	// Env holds the backend's variables (AWS_ACCESS_KEY_ID, B2_ACCOUNT_KEY, ...).
	Env map[string]string `yaml:"env"`
	// Initialize lets the agent run restic init when the repository does not exist yet.
	Initialize bool `yaml:"initialize"`
}

// Repository returns the repository named name.
func (c *Config) Repository(name string) (Repository, bool) {
	for _, r := range c.Repositories {
		if r.Name == name {
			return r, true
		}
	}
	return Repository{}, false
}

// Duration is a time.Duration written as Go writes it: "30s", "5m", "1h30m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML reads "30s"-style strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a duration such as \"30s\" or \"5m\" is expected", n.Line)
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as \"30s\" or \"5m\"", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as "30s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Defaults of settings left out of the file.
const (
	DefaultMaxConcurrentTasks = 1
	DefaultQueueWait          = 20 * time.Second
	DefaultVisibilityTimeout  = 5 * time.Minute
	DefaultHeartbeatInterval  = time.Minute
	DefaultShutdownGrace      = 30 * time.Second
	DefaultInterruptGrace     = 30 * time.Second
	DefaultMaxRetries         = 2
	DefaultRetryBase          = 30 * time.Second
	DefaultRetryCap           = 10 * time.Minute
	DefaultAgentBackoffAfter  = 3
	DefaultAgentBackoffBase   = time.Minute
	DefaultAgentBackoffCap    = 30 * time.Minute
)

// Default returns the configuration of a file that sets only apiUrl and repositories.
func Default() Config {
	p := DefaultPaths()
	return Config{
		CredentialsFile: p.Credentials,
		StateDir:        p.State,
		Restic:          Restic{Binary: "restic", CacheDir: p.Cache, InterruptGrace: Duration(DefaultInterruptGrace)},
		Limits:          Limits{MaxConcurrentTasks: DefaultMaxConcurrentTasks},
		Queue:           Queue{Wait: Duration(DefaultQueueWait), VisibilityTimeout: Duration(DefaultVisibilityTimeout)},
		Retry: Retry{
			MaxRetries: DefaultMaxRetries, Base: Duration(DefaultRetryBase), Cap: Duration(DefaultRetryCap),
			AgentBackoffAfter: DefaultAgentBackoffAfter, AgentBackoffBase: Duration(DefaultAgentBackoffBase), AgentBackoffCap: Duration(DefaultAgentBackoffCap),
		},
		HeartbeatInterval: Duration(DefaultHeartbeatInterval),
		ShutdownGrace:     Duration(DefaultShutdownGrace),
		LogLevel:          "info",
	}
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads a configuration, fills in defaults and validates it. Unknown fields are errors, so
// a misspelt setting is not silently ignored.
func Parse(r io.Reader) (*Config, error) {
	raw, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, err
	}
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("not a valid configuration: %s", cleanYAMLError(err))
	}
	if c.SpoolDir == "" && c.StateDir != "" {
		c.SpoolDir = filepath.Join(c.StateDir, "spool")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func cleanYAMLError(err error) string {
	return strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n  ", "; "), "yaml: ")
}

// Problem is one invalid field.
type Problem struct {
	Field  string
	Reason string
}

// ValidationError lists every invalid field of a configuration.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Reason
	}
	return "invalid configuration: " + strings.Join(parts, "; ")
}

type problems []Problem

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// reservedEnv are variables the agent sets for restic from the repository's own fields or its
// environment; a repository's env may not set them.
var reservedEnv = []string{
	"PATH", "HOME", "TMPDIR", "GOMAXPROCS",
	"RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE",
	"RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND",
	"RESTIC_CACHE_DIR", "RESTIC_PROGRESS_FPS",
}

var (
	envNamePattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$`)
)

// Validate reports every problem of c as a *ValidationError.
func (c *Config) Validate() error {
	var p problems
	checkAPIURL(&p, c.APIURL)
	checkAbs(&p, "credentialsFile", c.CredentialsFile, true)
	checkAbs(&p, "stateDir", c.StateDir, true)
	checkAbs(&p, "spoolDir", c.SpoolDir, true)
	for i, root := range c.RestoreRoots {
		checkAbs(&p, fmt.Sprintf("restoreRoots[%d]", i), root, true)
	}
	if c.Hostname != "" && !hostnamePattern.MatchString(c.Hostname) {
		p.add("hostname", "must be a host name: letters, digits, '.', '-', '_' (at most 253 characters)")
	}
	for k, v := range c.Labels {
		if k == "" || len(k) > 63 || hasControl(k) || hasControl(v) || len(v) > 253 {
			p.add(fmt.Sprintf("labels[%q]", k), "label keys are 1–63 characters and values at most 253, without control characters")
		}
	}

	if strings.TrimSpace(c.Restic.Binary) == "" {
		p.add("restic.binary", "must name the restic binary")
	}
	if c.Restic.CacheDir != "" {
		checkAbs(&p, "restic.cacheDir", c.Restic.CacheDir, false)
	}
	checkRange(&p, "restic.interruptGrace", c.Restic.InterruptGrace.D(), time.Second, time.Hour)

	l := c.Limits
	if l.MaxConcurrentTasks < 1 || l.MaxConcurrentTasks > 100 {
		p.add("limits.maxConcurrentTasks", "must be between 1 and 100")
	}
	for _, b := range []struct {
		field string
		v     int
	}{{"limits.uploadKbps", l.UploadKbps}, {"limits.downloadKbps", l.DownloadKbps}} {
		if b.v < 0 || b.v > domain.MaxBandwidthKbps {
			p.add(b.field, "must be between 0 (unlimited) and %d KiB/s", domain.MaxBandwidthKbps)
		}
	}
	if l.CPUQuotaPercent < 0 || l.CPUQuotaPercent > 100 {
		p.add("limits.cpuQuotaPercent", "must be between 0 (no limit) and 100")
	}
	if l.Nice < 0 || l.Nice > 19 {
		p.add("limits.nice", "must be between 0 (normal priority) and 19")
	}
	if !slices.Contains([]string{"", "best-effort", "idle"}, l.IOClass) {
		p.add("limits.ioClass", "must be best-effort or idle, or left out")
	}
	if l.IOLevel < 0 || l.IOLevel > 7 {
		p.add("limits.ioLevel", "must be between 0 and 7")
	}

	checkRange(&p, "queue.wait", c.Queue.Wait.D(), time.Second, 20*time.Second)
	checkRange(&p, "queue.visibilityTimeout", c.Queue.VisibilityTimeout.D(), 2*time.Second, 12*time.Hour)
	checkRange(&p, "heartbeatInterval", c.HeartbeatInterval.D(), 5*time.Second, time.Hour)
	checkRange(&p, "shutdownGrace", c.ShutdownGrace.D(), 0, time.Hour)

	r := c.Retry
	if r.MaxRetries < 0 || r.MaxRetries > 10 {
		p.add("retry.maxRetries", "must be between 0 and 10")
	}
	checkRange(&p, "retry.base", r.Base.D(), time.Second, 24*time.Hour)
	if r.Cap < r.Base {
		p.add("retry.cap", "must not be shorter than retry.base (%s)", r.Base.D())
	}
	if r.AgentBackoffAfter < 1 || r.AgentBackoffAfter > 100 {
		p.add("retry.agentBackoffAfter", "must be between 1 and 100")
	}
	checkRange(&p, "retry.agentBackoffBase", r.AgentBackoffBase.D(), time.Second, 24*time.Hour)
	if r.AgentBackoffCap < r.AgentBackoffBase {
		p.add("retry.agentBackoffCap", "must not be shorter than retry.agentBackoffBase (%s)", r.AgentBackoffBase.D())
	}

	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		p.add("logLevel", "must be debug, info, warn or error")
	}
	if c.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(c.MetricsListen); err != nil || port == "" {
			p.add("metricsListen", "must be host:port, such as 127.0.0.1:9464")
		}
	}

	seen := map[string]int{}
	for i, repo := range c.Repositories {
		repo.check(&p, fmt.Sprintf("repositories[%d]", i))
		if j, dup := seen[repo.Name]; dup && repo.Name != "" {
			p.add(fmt.Sprintf("repositories[%d].name", i), "%q is already the name of repositories[%d]", repo.Name, j)
		} else {
			seen[repo.Name] = i
		}
	}
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

func (r Repository) check(p *problems, prefix string) {
	switch {
	case r.Name == "":
		p.add(prefix+".name", "is required: tasks name the repository they use")
	case !domain.ValidName(r.Name):
		p.add(prefix+".name", "%q is not a repository name (3–100 letters, digits, '-', '_')", r.Name)
	}
	switch {
	case strings.TrimSpace(r.Repository) == "":
		p.add(prefix+".repository", "is required: restic's repository location, such as /srv/restic or s3:host/bucket")
	case hasControl(r.Repository):
		p.add(prefix+".repository", "must not contain control characters")
	}
	switch {
	case r.PasswordFile == "" && r.PasswordCommand == "":
		p.add(prefix, "set passwordFile or passwordCommand")
	case r.PasswordFile != "" && r.PasswordCommand != "":
		p.add(prefix, "set passwordFile or passwordCommand, not both")
	case r.PasswordFile != "":
		checkAbs(p, prefix+".passwordFile", r.PasswordFile, false)
	case hasControl(r.PasswordCommand):
		p.add(prefix+".passwordCommand", "must not contain control characters")
	}
	names := make([]string, 0, len(r.Env))
	for k := range r.Env {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		field := fmt.Sprintf("%s.env[%q]", prefix, k)
		switch {
		case !envNamePattern.MatchString(k):
			p.add(field, "is not an environment variable name")
		case slices.Contains(reservedEnv, k):
			p.add(field, "is set by the agent; use the repository's own fields")
		case strings.ContainsRune(r.Env[k], 0):
			// The value itself is never repeated: it may be a secret.
			p.add(field, "must not contain a NUL byte")
		}
	}
}

func checkAPIURL(p *problems, raw string) {
	if raw == "" {
		p.add("apiUrl", "is required (enroll writes it)")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		p.add("apiUrl", "must be an http(s) URL such as https://api.example.com")
		return
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		p.add("apiUrl", "must use https: the agent's secret travels with every request (plain http is accepted only for localhost)")
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkAbs(p *problems, field, path string, required bool) {
	switch {
	case path == "":
		if required {
			p.add(field, "is required")
		}
	case hasControl(path):
		p.add(field, "must not contain control characters")
	case !filepath.IsAbs(path):
		p.add(field, "%q is not an absolute path", path)
	}
}

func checkRange(p *problems, field string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		p.add(field, "must be between %s and %s (got %s)", lo, hi, d)
	}
}

func hasControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }
