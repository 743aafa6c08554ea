#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache flush: offline writeback of the kernel fixture and of generated images, dry runs,
# refusals, failing ranges, and kill -9 at random points followed by a second flush.

load helpers

MKIMAGE="$PCACHE_BUILD/tests/mkimage"

# The dirty kernel fixture and its backing device, writable sparse copies.
setup_kernel_pair() {
	CACHE=$(fixture_copy "$FX_DIRTY") || return 1
	BACK=$(fixture_copy kernel-dirty-300w.back) || return 1
}

# last_line TEXT: the last line of TEXT.
last_line() {
	printf '%s\n' "$1" | tail -n 1
}

@test "flush of the kernel fixture: backing = what the kernel served, cache clean" {
	setup_kernel_pair
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	[ "$(last_line "$output")" = "7.18 MiB (7532544 bytes) written back" ] ||
		die "last line: '$output'"
	assert_contains "$stderr" "7.18 MiB (7532544 bytes) of dirty data in 16 ksets"
	[ "$(md5 "$BACK")" = "$MD5_DIRTY_LOGICAL" ] || die "backing md5 $(md5 "$BACK")"
	run --separate-stderr pcache info "$CACHE"
	assert_status 0
	assert_field dirty_bytes "0 bytes"
	assert_field key_head 0:76784
	assert_field dirty_tail 0:76784
	assert_field key_tail 0:0
	assert_field health ok
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
	# a second flush has nothing left to do
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	[ "$output" = "0 bytes written back" ] || die "second flush: '$output'"
	[ "$(md5 "$BACK")" = "$MD5_DIRTY_LOGICAL" ] || die "backing changed by the second flush"
}

@test "flush --batch 1 (one backing flush per kset, as the kernel) gives the same backing" {
	setup_kernel_pair
	run --separate-stderr pcache flush --batch 1 --verify-data -v "$CACHE" "$BACK"
	assert_status 0
	assert_contains "$stderr" "16 ksets"
	[ "$(md5 "$BACK")" = "$MD5_DIRTY_LOGICAL" ] || die "backing md5 $(md5 "$BACK")"
}

@test "flush --dry-run lists 16 ksets and changes nothing" {
	setup_kernel_pair
	local mc mb
	mc=$(md5 "$CACHE")
	mb=$(md5 "$BACK")
	run --separate-stderr pcache flush --dry-run "$CACHE" "$BACK"
	assert_status 4
	[ "$(grep -c '^kset ' <<<"$output")" -eq 16 ] || die "kset lines: $(grep -c '^kset ' <<<"$output")"
	assert_contains "$output" "kset 0:0: 128 keys"
	assert_contains "$output" "kset 0:73080: 92 keys"
	[ "$(last_line "$output")" = "0 bytes of 7.18 MiB (7532544 bytes) written back" ] || die "last line"
	[ "$(md5 "$CACHE")" = "$mc" ] || die "dry run changed the cache"
	[ "$(md5 "$BACK")" = "$mb" ] || die "dry run changed the backing device"
}

@test "flush --no-metadata-update copies the dirty data and leaves the cache dirty" {
	setup_kernel_pair
	local mc
	mc=$(md5 "$CACHE")
	run --separate-stderr pcache flush --no-metadata-update "$CACHE" "$BACK"
	assert_status 0
	[ "$(md5 "$BACK")" = "$MD5_DIRTY_LOGICAL" ] || die "backing md5"
	[ "$(md5 "$CACHE")" = "$mc" ] || die "cache changed"
	run --separate-stderr pcache info "$CACHE"
	assert_field dirty_tail 0:0
	assert_field dirty_bytes "7.18 MiB (7532544 bytes)"
}

@test "flush -q prints nothing" {
	setup_kernel_pair
	run --separate-stderr pcache flush -q "$CACHE" "$BACK"
	assert_status 0
	assert_no_stdout
	[ -z "$stderr" ] || die "stderr: '$stderr'"
}

