#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache dump --json throughput (keys per second) on a large synthetic log, and
# its peak memory on a log 100 times shorter: streaming means no growth.
# usage: bench/bench_dump.sh BUILD_DIR [KEYS]
set -euo pipefail
O=${1:-build}
KEYS=${2:-1000000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mk() {
	"$O/tests/mkimage" --quiet --size "$3" --writes "$2" --min-len 512 --max-len 512 \
		--align 512 --range 4G "$tmp/$1"
}
mk big.img "$KEYS" 2G
mk small.img $((KEYS / 100)) 1G
run() {
	python3 - "$O/pcache" "$tmp/$1" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run([sys.argv[1], "dump", "--json", "--what", "ksets,keys", sys.argv[2]],
               stdout=subprocess.DEVNULL, check=True)
t = time.monotonic() - t
print(f"{t:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
}
read -r t_big rss_big < <(run big.img)
read -r t_small rss_small < <(run small.img)
python3 - "$KEYS" "$t_big" "$rss_big" "$rss_small" <<'PY'
import sys
keys, t, big, small = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"dump --json: {keys} keys in {t:.2f} s: {keys / t / 1e6:.2f} M keys/s")
print(f"dump --json: peak RSS {big} KiB for {keys} keys vs {small} KiB for {keys // 100} keys;"
      f" ratio {big / small:.2f} (streaming: ~1.0)")
PY
