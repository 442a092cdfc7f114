package domain_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func validPolicy() domain.Policy {
	return domain.Policy{
		ID:          "01JNB7Q1V3W4X5Y6Z7A8B9C0D1",
		TenantID:    "acme",
		Name:        "web-servers_daily",
		Description: "Nightly backup of the web tier",
		Enabled:     true,
		Repository:  "offsite-s3",
		Paths:       []string{"/etc", "/var/www"},
		Excludes:    []string{"*.tmp", "/var/www/cache"},
		Tags:        []string{"web", "nightly"},
		Schedule:    domain.Schedule{Cron: "15 2 * * *", Timezone: "Europe/Berlin"},
		Retention:   domain.Retention{KeepDaily: 7, KeepWeekly: 4},
	}
}

func intPtr(n int) *int { return &n }

// numbered returns n strings made from format and 0, 1, 2, …
func numbered(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

func TestPolicyValidateAccepts(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*domain.Policy)
	}{
		{"as built", func(*domain.Policy) {}},
		{"shortest name", func(p *domain.Policy) { p.Name = "abc" }},
		{"longest name", func(p *domain.Policy) { p.Name = strings.Repeat("n", 100) }},
		{"no description", func(p *domain.Policy) { p.Description = "" }},
		{"non-ASCII description", func(p *domain.Policy) { p.Description = "Sicherung für das Büro – täglich 🗄" }},
		{"disabled", func(p *domain.Policy) { p.Enabled = false }},
		{"windows paths", func(p *domain.Policy) {
			p.Paths = []string{`C:\Users`, "D:/data", `\\fileserver\share\docs`, `c:\ProgramData\App`}
		}},
		{"root", func(p *domain.Policy) { p.Paths = []string{"/"} }},
		{"path with spaces and unicode", func(p *domain.Policy) { p.Paths = []string{"/home/jo/My Documents/Überweisungen"} }},
		{"most paths", func(p *domain.Policy) {
			p.Paths = numbered(domain.MaxPolicyPaths, "/data/%d")
		}},
		{"most excludes", func(p *domain.Policy) {
			p.Excludes = numbered(domain.MaxPolicyExcludes, "*.%d")
		}},
		{"most tags", func(p *domain.Policy) {
			p.Tags = numbered(domain.MaxPolicyTags, "t%d")
		}},
		{"no excludes or tags", func(p *domain.Policy) { p.Excludes, p.Tags = nil, nil }},
		{"restic's flags", func(p *domain.Policy) { p.ExcludeCaches, p.OneFileSystem = true, true }},
		{"interval", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "6h"} }},
		{"one-minute interval", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "1m"} }},
		{"compound interval", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "1d12h"} }},
		{"longest interval", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "366d"} }},
		{"interval with spread", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "1h", Spread: "10m"} }},
		{"cron without timezone", func(p *domain.Policy) { p.Schedule = domain.Schedule{Cron: "*/15 * * * *"} }},
		{"cron on weekdays", func(p *domain.Policy) {
			p.Schedule = domain.Schedule{Cron: "0 3 * * 1-5", Timezone: "America/New_York"}
		}},
		{"cron with names", func(p *domain.Policy) { p.Schedule = domain.Schedule{Cron: "30 1 1 JAN,JUL SUN", Timezone: "UTC"} }},
		{"cron with widest spread", func(p *domain.Policy) { p.Schedule.Spread = "24h" }},
		{"no retention count but keep-within", func(p *domain.Policy) { p.Retention = domain.Retention{KeepWithin: "30d"} }},
		{"keep-within in years and months", func(p *domain.Policy) { p.Retention = domain.Retention{KeepWithin: "1y6m"} }},
		{"keep-within in hours", func(p *domain.Policy) { p.Retention = domain.Retention{KeepWithin: "12h"} }},
		{"keep-within in every unit", func(p *domain.Policy) { p.Retention = domain.Retention{KeepWithin: "2y3m4d5h"} }},
		{"keep-tag only", func(p *domain.Policy) { p.Retention = domain.Retention{KeepTags: []string{"keep-forever"}} }},
		{"keep-last only", func(p *domain.Policy) { p.Retention = domain.Retention{KeepLast: 1} }},
		{"every rule", func(p *domain.Policy) {
			p.Retention = domain.Retention{KeepLast: 3, KeepHourly: 24, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 100000, KeepWithin: "2y", KeepTags: []string{"a", "b"}}
		}},
		{"forget and prune", func(p *domain.Policy) {
			p.ForgetSchedule = &domain.Schedule{Cron: "@weekly", Timezone: "Europe/Berlin"}
			p.Prune = true
		}},
		{"check", func(p *domain.Policy) {
			p.CheckSchedule = &domain.Schedule{Interval: "1w"}
			p.CheckReadDataSubset = "1/5"
		}},
		{"no retries", func(p *domain.Policy) { p.MaxRetries = intPtr(0) }},
		{"most retries", func(p *domain.Policy) { p.MaxRetries = intPtr(20) }},
		{"bandwidth limits", func(p *domain.Policy) { p.UploadKbps, p.DownloadKbps = 1, domain.MaxBandwidthKbps }},
		{"most read concurrency", func(p *domain.Policy) { p.ReadConcurrency = 256 }},
		{"shortest deadline", func(p *domain.Policy) { p.RunDeadline = "1m" }},
		{"longest deadline", func(p *domain.Policy) { p.RunDeadline = "7d" }},
		{"compound deadline", func(p *domain.Policy) { p.RunDeadline = "2h30m" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPolicy()
			tc.mutate(&p)
			assertValid(t, p.Validate())
		})
	}
}

