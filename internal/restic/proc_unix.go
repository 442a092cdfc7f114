//go:build unix

package restic

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

// interruptible makes ctx's end send restic SIGINT, as Ctrl-C would: restic then stops its work,
// removes its lock and exits. Only if it has not exited after grace is it killed. restic runs in a
// process group of its own so that a signal meant for the agent (Ctrl-C in a terminal, a service
// manager stopping the agent's group) does not reach restic behind the agent's back: the agent
// decides when restic is interrupted.
func interruptible(cmd *exec.Cmd, grace time.Duration) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = grace
}
