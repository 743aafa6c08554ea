#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tests/fuzz/run-fuzz.sh BUILD_DIR SECONDS [TARGET...]
#
# Runs each libFuzzer target BUILD_DIR/fuzz/fuzz_* (built by `make fuzz-build`)
# for SECONDS seconds and prints one TAP line per target:
#   ok - fuzz: fuzz_open: 1234567 executions, 4115 exec/s, corpus 812, rss 310 MiB
# Before fuzzing, every kept reproducer in tests/fuzz/findings/TARGET/ is run
# once (a regression check: it must no longer crash).
#
#   seeds:    BUILD_DIR/fuzz/seeds (tests/fuzz/gen-corpus.py, kernel fixtures from
#             $PCACHE_FIXTURES, default BUILD_DIR/fixtures, when present)
#   corpus:   BUILD_DIR/fuzz/corpus/TARGET (kept between runs)
#   findings: $FUZZ_FINDINGS/TARGET/ (default BUILD_DIR/fuzz/findings): crash-*,
#             timeout-*, oom-*, leak-* inputs, with the log in TARGET.log
# Environment: FUZZ_JOBS (targets run at once, default 1), FUZZ_TIMEOUT (seconds per
# input before it counts as a hang, default 10), FUZZ_RSS_MB (default 2048),
# FUZZ_ARGS (more libFuzzer options), FUZZ_LEDGER (a file: each run appends one line
# `date commit target executions seconds result`, tests/fuzz/ledger.txt keeps the
# project's long runs).
# Exits 1 when a target found something or a kept reproducer still fails.
set -u

[ $# -ge 2 ] || { echo "usage: tests/fuzz/run-fuzz.sh BUILD_DIR SECONDS [TARGET...]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
O=$(cd "$1" && pwd) || exit 2
SECS=$2
shift 2
FZ=$O/fuzz
FINDINGS=${FUZZ_FINDINGS:-$FZ/findings}
JOBS=${FUZZ_JOBS:-1}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS=${FUZZ_RSS_MB:-2048}
export PCACHE_FIXTURES=${PCACHE_FIXTURES:-$O/fixtures}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [ $# -gt 0 ]; then
	targets=("$@")
else
	targets=()
	for f in "$FZ"/fuzz_*; do
		[ -x "$f" ] && [ -f "$f" ] && targets+=("$(basename "$f")")
	done
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "not ok - fuzz: no targets in $FZ (run 'make O=$1 fuzz-build')"
	exit 1
fi

python3 "$ROOT/tests/fuzz/gen-corpus.py" "$FZ/seeds" >/dev/null || {
	echo "not ok - fuzz: seed corpus generation failed"
	exit 1
}
mkdir -p "$FINDINGS"

# regress TARGET: kept reproducers must pass now.
regress() {
	local t=$1 dir=$ROOT/tests/fuzz/findings/$t f out rc=0
	[ -d "$dir" ] || return 0
	for f in "$dir"/*; do
		[ -f "$f" ] || continue
		case "$f" in *.txt | *.log | *.md) continue ;; esac
		out=$(timeout -k 5 $((TIMEOUT * 3)) "$FZ/$t" -timeout="$TIMEOUT" -rss_limit_mb="$RSS" \
			-close_fd_mask=3 "$f" 2>&1)
		if [ $? -ne 0 ]; then
			echo "not ok - fuzz: $t: kept reproducer $(basename "$f") still fails"
			echo "$out" | grep -E "ERROR|SUMMARY|ORACLE|#[0-9]+ 0x" | head -n 12 | sed 's/^/#   /'
			rc=1
		fi
	done
	[ $rc -eq 0 ] && echo "ok - fuzz: $t: kept reproducers pass"
	return $rc
}

# run TARGET: one timed fuzzing session; prints its TAP line.
run() {
	local t=$1 corpus=$FZ/corpus/$1 art=$FINDINGS/$1 log rc execs eps rss n t0 t1
	mkdir -p "$corpus" "$art"
	log=$art/$t.log
	t0=$(date +%s)
	timeout -k 10 $((SECS + TIMEOUT * 3 + 60)) "$FZ/$t" -max_total_time="$SECS" \
		-timeout="$TIMEOUT" -rss_limit_mb="$RSS" -print_final_stats=1 -close_fd_mask=3 \
		-dict="$ROOT/tests/fuzz/pcache.dict" -artifact_prefix="$art/" ${FUZZ_ARGS:-} \
		"$corpus" "$FZ/seeds" >"$log" 2>&1
	rc=$?
	t1=$(date +%s)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
	n=$(find "$corpus" -type f | wc -l)
	if [ -n "${FUZZ_LEDGER:-}" ]; then
		printf '%s %s %s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" \
			"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$t" \
			"${execs:-0}" "$((t1 - t0))" "$([ $rc -eq 0 ] && echo clean || echo "exit-$rc")" \
			>>"$FUZZ_LEDGER"
	fi
	if [ $rc -eq 0 ]; then
		echo "ok - fuzz: $t: ${execs:-?} executions, ${eps:-?} exec/s, corpus $n, rss ${rss:-?} MiB"
	else
		echo "not ok - fuzz: $t: exit $rc after ${execs:-?} executions; see $log"
		grep -E "ERROR: |SUMMARY|ORACLE|Test unit written|#[0-9]+ 0x" "$log" | head -n 20 |
			sed 's/^/#   /'
	fi
	return $rc
}

failed=0
for t in "${targets[@]}"; do
	[ -x "$FZ/$t" ] || { echo "not ok - fuzz: $t: not built"; failed=1; continue; }
	regress "$t" || failed=1
done
running=0
pids=()
for t in "${targets[@]}"; do
	[ -x "$FZ/$t" ] || continue
	run "$t" &
	pids+=($!)
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n || failed=1
		running=$((running - 1))
	fi
done
while [ "$running" -gt 0 ]; do
	wait -n || failed=1
	running=$((running - 1))
done
exit $failed