func TestPolicyAcceptsCronDescriptors(t *testing.T) {
	for _, d := range []string{"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"} {
		p := validPolicy()
		p.Schedule = domain.Schedule{Cron: d, Timezone: "Asia/Tokyo"}
		t.Run(d, func(t *testing.T) { assertValid(t, p.Validate()) })
	}
}

func TestPolicyAcceptsReadDataSubsets(t *testing.T) {
	for _, s := range []string{"1/5", "5/5", "1/1", "10%", "2.5%", "100%", "0.1%", "500M", "1G", "2T", "250K", "1024", "16g"} {
		p := validPolicy()
		p.CheckSchedule = &domain.Schedule{Cron: "@monthly"}
		p.CheckReadDataSubset = s
		t.Run(s, func(t *testing.T) { assertValid(t, p.Validate()) })
	}
}

func TestPolicyValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*domain.Policy)
		want   []string
	}{
		{"empty name", func(p *domain.Policy) { p.Name = "" }, []string{"name"}},
		{"stats schedule without cron or interval", func(p *domain.Policy) { p.StatsSchedule = &domain.Schedule{} }, []string{"statsSchedule"}},
		{"bad stats cron", func(p *domain.Policy) { p.StatsSchedule = &domain.Schedule{Cron: "every day"} }, []string{"statsSchedule.cron"}},
		{"name too short", func(p *domain.Policy) { p.Name = "ab" }, []string{"name"}},
		{"name too long", func(p *domain.Policy) { p.Name = strings.Repeat("n", 101) }, []string{"name"}},
		{"space in name", func(p *domain.Policy) { p.Name = "web servers" }, []string{"name"}},
		{"slash in name", func(p *domain.Policy) { p.Name = "daily/web" }, []string{"name"}},
		{"non-ASCII name", func(p *domain.Policy) { p.Name = "café" }, []string{"name"}},
		{"newline in description", func(p *domain.Policy) { p.Description = "line one\nline two" }, []string{"description"}},
		{"description too long", func(p *domain.Policy) { p.Description = strings.Repeat("d", 1001) }, []string{"description"}},
		{"no repository", func(p *domain.Policy) { p.Repository = "" }, []string{"repository"}},
		{"bad repository name", func(p *domain.Policy) { p.Repository = "s3:s3.amazonaws.com/bucket" }, []string{"repository"}},
		{"no paths", func(p *domain.Policy) { p.Paths = nil }, []string{"paths"}},
		{"empty paths", func(p *domain.Policy) { p.Paths = []string{} }, []string{"paths"}},
		{"too many paths", func(p *domain.Policy) {
			p.Paths = numbered(domain.MaxPolicyPaths+1, "/data/%d")
		}, []string{"paths"}},
		{"relative path", func(p *domain.Policy) { p.Paths = []string{"relative/dir"} }, []string{"paths[0]"}},
		{"empty path", func(p *domain.Policy) { p.Paths = []string{"/ok", ""} }, []string{"paths[1]"}},
		{"every kind of relative path", func(p *domain.Policy) {
			p.Paths = []string{"/ok", "data", "~/docs", "C:relative", "./x", `\single\backslash`, "C:"}
		}, []string{"paths[1]", "paths[2]", "paths[3]", "paths[4]", "paths[5]", "paths[6]"}},
		{"NUL in path", func(p *domain.Policy) { p.Paths = []string{"/etc\x00"} }, []string{"paths[0]"}},
		{"path too long", func(p *domain.Policy) { p.Paths = []string{"/" + strings.Repeat("p", 4096)} }, []string{"paths[0]"}},
		{"too many excludes", func(p *domain.Policy) {
			p.Excludes = numbered(domain.MaxPolicyExcludes+1, "*.%d")
		}, []string{"excludes"}},
		{"bad excludes", func(p *domain.Policy) { p.Excludes = []string{"", "*.tmp", "bad\tpattern", "  "} },
			[]string{"excludes[0]", "excludes[2]", "excludes[3]"}},
		{"too many tags", func(p *domain.Policy) {
			p.Tags = numbered(domain.MaxPolicyTags+1, "t%d")
		}, []string{"tags"}},
		{"bad tags", func(p *domain.Policy) { p.Tags = []string{"ok", "has space", "a,b", "", "x\x07"} },
			[]string{"tags[1]", "tags[2]", "tags[3]", "tags[4]"}},
		{"blank tag reported once", func(p *domain.Policy) { p.Tags = []string{"   "} }, []string{"tags[0]"}},
		{"tag too long", func(p *domain.Policy) { p.Tags = []string{strings.Repeat("t", 129)} }, []string{"tags[0]"}},
		{"no schedule", func(p *domain.Policy) { p.Schedule = domain.Schedule{} }, []string{"schedule"}},
		{"cron and interval", func(p *domain.Policy) { p.Schedule.Interval = "1h" }, []string{"schedule"}},
		{"cron nonsense", func(p *domain.Policy) { p.Schedule.Cron = "every night" }, []string{"schedule.cron"}},
		{"cron with seconds", func(p *domain.Policy) { p.Schedule.Cron = "0 15 2 * * *" }, []string{"schedule.cron"}},
		{"cron with four fields", func(p *domain.Policy) { p.Schedule.Cron = "15 2 * *" }, []string{"schedule.cron"}},
		{"cron minute out of range", func(p *domain.Policy) { p.Schedule.Cron = "61 * * * *" }, []string{"schedule.cron"}},
		{"cron hour out of range", func(p *domain.Policy) { p.Schedule.Cron = "0 24 * * *" }, []string{"schedule.cron"}},
		{"cron @every", func(p *domain.Policy) { p.Schedule.Cron = "@every 1h" }, []string{"schedule.cron"}},
		{"cron @reboot", func(p *domain.Policy) { p.Schedule.Cron = "@reboot" }, []string{"schedule.cron"}},
		{"timezone inside cron", func(p *domain.Policy) { p.Schedule.Cron = "TZ=Europe/Berlin 15 2 * * *" }, []string{"schedule.cron"}},
		{"CRON_TZ inside cron", func(p *domain.Policy) { p.Schedule.Cron = "CRON_TZ=UTC 15 2 * * *" }, []string{"schedule.cron"}},
		{"unknown timezone", func(p *domain.Policy) { p.Schedule.Timezone = "Mars/Olympus_Mons" }, []string{"schedule.timezone"}},
		{"Local timezone", func(p *domain.Policy) { p.Schedule.Timezone = "Local" }, []string{"schedule.timezone"}},
		{"timezone as offset", func(p *domain.Policy) { p.Schedule.Timezone = "+02:00" }, []string{"schedule.timezone"}},
		{"timezone as file path", func(p *domain.Policy) { p.Schedule.Timezone = "../../etc/passwd" }, []string{"schedule.timezone"}},
		{"interval of seconds", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "30s"} }, []string{"schedule.interval"}},
		{"interval of 59 seconds", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "59s"} }, []string{"schedule.interval"}},
		{"zero interval", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "0m"} }, []string{"schedule.interval"}},
		{"interval in words", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "6 hours"} }, []string{"schedule.interval"}},
		{"negative interval", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "-1h"} }, []string{"schedule.interval"}},
		{"fractional interval", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "1.5h"} }, []string{"schedule.interval"}},
		{"interval over a year", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "367d"} }, []string{"schedule.interval"}},
		{"interval overflowing", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "1000000y"} }, []string{"schedule.interval"}},
		{"spread too wide", func(p *domain.Policy) { p.Schedule.Spread = "25h" }, []string{"schedule.spread"}},
		{"spread in words", func(p *domain.Policy) { p.Schedule.Spread = "a bit" }, []string{"schedule.spread"}},
		{"no retention", func(p *domain.Policy) { p.Retention = domain.Retention{} }, []string{"retention"}},
		{"negative count", func(p *domain.Policy) { p.Retention.KeepDaily = -1 }, []string{"retention.keepDaily"}},
		{"negative count alone is still a rule", func(p *domain.Policy) { p.Retention = domain.Retention{KeepHourly: -5} },
			[]string{"retention.keepHourly"}},
		{"huge count", func(p *domain.Policy) { p.Retention.KeepYearly = 100001 }, []string{"retention.keepYearly"}},
		{"every count wrong", func(p *domain.Policy) {
			p.Retention = domain.Retention{KeepLast: -1, KeepHourly: -1, KeepDaily: -1, KeepWeekly: -1, KeepMonthly: -1, KeepYearly: -1}
		}, []string{"retention.keepLast", "retention.keepHourly", "retention.keepDaily", "retention.keepWeekly", "retention.keepMonthly", "retention.keepYearly"}},
		{"keep-within in words", func(p *domain.Policy) { p.Retention.KeepWithin = "30 days" }, []string{"retention.keepWithin"}},
		{"keep-within without unit", func(p *domain.Policy) { p.Retention.KeepWithin = "30" }, []string{"retention.keepWithin"}},
		{"keep-within without number", func(p *domain.Policy) { p.Retention.KeepWithin = "d" }, []string{"retention.keepWithin"}},
		{"keep-within in weeks", func(p *domain.Policy) { p.Retention.KeepWithin = "2w" }, []string{"retention.keepWithin"}},
		{"keep-within out of order", func(p *domain.Policy) { p.Retention.KeepWithin = "1d2y" }, []string{"retention.keepWithin"}},
		{"keep-within of zero", func(p *domain.Policy) { p.Retention = domain.Retention{KeepWithin: "0d"} }, []string{"retention.keepWithin"}},
		{"keep-within of all zeros", func(p *domain.Policy) { p.Retention = domain.Retention{KeepWithin: "0y0m0d0h"} }, []string{"retention.keepWithin"}},
		{"keep-within too large", func(p *domain.Policy) { p.Retention.KeepWithin = "99999999999999999999d" }, []string{"retention.keepWithin"}},
		{"bad keep-tag", func(p *domain.Policy) { p.Retention.KeepTags = []string{"ok", "a b"} }, []string{"retention.keepTags[1]"}},
		{"too many keep-tags", func(p *domain.Policy) {
			p.Retention.KeepTags = numbered(domain.MaxPolicyTags+1, "t%d")
		}, []string{"retention.keepTags"}},
		{"empty forget schedule", func(p *domain.Policy) { p.ForgetSchedule = &domain.Schedule{} }, []string{"forgetSchedule"}},
		{"forget too often", func(p *domain.Policy) { p.ForgetSchedule = &domain.Schedule{Interval: "10s"} }, []string{"forgetSchedule.interval"}},
		{"forget in unknown timezone", func(p *domain.Policy) {
			p.ForgetSchedule = &domain.Schedule{Cron: "@weekly", Timezone: "Europe/Atlantis"}
		}, []string{"forgetSchedule.timezone"}},
		{"prune without forget", func(p *domain.Policy) { p.Prune = true }, []string{"prune"}},
		{"check schedule with seconds", func(p *domain.Policy) { p.CheckSchedule = &domain.Schedule{Cron: "0 0 3 1 * *"} }, []string{"checkSchedule.cron"}},
		{"cron too long", func(p *domain.Policy) { p.Schedule.Cron = strings.Repeat("1,", 200) + "1 * * * *" }, []string{"schedule.cron"}},
		{"retries below zero", func(p *domain.Policy) { p.MaxRetries = intPtr(-1) }, []string{"maxRetries"}},
		{"too many retries", func(p *domain.Policy) { p.MaxRetries = intPtr(21) }, []string{"maxRetries"}},
		{"negative upload", func(p *domain.Policy) { p.UploadKbps = -1 }, []string{"uploadKbps"}},
		{"download too fast", func(p *domain.Policy) { p.DownloadKbps = domain.MaxBandwidthKbps + 1 }, []string{"downloadKbps"}},
		{"negative read concurrency", func(p *domain.Policy) { p.ReadConcurrency = -1 }, []string{"readConcurrency"}},
		{"read concurrency too high", func(p *domain.Policy) { p.ReadConcurrency = 257 }, []string{"readConcurrency"}},
		{"deadline too short", func(p *domain.Policy) { p.RunDeadline = "30s" }, []string{"runDeadline"}},
		{"deadline too long", func(p *domain.Policy) { p.RunDeadline = "8d" }, []string{"runDeadline"}},
		{"deadline in words", func(p *domain.Policy) { p.RunDeadline = "forever" }, []string{"runDeadline"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPolicy()
			tc.mutate(&p)
			assertInvalid(t, p.Validate(), tc.want...)
		})
	}
}

