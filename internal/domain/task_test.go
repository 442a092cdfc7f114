package domain_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// taskEdges is the task state machine written out by hand, one "from→to" per allowed move, so
// the table in task.go is checked against an independent statement of it.
var taskEdges = []string{
	"pending→queued", "retrying→queued",
	"pending→running", "queued→running",
	"queued→retrying", "running→retrying",
	"running→succeeded",
	"running→partial",
	"pending→failed", "queued→failed", "running→failed", "retrying→failed",
	"pending→cancelled", "queued→cancelled", "running→cancelled", "retrying→cancelled",
	"pending→expired", "queued→expired", "retrying→expired",
}

func TestCanTransition(t *testing.T) {
	statuses := append(slices.Clone(domain.TaskStatuses), "", "bogus")
	for _, from := range statuses {
		for _, to := range statuses {
			want := slices.Contains(taskEdges, string(from)+"→"+string(to))
			got := domain.CanTransition(from, to)
			assert.Equalf(t, want, got, "CanTransition(%q, %q): got %v, want %v", from, to, got, want)
		}
	}
}

func TestAllowedFrom(t *testing.T) {
	for _, to := range append(slices.Clone(domain.TaskStatuses), "bogus") {
		var want []string
		for _, e := range taskEdges {
			if from, target, _ := strings.Cut(e, "→"); target == string(to) {
				want = append(want, from)
			}
		}
		var got []string
		for _, s := range domain.AllowedFrom(to) {
			got = append(got, string(s))
		}
		slices.Sort(want)
		slices.Sort(got)
		assert.Equalf(t, want, got, "AllowedFrom(%q): got %q, want %q", to, got, want)
	}
}

func TestAllowedFromCannotChangeTheMachine(t *testing.T) {
	from := domain.AllowedFrom(domain.TaskSucceeded)
	from[0] = domain.TaskPending
	_ = append(from, domain.TaskQueued)
	assert.False(t, domain.CanTransition(domain.TaskPending, domain.TaskSucceeded),
		"after editing AllowedFrom's result: got pending→succeeded allowed")
	assert.True(t, domain.CanTransition(domain.TaskRunning, domain.TaskSucceeded),
		"after editing AllowedFrom's result: got running→succeeded refused")
}

func TestRedeliveredStartIsRefused(t *testing.T) {
	got := domain.CanTransition(domain.TaskRunning, domain.TaskRunning)
	assert.False(t, got, "running→running: got allowed, want refused so a redelivered message cannot start a second run")
}

func TestLimitType(t *testing.T) {
	cases := []struct {
		tt   domain.TaskType
		p    domain.TaskParams
		want domain.TaskType
	}{
		{domain.TaskForget, domain.TaskParams{Prune: true}, domain.TaskPrune},
		{domain.TaskForget, domain.TaskParams{}, domain.TaskForget},
		{domain.TaskBackup, domain.TaskParams{Prune: true}, domain.TaskBackup},
		{domain.TaskPrune, domain.TaskParams{}, domain.TaskPrune},
		{domain.TaskRestore, domain.TaskParams{}, domain.TaskRestore},
	}
	for _, tc := range cases {
		got := domain.LimitType(tc.tt, tc.p)
		assert.Equalf(t, tc.want, got, "LimitType(%s, prune=%v): got %s, want %s", tc.tt, tc.p.Prune, got, tc.want)
	}
}

func TestTaskStatusFinalAndActive(t *testing.T) {
	cases := []struct {
		status        domain.TaskStatus
		final, active bool
	}{
		{domain.TaskPending, false, true},
		{domain.TaskQueued, false, true},
		{domain.TaskRunning, false, true},
		{domain.TaskRetrying, false, false},
		{domain.TaskSucceeded, true, false},
		{domain.TaskPartial, true, false},
		{domain.TaskFailed, true, false},
		{domain.TaskCancelled, true, false},
		{domain.TaskExpired, true, false},
		{"bogus", false, false},
	}
	for _, tc := range cases {
		gotFinal, gotActive := tc.status.Final(), tc.status.Active()
		assert.Equalf(t, tc.final, gotFinal, "%q.Final(): got %v, want %v", tc.status, gotFinal, tc.final)
		assert.Equalf(t, tc.active, gotActive, "%q.Active(): got %v, want %v", tc.status, gotActive, tc.active)
	}
	assert.Lenf(t, cases, len(domain.TaskStatuses)+1, "the table covers every status: got %d cases", len(cases))
}

// Final means no move leaves the state; every other known state has a way out, so no task can
// be stuck for good in a state that is not final.
func TestFinalStatesAreExactlyTheDeadEnds(t *testing.T) {
	for _, from := range domain.TaskStatuses {
		var exits []domain.TaskStatus
		for _, to := range domain.TaskStatuses {
			if domain.CanTransition(from, to) {
				exits = append(exits, to)
			}
		}
		if from.Final() {
			assert.Emptyf(t, exits, "final %q: got exits %q, want none", from, exits)
		} else {
			assert.NotEmptyf(t, exits, "%q is not final: got no exit", from)
		}
	}
}

