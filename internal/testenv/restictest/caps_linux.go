package restictest

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

const (
	prCapBSetDrop    = 24 // PR_CAPBSET_DROP
	capDACOverride   = 1  // CAP_DAC_OVERRIDE
	capDACReadSearch = 2  // CAP_DAC_READ_SEARCH
)

// WithoutReadOverride runs fn so that the processes it starts obey file modes even when the
// tests run as root. Root reads a mode-000 file through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH;
// fn runs on an OS thread that dropped both from its capability bounding set, and a child started
// from that thread (exec.Cmd.Start runs on the calling goroutine's thread) starts without them.
// The thread is never unlocked, so it ends with the goroutine instead of returning to the pool.
func WithoutReadOverride(t testing.TB, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		fn()
		return
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		for _, c := range []uintptr{capDACOverride, capDACReadSearch} {
			if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prCapBSetDrop, c, 0); errno != 0 {
				errc <- fmt.Errorf("drop capability %d from the bounding set: %w", c, errno)
				return
			}
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		msg := "cannot make restic unable to read files as root: " + err.Error()
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}
