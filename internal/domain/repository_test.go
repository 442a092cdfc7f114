package domain_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func repo(b domain.Backend, location string) domain.Repository {
	return domain.Repository{TenantID: "acme", Name: "offsite", Description: "main off-site copy", Backend: b, Location: location}
}

func TestRepositoryValidateAcceptsRealLocations(t *testing.T) {
	cases := []struct {
		backend   domain.Backend
		locations []string
	}{
		{domain.BackendLocal, []string{
			"/srv/restic",
			"local:/srv/restic",
			"/",
			`C:\restic`,
			"D:/backups/restic",
			`\\nas\backups\restic`,
			`local:E:\restic`,
		}},
		{domain.BackendSFTP, []string{
			"sftp:user@host:/srv/restic",
			"sftp://user@host:2222//srv/restic",
			"sftp://user@host//srv/restic",
			"sftp://backup@10.0.0.5:65535//srv/restic",
			"sftp:backup@nas.example.com:restic-repo", // relative to the user's home
			"sftp:user@host:/srv/a@b:c",               // the path may hold '@' and ':'
			"sftp:user@host:/srv/mail@archive",        // the path may hold '@'
			"sftp:first.last@corp.example@host:/srv",  // the user ends at the last '@' before the path
			"sftp://user@host:22/relative/repo",
		}},
		{domain.BackendS3, []string{
			"s3:s3.amazonaws.com/bucket",
			"s3:s3.amazonaws.com/my-bucket/prefix/dir",
			"s3:s3.eu-central-1.amazonaws.com/backups.example.com",
			"s3:https://minio.local:9000/bucket/prefix",
			"s3:http://localhost:9000/restic",
			"s3://s3.amazonaws.com/bucket/prefix",
			"s3:https://user@minio.local/bucket", // a user name alone is no secret
		}},
		{domain.BackendRESTServer, []string{
			"rest:https://host:8000/repo",
			"rest:http://10.0.0.2:8000/",
			"rest:https://backup.example.com/web-01/",
			"rest:https://user@host:8000/repo",
		}},
		{domain.BackendB2, []string{"b2:bucket:path", "b2:my-backups:hosts/web-01", "b2:MyBucket01"}},
		{domain.BackendAzure, []string{"azure:container:/path", "azure:restic-backups:/", "azure:abc:"}},
		{domain.BackendGS, []string{"gs:bucket:/path", "gs:my_bucket.example.com:/restic", "gs:abc:"}},
		{domain.BackendRclone, []string{"rclone:remote:path", "rclone:gdrive:backups/restic", "rclone:b2prod:bucket/restic"}},
	}
	for _, tc := range cases {
		for _, loc := range tc.locations {
			t.Run(string(tc.backend)+" "+loc, func(t *testing.T) { assertValid(t, repo(tc.backend, loc).Validate()) })
		}
	}
}

func TestRepositoryBackendsListIsComplete(t *testing.T) {
	got := make([]string, len(domain.Backends))
	for i, b := range domain.Backends {
		got[i] = string(b)
	}
	want := []string{"local", "sftp", "s3", "rest-server", "b2", "azure", "gs", "rclone"}
	assert.Equalf(t, want, got, "Backends: got %q, want %q", got, want)
}

