#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache info: text and JSON of the kernel fixtures, read-only, errors.

load helpers

# info_json DEV [opts]: runs `pcache info --json` into $BATS_TEST_TMPDIR/info.json.
info_json() {
	local dev=$1
	shift
	pcache info --json "$@" "$dev" >"$BATS_TEST_TMPDIR/info.json"
}

@test "info of the fresh kernel fixture (data_crc false): text fields" {
	fx=$(fixture "$FX_FRESH_NOCRC")
	run --separate-stderr pcache info "$fx"
	assert_status 0
	[ -z "$stderr" ] || die "stderr: '$stderr'"
	assert_field device "$fx"
	assert_field device_size "1022.00 MiB (1071644672 bytes)"
	assert_field sb_flags 0
	assert_field seg_total 63
	assert_field cache_segs 63
	assert_field segs_used 1
	assert_field gc_percent 70
	assert_field cache_flags 1182
	assert_field key_head 0:0
	assert_field dirty_tail 0:0
	assert_field key_tail 0:0
	assert_field data_crc false
	assert_field cache_mode writeback
	assert_field live_keys 0
	assert_field dirty_bytes "0 bytes"
	assert_field clean_bytes "0 bytes"
	assert_field health ok
}

@test "info of the fresh kernel fixture (data_crc true): text fields" {
	fx=$(fixture "$FX_FRESH_CRC")
	run --separate-stderr pcache info "$fx"
	assert_status 0
	assert_field segs_used 1
	assert_field cache_flags 1183
	assert_field data_crc true
	assert_field key_head 0:0
	assert_field health ok
}

@test "info of the dirty kernel fixture: text fields" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache info "$fx"
	assert_status 0
	assert_field seg_total 63
	assert_field segs_used 3
	assert_field gc_percent 70
	assert_field cache_flags 1183
	assert_field key_head 0:76784
	assert_field dirty_tail 0:0
	assert_field key_tail 0:0
	assert_field data_crc true
	assert_field cache_mode writeback
	assert_field live_keys 1839
	assert_field dirty_bytes "7.18 MiB (7532544 bytes)"
	assert_field clean_bytes "0 bytes"
	assert_field health ok
}

@test "info -v of the dirty kernel fixture adds the kernel's status line" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache info -v "$fx"
	assert_status 0
	assert_field status_line "0 63 63 3 70 1183 0:76784 0:0 0:0"
}

@test "info --json of the fresh kernel fixture" {
	fx=$(fixture "$FX_FRESH_NOCRC")
	info_json "$fx"
	pyjson "$BATS_TEST_TMPDIR/info.json" "
r = d[0]
want = dict(device='$fx', device_size=1071644672, sb_flags=0, seg_total=63, cache_segs=63,
            segs_used=1, gc_percent=70, cache_flags=0x1182, data_crc=False,
            cache_mode='writeback', live_keys=0, dirty_bytes=0, clean_bytes=0, health='ok')
for k, v in want.items():
    assert r[k] == v and type(r[k]) == type(v), (k, r[k], v)
for k in ('key_head', 'dirty_tail', 'key_tail'):
    assert r[k] == {'cache_seg': 0, 'seg_off': 0}, (k, r[k])
"
}

@test "info --json of the dirty kernel fixture" {
	fx=$(fixture "$FX_DIRTY")
	info_json "$fx"
	pyjson "$BATS_TEST_TMPDIR/info.json" "
r = d[0]
want = dict(seg_total=63, cache_segs=63, segs_used=3, gc_percent=70, cache_flags=4483,
            data_crc=True, cache_mode='writeback', live_keys=1839, dirty_bytes=7532544,
            clean_bytes=0, health='ok', device_size=1071644672, sb_flags=0,
            status_line='0 63 63 3 70 1183 0:76784 0:0 0:0')
for k, v in want.items():
    assert r[k] == v and type(r[k]) == type(v), (k, r[k], v)
assert r['key_head'] == {'cache_seg': 0, 'seg_off': 76784}, r['key_head']
assert r['dirty_tail'] == {'cache_seg': 0, 'seg_off': 0}, r['dirty_tail']
assert r['key_tail'] == {'cache_seg': 0, 'seg_off': 0}, r['key_tail']
"
}

