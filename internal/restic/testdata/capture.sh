#!/usr/bin/env bash
# Records what the real restic prints, for the parser tests in this package.
#
# Usage (from the module root): make restic && internal/restic/testdata/capture.sh
#
# Every case leaves three files next to this script: <case>.stdout.jsonl and <case>.stderr.jsonl
# hold restic's two streams byte for byte (stderr also carries restic's plain-text noise; the
# interrupted backup keeps only its last status lines), and <case>.exit holds the exit code.
# The work directory is fixed so that recorded paths are stable.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
restic=${RESTIC_BIN:-$root/bin/restic}
work=/tmp/rm-restic-capture

[ -x "$restic" ] || { echo "no restic at $restic: run make restic" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work/src/docs" "$work/cache"
printf 'correct horse battery staple\n' >"$work/password"
printf 'not the password\n' >"$work/wrong-password"
printf 'first version\n' >"$work/src/docs/a.txt"
printf 'unchanging\n' >"$work/src/b.txt"

export RESTIC_REPOSITORY=$work/repo
export RESTIC_PASSWORD_FILE=$work/password
export RESTIC_CACHE_DIR=$work/cache
export RESTIC_PROGRESS_FPS=1

# capture NAME COMMAND...: run a command, keeping both streams and the exit code.
capture() {
	local name=$1
	shift
	local code=0
	"$@" >"$here/$name.stdout.jsonl" 2>"$here/$name.stderr.jsonl" || code=$?
	echo "$code" >"$here/$name.exit"
	echo "$name: exit $code"
}

capture version "$restic" --json version
capture init "$restic" --json init
capture backup-first "$restic" --json backup --host capture-host --tag daily "$work/src"
printf 'second version, longer than the first\n' >"$work/src/docs/a.txt"
capture backup-second "$restic" --json backup --host capture-host --tag daily "$work/src"

# Root reads any file whatever its mode, so the unreadable case drops the two capabilities that
# let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the bounding set before restic starts.
printf 'top secret\n' >"$work/src/locked.txt"
mkdir "$work/src/locked-dir"
printf 'hidden\n' >"$work/src/locked-dir/c.txt"
chmod 000 "$work/src/locked.txt" "$work/src/locked-dir"
unprivileged=()
if [ "$(id -u)" = 0 ]; then
	unprivileged=(setpriv --bounding-set=-dac_override,-dac_read_search --inh-caps=-dac_override,-dac_read_search --)
fi
capture backup-unreadable "${unprivileged[@]}" "$restic" --json backup --host capture-host --tag daily "$work/src"
chmod 700 "$work/src/locked-dir"
chmod 600 "$work/src/locked.txt"

capture snapshots "$restic" --json snapshots
capture forget "$restic" --json forget --keep-last 2 --group-by host,paths --host capture-host --tag daily
capture backup-third "$restic" --json backup --host capture-host --tag daily "$work/src"
capture forget-prune "$restic" --json forget --keep-last 1 --prune
capture check "$restic" --json check
capture check-subset "$restic" --json check --read-data-subset 1/2
mkdir "$work/restore"
capture restore "$restic" --json restore latest --target "$work/restore" --include "$work/src/docs" --verify
capture unlock-nothing "$restic" --json unlock

capture wrong-password env RESTIC_PASSWORD_FILE="$work/wrong-password" "$restic" --json snapshots
capture repo-missing env RESTIC_REPOSITORY="$work/no-such-repo" "$restic" --json snapshots

# A stale exclusive lock: restic check is killed with SIGKILL as soon as its lock file exists.
# restic writes the file under a temporary name (…-tmp-…) first; only the renamed file locks.
"$restic" check >/dev/null 2>&1 &
pid=$!
until ls "$work/repo/locks" | grep -qv -- -tmp-; do sleep 0.005; done
kill -KILL "$pid"
wait "$pid" || true
capture backup-locked "$restic" --json backup --host capture-host "$work/src"
capture unlock-stale "$restic" --json unlock

# A damaged pack: flip bytes in the middle of one data pack, then read all data back.
cp -a "$work/repo" "$work/damaged"
pack=$(find "$work/damaged/data" -type f -size +1k | head -n 1)
printf 'XXXXXXXX' | dd of="$pack" bs=1 seek=100 conv=notrunc status=none
capture check-damaged env RESTIC_REPOSITORY="$work/damaged" "$restic" --json check --read-data

# An interrupted backup: SIGINT once restic has reported progress on a tree it cannot finish fast.
mkdir "$work/big"
for i in $(seq 1 32); do head -c 4M /dev/urandom >"$work/big/f$i"; done
RESTIC_PROGRESS_FPS=20 "$restic" --json backup "$work/big" >"$here/backup-interrupted.stdout.jsonl" 2>"$here/backup-interrupted.stderr.jsonl" &
pid=$!
until grep -q '"bytes_done"' "$here/backup-interrupted.stdout.jsonl" 2>/dev/null; do sleep 0.01; done
kill -INT "$pid"
code=0
wait "$pid" || code=$?
echo "$code" >"$here/backup-interrupted.exit"
echo "backup-interrupted: exit $code"
# Keep the recording small: the status lines before the interrupt repeat one shape.
tail -n 3 "$here/backup-interrupted.stdout.jsonl" >"$work/tail" && mv "$work/tail" "$here/backup-interrupted.stdout.jsonl"

rm -rf "$work"
