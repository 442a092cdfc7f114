package domain

import (
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Backend is the kind of storage a restic repository lives on.
type Backend string

const (
	BackendLocal      Backend = "local"
	BackendSFTP       Backend = "sftp"
	BackendS3         Backend = "s3"
	BackendRESTServer Backend = "rest-server"
	BackendB2         Backend = "b2"
	BackendAzure      Backend = "azure"
	BackendGS         Backend = "gs"
	BackendRclone     Backend = "rclone"
)

// Backends lists every supported backend, in the order the documentation names them.
var Backends = []Backend{BackendLocal, BackendSFTP, BackendS3, BackendRESTServer, BackendB2, BackendAzure, BackendGS, BackendRclone}

// Repository names a restic repository for the whole tenant. It holds no secret: the password and
// backend credentials live in each host's agent configuration under the same name.
type Repository struct {
	TenantID    string  `json:"tenantId"`
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Backend     Backend `json:"backend"`
	Location    string  `json:"location"`
	// CheckOverdueAfterDays is how many days without a successful check make the repository's
	// check overdue (the repository.check_overdue event); 0 is DefaultCheckOverdueAfterDays.
	CheckOverdueAfterDays int       `json:"checkOverdueAfterDays,omitempty"`
	CreatedAt             time.Time `json:"createdAt"`
	UpdatedAt             time.Time `json:"updatedAt"`
	Version               int64     `json:"version"`
}

// Validate checks a repository before it is stored.
func (r Repository) Validate() error {
	var fe fieldErrors
	checkName(&fe, "name", r.Name)
	checkText(&fe, "description", r.Description, 0, 500)
	switch {
	case r.Backend == "":
		fe.add("backend", "must not be empty")
	case !slices.Contains(Backends, r.Backend):
		fe.add("backend", "must be one of local, sftp, s3, rest-server, b2, azure, gs, rclone")
	}
	if r.CheckOverdueAfterDays < 0 || r.CheckOverdueAfterDays > MaxCheckOverdueAfterDays {
		fe.add("checkOverdueAfterDays", "must be between 1 and %d days (0 or absent: %d)", MaxCheckOverdueAfterDays, DefaultCheckOverdueAfterDays)
	}
	before := len(fe)
	checkText(&fe, "location", r.Location, 1, 1024)
	// The backend decides what a location must look like; without a known backend, or when the
	// text is already unusable, a second message about the same location would only repeat it.
	if len(fe) == before && slices.Contains(Backends, r.Backend) {
		checkLocation(&fe, r.Backend, r.Location)
	}
	return fe.err()
}

// Check overdue limits.
const (
	DefaultCheckOverdueAfterDays = 7
	MaxCheckOverdueAfterDays     = 365
)

// OverdueAfter is how long the repository may go without a successful check.
func (r Repository) OverdueAfter() time.Duration {
	return time.Duration(r.OverdueAfterDays()) * 24 * time.Hour
}

// OverdueAfterDays is CheckOverdueAfterDays, or its default.
func (r Repository) OverdueAfterDays() int {
	if r.CheckOverdueAfterDays <= 0 {
		return DefaultCheckOverdueAfterDays
	}
	return r.CheckOverdueAfterDays
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// checkName applies the naming rule shared by policies and repositories: 3–100 letters, digits,
// '-' or '_'.
func checkName(fe *fieldErrors, field, s string) {
	switch {
	case s == "":
		fe.add(field, "must not be empty")
	case len(s) < 3 || len(s) > 100:
		fe.add(field, "must be 3–100 characters long (got %d)", len(s))
	case !namePattern.MatchString(s):
		fe.add(field, "may contain only letters, digits, '-' and '_'")
	}
}

// ValidName reports whether s can name a policy or repository.
func ValidName(s string) bool {
	var fe fieldErrors
	checkName(&fe, "name", s)
	return len(fe) == 0
}

func checkLocation(fe *fieldErrors, b Backend, loc string) {
	const field = "location"
	switch b {
	case BackendLocal:
		p := strings.TrimPrefix(loc, "local:")
		if !isAbsPath(p) {
			fe.add(field, "a local repository needs an absolute path, such as /srv/restic or local:/srv/restic")
		}
	case BackendSFTP:
		checkSFTP(fe, loc)
	case BackendS3:
		checkS3(fe, loc)
	case BackendRESTServer:
		rest, ok := strings.CutPrefix(loc, "rest:")
		u, err := url.Parse(rest)
		switch {
		case !ok || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
			fe.add(field, "a rest-server repository is rest:http://host[:port]/path or rest:https://...")
		case hasPassword(u):
			fe.add(field, noSecret)
		case !validPort(u.Port(), true):
			fe.add(field, "port must be between 1 and 65535")
		}
	case BackendB2:
		// restic: b2:bucket[:path]
		rest, ok := strings.CutPrefix(loc, "b2:")
		bucket, _, _ := strings.Cut(rest, ":")
		switch {
		case !ok || bucket == "":
			fe.add(field, "a b2 repository is b2:bucket:path")
		case !b2BucketPattern.MatchString(bucket):
			fe.add(field, "bucket %s must be 6–50 letters, digits or '-'", quoteShort(bucket))
		}
	case BackendGS:
		// restic: gs:bucket:/path; the colon is required.
		rest, ok := strings.CutPrefix(loc, "gs:")
		bucket, _, colon := strings.Cut(rest, ":")
		switch {
		case !ok || !colon || bucket == "":
			fe.add(field, "a gs repository is gs:bucket:/path")
		case !gsBucketPattern.MatchString(bucket) || (len(bucket) > 63 && !strings.Contains(bucket, ".")):
			fe.add(field, "bucket %s must be 3–63 lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or digit", quoteShort(bucket))
		}
	case BackendAzure:
		// restic: azure:container:/path; the colon is required.
		rest, ok := strings.CutPrefix(loc, "azure:")
		container, _, colon := strings.Cut(rest, ":")
		switch {
		case !ok || !colon || container == "":
			fe.add(field, "an azure repository is azure:container:/path")
		case len(container) < 3 || len(container) > 63 || !azureContainerPattern.MatchString(container):
			fe.add(field, "container %s must be 3–63 lowercase letters, digits or single inner hyphens", quoteShort(container))
		}
	case BackendRclone:
		remote, ok := strings.CutPrefix(loc, "rclone:")
		if !ok || !strings.Contains(remote, ":") || strings.HasPrefix(remote, ":") {
			fe.add(field, "an rclone repository is rclone:remote:path")
		}
	}
}

var (
	b2BucketPattern       = regexp.MustCompile(`^[A-Za-z0-9-]{6,50}$`)
	gsBucketPattern       = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)
	azureContainerPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// noSecret is the reason given when a location carries a password: a repository holds no secret,
// the agent's configuration does.
const noSecret = "must not contain a password: put credentials in the agent's configuration"

func hasPassword(u *url.URL) bool {
	_, set := u.User.Password()
	return set
}

// checkSFTP accepts restic's two forms: sftp:user@host:/path and sftp://user@host:port//path.
func checkSFTP(fe *fieldErrors, loc string) {
	const field = "location"
	const form = "an sftp repository is sftp:user@host:/path or sftp://user@host:port//path"
	var user, host, port, path string
	switch {
	case strings.HasPrefix(loc, "sftp://"):
		u, err := url.Parse(loc)
		if err != nil {
			fe.add(field, "not a valid sftp URL: %s", form)
			return
		}
		if hasPassword(u) {
			fe.add(field, noSecret)
			return
		}
		user, host, port, path = u.User.Username(), u.Hostname(), u.Port(), u.Path
	case strings.HasPrefix(loc, "sftp:"):
		// As restic does: the path starts after the first colon, and the user ends at the last
		// '@' before it, so a path may contain '@' and ':'.
		var ok bool
		host, path, ok = strings.Cut(strings.TrimPrefix(loc, "sftp:"), ":")
		if !ok {
			fe.add(field, form)
			return
		}
		if at := strings.LastIndex(host, "@"); at >= 0 {
			user, host = host[:at], host[at+1:]
		}
	default:
		fe.add(field, form)
		return
	}
	if user == "" {
		fe.add(field, "sftp needs a user (user@host)")
	}
	if host == "" || strings.ContainsAny(host, " /") {
		fe.add(field, "sftp needs a host")
	}
	if !validPort(port, true) {
		fe.add(field, "port must be between 1 and 65535")
	}
	if path == "" || path == "/" {
		fe.add(field, "sftp needs a path on the server")
	}
}

func validPort(p string, optional bool) bool {
	if p == "" {
		return optional
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// checkS3 accepts restic's forms s3:host/bucket[/prefix], s3://host/bucket[/prefix] and
// s3:https://host/bucket[/prefix]. As in restic, the first part after s3: or s3:// is the
// endpoint, never the bucket.
func checkS3(fe *fieldErrors, loc string) {
	const field = "location"
	rest, ok := strings.CutPrefix(loc, "s3:")
	if !ok {
		fe.add(field, "an s3 repository is s3:host/bucket[/prefix] or s3:https://host/bucket[/prefix]")
		return
	}
	var bucket string
	switch {
	case strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://"):
		u, err := url.Parse(rest)
		if err != nil || u.Hostname() == "" {
			fe.add(field, "not a valid s3 endpoint URL")
			return
		}
		if hasPassword(u) {
			fe.add(field, noSecret)
			return
		}
		if !validPort(u.Port(), true) {
			fe.add(field, "port must be between 1 and 65535")
		}
		bucket, _, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	default:
		endpoint, after, found := strings.Cut(strings.TrimPrefix(rest, "//"), "/")
		if endpoint == "" {
			fe.add(field, "an s3 repository needs an endpoint: s3:s3.amazonaws.com/bucket")
			return
		}
		if !found {
			fe.add(field, "no bucket after the endpoint %s: restic reads s3:endpoint/bucket[/prefix], such as s3:s3.amazonaws.com/my-bucket", quoteShort(endpoint))
			return
		}
		bucket, _, _ = strings.Cut(after, "/")
	}
	if reason := s3BucketProblem(bucket); reason != "" {
		fe.add(field, "bucket %s %s", quoteShort(bucket), reason)
	}
}

var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)

// s3BucketProblem applies S3's general-purpose bucket naming rules.
func s3BucketProblem(b string) string {
	switch {
	case b == "":
		return "is missing: name a bucket after the endpoint"
	case len(b) < 3 || len(b) > 63:
		return "must be 3–63 characters long"
	case !bucketPattern.MatchString(b):
		return "may contain only lowercase letters, digits, '.' and '-', and must start and end with a letter or digit"
	case strings.Contains(b, ".."):
		return "must not contain two adjacent periods"
	case net.ParseIP(b) != nil:
		return "must not look like an IP address"
	case strings.HasPrefix(b, "xn--") || strings.HasPrefix(b, "sthree-") || strings.HasPrefix(b, "amzn-s3-demo-"):
		return "must not start with a reserved prefix"
	case strings.HasSuffix(b, "-s3alias") || strings.HasSuffix(b, "--ol-s3") || strings.HasSuffix(b, ".mrap") ||
		strings.HasSuffix(b, "--x-s3") || strings.HasSuffix(b, "--table-s3"):
		return "must not end with a reserved suffix"
	}
	return ""
}

var windowsAbs = regexp.MustCompile(`^([A-Za-z]:[\\/]|\\\\[^\\]+\\[^\\]+)`)

// isAbsPath accepts absolute Unix paths and absolute Windows paths (C:\dir, C:/dir, \\server\share).
func isAbsPath(p string) bool {
	return strings.HasPrefix(p, "/") || windowsAbs.MatchString(p)
}
