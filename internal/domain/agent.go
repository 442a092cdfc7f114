package domain

import (
	"fmt"
	"regexp"
	"sort"
	"time"
)

// AgentStatus is whether the control plane currently hears from an agent.
type AgentStatus string

const (
	AgentOnline  AgentStatus = "online"
	AgentOffline AgentStatus = "offline"
)

// Valid reports whether s is a known agent status.
func (s AgentStatus) Valid() bool { return s == AgentOnline || s == AgentOffline }

// Disk is the space left on one mount of an agent's host.
type Disk struct {
	Mount      string `json:"mount"`
	FreeBytes  uint64 `json:"freeBytes"`
	TotalBytes uint64 `json:"totalBytes"`
}

// Limits bound what one agent does at once. Zero means "not set" for the optional ones.
type Limits struct {
	MaxConcurrentTasks int `json:"maxConcurrentTasks"`
	// PerType caps concurrent tasks of one type (backup, check, prune); their sum may not
	// exceed MaxConcurrentTasks.
	PerType         map[TaskType]int `json:"perType,omitempty"`
	CPUQuotaPercent int              `json:"cpuQuotaPercent,omitempty"`
	UploadKbps      int              `json:"uploadKbps,omitempty"`
	DownloadKbps    int              `json:"downloadKbps,omitempty"`
}

// DefaultLimits are what a newly enrolled agent gets.
func DefaultLimits() Limits { return Limits{MaxConcurrentTasks: 1} }

// Validate checks limits; prefix is the JSON path they are found at.
func (l Limits) Validate(prefix string) error {
	var fe fieldErrors
	l.check(&fe, prefix)
	return fe.err()
}

func (l Limits) check(fe *fieldErrors, prefix string) {
	if l.MaxConcurrentTasks < 1 || l.MaxConcurrentTasks > 100 {
		fe.add(prefix+".maxConcurrentTasks", "must be between 1 and 100")
	}
	sum := 0
	types := make([]string, 0, len(l.PerType))
	for t := range l.PerType {
		types = append(types, string(t))
	}
	sort.Strings(types)
	for _, t := range types {
		n := l.PerType[TaskType(t)]
		field := keyField(prefix+".perType", t)
		switch TaskType(t) {
		case TaskBackup, TaskCheck, TaskPrune:
		default:
			fe.add(field, "per-type limits exist only for backup, check and prune")
			continue
		}
		if n < 1 || n > 100 {
			fe.add(field, "must be between 1 and 100")
		}
		sum += n
	}
	if sum > l.MaxConcurrentTasks && l.MaxConcurrentTasks >= 1 {
		fe.add(prefix+".perType", "per-type limits add up to %d, more than maxConcurrentTasks (%d)", sum, l.MaxConcurrentTasks)
	}
	if l.CPUQuotaPercent != 0 && (l.CPUQuotaPercent < 1 || l.CPUQuotaPercent > 100) {
		fe.add(prefix+".cpuQuotaPercent", "must be between 1 and 100")
	}
	checkBandwidth(fe, prefix+".uploadKbps", l.UploadKbps)
	checkBandwidth(fe, prefix+".downloadKbps", l.DownloadKbps)
}

// MaxBandwidthKbps is the largest bandwidth limit accepted (100 Gbit/s).
const MaxBandwidthKbps = 100_000_000

func checkBandwidth(fe *fieldErrors, field string, kbps int) {
	if kbps < 0 || kbps > MaxBandwidthKbps {
		fe.add(field, "must be between 0 (unlimited) and %d KiB/s", MaxBandwidthKbps)
	}
}

// MaxDisks is the most mounts one agent reports.
const MaxDisks = 64

