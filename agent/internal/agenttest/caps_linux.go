package agenttest

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
)

const (
	prCapBSetDrop    = 24 // PR_CAPBSET_DROP
	capDACOverride   = 1  // CAP_DAC_OVERRIDE
	capDACReadSearch = 2  // CAP_DAC_READ_SEARCH
)

// WithoutReadOverride runs fn so that the processes it starts obey file modes even when the
// tests run as root, as internal/restic's tests do: fn runs on an OS thread that dropped
// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its bounding set, and a child started from that
// thread starts without them. The thread is never unlocked, so it ends with the goroutine.
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
		if Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}
