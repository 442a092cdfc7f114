package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/notify"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

func TestNotifyCommandsAgainstTheAPI(t *testing.T) {
	cfg := testenv.AWS(t)
	t.Setenv("AWS_ENDPOINT_URL", localaws.Endpoint())
	table := testenv.Table(t, cfg)
	st := store.New(dynamodb.NewFromConfig(cfg), table)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sealer, err := notify.NewSealer([]byte(strings.Repeat("s", 32)))
	require.NoError(t, err)
	deps := httpapi.Deps{Store: st, Log: log, Now: time.Now, Settings: httpapi.DefaultSettings(),
		Notify: &notify.Notifier{Store: st, Sealer: sealer, Log: log, Now: time.Now,
			// The receiver listens on 127.0.0.1: the private-address guard is off for it.
			HTTP: notify.NewHTTPClient(notify.ClientOptions{AllowPrivate: true})}}
	srv := httptest.NewServer(httpapi.Authenticate(&auth.Authenticator{Store: st}, log, httpapi.NewHandler(deps)))
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	var got []string
	rcv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get(notify.SignatureHeader))
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)

	boot := &cli{t: t, env: map[string]string{"RM_TABLE": table}}
	boot.ok(nil, "tenant", "create", "acme")
	var key struct {
		Key string `json:"key"`
	}
	boot.ok(&key, "apikey", "create", "--tenant", "acme", "--role", "operator")
	c := &cli{t: t, env: map[string]string{"RM_API_URL": srv.URL, "RM_API_KEY": key.Key}}

	out, errOut, err := c.run("notify", "channels", "create", "ops", "--url", rcv.URL, "--events", "task.failed,agent.offline", "--quiet")
	require.NoError(t, err, errOut)
	assert.Contains(t, errOut, "signing secret (shown only now): whsec_")
	var ch domain.Channel
	require.NoError(t, json.Unmarshal([]byte(out), &ch), out)
	assert.Equal(t, []string{"task.failed", "agent.offline"}, ch.Rules.EventTypes)
	assert.True(t, ch.Quiet)

	assert.Regexp(t, `(?m)^`+ch.ID+`\s+ops\s+webhook\s+`, c.ok(nil, "notify", "channels", "list", "-o", "table"))
	var d domain.Delivery
	c.ok(&d, "notify", "test", ch.ID)
	assert.Equal(t, domain.DeliverySucceeded, d.Status)
	mu.Lock()
	assert.Len(t, got, 1)
	mu.Unlock()
	assert.Contains(t, c.ok(nil, "notify", "deliveries", ch.ID, "-o", "table"), d.ID)

	_, errOut, err = c.run("notify", "channels", "create", "bad", "--url", "ftp://x", "--events", "task.failed")
	require.Error(t, err)
	assert.Contains(t, errOut+err.Error(), "url")

	c.ok(nil, "notify", "channels", "delete", ch.ID)
	_, _, err = c.run("notify", "channels", "get", ch.ID)
	assert.Error(t, err, "a deleted channel")
}
