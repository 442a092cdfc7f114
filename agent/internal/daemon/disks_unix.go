//go:build unix

package daemon

import (
	"syscall"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// disks reports the space of the file systems holding / and the agent's state directory (where
// the spool and restic's cache usually live).
func disks(stateDir string) []domain.Disk {
	var out []domain.Disk
	seen := map[uint64]bool{}
	for _, mount := range []string{"/", stateDir} {
		var st syscall.Statfs_t
		if mount == "" || syscall.Statfs(mount, &st) != nil {
			continue
		}
		var stat syscall.Stat_t
		if syscall.Stat(mount, &stat) == nil {
			dev := uint64(stat.Dev)
			if seen[dev] {
				continue
			}
			seen[dev] = true
		}
		bs := uint64(st.Bsize)
		total, free := st.Blocks*bs, st.Bavail*bs
		out = append(out, domain.Disk{Mount: mount, FreeBytes: min(free, total), TotalBytes: total})
	}
	return out
}
