#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# Verdicts a person can trust: fsck, info and replay say by default what the kernel would
# do (data checksums verified, the backing device's size named or checked), in the same
# words for the same device, and never promise what they did not check.

load helpers

CORRUPT="$PCACHE_BUILD/tests/corrupt"
NEED_DIRTY="2.00 GiB (2146758656 bytes)"

# jval JSON EXPR: repr() of EXPR with d bound to the parsed JSON text.
jval() {
	python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(repr(eval(sys.argv[2])))' "$1" "$2"
}

# A copy of the dirty kernel fixture with one byte of cached data flipped.
bad_data_copy() {
	img=$(fixture_copy "$FX_DIRTY" bad.img) || return 1
	"$CORRUPT" "$img" key-data-crc >/dev/null || return 1
}

@test "fsck -n: data checksums are verified by default, as the kernel does at load" {
	bad_data_copy
	local sum
	sum=$(md5 "$img")
	run --separate-stderr pcache fsck -n "$img"
	assert_status 4
	[ "${lines[0]}" = "error: KEY_DATA_CRC at kset 0:10288 key 3 (@43200): key data checksum mismatch: off 13492224 len 4096 segment 1:487424: data checksum mismatch; kernel refuses to load the cache" ] || die "line 0: ${lines[0]}"
	[ "${lines[-1]}" = "$img: 1 problem (0 critical, 1 error, 0 warnings, 0 notes); the kernel would refuse to load this cache" ] || die "last: ${lines[-1]}"
	[ "$(md5 "$img")" = "$sum" ] || die "fsck -n wrote"
}

@test "fsck -n --no-verify-data: 'metadata clean; data not verified', never 'would load'" {
	bad_data_copy
	run --separate-stderr pcache fsck -n --no-verify-data "$img"
	assert_status 0
	[ "${lines[-1]}" = "$img: metadata clean; data not verified (--no-verify-data)" ] || die "last: ${lines[-1]}"
	[[ "$output" != *"would load"* ]] || die "promised a load: $output"
	run --separate-stderr pcache fsck -n --no-verify-data --json "$img"
	assert_status 0
	[ "$(jval "$output" 'd[0]["data_verified"], d[0]["clean"]')" = "(False, True)" ]
}

@test "info: the health and verdict fsck -n gives, with the same options" {
	bad_data_copy
	run --separate-stderr pcache info "$img"
	assert_status 0
	assert_field health "refused: 1 problem, worst KEY_DATA_CRC (key data checksum mismatch); run 'pcache fsck -n $img'"
	assert_field verdict "the kernel would refuse to load this cache"
	run --separate-stderr pcache info --no-verify-data "$img"
	assert_status 0
	assert_field health ok
	assert_field verdict "data not verified (--no-verify-data): the kernel checks every key's data checksum when it loads the cache"
}

@test "without --backing the verdict names the backing size the kernel needs" {
	local img
	img=$(fixture "$FX_DIRTY") || return 1
	run --separate-stderr pcache fsck -n "$img"
	assert_status 0
	[ "${lines[-1]}" = "$img: clean: no problems found; the kernel would load this cache over a backing device of at least $NEED_DIRTY" ] || die "last: ${lines[-1]}"
	run --separate-stderr pcache info --json "$img"
	assert_status 0
	[ "$(jval "$output" 'd[0]["max_key_end"], d[0]["backing_size"]')" = "(2146758656, None)" ]
	run --separate-stderr pcache fsck -n --backing "$(fixture kernel-dirty-300w.back)" "$img"
	assert_status 0
	[ "${lines[-1]}" = "$img: clean: no problems found; the kernel would load this cache" ] || die "last: ${lines[-1]}"
	run --separate-stderr pcache fsck -n --backing-size 2G "$img"
	assert_status 0
	[ "${lines[-1]}" = "$img: clean: no problems found; the kernel would load this cache" ] || die "last: ${lines[-1]}"
}

@test "a backing device smaller than the cached data: exit 8 naming both sizes, nothing written" {
	local img small sum
	img=$(fixture_copy "$FX_DIRTY") || return 1
	small=$(mkimg small.back 64M)
	sum=$(md5 "$img")
	for mode in -n -y -p; do
		run --separate-stderr pcache fsck $mode --backing "$small" "$img"
		assert_status 8
		[ "$stderr" = "pcache fsck: $img: cached data reaches $NEED_DIRTY, but the backing device $small holds 64.00 MiB (67108864 bytes): wrong backing device? nothing was checked or changed" ] || die "$mode: $stderr"
		assert_no_stdout
	done
	run --separate-stderr pcache fsck -y --backing-size 1G "$img"
	assert_status 8
	[ "$stderr" = "pcache fsck: $img: cached data reaches $NEED_DIRTY, but --backing-size gives 1.00 GiB (1073741824 bytes): wrong backing device? nothing was checked or changed" ] || die "$stderr"
	run --separate-stderr pcache info --backing "$small" "$img"
	assert_status 8
	run --separate-stderr pcache flush "$img" "$small"
	assert_status 8
	[ "$stderr" = "pcache flush: $img: cached data reaches $NEED_DIRTY, but the backing device $small holds 64.00 MiB (67108864 bytes): wrong backing device? nothing was checked or changed" ] || die "flush: $stderr"
	[ "$(md5 "$img")" = "$sum" ] || die "the image changed"
}

