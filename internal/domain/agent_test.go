package domain_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func validAgent() domain.Agent {
	seen := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return domain.Agent{
		ID:            "01JNB7Q1V3W4X5Y6Z7A8B9C0D1",
		TenantID:      "acme",
		Hostname:      "web-01.example.com",
		OS:            "linux",
		Arch:          "amd64",
		AgentVersion:  "0.3.1",
		ResticVersion: "0.17.3",
		Labels:        map[string]string{"env": "prod", "app.kubernetes.io/name": "web", "empty": ""},
		Status:        domain.AgentOnline,
		LastSeenAt:    &seen,
		Disks: []domain.Disk{
			{Mount: "/", FreeBytes: 10 << 30, TotalBytes: 50 << 30},
			{Mount: "/var/lib/docker", FreeBytes: 0, TotalBytes: 100 << 30},
		},
		Limits: domain.Limits{
			MaxConcurrentTasks: 4,
			PerType:            map[domain.TaskType]int{domain.TaskBackup: 2, domain.TaskCheck: 1, domain.TaskPrune: 1},
			CPUQuotaPercent:    50,
			UploadKbps:         10_000,
			DownloadKbps:       20_000,
		},
		HeartbeatIntervalSeconds: 30,
	}
}

func manyLabels(n int) map[string]string {
	labels := make(map[string]string, n)
	for i := range n {
		labels[fmt.Sprintf("k%d", i)] = "v"
	}
	return labels
}

