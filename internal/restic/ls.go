package restic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// LsSnapshot is the snapshot restic ls lists, from the first line it prints.
type LsSnapshot struct {
	ID      string    `json:"id"`
	ShortID string    `json:"short_id"`
	Time    time.Time `json:"time"`
	Paths   []string  `json:"paths"`
}

// LsNode is one entry restic ls prints.
type LsNode struct {
	Name  string      `json:"name"`
	Type  string      `json:"type"`
	Path  string      `json:"path"`
	Size  uint64      `json:"size"`
	Mode  fs.FileMode `json:"mode"`
	MTime time.Time   `json:"mtime"`
	// LinkTarget is set by restic versions that report it.
	LinkTarget string `json:"link_target"`
}

// ErrNoSnapshotLine is the error of an ls whose output named no snapshot.
var ErrNoSnapshotLine = errors.New("restic printed no snapshot line")

// Ls runs restic ls --json --recursive of dir (everything when dir is "/") in the snapshot
// snapshotID and hands each entry to onNode as restic prints it, in restic's tree order
// (depth first, each directory's entries by name): nothing is held in memory. Its lines stay out
// of OnLine, which sees restic's stderr only. onSnapshot, when not nil, receives the snapshot
// line before any node. A node that is not valid JSON fails the listing.
func (r *Runner) Ls(ctx context.Context, snapshotID, dir string, onSnapshot func(LsSnapshot), onNode func(LsNode)) (*LsSnapshot, error) {
	if snapshotID == "" || snapshotID[0] == '-' {
		return nil, errors.New("restic ls: no snapshot")
	}
	args := []string{"ls", "--recursive", "--", snapshotID}
	if dir != "" && dir != "/" {
		args = append(args, dir)
	}
	var snap *LsSnapshot
	var parseErr error
	o, err := r.runLogging(ctx, "ls", args, true, func(raw []byte) {
		if parseErr != nil {
			return
		}
		var head struct {
			MessageType string `json:"message_type"`
			StructType  string `json:"struct_type"`
		}
		if json.Unmarshal(raw, &head) != nil {
			return // noise
		}
		kind := head.MessageType
		if kind == "" {
			kind = head.StructType
		}
		switch kind {
		case "snapshot":
			var s LsSnapshot
			if err := json.Unmarshal(raw, &s); err != nil {
				parseErr = fmt.Errorf("restic ls: snapshot line: %w", err)
				return
			}
			snap = &s
			if onSnapshot != nil {
				onSnapshot(s)
			}
		case "node":
			var n LsNode
			if err := json.Unmarshal(raw, &n); err != nil {
				parseErr = fmt.Errorf("restic ls: node line: %w", err)
				return
			}
			onNode(n)
		}
	}, false)
	if err != nil {
		return nil, err
	}
	if err := o.err(); err != nil {
		return snap, err
	}
	if parseErr != nil {
		return snap, parseErr
	}
	if snap == nil {
		return nil, fmt.Errorf("restic ls: %w", ErrNoSnapshotLine)
	}
	return snap, nil
}
