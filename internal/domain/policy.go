package domain

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	// Timezones are validated here and applied by the scheduler; Lambda's runtime image has no
	// zoneinfo, so without the embedded database every zone but UTC would be "unknown".
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// Schedule says when a task recurs: either a cron expression evaluated in an IANA timezone, or a
// fixed interval. Spread delays each agent by a deterministic offset within the window so a fleet
// on the same schedule does not start at the same second.
type Schedule struct {
	Cron     string `json:"cron,omitempty"`
	Interval string `json:"interval,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	Spread   string `json:"spread,omitempty"`
}

// cronParser accepts standard five-field expressions and descriptors such as @daily.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a five-field cron expression or descriptor.
func ParseCron(expr string) (cron.Schedule, error) {
	if strings.HasPrefix(strings.TrimSpace(expr), "TZ=") || strings.HasPrefix(strings.TrimSpace(expr), "CRON_TZ=") {
		return nil, fmt.Errorf("set the timezone in the timezone field, not in the expression")
	}
	if strings.HasPrefix(expr, "@every") {
		return nil, fmt.Errorf("use interval for fixed intervals")
	}
	return cronParser.Parse(expr)
}

// MaxCronLength bounds a cron expression; real ones are far shorter, and the parser's complaint
// repeats the expression.
const MaxCronLength = 256

// MinInterval is the shortest fixed interval a schedule may have.
const MinInterval = time.Minute

// Validate checks a schedule; prefix is its JSON path.
func (s Schedule) Validate(prefix string) error {
	var fe fieldErrors
	s.check(&fe, prefix)
	return fe.err()
}

func (s Schedule) check(fe *fieldErrors, prefix string) {
	switch {
	case s.Cron == "" && s.Interval == "":
		fe.add(prefix, "set either cron or interval")
	case s.Cron != "" && s.Interval != "":
		fe.add(prefix, "set either cron or interval, not both")
	case len(s.Cron) > MaxCronLength:
		fe.add(prefix+".cron", "must be at most %d characters long", MaxCronLength)
	case s.Cron != "":
		if _, err := ParseCron(s.Cron); err != nil {
			fe.add(prefix+".cron", "not a valid cron expression (5 fields or @hourly, @daily, @weekly, @monthly, @yearly): %v", err)
		}
	default:
		d, err := ParseDuration(s.Interval)
		switch {
		case err != nil:
			fe.add(prefix+".interval", "not a duration such as 30m, 6h or 1d")
		case d < MinInterval:
			fe.add(prefix+".interval", "must be at least one minute")
		case d > 366*24*time.Hour:
			fe.add(prefix+".interval", "must be at most 366 days")
		}
	}
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil || s.Timezone == "Local" {
			fe.add(prefix+".timezone", "unknown IANA timezone %s (such as Europe/Berlin or UTC)", quoteShort(s.Timezone))
		}
	}
	if s.Spread != "" {
		d, err := ParseDuration(s.Spread)
		if err != nil || d < 0 || d > 24*time.Hour {
			fe.add(prefix+".spread", "must be a duration between 0 and 24h")
		}
	}
}

// Location returns the schedule's timezone, UTC when none is set.
func (s Schedule) Location() *time.Location {
	if s.Timezone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

var durationPart = regexp.MustCompile(`(\d+)([smhdwy])`)

var durationUnits = map[string]time.Duration{
	"s": time.Second,
	"m": time.Minute,
	"h": time.Hour,
	"d": 24 * time.Hour,
	"w": 7 * 24 * time.Hour,
	"y": 365 * 24 * time.Hour,
}

// ParseDuration reads durations like 90s, 30m, 6h, 1d, 2w or 1d12h (d = 24h, w = 7d, y = 365d).
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	matches := durationPart.FindAllStringSubmatchIndex(s, -1)
	pos := 0
	var total time.Duration
	for _, m := range matches {
		if m[0] != pos {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		n, err := strconv.ParseInt(s[m[2]:m[3]], 10, 64)
		if err != nil || n > 1_000_000 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		unit := durationUnits[s[m[4]:m[5]]]
		if n > int64(math.MaxInt64/unit) || time.Duration(n)*unit > math.MaxInt64-total {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		total += time.Duration(n) * unit
		pos = m[1]
	}
	if pos != len(s) {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return total, nil
}

// Retention is restic's forget policy. At least one rule must be set.
type Retention struct {
	KeepLast    int      `json:"keepLast,omitempty"`
	KeepHourly  int      `json:"keepHourly,omitempty"`
	KeepDaily   int      `json:"keepDaily,omitempty"`
	KeepWeekly  int      `json:"keepWeekly,omitempty"`
	KeepMonthly int      `json:"keepMonthly,omitempty"`
	KeepYearly  int      `json:"keepYearly,omitempty"`
	KeepWithin  string   `json:"keepWithin,omitempty"`
	KeepTags    []string `json:"keepTags,omitempty"`
}

// keepWithinPattern is restic's duration for --keep-within, in its canonical order (m = months).
// Every part is optional, so the empty string matches too: callers must reject it.
var keepWithinPattern = regexp.MustCompile(`^(\d{1,6}y)?(\d{1,6}m)?(\d{1,6}d)?(\d{1,6}h)?$`)

// keepWithinProblem says what is wrong with a keep-within duration, or "" when restic accepts it
// and it keeps something.
func keepWithinProblem(s string) string {
	if s == "" || !keepWithinPattern.MatchString(s) {
		return "must be a restic duration such as 30d, 1y6m or 12h (y, m = months, d, h, in that order)"
	}
	if strings.Trim(s, "0ymdh") == "" {
		return "must keep a span longer than zero"
	}
	return ""
}

func (r Retention) check(fe *fieldErrors, prefix string) {
	counts := []struct {
		name string
		n    int
	}{{"keepLast", r.KeepLast}, {"keepHourly", r.KeepHourly}, {"keepDaily", r.KeepDaily}, {"keepWeekly", r.KeepWeekly}, {"keepMonthly", r.KeepMonthly}, {"keepYearly", r.KeepYearly}}
	// set tracks whether any rule was given, valid or not: a rule that is merely wrong is
	// reported on its own field, not also as "no rule at all".
	set := false
	for _, c := range counts {
		if c.n != 0 {
			set = true
		}
		switch {
		case c.n < 0:
			fe.add(prefix+"."+c.name, "must be a positive number")
		case c.n > 100000:
			fe.add(prefix+"."+c.name, "must be at most 100000")
		}
	}
	if r.KeepWithin != "" {
		set = true
		if reason := keepWithinProblem(r.KeepWithin); reason != "" {
			fe.add(prefix+".keepWithin", "%s", reason)
		}
	}
	if len(r.KeepTags) > 0 {
		set = true
		checkTags(fe, prefix+".keepTags", r.KeepTags)
	}
	if !set {
		fe.add(prefix, "set at least one rule (keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly, keepWithin or keepTags)")
	}
}

// Policy is what to back up, where to, when, and what to keep.
type Policy struct {
	ID          string   `json:"id"`
	TenantID    string   `json:"tenantId"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Enabled     bool     `json:"enabled"`
	Repository  string   `json:"repository"`
	Paths       []string `json:"paths"`
	Excludes    []string `json:"excludes,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	// ExcludeCaches and OneFileSystem pass restic's flags of the same names.
	ExcludeCaches  bool      `json:"excludeCaches,omitempty"`
	OneFileSystem  bool      `json:"oneFileSystem,omitempty"`
	Schedule       Schedule  `json:"schedule"`
	Retention      Retention `json:"retention"`
	ForgetSchedule *Schedule `json:"forgetSchedule,omitempty"`
	// Prune runs prune right after each scheduled forget.
	Prune               bool      `json:"prune,omitempty"`
	CheckSchedule       *Schedule `json:"checkSchedule,omitempty"`
	CheckReadDataSubset string    `json:"checkReadDataSubset,omitempty"`
	// StatsSchedule is when the policy's agents report the repository's health (a stats task);
	// nil is DefaultStatsSchedule, daily.
	StatsSchedule *Schedule `json:"statsSchedule,omitempty"`
	// MaxRetries is how often a failed task of this policy is tried again (nil: DefaultMaxRetries).
	MaxRetries      *int      `json:"maxRetries,omitempty"`
	UploadKbps      int       `json:"uploadKbps,omitempty"`
	DownloadKbps    int       `json:"downloadKbps,omitempty"`
	ReadConcurrency int       `json:"readConcurrency,omitempty"`
	RunDeadline     string    `json:"runDeadline,omitempty"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
	Version         int64     `json:"version"`
}

