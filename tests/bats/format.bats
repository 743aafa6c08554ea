#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache format: byte-exact against the kernel, options, refusals and error shapes.

load helpers

# check_gc IMG GC DATA_CRC: `pcache info --json` reports a fresh cache with that gc_percent.
check_gc() {
	pcache info --json "$1" >"$BATS_TEST_TMPDIR/info.json"
	pyjson "$BATS_TEST_TMPDIR/info.json" "
gc, crc = $2, $3
r = d[0]
f = r['cache_flags']
assert r['gc_percent'] == gc, r['gc_percent']
assert (f >> 6) & 0x7f == gc, hex(f)
assert f & 2, 'INIT_DONE missing: ' + hex(f)
assert (f >> 2) & 0xf == 0, 'cache mode not writeback: ' + hex(f)
assert f & 1 == crc and r['data_crc'] == bool(crc), hex(f)
assert f == (gc << 6) | 2 | crc, hex(f)
assert r['health'] == 'ok', r['health']
"
}

@test "format writes the kernel's image byte for byte (data_crc false)" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format -y "$img"
	assert_status 0
	[ "$(md5 "$img")" = "$MD5_FRESH_NOCRC" ] || die "md5 $(md5 "$img") != $MD5_FRESH_NOCRC"
	fx=$(fixture "$FX_FRESH_NOCRC")
	[ "$(md5 "$fx")" = "$(md5 "$img")" ] || die "differs from $fx"
}

@test "format --data-crc writes the kernel's image byte for byte (data_crc true)" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format --data-crc -y "$img"
	assert_status 0
	[ "$(md5 "$img")" = "$MD5_FRESH_CRC" ] || die "md5 $(md5 "$img") != $MD5_FRESH_CRC"
	fx=$(fixture "$FX_FRESH_CRC")
	[ "$(md5 "$fx")" = "$(md5 "$img")" ] || die "differs from $fx"
}

@test "format --gc-percent 0 and 90 set gc_percent in cache_info flags" {
	for gc in 0 90; do
		img=$(mkimg "pmem$gc" "$KERNEL_DEV_SIZE")
		run --separate-stderr pcache format --gc-percent "$gc" "$img"
		assert_status 0
		check_gc "$img" "$gc" 0
	done
	img=$(mkimg pmemcrc "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format --data-crc --gc-percent 90 "$img"
	assert_status 0
	check_gc "$img" 90 1
}

@test "format without --gc-percent uses 70" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format "$img"
	assert_status 0
	check_gc "$img" 70 0
}

@test "format --gc-percent 91, -1 and abc are usage errors (16) and write nothing" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	for gc in 91 -1 abc ""; do
		run --separate-stderr pcache format --gc-percent "$gc" -y "$img"
		assert_status 16
		assert_no_stdout
		assert_contains "$stderr" "--gc-percent"
	done
	is_all_zero "$img" || die "the image was written"
}

@test "format --dry-run lists the layout and writes nothing" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	mtime=$(stat -c %Y.%y "$img")
	run --separate-stderr pcache format --dry-run "$img"
	assert_status 0
	assert_contains "$output" "superblock"
	assert_contains "$output" "cache_info"
	assert_contains "$output" "flags 0x1182"
	is_all_zero "$img" || die "--dry-run wrote to the image"
	[ "$(stat -c %Y.%y "$img")" = "$mtime" ] || die "--dry-run changed the mtime"
	run --separate-stderr pcache format --dry-run --data-crc --gc-percent 0 "$img"
	assert_status 0
	assert_contains "$output" "flags 0x3"
	is_all_zero "$img" || die "--dry-run wrote to the image"
}

@test "format refuses a device that already holds a pcache (8) and leaves it unchanged" {
	img=$(fixture_copy "$FX_FRESH_CRC")
	run --separate-stderr pcache format -y "$img"
	assert_status 8
	assert_no_stdout
	assert_error_line format "$img"
	assert_contains "$stderr" "already holds a pcache"
	assert_contains "$stderr" "--force"
	[ "$(md5 "$img")" = "$MD5_FRESH_CRC" ] || die "the image was changed"
}

@test "format --force overwrites a clean cache" {
	img=$(fixture_copy "$FX_FRESH_CRC")
	run --separate-stderr pcache format --force -y "$img"
	assert_status 0
	[ "$(md5 "$img")" = "$MD5_FRESH_NOCRC" ] || die "md5 $(md5 "$img") != $MD5_FRESH_NOCRC"
}

@test "format --force refuses a cache holding dirty data (8) and leaves it unchanged" {
	img=$(fixture_copy "$FX_DIRTY")
	before=$(md5 "$img")
	run --separate-stderr pcache format --force -y "$img"
	assert_status 8
	assert_no_stdout
	assert_error_line format "$img"
	assert_contains "$stderr" "dirty data"
	assert_contains "$stderr" "7532544"
	[ "$(md5 "$img")" = "$before" ] || die "the image was changed"
}

@test "format --force --discard-dirty formats a cache holding dirty data" {
	img=$(fixture_copy "$FX_DIRTY")
	run --separate-stderr pcache format --force --discard-dirty --data-crc -y "$img"
	assert_status 0
	run --separate-stderr pcache info "$img"
	assert_status 0
	assert_field health ok
	assert_field segs_used 1
	assert_field key_head 0:0
	assert_field dirty_tail 0:0
	assert_field key_tail 0:0
	assert_field live_keys 0
	assert_field dirty_bytes 0
	assert_field data_crc true
}

