#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# bench/run-bench.sh [BUILD_DIR]: runs every BUILD_DIR/bench/bench_* program and every
# bench/bench_*.sh script (given BUILD_DIR), and prints
# its output.  Each benchmark prints ratios against bounds it measures in the same run
# (e.g. a plain memory read), so the numbers compare across machines.  Exits 1 when a
# benchmark fails.
set -u

O=${1:-build}
n=0
bad=0
here=$(cd "$(dirname "$0")" && pwd)
for b in "$O"/bench/bench_* "$here"/bench_*.sh; do
	[ -f "$b" ] && [ -x "$b" ] || continue
	case "$b" in *.d|*.o) continue ;; esac
	n=$((n + 1))
	printf '\n# ==== %s ====\n' "$(basename "$b")"
	case "$b" in
	*.sh) "$b" "$O" </dev/null ;;
	*) "$b" </dev/null ;;
	esac
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "# $(basename "$b") exited with status $rc"
		bad=$((bad + 1))
	fi
done
if [ "$n" -eq 0 ]; then
	echo "run-bench.sh: no bench_* programs in $O/bench (was the tree built?)" >&2
	exit 1
fi
printf '\n# %d benchmarks, %d failed\n' "$n" "$bad"
[ "$bad" -eq 0 ]
