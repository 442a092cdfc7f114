#!/usr/bin/env bash
# Agent benchmark (issue 5): binary sizes, idle RSS and CPU over 60 s of empty long polls, and
# the wall time of a 1 GiB backup run by the agent against the same restic backup run directly,
# and snapshot browsing: the ls task of a 100,000-file snapshot, its stored bytes, tree page latency.
# Prints the figures docs/benchmarks.md records. Run from anywhere:
#   agent/bench/run.sh                  # the full measurement
#   RM_BENCH_TREE_MIB=128 RM_BENCH_IDLE_SECONDS=10 agent/bench/run.sh   # a quick look
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

make --no-print-directory agent restic emulator >/dev/null
echo "== binary size (make agent: CGO_ENABLED=0, -trimpath, -s -w)"
for f in bin/agent/*/restic-monitor-agent; do
  platform=$(basename "$(dirname "$f")")
  size=$(stat -c %s "$f")
  awk -v p="$platform" -v s="$size" 'BEGIN { printf "%-14s %6.1f MiB (%d bytes)\n", p, s / 1048576, s }'
done

echo "== idle, backup and listing"
export RESTIC_BIN=$root/bin/restic
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
scripts/with-emulator go test -count=1 -run '^$' -bench . -benchtime 1x -timeout 60m ./agent/bench/ >"$out" 2>&1 || status=$?
grep -Ev '^(goos|goarch|pkg|cpu|PASS|ok|SDK)' "$out" || true
exit "$status"
