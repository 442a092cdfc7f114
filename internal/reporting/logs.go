package reporting

import (
	"context"
	"errors"
	"fmt"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// LogChunk is one ordered piece of a run's output.
type LogChunk struct {
	// Seq numbers a run's chunks in order from 0. Sending a number again changes nothing, so a
	// chunk whose answer was lost can simply be sent again.
	Seq   *int64   `json:"seq"`
	Lines []string `json:"lines"`
}

// AppendLog stores a chunk of one of the caller's runs — also after the run ended, since chunks
// may arrive late — and counts its lines and bytes on the run and the tenant. It reports false
// when the chunk had been stored before. A chunk above domain.MaxLogChunkLines lines or
// domain.MaxLogChunkBytes bytes is a *TooLargeError: the agent splits it.
func (s *Service) AppendLog(ctx context.Context, c Caller, runID string, chunk LogChunk) (bool, error) {
	size := 0
	for _, l := range chunk.Lines {
		size += len(l)
	}
	switch {
	case len(chunk.Lines) > domain.MaxLogChunkLines:
		return false, &TooLargeError{Field: "lines", Reason: fmt.Sprintf("at most %d lines per chunk (got %d)", domain.MaxLogChunkLines, len(chunk.Lines))}
	case size > domain.MaxLogChunkBytes:
		return false, &TooLargeError{Field: "lines", Reason: fmt.Sprintf("at most %d bytes per chunk (got %d)", domain.MaxLogChunkBytes, size)}
	}
	var p problems
	switch {
	case chunk.Seq == nil:
		p.add("seq", "must be present")
	case *chunk.Seq < 0 || *chunk.Seq > domain.MaxLogSeq:
		p.add("seq", "must be between 0 and %d", int64(domain.MaxLogSeq))
	}
	if len(chunk.Lines) == 0 {
		p.add("lines", "must hold at least one line")
	}
	if err := p.err(); err != nil {
		return false, err
	}
	run, err := s.Store.GetRun(ctx, c.TenantID, runID)
	if err != nil {
		return false, err
	}
	if run.AgentID != c.AgentID {
		return false, notFound("run", runID)
	}
	now := s.now()
	return s.Store.AppendLog(ctx, c.TenantID, domain.LogChunk{
		RunID: runID, Seq: *chunk.Seq, Lines: chunk.Lines, CreatedAt: now, ExpiresAt: now.Add(s.Settings.logRetention()),
	})
}

// SnapshotReport is the complete list of the snapshots in one repository, as `restic snapshots`
// shows it to the agent.
type SnapshotReport struct {
	// Repository is the repository's name in the agent's configuration and in the policies.
	Repository string `json:"repository"`
	// Snapshots are all of the repository's snapshots; an empty list says it holds none.
	Snapshots []SnapshotInfo `json:"snapshots"`
}

// SnapshotInfo is one snapshot.
type SnapshotInfo struct {
	ID        string   `json:"id"`
	ShortID   string   `json:"shortId,omitempty"`
	Time      Time     `json:"time"`
	Hostname  string   `json:"hostname"`
	Paths     []string `json:"paths"`
	Tags      []string `json:"tags,omitempty"`
	PolicyID  string   `json:"policyId,omitempty"`
	SizeBytes uint64   `json:"sizeBytes,omitempty"`
}

// Snapshot report limits.
const (
	MaxSnapshotsPerReport = 2000
	maxSnapshotPaths      = 100
	maxSnapshotTags       = 50
	// maxSnapshotPathBytes keeps one snapshot within DynamoDB's item size.
	maxSnapshotPathBytes = 64 << 10
)

// SnapshotsReply says what a report changed.
type SnapshotsReply struct {
	Stored  int
	Removed int
}

// ReportSnapshots replaces the caller's inventory of one repository: the reported snapshots are
// stored and those it reported before but no longer holds (forgotten since) are removed.
func (s *Service) ReportSnapshots(ctx context.Context, c Caller, rep SnapshotReport) (SnapshotsReply, error) {
	snaps, err := rep.validate()
	if err != nil {
		return SnapshotsReply{}, err
	}
	removed, err := s.Store.ReplaceSnapshots(ctx, c.TenantID, c.AgentID, rep.Repository, snaps)
	if err != nil {
		return SnapshotsReply{}, err
	}
	return SnapshotsReply{Stored: len(snaps), Removed: removed}, nil
}

func (rep SnapshotReport) validate() ([]domain.Snapshot, error) {
	var p problems
	if !domain.ValidName(rep.Repository) {
		p.add("repository", "must name a repository")
	}
	switch {
	case rep.Snapshots == nil:
		p.add("snapshots", "must be present: the full list, empty when the repository holds no snapshot")
	case len(rep.Snapshots) > MaxSnapshotsPerReport:
		p.add("snapshots", "at most %d snapshots (got %d)", MaxSnapshotsPerReport, len(rep.Snapshots))
	}
	if len(p) > 0 {
		return nil, p.err()
	}
	snaps := make([]domain.Snapshot, len(rep.Snapshots))
	seen := map[string]bool{}
	for i, in := range rep.Snapshots {
		field := fmt.Sprintf("snapshots[%d]", i)
		sn := domain.Snapshot{ID: in.ID, ShortID: in.ShortID, Repository: rep.Repository, Time: in.Time.UTC(),
			Hostname: in.Hostname, Paths: in.Paths, Tags: in.Tags, PolicyID: in.PolicyID, SizeBytes: in.SizeBytes}
		var ve *domain.ValidationError
		if err := sn.Validate(); errors.As(err, &ve) {
			for _, f := range ve.Fields {
				if f.Field != "repository" {
					p.add(field+"."+f.Field, "%s", f.Reason)
				}
			}
		} else if err != nil {
			return nil, err
		}
		if seen[in.ID] {
			p.add(field+".id", "snapshot %s is listed twice", in.ID)
		}
		seen[in.ID] = true
		if in.ShortID != "" && !snapshotIDPattern.MatchString(in.ShortID) {
			p.add(field+".shortId", "must be hexadecimal")
		}
		p.checkText(field+".hostname", in.Hostname, 253, false)
		size := 0
		for _, path := range in.Paths {
			size += len(path)
		}
		switch {
		case len(in.Paths) > maxSnapshotPaths:
			p.add(field+".paths", "at most %d paths (got %d)", maxSnapshotPaths, len(in.Paths))
		case size > maxSnapshotPathBytes:
			p.add(field+".paths", "at most %d bytes in all (got %d)", maxSnapshotPathBytes, size)
		default:
			for j, path := range in.Paths {
				checkPath(&p, fmt.Sprintf("%s.paths[%d]", field, j), path)
			}
		}
		if len(in.Tags) > maxSnapshotTags {
			p.add(field+".tags", "at most %d tags (got %d)", maxSnapshotTags, len(in.Tags))
		} else {
			for j, tag := range in.Tags {
				p.checkText(fmt.Sprintf("%s.tags[%d]", field, j), tag, 255, false)
			}
		}
		if in.PolicyID != "" && !domain.ValidID(in.PolicyID) {
			p.add(field+".policyId", "must be a policy ID")
		}
		snaps[i] = sn
	}
	return snaps, p.err()
}