// DefaultStatsSchedule is when a policy without a statsSchedule reports its repository's
// health: daily at 04:00 UTC, each agent within two hours of it.
var DefaultStatsSchedule = Schedule{Cron: "0 4 * * *", Spread: "2h"}

// Stats returns the policy's stats schedule.
func (p Policy) Stats() Schedule {
	if p.StatsSchedule == nil {
		return DefaultStatsSchedule
	}
	return *p.StatsSchedule
}

// DefaultMaxRetries applies when a policy does not say how often to retry.
const DefaultMaxRetries = 3

// Policy limits.
const (
	MaxPolicyPaths    = 100
	MaxPolicyExcludes = 1000
	MaxPolicyTags     = 50
)

// Retries returns the policy's retry budget.
func (p Policy) Retries() int {
	if p.MaxRetries == nil {
		return DefaultMaxRetries
	}
	return *p.MaxRetries
}

var (
	subsetFraction   = regexp.MustCompile(`^(\d{1,9})/(\d{1,9})$`)
	subsetPercentage = regexp.MustCompile(`^(\d{1,3}(?:\.\d{1,6})?)%$`)
	subsetSize       = regexp.MustCompile(`^(\d{1,15})[KMGTkmgt]?$`)
)

// readDataSubsetProblem applies the rules restic check applies to --read-data-subset, so a policy
// never schedules a check that restic refuses: n/t with 1 ≤ n ≤ t, a percentage above 0 and at
// most 100, or a size above zero.
func readDataSubsetProblem(s string) string {
	const form = "must be n/t (such as 1/5), a percentage (such as 10%) or a size (such as 500M)"
	if m := subsetFraction.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		t, _ := strconv.Atoi(m[2])
		if n < 1 || n > t {
			return fmt.Sprintf("in n/t, n must be between 1 and t (got %s)", s)
		}
		return ""
	}
	if m := subsetPercentage.FindStringSubmatch(s); m != nil {
		p, _ := strconv.ParseFloat(m[1], 64)
		if p <= 0 || p > 100 {
			return fmt.Sprintf("a percentage must be above 0%% and at most 100%% (got %s)", s)
		}
		return ""
	}
	if m := subsetSize.FindStringSubmatch(s); m != nil {
		if strings.Trim(m[1], "0") == "" {
			return "a size must be above zero"
		}
		return ""
	}
	return form
}

