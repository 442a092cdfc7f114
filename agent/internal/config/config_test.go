package config

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const validYAML = `
apiUrl: https://api.example.com
credentialsFile: /etc/restic-monitor/credentials.json
stateDir: /var/lib/restic-monitor
hostname: web-1
labels: {role: web}
restic:
  binary: /usr/bin/restic
  cacheDir: /var/cache/restic-monitor
  interruptGrace: 20s
limits:
  maxConcurrentTasks: 2
  uploadKbps: 1024
  cpuQuotaPercent: 50
  nice: 10
  ioClass: idle
queue:
  wait: 10s
  visibilityTimeout: 2m
retry:
  maxRetries: 1
  base: 10s
  cap: 1m
heartbeatInterval: 30s
shutdownGrace: 45s
logLevel: debug
metricsListen: 127.0.0.1:9464
repositories:
  - name: main
    repository: /srv/restic/main
    passwordFile: /etc/restic-monitor/main.password
    initialize: true
  - name: offsite
    repository: s3:s3.amazonaws.com/bucket
    passwordCommand: pass show restic
    env:
      AWS_ACCESS_KEY_ID: AKIAEXAMPLE
      AWS_SECRET_ACCESS_KEY: very-secret-value
`

func TestParseValid(t *testing.T) {
	c, err := Parse(strings.NewReader(validYAML))
	require.NoError(t, err)
	assert.Equal(t, "https://api.example.com", c.APIURL)
	assert.Equal(t, 2, c.Limits.MaxConcurrentTasks)
	assert.Equal(t, 10*time.Second, c.Queue.Wait.D())
	assert.Equal(t, 2*time.Minute, c.Queue.VisibilityTimeout.D())
	assert.Equal(t, 45*time.Second, c.ShutdownGrace.D())
	assert.Equal(t, "/var/lib/restic-monitor/spool", c.SpoolDir, "the spool defaults to stateDir/spool")
	// Settings the file leaves out keep their defaults.
	assert.Equal(t, DefaultAgentBackoffAfter, c.Retry.AgentBackoffAfter)
	assert.Equal(t, DefaultAgentBackoffCap, c.Retry.AgentBackoffCap.D())

	repo, ok := c.Repository("offsite")
	require.True(t, ok)
	assert.Equal(t, "pass show restic", repo.PasswordCommand)
	assert.Equal(t, "very-secret-value", repo.Env["AWS_SECRET_ACCESS_KEY"])
	_, ok = c.Repository("missing")
	assert.False(t, ok)
}

func TestParseMinimalUsesPlatformDefaults(t *testing.T) {
	c, err := Parse(strings.NewReader("apiUrl: http://127.0.0.1:8080\n"))
	require.NoError(t, err)
	p := DefaultPaths()
	assert.Equal(t, p.Credentials, c.CredentialsFile)
	assert.Equal(t, p.State, c.StateDir)
	assert.Equal(t, DefaultMaxConcurrentTasks, c.Limits.MaxConcurrentTasks)
	assert.Equal(t, DefaultQueueWait, c.Queue.Wait.D())
	assert.Equal(t, "restic", c.Restic.Binary)
	assert.Empty(t, c.Repositories)
}

func TestSkeletonIsValid(t *testing.T) {
	for _, goos := range []string{"linux", "darwin"} {
		p := PathsFor(goos)
		c, err := Parse(bytes.NewReader(Skeleton("https://api.example.com", p)))
		require.NoError(t, err, goos)
		assert.Equal(t, p.Credentials, c.CredentialsFile, goos)
		assert.Equal(t, p.State, c.StateDir, goos)
	}
}

func TestPathsForPlatforms(t *testing.T) {
	assert.Equal(t, "/etc/restic-monitor/agent.yaml", PathsFor("linux").Config)
	assert.Equal(t, "/Library/Application Support/restic-monitor/agent.yaml", PathsFor("darwin").Config)
	t.Setenv(EnvConfig, "/tmp/x.yaml")
	assert.Equal(t, "/tmp/x.yaml", DefaultConfigPath())
}

// TestValidationListsEveryProblem checks that one invalid file reports each invalid field with
// its path, all at once.
func TestValidationListsEveryProblem(t *testing.T) {
	const bad = `
apiUrl: http://api.example.com
credentialsFile: relative/credentials.json
stateDir: ""
hostname: "bad host"
restic:
  binary: " "
  interruptGrace: 0s
limits:
  maxConcurrentTasks: 0
  uploadKbps: -1
  cpuQuotaPercent: 101
  nice: 20
  ioClass: realtime
  ioLevel: 8
queue:
  wait: 30s
  visibilityTimeout: 1s
retry:
  maxRetries: 11
  base: 1m
  cap: 10s
  agentBackoffAfter: 0
heartbeatInterval: 1s
shutdownGrace: 2h
logLevel: loud
metricsListen: "9464"
repositories:
  - name: x
    repository: ""
  - name: main
    repository: /srv/a
    passwordFile: relative.pw
    passwordCommand: cat pw
    env:
      RESTIC_PASSWORD: leaked-secret-value
      "1BAD": v
  - name: main
    repository: /srv/b
    passwordFile: /pw
`
	_, err := Parse(strings.NewReader(bad))
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	got := map[string]bool{}
	for _, p := range ve.Problems {
		got[p.Field] = true
	}
	for _, field := range []string{
		"apiUrl", "credentialsFile", "stateDir", "hostname", "restic.binary", "restic.interruptGrace",
		"limits.maxConcurrentTasks", "limits.uploadKbps", "limits.cpuQuotaPercent", "limits.nice",
		"limits.ioClass", "limits.ioLevel", "queue.wait", "queue.visibilityTimeout",
		"retry.maxRetries", "retry.cap", "retry.agentBackoffAfter", "heartbeatInterval", "shutdownGrace",
		"logLevel", "metricsListen",
		"repositories[0].name", "repositories[0].repository", "repositories[0]",
		"repositories[1]", `repositories[1].env["RESTIC_PASSWORD"]`, `repositories[1].env["1BAD"]`,
		"repositories[2].name",
	} {
		assert.True(t, got[field], "no problem reported for %s; got %v", field, ve.Problems)
	}
	assert.NotContains(t, err.Error(), "leaked-secret-value", "a configured value must never be repeated in an error")
	assert.Contains(t, err.Error(), `repositories[2].name: "main" is already the name of repositories[1]`)
}

func TestParseRejects(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown field":    {"apiUrl: https://a.example\nmaxConcurrentTasks: 3\n", "field maxConcurrentTasks not found"},
		"bad duration":     {"apiUrl: https://a.example\nshutdownGrace: soon\n", `"soon" is not a duration`},
		"not yaml":         {"apiUrl: [\n", "not a valid configuration"},
		"missing api url":  {"logLevel: info\n", "apiUrl: is required"},
		"url with secret":  {"apiUrl: https://user:pw@a.example\n", "apiUrl: must be an http(s) URL"},
		"plain http":       {"apiUrl: http://10.0.0.1:8080\n", "must use https"},
		"wrong type":       {"apiUrl: https://a.example\nlimits: {maxConcurrentTasks: many}\n", "cannot unmarshal"},
		"relative cache":   {"apiUrl: https://a.example\nrestic: {cacheDir: cache}\n", "restic.cacheDir"},
		"command and file": {"apiUrl: https://a.example\nrepositories: [{name: main, repository: /r, passwordFile: /p, passwordCommand: c}]\n", "not both"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
