package domain

import (
	"net"
	"net/url"
	"regexp"
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
	TenantID    string    `json:"tenantId"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Backend     Backend   `json:"backend"`
	Location    string    `json:"location"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	Version     int64     `json:"version"`
}

// Validate checks a repository before it is stored.
func (r Repository) Validate() error {
	var fe fieldErrors
	checkName(&fe, "name", r.Name)
	checkText(&fe, "description", r.Description, 0, 500)
	checkText(&fe, "location", r.Location, 1, 1024)
	if len(fe) == 0 || fe[len(fe)-1].Field != "location" {
		checkLocation(&fe, r.Backend, r.Location)
	}
	return fe.err()
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
		if !ok || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fe.add(field, "a rest-server repository is rest:http://host[:port]/path or rest:https://...")
		} else if !validPort(u.Port(), true) {
			fe.add(field, "port must be between 1 and 65535")
		}
	case BackendB2, BackendGS:
		bucket, ok := strings.CutPrefix(loc, string(b)+":")
		bucket, _, _ = strings.Cut(bucket, ":")
		if !ok || bucket == "" {
			fe.add(field, "a %s repository is %s:bucket:/path", b, b)
		}
	case BackendAzure:
		container, ok := strings.CutPrefix(loc, "azure:")
		container, _, _ = strings.Cut(container, ":")
		if !ok || container == "" {
			fe.add(field, "an azure repository is azure:container:/path")
		}
	case BackendRclone:
		remote, ok := strings.CutPrefix(loc, "rclone:")
		if !ok || !strings.Contains(remote, ":") || strings.HasPrefix(remote, ":") {
			fe.add(field, "an rclone repository is rclone:remote:path")
		}
	case "":
		fe.add("backend", "must not be empty")
	default:
		fe.add("backend", "must be one of local, sftp, s3, rest-server, b2, azure, gs, rclone")
	}
}

// checkSFTP accepts restic's two forms: sftp:user@host:/path and sftp://user@host:port//path.
func checkSFTP(fe *fieldErrors, loc string) {
	const field = "location"
	var user, host, port, path string
	switch {
	case strings.HasPrefix(loc, "sftp://"):
		u, err := url.Parse(loc)
		if err != nil {
			fe.add(field, "not a valid sftp URL")
			return
		}
		user, host, port, path = u.User.Username(), u.Hostname(), u.Port(), u.Path
	case strings.HasPrefix(loc, "sftp:"):
		rest := strings.TrimPrefix(loc, "sftp:")
		var ok bool
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			user, rest = rest[:at], rest[at+1:]
		}
		host, path, ok = strings.Cut(rest, ":")
		if !ok {
			fe.add(field, "an sftp repository is sftp:user@host:/path or sftp://user@host:port//path")
			return
		}
	default:
		fe.add(field, "an sftp repository is sftp:user@host:/path or sftp://user@host:port//path")
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

// checkS3 accepts s3:host/bucket[/prefix], s3:https://host/bucket[/prefix] and s3://bucket[/prefix].
func checkS3(fe *fieldErrors, loc string) {
	const field = "location"
	rest, ok := strings.CutPrefix(loc, "s3:")
	if !ok {
		fe.add(field, "an s3 repository is s3:host/bucket[/prefix] or s3:https://host/bucket[/prefix]")
		return
	}
	var bucket string
	switch {
	case strings.HasPrefix(rest, "//"):
		bucket, _, _ = strings.Cut(strings.TrimPrefix(rest, "//"), "/")
	case strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://"):
		u, err := url.Parse(rest)
		if err != nil || u.Host == "" {
			fe.add(field, "not a valid s3 endpoint URL")
			return
		}
		if !validPort(u.Port(), true) {
			fe.add(field, "port must be between 1 and 65535")
		}
		bucket, _, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	default:
		_, after, found := strings.Cut(rest, "/")
		if !found {
			fe.add(field, "an s3 repository needs a bucket: s3:host/bucket")
			return
		}
		bucket, _, _ = strings.Cut(after, "/")
	}
	if reason := s3BucketProblem(bucket); reason != "" {
		fe.add(field, "bucket %q %s", bucket, reason)
	}
}

var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)

// s3BucketProblem applies S3's general-purpose bucket naming rules.
func s3BucketProblem(b string) string {
	switch {
	case len(b) < 3 || len(b) > 63:
		return "must be 3–63 characters long"
	case !bucketPattern.MatchString(b):
		return "may contain only lowercase letters, digits, '.' and '-', and must start and end with a letter or digit"
	case strings.Contains(b, ".."):
		return "must not contain two adjacent periods"
	case net.ParseIP(b) != nil:
		return "must not look like an IP address"
	case strings.HasPrefix(b, "xn--") || strings.HasPrefix(b, "sthree-"):
		return "must not start with a reserved prefix"
	case strings.HasSuffix(b, "-s3alias") || strings.HasSuffix(b, "--ol-s3"):
		return "must not end with a reserved suffix"
	}
	return ""
}

var windowsAbs = regexp.MustCompile(`^([A-Za-z]:[\\/]|\\\\[^\\]+\\[^\\]+)`)

// isAbsPath accepts absolute Unix paths and absolute Windows paths (C:\dir, C:/dir, \\server\share).
func isAbsPath(p string) bool {
	return strings.HasPrefix(p, "/") || windowsAbs.MatchString(p)
}
