#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache fsck (pcache-fsck(8)): -n never writes, -p fixes only the safe problems, -y fixes
# everything fixable, the exit codes of each mode, --undo only with a repair, and the
# interactive mode on a pseudo-terminal (tests/tools/pty-run.py): y, n, a, q and the end of
# input.  The images are copies of the dirty kernel fixture damaged with build/tests/corrupt.

load helpers

CORRUPT="$PCACHE_BUILD/tests/corrupt"
PTY="$REPO_ROOT/tests/tools/pty-run.py"

# Three damages, three fixes: two safe (replicas), one not (the log).
DAMAGE=(ci-replica0-crc tail-key-replica-crc kset-crc)
ALL_CODES=CI_REPLICA_BAD,LOG_END_CORRUPT,LOG_LOST_KSETS,TAIL_REPLICA_BAD
# The questions the interactive mode asks about them, in order (doc/man/pcache-fsck.8).
P1="CI_REPLICA_BAD at cache_info replica 0: checksum mismatch; the kernel uses replica 1 (seq 1)."
Q1="Fix: rewrite replica 0 of cache_info replica 0 from replica 1 (seq 1 -> 2)? [y/n/a/q] "
P2="TAIL_REPLICA_BAD at key_tail replica 0: checksum mismatch; the kernel uses replica 1 (seq 2)."
Q2="Fix: rewrite replica 0 of key_tail replica 0 from replica 1 (seq 2 -> 3)? [y/n/a/q] "
P3="LOG_END_CORRUPT at kset 0:10288: kset checksum mismatch."
Q3="Fix: log from 0:10288: end the log there; 0 keys dropped, 1 corrupt kset skipped; 13 valid ksets behind the damage dropped, as the kernel drops them? [y/n/a/q] "


# state FILE: its imgsum and its modification time (a write of the same bytes shows too).
state() {
	echo "$(imgsum "$1") $(stat -c %y "$1")"
}


# codes IMG: the problem codes fsck -n finds on IMG, sorted, comma separated ("" when clean).
codes() {
	"$PCACHE" fsck -n --json "$1" |
		python3 -c 'import json, sys
print(",".join(sorted({p["code"] for p in json.load(sys.stdin)[0]["problems"]})))'
}

assert_codes() {
	local got
	got=$(codes "$1")
	[ "$got" = "$2" ] || die "$1: problems '$got', expected '$2'"
}

# last_line: the last line of the last run's stdout.
last_line() {
	echo "${output##*$'\n'}"
}

# asked LINE...: the questions in the last run's transcript (each problem line and its Fix:
# line with the answer echoed) are exactly LINE...
asked() {
	local want got
	want=$(printf '%s\n' "$@")
	got=$(grep -E '^(Fix: |[A-Z_]+ at )' <<<"$output")
	[ "$got" = "$want" ] || die "questions:"$'\n'"$got"$'\n'"expected:"$'\n'"$want"
}

# pty ANSWER... -- ARGS: pcache ARGS on a pseudo-terminal, answering each question.
pty() {
	python3 "$PTY" "$@"
}

