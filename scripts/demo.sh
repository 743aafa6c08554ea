#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# scripts/demo.sh [BUILD_DIR]: the pcache tools on an embedded default setup.
# Sparse image files stand in for the devices: a 1 GiB "pmem" cache device and a
# 2 GiB backing device.  Formats the cache, shows its status, dumps its metadata
# and replays its (empty) key log, printing each command line before its output.
# Everything is created in a temporary directory and removed at the end.
set -euo pipefail

O=${1:-build}
PCACHE_BIN=$(cd "$O" && pwd)/pcache
if [ ! -x "$PCACHE_BIN" ]; then
	echo "demo.sh: $PCACHE_BIN is not built (run 'make demo')" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pcache-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# Lets the command lines below read as a person would type them.
pcache() {
	"$PCACHE_BIN" "$@"
}

show() {
	local rc=0
	printf '\n$ %s\n' "$*"
	"$@" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "demo.sh: '$*' failed with exit status $rc" >&2
		exit "$rc"
	fi
}

echo "pcache-tools demo in $work"
show truncate -s 1G pmem.img
show truncate -s 2G backing.img
show ls -ls pmem.img backing.img
show pcache --version
show pcache format --data-crc -y pmem.img
show pcache info pmem.img
show pcache info --json pmem.img
show pcache dump --json --what sb,cache-info,cache-ctrl pmem.img
show pcache replay pmem.img
show ls -ls pmem.img backing.img
echo "(backing.img is the device that 'pcache flush' and 'pcache serve' will use; both are planned)"
printf '\ndemo finished: every command succeeded; %s removed.\n' "$work"