@test "flush refuses a damaged log (exit 8, hint to run fsck) and writes nothing" {
	setup_kernel_pair
	local mb
	mb=$(md5 "$BACK")
	# one byte inside the second kset (0:5144): its CRC fails, 14 valid ksets are cut off
	printf '\xff' | dd of="$CACHE" bs=1 seek=$((20480 + 12288 + 5144 + 100)) conv=notrunc status=none
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 8
	assert_error_line flush "$CACHE"
	assert_contains "$stderr" "pcache fsck"
	[ "$(md5 "$BACK")" = "$mb" ] || die "backing changed"
}

@test "flush: not a pcache device, missing backing, empty backing: exit 8" {
	setup_kernel_pair
	local zero
	zero=$(mkimg zero.img 600M)
	run --separate-stderr pcache flush "$zero" "$BACK"
	assert_status 8
	assert_error_line flush "$zero"
	run --separate-stderr pcache flush "$CACHE" "$BATS_TEST_TMPDIR/missing"
	assert_status 8
	assert_error_line flush "$BATS_TEST_TMPDIR/missing"
	: >"$BATS_TEST_TMPDIR/empty"
	run --separate-stderr pcache flush "$CACHE" "$BATS_TEST_TMPDIR/empty"
	assert_status 8
}

@test "flush: usage errors exit 16" {
	run --separate-stderr pcache flush
	assert_status 16
	run --separate-stderr pcache flush onlyone
	assert_status 16
	run --separate-stderr pcache flush --bogus a b
	assert_status 16
	run --separate-stderr pcache flush --batch 0 a b
	assert_status 16
	run --separate-stderr pcache flush a b c
	assert_status 16
	run --separate-stderr pcache flush --help
	assert_status 0
	assert_contains "$output" "usage: pcache flush"
}

# hold FILE: `flock FILE sleep 30` in the background, once it holds the lock.  util-linux
# flock takes the lock itself (HOLDER: its pid, what /proc/locks shows) and runs sleep as
# its child (SLEEPER), which inherits the locked file: the lock lasts until both are gone.
hold() {
	flock -x "$1" sleep 30 </dev/null >/dev/null 2>&1 3>&- &
	HOLDER=$!
	SLEEPER=
	for _ in $(seq 100); do
		SLEEPER=$(pgrep -P "$HOLDER" || true)
		[ -n "$SLEEPER" ] && grep -q "FLOCK .* $HOLDER " /proc/locks && return 0
		sleep 0.05
	done
	die "flock did not take $1"
}

# stop PID: kill it (one of ours) and wait until it is gone.
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}

# a failed test leaves no holder, dm table or loop device behind
teardown() {
	[ -z "${SLEEPER:-}" ] || stop "$SLEEPER"
	[ -z "${HOLDER:-}" ] || stop "$HOLDER"
	[ -z "${FIRST:-}" ] || stop "$FIRST"
	[ -z "${DM_NAME:-}" ] || dmsetup remove "$DM_NAME" 2>/dev/null || true
	local l
	for l in ${LOOPS:-}; do
		losetup -d "$l" 2>/dev/null || true
	done
}

# loopdev FILE: attaches FILE to a free loop device, LOOP (skips without root or a loop
# device: O_EXCL holders exist only for block devices).  LOOPS lists them for teardown.
loopdev() {
	[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices)"
	command -v losetup >/dev/null || skip "losetup is not installed"
	LOOP=$(losetup -f --show "$1" 2>/dev/null) || skip "no loop device available (losetup -f failed)"
	LOOPS="${LOOPS:-} $LOOP"
}

# hold_excl DEV: a python3 process holding the block device DEV open with O_EXCL, in the
# background; its pid in HOLDER once it holds it.
hold_excl() {
	local ready="$BATS_TEST_TMPDIR/ready.$RANDOM"
	python3 -c 'import os, sys, time
os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
print("held", flush=True)
time.sleep(60)' "$1" >"$ready" &
	HOLDER=$!
	SLEEPER=
	for _ in $(seq 100); do
		[ -s "$ready" ] && return 0
		sleep 0.05
	done
	die "python3 did not open $1 exclusively"
}