@test "-n never writes: damaged images keep their bytes and mtime, exit 4, each problem found" {
	for c in ci-replica0-crc:CI_REPLICA_BAD kset-crc:LOG_END_CORRUPT,LOG_LOST_KSETS \
		chain-no-next:CHAIN_NO_NEXT dirty-tail-off-log:DIRTY_TAIL_OFF_LOG \
		tail-key-both-crc:TAIL_BOTH_BAD; do
		img=$(damaged "${c%%:*}.pmem" "${c%%:*}")
		before=$(state "$img")
		run --separate-stderr pcache fsck -n "$img"
		[ "$status" -eq 4 ] || die "${c%%:*}: exit $status: $output $stderr"
		codes_want=${c#*:}
		for code in ${codes_want//,/ }; do
			assert_contains "$output" "$code at "
		done
		run --separate-stderr pcache fsck -n --json "$img"
		[ "$status" -eq 4 ] || die "${c%%:*}: --json exit $status"
		[ "$(state "$img")" = "$before" ] || die "${c%%:*}: fsck -n wrote to the image"
		[ "$(codes "$img")" = "${c#*:}" ] || die "${c%%:*}: codes $(codes "$img")"
		rm -f "$img"
	done
	# a key's data checksum: checked by default (as the kernel does at load), skipped
	# with --no-verify-data, and still nothing written (md5)
	img=$(damaged data.pmem key-data-crc)
	before=$(md5 "$img")
	run --separate-stderr pcache fsck -n --no-verify-data "$img"
	assert_status 0
	run --separate-stderr pcache fsck -n "$img"
	assert_status 4
	assert_contains "$output" "error: KEY_DATA_CRC at "
	[ "$(md5 "$img")" = "$before" ] || die "fsck -n wrote to the image"
}

@test "without a terminal, fsck with no mode is -n: the same report and exit, nothing written" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	before=$(state "$img")
	run --separate-stderr pcache fsck -n "$img"
	assert_status 4
	checked=$output
	grep -qxF "$img: 4 problems (1 critical, 1 error, 0 warnings, 2 notes); the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" <<<"$output" ||
		die "-n: '$output'"
	run --separate-stderr pcache fsck "$img" </dev/null
	assert_status 4
	[ "$output" = "$checked" ] || die "no mode: '$output'"
	# standard input a terminal, standard output not: no question (pty-run fails on one)
	run --separate-stderr pty -- sh -c 'exec "$0" fsck "$1" >"$2"' "$PCACHE" "$img" "$BATS_TEST_TMPDIR/out"
	assert_status 4
	[ "$(cat "$BATS_TEST_TMPDIR/out")" = "$checked" ] || die "stdout a file: $(cat "$BATS_TEST_TMPDIR/out")"
	# standard output a terminal, standard input not
	run --separate-stderr pty -- sh -c 'exec "$0" fsck "$1" </dev/null' "$PCACHE" "$img"
	assert_status 4
	[ "$output" = "$checked" ] || die "stdin not a terminal: '$output'"
	[ "$(state "$img")" = "$before" ] || die "the image was written"
}

@test "-p fixes only the safe problems (exit 5); then -p has nothing safe left (exit 4, nothing written)" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	run --separate-stderr pcache fsck -p "$img"
	assert_status 5
	fixed=$(grep '^fixed: ' <<<"$output")
	[ "$fixed" = "fixed: CI_REPLICA_BAD at cache_info replica 0: rewrite replica 0 of cache_info replica 0 from replica 1 (seq 1 -> 2)
fixed: TAIL_REPLICA_BAD at key_tail replica 0: rewrite replica 0 of key_tail replica 0 from replica 1 (seq 2 -> 3)" ] ||
		die "fixed: '$fixed'"
	[ "$(last_line)" = "$img: 4 problems found, 2 changes made; 2 problems remain; the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" ] ||
		die "-p: '$(last_line)'"
	assert_codes "$img" LOG_END_CORRUPT,LOG_LOST_KSETS
	before=$(state "$img")
	run --separate-stderr pcache fsck -p --undo "$BATS_TEST_TMPDIR/p.undo" "$img"
	assert_status 4
	! grep -q '^fixed: ' <<<"$output" || die "second -p fixed something: $output"
	[ "$(state "$img")" = "$before" ] || die "the second -p wrote to the image"
	[ ! -e "$BATS_TEST_TMPDIR/p.undo" ] || die "an undo file was created with nothing to fix"
	run --separate-stderr pcache fsck -y "$img"
	assert_status 1
	assert_codes "$img" ""
}

@test "-y fixes each kind of damage and the next -n is clean; -y on a clean image writes nothing" {
	for c in kset-crc:1 chain-no-next:1 dirty-tail-off-log:1 seginfo-both-crc:2 "${DAMAGE[*]}:3"; do
		img=$(damaged img.pmem ${c%%:*})
		run --separate-stderr pcache fsck -y "$img"
		[ "$status" -eq 1 ] || die "${c%%:*}: -y exit $status: $output $stderr"
		[[ "$(last_line)" == "$img: "*" found, ${c#*:} change"*" made; 0 problems remain; the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" ]] ||
			die "${c%%:*}: '$(last_line)'"
		run --separate-stderr pcache fsck -n "$img"
		[ "$status" -eq 0 ] || die "${c%%:*}: -n after -y exit $status: $output"
		[ "$(last_line)" = "$img: clean: no problems found; the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" ] ||
			die "${c%%:*}: '$(last_line)'"
		rm -f "$img"
	done
	img=$(fixture_copy "$FX_DIRTY")
	before=$(state "$img")
	run --separate-stderr pcache fsck -y --undo "$BATS_TEST_TMPDIR/clean.undo" "$img"
	assert_status 0
	[ "$(last_line)" = "$img: 0 problems found, 0 changes made; 0 problems remain; the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" ] ||
		die "clean -y: '$(last_line)'"
	[ "$(state "$img")" = "$before" ] || die "-y wrote to a clean image"
	[ ! -e "$BATS_TEST_TMPDIR/clean.undo" ] || die "an undo file was created with nothing to fix"
}

@test "verdict crashes: a BUG after the load gives way to a later refusal, a BUG in the load does not" {
	# verdict IMG WANT: fsck -n's JSON verdict, its last line and info's health agree on WANT
	verdict() {
		local sentence health got
		case "$2" in
		crashes) sentence="the kernel would crash (BUG) on this cache, in the load or soon after it" health=crashes ;;
		refuses) sentence="the kernel would refuse to load this cache" health=refused ;;
		esac
		run --separate-stderr pcache fsck -n --json "$1"
		assert_status 4
		got=$(python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["kernel_verdict"])' <<<"$output")
		[ "$got" = "$2" ] || die "$1: kernel_verdict $got, expected $2"
		run --separate-stderr pcache fsck -n "$1"
		[[ "$(last_line)" == *"; $sentence" ]] || die "$1: '$(last_line)'"
		run --separate-stderr pcache info --json "$1"
		got=$(python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["health"])' <<<"$output")
		[ "$got" = "$health" ] || die "$1: health $got, expected $health"
	}
	img=$(fixture_copy "$FX_DIRTY" sector.pmem)
	"$CORRUPT" "$img" key-unaligned 2 3 >/dev/null || die "corrupt failed"
	verdict "$img" crashes
	# the kernel loads a key off a sector boundary and BUGs at a read later: a key the load
	# refuses, after it or before it, decides
	"$CORRUPT" "$img" key-seg-range 4 3 >/dev/null || die "corrupt failed"
	verdict "$img" refuses
	img=$(fixture_copy "$FX_DIRTY" sector2.pmem)
	"$CORRUPT" "$img" key-seg-range 2 3 >/dev/null && "$CORRUPT" "$img" key-unaligned 4 3 >/dev/null || die "corrupt failed"
	verdict "$img" refuses
	# an EMPTY key BUGs inside the replay: what comes after it is never read
	img=$(fixture_copy "$FX_DIRTY" empty.pmem)
	"$CORRUPT" "$img" key-empty-flag 2 3 >/dev/null && "$CORRUPT" "$img" key-seg-range 4 3 >/dev/null || die "corrupt failed"
	verdict "$img" crashes
}