func TestPolicyRejectsReadDataSubsets(t *testing.T) {
	for _, s := range []string{"0/5", "6/5", "1/0", "0/0", "-1/5", "0%", "0.0%", "101%", "100.5%", "0", "0M", "10 %", "5X", "abc", "1/2/3", "%", "1.5G", " 1/5"} {
		p := validPolicy()
		p.CheckSchedule = &domain.Schedule{Cron: "@monthly"}
		p.CheckReadDataSubset = s
		t.Run(s, func(t *testing.T) { assertInvalid(t, p.Validate(), "checkReadDataSubset") })
	}
}

func TestPolicyReportsEveryProblemAtOnce(t *testing.T) {
	p := domain.Policy{
		Name:        "x",
		Description: "bell\a",
		Repository:  "",
		Paths:       []string{"/ok", "relative", ""},
		Excludes:    []string{""},
		Tags:        []string{"two words"},
		Schedule:    domain.Schedule{Interval: "10s", Timezone: "Nowhere/City", Spread: "2d"},
		Retention:   domain.Retention{},
		ForgetSchedule: &domain.Schedule{
			Cron: "every sunday",
		},
		CheckSchedule:       &domain.Schedule{Interval: "1h", Cron: "@daily"},
		CheckReadDataSubset: "200%",
		MaxRetries:          intPtr(99),
		UploadKbps:          -5,
		DownloadKbps:        -5,
		ReadConcurrency:     1000,
		RunDeadline:         "1s",
	}
	err := p.Validate()
	want := []string{
		"name", "description", "repository", "paths[1]", "paths[2]", "excludes[0]", "tags[0]",
		"schedule.interval", "schedule.timezone", "schedule.spread", "retention",
		"forgetSchedule.cron", "checkSchedule", "checkReadDataSubset", "maxRetries",
		"uploadKbps", "downloadKbps", "readConcurrency", "runDeadline",
	}
	assertInvalid(t, err, want...)
	for _, f := range want {
		assert.Containsf(t, err.Error(), f+": ", "Error(): got %q, want it to name %s", err.Error(), f)
	}
}

