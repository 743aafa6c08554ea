#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache flush throughput as a ratio of `dd oflag=direct` writing the same number of bytes
# to the same backing file in the same run (target >= 0.9).  The cache image is generated
# by mkimage (random writes of 64 KiB - 1 MiB over 1 GiB) and lives on tmpfs when there is
# one, standing in for pmem; the backing file is on $TMPDIR (a disk), preallocated so that
# neither side pays for block allocation.  Best of 5 rounds each, in alternating order
# (the disk behind a VM is noisy).
# usage: bench/bench_flush.sh BUILD_DIR [WRITES]
set -euo pipefail
O=${1:-build}
WRITES=${2:-1500}
PCACHE="$O/pcache"
MKIMAGE="$O/tests/mkimage"

disk=$(mktemp -d "${TMPDIR:-/tmp}/bench_flush.XXXXXX")
if [ -w /dev/shm ]; then mem=$(mktemp -d /dev/shm/bench_flush.XXXXXX); else mem=$disk; fi
trap 'rm -rf "$disk" "$mem"' EXIT

"$MKIMAGE" --quiet --size 2G --writes "$WRITES" --range 1G --min-len 64K --max-len 1M \
	--align 4096 --flush-every 16 "$mem/gen.pmem"
back="$disk/back.img"
fallocate -l 1G "$back" 2>/dev/null || dd if=/dev/zero of="$back" bs=1M count=1024 status=none
sync

now() { date +%s.%N; }

best_flush=0
best_dd=0
bytes=0
flush_once() {
	cp --sparse=always "$mem/gen.pmem" "$mem/work.pmem"
	t0=$(now)
	out=$("$PCACHE" flush "$mem/work.pmem" "$back" 2>/dev/null)
	t1=$(now)
	bytes=${out%%/*}
	mib=$((bytes / 1048576))
}
dd_once() {
	t2=$(now)
	dd if=/dev/zero of="$back" bs=1M count="$mib" oflag=direct conv=notrunc,fdatasync status=none
	t3=$(now)
}
flush_once   # warm up; also learns the byte count
for round in 1 2 3 4 5; do
	if [ $((round % 2)) -eq 1 ]; then
		flush_once
		dd_once
	else
		dd_once
		flush_once
	fi
	read -r best_flush best_dd < <(python3 - "$bytes" "$mib" "$t0" "$t1" "$t2" "$t3" \
		"$best_flush" "$best_dd" <<'PY'
import sys
b, mib, t0, t1, t2, t3, bf, bd = (float(x) for x in sys.argv[1:])
print(max(bf, b / (t1 - t0)), max(bd, mib * 1048576 / (t3 - t2)))
PY
)
done
python3 - "$bytes" "$best_flush" "$best_dd" <<'PY'
import sys
b, f, d = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
M = 1048576
print(f"flush: {b} bytes written back at {f / M:.0f} MiB/s; dd oflag=direct, same bytes, same "
      f"file: {d / M:.0f} MiB/s; ratio {f / d:.2f}")
PY