@test "exit codes: left unfixable 4, --dry-run 4 and nothing written, not a pcache device 8, usage 16" {
	# a read error in the log (poisoned pmem, through the library's test seam): no repair
	img=$(fixture_copy "$FX_DIRTY" poisoned.pmem)
	before=$(state "$img")
	PCACHE_TEST_POISON=43056:64 run --separate-stderr pcache fsck -y "$img"
	assert_status 4
	[ "$(last_line)" = "$img: 1 problem found, 0 changes made; 1 problem remains; the kernel would refuse to load this cache" ] ||
		die "unfixable: '$(last_line)'"
	[ "$(state "$img")" = "$before" ] || die "-y wrote with nothing fixable"
	# a grown device is a remark, not a problem: exit 0, nothing written
	img=$(damaged grown.pmem sb-grown)
	before=$(state "$img")
	run --separate-stderr pcache fsck -y "$img"
	assert_status 0
	[ "$(state "$img")" = "$before" ] || die "-y wrote for a remark"

	img=$(damaged img.pmem "${DAMAGE[@]}")
	before=$(state "$img")
	run --separate-stderr pcache fsck -y --dry-run --undo "$BATS_TEST_TMPDIR/dry.undo" "$img"
	assert_status 4
	[ "$(grep -c '^would fix: ' <<<"$output")" -eq 3 ] || die "dry run: $output"
	[ "$(last_line)" = "$img: 4 problems found, 3 changes planned (nothing written); 0 problems remain; the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" ] ||
		die "dry run: '$(last_line)'"
	[ "$(state "$img")" = "$before" ] || die "--dry-run wrote to the image"
	[ ! -e "$BATS_TEST_TMPDIR/dry.undo" ] || die "--dry-run created the undo file"

	img=$(damaged nomagic.pmem sb-magic-zero)
	before=$(state "$img")
	run --separate-stderr pcache fsck -n "$img"
	assert_status 8
	assert_error_line fsck "$img"
	[ "$stderr" = "pcache fsck: $img: not a pcache device: no pcache superblock" ] || die "stderr: $stderr"
	run --separate-stderr pcache fsck -y --undo "$BATS_TEST_TMPDIR/nm.undo" "$img"
	assert_status 8
	[ "$stderr" = "pcache fsck: $img: not a pcache device: no pcache superblock: nothing was changed" ] ||
		die "stderr '$stderr'"
	[ "$(state "$img")" = "$before" ] || die "fsck wrote to a device that is not a cache"
	[ ! -e "$BATS_TEST_TMPDIR/nm.undo" ] || die "an undo file was created"

	run --separate-stderr pcache fsck -n -y "$img"
	assert_status 16
	[ "$stderr" = "pcache fsck: -n, -p, -y and --repair exclude each other (try 'pcache fsck --help')" ] || die "stderr '$stderr'"
	run --separate-stderr pcache fsck -y
	assert_status 16
	[ "$stderr" = "pcache fsck: missing DEV (try 'pcache fsck --help')" ] || die "stderr '$stderr'"
}

