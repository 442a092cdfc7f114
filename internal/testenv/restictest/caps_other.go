//go:build unix && !linux

package restictest

import (
	"os"
	"testing"
)

// WithoutReadOverride runs fn; only Linux can take root's power to read any file away, so the
// test needs a normal user elsewhere.
func WithoutReadOverride(t testing.TB, fn func()) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Skip("as root restic reads mode-000 files; run as a normal user")
	}
	fn()
}