func TestPolicyReasons(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*domain.Policy)
		field  string
		words  []string
	}{
		{"long name", func(p *domain.Policy) { p.Name = strings.Repeat("n", 101) }, "name", []string{"3–100", "got 101"}},
		{"relative path", func(p *domain.Policy) { p.Paths = []string{"data"} }, "paths[0]", []string{"absolute", `"data"`}},
		{"empty path", func(p *domain.Policy) { p.Paths = []string{""} }, "paths[0]", []string{"empty"}},
		{"control character in path", func(p *domain.Policy) { p.Paths = []string{"/a\x1b"} }, "paths[0]", []string{"control characters"}},
		{"too many paths", func(p *domain.Policy) {
			p.Paths = numbered(101, "/d%d")
		}, "paths", []string{"at most 100", "got 101"}},
		{"bad cron", func(p *domain.Policy) { p.Schedule.Cron = "0 3 * *" }, "schedule.cron", []string{"cron expression", "5 fields"}},
		{"unknown timezone", func(p *domain.Policy) { p.Schedule.Timezone = "Europe/Atlantis" }, "schedule.timezone", []string{"IANA", `"Europe/Atlantis"`}},
		{"short interval", func(p *domain.Policy) { p.Schedule = domain.Schedule{Interval: "30s"} }, "schedule.interval", []string{"at least one minute"}},
		{"all-zero retention", func(p *domain.Policy) { p.Retention = domain.Retention{} }, "retention", []string{"at least one rule"}},
		{"zero keep-within", func(p *domain.Policy) { p.Retention = domain.Retention{KeepWithin: "0d"} }, "retention.keepWithin", []string{"longer than zero"}},
		{"too many excludes", func(p *domain.Policy) {
			p.Excludes = numbered(1001, "%d")
		}, "excludes", []string{"at most 1000"}},
		{"check subset out of range", func(p *domain.Policy) { p.CheckReadDataSubset = "6/5" }, "checkReadDataSubset", []string{"6/5"}},
		{"check subset in words", func(p *domain.Policy) { p.CheckReadDataSubset = "some" }, "checkReadDataSubset", []string{"1/5", "10%", "500M"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPolicy()
			tc.mutate(&p)
			assertReasonMentions(t, p.Validate(), tc.field, tc.words...)
		})
	}
}

