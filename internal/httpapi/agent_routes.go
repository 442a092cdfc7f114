package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/reporting"
)

// AgentRoutes are the agent API's routes. Registration is public (its enrollment token is in the
// body); every other route needs an agent's credential and acts on that agent only: another
// agent's task or run is not found.
func AgentRoutes(d Deps) []Route {
	h := agentAPI{d: d, svc: newReporting(d)}
	const post = http.MethodPost
	return []Route{
		{post, "/v1/agent/register", AccessPublic, h.register},
		{post, "/v1/agent/heartbeat", AccessAgent, h.heartbeat},
		{post, "/v1/agent/credentials", AccessAgent, h.credentials},
		{post, "/v1/agent/tasks/{taskId}/start", AccessAgent, h.start},
		{post, "/v1/agent/tasks/{taskId}/progress", AccessAgent, h.progress},
		{post, "/v1/agent/tasks/{taskId}/result", AccessAgent, h.result},
		{post, "/v1/agent/runs/{runId}/logs", AccessAgent, h.logs},
		{post, "/v1/agent/snapshots", AccessAgent, h.snapshots},
		{post, "/v1/agent/tasks/{taskId}/listing", AccessAgent, h.listing},
	}
}

func newReporting(d Deps) *reporting.Service {
	svc := &reporting.Service{
		Store: d.Store, Log: d.Log, Now: d.Now,
		Settings: reporting.Settings{
			HeartbeatInterval: d.Settings.HeartbeatInterval, LogRetention: d.Settings.LogRetention,
			Retry: d.Settings.Retry, AgentHourlyRetryBudget: d.Settings.AgentHourlyRetryBudget,
			ListingRetention: d.Settings.ListingRetention, ListingMaxBytes: d.Settings.ListingMaxBytes,
		},
	}
	if d.Queues != nil {
		svc.Queues = d.Queues
	}
	return svc
}

type agentAPI struct {
	d   Deps
	svc *reporting.Service
}

// caller is the agent the request's credential names.
func caller(r *http.Request) reporting.Caller {
	p := principal(r)
	return reporting.Caller{TenantID: p.TenantID, AgentID: p.ID}
}

// agentError gives the agent API's own errors their status: a refusal is a 409 whose code tells
// the agent what to do next, an oversized report a 413.
func agentError(err error) error {
	var refusal *reporting.Refusal
	var tooLarge *reporting.TooLargeError
	switch {
	case errors.As(err, &refusal):
		return &Error{Status: http.StatusConflict, Code: refusal.Code, Message: refusal.Message}
	case errors.As(err, &tooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: "too large: " + tooLarge.Reason,
			Fields: []domain.FieldError{{Field: tooLarge.Field, Reason: tooLarge.Reason}}}
	}
	return err
}

// agentSettings are what the control plane asks of an agent.
type agentSettings struct {
	HeartbeatIntervalSeconds int           `json:"heartbeatIntervalSeconds"`
	Limits                   domain.Limits `json:"limits"`
}

func agentSettingsOf(a domain.Agent) agentSettings {
	return agentSettings{HeartbeatIntervalSeconds: a.HeartbeatIntervalSeconds, Limits: a.Limits}
}

// registerResponse is a new agent's identity and credential; the credential is shown only here.
type registerResponse struct {
	AgentID    string        `json:"agentId"`
	TenantID   string        `json:"tenantId"`
	Credential string        `json:"credential"`
	QueueURL   string        `json:"queueUrl"`
	Region     string        `json:"region"`
	Settings   agentSettings `json:"settings"`
}

func (h agentAPI) register(w http.ResponseWriter, r *http.Request) error {
	var req reporting.RegisterRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	reg, err := h.svc.Register(r.Context(), req)
	if err != nil {
		return agentError(err)
	}
	writeJSON(w, http.StatusCreated, registerResponse{
		AgentID: reg.Agent.ID, TenantID: reg.Agent.TenantID, Credential: reg.Credential, QueueURL: reg.Agent.QueueURL,
		Region: h.d.Settings.Region, Settings: agentSettingsOf(reg.Agent),
	})
	return nil
}

