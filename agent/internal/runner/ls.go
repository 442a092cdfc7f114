package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/restic"
)

// ListingBatch is one upload of an ls task's listing.
type ListingBatch struct {
	SnapshotID string
	Path       string
	Seq        int64
	Chunks     []domain.DirChunk
	Done       bool
}

// UploadListing sends one batch and says whether the listing reached its size cap.
type UploadListing func(ctx context.Context, b ListingBatch) (truncated bool, err error)

// Upload bounds: a batch is one request of the agent API (1 MiB at most) and one DynamoDB
// batch write; a chunk stays far below an item's size once compressed.
const (
	maxBatchBytes = 640 << 10
	maxChunkBytes = 192 << 10
	// entryOverhead is what an entry's JSON takes beyond its name and link target.
	entryOverhead = 110
)

var errListingTruncated = errors.New("the listing reached its size cap")

// lister groups restic ls's stream of entries into per-directory chunks and uploads them in
// batches as it goes. restic prints a tree depth first with every directory's entries by name,
// so the directories still open form a stack: memory is bounded by the tree's depth times a
// chunk, never by the listing's size.
type lister struct {
	ctx    context.Context
	upload UploadListing
	root   string
	snap   string

	stack    []*openDir
	batch    []domain.DirChunk
	batchLen int
	seq      int64

	rootSeen, rootIsDir bool
	entries, dirs       int64
	truncated           bool
	err                 error
	stop                context.CancelCauseFunc
}

type openDir struct {
	path                string
	subdirs, other      []domain.ListingEntry
	subdirLen, otherLen int
	subdirSeq, otherSeq int
}

func (l *lister) node(n restic.LsNode) {
	if l.err != nil || l.truncated {
		return
	}
	if l.root != "/" && n.Path == l.root {
		l.rootSeen, l.rootIsDir = true, n.Type == "dir"
		return
	}
	parent := path.Dir(n.Path)
	for len(l.stack) > 0 && l.top().path != parent {
		l.closeDir()
	}
	if len(l.stack) == 0 {
		return // outside the listed path: restic prints nothing of the kind
	}
	e := entryOf(n)
	d := l.top()
	size := entryOverhead + len(e.Name) + len(e.LinkTarget)
	if e.Type == domain.EntryDir {
		d.subdirs, d.subdirLen = append(d.subdirs, e), d.subdirLen+size
		if len(d.subdirs) >= domain.MaxChunkEntries || d.subdirLen >= maxChunkBytes {
			l.emit(d, true)
		}
		l.dirs++
		l.stack = append(l.stack, &openDir{path: n.Path})
	} else {
		d.other, d.otherLen = append(d.other, e), d.otherLen+size
		if len(d.other) >= domain.MaxChunkEntries || d.otherLen >= maxChunkBytes {
			l.emit(d, false)
		}
	}
	l.entries++
}

func (l *lister) top() *openDir { return l.stack[len(l.stack)-1] }

// closeDir emits what is left of the innermost open directory; an empty one gets an empty
// chunk, so that the listing knows it.
func (l *lister) closeDir() {
	d := l.top()
	if len(d.subdirs) > 0 || d.subdirSeq == 0 && d.otherSeq == 0 && len(d.other) == 0 {
		l.emit(d, true)
	}
	if len(d.other) > 0 {
		l.emit(d, false)
	}
	l.stack = l.stack[:len(l.stack)-1]
}

func (l *lister) emit(d *openDir, dirs bool) {
	c := domain.DirChunk{Dir: d.path, Dirs: dirs}
	size := len(d.path) + 40
	if dirs {
		c.Seq, c.Entries, size = d.subdirSeq, d.subdirs, size+d.subdirLen
		d.subdirSeq, d.subdirs, d.subdirLen = d.subdirSeq+1, nil, 0
	} else {
		c.Seq, c.Entries, size = d.otherSeq, d.other, size+d.otherLen
		d.otherSeq, d.other, d.otherLen = d.otherSeq+1, nil, 0
	}
	if c.Entries == nil {
		c.Entries = []domain.ListingEntry{}
	}
	if len(l.batch) > 0 && (len(l.batch) >= domain.MaxChunksPerUpload || l.batchLen+size > maxBatchBytes) {
		l.flush(false)
	}
	l.batch = append(l.batch, c)
	l.batchLen += size
}

// flush uploads the pending batch; done marks the listing complete.
func (l *lister) flush(done bool) {
	if l.err != nil || (l.truncated && !done) {
		return
	}
	b := ListingBatch{SnapshotID: l.snap, Path: l.root, Seq: l.seq, Chunks: l.batch, Done: done}
	if b.Chunks == nil {
		b.Chunks = []domain.DirChunk{}
	}
	l.batch, l.batchLen = nil, 0
	l.seq++
	truncated, err := l.upload(l.ctx, b)
	switch {
	case err != nil:
		l.err = fmt.Errorf("upload the listing: %w", err)
		l.stop(l.err)
	case truncated && !l.truncated:
		l.truncated = true
		l.stop(errListingTruncated)
	}
}

// entryOf is the listing's form of a node: permission bits in Unix numbering.
func entryOf(n restic.LsNode) domain.ListingEntry {
	mode := uint32(n.Mode.Perm())
	if n.Mode&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if n.Mode&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if n.Mode&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	typ := domain.EntryOther
	switch n.Type {
	case "file":
		typ = domain.EntryFile
	case "dir":
		typ = domain.EntryDir
	case "symlink":
		typ = domain.EntrySymlink
	}
	e := domain.ListingEntry{Name: n.Name, Type: typ, Mode: mode, MTime: n.MTime.UTC(), LinkTarget: n.LinkTarget}
	if typ == domain.EntryFile {
		e.Size = n.Size
	}
	return e
}

func (t *task) ls(ctx context.Context) Result {
	spec := t.m.Ls
	if t.hooks.UploadListing == nil {
		return Result{Status: domain.TaskFailed, Error: "this agent cannot upload listings"}
	}
	lctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	l := &lister{ctx: ctx, upload: t.hooks.UploadListing, root: spec.Path, stop: stop}
	t.started("ls")
	snap, err := t.rr.Ls(lctx, spec.SnapshotID, spec.Path, func(s restic.LsSnapshot) {
		l.snap = s.ID
		l.stack = []*openDir{{path: spec.Path}}
	}, l.node)
	if l.err != nil {
		return Result{Status: domain.TaskFailed, Error: l.err.Error()}
	}
	if !l.truncated {
		if err != nil {
			return t.outcome(err, nil)
		}
		if spec.Path != "/" && (!l.rootSeen || !l.rootIsDir) {
			return Result{Status: domain.TaskFailed, Error: fmt.Sprintf("%s is not a directory in snapshot %s", spec.Path, snap.ShortID)}
		}
		for len(l.stack) > 0 {
			l.closeDir()
		}
	} else if ctx.Err() != nil {
		return t.outcome(err, nil)
	}
	l.flush(true)
	if l.err != nil {
		return Result{Status: domain.TaskFailed, Error: l.err.Error()}
	}
	detail := fmt.Sprintf("listed %d entries in %d directories below %s of snapshot %s", l.entries, l.dirs, spec.Path, shortID(l.snap))
	if l.truncated {
		detail += "; the listing reached the control plane's size cap and is truncated: list a smaller path"
	}
	return Result{Status: domain.TaskSucceeded, Details: []string{detail}}
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
