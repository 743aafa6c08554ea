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
	[ "$(last_line "$output")" = "7532544/7532544 bytes written back" ] ||
		die "last line: '$output'"
	assert_contains "$stderr" "7532544 dirty bytes in 16 ksets"
	[ "$(md5 "$BACK")" = "$MD5_DIRTY_LOGICAL" ] || die "backing md5 $(md5 "$BACK")"
	run --separate-stderr pcache info "$CACHE"
	assert_status 0
	assert_field dirty_bytes 0
	assert_field key_head 0:76784
	assert_field dirty_tail 0:76784
	assert_field key_tail 0:0
	assert_field health ok
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
	# a second flush has nothing left to do
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	[ "$output" = "0/0 bytes written back" ] || die "second flush: '$output'"
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
	[ "$(last_line "$output")" = "0/7532544 bytes written back" ] || die "last line"
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
	assert_field dirty_bytes 7532544
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

@test "flush: a cache held by another process (flock) is busy: exit 8" {
	setup_kernel_pair
	flock -x "$CACHE" sleep 30 &
	local holder=$!
	sleep 0.3
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	kill "$holder" 2>/dev/null || true
	wait "$holder" 2>/dev/null || true
	assert_status 8
	assert_contains "$stderr" "busy"
}

@test "flush: ranges that cannot be written are listed, exit 4, then a retry finishes" {
	setup_kernel_pair
	# the first key of the log: 4096 bytes at 31920128
	PCACHE_FLUSH_TEST_FAIL=31921152:1024 run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 4
	assert_contains "$stderr" "cannot write 1024 bytes at offset 31921152"
	assert_contains "$stderr" "dirty_tail stays at 0:0"
	[[ "$(last_line "$output")" == *"/7532544 bytes written back" ]] || die "last line"
	run --separate-stderr pcache info "$CACHE"
	assert_field dirty_tail 0:0
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	[ "$(md5 "$BACK")" = "$MD5_DIRTY_LOGICAL" ] || die "backing md5"
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
