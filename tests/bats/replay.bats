#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache replay against images written by the real kernel.

bats_require_minimum_version 1.5.0

PCACHE=${PCACHE:-$BATS_TEST_DIRNAME/../../build/pcache}
FX=${PCACHE_FIXTURES:-$BATS_TEST_DIRNAME/../../build/fixtures}
FRESH=kernel-fresh-1071644672-nocrc.pmem
FRESH_CRC=kernel-fresh-1071644672-crc.pmem
DIRTY=kernel-dirty-300w.pmem
BACK=kernel-dirty-300w.back
# md5 of the logical device the dirty image serves (tests/fixtures/LOGICAL.md5)
MD5_DIRTY_LOGICAL=$(awk -v n="$DIRTY" '$2 == n { print $1 }' "$BATS_TEST_DIRNAME/../fixtures/LOGICAL.md5")
SUMMARY_DIRTY="live keys 1839, dirty 7.18 MiB (7532544 bytes), clean 0 bytes, segments used 3, key_head 0:76784, dirty_tail 0:0, key_tail 0:0"

# fixture NAME: a writable sparse copy in the test's tmpdir, path in $img.
fixture() {
	[ -e "$FX/$1" ] || skip "fixture $1 not found in $FX"
	img=$BATS_TEST_TMPDIR/$1
	cp --sparse=always "$FX/$1" "$img"
	chmod u+w "$img"
}

# flip_byte FILE OFFSET: invert one byte.
flip_byte() {
	python3 -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1)
f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

# json_eval FILE EXPR: EXPR (python) on the list a of records.
json_eval() {
	python3 -c 'import json, sys
a = json.load(open(sys.argv[1]))
ext = [o for o in a if o["type"] == "extent"]
summ = [o for o in a if o["type"] == "summary"]
print(eval(sys.argv[2]))' "$1" "$2"
}

@test "replay: --help prints usage and exits 0" {
	run "$PCACHE" replay --help
	[ "$status" -eq 0 ]
	[[ "$output" == usage:\ pcache\ replay* ]]
}

@test "replay: usage errors exit 16" {
	run "$PCACHE" replay --bogus x
	[ "$status" -eq 16 ]
	run "$PCACHE" replay
	[ "$status" -eq 16 ]
	run "$PCACHE" replay a b
	[ "$status" -eq 16 ]
	run "$PCACHE" replay --backing
	[ "$status" -eq 16 ]
}

@test "replay: missing file and non-pcache file exit 8" {
	run "$PCACHE" replay "$BATS_TEST_TMPDIR/does-not-exist"
	[ "$status" -eq 8 ]
	[[ "$output" == "pcache replay: $BATS_TEST_TMPDIR/does-not-exist: cannot open: "* ]]
	truncate -s 600M "$BATS_TEST_TMPDIR/zero"
	run "$PCACHE" replay "$BATS_TEST_TMPDIR/zero"
	[ "$status" -eq 8 ]
	[[ "$output" == *"not a pcache device"* ]]
}

@test "replay: fresh image: empty map" {
	fixture $FRESH
	run --separate-stderr "$PCACHE" replay "$img"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[1]}" = "live keys 0, dirty 0 bytes, clean 0 bytes, segments used 1, key_head 0:0, dirty_tail 0:0, key_tail 0:0" ]
	run --separate-stderr "$PCACHE" replay --json "$img"
	[ "$status" -eq 0 ]
	echo "$output" >"$BATS_TEST_TMPDIR/r.json"
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'len(ext), len(summ), summ[0]["log_end"]')" = "(0, 1, 'empty kset (terminator)')" ]
}

@test "replay: dirty image text summary" {
	fixture $DIRTY
	run --separate-stderr "$PCACHE" replay "$img"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 1841 ]
	[ "${lines[-1]}" = "$SUMMARY_DIRTY" ]
	[[ "${lines[0]}" == *offset*length*cache_seg*seg_off*state*data_crc ]]
	[[ "${lines[1]}" =~ ^\ +192512\ +4096\ +2\ +4657152\ +dirty\ +ok$ ]]
	run --separate-stderr "$PCACHE" replay --no-verify-data "$img"
	[ "$status" -eq 0 ]
	[[ "${lines[1]}" =~ ^\ +192512\ +4096\ +2\ +4657152\ +dirty\ +unchecked$ ]]
}

@test "replay: dirty image JSON: extents ascending, summary" {
	fixture $DIRTY
	run --separate-stderr "$PCACHE" replay --json "$img"
	[ "$status" -eq 0 ]
	echo "$output" >"$BATS_TEST_TMPDIR/r.json"
	python3 -m json.tool "$BATS_TEST_TMPDIR/r.json" >/dev/null
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'len(ext), sum(e["length"] for e in ext)')" = "(1839, 7532544)" ]
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'all(x["offset"] + x["length"] <= y["offset"] for x, y in zip(ext, ext[1:]))')" = True ]
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'all(e["dirty"] and e["data_crc"] == "ok" for e in ext)')" = True ]
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'a[-1]["type"], summ[0]["dirty_bytes"], summ[0]["key_head"], summ[0]["ksets"], summ[0]["keys"], summ[0]["stale_keys"]')" = "('summary', 7532544, {'cache_seg': 0, 'seg_off': 76784}, 16, 1910, 0)" ]
}

