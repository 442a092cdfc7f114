package restic

import (
	"os/exec"
	"strconv"
)

// priorityWrapper returns the ionice and nice commands that lower restic's priority, each only
// when asked for and installed. Both exec restic in place, so restic keeps their process ID and
// receives signals directly.
func priorityWrapper(nice int, class IOClass, level int) []string {
	var argv []string
	if class != IODefault {
		if ionice, err := exec.LookPath("ionice"); err == nil {
			if class == IOIdle {
				argv = append(argv, ionice, "-c", "3")
			} else {
				argv = append(argv, ionice, "-c", "2", "-n", strconv.Itoa(level))
			}
		}
	}
	if nice > 0 {
		if n, err := exec.LookPath("nice"); err == nil {
			argv = append(argv, n, "-n", strconv.Itoa(nice))
		}
	}
	return argv
}