@test "flush: a block device another process opened O_EXCL names that process: exit 8 (root, loop)" {
	setup_kernel_pair
	local lc lb mc mb pid
	mc=$(md5 "$CACHE")
	mb=$(md5 "$BACK")
	loopdev "$CACHE"
	lc=$LOOP
	loopdev "$BACK"
	lb=$LOOP
	hold_excl "$lc"
	run --separate-stderr pcache flush "$lc" "$lb"
	assert_status 8
	assert_no_stdout
	[ "$stderr" = "pcache flush: $lc: cannot open: in use by process python3 (pid $HOLDER)" ] ||
		die "cache held: '$stderr'"
	stop "$HOLDER"
	hold_excl "$lb"
	run --separate-stderr pcache flush "$lc" "$lb"
	assert_status 8
	assert_no_stdout
	[ "$stderr" = "pcache flush: $lb: cannot open: in use by process python3 (pid $HOLDER)" ] ||
		die "backing held: '$stderr'"
	stop "$HOLDER"
	HOLDER=
	[ "$(md5 "$CACHE")" = "$mc" ] && [ "$(md5 "$BACK")" = "$mb" ] || die "a device was changed"
	# another flush of the same cache: named as the pcache process it is
	PCACHE_FLUSH_TEST_DELAY_US=300000 "$PCACHE" flush --batch 1 "$lc" "$lb" \
		>/dev/null 2>"$BATS_TEST_TMPDIR/first.err" &
	FIRST=$!
	for _ in $(seq 200); do
		grep -q ': writing ' "$BATS_TEST_TMPDIR/first.err" && break
		sleep 0.05
	done
	grep -q ': writing ' "$BATS_TEST_TMPDIR/first.err" || die "the first flush did not start: $(cat "$BATS_TEST_TMPDIR/first.err")"
	run --separate-stderr pcache flush "$lc" "$lb"
	pid=$FIRST
	stop "$FIRST"
	FIRST=
	assert_status 8
	# the flush holds both devices; the backing device is opened first
	[ "$stderr" = "pcache flush: $lb: cannot open: in use by process pcache (pid $pid)" ] ||
		die "second flush: '$stderr'"
	# released: the flush goes through
	run --separate-stderr pcache flush -q "$lc" "$lb"
	assert_status 0
}

