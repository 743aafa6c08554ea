#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache dump against images written by the real kernel.

bats_require_minimum_version 1.5.0

PCACHE=${PCACHE:-$BATS_TEST_DIRNAME/../../build/pcache}
FX=${PCACHE_FIXTURES:-$BATS_TEST_DIRNAME/../../build/fixtures}
FRESH=kernel-fresh-1071644672-nocrc.pmem
FRESH_CRC=kernel-fresh-1071644672-crc.pmem
DIRTY=kernel-dirty-300w.pmem

# fixture NAME: a writable sparse copy in the test's tmpdir, path in $img.
fixture() {
	[ -e "$FX/$1" ] || skip "fixture $1 not found in $FX"
	img=$BATS_TEST_TMPDIR/$1
	cp --sparse=always "$FX/$1" "$img"
	chmod u+w "$img"
}

# count_type FILE TYPE: number of records of TYPE in a dump --json output.
count_type() {
	python3 -c 'import json, sys
print(sum(1 for o in json.load(open(sys.argv[1])) if o["type"] == sys.argv[2]))' "$1" "$2"
}

# json_get FILE TYPE EXPR: EXPR (python, on record o) of the first record of TYPE.
json_get() {
	python3 -c 'import json, sys
o = next(o for o in json.load(open(sys.argv[1])) if o["type"] == sys.argv[2])
print(eval(sys.argv[3]))' "$1" "$2" "$3"
}

# flip_byte FILE OFFSET: invert one byte.
flip_byte() {
	python3 -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1)
f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

@test "dump: --help prints usage and exits 0" {
	run "$PCACHE" dump --help
	[ "$status" -eq 0 ]
	[[ "$output" == usage:\ pcache\ dump* ]]
}

@test "dump: usage errors exit 16" {
	run "$PCACHE" dump --bogus x
	[ "$status" -eq 16 ]
	run "$PCACHE" dump
	[ "$status" -eq 16 ]
	[[ "$output" == *"missing DEV"* ]]
	run "$PCACHE" dump a b
	[ "$status" -eq 16 ]
	run "$PCACHE" dump --what sb,nonsense x
	[ "$status" -eq 16 ]
	[[ "$output" == *"unknown structure 'nonsense'"* ]]
}

@test "dump: missing file exits 8 with a one-line error" {
	run "$PCACHE" dump "$BATS_TEST_TMPDIR/does-not-exist"
	[ "$status" -eq 8 ]
	[[ "$output" == "pcache dump: $BATS_TEST_TMPDIR/does-not-exist: cannot open: "* ]]
}

@test "dump: a file too small for a superblock exits 8" {
	truncate -s 1000 "$BATS_TEST_TMPDIR/tiny"
	run "$PCACHE" dump "$BATS_TEST_TMPDIR/tiny"
	[ "$status" -eq 8 ]
	[[ "$output" == *"too small to hold a superblock"* ]]
}

@test "dump: zeroed 600 MiB file: superblock record, then 'not a pcache device', exit 8" {
	truncate -s 600M "$BATS_TEST_TMPDIR/zero"
	run --separate-stderr "$PCACHE" dump "$BATS_TEST_TMPDIR/zero"
	[ "$status" -eq 8 ]
	[[ "$output" == "superblock   @4096        crc 0x00000000 BAD"* ]]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$stderr" == "pcache dump: $BATS_TEST_TMPDIR/zero: not a pcache device: "* ]]
	run --separate-stderr "$PCACHE" dump --json "$BATS_TEST_TMPDIR/zero"
	[ "$status" -eq 8 ]
	echo "$output" | python3 -m json.tool >/dev/null
}

@test "dump: fresh image text shows superblock, cache_info, key_tail" {
	fixture $FRESH
	run --separate-stderr "$PCACHE" dump "$img"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[[ "${lines[0]}" == "superblock   @4096        crc 0x097f12db ok  seg_num 63 flags 0x0 magic 0x65b05efa96c596ef"* ]]
	[[ "${lines[1]}" == "cache_info   @12288       replica 1 picked "*" seq 1 "*"flags 0x1182 "* ]]
	[[ "${lines[1]}" == *"(replica 0 empty: never written)" ]]
	[[ "${lines[2]}" == "key_tail     @16384       replica 0 picked "*"cache_seg 0 seg_off 0"* ]]
	[[ "${lines[3]}" == "dirty_tail   @16416       replica 0 picked "* ]]
	[[ "${lines[-1]}" == "log_end      @32768       key_head 0:0 "*"stop empty kset (terminator)" ]]
}

@test "dump: fresh image JSON has the right records" {
	fixture $FRESH_CRC
	"$PCACHE" dump --json "$img" >"$BATS_TEST_TMPDIR/d.json"
	python3 -m json.tool "$BATS_TEST_TMPDIR/d.json" >/dev/null
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" superblock)" -eq 1 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" cache_info)" -eq 1 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" key_tail)" -eq 1 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" dirty_tail)" -eq 1 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" segment_info)" -eq 63 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" segment_gen)" -eq 63 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" kset)" -eq 0 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" log_end)" -eq 1 ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" superblock 'o["crc"]')" -eq $((0x097f12db)) ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" superblock 'o["crc_ok"]')" = True ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" cache_info 'o["replica"], o["seq"], o["flags"], o["data_crc"]')" = "(1, 1, $((0x1183)), True)" ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" key_tail 'o["offset"], o["replica"], o["picked"]')" = "(16384, 0, True)" ]
}