@test "info --json -u renders flags and sizes for people" {
	fx=$(fixture "$FX_DIRTY")
	info_json "$fx" -u
	pyjson "$BATS_TEST_TMPDIR/info.json" "
r = d[0]
assert r['cache_flags'] == '0x1183', r['cache_flags']
assert isinstance(r['device_size'], str), r['device_size']
assert isinstance(r['dirty_bytes'], str), r['dirty_bytes']
assert r['live_keys'] == 1839, r['live_keys']
"
}

@test "info --json parses and is an array of one object with snake_case keys" {
	for name in "$FX_FRESH_NOCRC" "$FX_FRESH_CRC" "$FX_DIRTY"; do
		fx=$(fixture "$name")
		for opts in "" "-u"; do
			run --separate-stderr pcache info --json $opts "$fx"
			assert_status 0
			[ -z "$stderr" ] || die "stderr: '$stderr'"
			echo "$output" >"$BATS_TEST_TMPDIR/info.json"
			python3 -m json.tool "$BATS_TEST_TMPDIR/info.json" >/dev/null
			pyjson "$BATS_TEST_TMPDIR/info.json" "
import re
assert isinstance(d, list) and len(d) == 1, type(d)
assert isinstance(d[0], dict), d[0]
def walk(o, path):
    if isinstance(o, dict):
        for k, v in o.items():
            assert re.fullmatch(r'[a-z][a-z0-9]*(_[a-z0-9]+)*', k), path + '.' + k
            walk(v, path + '.' + k)
    elif isinstance(o, list):
        for i, v in enumerate(o):
            walk(v, path + '[%d]' % i)
walk(d, '')
"
		done
	done
}

@test "info changes no byte of the image" {
	img=$(fixture_copy "$FX_DIRTY")
	before=$(md5 "$img")
	mtime=$(stat -c %y "$img")
	run --separate-stderr pcache info "$img"
	assert_status 0
	run --separate-stderr pcache info --json -v "$img"
	assert_status 0
	[ "$(md5 "$img")" = "$before" ] || die "info changed the image"
	[ "$(stat -c %y "$img")" = "$mtime" ] || die "info changed the mtime"
}

@test "info -q prints nothing" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache info -q "$fx"
	assert_status 0
	assert_no_stdout
	[ -z "$stderr" ] || die "stderr: '$stderr'"
}

@test "info of an all-zero 600 MiB file: not a pcache device (8)" {
	img=$(mkimg zero 600M)
	run --separate-stderr pcache info "$img"
	assert_status 8
	assert_no_stdout
	assert_error_line info "$img"
	assert_contains "$stderr" "not a pcache device"
	run --separate-stderr pcache info --json "$img"
	assert_status 8
	assert_no_stdout
}

@test "info of a file smaller than 512 MiB fails (8)" {
	img=$(mkimg small 100M)
	run --separate-stderr pcache info "$img"
	assert_status 8
	assert_no_stdout
	assert_error_line info "$img"
	assert_contains "$stderr" "512 MiB"
}

@test "info of a missing file fails (8)" {
	run --separate-stderr pcache info "$BATS_TEST_TMPDIR/missing"
	assert_status 8
	assert_no_stdout
	assert_error_line info "$BATS_TEST_TMPDIR/missing"
}

@test "info with both cache_info replicas zeroed fails (8) and says the kernel would re-initialise" {
	img=$(fixture_copy "$FX_DIRTY")
	# cache_info replicas: 24 bytes at 8192 and at 12288.
	dd if=/dev/zero of="$img" bs=1 seek=8192 count=24 conv=notrunc status=none
	dd if=/dev/zero of="$img" bs=1 seek=12288 count=24 conv=notrunc status=none
	run --separate-stderr pcache info "$img"
	assert_status 8
	assert_no_stdout
	assert_error_line info "$img"
	assert_contains "$stderr" "re-initialise"
}

@test "info with a bad option is a usage error (16)" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache info --no-such-option "$fx"
	assert_status 16
	assert_no_stdout
	assert_contains "$stderr" "usage"
}

@test "info without DEV, or with two, is a usage error (16)" {
	run --separate-stderr pcache info
	assert_status 16
	assert_no_stdout
	assert_contains "$stderr" "pcache info: "
	run --separate-stderr pcache info --json
	assert_status 16
	assert_no_stdout
	run --separate-stderr pcache info a b
	assert_status 16
	assert_no_stdout
}
