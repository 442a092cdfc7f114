package httpapi_test

import (
	"context"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

func TestRegisterEnrollsAnAgentWithItsQueueAndCredential(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	tokenID, token := f.token(tokenSpec{maxUses: 2, labels: map[string]string{"env": "prod", "site": "fra"}})
	body := registration(token, "db-1.example.com")
	body["labels"] = map[string]string{"site": "ber", "role": "db"}
	body["disks"] = []map[string]any{{"mount": "/", "freeBytes": 10, "totalBytes": 100}}

	res := h.call("POST", "/v1/agent/register", "", body)

	statusIs(t, 201, res, "register")
	var out struct {
		AgentID    string `json:"agentId"`
		TenantID   string `json:"tenantId"`
		Credential string `json:"credential"`
		QueueURL   string `json:"queueUrl"`
		Region     string `json:"region"`
		Settings   struct {
			HeartbeatIntervalSeconds int           `json:"heartbeatIntervalSeconds"`
			Limits                   domain.Limits `json:"limits"`
		} `json:"settings"`
	}
	res.JSON(t, &out)
	t.Cleanup(func() { _ = h.queues.Delete(context.Background(), "acme", out.AgentID) })
	assert.True(t, domain.ValidID(out.AgentID), "agentId: got %q", out.AgentID)
	assert.Equal(t, "acme", out.TenantID)
	assert.Equal(t, "us-east-1", out.Region)
	assert.Equal(t, 60, out.Settings.HeartbeatIntervalSeconds)
	assert.Equal(t, domain.DefaultLimits(), out.Settings.Limits)
	prefix, id, secret, ok := auth.Parse(out.Credential)
	require.True(t, ok, "credential: got %q, want rma_<agentId>_<secret>", out.Credential)
	assert.Equal(t, auth.PrefixAgent, prefix)
	assert.Equal(t, out.AgentID, id)

	a := f.agent(out.AgentID)
	assert.Equal(t, domain.AgentOnline, a.Status)
	assert.Equal(t, "db-1.example.com", a.Hostname)
	assert.Equal(t, map[string]string{"env": "prod", "site": "ber", "role": "db"}, a.Labels, "the host's labels win over the token's")
	assert.Equal(t, []domain.Disk{{Mount: "/", FreeBytes: 10, TotalBytes: 100}}, a.Disks)
	require.NotNil(t, a.LastSeenAt)
	assert.Equal(t, h.clock, *a.LastSeenAt)
	assert.Equal(t, out.QueueURL, a.QueueURL)
	assert.True(t, auth.Matches(secret, a.SecretHash), "the stored hash must match the issued secret")
	assert.NotContains(t, res.Body, a.SecretHash, "the hash never leaves the store")

	q, err := h.queues.Lookup(context.Background(), "acme", out.AgentID)
	require.NoError(t, err, "the agent's queue must exist")
	assert.Equal(t, out.QueueURL, q.URL)
	tok, err := h.store.LookupEnrollmentToken(context.Background(), tokenID)
	require.NoError(t, err)
	assert.Equal(t, 1, tok.Uses, "one use of the token is spent")

	// The credential works at once.
	statusIs(t, 200, h.call("POST", "/v1/agent/heartbeat", out.Credential, map[string]any{}), "heartbeat with the new credential")
}

func TestRegisterRefusesEveryBadTokenWith401(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	ctx := context.Background()

	_, expired := f.token(tokenSpec{ttl: time.Minute})
	revokedID, revoked := f.token(tokenSpec{})
	require.NoError(t, h.store.RevokeEnrollmentToken(ctx, "acme", revokedID, h.clock))
	_, usedUp := f.token(tokenSpec{maxUses: 1})
	statusIs(t, 201, h.call("POST", "/v1/agent/register", "", registration(usedUp, "first")), "the token's only use")
	_, good := f.token(tokenSpec{})
	goodPrefix, goodID, _, _ := auth.Parse(good)
	wrongSecret := auth.Format(goodPrefix, goodID, auth.NewSecret())
	unknown := auth.Format(auth.PrefixEnrollment, domain.NewID(h.clock), auth.NewSecret())
	apiKey := h.apiKey("acme", domain.RoleAdmin)
	h.clock = h.clock.Add(2 * time.Minute) // past the expired token's minute

	cases := map[string]string{
		"missing":          "",
		"malformed":        "rme_not-a-token",
		"blank":            "   ",
		"wrong secret":     wrongSecret,
		"unknown":          unknown,
		"expired":          expired,
		"revoked":          revoked,
		"used up":          usedUp,
		"an API key":       apiKey,
		"agent prefix":     strings.Replace(good, "rme_", "rma_", 1),
		"secret truncated": good[:len(good)-1],
	}
	before := agentCount(t, h, "acme")
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			res := h.call("POST", "/v1/agent/register", "", registration(token, "host-"+strings.ReplaceAll(name, " ", "-")))
			statusIs(t, 401, res, name)
			assert.Equal(t, "unauthorized", errorCode(t, res))
		})
	}
	assert.Equal(t, before, agentCount(t, h, "acme"), "no agent may be created by a bad token")
	tok, err := h.store.LookupEnrollmentToken(ctx, goodID)
	require.NoError(t, err)
	assert.Equal(t, 0, tok.Uses, "a wrong secret must not spend a use of the token")
}

