package spool

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func put(t *testing.T, s *Spool, key, kind, payload string) {
	t.Helper()
	require.NoError(t, s.Put(Item{Key: key, Kind: kind, Payload: json.RawMessage(payload)}))
}

func keys(items []Item) []string {
	var ks []string
	for _, it := range items {
		ks = append(ks, it.Key)
	}
	return ks
}

func TestItemsSurviveReopenInOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	require.NoError(t, err)
	put(t, s, LogKey("R1", 2), KindLog, `{"n":2}`)
	put(t, s, ResultKey("T1"), KindResult, `{"status":"succeeded"}`)
	put(t, s, LogKey("R1", 1), KindLog, `{"n":1}`)

	// A crash in the middle of a write leaves a temporary file; it is not an item.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".result-T2.json.tmp-123"), []byte(`{"key":`), 0o600))

	reopened, err := Open(dir)
	require.NoError(t, err)
	items, err := reopened.List()
	require.NoError(t, err)
	assert.Equal(t, []string{LogKey("R1", 2), ResultKey("T1"), LogKey("R1", 1)}, keys(items), "items come back in the order they were written")
	_, err = os.Stat(filepath.Join(dir, ".result-T2.json.tmp-123"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the torn write was cleaned up")

	// New items go after the ones that survived the restart.
	put(t, reopened, LogKey("R1", 3), KindLog, `{"n":3}`)
	items, err = reopened.List()
	require.NoError(t, err)
	assert.Equal(t, LogKey("R1", 3), items[len(items)-1].Key)

	var body struct{ Status string }
	require.NoError(t, items[1].Decode(&body))
	assert.Equal(t, "succeeded", body.Status)
}

func TestPutSameKeyReplacesInPlace(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	put(t, s, "result-A", KindResult, `{"v":1}`)
	put(t, s, "result-B", KindResult, `{"v":1}`)
	put(t, s, "result-A", KindResult, `{"v":2}`)
	items, err := s.List()
	require.NoError(t, err)
	assert.Equal(t, []string{"result-A", "result-B"}, keys(items))
	assert.JSONEq(t, `{"v":2}`, string(items[0].Payload))
	assert.Equal(t, 2, s.Len())
}

func TestRemoveIsIdempotent(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	put(t, s, "result-A", KindResult, `{}`)
	_, ok := s.Find("result-A")
	assert.True(t, ok)
	require.NoError(t, s.Remove("result-A"))
	require.NoError(t, s.Remove("result-A"))
	_, ok = s.Find("result-A")
	assert.False(t, ok)
	assert.Equal(t, 0, s.Len())
}

func TestFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := Open(dir)
	require.NoError(t, err)
	put(t, s, "result-A", KindResult, `{}`)
	fi, err := os.Stat(filepath.Join(dir, "result-A.json"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
}

func TestRejectsUnsafeKeys(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	for _, k := range []string{"", "../escape", "a/b", ".hidden"} {
		assert.Error(t, s.Put(Item{Key: k, Payload: json.RawMessage(`{}`)}), k)
	}
}

func TestForeignFilesAreSkipped(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	require.NoError(t, err)
	put(t, s, "result-A", KindResult, `{}`)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk.json"), []byte("not json"), 0o600))
	items, err := s.List()
	require.NoError(t, err)
	assert.Equal(t, []string{"result-A"}, keys(items))
}