@test "the cache device given as its own backing device: refused before anything is opened" {
	local img sum
	img=$(fixture_copy "$FX_DIRTY") || return 1
	sum=$(md5 "$img")
	run --separate-stderr pcache fsck -y --backing "$img" "$img"
	assert_status 16
	[ "$stderr" = "pcache fsck: $img: is also given as the backing device ($img): a cache cannot be its own backing device" ] || die "$stderr"
	run --separate-stderr pcache flush "$img" "$img"
	assert_status 16
	[ "$stderr" = "pcache flush: $img: is also given as the backing device ($img): a cache cannot be its own backing device" ] || die "$stderr"
	ln -s "$img" "$BATS_TEST_TMPDIR/alias"
	run --separate-stderr pcache fsck -y --dry-run --backing "$BATS_TEST_TMPDIR/alias" "$img"
	assert_status 16
	[ "$(md5 "$img")" = "$sum" ] || die "the image changed"
}

@test "--repair without a terminal: fixes what -p fixes and names what needs -y" {
	local img
	img=$(fixture_copy "$FX_DIRTY") || return 1
	"$CORRUPT" "$img" ci-replica0-crc >/dev/null
	"$CORRUPT" "$img" key-data-crc >/dev/null
	run --separate-stderr pcache fsck --repair "$img" </dev/null
	assert_status 5
	[[ "$output" == *"fixed: CI_REPLICA_BAD at cache_info replica "* ]] || die "$output"
	[[ "$output" != *"fixed: KEY_DATA_CRC"* ]] || die "preen fixed a data problem: $output"
	[ "${lines[-1]}" = "$img: 1 problem needs a person: run 'pcache fsck -y $img', or 'pcache fsck --repair $img' on a terminal to be asked" ] || die "last: ${lines[-1]}"
	run --separate-stderr pcache fsck --repair -y "$img"
	assert_status 16
	[[ "$stderr" == *"-n, -p, -y and --repair exclude each other"* ]] || die "$stderr"
}

@test "a truncated image: the same words in every command; fsck -y keeps seg_num without -f" {
	local img sum want
	img=$(mkimg trunc.img 1G)
	pcache format "$img" >/dev/null
	truncate -s 700M "$img"
	sum=$(md5 "$img")
	want="$img: truncated pcache device: its superblock's 63 segments need 1008.02 MiB (1056985088 bytes), the device holds 700.00 MiB (734003200 bytes): a truncated image, or the wrong device?"
	for c in info replay; do
		run --separate-stderr pcache $c "$img"
		assert_status 8
		[ "${stderr%%$'\n'*}" = "pcache $c: $want" ] || die "$c: $stderr"
	done
	run --separate-stderr pcache fsck -y "$img"
	assert_status 4
	[[ "$output" == *"not fixed: SB_SEG_NUM_RANGE: $img is smaller than its superblock says (a truncated image, or the wrong device?); -f rewrites seg_num to 43 and gives up the segments past the end"* ]] || die "$output"
	[ "$(md5 "$img")" = "$sum" ] || die "fsck -y changed the image without -f"
	run --separate-stderr pcache fsck -y -f "$img"
	assert_status 1
	run --separate-stderr pcache fsck -n "$img"
	assert_status 0
}

@test "not a pcache device: the same words in every command" {
	local img
	img=$(mkimg zero.img 600M)
	for c in info replay dump "fsck -n"; do
		run --separate-stderr pcache $c "$img"
		assert_status 8
		[ "${stderr%%$'\n'*}" = "pcache ${c%% *}: $img: not a pcache device: no pcache superblock" ] || die "$c: $stderr"
	done
}

@test "options may follow the device, as in other tools" {
	local img
	img=$(fixture "$FX_FRESH_CRC") || return 1
	run --separate-stderr pcache info "$img" --json
	assert_status 0
	[ "$(jval "$output" 'd[0]["data_crc"]')" = True ]
	run --separate-stderr pcache fsck "$img" -n --json
	assert_status 0
	run --separate-stderr pcache replay "$img" --json --dirty-only
	assert_status 0
	run --separate-stderr pcache dump "$img" --what sb
	assert_status 0
}
