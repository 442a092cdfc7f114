// Package restictest gives tests that run the real restic what they need around it: the binary,
// and a way to make restic obey file modes when the tests run as root. It is imported only by
// tests: internal/restic's and the agent's.
package restictest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// Binary returns the real restic: RESTIC_BIN (make test sets it), else bin/restic under the
// module root. Without one the test fails under CI=true or RM_REQUIRE_AWS=1 and is skipped
// elsewhere; -short skips it too.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real restic; run without -short")
	}
	bin := os.Getenv("RESTIC_BIN")
	if bin == "" {
		if root, ok := ModuleRoot(); ok {
			bin = filepath.Join(root, "bin", "restic")
		}
	}
	if bin != "" {
		if fi, err := os.Stat(bin); err == nil && !fi.IsDir() {
			return bin
		}
	}
	msg := "restic binary not found (RESTIC_BIN or bin/restic): run `make restic`"
	if testenv.Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// ModuleRoot is the directory holding go.mod, found from the working directory up.
func ModuleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}