@test "replay: applying the extent map onto the backing image gives the kernel's device" {
	fixture $DIRTY
	[ -e "$FX/$BACK" ] || skip "fixture $BACK not found in $FX"
	cp --sparse=always "$FX/$BACK" "$BATS_TEST_TMPDIR/back"
	chmod u+w "$BATS_TEST_TMPDIR/back"
	"$PCACHE" replay --json "$img" >"$BATS_TEST_TMPDIR/r.json"
	python3 -c 'import json, sys
pm = open(sys.argv[1], "rb"); bk = open(sys.argv[2], "r+b")
for e in json.load(open(sys.argv[3])):
    if e["type"] != "extent":
        continue
    pm.seek(20480 + e["cache_seg"] * 16777216 + 12288 + e["seg_off"])
    bk.seek(e["offset"]); bk.write(pm.read(e["length"]))
' "$img" "$BATS_TEST_TMPDIR/back" "$BATS_TEST_TMPDIR/r.json"
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/back")" -eq 2147483648 ]
	[ "$(md5sum <"$BATS_TEST_TMPDIR/back" | cut -d' ' -f1)" = "$MD5_DIRTY_LOGICAL" ]
}

@test "replay: --dirty-only lists the dirty extents" {
	fixture $DIRTY
	run --separate-stderr "$PCACHE" replay --dirty-only --json "$img"
	[ "$status" -eq 0 ]
	echo "$output" >"$BATS_TEST_TMPDIR/r.json"
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'len(ext), all(e["dirty"] for e in ext)')" = "(1839, True)" ]
}

@test "replay: --verify-data on the dirty image: every extent ok" {
	fixture $DIRTY
	[ -e "$FX/$BACK" ] || skip "fixture $BACK not found in $FX"
	run --separate-stderr "$PCACHE" replay --verify-data --backing "$FX/$BACK" --json "$img"
	[ "$status" -eq 0 ]
	echo "$output" >"$BATS_TEST_TMPDIR/r.json"
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'len(ext), set(e["data_crc"] for e in ext)')" = "(1839, {'ok'})" ]
	run --separate-stderr "$PCACHE" replay --verify-data "$img"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$SUMMARY_DIRTY" ]
	[[ "${lines[1]}" == *" ok" ]]
}

# clear_data_crc FILE: clears DATA_CRC in cache_info replica 1 (@12288) and reseals its CRC.
clear_data_crc() {
	python3 -c 'import struct, sys
def kcrc(b, crc=0x3B15A):
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc
f = open(sys.argv[1], "r+b"); f.seek(12288); r = bytearray(f.read(24))
assert kcrc(r[4:]) == struct.unpack_from("<I", r, 0)[0]
struct.pack_into("<I", r, 16, struct.unpack_from("<I", r, 16)[0] & ~1)
struct.pack_into("<I", r, 0, kcrc(r[4:]))
f.seek(12288); f.write(r)' "$1"
}

# set_dirty_tail FILE SEG_OFF: dirty_tail replica 0 (@16416) := 0:SEG_OFF, seq kept, resealed.
set_dirty_tail() {
	python3 -c 'import struct, sys
def kcrc(b, crc=0x3B15A):
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc
f = open(sys.argv[1], "r+b"); f.seek(16416); r = bytearray(f.read(16))
struct.pack_into("<II", r, 8, 0, int(sys.argv[2]))
struct.pack_into("<I", r, 0, kcrc(r[4:]))
f.seek(16416); f.write(r)' "$1" "$2"
}

@test "replay: dirty_tail after the first kset: its keys are clean, --dirty-only skips them" {
	fixture $DIRTY
	set_dirty_tail "$img" 5144
	run --separate-stderr "$PCACHE" replay --json "$img"
	[ "$status" -eq 0 ]
	echo "$output" >"$BATS_TEST_TMPDIR/all.json"
	run --separate-stderr "$PCACHE" replay --json --dirty-only "$img"
	[ "$status" -eq 0 ]
	echo "$output" >"$BATS_TEST_TMPDIR/dirty.json"
	clean=$(json_eval "$BATS_TEST_TMPDIR/all.json" 'sum(e["length"] for e in ext if not e["dirty"])')
	dirty=$(json_eval "$BATS_TEST_TMPDIR/dirty.json" 'sum(e["length"] for e in ext)')
	[ "$clean" -gt 0 ]
	[ $((clean + dirty)) -eq 7532544 ]
	[ "$(json_eval "$BATS_TEST_TMPDIR/dirty.json" 'all(e["dirty"] for e in ext), summ[0]["dirty_bytes"], summ[0]["clean_bytes"], summ[0]["dirty_tail"]')" = "(True, $dirty, $clean, {'cache_seg': 0, 'seg_off': 5144})" ]
	run --separate-stderr "$PCACHE" replay --dirty-only "$img"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep -cE ' clean +(ok|unchecked|off)$')" -eq 0 ]
	[ "${#lines[@]}" -eq $(( $(json_eval "$BATS_TEST_TMPDIR/dirty.json" 'len(ext)') + 2 )) ]
}

