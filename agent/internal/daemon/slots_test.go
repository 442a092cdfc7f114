package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSlotsNeverHandOutMoreThanTheLimit(t *testing.T) {
	s := newSlots(3)
	assert.Equal(t, 3, s.acquire(10), "no more than the limit")
	assert.Equal(t, 0, s.acquire(1))
	s.release(1)
	assert.Equal(t, 1, s.acquire(10))

	// Lowering the limit below what runs takes nothing away, and hands out nothing new until
	// enough has finished.
	s.setLimit(1)
	s.release(1)
	assert.Equal(t, 0, s.acquire(1), "two still run, the limit is one")
	s.release(2)
	assert.Equal(t, 1, s.acquire(5))
	assert.Equal(t, 1, s.used())

	s.setLimit(0)
	assert.Equal(t, 1, s.max(), "a limit is at least one")
}

func TestSlotsWaitWakesOnRelease(t *testing.T) {
	s := newSlots(1)
	assert.Equal(t, 1, s.acquire(1))
	woke := make(chan struct{})
	go func() {
		s.wait(context.Background())
		close(woke)
	}()
	s.release(1)
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return after a release")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.wait(ctx) // returns at once for an ended context
}

func TestRejectDelayGrowsAndIsCapped(t *testing.T) {
	assert.Equal(t, time.Second, rejectDelay(0))
	assert.Equal(t, time.Second, rejectDelay(1))
	assert.Equal(t, 4*time.Second, rejectDelay(4))
	assert.Equal(t, 5*time.Minute, rejectDelay(10_000))
}