// heartbeatResponse carries the agent's current settings and the running tasks to stop.
type heartbeatResponse struct {
	Settings agentSettings `json:"settings"`
	// CancelledTasks are the tasks the heartbeat listed as running that an operator cancelled.
	CancelledTasks []string  `json:"cancelledTasks"`
	ServerTime     time.Time `json:"serverTime"`
}

func (h agentAPI) heartbeat(w http.ResponseWriter, r *http.Request) error {
	var hb reporting.Heartbeat
	if err := decode(r, &hb); err != nil {
		return err
	}
	reply, err := h.svc.Heartbeat(r.Context(), caller(r), hb)
	if err != nil {
		return agentError(err)
	}
	writeJSON(w, http.StatusOK, heartbeatResponse{Settings: agentSettingsOf(reply.Agent), CancelledTasks: reply.CancelledTasks, ServerTime: h.d.now()})
	return nil
}

// credentialsResponse are short-lived AWS credentials for the agent's own queue.
type credentialsResponse struct {
	QueueCredentials
	QueueURL string `json:"queueUrl"`
	Region   string `json:"region"`
}

func (h agentAPI) credentials(w http.ResponseWriter, r *http.Request) error {
	if err := decodeOptional(r, &struct{}{}); err != nil {
		return err
	}
	if h.d.Credentials == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "queue credentials are not configured in this deployment"}
	}
	c := caller(r)
	url, arn, err := h.svc.QueueOf(r.Context(), c)
	if err != nil {
		return agentError(err)
	}
	creds, err := h.d.Credentials.QueueCredentials(r.Context(), c.TenantID, c.AgentID, arn)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, credentialsResponse{QueueCredentials: creds, QueueURL: url, Region: h.d.Settings.Region})
	return nil
}

// startResponse is the run a start began (201), or began before when the start is repeated (200).
type startResponse struct {
	TaskID  string `json:"taskId"`
	RunID   string `json:"runId"`
	Attempt int    `json:"attempt"`
	// Repeated is true when this start had been recorded before: run the task under RunID.
	Repeated bool `json:"repeated"`
	// InterruptedRunID is the task's previous run, recorded as interrupted by this start.
	InterruptedRunID string `json:"interruptedRunId,omitempty"`
}

func (h agentAPI) start(w http.ResponseWriter, r *http.Request) error {
	taskID, err := pathID(r, "taskId")
	if err != nil {
		return err
	}
	var req reporting.StartRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	st, err := h.svc.Start(r.Context(), caller(r), taskID, req)
	if err != nil {
		return agentError(err)
	}
	status := http.StatusCreated
	if st.Repeated {
		status = http.StatusOK
	}
	writeJSON(w, status, startResponse{TaskID: taskID, RunID: st.Run.ID, Attempt: st.Run.Attempt, Repeated: st.Repeated, InterruptedRunID: st.Interrupted})
	return nil
}

// progressResponse tells the agent whether to stop the run.
type progressResponse struct {
	// CancelRequested is true when an operator cancelled the task: stop restic and report the
	// result as cancelled.
	CancelRequested bool `json:"cancelRequested"`
}

func (h agentAPI) progress(w http.ResponseWriter, r *http.Request) error {
	taskID, err := pathID(r, "taskId")
	if err != nil {
		return err
	}
	var rep reporting.ProgressReport
	if err := decode(r, &rep); err != nil {
		return err
	}
	reply, err := h.svc.Progress(r.Context(), caller(r), taskID, rep)
	if err != nil {
		return agentError(err)
	}
	writeJSON(w, http.StatusOK, progressResponse{CancelRequested: reply.CancelRequested})
	return nil
}

// resultResponse is the run and its task as recorded.
type resultResponse struct {
	TaskID     string            `json:"taskId"`
	TaskStatus domain.TaskStatus `json:"taskStatus"`
	RunID      string            `json:"runId"`
	RunStatus  domain.TaskStatus `json:"runStatus"`
	Attempt    int               `json:"attempt"`
	// NextRetryAt is when the task is tried again, when it is retrying.
	NextRetryAt *time.Time `json:"nextRetryAt,omitempty"`
	// Repeated is true when the same result had been recorded before.
	Repeated bool `json:"repeated"`
}

