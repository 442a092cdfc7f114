package daemon

import (
	"context"
	"sync"
)

// slots bound how many tasks run at once. The poller takes slots before it receives, so it never
// asks the queue for more messages than it can run; each message's handler gives its slot back.
// The limit may be lowered (and raised again) while tasks run: running tasks go on, and no new
// slot is handed out until the count is under the new limit.
type slots struct {
	mu      sync.Mutex
	limit   int
	taken   int
	changed chan struct{}
}

func newSlots(limit int) *slots {
	return &slots{limit: max(limit, 1), changed: make(chan struct{}, 1)}
}

// acquire takes up to n free slots and returns how many it took.
func (s *slots) acquire(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := min(n, s.limit-s.taken)
	if k <= 0 {
		return 0
	}
	s.taken += k
	return k
}

// release gives n slots back.
func (s *slots) release(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.taken -= n
	s.mu.Unlock()
	s.notify()
}

func (s *slots) setLimit(limit int) {
	s.mu.Lock()
	changed := s.limit != max(limit, 1)
	s.limit = max(limit, 1)
	s.mu.Unlock()
	if changed {
		s.notify()
	}
}

func (s *slots) used() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken
}

func (s *slots) max() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit
}

func (s *slots) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// wait returns when a slot may have become free or ctx ended.
func (s *slots) wait(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-s.changed:
	}
}
