#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Fuzz executions per second of each libFuzzer target (tests/fuzz), in short runs from the
# seed corpus alone (a fresh corpus each time, so runs compare), one target at a time.
# Builds the targets first (`make fuzz-build`, clang-14) when they are missing; without
# clang-14 it says so and skips.
# usage: bench/bench_fuzz.sh BUILD_DIR [SECONDS]   (default 15 s per target)
set -u
O=${1:-build}
SECS=${2:-${BENCH_FUZZ_SECONDS:-15}}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$O" && O=$(cd "$O" && pwd)
FZ=$O/fuzz

if ! ls "$FZ"/fuzz_* >/dev/null 2>&1; then
	if ! command -v "${FUZZ_CC:-clang-14}" >/dev/null 2>&1; then
		echo "# bench_fuzz: ${FUZZ_CC:-clang-14} not installed: skipped"
		exit 0
	fi
	make -C "$ROOT" --no-print-directory O="$O" fuzz-build >/dev/null 2>&1 || {
		echo "# bench_fuzz: make fuzz-build failed"
		exit 1
	}
fi
python3 "$ROOT/tests/fuzz/gen-corpus.py" "$FZ/seeds" >/dev/null || exit 1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench_fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

printf '# %-12s %12s %12s %10s %8s\n' target executions exec/s us/exec rss_MiB
bad=0
for bin in "$FZ"/fuzz_*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	t=$(basename "$bin")
	mkdir -p "$tmp/$t"
	"$bin" -max_total_time="$SECS" -timeout=10 -print_final_stats=1 -close_fd_mask=3 \
		-dict="$ROOT/tests/fuzz/pcache.dict" -artifact_prefix="$tmp/" "$tmp/$t" "$FZ/seeds" \
		>"$tmp/$t.log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t.log" | tail -n 1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$tmp/$t.log" | tail -n 1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$tmp/$t.log" | tail -n 1)
	us=$(awk -v e="${eps:-0}" 'BEGIN { if (e > 0) printf "%.0f", 1e6 / e; else print "?" }')
	printf '%-14s %12s %12s %10s %8s\n' "$t" "${execs:-?}" "${eps:-?}" "$us" "${rss:-?}"
	if [ "$rc" -ne 0 ]; then
		echo "# $t: exit $rc (a finding?): $(grep -m1 -E 'ERROR|ORACLE' "$tmp/$t.log")"
		bad=1
	fi
done
exit $bad