// Agent is one host running the restic-monitor agent.
type Agent struct {
	ID            string            `json:"id"`
	TenantID      string            `json:"tenantId"`
	Hostname      string            `json:"hostname"`
	OS            string            `json:"os"`
	Arch          string            `json:"arch"`
	AgentVersion  string            `json:"agentVersion"`
	ResticVersion string            `json:"resticVersion"`
	Labels        map[string]string `json:"labels,omitempty"`
	Status        AgentStatus       `json:"status"`
	LastSeenAt    *time.Time        `json:"lastSeenAt,omitempty"`
	Disks         []Disk            `json:"disks,omitempty"`
	Limits        Limits            `json:"limits"`
	// HeartbeatIntervalSeconds is how often the agent promises to report; three missed
	// intervals make it offline.
	HeartbeatIntervalSeconds int        `json:"heartbeatIntervalSeconds"`
	BackoffUntil             *time.Time `json:"backoffUntil,omitempty"`
	BackoffReason            string     `json:"backoffReason,omitempty"`
	LastError                string     `json:"lastError,omitempty"`
	QueueURL                 string     `json:"queueUrl,omitempty"`
	SecretHash               string     `json:"-"`
	CreatedAt                time.Time  `json:"createdAt"`
	UpdatedAt                time.Time  `json:"updatedAt"`
	// OfflineSince is when the scheduler found the agent silent. A heartbeat makes the agent
	// online again but leaves it set, so the scheduler learns of the return, announces it and
	// clears it.
	OfflineSince *time.Time `json:"offlineSince,omitempty"`
	// Version increases with every stored change; updates must name the version they read.
	Version int64 `json:"version"`
}

// Validate checks an agent before it is stored.
func (a Agent) Validate() error {
	var fe fieldErrors
	checkHostname(&fe, "hostname", a.Hostname)
	checkText(&fe, "os", a.OS, 1, 32)
	checkText(&fe, "arch", a.Arch, 1, 32)
	checkText(&fe, "agentVersion", a.AgentVersion, 1, 64)
	checkText(&fe, "resticVersion", a.ResticVersion, 0, 64)
	checkLabels(&fe, "labels", a.Labels)
	if !a.Status.Valid() {
		fe.add("status", "must be online or offline")
	}
	if len(a.Disks) > MaxDisks {
		fe.add("disks", "at most %d mounts (got %d)", MaxDisks, len(a.Disks))
	} else {
		for i, d := range a.Disks {
			checkText(&fe, fmt.Sprintf("disks[%d].mount", i), d.Mount, 1, 1024)
			if d.FreeBytes > d.TotalBytes {
				fe.add(fmt.Sprintf("disks[%d].freeBytes", i), "must not exceed totalBytes")
			}
		}
	}
	a.Limits.check(&fe, "limits")
	if a.HeartbeatIntervalSeconds < 5 || a.HeartbeatIntervalSeconds > 3600 {
		fe.add("heartbeatIntervalSeconds", "must be between 5 and 3600")
	}
	return fe.err()
}

// BackingOff reports whether the agent asked not to receive work until a later time.
func (a Agent) BackingOff(now time.Time) bool {
	return a.BackoffUntil != nil && now.Before(*a.BackoffUntil)
}

// Silent reports whether the agent missed three heartbeat intervals at now.
func (a Agent) Silent(now time.Time) bool {
	if a.LastSeenAt == nil {
		return true
	}
	return now.Sub(*a.LastSeenAt) > ListingGrace(a.HeartbeatIntervalSeconds)
}

// HeartbeatInterval is how often the agent promises to report.
func (a Agent) HeartbeatInterval() time.Duration {
	return time.Duration(a.HeartbeatIntervalSeconds) * time.Second
}

// ListingGrace is how long a running task may go unlisted by the heartbeats of an agent that
// keeps sending them before the task counts as lost: three heartbeat intervals, as long as the
// agent itself may stay silent. One late heartbeat, or one that was built before the task
// started, is never enough.
func (a Agent) ListingGrace() time.Duration { return ListingGrace(a.HeartbeatIntervalSeconds) }

// ListingGrace is Agent.ListingGrace for an agent that reports every heartbeatIntervalSeconds.
func ListingGrace(heartbeatIntervalSeconds int) time.Duration {
	return 3 * time.Duration(heartbeatIntervalSeconds) * time.Second
}

var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$`)

func checkHostname(fe *fieldErrors, field, s string) {
	if s == "" {
		fe.add(field, "must not be empty")
		return
	}
	if !hostnamePattern.MatchString(s) {
		fe.add(field, "must be a host name: letters, digits, '.', '-', '_' (at most 253 characters)")
	}
}

var labelKeyPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)

// MaxLabels is the most labels one agent or token may carry.
const MaxLabels = 50

func checkLabels(fe *fieldErrors, field string, labels map[string]string) {
	if len(labels) > MaxLabels {
		fe.add(field, "at most %d labels (got %d)", MaxLabels, len(labels))
		return
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !labelKeyPattern.MatchString(k) {
			fe.add(keyField(field, k), "label keys are 1–63 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit")
			continue
		}
		checkText(fe, keyField(field, k), labels[k], 0, 253)
	}
}