@test "dump: --all-replicas shows both replicas" {
	fixture $FRESH
	"$PCACHE" dump --json --all-replicas "$img" >"$BATS_TEST_TMPDIR/d.json"
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" segment_info)" -eq 126 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" segment_gen)" -eq 126 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" cache_info)" -eq 2 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" key_tail)" -eq 2 ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" cache_info 'o["offset"], o["crc_ok"], o["picked"]')" = "(8192, False, False)" ]
	run "$PCACHE" dump --all-replicas --what cache-ctrl "$img"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 4 ]
	[[ "${lines[1]}" == "key_tail     @16400       replica 1 crc 0x00000000 BAD"* ]]
}

@test "dump: --json -u renders flags and crcs as hex strings" {
	fixture $FRESH
	run --separate-stderr "$PCACHE" dump --json -u --what sb,cache-info "$img"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"crc":"0x97f12db"'* ]]
	[[ "$output" == *'"flags":"0x1182"'* ]]
	[[ "$output" == *'"magic":"0x65b05efa96c596ef"'* ]]
}

@test "dump: dirty image: 16 ksets, 1910 keys, log_end at 0:76784" {
	fixture $DIRTY
	"$PCACHE" dump --json "$img" >"$BATS_TEST_TMPDIR/d.json"
	python3 -m json.tool "$BATS_TEST_TMPDIR/d.json" >/dev/null
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" kset)" -eq 16 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" key)" -eq 1910 ]
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" log_end)" -eq 1 ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" log_end 'o["key_head"]["cache_seg"], o["key_head"]["seg_off"], o["clean_end"], o["refused"]')" = "(0, 76784, True, False)" ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" key 'o["offset"], o["off"], o["cache_seg"], o["seg_off"], o["data_crc"], o["verdict"], o["stale"]')" = "(32792, 31920128, 1, 0, $((0x7a209a3c)), 'valid', False)" ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" kset 'o["offset"], o["key_num"], o["size"], o["crc_ok"], o["at_key_tail"]')" = "(32768, 128, 5144, True, True)" ]
	python3 -c 'import json, sys
a = json.load(open(sys.argv[1]))
assert all(o["verdict"] == "valid" and not o["stale"] for o in a if o["type"] == "key")' "$BATS_TEST_TMPDIR/d.json"
}

@test "dump: dirty image text, --what ksets" {
	fixture $DIRTY
	run --separate-stderr "$PCACHE" dump --what ksets "$img"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 17 ]
	[[ "${lines[0]}" == "kset         @32768       pos 0:0 crc 0x5d97dfee ok  key_num 128 "* ]]
	[[ "${lines[16]}" == "log_end      @109552      key_head 0:76784 "*"keys 1910 "* ]]
}

@test "dump: --what keys alone prints only keys" {
	fixture $DIRTY
	run --separate-stderr "$PCACHE" dump --what keys "$img"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1910 ]
	[[ "${lines[0]}" == "key          @32792       index 0 off 31920128 len 4096 "*"data_crc 0x7a209a3c"*"verdict valid" ]]
}

@test "dump: a corrupted kset shows its crc failing and ends the log" {
	fixture $DIRTY
	flip_byte "$img" $((20480 + 12288 + 100))
	"$PCACHE" dump --json --what ksets "$img" >"$BATS_TEST_TMPDIR/d.json"
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" kset)" -eq 1 ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" kset 'o["offset"], o["crc"], o["crc_ok"]')" = "(32768, $((0x5d97dfee)), False)" ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" log_end 'o["stop"], o["clean_end"], o["key_head"]["seg_off"]')" = "('kset checksum mismatch', False, 0)" ]
	run "$PCACHE" dump --what ksets "$img"
	[[ "${lines[0]}" == *"crc 0x5d97dfee BAD (expected 0x"* ]]
}

@test "dump: cache_info with no valid replica: device segments, log not walked" {
	fixture $DIRTY
	flip_byte "$img" 12288
	run --separate-stderr "$PCACHE" dump "$img"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"the cache does not open: no valid cache_info replica"* ]]
	[[ "${lines[1]}" == "cache_info   @8192        replica 0 "*"(no valid replica)" ]]
	[[ "${lines[-1]}" == "log_end      -            not walked: the cache does not open: "* ]]
	"$PCACHE" dump --json "$img" >"$BATS_TEST_TMPDIR/d.json"
	[ "$(count_type "$BATS_TEST_TMPDIR/d.json" segment_info)" -eq 63 ]
	[ "$(json_get "$BATS_TEST_TMPDIR/d.json" log_end 'o["offset"], o["walked"]')" = "(None, False)" ]
}

@test "dump: changes no byte of the image" {
	fixture $DIRTY
	before=$(md5sum <"$img")
	"$PCACHE" dump "$img" >/dev/null
	"$PCACHE" dump --json --all-replicas "$img" >/dev/null
	[ "$(md5sum <"$img")" = "$before" ]
}
