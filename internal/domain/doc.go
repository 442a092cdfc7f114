// Package domain owns restic-monitor's vocabulary: tenants, credentials, agents, repositories,
// policies and their assignments, tasks, runs, log chunks and snapshots, the rules that make each
// of them valid, and the errors every other package speaks in. It imports nothing from AWS.
package domain
