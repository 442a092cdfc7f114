package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAuditShowsWhoChangedWhat(t *testing.T) {
	c, _, _ := apiServer(t)
	c.ok(nil, "repositories", "create", "main", "--backend", "local", "--location", "/srv/restic")
	c.ok(nil, "repositories", "create", "spare", "--backend", "local", "--location", "/srv/spare")
	var token struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	c.ok(&token, "tokens", "create", "--description", "rack 4")
	require.NotEmpty(t, token.Token)

	type entry struct {
		Actor    struct{ Type, ID, Name string }
		Action   string
		Resource struct{ Type, ID string }
		Changes  []struct {
			Field string
			To    any
		}
	}
	var all []entry
	out := c.ok(&all, "audit", "--all")
	require.Len(t, all, 3)
	assert.Equal(t, "POST /v1/enrollment-tokens", all[0].Action, "newest first")
	assert.Equal(t, "enrollmentToken", all[0].Resource.Type)
	assert.Equal(t, token.ID, all[0].Resource.ID)
	assert.Equal(t, "apiKey", all[0].Actor.Type)
	assert.NotContains(t, out, strings.Split(token.Token, "_")[2], "the token's secret")

	var repos []entry
	c.ok(&repos, "audit", "--resource", "repository/main")
	require.Len(t, repos, 1)
	assert.Equal(t, "POST /v1/repositories", repos[0].Action)
	var limited []entry
	c.ok(&limited, "audit", "--resource", "repository", "--limit", "1")
	require.Len(t, limited, 1)
	assert.Equal(t, "spare", limited[0].Resource.ID)
	var byActor []entry
	c.ok(&byActor, "audit", "--actor", all[0].Actor.ID, "--since", "2000-01-01T00:00:00Z")
	assert.Len(t, byActor, 3)

	assert.Regexp(t, `(?m)^\S+\s+`+all[0].Actor.ID+`\s+admin key\s+POST /v1/repositories\s+repository\s+main\s`, c.ok(nil, "audit", "-o", "table"))

	_, errOut, err := c.run("audit", "--resource", "widget")
	require.Error(t, err)
	assert.Contains(t, errOut, "resource")
	_, errOut, err = c.run("audit", "--all", "--limit", "2")
	require.Error(t, err)
	assert.Contains(t, errOut, "do not go together")
}