func TestAgentValidateAccepts(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*domain.Agent)
	}{
		{"as built", func(*domain.Agent) {}},
		{"windows host", func(a *domain.Agent) {
			a.Hostname, a.OS, a.Arch = "FILESRV01", "windows", "arm64"
			a.Disks = []domain.Disk{{Mount: `C:\`, FreeBytes: 1, TotalBytes: 2}, {Mount: `D:\`, FreeBytes: 5, TotalBytes: 5}}
		}},
		{"single-letter hostname", func(a *domain.Agent) { a.Hostname = "h" }},
		{"hostname of 253 characters", func(a *domain.Agent) { a.Hostname = strings.Repeat("a", 253) }},
		{"underscore in hostname", func(a *domain.Agent) { a.Hostname = "build_agent-7" }},
		{"restic not installed yet", func(a *domain.Agent) { a.ResticVersion = "" }},
		{"offline", func(a *domain.Agent) { a.Status = domain.AgentOffline }},
		{"no labels or disks", func(a *domain.Agent) { a.Labels, a.Disks = nil, nil }},
		{"most labels", func(a *domain.Agent) { a.Labels = manyLabels(domain.MaxLabels) }},
		{"longest label key and value", func(a *domain.Agent) {
			a.Labels = map[string]string{strings.Repeat("k", 63): strings.Repeat("v", 253)}
		}},
		{"most disks", func(a *domain.Agent) {
			a.Disks = make([]domain.Disk, domain.MaxDisks)
			for i := range a.Disks {
				a.Disks[i] = domain.Disk{Mount: fmt.Sprintf("/mnt/d%d", i)}
			}
		}},
		{"default limits", func(a *domain.Agent) { a.Limits = domain.DefaultLimits() }},
		{"per-type limits adding up to the total", func(a *domain.Agent) {
			a.Limits.PerType = map[domain.TaskType]int{domain.TaskBackup: 4}
		}},
		{"widest limits", func(a *domain.Agent) {
			a.Limits = domain.Limits{MaxConcurrentTasks: 100, CPUQuotaPercent: 100, UploadKbps: domain.MaxBandwidthKbps, DownloadKbps: domain.MaxBandwidthKbps}
		}},
		{"narrowest limits", func(a *domain.Agent) { a.Limits = domain.Limits{MaxConcurrentTasks: 1, CPUQuotaPercent: 1} }},
		{"heartbeat bounds", func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 5 }},
		{"slowest heartbeat", func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 3600 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := validAgent()
			tc.mutate(&a)
			assertValid(t, a.Validate())
		})
	}
}

func TestAgentValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*domain.Agent)
		want   []string
	}{
		{"empty hostname", func(a *domain.Agent) { a.Hostname = "" }, []string{"hostname"}},
		{"hostname starting with hyphen", func(a *domain.Agent) { a.Hostname = "-web" }, []string{"hostname"}},
		{"hostname ending with dot", func(a *domain.Agent) { a.Hostname = "web." }, []string{"hostname"}},
		{"space in hostname", func(a *domain.Agent) { a.Hostname = "web 01" }, []string{"hostname"}},
		{"non-ASCII hostname", func(a *domain.Agent) { a.Hostname = "wéb" }, []string{"hostname"}},
		{"hostname too long", func(a *domain.Agent) { a.Hostname = strings.Repeat("a", 254) }, []string{"hostname"}},
		{"empty os", func(a *domain.Agent) { a.OS = "" }, []string{"os"}},
		{"arch too long", func(a *domain.Agent) { a.Arch = strings.Repeat("x", 33) }, []string{"arch"}},
		{"empty agent version", func(a *domain.Agent) { a.AgentVersion = "" }, []string{"agentVersion"}},
		{"newline in restic version", func(a *domain.Agent) { a.ResticVersion = "0.17.3\n" }, []string{"resticVersion"}},
		{"empty label key", func(a *domain.Agent) { a.Labels = map[string]string{"": "x"} }, []string{`labels[""]`}},
		{"label key starting with hyphen", func(a *domain.Agent) { a.Labels = map[string]string{"-env": "x"} }, []string{`labels["-env"]`}},
		{"label key with space", func(a *domain.Agent) { a.Labels = map[string]string{"my env": "x"} }, []string{`labels["my env"]`}},
		{"label key too long", func(a *domain.Agent) { a.Labels = map[string]string{strings.Repeat("k", 64): "x"} },
			[]string{`labels["` + strings.Repeat("k", 64) + `"]`}},
		{"huge label key is shortened in the path", func(a *domain.Agent) { a.Labels = map[string]string{strings.Repeat("k", 5000): "x"} },
			[]string{`labels["` + strings.Repeat("k", 64) + `…"]`}},
		{"control character in label key is quoted", func(a *domain.Agent) { a.Labels = map[string]string{"env\n": "x"} },
			[]string{`labels["env\n"]`}},
		{"dotted label key keeps its dots inside the brackets", func(a *domain.Agent) {
			a.Labels = map[string]string{"app.kubernetes.io/name": "a\tb"}
		}, []string{`labels["app.kubernetes.io/name"]`}},
		{"label value too long", func(a *domain.Agent) { a.Labels = map[string]string{"env": strings.Repeat("v", 254)} }, []string{`labels["env"]`}},
		{"too many labels", func(a *domain.Agent) { a.Labels = manyLabels(domain.MaxLabels + 1) }, []string{"labels"}},
		{"labels reported in key order", func(a *domain.Agent) {
			a.Labels = map[string]string{"zone": "\x00", "-a": "", "b": "\x7f"}
		}, []string{`labels["-a"]`, `labels["b"]`, `labels["zone"]`}},
		{"no status", func(a *domain.Agent) { a.Status = "" }, []string{"status"}},
		{"unknown status", func(a *domain.Agent) { a.Status = "busy" }, []string{"status"}},
		{"too many disks", func(a *domain.Agent) { a.Disks = make([]domain.Disk, domain.MaxDisks+1) }, []string{"disks"}},
		{"disk without mount", func(a *domain.Agent) { a.Disks[0].Mount = "" }, []string{"disks[0].mount"}},
		{"more free than total", func(a *domain.Agent) { a.Disks[1].FreeBytes = a.Disks[1].TotalBytes + 1 }, []string{"disks[1].freeBytes"}},
		{"no concurrency", func(a *domain.Agent) { a.Limits = domain.Limits{} }, []string{"limits.maxConcurrentTasks"}},
		{"concurrency over 100", func(a *domain.Agent) { a.Limits.MaxConcurrentTasks = 101 }, []string{"limits.maxConcurrentTasks"}},
		{"no concurrency skips the per-type sum", func(a *domain.Agent) { a.Limits.MaxConcurrentTasks = 0 }, []string{"limits.maxConcurrentTasks"}},
		{"per-type limit of zero", func(a *domain.Agent) { a.Limits.PerType[domain.TaskCheck] = 0 }, []string{`limits.perType["check"]`}},
		{"per-type limit over 100", func(a *domain.Agent) {
			a.Limits.PerType = map[domain.TaskType]int{domain.TaskBackup: 101}
		}, []string{`limits.perType["backup"]`, "limits.perType"}},
		{"per-type limit for a type without one", func(a *domain.Agent) {
			a.Limits.PerType = map[domain.TaskType]int{domain.TaskRestore: 1}
		}, []string{`limits.perType["restore"]`}},
		{"per-type limits exceed the total", func(a *domain.Agent) { a.Limits.PerType[domain.TaskBackup] = 3 }, []string{"limits.perType"}},
		{"negative CPU quota", func(a *domain.Agent) { a.Limits.CPUQuotaPercent = -1 }, []string{"limits.cpuQuotaPercent"}},
		{"CPU quota over 100", func(a *domain.Agent) { a.Limits.CPUQuotaPercent = 101 }, []string{"limits.cpuQuotaPercent"}},
		{"negative upload", func(a *domain.Agent) { a.Limits.UploadKbps = -1 }, []string{"limits.uploadKbps"}},
		{"download too fast", func(a *domain.Agent) { a.Limits.DownloadKbps = domain.MaxBandwidthKbps + 1 }, []string{"limits.downloadKbps"}},
		{"heartbeat unset", func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 0 }, []string{"heartbeatIntervalSeconds"}},
		{"heartbeat too fast", func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 4 }, []string{"heartbeatIntervalSeconds"}},
		{"heartbeat too slow", func(a *domain.Agent) { a.HeartbeatIntervalSeconds = 3601 }, []string{"heartbeatIntervalSeconds"}},
		{"everything wrong", func(a *domain.Agent) {
			*a = domain.Agent{Labels: map[string]string{"ok": "\x00"}, Disks: []domain.Disk{{FreeBytes: 2, TotalBytes: 1}}}
		}, []string{
			"hostname", "os", "arch", "agentVersion", `labels["ok"]`, "status",
			"disks[0].mount", "disks[0].freeBytes", "limits.maxConcurrentTasks", "heartbeatIntervalSeconds",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := validAgent()
			tc.mutate(&a)
			assertInvalid(t, a.Validate(), tc.want...)
		})
	}
}

func TestLimitsReasonsAndPrefix(t *testing.T) {
	l := domain.Limits{MaxConcurrentTasks: 2, PerType: map[domain.TaskType]int{domain.TaskBackup: 2, domain.TaskPrune: 1}}
	err := l.Validate("agent.limits")
	assertInvalid(t, err, "agent.limits.perType")
	assertReasonMentions(t, err, "agent.limits.perType", "3", "maxConcurrentTasks (2)")

	assertValid(t, domain.DefaultLimits().Validate("limits"))
}

func TestAgentSilent(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	cases := []struct {
		name     string
		lastSeen *time.Time
		interval int
		want     bool
	}{
		{"never seen", nil, 30, true},
		{"just seen", at(0), 30, false},
		{"two intervals missed", at(-60 * time.Second), 30, false},
		{"exactly three intervals", at(-90 * time.Second), 30, false},
		{"past three intervals", at(-91 * time.Second), 30, true},
		{"long interval, long quiet", at(-2 * time.Hour), 3600, false},
		{"seen in the future (clock skew)", at(time.Minute), 30, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := domain.Agent{LastSeenAt: tc.lastSeen, HeartbeatIntervalSeconds: tc.interval}
			got := a.Silent(now)
			assert.Equalf(t, tc.want, got, "Silent: got %v, want %v", got, tc.want)
		})
	}
}

func TestAgentBackingOff(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	cases := []struct {
		name  string
		until *time.Time
		want  bool
	}{
		{"no backoff", nil, false},
		{"backoff ahead", at(time.Minute), true},
		{"backoff ends a nanosecond later", at(time.Nanosecond), true},
		{"backoff ends now", at(0), false},
		{"backoff over", at(-time.Minute), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := domain.Agent{BackoffUntil: tc.until, BackoffReason: "disk full"}.BackingOff(now)
			assert.Equalf(t, tc.want, got, "BackingOff: got %v, want %v", got, tc.want)
		})
	}
}

func TestAgentStatusValid(t *testing.T) {
	assert.True(t, domain.AgentOnline.Valid(), "online: got invalid")
	assert.True(t, domain.AgentOffline.Valid(), "offline: got invalid")
	assert.False(t, domain.AgentStatus("busy").Valid(), "busy: got valid")
}
