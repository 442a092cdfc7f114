package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/schedule"
)

const secret = "rma_01JAAAAAAAAAAAAAAAAAAAAAAA_supersecretvalue"

func testClient(t *testing.T, h http.HandlerFunc) (*Client, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, secret, "1.2.3")
	require.NoError(t, err)
	c.Retry = schedule.RetryPolicy{Base: time.Millisecond, Factor: 2, Cap: 5 * time.Millisecond}
	return c, &calls
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func TestRequestShape(t *testing.T) {
	c, _ := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, "/v1/agent/tasks/01JTASK0000000000000000000/result", r.URL.Path)
		assert.Equal(t, "Bearer "+secret, r.Header.Get("Authorization"))
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		assert.Equal(t, "restic-monitor-agent/1.2.3", r.Header.Get("User-Agent"))
		body, _ := io.ReadAll(r.Body)
		assert.JSONEq(t, `{"runId":"R","outcome":"partial","unreadablePaths":["/x"],"retryable":true}`, string(body))
		_, _ = w.Write([]byte(`{"taskId":"T","taskStatus":"partial","runId":"R","runStatus":"partial","attempt":1,"repeated":false}`))
	})
	reply, err := c.Result(context.Background(), "01JTASK0000000000000000000", Result{RunID: "R", Outcome: OutcomePartial, UnreadablePaths: []string{"/x"}, Retryable: true})
	require.NoError(t, err)
	assert.Equal(t, "partial", string(reply.TaskStatus))
}

func TestTransientFailuresAreRetried(t *testing.T) {
	var n atomic.Int32
	c, calls := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			writeError(w, http.StatusServiceUnavailable, "unavailable", "try later")
			return
		}
		_, _ = w.Write([]byte(`{"settings":{"heartbeatIntervalSeconds":60,"limits":{"maxConcurrentTasks":2}},"cancelledTasks":[]}`))
	})
	reply, err := c.Heartbeat(context.Background(), Heartbeat{})
	require.NoError(t, err)
	assert.Equal(t, int32(3), calls.Load())
	assert.Equal(t, 2, reply.Settings.Limits.MaxConcurrentTasks)
}

func TestRetriesAreBounded(t *testing.T) {
	c, calls := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	})
	_, err := c.Heartbeat(context.Background(), Heartbeat{})
	require.Error(t, err)
	assert.Equal(t, int32(c.Attempts), calls.Load())
	assert.False(t, Permanent(err))
}

func TestRefusalsAreTypedAndNotRetried(t *testing.T) {
	for _, tc := range []struct {
		status   int
		code     string
		sentinel error
	}{
		{http.StatusUnauthorized, "unauthorized", ErrUnauthorized},
		{http.StatusNotFound, "not_found", ErrNotFound},
		{http.StatusConflict, CodeTaskFinished, ErrConflict},
	} {
		c, calls := testClient(t, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, tc.status, tc.code, "refused")
		})
		_, err := c.Start(context.Background(), "01JTASK0000000000000000000", StartRequest{AgentSession: "s", DeliveryID: "d"})
		require.Error(t, err)
		assert.ErrorIs(t, err, tc.sentinel)
		assert.True(t, Permanent(err))
		assert.Equal(t, int32(1), calls.Load(), "a refusal is not retried")
		if tc.status == http.StatusConflict {
			assert.Equal(t, CodeTaskFinished, RefusalCode(err))
		} else {
			assert.Empty(t, RefusalCode(err))
		}
		assert.NotContains(t, err.Error(), secret)
	}
}

func TestRegisterIsNotRetried(t *testing.T) {
	c, calls := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		assert.Empty(t, r.Header.Get("Authorization"), "registration authenticates with its token only")
		writeError(w, http.StatusBadGateway, "bad_gateway", "")
	})
	c.credential = ""
	_, err := c.Register(context.Background(), RegisterRequest{Token: "rme_x"})
	require.Error(t, err)
	assert.Equal(t, int32(1), calls.Load(), "a lost answer may have used the token: no second try")
}

func TestContextEndsTheRetries(t *testing.T) {
	c, _ := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "")
	})
	c.Retry = schedule.RetryPolicy{Base: time.Hour, Factor: 2, Cap: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := c.Heartbeat(ctx, Heartbeat{})
	require.Error(t, err)
	assert.Less(t, time.Since(began), time.Minute, "the context ended the wait for an hour-long retry")
}

func TestUnreachableAPIIsAnErrorWithoutTheSecret(t *testing.T) {
	c, err := New("http://127.0.0.1:1", secret, "1")
	require.NoError(t, err)
	c.Attempts = 1
	_, err = c.Heartbeat(context.Background(), Heartbeat{})
	require.Error(t, err)
	assert.False(t, Permanent(err))
	assert.False(t, errors.Is(err, ErrUnauthorized))
	assert.NotContains(t, err.Error(), secret)
}

func TestQueueCredentialsProvider(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c, _ := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/v1/agent/credentials", r.URL.Path)
		_ = json.NewEncoder(w).Encode(QueueCredentials{AccessKeyID: "AK", SecretAccessKey: "SK", SessionToken: "ST", Expiration: exp, QueueURL: "q", Region: "eu-west-1"})
	})
	creds, err := QueueCredentialsProvider{API: c}.Retrieve(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "AK", creds.AccessKeyID)
	assert.Equal(t, "ST", creds.SessionToken)
	assert.True(t, creds.CanExpire)
	assert.Equal(t, exp, creds.Expires)
}
