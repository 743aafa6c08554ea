#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# scripts/demo.sh [BUILD_DIR]: the main job of the pcache tools on an embedded default.
# Sparse image files stand in for the devices: a 1 GiB "pmem" cache device and a 2 GiB
# backing device.  The demo formats a cache, writes 16 MiB through it with the embedded
# engine served by nbdkit (as dm-pcache would), cuts the power (kill -9) after a FLUSH,
# checks the cache offline, writes its dirty data back to the backing device with
# `pcache flush`, and proves the backing device then holds exactly what was written.
# Every command line is shown before its output; everything lives in a temporary
# directory removed at the end.
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
show pcache --version
show pcache format --data-crc -y pmem.img
show pcache info pmem.img

echo
echo "# 16 MiB of data to write through the cache, as an application would"
show dd if=/dev/urandom of=data.bin bs=1M count=16 status=none
show sha256sum data.bin

echo
echo "# serve backing.img through the cache with the embedded engine (nbdkit)"
printf '\n$ pcache serve --socket %s pmem.img backing.img &\n' "$work/nbd.sock"
pcache serve -q --socket "$work/nbd.sock" pmem.img backing.img >uri.txt 2>serve.err &
serve=$!
for _ in $(seq 100); do
	[ -s uri.txt ] && break
	kill -0 "$serve" 2>/dev/null || { cat serve.err >&2; exit 1; }
	sleep 0.1
done
uri=$(head -n 1 uri.txt)
echo "$uri"
show nbdcopy --flush data.bin "$uri"
echo
echo "# power cut: nbdkit dies without closing the cache (nbdcopy's FLUSH made the data durable)"
nbdkit_pid=$(pgrep -f -- "$work/nbd.sock" | grep -vx "$serve" | tr "\n" " " || true)
show kill -9 $nbdkit_pid "$serve"
wait "$serve" 2>/dev/null || true
for _ in $(seq 50); do
	[ -n "$nbdkit_pid" ] && kill -0 "$nbdkit_pid" 2>/dev/null || break
	sleep 0.1
done

echo
echo "# offline: what the kernel would see, a full check, then write back"
show pcache info pmem.img
show pcache fsck -n pmem.img
show pcache flush pmem.img backing.img
show pcache info pmem.img
echo
echo "# the backing device now holds exactly the data written"
show cmp -n 16777216 data.bin backing.img
echo "backing.img[0, 16 MiB) == data.bin"
show pcache dump --json --what sb,cache-info,cache-ctrl pmem.img
printf '\ndemo finished: every command succeeded; %s removed.\n' "$work"