func TestRepositoryValidateRejects(t *testing.T) {
	cases := []struct {
		name string
		repo domain.Repository
		want []string
	}{
		{"empty name", domain.Repository{Backend: domain.BackendLocal, Location: "/srv"}, []string{"name"}},
		{"name too short", domain.Repository{Name: "ab", Backend: domain.BackendLocal, Location: "/srv"}, []string{"name"}},
		{"name too long", domain.Repository{Name: strings.Repeat("r", 101), Backend: domain.BackendLocal, Location: "/srv"}, []string{"name"}},
		{"space in name", domain.Repository{Name: "off site", Backend: domain.BackendLocal, Location: "/srv"}, []string{"name"}},
		{"control character in description", domain.Repository{Name: "offsite", Description: "a\x00b", Backend: domain.BackendLocal, Location: "/srv"}, []string{"description"}},
		{"description too long", domain.Repository{Name: "offsite", Description: strings.Repeat("d", 501), Backend: domain.BackendLocal, Location: "/srv"}, []string{"description"}},
		{"no backend", repo("", "/srv/restic"), []string{"backend"}},
		{"unknown backend", repo("ftp", "ftp://host/repo"), []string{"backend"}},
		{"no backend and no location", repo("", ""), []string{"backend", "location"}},
		{"unknown backend and bad location", repo("swift", "a\x00"), []string{"backend", "location"}},
		{"no location", repo(domain.BackendS3, ""), []string{"location"}},
		{"control character reported once", repo(domain.BackendSFTP, "sftp:user@host:/srv\n"), []string{"location"}},
		{"location too long", repo(domain.BackendLocal, "/"+strings.Repeat("a", 1024)), []string{"location"}},
		{"everything wrong", domain.Repository{Name: "x", Description: "\t", Backend: "tape"}, []string{"name", "description", "backend", "location"}},
		{"negative checkOverdueAfterDays", domain.Repository{Name: "offsite", Backend: domain.BackendLocal, Location: "/srv", CheckOverdueAfterDays: -1}, []string{"checkOverdueAfterDays"}},
		{"checkOverdueAfterDays over a year", domain.Repository{Name: "offsite", Backend: domain.BackendLocal, Location: "/srv", CheckOverdueAfterDays: 366}, []string{"checkOverdueAfterDays"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { assertInvalid(t, tc.repo.Validate(), tc.want...) })
	}
}

func TestRepositoryValidateRejectsLocations(t *testing.T) {
	cases := []struct {
		backend domain.Backend
		bad     []string
	}{
		{domain.BackendLocal, []string{
			"srv/restic", "./repo", "~/restic", "local:", "local:srv", "C:restic", "s3:s3.amazonaws.com/bucket",
		}},
		{domain.BackendSFTP, []string{
			"sftp:host:/srv",               // no user
			"sftp:user@:/srv",              // no host
			"sftp:user@host",               // no path
			"sftp:user@host:",              // empty path
			"sftp:user@my host:/srv",       // space in host
			"sftp://user@host:0//srv",      // port 0
			"sftp://user@host:65536//srv",  // port too high
			"sftp://user@host:ssh//srv",    // port not a number
			"sftp://user@host",             // no path
			"sftp://user@host/",            // root only
			"sftp://host//srv",             // no user
			"sftp://user:secret@host//srv", // a password
			"user@host:/srv",               // no scheme
			"/srv/restic",
		}},
		{domain.BackendS3, []string{
			"s3:s3.amazonaws.com",           // no bucket
			"s3:s3.amazonaws.com/",          // empty bucket
			"s3:/bucket",                    // no endpoint
			"s3://bucket",                   // restic reads this as an endpoint without a bucket
			"s3:s3.amazonaws.com/My_Bucket", // uppercase and underscore
			"s3:s3.amazonaws.com/ab",        // too short
			"s3:s3.amazonaws.com/" + strings.Repeat("b", 64),
			"s3:s3.amazonaws.com/-bucket",             // starts with a hyphen
			"s3:s3.amazonaws.com/bucket.",             // ends with a period
			"s3:s3.amazonaws.com/my..bucket",          // adjacent periods
			"s3:s3.amazonaws.com/192.168.1.1",         // an IP address
			"s3:s3.amazonaws.com/xn--bucket",          // reserved prefix
			"s3:s3.amazonaws.com/sthree-bucket",       // reserved prefix
			"s3:s3.amazonaws.com/amzn-s3-demo-bucket", // reserved prefix
			"s3:s3.amazonaws.com/bucket-s3alias",      // reserved suffix
			"s3:s3.amazonaws.com/bucket--ol-s3",       // reserved suffix
			"s3:s3.amazonaws.com/bucket.mrap",         // reserved suffix
			"s3:s3.amazonaws.com/bucket--x-s3",        // reserved suffix
			"s3:https://minio.local:99999/bucket",     // port too high
			"s3:https://minio.local:0/bucket",         // port 0
			"s3:https:///bucket",                      // no host
			"s3:https://:9000/bucket",                 // port without host
			"s3:https://minio.local",                  // no bucket
			"s3:https://key:secret@minio.local/bucket",
			"bucket/prefix", // no scheme
			"https://s3.amazonaws.com/bucket",
		}},
		{domain.BackendRESTServer, []string{
			"rest:ftp://host/repo",
			"rest:host:8000/repo",
			"rest:/repo",
			"https://host:8000/repo",
			"rest:https://host:0/",
			"rest:https://host:70000/",
			"rest:https://:8000/",
			"rest:https://user:secret@host:8000/repo",
		}},
		{domain.BackendB2, []string{
			"b2:", "b2::path", "b2:short:path", "b2:bad_bucket:path", "b2:" + strings.Repeat("b", 51) + ":p", "bucket:path",
		}},
		{domain.BackendAzure, []string{
			"azure:container", "azure::/path", "azure:Container:/p", "azure:a--b:/p", "azure:-abc:/p", "azure:ab:/p", "container:/path",
		}},
		{domain.BackendGS, []string{
			"gs:bucket", "gs::/path", "gs:Bucket:/p", "gs:-bucket:/p", "gs:ab:/p", "gs:" + strings.Repeat("b", 64) + ":/p", "bucket:/path",
		}},
		{domain.BackendRclone, []string{"rclone:remote", "rclone::path", "remote:path", "rclone:"}},
	}
	for _, tc := range cases {
		for _, loc := range tc.bad {
			t.Run(string(tc.backend)+" "+loc, func(t *testing.T) {
				got := invalidFields(t, repo(tc.backend, loc).Validate())
				assert.NotEmptyf(t, got, "location %q: got no field", loc)
				for _, f := range got {
					assert.Equalf(t, "location", f, "location %q: got field %q, want only location", loc, f)
				}
			})
		}
	}
}

func TestRepositoryLocationReasons(t *testing.T) {
	cases := []struct {
		repo  domain.Repository
		count int // how many separate problems
		words []string
	}{
		{repo(domain.BackendLocal, "srv/restic"), 1, []string{"absolute path"}},
		{repo(domain.BackendSFTP, "sftp:@:"), 3, []string{"user"}},
		{repo(domain.BackendSFTP, "sftp://user@host:70000//srv"), 1, []string{"1 and 65535"}},
		{repo(domain.BackendSFTP, "sftp://user:hunter2@host//srv"), 1, []string{"password", "agent"}},
		{repo(domain.BackendS3, "s3:s3.amazonaws.com/My_Bucket"), 1, []string{`"My_Bucket"`, "lowercase"}},
		{repo(domain.BackendS3, "s3://bucket"), 1, []string{"bucket"}},
		{repo(domain.BackendRESTServer, "rest:ftp://host/"), 1, []string{"rest:https://"}},
		{repo(domain.BackendB2, "b2:short:path"), 1, []string{`"short"`, "6–50"}},
		{repo(domain.BackendRclone, "rclone:remote"), 1, []string{"rclone:remote:path"}},
	}
	for _, tc := range cases {
		t.Run(tc.repo.Location, func(t *testing.T) {
			err := tc.repo.Validate()
			got := invalidFields(t, err)
			assert.Lenf(t, got, tc.count, "got %q, want %d problems", got, tc.count)
			assertReasonMentions(t, err, "location", tc.words...)
		})
	}
}

func TestRepositoryReasonDoesNotEchoPassword(t *testing.T) {
	for _, r := range []domain.Repository{
		repo(domain.BackendRESTServer, "rest:https://user:hunter2@host:8000/repo"),
		repo(domain.BackendS3, "s3:https://key:hunter2@minio.local/bucket"),
		repo(domain.BackendSFTP, "sftp://user:hunter2@host//srv"),
	} {
		err := r.Validate()
		assertInvalid(t, err, "location")
		assert.NotContainsf(t, err.Error(), "hunter2", "error for %s: got %q, which repeats the password", r.Location, err)
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"abc", "offsite-s3", "web_01", "A1-b2_C3", strings.Repeat("n", 100)} {
		assert.Truef(t, domain.ValidName(s), "%q: got invalid, want valid", s)
	}
	for _, s := range []string{"", "ab", strings.Repeat("n", 101), "off site", "a/b", "naïve", "name.with.dots", "tab\tname"} {
		assert.Falsef(t, domain.ValidName(s), "%q: got valid, want invalid", s)
	}
}
