package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func chunkOf(t *testing.T, dir string, dirs bool, seq, n int) store.EncodedChunk {
	t.Helper()
	c := domain.DirChunk{Dir: dir, Dirs: dirs, Seq: seq, Entries: []domain.ListingEntry{}}
	for i := range n {
		typ := domain.EntryFile
		if dirs {
			typ = domain.EntryDir
		}
		c.Entries = append(c.Entries, domain.ListingEntry{Name: fmt.Sprintf("e%02d-%04d", seq, i), Type: typ, Size: uint64(i), Mode: 0o640, MTime: epoch})
	}
	e, err := store.EncodeChunk(c)
	require.NoError(t, err)
	return e
}

// TestListingUploadsCountOnceAndReplaceTheOldListing uploads a listing in numbered parts, one
// of them twice, reads a directory across its chunks, and lists the snapshot again: the new
// listing replaces the old one, whose chunks go.
func TestListingUploadsCountOnceAndReplaceTheOldListing(t *testing.T) {
	f := newFixture(t)
	tenant := f.tenant("acme")
	agent, snap := f.id(), "ab12cd34"+fmt.Sprintf("%056d", 7)
	first := domain.Listing{AgentID: agent, SnapshotID: snap, Path: "/srv", TaskID: f.id(), RunID: f.id(), ExpiresAt: f.now.Add(time.Hour)}
	up := func(l domain.Listing, seq int64, chunks ...store.EncodedChunk) store.UploadOutcome {
		out, err := f.st.UploadListingChunks(f.ctx, tenant, store.ListingUpload{Listing: l, Seq: seq, Chunks: chunks, MaxBytes: 1 << 20})
		require.NoError(t, err)
		return out
	}
	up(first, 0, chunkOf(t, "/srv", true, 0, 3), chunkOf(t, "/srv", false, 0, 5))
	again := up(first, 0, chunkOf(t, "/srv", true, 0, 3), chunkOf(t, "/srv", false, 0, 5))
	assert.True(t, again.Repeated, "an upload sent again is recognised")
	out := up(first, 1, chunkOf(t, "/srv", false, 1, 4), chunkOf(t, "/srv/empty", true, 0, 0))
	assert.Equal(t, int64(12), out.Listing.Entries, "the repeated upload counted once")
	assert.Equal(t, int64(4), out.Listing.Chunks)

	_, err := f.st.GetListing(f.ctx, tenant, agent, snap[:8])
	require.ErrorIs(t, err, domain.ErrNotFound, "an unfinished listing is not shown")
	_, err = f.st.FinishListing(f.ctx, tenant, agent, first.RunID, f.now)
	require.NoError(t, err)
	l, err := f.st.GetListing(f.ctx, tenant, agent, snap[:8])
	require.NoError(t, err)
	assert.Equal(t, first.RunID, l.RunID)

	var names []string
	page := store.Page{Limit: 4}
	for {
		entries, next, found, err := f.st.ListDirectory(f.ctx, tenant, l, "/srv", page)
		require.NoError(t, err)
		require.True(t, found)
		for _, e := range entries {
			names = append(names, e.Name)
			assert.Equal(t, "/srv/"+e.Name, e.Path)
		}
		if next == "" {
			break
		}
		page.Cursor = next
	}
	assert.Equal(t, []string{"e00-0000", "e00-0001", "e00-0002", "e00-0000", "e00-0001", "e00-0002", "e00-0003", "e00-0004",
		"e01-0000", "e01-0001", "e01-0002", "e01-0003"}, names, "subdirectories first, then the rest, chunk by chunk")
	entries, next, found, err := f.st.ListDirectory(f.ctx, tenant, l, "/srv/empty", store.Page{})
	require.NoError(t, err)
	assert.True(t, found)
	assert.Empty(t, entries)
	assert.Empty(t, next)
	_, _, found, err = f.st.ListDirectory(f.ctx, tenant, l, "/srv/none", store.Page{})
	require.NoError(t, err)
	assert.False(t, found)
	_, _, _, err = f.st.ListDirectory(f.ctx, tenant, l, "/srv/empty", store.Page{Cursor: page.Cursor})
	require.ErrorIs(t, err, domain.ErrInvalidCursor, "a cursor of another directory is refused")

	second := first
	second.TaskID, second.RunID = f.id(), f.id()
	up(second, 0, chunkOf(t, "/srv", false, 0, 1))
	_, err = f.st.FinishListing(f.ctx, tenant, agent, second.RunID, f.now)
	require.NoError(t, err)
	l, err = f.st.GetListing(f.ctx, tenant, agent, snap)
	require.NoError(t, err)
	assert.Equal(t, second.TaskID, l.TaskID, "listing again replaces the listing")
	_, _, found, err = f.st.ListDirectory(f.ctx, tenant, first, "/srv", store.Page{})
	require.NoError(t, err)
	assert.False(t, found, "the old listing's chunks are deleted")

	_, err = f.st.GetListing(f.ctx, "other", agent, snap)
	require.ErrorIs(t, err, domain.ErrNotFound, "another tenant sees nothing")
}

// TestListingPastItsCapKeepsWhatFits fills a listing past its cap: what fits is stored, the
// listing is truncated, and later uploads store nothing.
func TestListingPastItsCapKeepsWhatFits(t *testing.T) {
	f := newFixture(t)
	tenant := f.tenant("acme")
	agent := f.id()
	l := domain.Listing{AgentID: agent, SnapshotID: fmt.Sprintf("%064d", 1), Path: "/", TaskID: f.id(), RunID: f.id(), ExpiresAt: f.now.Add(time.Hour)}
	a, b, c := chunkOf(t, "/a", false, 0, 200), chunkOf(t, "/b", false, 0, 200), chunkOf(t, "/c", false, 0, 200)
	limit := a.Size() + b.Size() + c.Size()/2
	out, err := f.st.UploadListingChunks(f.ctx, tenant, store.ListingUpload{Listing: l, Seq: 0, Chunks: []store.EncodedChunk{a}, MaxBytes: limit})
	require.NoError(t, err)
	assert.False(t, out.Truncated)
	out, err = f.st.UploadListingChunks(f.ctx, tenant, store.ListingUpload{Listing: l, Seq: 1, Chunks: []store.EncodedChunk{b, c}, MaxBytes: limit})
	require.NoError(t, err)
	assert.True(t, out.Truncated)
	assert.Equal(t, a.Size()+b.Size(), out.Listing.Bytes, "the chunk that fit is kept")
	out, err = f.st.UploadListingChunks(f.ctx, tenant, store.ListingUpload{Listing: l, Seq: 2, Chunks: []store.EncodedChunk{chunkOf(t, "/d", false, 0, 1)}, MaxBytes: limit})
	require.NoError(t, err)
	assert.True(t, out.Truncated)
	_, err = f.st.FinishListing(f.ctx, tenant, agent, l.RunID, f.now)
	require.NoError(t, err)
	got, err := f.st.GetListing(f.ctx, tenant, agent, l.SnapshotID)
	require.NoError(t, err)
	assert.True(t, got.Truncated)
	for dir, want := range map[string]bool{"/a": true, "/b": true, "/c": false, "/d": false} {
		_, _, found, err := f.st.ListDirectory(f.ctx, tenant, got, dir, store.Page{})
		require.NoError(t, err)
		assert.Equal(t, want, found, dir)
	}
}