@test "format --discard-dirty without --force is a usage error (16)" {
	img=$(fixture_copy "$FX_DIRTY")
	before=$(md5 "$img")
	run --separate-stderr pcache format --discard-dirty -y "$img"
	assert_status 16
	assert_no_stdout
	assert_contains "$stderr" "--force"
	[ "$(md5 "$img")" = "$before" ] || die "the image was changed"
}

@test "format of a 100 MiB file: too small (8), names the size" {
	img=$(mkimg small 100M)
	run --separate-stderr pcache format -y "$img"
	assert_status 8
	assert_no_stdout
	assert_error_line format "$img"
	assert_contains "$stderr" "too small"
	assert_contains "$stderr" "104857600"
	is_all_zero "$img" || die "the image was written"
}

@test "format of a missing file fails (8)" {
	run --separate-stderr pcache format -y "$BATS_TEST_TMPDIR/nonexistent"
	assert_status 8
	assert_no_stdout
	assert_error_line format "$BATS_TEST_TMPDIR/nonexistent"
	[ ! -e "$BATS_TEST_TMPDIR/nonexistent" ] || die "format created the file"
}

@test "format of a directory fails (8)" {
	mkdir "$BATS_TEST_TMPDIR/dir"
	run --separate-stderr pcache format -y "$BATS_TEST_TMPDIR/dir"
	assert_status 8
	assert_no_stdout
	assert_error_line format "$BATS_TEST_TMPDIR/dir"
}

@test "format of a path that cannot be opened fails (8): under a file, a FIFO" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format -y "$img/sub"
	assert_status 8
	assert_no_stdout
	assert_error_line format "$img/sub"
	run --separate-stderr pcache format -y "$BATS_TEST_TMPDIR/nodir/pmem"
	assert_status 8
	assert_no_stdout
	assert_error_line format "$BATS_TEST_TMPDIR/nodir/pmem"
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	run --separate-stderr timeout 20 "$PCACHE" format -y "$BATS_TEST_TMPDIR/fifo"
	assert_status 8
	assert_no_stdout
	assert_error_line format "$BATS_TEST_TMPDIR/fifo"
}

@test "format of a device held by another process: in use (8)" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	# The subshell takes the lock on fd 9 and becomes `sleep`, which keeps it.
	(
		exec 9<"$img"
		flock -x 9
		exec sleep 30
	) </dev/null >/dev/null 2>&1 3>&- &
	holder=$!
	for _ in $(seq 100); do
		flock -xn "$img" true || break
		sleep 0.05
	done
	run --separate-stderr pcache format --force -y "$img"
	kill "$holder"
	wait "$holder" || true
	assert_status 8
	assert_no_stdout
	assert_error_line format "$img"
	assert_contains "$stderr" "in use"
	is_all_zero "$img" || die "the image was written"
	run --separate-stderr pcache format --force -y -q "$img"
	assert_status 0
}

@test "a formatted image is accepted by pcache info: health ok, segs_used 1, key_head 0:0" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format -y "$img"
	assert_status 0
	run --separate-stderr pcache info "$img"
	assert_status 0
	assert_field health ok
	assert_field segs_used 1
	assert_field key_head 0:0
	assert_field seg_total 63
	assert_field live_keys 0
	run --separate-stderr pcache info --json "$img"
	assert_status 0
	echo "$output" >"$BATS_TEST_TMPDIR/info.json"
	pyjson "$BATS_TEST_TMPDIR/info.json" "
r = d[0]
assert r['health'] == 'ok', r
assert r['segs_used'] == 1, r
assert r['key_head'] == {'cache_seg': 0, 'seg_off': 0}, r
"
}

@test "format on a larger (1 GiB) sparse file is accepted by pcache info" {
	img=$(mkimg pmem 1G)
	run --separate-stderr pcache format --data-crc "$img"
	assert_status 0
	run --separate-stderr pcache info "$img"
	assert_status 0
	assert_field health ok
	assert_field device_size "1073741824 (1.00 GiB)"
	assert_field data_crc true
}

@test "format errors are one 'pcache format: DEV: ...' line set with nothing on stdout" {
	small=$(mkimg small 100M)
	dirty=$(fixture_copy "$FX_DIRTY")
	clean=$(fixture_copy "$FX_FRESH_NOCRC")
	for dev in "$small" "$dirty" "$clean" "$BATS_TEST_TMPDIR/missing"; do
		if [ "$dev" = "$dirty" ]; then
			run --separate-stderr pcache format --force -y "$dev"
		else
			run --separate-stderr pcache format -y "$dev"
		fi
		assert_status 8
		assert_no_stdout
		assert_error_line format "$dev"
		while IFS= read -r line; do
			[[ "$line" == "pcache format: "* ]] || die "stray stderr line: '$line'"
		done <<<"$stderr"
	done
}

@test "format -q prints nothing on success" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format -q "$img"
	assert_status 0
	assert_no_stdout
	[ -z "$stderr" ] || die "stderr: '$stderr'"
	[ "$(md5 "$img")" = "$MD5_FRESH_NOCRC" ] || die "md5 $(md5 "$img") != $MD5_FRESH_NOCRC"
}

@test "format prints the layout and 'done' without -q" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format "$img"
	assert_status 0
	assert_contains "$output" "superblock"
	assert_contains "$output" "cache_info"
	assert_contains "$output" "done"
}

@test "format with a bad option or no DEV is a usage error (16)" {
	run --separate-stderr pcache format --no-such-option "$BATS_TEST_TMPDIR/x"
	assert_status 16
	assert_no_stdout
	run --separate-stderr pcache format
	assert_status 16
	assert_no_stdout
	run --separate-stderr pcache format a b
	assert_status 16
	assert_no_stdout
}
