package config

import (
	"fmt"
	"strconv"
)

// Skeleton is the configuration enroll writes when there is none yet: the API URL and the
// platform's paths, every other setting at its default, and a commented example repository.
func Skeleton(apiURL string, p Paths) []byte {
	return fmt.Appendf(nil, `# restic-monitor agent configuration. Reference: agent/README.md.
apiUrl: %s
credentialsFile: %s
stateDir: %s

restic:
  binary: restic
  cacheDir: %s

limits:
  maxConcurrentTasks: %d
  # uploadKbps: 0       # KiB/s, 0 is unlimited
  # downloadKbps: 0
  # cpuQuotaPercent: 50 # share of the machine's CPUs restic may use
  # nice: 10
  # ioClass: idle

# heartbeatInterval: 1m
# shutdownGrace: 30s
# logLevel: info
# metricsListen: 127.0.0.1:9464

# Repositories the control plane's policies may name. Passwords and backend credentials stay on
# this host: they are never sent to the control plane.
repositories: []
#  - name: main
#    repository: /srv/restic/main
#    passwordFile: /etc/restic-monitor/main.password
#    initialize: true
#  - name: offsite
#    repository: s3:s3.amazonaws.com/example-backups
#    passwordCommand: pass show restic/offsite
#    env:
#      AWS_ACCESS_KEY_ID: AKIA...
#      AWS_SECRET_ACCESS_KEY: ...

# Directories a restore task may name as its target (symlinks resolved; the target must be
# missing or empty). Empty: a restore goes into a new temporary directory the agent creates.
restoreRoots: []
#  - /srv/restore
`, strconv.Quote(apiURL), strconv.Quote(p.Credentials), strconv.Quote(p.State), strconv.Quote(p.Cache), DefaultMaxConcurrentTasks)
}
