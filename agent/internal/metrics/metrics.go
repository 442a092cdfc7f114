// Package metrics keeps the agent's Prometheus metrics and serves them in the Prometheus text
// exposition format (version 0.0.4). The agent needs a handful of counters, gauges and one
// histogram; writing them out directly keeps the binary small and its idle footprint low.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Agent holds every metric the agent exports. Its methods are safe for concurrent use.
type Agent struct {
	mu sync.Mutex

	tasks          map[[2]string]float64 // type, outcome
	durations      map[string]*histogram // type
	bytesAdded     float64
	lastSuccess    map[string]float64 // policy
	pollErrors     float64
	apiErrors      map[string]float64 // operation
	rejected       float64
	resticStarted  float64
	running        float64
	spooled        float64
	backoffUntil   float64
	backingOff     float64
	heartbeatsSent float64
}

// DurationBuckets are the task duration histogram's upper bounds in seconds: restic tasks take
// from seconds to many hours.
var DurationBuckets = []float64{1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400}

// New returns an Agent with every metric at zero.
func New() *Agent {
	return &Agent{
		tasks:       map[[2]string]float64{},
		durations:   map[string]*histogram{},
		lastSuccess: map[string]float64{},
		apiErrors:   map[string]float64{},
	}
}

// TaskFinished records one task's outcome (succeeded, partial, failed, cancelled, rejected,
// skipped), how long it ran and what a backup added; a success of a policy's task records the
// policy's last success time.
func (a *Agent) TaskFinished(taskType, outcome, policyID string, d time.Duration, bytesAdded uint64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tasks[[2]string{taskType, outcome}]++
	h, ok := a.durations[taskType]
	if !ok {
		h = newHistogram(DurationBuckets)
		a.durations[taskType] = h
	}
	h.observe(d.Seconds())
	a.bytesAdded += float64(bytesAdded)
	if policyID != "" && (outcome == "succeeded" || outcome == "partial") {
		a.lastSuccess[policyID] = float64(at.Unix())
	}
}

// ResticStarted counts a restic process the agent started.
func (a *Agent) ResticStarted() { a.add(&a.resticStarted, 1) }

// PollError counts a failed receive from the queue.
func (a *Agent) PollError() { a.add(&a.pollErrors, 1) }

// APIError counts a failed call to the control plane's API, by operation.
func (a *Agent) APIError(op string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.apiErrors[op]++
}

// Rejected counts a message that could not be run and was left for the dead-letter queue.
func (a *Agent) Rejected() { a.add(&a.rejected, 1) }

// HeartbeatSent counts a heartbeat the API accepted.
func (a *Agent) HeartbeatSent() { a.add(&a.heartbeatsSent, 1) }

// SetRunning sets the number of tasks running now.
func (a *Agent) SetRunning(n int) { a.set(&a.running, float64(n)) }

// SetSpooled sets the number of items waiting in the spool.
func (a *Agent) SetSpooled(n int) { a.set(&a.spooled, float64(n)) }

// SetBackoff records whether the agent is backing off, and until when.
func (a *Agent) SetBackoff(until time.Time, backingOff bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.backingOff, a.backoffUntil = 0, 0
	if backingOff {
		a.backingOff, a.backoffUntil = 1, float64(until.Unix())
	}
}

func (a *Agent) add(v *float64, d float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	*v += d
}

func (a *Agent) set(v *float64, x float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	*v = x
}

const prefix = "restic_monitor_agent_"