@test "flush: a block device under a dm table names the dm device: exit 8 (root, device-mapper)" {
	setup_kernel_pair
	local lc mc
	mc=$(md5 "$CACHE")
	loopdev "$CACHE"
	lc=$LOOP
	DM_NAME="pcache-flush-test-$$"
	if ! command -v dmsetup >/dev/null ||
		! dmsetup create "$DM_NAME" --table "0 1024 linear $lc 0" 2>/dev/null; then
		DM_NAME=
		skip "device-mapper is not available here (dmsetup create failed)"
	fi
	run --separate-stderr pcache flush "$lc" "$BACK"
	assert_status 8
	assert_no_stdout
	[ "$stderr" = "pcache flush: $lc: cannot open: in use by dm device $DM_NAME
pcache flush: hint: the kernel is using it: 'dmsetup remove $DM_NAME' first ('pcache info' and 'pcache list' can read it meanwhile)" ] ||
		die "stderr: '$stderr'"
	[ "$(md5 "$CACHE")" = "$mc" ] || die "the cache was changed"
}

@test "flush: a cache held by another process names it, then the child that inherited the lock: exit 8" {
	setup_kernel_pair
	local mc mb
	mc=$(md5 "$CACHE")
	mb=$(md5 "$BACK")
	hold "$CACHE"
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 8
	assert_no_stdout
	[ "$stderr" = "pcache flush: $CACHE: cannot open: in use by process flock (pid $HOLDER)" ] ||
		die "stderr: '$stderr'"
	# flock killed: its sleep still holds the locked file, and is named
	stop "$HOLDER"
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 8
	[ "$stderr" = "pcache flush: $CACHE: cannot open: in use by process sleep (pid $SLEEPER)" ] ||
		die "stderr: '$stderr'"
	stop "$SLEEPER"
	[ "$(md5 "$CACHE")" = "$mc" ] && [ "$(md5 "$BACK")" = "$mb" ] || die "a device was changed"
	# released: the flush goes through
	run --separate-stderr pcache flush -q "$CACHE" "$BACK"
	assert_status 0
}

@test "flush: a backing device held by another process names it: exit 8" {
	setup_kernel_pair
	local mc
	mc=$(md5 "$CACHE")
	hold "$BACK"
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	stop "$HOLDER"
	stop "$SLEEPER"
	assert_status 8
	assert_no_stdout
	[ "$stderr" = "pcache flush: $BACK: cannot open: in use by process flock (pid $HOLDER)" ] ||
		die "stderr: '$stderr'"
	[ "$(md5 "$CACHE")" = "$mc" ] || die "the cache was changed"
}

@test "flush: ranges that cannot be written are listed, exit 4, then a retry finishes" {
	setup_kernel_pair
	# the first key of the log: 4096 bytes at 31920128
	PCACHE_FLUSH_TEST_FAIL=31921152:1024 run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 4
	assert_contains "$stderr" "cannot write 1024 bytes at offset 31921152"
	assert_contains "$stderr" "dirty_tail stays at 0:0"
	[[ "$(last_line "$output")" == *" of 7.18 MiB (7532544 bytes) written back" ]] || die "last line"
	run --separate-stderr pcache info "$CACHE"
	assert_field dirty_tail 0:0
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	[ "$(md5 "$BACK")" = "$MD5_DIRTY_LOGICAL" ] || die "backing md5"
}

# ---- data checksums (the fixture has data_crc) ----

CORRUPT="$PCACHE_BUILD/tests/corrupt"

# bad_data_pair: the kernel pair with one byte of key 3 of the third kset (0:10288) inverted:
# 4096 bytes at 13492224, cached at 1:487424 (build/tests/corrupt key-data-crc).
bad_data_pair() {
	setup_kernel_pair
	[ -x "$CORRUPT" ] || die "$CORRUPT is not built"
	"$CORRUPT" "$CACHE" key-data-crc >/dev/null || die "corrupt key-data-crc failed"
}

# full_flush: FULL, the backing of the intact fixture flushed to the end (the reference).
full_flush() {
	local c
	c=$(fixture_copy "$FX_DIRTY" full.pmem) || return 1
	FULL=$(fixture_copy kernel-dirty-300w.back full.back) || return 1
	"$PCACHE" flush -q "$c" "$FULL" || die "flush of the intact fixture failed"
}

# ranges: the '  OFF +LEN' lines of a dry run listing (stdin) as 'OFF LEN' lines.
ranges() {
	sed -n 's/^  \([0-9]*\) +\([0-9]*\)$/\1 \2/p'
}

# check_backing ORIG FULL BACK BEFORE AFTER: BACK holds FULL's data in every sector that
# only the ranges BEFORE write (the ksets before the stop; AFTER: those from the stop on),
# and ORIG's everywhere outside BEFORE.
check_backing() {
	python3 - "$@" <<'PY'
import sys
orig, full, back = (open(p, "rb") for p in sys.argv[1:4])
def load(p):
    return [tuple(map(int, l.split())) for l in open(p) if l.strip()]
before, after = load(sys.argv[4]), load(sys.argv[5])
assert before and after, (len(before), len(after))
def covered(r, off):
    return any(o <= off < o + n for o, n in r)
def read(f, off, n):
    f.seek(off)
    return f.read(n)
checked = 0
for off, n in before:
    for s in range(off, off + n, 512):
        if covered(after, s):
            continue            # a later kset writes it too
        assert read(back, s, 512) == read(full, s, 512), "sector %d: not written back" % s
        checked += 1
assert checked > 0, "no sector is written by the first ksets alone"
orig.seek(0, 2)
size, step = orig.tell(), 1 << 20
for c in range(0, size, step):
    a, b = read(orig, c, step), read(back, c, step)
    if a == b:
        continue
    for s in range(c, c + len(a), 512):
        if a[s - c:s - c + 512] != b[s - c:s - c + 512] and not covered(before, s):
            raise SystemExit("sector %d written, outside the ksets before the stop" % s)
PY
}

@test "flush stops at a key whose data does not match its checksum, as the kernel: exit 4, range listed" {
	bad_data_pair
	full_flush
	orig=$(fixture kernel-dirty-300w.back)
	# what comes before the bad kset (a dry run stops where the flush stops), and after
	run --separate-stderr pcache flush --dry-run "$CACHE" "$BACK"
	assert_status 4
	[ "$(grep -c '^kset ' <<<"$output")" -eq 2 ] || die "dry run listed: $output"
	ranges <<<"$output" >"$BATS_TEST_TMPDIR/before"
	[ "$stderr" = "$CACHE: 7.18 MiB (7532544 bytes) of dirty data (dirty_tail 0:0, key_head 0:76784): would write 2 ksets, 1.00 MiB (1048576 bytes), to $BACK, then stop
pcache flush: $CACHE: cannot write back 4096 bytes at offset 13492224 (key 3 of kset 0:10288, cached at 1:487424): data checksum mismatch
pcache flush: $CACHE: a flush would stop before kset 0:10288, as the kernel's writeback does
pcache flush: hint: run 'pcache fsck -n $CACHE' for details" ] || die "dry run stderr: '$stderr'"
	run --separate-stderr pcache flush --dry-run --no-verify-data "$CACHE" "$BACK"
	assert_status 4
	[ "$(grep -c '^kset ' <<<"$output")" -eq 16 ] || die "dry run --no-verify-data listed: $output"
	awk '/^kset 0:10288:/ { on = 1 } on' <<<"$output" | ranges >"$BATS_TEST_TMPDIR/after"
	[ "$(md5 "$BACK")" = "$(md5 "$orig")" ] || die "a dry run wrote to the backing device"

	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 4
	[ "$output" = "1.00 MiB (1048576 bytes) of 7.18 MiB (7532544 bytes) written back" ] || die "stdout: '$output'"
	[ "$stderr" = "$CACHE: 7.18 MiB (7532544 bytes) of dirty data in 16 ksets (dirty_tail 0:0, key_head 0:76784): writing 7.18 MiB (7532544 bytes) to $BACK
pcache flush: $CACHE: cannot write back 4096 bytes at offset 13492224 (key 3 of kset 0:10288, cached at 1:487424): data checksum mismatch
pcache flush: $CACHE: stopped before kset 0:10288, as the kernel's writeback does: dirty_tail stays at 0:10288, the cache stays dirty
pcache flush: hint: run 'pcache fsck -n $CACHE' for details" ] || die "stderr: '$stderr'"
	# the backing: the ksets before the bad one written, nothing else
	run check_backing "$orig" "$FULL" "$BACK" "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
	[ "$status" -eq 0 ] || die "backing: $output"
	# the dirty bytes left, the bad key's included (info --no-verify-data counts it)
	run --separate-stderr pcache info --no-verify-data "$CACHE"
	assert_field dirty_tail 0:10288
	assert_field dirty_bytes "6.25 MiB (6557696 bytes)"
	run --separate-stderr pcache info "$CACHE"
	assert_field health "refused: 1 problem, worst KEY_DATA_CRC (key data checksum mismatch); run 'pcache fsck -n $CACHE'"
	# again: stops at once, writes nothing
	mb=$(md5 "$BACK")
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 4
	[ "$output" = "0 bytes of 6.25 MiB (6557696 bytes) written back" ] || die "stdout: '$output'"
	[ "$(md5 "$BACK")" = "$mb" ] || die "the second flush wrote"
	# --verify-data is the default, and still accepted
	run --separate-stderr pcache flush --verify-data "$CACHE" "$BACK"
	assert_status 4
	assert_contains "$stderr" "data checksum mismatch"
}

@test "flush --no-verify-data writes the mismatching data back (the old behaviour): exit 0, clean" {
	bad_data_pair
	full_flush
	run --separate-stderr pcache flush --no-verify-data "$CACHE" "$BACK"
	assert_status 0
	[ "$output" = "7.18 MiB (7532544 bytes) written back" ] || die "stdout: '$output'"
	run --separate-stderr pcache info "$CACHE"
	assert_field dirty_bytes "0 bytes"
	# the backing is the intact flush's but for the inverted byte
	[ "$(cmp -l "$FULL" "$BACK" | wc -l)" -eq 1 ] || die "differs in $(cmp -l "$FULL" "$BACK" | wc -l) bytes"
	off=$(cmp -l "$FULL" "$BACK" | awk '{ print $1 - 1 }')
	[ "$off" -ge 13492224 ] && [ "$off" -lt $((13492224 + 4096)) ] || die "difference at $off"
}

@test "flush --json: the summary of a stopped flush, a dry run and a clean flush" {
	bad_data_pair
	run --separate-stderr pcache flush --json "$CACHE" "$BACK"
	assert_status 4
	echo "$output" >"$BATS_TEST_TMPDIR/s.json"
	pyjson "$BATS_TEST_TMPDIR/s.json" "
assert isinstance(d, list) and len(d) == 1, d
r = d[0]
assert r['device'] == '$CACHE' and r['backing'] == '$BACK', r
assert r['dry_run'] is False and r['verify_data'] is True, r
assert r['result'] == 'data_crc_mismatch', r['result']
assert r['dirty_bytes'] == 7532544 and r['ksets'] == 16, r
assert r['bytes_to_write'] == 7532544 and r['bytes_written'] == 1048576, r
assert r['dirty_tail'] == {'cache_seg': 0, 'seg_off': 10288}, r['dirty_tail']
assert r['key_head'] == {'cache_seg': 0, 'seg_off': 76784}, r['key_head']
assert r['stopped_at'] == {'cache_seg': 0, 'seg_off': 10288}, r['stopped_at']
assert r['not_written'] == [{'offset': 13492224, 'length': 4096, 'reason': 'data_crc_mismatch',
    'error': None, 'cache_pos': {'cache_seg': 1, 'seg_off': 487424},
    'kset': {'cache_seg': 0, 'seg_off': 10288}, 'key': 3}], r['not_written']
"
	run --separate-stderr pcache flush --json -u --dry-run "$CACHE" "$BACK"
	assert_status 4
	echo "$output" >"$BATS_TEST_TMPDIR/s.json"
	pyjson "$BATS_TEST_TMPDIR/s.json" "
r = d[0]
assert r['dry_run'] is True and r['result'] == 'data_crc_mismatch', r
assert r['dirty_bytes'] == '6.25 MiB' and r['bytes_written'] == '0 B', r
assert r['stopped_at'] == {'cache_seg': 0, 'seg_off': 10288}, r
"
	setup_kernel_pair
	run --separate-stderr pcache flush --json -q "$CACHE" "$BACK"
	assert_status 0
	[ -z "$stderr" ] || die "stderr: '$stderr'"
	echo "$output" >"$BATS_TEST_TMPDIR/s.json"
	pyjson "$BATS_TEST_TMPDIR/s.json" "
r = d[0]
assert r['result'] == 'clean' and r['stopped_at'] is None and r['not_written'] == [], r
assert r['bytes_written'] == 7532544 and r['dirty_tail'] == r['key_head'], r
"
	[ "$(md5 "$BACK")" = "$MD5_DIRTY_LOGICAL" ] || die "backing md5"
	run --separate-stderr pcache flush --json "$CACHE" "$BACK"
	assert_status 0
	echo "$output" >"$BATS_TEST_TMPDIR/s.json"
	pyjson "$BATS_TEST_TMPDIR/s.json" "
r = d[0]
assert r['result'] == 'clean' and r['ksets'] == 0 and r['bytes_to_write'] == 0, r
"
}

@test "flush --json of a range that cannot be written: write_failed, exit 4" {
	setup_kernel_pair
	PCACHE_FLUSH_TEST_FAIL=31921152:1024 run --separate-stderr pcache flush --json "$CACHE" "$BACK"
	assert_status 4
	assert_contains "$stderr" "pcache flush: $CACHE: 1 range could not be written back; dirty_tail stays at 0:0"
	echo "$output" >"$BATS_TEST_TMPDIR/s.json"
	pyjson "$BATS_TEST_TMPDIR/s.json" "
r = d[0]
assert r['result'] == 'write_failed', r
assert r['stopped_at'] == {'cache_seg': 0, 'seg_off': 0}, r
assert r['not_written'] == [{'offset': 31921152, 'length': 1024, 'reason': 'write_failed',
    'error': 'Input/output error', 'cache_pos': None, 'kset': None, 'key': None}], r['not_written']
"
}

# gen_image: a generated cache (mkimage) with a model of its logical content.
gen_image() {
	[ -x "$MKIMAGE" ] || die "$MKIMAGE is not built"
	IMG="$BATS_TEST_TMPDIR/gen.pmem"
	MODEL="$BATS_TEST_TMPDIR/gen.model"
	"$MKIMAGE" --quiet --size 1G --writes 1200 --range 64M --flush-every 10 --seed "$1" \
		--model "$MODEL" "$IMG" || die "mkimage failed"
}

# kill_round N: a fresh copy, a flush killed at a random point (sometimes the resumed one
# too), then a flush to the end; the backing must equal the model.  Sets KILLED=1 when the
# first flush really stopped half way (dirty data left behind).
kill_round() {
	local i=$1 t delay batch rc=0 work="$BATS_TEST_TMPDIR/w.pmem" back="$BATS_TEST_TMPDIR/w.back"
	cp --sparse=always "$IMG" "$work"
	rm -f "$back"
	truncate -s 64M "$back"
	batch=$((1 + RANDOM % 4))
	if [ $((i % 3)) -eq 0 ]; then   # no delay: the kill lands inside the I/O
		delay=0
		t=$(printf '0.%03d' $((RANDOM % 150 + 5)))
	else                            # slowed down: anywhere in a long flush
		delay=$((5000 + RANDOM % 25000))
		t=$(printf '0.%03d' $((RANDOM % 900 + 20)))
	fi
	# --foreground: timeout signals only the flush and waits for it to be gone (without it,
	# it kills its whole process group, itself included, and the next flush may find the
	# dying process still holding the device)
	PCACHE_FLUSH_TEST_DELAY_US=$delay timeout --foreground -s KILL "$t" \
		"$PCACHE" flush -q --batch "$batch" "$work" "$back" || rc=$?
	KILLED=0
	if [ "$rc" -eq 137 ]; then
		run --separate-stderr pcache info "$work"
		[ "$(field dirty_tail)" != "$(field key_head)" ] && KILLED=1
	fi
	if [ $((RANDOM % 4)) -eq 0 ]; then
		timeout --foreground -s KILL 0.05 "$PCACHE" flush -q "$work" "$back" || true
	fi
	run --separate-stderr pcache flush "$work" "$back"
	[ "$status" -eq 0 ] || die "round $i (killed after ${t}s, rc $rc): second flush exit $status: $stderr"
	cmp -s "$back" "$MODEL" ||
		die "round $i (killed after ${t}s, delay $delay, batch $batch): backing differs from the model"
	run --separate-stderr pcache fsck -n "$work"
	[ "$status" -eq 0 ] || die "round $i: fsck after the flush: $output"
}

@test "flush killed with -9 at 24 random points, then flushed again: backing = model" {
	gen_image 42
	local i killed=0
	for i in $(seq 1 24); do
		kill_round "$i"
		killed=$((killed + KILLED))
	done
	echo "# $killed of 24 flushes were killed half way" >&3
	[ "$killed" -ge 12 ] || die "only $killed of 24 flushes were killed half way"
}

@test "flush interrupted by SIGINT stops at a batch end (exit 32) and resumes" {
	gen_image 7
	local back="$BATS_TEST_TMPDIR/i.back" pid rc=0
	truncate -s 64M "$back"
	PCACHE_FLUSH_TEST_DELAY_US=100000 "$PCACHE" flush --batch 1 "$IMG" "$back" \
		>"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	sleep 0.6
	kill -INT "$pid"
	wait "$pid" || rc=$?
	[ "$rc" -eq 32 ] || die "exit $rc: $(cat "$BATS_TEST_TMPDIR/err")"
	assert_contains "$(cat "$BATS_TEST_TMPDIR/err")" "interrupted at dirty_tail"
	run --separate-stderr pcache info "$IMG"
	[ "$(field dirty_tail)" != 0:0 ] && [ "$(field dirty_tail)" != "$(field key_head)" ] ||
		die "dirty_tail $(field dirty_tail), key_head $(field key_head)"
	run --separate-stderr pcache flush "$IMG" "$back"
	assert_status 0
	cmp -s "$back" "$MODEL" || die "backing differs from the model"
}