func TestReasonsStayShortWhateverTheInput(t *testing.T) {
	huge := strings.Repeat("x", 5000)
	p := validPolicy()
	p.Paths = []string{huge}
	p.Schedule = domain.Schedule{Cron: huge, Timezone: huge}
	p.Tags = []string{huge}
	// assertInvalid checks every reason's length.
	assertInvalid(t, p.Validate(), "paths[0]", "tags[0]", "schedule.cron", "schedule.timezone")

	r := repo(domain.BackendS3, "s3:s3.amazonaws.com/"+strings.Repeat("b", 900))
	assertInvalid(t, r.Validate(), "location")
	r = repo(domain.BackendGS, "gs:"+strings.Repeat("B", 900)+":/p")
	assertInvalid(t, r.Validate(), "location")
}

func TestScheduleValidatePrefix(t *testing.T) {
	err := domain.Schedule{Interval: "5s", Timezone: "Nowhere"}.Validate("policies[2].checkSchedule")
	assertInvalid(t, err, "policies[2].checkSchedule.interval", "policies[2].checkSchedule.timezone")
	assertValid(t, domain.Schedule{Cron: "@daily", Timezone: "Australia/Sydney"}.Validate("schedule"))
}

func TestScheduleLocation(t *testing.T) {
	cases := []struct {
		timezone string
		want     string
	}{
		{"", "UTC"},
		{"UTC", "UTC"},
		{"Europe/Berlin", "Europe/Berlin"},
		{"America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"},
		{"Nowhere/City", "UTC"},
	}
	for _, tc := range cases {
		got := domain.Schedule{Cron: "@daily", Timezone: tc.timezone}.Location().String()
		assert.Equalf(t, tc.want, got, "Location for %q: got %s, want %s", tc.timezone, got, tc.want)
	}
}