@test "--undo with -n, or with no mode and no terminal: usage error 16, no file, nothing written" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	before=$(state "$img")
	u="$BATS_TEST_TMPDIR/n.undo"
	run --separate-stderr pcache fsck -n --undo "$u" "$img"
	assert_status 16
	[ "$stderr" = "pcache fsck: --undo, --dry-run and --salvage go with -p, -y, --repair or the interactive mode (try 'pcache fsck --help')" ] ||
		die "stderr '$stderr'"
	assert_no_stdout
	run --separate-stderr pcache fsck --undo "$u" "$img" </dev/null
	assert_status 16
	[ "$stderr" = "pcache fsck: --undo, --dry-run and --salvage go with -p, -y, --repair or the interactive mode (try 'pcache fsck --help')" ] ||
		die "stderr '$stderr'"
	[ ! -e "$u" ] || die "an undo file was created"
	[ "$(state "$img")" = "$before" ] || die "the image was written"
}

@test "interactive: y to each question fixes everything (exit 1); the questions are exact" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	run --separate-stderr pty y y y -- "$PCACHE" fsck "$img"
	assert_status 1
	asked "$P1" "${Q1}y" "$P2" "${Q2}y" "$P3" "${Q3}y"
	[ "$(grep -c '^fixed: ' <<<"$output")" -eq 3 ] || die "fixed: $output"
	[ "$(last_line)" = "$img: 4 problems found, 3 changes made; 0 problems remain; the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" ] ||
		die "'$(last_line)'"
	assert_codes "$img" ""
}

@test "--repair on a terminal asks before each fix, as with no mode (y, n, y: exit 37)" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	run --separate-stderr pty y n y -- "$PCACHE" fsck --repair "$img"
	assert_status 37
	asked "$P1" "${Q1}y" "$P2" "${Q2}n" "$P3" "${Q3}y"
	[ "$(grep -c '^fixed: ' <<<"$output")" -eq 2 ] || die "fixed: $output"
	[[ "$(last_line)" == "$img: 4 problems found, 2 changes made; 1 problem remains; the kernel would load this cache"* ]] ||
		die "'$(last_line)'"
	assert_codes "$img" TAIL_REPLICA_BAD
}

@test "interactive: n to each question leaves everything (exit 36) and writes nothing" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	before=$(state "$img")
	run --separate-stderr pty n n n -- "$PCACHE" fsck "$img"
	assert_status 36
	asked "$P1" "${Q1}n" "$P2" "${Q2}n" "$P3" "${Q3}n"
	[ "$(last_line)" = "$img: 4 problems found, 0 changes made; 4 problems remain; the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" ] ||
		die "'$(last_line)'"
	[ "$(state "$img")" = "$before" ] || die "the image was written"
	assert_codes "$img" "$ALL_CODES"
}

