package agenttest

import (
	"testing"

	"github.com/restic-monitor/restic-monitor/internal/testenv/restictest"
)

// WithoutReadOverride runs fn so that the restic it starts obeys file modes even when the tests
// run as root (see restictest.WithoutReadOverride).
func WithoutReadOverride(t testing.TB, fn func()) {
	t.Helper()
	restictest.WithoutReadOverride(t, fn)
}
