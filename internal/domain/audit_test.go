package domain

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestAuditChangesNameNestedFieldsAndRedactSecrets(t *testing.T) {
	type schedule struct {
		Cron     string `json:"cron"`
		Timezone string `json:"timezone,omitempty"`
	}
	type thing struct {
		Name      string            `json:"name"`
		Schedule  schedule          `json:"schedule"`
		Labels    map[string]string `json:"labels,omitempty"`
		Paths     []string          `json:"paths"`
		Location  string            `json:"location"`
		Secret    string            `json:"secret,omitempty"`
		TokenHash string            `json:"tokenHash,omitempty"`
		URL       string            `json:"url,omitempty"`
		Env       map[string]string `json:"env,omitempty"`
		Version   int64             `json:"version"`
		UpdatedAt time.Time         `json:"updatedAt"`
	}
	before := thing{Name: "nightly", Schedule: schedule{Cron: "30 2 * * *", Timezone: "UTC"}, Labels: map[string]string{"env": "prod"},
		Paths: []string{"/data"}, Location: "rest:https://backup:hunter2@rest.example.com/repo", Secret: "s3cr3t-old",
		URL: "https://hooks.example.com/T0K3N", Env: map[string]string{"AWS_SECRET_ACCESS_KEY": "AKIAOLD"}, Version: 3}
	after := before
	after.Schedule.Cron = "0 3 * * *"
	after.Labels = map[string]string{"env": "prod", "site": "fra1"}
	after.Paths = []string{"/data", "/home"}
	after.Location = "rest:https://backup:hunter3@rest.example.com/repo2"
	after.Secret, after.TokenHash, after.URL = "s3cr3t-new", "abc123", "https://hooks.example.com/N3W"
	after.Env = map[string]string{"AWS_SECRET_ACCESS_KEY": "AKIANEW"}
	after.Version, after.UpdatedAt = 4, time.Now()

	got := map[string][2]string{}
	for _, c := range AuditChanges(before, after) {
		got[c.Field] = [2]string{string(c.From), string(c.To)}
	}
	r := `"[redacted]"`
	assert.Equal(t, map[string][2]string{
		"schedule.cron":             {`"30 2 * * *"`, `"0 3 * * *"`},
		"labels.site":               {"", `"fra1"`},
		"paths":                     {`["/data"]`, `["/data","/home"]`},
		"location":                  {`"rest:https://backup:[redacted]@rest.example.com/repo"`, `"rest:https://backup:[redacted]@rest.example.com/repo2"`},
		"secret":                    {r, r},
		"tokenHash":                 {"", r},
		"url":                       {r, r},
		"env.AWS_SECRET_ACCESS_KEY": {r, r},
	}, got, "version and updatedAt are bookkeeping; the unchanged name and timezone are left out")

	created := AuditChanges(nil, before)
	assert.NotEmpty(t, created)
	for _, c := range created {
		assert.Empty(t, c.From, c.Field)
	}
	raw, err := json.Marshal(created)
	assert.NoError(t, err)
	for _, secret := range []string{"hunter2", "s3cr3t-old", "T0K3N", "AKIAOLD"} {
		assert.NotContains(t, string(raw), secret)
	}
	assert.Empty(t, AuditChanges(before, before))
	assert.Equal(t, []AuditChange{}, AuditChanges(nil, nil))
}