// WriteText writes every metric in the Prometheus text format.
func (a *Agent) WriteText(w io.Writer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	family(&b, "tasks_total", "counter", "Tasks finished, by task type and outcome.")
	for _, k := range sortedKeys(a.tasks, func(k [2]string) string { return k[0] + "\x00" + k[1] }) {
		sample(&b, "tasks_total", labels("type", k[0], "outcome", k[1]), a.tasks[k])
	}
	family(&b, "task_duration_seconds", "histogram", "How long tasks ran, by task type.")
	for _, typ := range sortedKeys(a.durations, func(k string) string { return k }) {
		a.durations[typ].write(&b, "task_duration_seconds", "type", typ)
	}
	family(&b, "backup_bytes_added_total", "counter", "Bytes backups added to their repositories.")
	sample(&b, "backup_bytes_added_total", "", a.bytesAdded)
	family(&b, "last_success_timestamp_seconds", "gauge", "When a task of each policy last succeeded.")
	for _, p := range sortedKeys(a.lastSuccess, func(k string) string { return k }) {
		sample(&b, "last_success_timestamp_seconds", labels("policy", p), a.lastSuccess[p])
	}
	family(&b, "poll_errors_total", "counter", "Failed receives from the task queue.")
	sample(&b, "poll_errors_total", "", a.pollErrors)
	family(&b, "api_errors_total", "counter", "Failed calls to the control plane API, by operation.")
	for _, op := range sortedKeys(a.apiErrors, func(k string) string { return k }) {
		sample(&b, "api_errors_total", labels("operation", op), a.apiErrors[op])
	}
	family(&b, "rejected_messages_total", "counter", "Messages rejected and left for the dead-letter queue.")
	sample(&b, "rejected_messages_total", "", a.rejected)
	family(&b, "restic_processes_started_total", "counter", "restic processes started.")
	sample(&b, "restic_processes_started_total", "", a.resticStarted)
	family(&b, "heartbeats_total", "counter", "Heartbeats the API accepted.")
	sample(&b, "heartbeats_total", "", a.heartbeatsSent)
	family(&b, "running_tasks", "gauge", "Tasks running now.")
	sample(&b, "running_tasks", "", a.running)
	family(&b, "spooled_items", "gauge", "Results and log chunks waiting in the spool for the API.")
	sample(&b, "spooled_items", "", a.spooled)
	family(&b, "backoff", "gauge", "1 while the agent backs off and takes no work.")
	sample(&b, "backoff", "", a.backingOff)
	family(&b, "backoff_until_timestamp_seconds", "gauge", "When the current backoff ends; 0 when not backing off.")
	sample(&b, "backoff_until_timestamp_seconds", "", a.backoffUntil)
	_, err := io.WriteString(w, b.String())
	return err
}

// Handler serves the metrics.
func (a *Agent) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = a.WriteText(w)
	})
}

func family(b *strings.Builder, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s%s %s\n# TYPE %s%s %s\n", prefix, name, help, prefix, name, typ)
}

func sample(b *strings.Builder, name, lbls string, v float64) {
	b.WriteString(prefix + name + lbls + " " + formatFloat(v) + "\n")
}

// labels renders name/value pairs as {a="x",b="y"}, escaping values as the format requires.
func labels(kv ...string) string {
	parts := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+`="`+escape(kv[i+1])+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

var escaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escape(s string) string { return escaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', -1, 64) // timestamps and counts read better whole
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func sortedKeys[K comparable, V any](m map[K]V, str func(K) string) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int { return strings.Compare(str(a), str(b)) })
	return keys
}

type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
}

func (h *histogram) observe(v float64) {
	h.sum += v
	h.count++
	for i, ub := range h.bounds {
		if v <= ub {
			h.counts[i]++
			return
		}
	}
}

func (h *histogram) write(b *strings.Builder, name, labelName, labelValue string) {
	var cum uint64
	for i, ub := range h.bounds {
		cum += h.counts[i]
		sample(b, name+"_bucket", labels(labelName, labelValue, "le", formatFloat(ub)), float64(cum))
	}
	sample(b, name+"_bucket", labels(labelName, labelValue, "le", "+Inf"), float64(h.count))
	sample(b, name+"_sum", labels(labelName, labelValue), h.sum)
	sample(b, name+"_count", labels(labelName, labelValue), float64(h.count))
}
