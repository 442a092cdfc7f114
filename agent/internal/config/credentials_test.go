package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCredentialsRoundTripPrivately(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "credentials.json")
	c := Credentials{
		APIURL: "https://api.example.com", TenantID: "acme", AgentID: "01JAAAAAAAAAAAAAAAAAAAAAAA",
		AgentSecret: "rma_secret", QueueURL: "https://sqs.example/q", Region: "eu-west-1",
		EnrolledAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	require.NoError(t, SaveCredentials(path, c))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())

	got, err := LoadCredentials(path)
	require.NoError(t, err)
	assert.Equal(t, c, got)
	assert.NotContains(t, got.String(), "rma_secret")
}

func TestLoadCredentialsExplainsWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadCredentials(filepath.Join(dir, "missing.json"))
	assert.ErrorContains(t, err, "enroll the agent first")

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"tenantId":"acme","agentSecret":"s3cr3t"}`), 0o600))
	_, err = LoadCredentials(bad)
	assert.ErrorContains(t, err, "agentId is missing or invalid")
	assert.ErrorContains(t, err, "queueUrl is missing")
	assert.NotContains(t, err.Error(), "s3cr3t")
}
