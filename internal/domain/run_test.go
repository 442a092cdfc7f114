package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func validChunk() domain.LogChunk {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	lines := []string{"open repository", "using parent snapshot 4bba301e", "Files: 12 new, 3 changed, 9000 unmodified"}
	size := 0
	for _, l := range lines {
		size += len(l)
	}
	return domain.LogChunk{
		TenantID:  "acme",
		RunID:     "01JNB7Q1V3W4X5Y6Z7A8B9C0D1",
		Seq:       0,
		Lines:     lines,
		Bytes:     int64(size),
		CreatedAt: now,
		ExpiresAt: now.Add(30 * 24 * time.Hour),
	}
}

func TestLogChunkValidate(t *testing.T) {
	valid := []struct {
		name   string
		mutate func(*domain.LogChunk)
	}{
		{"as built", func(*domain.LogChunk) {}},
		{"last sequence number", func(c *domain.LogChunk) { c.Seq = domain.MaxLogSeq }},
		{"most lines", func(c *domain.LogChunk) { c.Lines = numbered(domain.MaxLogChunkLines, "%d") }},
		{"largest chunk", func(c *domain.LogChunk) {
			c.Lines = []string{strings.Repeat("x", domain.MaxLogChunkBytes)}
			c.Bytes = domain.MaxLogChunkBytes
		}},
		{"empty lines are lines", func(c *domain.LogChunk) { c.Lines, c.Bytes = []string{"", ""}, 0 }},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			c := validChunk()
			tc.mutate(&c)
			assertValid(t, c.Validate())
		})
	}

	invalid := []struct {
		name   string
		mutate func(*domain.LogChunk)
		want   []string
	}{
		{"negative sequence number", func(c *domain.LogChunk) { c.Seq = -1 }, []string{"seq"}},
		{"sequence number beyond ten digits", func(c *domain.LogChunk) { c.Seq = domain.MaxLogSeq + 1 }, []string{"seq"}},
		{"no lines", func(c *domain.LogChunk) { c.Lines = nil }, []string{"lines"}},
		{"too many lines", func(c *domain.LogChunk) { c.Lines = numbered(domain.MaxLogChunkLines+1, "%d") }, []string{"lines"}},
		{"lines larger than the sender claims", func(c *domain.LogChunk) {
			c.Lines = []string{strings.Repeat("x", domain.MaxLogChunkBytes), "y"}
			c.Bytes = 10
		}, []string{"lines"}},
		{"negative byte count", func(c *domain.LogChunk) { c.Bytes = -1 }, []string{"bytes"}},
		{"byte count over the limit", func(c *domain.LogChunk) { c.Bytes = domain.MaxLogChunkBytes + 1 }, []string{"bytes"}},
		{"everything wrong", func(c *domain.LogChunk) { c.Seq, c.Lines, c.Bytes = -5, nil, -5 }, []string{"seq", "lines", "bytes"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			c := validChunk()
			tc.mutate(&c)
			assertInvalid(t, c.Validate(), tc.want...)
		})
	}
}

func validSnapshot() domain.Snapshot {
	return domain.Snapshot{
		TenantID:   "acme",
		AgentID:    "01JNB7Q1V3W4X5Y6Z7A8B9C0D1",
		ID:         "4bba301e3c9e7d9d0b2c8f31c22de3e0f6f7b2a4f1a9e2c3d4b5a69788796a5b",
		ShortID:    "4bba301e",
		Repository: "offsite-s3",
		Time:       time.Date(2025, 3, 1, 2, 15, 0, 0, time.UTC),
		Hostname:   "web-01",
		Paths:      []string{"/etc", "/var/www"},
		Tags:       []string{"web"},
	}
}

func TestSnapshotValidate(t *testing.T) {
	valid := []struct {
		name   string
		mutate func(*domain.Snapshot)
	}{
		{"as built", func(*domain.Snapshot) {}},
		{"short ID", func(s *domain.Snapshot) { s.ID = "4bba301e" }},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			s := validSnapshot()
			tc.mutate(&s)
			assertValid(t, s.Validate())
		})
	}

	invalid := []struct {
		name   string
		mutate func(*domain.Snapshot)
		want   []string
	}{
		{"no ID", func(s *domain.Snapshot) { s.ID = "" }, []string{"id"}},
		{"ID too short", func(s *domain.Snapshot) { s.ID = "4bba301" }, []string{"id"}},
		{"ID too long", func(s *domain.Snapshot) { s.ID = strings.Repeat("a", 65) }, []string{"id"}},
		{"uppercase ID", func(s *domain.Snapshot) { s.ID = "4BBA301E" }, []string{"id"}},
		{"ID not hexadecimal", func(s *domain.Snapshot) { s.ID = "latest00" }, []string{"id"}},
		{"no repository", func(s *domain.Snapshot) { s.Repository = "" }, []string{"repository"}},
		{"no time", func(s *domain.Snapshot) { s.Time = time.Time{} }, []string{"time"}},
		{"everything wrong", func(s *domain.Snapshot) { *s = domain.Snapshot{} }, []string{"id", "repository", "time"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			s := validSnapshot()
			tc.mutate(&s)
			assertInvalid(t, s.Validate(), tc.want...)
		})
	}
}