@test "interactive: y, n, y: the declined fix is left, the others made (exit 37)" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	run --separate-stderr pty y n y -- "$PCACHE" fsck "$img"
	assert_status 37
	asked "$P1" "${Q1}y" "$P2" "${Q2}n" "$P3" "${Q3}y"
	assert_codes "$img" TAIL_REPLICA_BAD
}

@test "interactive: a fixes this and every later problem without asking (exit 1, or 37 after an n)" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	run --separate-stderr pty a -- "$PCACHE" fsck "$img"
	assert_status 1
	asked "$P1" "${Q1}a"
	assert_codes "$img" ""
	img=$(damaged img2.pmem "${DAMAGE[@]}")
	run --separate-stderr pty n a -- "$PCACHE" fsck "$img"
	assert_status 37
	asked "$P1" "${Q1}n" "$P2" "${Q2}a"
	assert_codes "$img" CI_REPLICA_BAD
}

@test "interactive: q stops asking; only the fixes accepted before it are written (exit 37, or 36)" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	run --separate-stderr pty y q -- "$PCACHE" fsck "$img"
	assert_status 37
	asked "$P1" "${Q1}y" "$P2" "${Q2}q"
	[ "$(last_line)" = "$img: 4 problems found, 1 change made; 3 problems remain; the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" ] ||
		die "'$(last_line)'"
	assert_codes "$img" LOG_END_CORRUPT,LOG_LOST_KSETS,TAIL_REPLICA_BAD
	img=$(damaged img2.pmem "${DAMAGE[@]}")
	before=$(state "$img")
	run --separate-stderr pty q -- "$PCACHE" fsck --undo "$BATS_TEST_TMPDIR/q.undo" "$img"
	assert_status 36
	asked "$P1" "${Q1}q"
	[ "$(state "$img")" = "$before" ] || die "q at the first question: the image was written"
	[ ! -e "$BATS_TEST_TMPDIR/q.undo" ] || die "q at the first question: an undo file was created"
}

@test "interactive: the end of input counts as q (exit 36, or 37 after a y)" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	before=$(state "$img")
	run --separate-stderr pty EOF -- "$PCACHE" fsck "$img"
	assert_status 36
	asked "$P1" "$Q1"
	[ "$(state "$img")" = "$before" ] || die "the image was written"
	img=$(damaged img2.pmem "${DAMAGE[@]}")
	run --separate-stderr pty y EOF -- "$PCACHE" fsck "$img"
	assert_status 37
	asked "$P1" "${Q1}y" "$P2" "$Q2"
	assert_codes "$img" LOG_END_CORRUPT,LOG_LOST_KSETS,TAIL_REPLICA_BAD
}

@test "interactive: a long answer is one answer, not the start of the next ones" {
	# past the first 15 bytes, "all of them" must not answer the next question with a
	img=$(damaged img.pmem "${DAMAGE[@]}")
	before=$(state "$img")
	run --separate-stderr pty "no, leave it - all of them" n n -- "$PCACHE" fsck "$img"
	assert_status 36
	asked "$P1" "${Q1}no, leave it - all of them" "$P2" "${Q2}n" "$P3" "${Q3}n"
	[ "$(state "$img")" = "$before" ] || die "the image was written"
}

@test "interactive with --undo: the accepted fixes are saved and undone byte for byte" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	before=$(imgsum "$img")
	u="$BATS_TEST_TMPDIR/i.undo"
	run --separate-stderr pty y n y -- "$PCACHE" fsck --undo "$u" "$img"
	assert_status 37
	[ "$(imgsum "$img")" != "$before" ] || die "nothing written"
	run --separate-stderr pcache undo "$u" "$img"
	assert_status 0
	[ "$output" = "$img: 2 ranges restored from $u" ] || die "undo: '$output'"
	[ "$(imgsum "$img")" = "$before" ] || die "undo did not restore the image"
}

@test "-p and -y never ask, even on a terminal" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	run --separate-stderr pty -- "$PCACHE" fsck -p "$img"
	assert_status 5
	! grep -q '^Fix: ' <<<"$output" || die "-p asked: $output"
	run --separate-stderr pty -- "$PCACHE" fsck -y "$img"
	assert_status 1
	! grep -q '^Fix: ' <<<"$output" || die "-y asked: $output"
	assert_codes "$img" ""
}
