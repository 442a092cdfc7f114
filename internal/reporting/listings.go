package reporting

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

// ListingUpload is one upload of the listing an ls run makes: directory chunks, numbered
// uploads, and a last upload that says the listing is complete.
type ListingUpload struct {
	RunID string `json:"runId"`
	// SnapshotID is the whole ID of the snapshot listed, as restic printed it.
	SnapshotID string `json:"snapshotId"`
	// Path is the directory listed.
	Path string `json:"path"`
	// Seq numbers the run's uploads from 0; an upload sent again is counted once.
	Seq    *int64            `json:"seq"`
	Chunks []domain.DirChunk `json:"chunks"`
	// Done says this is the last upload: the listing replaces the snapshot's earlier one.
	Done bool `json:"done,omitempty"`
}

// ListingReply is what an upload did.
type ListingReply struct {
	Repeated bool
	// Finished is true when the upload finished the listing.
	Finished bool
	Listing  domain.Listing
}

func (up ListingUpload) validate() error {
	var p problems
	p.checkID("runId", up.RunID)
	if !domain.ValidFullSnapshotID(up.SnapshotID) {
		p.add("snapshotId", "must be a whole snapshot ID (64 hexadecimal digits)")
	}
	if reason := domain.SnapshotPathProblem(up.Path); reason != "" {
		p.add("path", "%s", reason)
	}
	switch {
	case up.Seq == nil:
		p.add("seq", "must be present")
	case *up.Seq < 0 || *up.Seq > domain.MaxLogSeq:
		p.add("seq", "must be between 0 and %d", int64(domain.MaxLogSeq))
	}
	if len(up.Chunks) > domain.MaxChunksPerUpload {
		p.add("chunks", "at most %d chunks per upload", domain.MaxChunksPerUpload)
	}
	for i, c := range up.Chunks {
		f := fmt.Sprintf("chunks[%d]", i)
		switch reason := domain.SnapshotPathProblem(c.Dir); {
		case reason != "":
			p.add(f+".dir", "%s", reason)
		case up.Path != "" && !domain.Within(c.Dir, up.Path):
			p.add(f+".dir", "is not %s or below it", up.Path)
		}
		if c.Seq < 0 || c.Seq > domain.MaxChunkSeq {
			p.add(f+".seq", "must be between 0 and %d", domain.MaxChunkSeq)
		}
		if len(c.Entries) > domain.MaxChunkEntries {
			p.add(f+".entries", "at most %d entries per chunk", domain.MaxChunkEntries)
			continue
		}
		for j, e := range c.Entries {
			if reason := entryProblem(e, c.Dirs); reason != "" {
				p.add(fmt.Sprintf("%s.entries[%d]", f, j), "%s", reason)
				break // one per chunk is enough to see what is wrong
			}
		}
	}
	return p.err()
}

func entryProblem(e domain.ListingEntry, dirs bool) string {
	switch {
	case e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsRune(e.Name, '/'):
		return "name must be one path element"
	case len(e.Name) > 1024 || !utf8.ValidString(e.Name):
		return "name must be valid UTF-8 of at most 1024 bytes"
	case e.Path != "":
		return "path is left out: it follows from the directory"
	case len(e.LinkTarget) > domain.MaxSnapshotPath || !utf8.ValidString(e.LinkTarget):
		return "linkTarget must be valid UTF-8 of at most 4096 bytes"
	case e.Mode > 0o7777:
		return "mode holds the permission bits only (at most 0o7777)"
	}
	switch e.Type {
	case domain.EntryDir:
		if !dirs {
			return "a directory belongs in a chunk with dirs set"
		}
	case domain.EntryFile, domain.EntrySymlink, domain.EntryOther:
		if dirs {
			return "a chunk with dirs set holds directories only"
		}
	default:
		return "type must be file, dir, symlink or other"
	}
	return ""
}

// UploadListing stores an upload of the listing that the caller's running ls task makes. The
// chunks count against the listing's size cap; past it the listing is truncated and the reply
// says so. The last upload (Done) makes it the snapshot's listing.
func (s *Service) UploadListing(ctx context.Context, c Caller, taskID string, up ListingUpload) (ListingReply, error) {
	if err := up.validate(); err != nil {
		return ListingReply{}, err
	}
	encoded := make([]store.EncodedChunk, 0, len(up.Chunks))
	for _, ch := range up.Chunks {
		e, err := store.EncodeChunk(ch)
		if err != nil {
			return ListingReply{}, err
		}
		encoded = append(encoded, e)
	}
	t, err := s.Store.GetTask(ctx, c.TenantID, taskID)
	if err != nil {
		return ListingReply{}, err
	}
	if t.AgentID != c.AgentID {
		return ListingReply{}, notFound("task", taskID)
	}
	if t.Type != domain.TaskLs {
		return ListingReply{}, refuse(CodeResultConflict, "task %s is a %s task, not an ls", taskID, t.Type)
	}
	if ref := t.Params.SnapshotID; ref != "latest" && !strings.HasPrefix(up.SnapshotID, ref) {
		return ListingReply{}, refuse(CodeResultConflict, "snapshot %s is not the snapshot %s task %s lists", up.SnapshotID, ref, taskID)
	}
	run, err := s.Store.GetRun(ctx, c.TenantID, up.RunID)
	if err != nil {
		return ListingReply{}, err
	}
	switch {
	case run.AgentID != c.AgentID || run.TaskID != taskID:
		return ListingReply{}, notFound("run", up.RunID)
	case run.Status == domain.RunInterrupted && run.LostAt == nil:
		return ListingReply{}, refuse(CodeRunSuperseded, "run %s was interrupted: task %s was started again", run.ID, taskID)
	case run.Status != domain.TaskRunning && run.Status != domain.RunInterrupted:
		return ListingReply{}, refuse(CodeRunFinished, "run %s ended %s", run.ID, run.Status)
	}
	now := s.now()
	out, err := s.Store.UploadListingChunks(ctx, c.TenantID, store.ListingUpload{
		Listing: domain.Listing{
			TenantID: c.TenantID, AgentID: c.AgentID, SnapshotID: up.SnapshotID, Path: up.Path, TaskID: taskID, RunID: up.RunID,
			ExpiresAt: now.Add(s.Settings.listingRetention()).UTC(),
		},
		Seq: *up.Seq, Chunks: encoded, MaxBytes: s.Settings.listingMaxBytes(),
	})
	if err != nil {
		return ListingReply{}, err
	}
	reply := ListingReply{Repeated: out.Repeated, Listing: out.Listing}
	if up.Done {
		l, err := s.Store.FinishListing(ctx, c.TenantID, c.AgentID, up.RunID, now)
		if err != nil {
			return ListingReply{}, err
		}
		reply.Finished, reply.Listing = true, l
	}
	return reply, nil
}
