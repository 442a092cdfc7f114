package domain

import (
	"crypto/rand"
	"regexp"
	"time"

	"github.com/oklog/ulid/v2"
)

// NewID returns a new time-ordered identifier (a ULID). Sorting IDs sorts by creation time, which
// the store relies on for listing tasks and runs in order.
func NewID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// IDAt returns the smallest identifier that NewID can produce at t: a bound for time-range queries.
func IDAt(t time.Time) string {
	var id ulid.ULID
	if err := id.SetTime(ulid.Timestamp(t)); err != nil {
		return ulid.ULID{}.String()
	}
	return id.String()
}

// ValidID reports whether s is an identifier NewID could have produced.
func ValidID(s string) bool {
	if len(s) != ulid.EncodedSize {
		return false
	}
	_, err := ulid.ParseStrict(s)
	return err == nil
}

var tenantIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,30}[a-z0-9]$`)

// ValidTenantID reports whether s can name a tenant. Tenant IDs appear in queue and stack names,
// so they are short lowercase slugs: 3–32 characters, letters, digits and inner hyphens.
func ValidTenantID(s string) bool { return tenantIDPattern.MatchString(s) }

// IDTime returns the time an identifier from NewID was made at, or the zero time when s is not
// one.
func IDTime(s string) time.Time {
	id, err := ulid.ParseStrict(s)
	if err != nil {
		return time.Time{}
	}
	return ulid.Time(id.Time()).UTC()
}