@test "replay: dirty_tail not on the log: map printed, warning, exit 4" {
	fixture $DIRTY
	set_dirty_tail "$img" 100
	run --separate-stderr "$PCACHE" replay "$img"
	[ "$status" -eq 4 ]
	[[ "$stderr" == *"warning: dirty_tail 0:100 is not on the log"* ]]
}

@test "replay: data_crc 'off' on a cache without data CRC" {
	fixture $DIRTY
	clear_data_crc "$img"
	run --separate-stderr "$PCACHE" replay --verify-data --json "$img"
	[ "$status" -eq 0 ]
	echo "$output" >"$BATS_TEST_TMPDIR/r.json"
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'len(ext), set(e["data_crc"] for e in ext)')" = "(1839, {'off'})" ]
	run --separate-stderr "$PCACHE" replay "$img"
	[ "$status" -eq 0 ]
	[[ "${lines[1]}" == *" dirty       off" ]]
}

@test "replay: a backing device smaller than the cached data: wrong backing device, exit 8" {
	fixture $DIRTY
	truncate -s 1M "$BATS_TEST_TMPDIR/small-back"
	run --separate-stderr "$PCACHE" replay --backing "$BATS_TEST_TMPDIR/small-back" "$img"
	[ "$status" -eq 8 ]
	[ -z "$output" ]
	[ "$stderr" = "pcache replay: $img: cached data reaches 2.00 GiB (2146758656 bytes), but the backing device $BATS_TEST_TMPDIR/small-back holds 1.00 MiB (1048576 bytes): wrong backing device? nothing was checked or changed" ]
	run --separate-stderr "$PCACHE" replay --backing-size 1G "$img"
	[ "$status" -eq 8 ]
	[[ "$stderr" == *"but --backing-size gives 1.00 GiB (1073741824 bytes): wrong backing device?"* ]]
	run "$PCACHE" replay --backing "$BATS_TEST_TMPDIR/nope" "$img"
	[ "$status" -eq 8 ]
	run --separate-stderr "$PCACHE" replay --backing "$img" "$img"
	[ "$status" -eq 16 ]
	[[ "$stderr" == *"a cache cannot be its own backing device"* ]]
}

@test "replay: corrupted cached data: refused by default as by the kernel, exit 4" {
	fixture $DIRTY
	flip_byte "$img" $((20480 + 16777216 + 12288 + 10))
	run "$PCACHE" replay --no-verify-data "$img"
	[ "$status" -eq 0 ]
	run --separate-stderr "$PCACHE" replay "$img"
	[ "$status" -eq 4 ]
	[[ "$stderr" == *"the kernel would refuse this cache: data checksum mismatch (key 0 of the kset at 0:0)"* ]]
	run --separate-stderr "$PCACHE" replay --verify-data "$img"
	[ "$status" -eq 4 ]
	[[ "$stderr" == *"the kernel would refuse this cache: data checksum mismatch (key 0 of the kset at 0:0)"* ]]
}

@test "replay: a corrupted kset ends the log early: map printed, warning, exit 4" {
	fixture $DIRTY
	flip_byte "$img" $((20480 + 12288 + 100))
	run --separate-stderr "$PCACHE" replay "$img"
	[ "$status" -eq 4 ]
	[ "${lines[-1]}" = "live keys 0, dirty 0 bytes, clean 0 bytes, segments used 1, key_head 0:0, dirty_tail 0:0, key_tail 0:0" ]
	[[ "$stderr" == *"warning: the log ends early at 0:0: kset checksum mismatch"* ]]
	run --separate-stderr "$PCACHE" replay --json "$img"
	[ "$status" -eq 4 ]
	echo "$output" >"$BATS_TEST_TMPDIR/r.json"
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'summ[0]["log_end"]')" = "kset checksum mismatch" ]
}

@test "replay: a log cut after the second kset keeps the first kset's extents" {
	fixture $DIRTY
	flip_byte "$img" $((20480 + 12288 + 5144 * 2 + 100))
	run --separate-stderr "$PCACHE" replay --json "$img"
	[ "$status" -eq 4 ]
	echo "$output" >"$BATS_TEST_TMPDIR/r.json"
	[ "$(json_eval "$BATS_TEST_TMPDIR/r.json" 'summ[0]["ksets"], summ[0]["keys"], summ[0]["key_head"]["seg_off"]')" = "(2, 256, 10288)" ]
}

@test "replay: changes no byte of the image" {
	fixture $DIRTY
	before=$(md5sum <"$img")
	"$PCACHE" replay "$img" >/dev/null
	"$PCACHE" replay --json --verify-data "$img" >/dev/null
	[ "$(md5sum <"$img")" = "$before" ]
}
