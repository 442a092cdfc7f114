// Package client talks to the control plane's agent API (/v1/agent/...): registration,
// heartbeats, queue credentials, task start, progress and result, log chunks and snapshot
// inventories. Transient failures (the network, 5xx, 429) are retried with jittered, capped
// backoff; what the API refuses comes back as an *APIError that errors.Is matches against
// ErrUnauthorized, ErrNotFound and ErrConflict. The agent's credential is sent only in the
// Authorization header and never appears in an error.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
)

// Sentinels an *APIError matches by its status.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
)

// APIError is a response the API gave with an error status.
type APIError struct {
	Op      string
	Status  int
	Code    string
	Message string
	Fields  []domain.FieldError
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s: %d %s", e.Op, e.Status, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	for _, f := range e.Fields {
		s += fmt.Sprintf(" [%s: %s]", f.Field, f.Reason)
	}
	return s
}

// Is matches the sentinel of the error's status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	}
	return false
}

// RefusalCode is the code of a 409 refusal anywhere in err's chain, or "".
func RefusalCode(err error) string {
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict {
		return ae.Code
	}
	return ""
}

// Permanent reports whether err is an answer of the API that sending the same request again
// cannot change: any 4xx but 408 and 429.
func Permanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 &&
		ae.Status != http.StatusTooManyRequests && ae.Status != http.StatusRequestTimeout
}

// Client is an agent API client. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	credential string
	http       *http.Client
	userAgent  string
	// Retry shapes the backoff between tries; Attempts bounds them (1: no retry).
	Retry    schedule.RetryPolicy
	Attempts int
	// RequestTimeout bounds one try.
	RequestTimeout time.Duration
	// Rand jitters the backoff.
	Rand func() float64
}

// New returns a client of the API at baseURL that authenticates with credential (empty for
// registration only).
func New(baseURL, credential, agentVersion string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api url %q is not an http(s) URL", baseURL)
	}
	return &Client{
		base: u, credential: credential,
		http:           &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		userAgent:      "restic-monitor-agent/" + agentVersion,
		Retry:          schedule.RetryPolicy{Base: time.Second, Factor: 2, Cap: 15 * time.Second},
		Attempts:       4,
		RequestTimeout: 30 * time.Second,
		Rand:           rand.Float64,
	}, nil
}

// Register enrolls this host with an enrollment token. It is not retried: a lost answer may
// have used up the token's last use, and a second try would register a second agent.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (Registration, error) {
	var out Registration
	err := c.try(ctx, "register", "/v1/agent/register", false, req, &out)
	return out, err
}

// Heartbeat reports the agent's state and returns its settings.
func (c *Client) Heartbeat(ctx context.Context, hb Heartbeat) (HeartbeatReply, error) {
	var out HeartbeatReply
	err := c.do(ctx, "heartbeat", "/v1/agent/heartbeat", hb, &out)
	return out, err
}

// QueueCredentials returns short-lived credentials for the agent's queue.
func (c *Client) QueueCredentials(ctx context.Context) (QueueCredentials, error) {
	var out QueueCredentials
	err := c.do(ctx, "credentials", "/v1/agent/credentials", struct{}{}, &out)
	return out, err
}

// Start records the start of a task and returns its run.
func (c *Client) Start(ctx context.Context, taskID string, req StartRequest) (Started, error) {
	var out Started
	err := c.do(ctx, "start", "/v1/agent/tasks/"+url.PathEscape(taskID)+"/start", req, &out)
	return out, err
}

// Progress reports a running task's progress.
func (c *Client) Progress(ctx context.Context, taskID string, rep ProgressReport) (ProgressReply, error) {
	var out ProgressReply
	err := c.do(ctx, "progress", "/v1/agent/tasks/"+url.PathEscape(taskID)+"/progress", rep, &out)
	return out, err
}

// Result records how a run ended. Sending the same result again is harmless.
func (c *Client) Result(ctx context.Context, taskID string, res Result) (ResultReply, error) {
	var out ResultReply
	err := c.do(ctx, "result", "/v1/agent/tasks/"+url.PathEscape(taskID)+"/result", res, &out)
	return out, err
}

// AppendLog sends one log chunk of a run and reports whether it was stored now (false: before).
func (c *Client) AppendLog(ctx context.Context, runID string, chunk LogChunk) (bool, error) {
	var out logReply
	err := c.do(ctx, "logs", "/v1/agent/runs/"+url.PathEscape(runID)+"/logs", chunk, &out)
	return out.Stored, err
}

// UploadListing sends one upload of an ls task's listing.
func (c *Client) UploadListing(ctx context.Context, taskID string, up ListingUpload) (ListingReply, error) {
	var reply ListingReply
	err := c.do(ctx, "listing", "/v1/agent/tasks/"+url.PathEscape(taskID)+"/listing", up, &reply)
	return reply, err
}

// ReportSnapshots replaces the inventory of one repository.
func (c *Client) ReportSnapshots(ctx context.Context, rep SnapshotReport) error {
	return c.do(ctx, "snapshots", "/v1/agent/snapshots", rep, nil)
}

func (c *Client) do(ctx context.Context, op, path string, in, out any) error {
	return c.try(ctx, op, path, true, in, out)
}

// try sends one POST, retrying transient failures when retry is set.
func (c *Client) try(ctx context.Context, op, path string, retry bool, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	attempts := 1
	if retry {
		attempts = max(c.Attempts, 1)
	}
	for n := 1; ; n++ {
		wait, err := c.once(ctx, op, path, body, out)
		if err == nil || n >= attempts || Permanent(err) || ctx.Err() != nil {
			return err
		}
		if wait <= 0 {
			wait = schedule.RetryDelay(n, c.Retry, c.Rand)
		}
		t := time.NewTimer(min(wait, max(c.Retry.Cap, c.Retry.Base)))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// maxResponseBytes bounds a response body read.
const maxResponseBytes = 1 << 20

// once sends one request. wait is the server's Retry-After, when it sent one.
func (c *Client) once(ctx context.Context, op, path string, body []byte, out any) (wait time.Duration, err error) {
	if c.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.RequestTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.credential != "" {
		req.Header.Set("Authorization", "Bearer "+c.credential)
	}
	res, err := c.http.Do(req)
	if err != nil {
		// url.Error names the URL, which holds no secret; the header is not part of it.
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		return 0, fmt.Errorf("%s: read response: %w", op, err)
	}
	if res.StatusCode >= 300 {
		ae := &APIError{Op: op, Status: res.StatusCode}
		var eb struct {
			Error struct {
				Code    string              `json:"code"`
				Message string              `json:"message"`
				Fields  []domain.FieldError `json:"fields"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &eb) == nil {
			ae.Code, ae.Message, ae.Fields = eb.Error.Code, eb.Error.Message, eb.Error.Fields
		}
		if ae.Code == "" {
			ae.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(res.StatusCode), " ", "_"))
		}
		return retryAfter(res.Header.Get("Retry-After")), ae
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return 0, fmt.Errorf("%s: decode response: %w", op, err)
		}
	}
	return 0, nil
}

func retryAfter(h string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}