func TestTaskStatusAndTypeValid(t *testing.T) {
	for _, s := range domain.TaskStatuses {
		assert.Truef(t, s.Valid(), "%q: got invalid", s)
	}
	for _, s := range []domain.TaskStatus{"", "done", "Running"} {
		assert.Falsef(t, s.Valid(), "%q: got valid", s)
	}
	want := []domain.TaskType{"backup", "forget", "prune", "check", "restore", "unlock", "snapshots", "stats", "ls"}
	assert.Equalf(t, want, domain.TaskTypes, "TaskTypes: got %q, want %q", domain.TaskTypes, want)
	for _, tt := range domain.TaskTypes {
		assert.Truef(t, tt.Valid(), "%q: got invalid", tt)
	}
	for _, tt := range []domain.TaskType{"", "copy", "Backup"} {
		assert.Falsef(t, tt.Valid(), "%q: got valid", tt)
	}
}

func TestTransitionError(t *testing.T) {
	err := error(&domain.TransitionError{TaskID: "01JNB7Q1V3W4X5Y6Z7A8B9C0D1", Current: domain.TaskSucceeded, To: domain.TaskRunning})
	assert.Truef(t, errors.Is(err, domain.ErrInvalidTransition), "errors.Is(%v, ErrInvalidTransition): got false", err)
	assert.Equal(t, `task 01JNB7Q1V3W4X5Y6Z7A8B9C0D1: cannot move from "succeeded" to "running"`, err.Error())

	wrapped := fmt.Errorf("start task: %w", err)
	var te *domain.TransitionError
	if assert.Truef(t, errors.As(wrapped, &te), "errors.As(%v): got false", wrapped) {
		assert.Equalf(t, domain.TaskSucceeded, te.Current, "Current: got %q, want succeeded", te.Current)
	}
}

func validTask() domain.Task {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return domain.Task{
		ID:         "01JNB7Q1V3W4X5Y6Z7A8B9C0D1",
		TenantID:   "acme",
		AgentID:    "01JNB7Q1V3W4X5Y6Z7A8B9C0D2",
		PolicyID:   "01JNB7Q1V3W4X5Y6Z7A8B9C0D3",
		Repository: "offsite-s3",
		Type:       domain.TaskBackup,
		Status:     domain.TaskPending,
		Attempt:    1,
		MaxRetries: 3,
		NotBefore:  now,
		Deadline:   now.Add(6 * time.Hour),
		Trigger:    "schedule",
		CreatedAt:  now,
		UpdatedAt:  now,
	}
}

func restore(mutate func(*domain.TaskParams)) func(*domain.Task) {
	return func(t *domain.Task) {
		t.Type = domain.TaskRestore
		t.PolicyID = ""
		t.Params = domain.TaskParams{SnapshotID: "latest", Target: "/restore", IncludePaths: []string{"/etc/nginx"}, Verify: true}
		mutate(&t.Params)
	}
}

func TestTaskValidateAccepts(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*domain.Task)
	}{
		{"scheduled backup", func(*domain.Task) {}},
		{"operator task without policy", func(t *domain.Task) { t.PolicyID, t.Trigger = "", "operator" }},
		{"snapshot listing", func(t *domain.Task) { t.Type = domain.TaskSnapshots }},
		{"no retries", func(t *domain.Task) { t.MaxRetries = 0 }},
		{"most retries", func(t *domain.Task) { t.MaxRetries = 20 }},
		{"forget and prune", func(t *domain.Task) { t.Type, t.Params.Prune = domain.TaskForget, true }},
		{"check of a subset", func(t *domain.Task) { t.Type, t.Params.ReadDataSubset = domain.TaskCheck, "2/7" }},
		{"restore of latest", restore(func(*domain.TaskParams) {})},
		{"restore of a snapshot ID", restore(func(p *domain.TaskParams) { p.SnapshotID = "4bba301e" })},
		{"restore to Windows", restore(func(p *domain.TaskParams) { p.Target = `C:\restore` })},
		{"restore of everything", restore(func(p *domain.TaskParams) { p.IncludePaths = nil })},
		{"restore into a new temporary directory", restore(func(p *domain.TaskParams) { p.Target = "" })},
		{"restore of odd file names", restore(func(p *domain.TaskParams) { p.IncludePaths = []string{"/home/x/b*?[.txt", "/home/..x"} })},
		{"ls of the whole snapshot", func(t *domain.Task) { t.Type, t.PolicyID, t.Params.SnapshotID = domain.TaskLs, "", "latest" }},
		{"ls of a directory", func(t *domain.Task) {
			t.Type, t.PolicyID, t.Params.SnapshotID, t.Params.Path = domain.TaskLs, "", "0123abcd", "/home/x"
		}},
		{"restore of most paths", restore(func(p *domain.TaskParams) { p.IncludePaths = numbered(domain.MaxPolicyPaths, "/d%d") })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := validTask()
			tc.mutate(&task)
			assertValid(t, task.Validate())
		})
	}
}

func TestTaskValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*domain.Task)
		want   []string
	}{
		{"no type", func(t *domain.Task) { t.Type = "" }, []string{"type"}},
		{"unknown type", func(t *domain.Task) { t.Type = "copy" }, []string{"type"}},
		{"no agent", func(t *domain.Task) { t.AgentID = "" }, []string{"agentId"}},
		{"agent hostname instead of ID", func(t *domain.Task) { t.AgentID = "web-01" }, []string{"agentId"}},
		{"bad policy ID", func(t *domain.Task) { t.PolicyID = "web-servers_daily" }, []string{"policyId"}},
		{"no repository", func(t *domain.Task) { t.Repository = "" }, []string{"repository"}},
		{"repository location instead of name", func(t *domain.Task) { t.Repository = "/srv/restic" }, []string{"repository"}},
		{"deadline at notBefore", func(t *domain.Task) { t.Deadline = t.NotBefore }, []string{"deadline"}},
		{"deadline before notBefore", func(t *domain.Task) { t.Deadline = t.NotBefore.Add(-time.Second) }, []string{"deadline"}},
		{"no times", func(t *domain.Task) { t.NotBefore, t.Deadline = time.Time{}, time.Time{} }, []string{"deadline"}},
		{"negative retries", func(t *domain.Task) { t.MaxRetries = -1 }, []string{"maxRetries"}},
		{"too many retries", func(t *domain.Task) { t.MaxRetries = 21 }, []string{"maxRetries"}},
		{"bad read-data subset", func(t *domain.Task) { t.Params.ReadDataSubset = "0/3" }, []string{"params.readDataSubset"}},
		{"read-data subset in words", func(t *domain.Task) { t.Params.ReadDataSubset = "half" }, []string{"params.readDataSubset"}},
		{"restore without snapshot", restore(func(p *domain.TaskParams) { p.SnapshotID = "" }), []string{"params.snapshotId"}},
		{"restore with huge snapshot ID", restore(func(p *domain.TaskParams) { p.SnapshotID = strings.Repeat("a", 65) }), []string{"params.snapshotId"}},
		{"restore with control character in snapshot", restore(func(p *domain.TaskParams) { p.SnapshotID = "latest\n" }), []string{"params.snapshotId"}},
		{"restore to a climbing target", restore(func(p *domain.TaskParams) { p.Target = "/srv/restore/../../etc" }), []string{"params.target"}},
		{"restore of a climbing path", restore(func(p *domain.TaskParams) { p.IncludePaths = []string{"/home/../etc/shadow"} }),
			[]string{"params.includePaths[0]"}},
		{"restore of a relative path", restore(func(p *domain.TaskParams) { p.IncludePaths = []string{"home/x"} }),
			[]string{"params.includePaths[0]"}},
		{"restore of an unclean path", restore(func(p *domain.TaskParams) { p.IncludePaths = []string{"/home//x/"} }),
			[]string{"params.includePaths[0]"}},
		{"ls without snapshot", func(t *domain.Task) { t.Type, t.PolicyID = domain.TaskLs, "" }, []string{"params.snapshotId"}},
		{"ls of a prefix too short", func(t *domain.Task) { t.Type, t.PolicyID, t.Params.SnapshotID = domain.TaskLs, "", "abc" }, []string{"params.snapshotId"}},
		{"ls of a relative path", func(t *domain.Task) {
			t.Type, t.PolicyID, t.Params.SnapshotID, t.Params.Path = domain.TaskLs, "", "0123abcd", "home"
		}, []string{"params.path"}},
		{"ls of a climbing path", func(t *domain.Task) {
			t.Type, t.PolicyID, t.Params.SnapshotID, t.Params.Path = domain.TaskLs, "", "0123abcd", "/home/.."
		}, []string{"params.path"}},
		{"restore to a relative target", restore(func(p *domain.TaskParams) { p.Target = "restore" }), []string{"params.target"}},
		{"restore to a target with control characters", restore(func(p *domain.TaskParams) { p.Target = "/restore\x00/x" }), []string{"params.target"}},
		{"restore of too many paths", restore(func(p *domain.TaskParams) { p.IncludePaths = numbered(domain.MaxPolicyPaths+1, "/d%d") }),
			[]string{"params.includePaths"}},
		{"restore of empty paths", restore(func(p *domain.TaskParams) { p.IncludePaths = []string{"/ok", "", "/x\ty"} }),
			[]string{"params.includePaths[1]", "params.includePaths[2]"}},
		{"everything wrong", func(t *domain.Task) {
			*t = domain.Task{Type: domain.TaskRestore, PolicyID: "x", MaxRetries: 50, Params: domain.TaskParams{ReadDataSubset: "0%"}}
		}, []string{"agentId", "policyId", "repository", "deadline", "maxRetries", "params.snapshotId", "params.readDataSubset"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := validTask()
			tc.mutate(&task)
			assertInvalid(t, task.Validate(), tc.want...)
		})
	}
}