func agentCount(t *testing.T, h *harness, tenant string) int {
	t.Helper()
	agents, _, err := h.store.ListAgents(context.Background(), tenant, store.AgentFilter{}, store.Page{Limit: 100})
	require.NoError(t, err)
	return len(agents)
}

// Two hosts race for the last use of a token: one enrolls, the other gets 401, and the queues
// created for the loser are removed again.
func TestRegisterRaceForTheLastUseLeavesNoQueueBehind(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	_, token := f.token(tokenSpec{maxUses: 1})
	const hosts = 3
	statuses := make([]int, hosts)
	bodies := make([]string, hosts)
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Go(func() {
			res := h.call("POST", "/v1/agent/register", "", registration(token, "racer-"+string(rune('a'+i))))
			statuses[i], bodies[i] = res.Status, res.Body
		})
	}
	wg.Wait()

	var winner, winnerQueue string
	won := 0
	for i, s := range statuses {
		switch s {
		case 201:
			won++
			var out struct {
				AgentID  string `json:"agentId"`
				QueueURL string `json:"queueUrl"`
			}
			response{Body: bodies[i]}.JSON(t, &out)
			winner, winnerQueue = out.AgentID, out.QueueURL
			t.Cleanup(func() { _ = h.queues.Delete(context.Background(), "acme", winner) })
		case 401:
		default:
			t.Fatalf("host %d: got status %d (%s), want 201 or 401", i, s, bodies[i])
		}
	}
	require.Equal(t, 1, won, "exactly one host enrolls: got statuses %v", statuses)
	assert.Equal(t, 1, agentCount(t, h, "acme"))

	sqsClient := sqs.NewFromConfig(testenv.AWS(t))
	// Every test has a stage of its own, so this prefix finds only this test's queues.
	prefix := strings.TrimSuffix(path.Base(winnerQueue), winner)
	require.True(t, strings.HasSuffix(prefix, "-acme-"), "queue name: got %s", path.Base(winnerQueue))
	out, err := sqsClient.ListQueues(context.Background(), &sqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix)})
	require.NoError(t, err)
	for _, url := range out.QueueUrls {
		assert.Contains(t, url, winner, "only the winner's queues may remain: got %s", url)
	}
	assert.Len(t, out.QueueUrls, 1, "the winner's queue: got %v", out.QueueUrls)
}

func TestRegisterRefusesInvalidHostsWithoutSpendingTheToken(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	tokenID, token := f.token(tokenSpec{})
	manyLabels := map[string]string{}
	for i := range domain.MaxLabels + 1 {
		manyLabels["k"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	cases := []struct {
		name   string
		change func(map[string]any)
		field  string
	}{
		{"empty hostname", func(b map[string]any) { b["hostname"] = "" }, "hostname"},
		{"hostname with a space", func(b map[string]any) { b["hostname"] = "db 1" }, "hostname"},
		{"no os", func(b map[string]any) { delete(b, "os") }, "os"},
		{"no agent version", func(b map[string]any) { delete(b, "agentVersion") }, "agentVersion"},
		{"arch with a control character", func(b map[string]any) { b["arch"] = "arm\x0064" }, "arch"},
		{"bad label key", func(b map[string]any) { b["labels"] = map[string]string{"-bad": "x"} }, `labels["-bad"]`},
		{"too many labels", func(b map[string]any) { b["labels"] = manyLabels }, "labels"},
		{"free above total", func(b map[string]any) {
			b["disks"] = []map[string]any{{"mount": "/", "freeBytes": 200, "totalBytes": 100}}
		}, "disks[0].freeBytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := registration(token, "host")
			tc.change(body)
			res := h.call("POST", "/v1/agent/register", "", body)
			statusIs(t, 422, res, tc.name)
			assert.Contains(t, res.ErrorFields(t), tc.field)
		})
	}
	tok, err := h.store.LookupEnrollmentToken(context.Background(), tokenID)
	require.NoError(t, err)
	assert.Equal(t, 0, tok.Uses, "an invalid registration must not spend the token")
	assert.Equal(t, 0, agentCount(t, h, "acme"))
}

func TestRegisterRefusesMalformedBodies(t *testing.T) {
	h := newHarness(t)
	f := newAgentFixture(h, "acme")
	_, token := f.token(tokenSpec{})
	cases := []struct {
		name, body string
		status     int
		field      string
	}{
		{"not JSON", `{"token": `, 400, ""},
		{"an array", `[]`, 400, "body"},
		{"unknown field", `{"token":"` + token + `","hostname":"h","os":"linux","arch":"x","agentVersion":"1","tenantId":"other"}`, 400, "tenantId"},
		{"wrong type", `{"token":"` + token + `","hostname":42}`, 400, "hostname"},
		{"labels not an object", `{"token":"` + token + `","labels":["a"]}`, 400, "labels"},
		{"two values", `{} {}`, 400, ""},
		{"empty", ``, 400, ""},
		{"too large", `{"token":"` + strings.Repeat("x", 1<<20) + `"}`, 413, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call("POST", "/v1/agent/register", "", tc.body)
			statusIs(t, tc.status, res, tc.name)
			if tc.field != "" {
				assert.Contains(t, res.ErrorFields(t), tc.field)
			} else {
				assert.NotEmpty(t, errorCode(t, res))
			}
		})
	}
	assert.Equal(t, 0, agentCount(t, h, "acme"))
}
