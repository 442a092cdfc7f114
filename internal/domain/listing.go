package domain

import (
	"path"
	"regexp"
	"time"
)

// A listing is what an ls task found in one snapshot of one agent: every directory below the
// listed path, each stored as chunks of its entries, so that the tree can be browsed page by page
// without running restic again. A later ls of the same snapshot replaces it.

// Entry types of a listing.
const (
	EntryFile    = "file"
	EntryDir     = "dir"
	EntrySymlink = "symlink"
	EntryOther   = "other"
)

// ListingEntry is one entry of a directory in a snapshot.
type ListingEntry struct {
	Name string `json:"name"`
	// Path is the entry's absolute path in the snapshot; chunks leave it out (it is the
	// directory's path and the name) and answers fill it in.
	Path string `json:"path,omitempty"`
	Type string `json:"type"`
	Size uint64 `json:"size"`
	// Mode holds the Unix permission bits, setuid, setgid and sticky included (0o7777).
	Mode  uint32    `json:"mode"`
	MTime time.Time `json:"mtime"`
	// LinkTarget is a symlink's target, when restic reports it.
	LinkTarget string `json:"linkTarget,omitempty"`
}

// DirChunk is one piece of one directory's entries. A directory's subdirectories come in the
// chunks with Dirs set, everything else in the others; each run of chunks is numbered by Seq
// from 0 and holds its entries in name order (restic's tree order, byte-wise), so reading a
// directory's chunks in key order lists its subdirectories first, then its files, each by name.
// An empty directory has one empty chunk with Dirs set.
type DirChunk struct {
	Dir     string         `json:"dir"`
	Dirs    bool           `json:"dirs,omitempty"`
	Seq     int            `json:"seq"`
	Entries []ListingEntry `json:"entries"`
}

// Listing limits.
const (
	// MaxChunkEntries bounds the entries of one chunk (an item stays far below DynamoDB's
	// 400 KB once compressed).
	MaxChunkEntries = 1000
	// MaxChunkSeq bounds the chunks of one directory and kind: a directory of 100 million
	// entries at most.
	MaxChunkSeq = 99_999
	// MaxChunksPerUpload bounds the chunks of one upload (one BatchWriteItem).
	MaxChunksPerUpload = 25
	// DefaultListingMaxBytes caps the compressed size of one listing; past it the listing is
	// truncated.
	DefaultListingMaxBytes = 64 << 20
	// DefaultListingRetention is how long a listing is kept.
	DefaultListingRetention = 7 * 24 * time.Hour
)

// Listing describes one stored listing (or one being uploaded).
type Listing struct {
	TenantID   string `json:"tenantId"`
	AgentID    string `json:"agentId"`
	SnapshotID string `json:"snapshotId"`
	// Path is the directory the ls listed, with everything below it.
	Path     string    `json:"path"`
	TaskID   string    `json:"taskId"`
	RunID    string    `json:"runId"`
	ListedAt time.Time `json:"listedAt"`
	// ExpiresAt is when the listing is deleted (DynamoDB TTL).
	ExpiresAt time.Time `json:"expiresAt"`
	// Truncated says the listing reached its size cap: some directories are missing or
	// incomplete.
	Truncated bool `json:"truncated"`
	// Bytes is the compressed size of the chunks stored, Chunks their number, Entries the
	// entries in them.
	Bytes   int64 `json:"bytes"`
	Chunks  int64 `json:"chunks"`
	Entries int64 `json:"entries"`
	// LastUpload is the number of the last upload counted, so an upload sent again is counted
	// once.
	LastUpload int64 `json:"lastUpload"`
}

var fullSnapshotID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidFullSnapshotID reports whether s is a whole restic snapshot ID.
func ValidFullSnapshotID(s string) bool { return fullSnapshotID.MatchString(s) }

// Within reports whether p is dir or lies below it (both clean and absolute).
func Within(p, dir string) bool {
	if dir == "/" || p == dir {
		return true
	}
	return len(p) > len(dir) && p[:len(dir)] == dir && p[len(dir)] == '/'
}

// JoinPath joins a snapshot directory and an entry name.
func JoinPath(dir, name string) string { return path.Join(dir, name) }
