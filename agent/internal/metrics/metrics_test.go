package metrics

import (
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func scrape(t *testing.T, a *Agent) string {
	t.Helper()
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", res.Header.Get("Content-Type"))
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(body)
}

// sampleLine matches one sample of the text format: name, optional labels, value.
var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$`)

func TestExposition(t *testing.T) {
	a := New()
	at := time.Unix(1_800_000_000, 0)
	a.TaskFinished("backup", "succeeded", "POL1", 90*time.Second, 1000, at)
	a.TaskFinished("backup", "partial", "POL2", 2*time.Second, 24, at.Add(time.Minute))
	a.TaskFinished("check", "failed", "POL1", 400*time.Millisecond, 0, at.Add(time.Hour))
	a.PollError()
	a.APIError("result")
	a.APIError("result")
	a.Rejected()
	a.ResticStarted()
	a.SetRunning(2)
	a.SetSpooled(3)
	a.SetBackoff(at.Add(time.Hour), true)

	out := scrape(t, a)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "# ") {
			assert.Regexp(t, `^# (HELP|TYPE) restic_monitor_agent_[a-z_]+ .+$`, line)
			continue
		}
		assert.Regexp(t, sampleLine, line)
	}
	for _, want := range []string{
		`restic_monitor_agent_tasks_total{type="backup",outcome="succeeded"} 1`,
		`restic_monitor_agent_tasks_total{type="backup",outcome="partial"} 1`,
		`restic_monitor_agent_tasks_total{type="check",outcome="failed"} 1`,
		`restic_monitor_agent_task_duration_seconds_bucket{type="backup",le="1"} 0`,
		`restic_monitor_agent_task_duration_seconds_bucket{type="backup",le="5"} 1`,
		`restic_monitor_agent_task_duration_seconds_bucket{type="backup",le="300"} 2`,
		`restic_monitor_agent_task_duration_seconds_bucket{type="backup",le="+Inf"} 2`,
		`restic_monitor_agent_task_duration_seconds_sum{type="backup"} 92`,
		`restic_monitor_agent_task_duration_seconds_count{type="check"} 1`,
		`restic_monitor_agent_backup_bytes_added_total 1024`,
		`restic_monitor_agent_last_success_timestamp_seconds{policy="POL1"} 1800000000`,
		`restic_monitor_agent_last_success_timestamp_seconds{policy="POL2"} 1800000060`,
		`restic_monitor_agent_poll_errors_total 1`,
		`restic_monitor_agent_api_errors_total{operation="result"} 2`,
		`restic_monitor_agent_rejected_messages_total 1`,
		`restic_monitor_agent_restic_processes_started_total 1`,
		`restic_monitor_agent_running_tasks 2`,
		`restic_monitor_agent_spooled_items 3`,
		`restic_monitor_agent_backoff 1`,
		`restic_monitor_agent_backoff_until_timestamp_seconds 1800003600`,
		"# TYPE restic_monitor_agent_task_duration_seconds histogram",
	} {
		assert.Contains(t, out, want+"\n")
	}
	assert.NotContains(t, out, `policy="POL1"} 1800003600`, "a failed task is not a success")

	a.SetBackoff(time.Time{}, false)
	out = scrape(t, a)
	assert.Contains(t, out, "restic_monitor_agent_backoff 0\n")
	assert.Contains(t, out, "restic_monitor_agent_backoff_until_timestamp_seconds 0\n")
}

func TestLabelValuesAreEscaped(t *testing.T) {
	assert.Equal(t, `{policy="a\"b\\c\nd"}`, labels("policy", "a\"b\\c\nd"))
}
