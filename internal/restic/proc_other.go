//go:build !unix

package restic

import (
	"os/exec"
	"time"
)

// interruptible stops restic when ctx ends. Without SIGINT, the process is killed and a lock it
// held stays behind until Unlock removes it.
func interruptible(cmd *exec.Cmd, grace time.Duration) {
	cmd.WaitDelay = grace
}
