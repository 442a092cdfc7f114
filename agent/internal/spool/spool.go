// Package spool is the agent's durable outbox: what the API must receive (task results, log
// chunks) is written here when it cannot be delivered at once, and stays until it was. Each item
// is one file, written atomically and synced, named by a key that makes writing the same thing
// twice harmless. Items are listed in the order they were first written, across restarts.
package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/atomicfile"
)

// Kinds of items.
const (
	KindResult = "result"
	KindLog    = "log"
)

// Item is one thing waiting for delivery.
type Item struct {
	// Key names the item; putting an item with the same key replaces it.
	Key       string          `json:"key"`
	Kind      string          `json:"kind"`
	TaskID    string          `json:"taskId,omitempty"`
	RunID     string          `json:"runId,omitempty"`
	Seq       uint64          `json:"seq"`
	CreatedAt time.Time       `json:"createdAt"`
	Payload   json.RawMessage `json:"payload"`
}

// Decode reads the item's payload into v.
func (it Item) Decode(v any) error {
	if err := json.Unmarshal(it.Payload, v); err != nil {
		return fmt.Errorf("spool item %s: %w", it.Key, err)
	}
	return nil
}

// Spool is a directory of items. It is safe for concurrent use within one process; one
// directory belongs to one agent process.
type Spool struct {
	dir string
	now func() time.Time

	mu  sync.Mutex
	seq uint64
}

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$`)

const suffix = ".json"

// Open opens (creating, mode 0700) the spool in dir. Temporary files a crash left behind are
// removed; complete items are kept.
func Open(dir string) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{dir: dir, now: time.Now}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	items, err := s.List()
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		s.seq = max(s.seq, it.Seq)
	}
	return s, nil
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Put writes an item durably: when Put returns nil, the item survives a crash or power loss.
// An item already spooled under the same key is replaced but keeps its place in the order.
func (s *Spool) Put(it Item) error {
	if !keyPattern.MatchString(it.Key) {
		return fmt.Errorf("spool: invalid key %q", it.Key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, err := s.read(it.Key + suffix); err == nil {
		it.Seq, it.CreatedAt = old.Seq, old.CreatedAt
	} else {
		s.seq++
		it.Seq, it.CreatedAt = s.seq, s.now().UTC()
	}
	raw, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("spool %s: %w", it.Key, err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, it.Key+suffix), raw, 0o600); err != nil {
		return fmt.Errorf("spool %s: %w", it.Key, err)
	}
	return nil
}

// List returns every item, oldest first. A file that cannot be read as an item is skipped
// (and reported in the error only when nothing else could be read).
func (s *Spool) List() ([]Item, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list spool: %w", err)
	}
	var items []Item
	var bad []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, suffix) {
			continue
		}
		it, err := s.read(name)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b Item) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	if len(items) == 0 && len(bad) > 0 {
		return nil, errors.Join(bad...)
	}
	return items, nil
}

func (s *Spool) read(name string) (Item, error) {
	raw, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return Item{}, err
	}
	var it Item
	if err := json.Unmarshal(raw, &it); err != nil || it.Key+suffix != name {
		return Item{}, fmt.Errorf("spool: %s is not a spool item", name)
	}
	return it, nil
}

// Find returns the item with key, if it is spooled.
func (s *Spool) Find(key string) (Item, bool) {
	if !keyPattern.MatchString(key) {
		return Item{}, false
	}
	it, err := s.read(key + suffix)
	return it, err == nil
}

// Remove deletes the item with key once it was delivered. Removing an item that is not there
// is not an error, so a delivery may be confirmed twice.
func (s *Spool) Remove(key string) error {
	if !keyPattern.MatchString(key) {
		return fmt.Errorf("spool: invalid key %q", key)
	}
	err := os.Remove(filepath.Join(s.dir, key+suffix))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool remove %s: %w", key, err)
	}
	return atomicfile.SyncDir(s.dir)
}

// Len is the number of spooled items.
func (s *Spool) Len() int {
	items, _ := s.List()
	return len(items)
}

// ResultKey is the key of a task's result.
func ResultKey(taskID string) string { return KindResult + "-" + taskID }

// LogKey is the key of a run's log chunk.
func LogKey(runID string, seq int64) string { return fmt.Sprintf("%s-%s-%010d", KindLog, runID, seq) }