// Validate checks a policy before it is stored, reporting every invalid field at once.
func (p Policy) Validate() error {
	var fe fieldErrors
	checkName(&fe, "name", p.Name)
	checkText(&fe, "description", p.Description, 0, 1000)
	if !ValidName(p.Repository) {
		fe.add("repository", "must name a repository (3–100 letters, digits, '-', '_')")
	}
	switch {
	case len(p.Paths) == 0:
		fe.add("paths", "at least one path to back up is required")
	case len(p.Paths) > MaxPolicyPaths:
		fe.add("paths", "at most %d paths (got %d)", MaxPolicyPaths, len(p.Paths))
	default:
		for i, path := range p.Paths {
			field := fmt.Sprintf("paths[%d]", i)
			switch {
			case path == "":
				fe.add(field, "must not be empty")
			case hasControl(path):
				fe.add(field, "must not contain control characters")
			case len(path) > 4096:
				fe.add(field, "must be at most 4096 bytes")
			case !isAbsPath(path):
				fe.add(field, "must be an absolute path (/data or C:\\data), got %s", quoteShort(path))
			}
		}
	}
	if len(p.Excludes) > MaxPolicyExcludes {
		fe.add("excludes", "at most %d patterns (got %d)", MaxPolicyExcludes, len(p.Excludes))
	} else {
		for i, x := range p.Excludes {
			checkText(&fe, fmt.Sprintf("excludes[%d]", i), x, 1, 4096)
		}
	}
	checkTags(&fe, "tags", p.Tags)
	p.Schedule.check(&fe, "schedule")
	p.Retention.check(&fe, "retention")
	if p.ForgetSchedule != nil {
		p.ForgetSchedule.check(&fe, "forgetSchedule")
	}
	if p.Prune && p.ForgetSchedule == nil {
		fe.add("prune", "prune runs after a scheduled forget: set forgetSchedule too")
	}
	if p.CheckSchedule != nil {
		p.CheckSchedule.check(&fe, "checkSchedule")
	}
	if p.StatsSchedule != nil {
		p.StatsSchedule.check(&fe, "statsSchedule")
	}
	if p.CheckReadDataSubset != "" {
		if reason := readDataSubsetProblem(p.CheckReadDataSubset); reason != "" {
			fe.add("checkReadDataSubset", "%s", reason)
		}
	}
	if p.MaxRetries != nil && (*p.MaxRetries < 0 || *p.MaxRetries > 20) {
		fe.add("maxRetries", "must be between 0 and 20")
	}
	checkBandwidth(&fe, "uploadKbps", p.UploadKbps)
	checkBandwidth(&fe, "downloadKbps", p.DownloadKbps)
	if p.ReadConcurrency < 0 || p.ReadConcurrency > 256 {
		fe.add("readConcurrency", "must be between 0 (restic's default) and 256")
	}
	if p.RunDeadline != "" {
		d, err := ParseDuration(p.RunDeadline)
		if err != nil || d < time.Minute || d > 7*24*time.Hour {
			fe.add("runDeadline", "must be a duration between 1m and 7d")
		}
	}
	return fe.err()
}

var tagPattern = regexp.MustCompile(`^[^\s,]+$`)

func checkTags(fe *fieldErrors, field string, tags []string) {
	if len(tags) > MaxPolicyTags {
		fe.add(field, "at most %d tags (got %d)", MaxPolicyTags, len(tags))
		return
	}
	for i, t := range tags {
		f := fmt.Sprintf("%s[%d]", field, i)
		before := len(*fe)
		checkText(fe, f, t, 1, 128)
		if len(*fe) == before && !tagPattern.MatchString(t) {
			fe.add(f, "must not contain spaces or commas")
		}
	}
}

// Assignment binds a policy to an agent: the agent runs the policy's schedule.
type Assignment struct {
	TenantID  string    `json:"tenantId"`
	PolicyID  string    `json:"policyId"`
	AgentID   string    `json:"agentId"`
	CreatedAt time.Time `json:"createdAt"`
}