func (h agentAPI) result(w http.ResponseWriter, r *http.Request) error {
	taskID, err := pathID(r, "taskId")
	if err != nil {
		return err
	}
	var res reporting.Result
	if err := decode(r, &res); err != nil {
		return err
	}
	reply, err := h.svc.Result(r.Context(), caller(r), taskID, res)
	if err != nil {
		return agentError(err)
	}
	out := resultResponse{TaskID: reply.Task.ID, TaskStatus: reply.Task.Status, RunID: reply.Run.ID, RunStatus: reply.Run.Status,
		Attempt: reply.Run.Attempt, Repeated: reply.Repeated}
	if reply.Task.Status == domain.TaskRetrying {
		out.NextRetryAt = reply.Task.NextRetryAt
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// logResponse says whether a chunk was stored now (201) or had been before (200).
type logResponse struct {
	RunID  string `json:"runId"`
	Seq    int64  `json:"seq"`
	Stored bool   `json:"stored"`
}

func (h agentAPI) logs(w http.ResponseWriter, r *http.Request) error {
	runID, err := pathID(r, "runId")
	if err != nil {
		return err
	}
	var chunk reporting.LogChunk
	if err := decode(r, &chunk); err != nil {
		return err
	}
	stored, err := h.svc.AppendLog(r.Context(), caller(r), runID, chunk)
	if err != nil {
		return agentError(err)
	}
	status := http.StatusOK
	if stored {
		status = http.StatusCreated
	}
	writeJSON(w, status, logResponse{RunID: runID, Seq: *chunk.Seq, Stored: stored})
	return nil
}

// snapshotsResponse says what an inventory report changed.
type snapshotsResponse struct {
	Repository string `json:"repository"`
	Stored     int    `json:"stored"`
	Removed    int    `json:"removed"`
}

func (h agentAPI) snapshots(w http.ResponseWriter, r *http.Request) error {
	var rep reporting.SnapshotReport
	if err := decode(r, &rep); err != nil {
		return err
	}
	reply, err := h.svc.ReportSnapshots(r.Context(), caller(r), rep)
	if err != nil {
		return agentError(err)
	}
	writeJSON(w, http.StatusOK, snapshotsResponse{Repository: rep.Repository, Stored: reply.Stored, Removed: reply.Removed})
	return nil
}

// listingResponse says what an upload of an ls run's listing did.
type listingResponse struct {
	TaskID string `json:"taskId"`
	Seq    int64  `json:"seq"`
	// Repeated is true when the upload had been counted before.
	Repeated bool `json:"repeated"`
	// Truncated is true when the listing reached its size cap: stop uploading, finish the run.
	Truncated bool `json:"truncated"`
	// Bytes and Entries are the listing's compressed size and entries so far.
	Bytes   int64 `json:"bytes"`
	Entries int64 `json:"entries"`
	// ListedAt is set once a final upload made the listing the snapshot's.
	ListedAt *time.Time `json:"listedAt,omitempty"`
}

func (h agentAPI) listing(w http.ResponseWriter, r *http.Request) error {
	taskID, err := pathID(r, "taskId")
	if err != nil {
		return err
	}
	var up reporting.ListingUpload
	if err := decode(r, &up); err != nil {
		return err
	}
	reply, err := h.svc.UploadListing(r.Context(), caller(r), taskID, up)
	if err != nil {
		return agentError(err)
	}
	out := listingResponse{TaskID: taskID, Seq: *up.Seq, Repeated: reply.Repeated, Truncated: reply.Listing.Truncated,
		Bytes: reply.Listing.Bytes, Entries: reply.Listing.Entries}
	if reply.Finished {
		out.ListedAt = &reply.Listing.ListedAt
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// decodeOptional decodes a body that may be left out: an empty body leaves v as it is.
func decodeOptional(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return badRequest("the body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return decode(r, v)
}
