package config

import (
	"os"
	"path/filepath"
	"runtime"
)

// Paths are where the agent keeps its files by default on one platform.
type Paths struct {
	Config      string
	Credentials string
	State       string
	Cache       string
	// Binary is where install puts the agent's binary.
	Binary string
}

// EnvConfig names the variable that overrides the configuration file's default path.
const EnvConfig = "RM_AGENT_CONFIG"

// DefaultPaths returns the paths of the running platform.
func DefaultPaths() Paths { return PathsFor(runtime.GOOS) }

// PathsFor returns the usual places on goos: /etc, /var/lib and /var/cache on Linux (and other
// Unix systems), /Library on macOS.
func PathsFor(goos string) Paths {
	if goos == "darwin" {
		const base = "/Library/Application Support/restic-monitor"
		return Paths{
			Config:      filepath.Join(base, "agent.yaml"),
			Credentials: filepath.Join(base, "credentials.json"),
			State:       filepath.Join(base, "state"),
			Cache:       "/Library/Caches/restic-monitor",
			Binary:      "/usr/local/bin/restic-monitor-agent",
		}
	}
	return Paths{
		Config:      "/etc/restic-monitor/agent.yaml",
		Credentials: "/etc/restic-monitor/credentials.json",
		State:       "/var/lib/restic-monitor",
		Cache:       "/var/cache/restic-monitor",
		Binary:      "/usr/local/bin/restic-monitor-agent",
	}
}

// DefaultConfigPath is RM_AGENT_CONFIG when set, else the platform's configuration path.
func DefaultConfigPath() string {
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	return DefaultPaths().Config
}