// The parsed schedule follows the zone of the time it is given: the scheduler passes a time in
// the schedule's timezone, which is why the expression itself may not name one.
func TestParseCronFollowsTheZoneOfTheGivenTime(t *testing.T) {
	s, err := domain.ParseCron("30 2 * * *")
	require.NoError(t, err)
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	from := time.Date(2025, 7, 1, 12, 0, 0, 0, berlin)
	got := s.Next(from)
	want := time.Date(2025, 7, 2, 2, 30, 0, 0, berlin)
	assert.Truef(t, got.Equal(want), "Next after %s: got %s, want %s", from, got, want)

	for _, expr := range []string{"TZ=UTC 0 * * * *", " CRON_TZ=UTC 0 * * * *", "@every 5m"} {
		_, err := domain.ParseCron(expr)
		assert.Errorf(t, err, "ParseCron(%q): got no error", expr)
	}
}

func TestParseDuration(t *testing.T) {
	valid := []struct {
		in   string
		want time.Duration
	}{
		{"0s", 0},
		{"90s", 90 * time.Second},
		{"30m", 30 * time.Minute},
		{"6h", 6 * time.Hour},
		{"1d", 24 * time.Hour},
		{"2w", 14 * 24 * time.Hour},
		{"1y", 365 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1h1h", 2 * time.Hour},
		{"1000000s", 1_000_000 * time.Second},
		{"1000000h", 1_000_000 * time.Hour},
		{"292y", 292 * 365 * 24 * time.Hour},
	}
	for _, tc := range valid {
		t.Run(tc.in, func(t *testing.T) {
			got, err := domain.ParseDuration(tc.in)
			require.NoError(t, err)
			assert.Equalf(t, tc.want, got, "ParseDuration(%q): got %s, want %s", tc.in, got, tc.want)
		})
	}

	invalid := []string{
		"", "6", "h", "1.5h", "-1h", "+1h", " 1h", "1h ", "1H", "1ms", "1 h", "1h-", "h1", "1d 12h",
		"1000001s",     // a number above a million
		"1000000y",     // overflows
		"300y",         // overflows
		"1000000w",     // overflows
		"292y1000000h", // overflows only in the sum
		"99999999999999999999s",
	}
	for _, in := range invalid {
		t.Run("invalid "+in, func(t *testing.T) {
			got, err := domain.ParseDuration(in)
			assert.Errorf(t, err, "ParseDuration(%q): got %s and no error", in, got)
		})
	}
}

func TestPolicyRetries(t *testing.T) {
	p := validPolicy()
	assert.Equal(t, domain.DefaultMaxRetries, p.Retries(), "no maxRetries: got %d, want the default", p.Retries())
	p.MaxRetries = intPtr(0)
	assert.Equal(t, 0, p.Retries(), "maxRetries 0: got %d, want 0", p.Retries())
	p.MaxRetries = intPtr(7)
	assert.Equal(t, 7, p.Retries(), "maxRetries 7: got %d, want 7", p.Retries())
}

func TestPolicyJSONRoundTrip(t *testing.T) {
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	want := validPolicy()
	want.ExcludeCaches = true
	want.OneFileSystem = true
	want.Schedule.Spread = "15m"
	want.Retention = domain.Retention{KeepLast: 3, KeepDaily: 7, KeepWithin: "1y6m", KeepTags: []string{"keep"}}
	want.ForgetSchedule = &domain.Schedule{Cron: "@weekly", Timezone: "UTC"}
	want.Prune = true
	want.CheckSchedule = &domain.Schedule{Interval: "1w"}
	want.CheckReadDataSubset = "10%"
	want.MaxRetries = intPtr(0)
	want.UploadKbps, want.DownloadKbps, want.ReadConcurrency = 1000, 2000, 4
	want.RunDeadline = "6h"
	want.CreatedAt, want.UpdatedAt, want.Version = created, created.Add(time.Hour), 3
	assertValid(t, want.Validate())

	data, err := json.Marshal(want)
	require.NoError(t, err)
	var got domain.Policy
	require.NoError(t, json.Unmarshal(data, &got))
	if !assert.ObjectsAreEqual(want, got) {
		t.Errorf("round trip through %s:\ngot  %+v\nwant %+v", data, got, want)
	}

	// A zero retry budget must survive: it means "never retry", not "use the default".
	var raw map[string]any
	require.NoError(t, json.Unmarshal(data, &raw))
	assert.Equalf(t, float64(0), raw["maxRetries"], "maxRetries in %s: got %v, want 0", data, raw["maxRetries"])
	assert.Equal(t, 0, got.Retries(), "Retries after the round trip: got %d, want 0", got.Retries())

	// Unset optional fields stay out of the document, so a client sees what was configured.
	data, err = json.Marshal(validPolicy())
	require.NoError(t, err)
	raw = nil
	require.NoError(t, json.Unmarshal(data, &raw))
	for _, k := range []string{"maxRetries", "forgetSchedule", "checkSchedule", "prune", "runDeadline"} {
		assert.NotContainsf(t, raw, k, "marshalled default policy: got key %q in %s", k, data)
	}
	for _, k := range []string{"name", "enabled", "repository", "paths", "schedule", "retention"} {
		assert.Containsf(t, raw, k, "marshalled default policy: got no key %q in %s", k, data)
	}
}
