#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# Real-device safety that can be tested on files: media errors (PCACHE_TEST_POISON makes
# mapped pages raise SIGBUS as poisoned pmem does), bad blocks (PCACHE_TEST_BADBLOCKS adds
# ranges to the device's list) mapped onto the layout by fsck, repair refusing to write
# over them unless -f, and busy devices (a file lock held by another process; a block
# device held by the kernel, with root and a loop device; a dm table needs device-mapper).

load helpers

MKIMAGE="$(dirname "$PCACHE")/tests/mkimage"
SEG=16777216

# devoff CSEG SEG_OFF: device offset of a position (mkimage formats cseg i = dseg i).
devoff() {
	echo $((20480 + $1 * SEG + 12288 + $2))
}

# poke FILE OFFSET BYTE: overwrites one byte (BYTE in hex).
poke() {
	printf "\\x$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

setup_file() {
	[ -x "$PCACHE" ] || die "$PCACHE is not built"
	[ -x "$MKIMAGE" ] || die "$MKIMAGE is not built"
	base="$BATS_FILE_TMPDIR/base.pmem"
	"$MKIMAGE" --size 1G --data-crc --writes 3000 --clean-pct 30 --quiet "$base" ||
		die "mkimage failed"
	"$PCACHE" replay --json "$base" >"$BATS_FILE_TMPDIR/replay.json" || die "replay failed"
	"$PCACHE" dump --json --what keys "$base" >"$BATS_FILE_TMPDIR/keys.json" || die "dump failed"
	# A dirty and a clean live extent, and a key whose data no live extent uses.
	python3 - "$BATS_FILE_TMPDIR" >"$BATS_FILE_TMPDIR/pos.sh" <<'EOF' || die "no positions"
import json, sys
d = sys.argv[1]
ext = [e for e in json.load(open(d + "/replay.json")) if e["type"] == "extent"]
keys = [k for k in json.load(open(d + "/keys.json")) if k["type"] == "key"]
dirty = next(e for e in ext if e["dirty"] and e["length"] >= 8192)
clean = next(e for e in ext if not e["dirty"] and e["length"] >= 8192)
def live(cs, lo, hi):
    return any(e["cache_seg"] == cs and e["seg_off"] < hi and lo < e["seg_off"] + e["length"]
               for e in ext)
over = next(k for k in keys if not live(k["cache_seg"], k["seg_off"], k["seg_off"] + k["len"]))
for n, e in (("DIRTY", dirty), ("CLEAN", clean)):
    print("%s_SEG=%d %s_SEGOFF=%d %s_LOGICAL=%d" % (n, e["cache_seg"], n, e["seg_off"], n, e["offset"]))
print("OVER_SEG=%d OVER_SEGOFF=%d" % (over["cache_seg"], over["seg_off"]))
EOF
}

setup() {
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/pos.sh"
	img="$BATS_TEST_TMPDIR/c.pmem"
	cp --sparse=always "$BATS_FILE_TMPDIR/base.pmem" "$img"
}

# ---- media errors: SIGBUS on a mapped read becomes an I/O error ----

@test "poisoned superblock: info and fsck -n report an I/O error (exit 8), no crash" {
	PCACHE_TEST_POISON=4096:24 run --separate-stderr pcache info "$img"
	assert_status 8
	assert_no_stdout
	assert_error_line info "$img"
	assert_contains "$stderr" "Input/output error"
	PCACHE_TEST_POISON=4096:24 run --separate-stderr pcache fsck -n "$img"
	assert_status 8
	assert_contains "$stderr" "check failed: Input/output error"
	PCACHE_TEST_POISON=12288:1 run --separate-stderr pcache fsck -n --json "$img"
	assert_status 8
	assert_no_stdout
}

@test "poisoned log: the walk ends with LOG_IO (exit 4), info says refused" {
	PCACHE_TEST_POISON=$(devoff 0 0):1 run --separate-stderr pcache fsck -n "$img"
	assert_status 4
	assert_contains "$output" "LOG_IO at kset 0:0"
	assert_contains "$output" "the kernel would refuse"
	PCACHE_TEST_POISON=$(devoff 0 0):1 run --separate-stderr pcache info "$img"
	assert_status 0
	assert_contains "$(field health)" "refused"
	assert_contains "$(field health)" "LOG_IO"
}

@test "poisoned cached data: fsck -n --verify-data reports KEY_IO (exit 4)" {
	PCACHE_TEST_POISON=$(devoff "$DIRTY_SEG" "$DIRTY_SEGOFF"):1 \
		run --separate-stderr pcache fsck -n --verify-data "$img"
	assert_status 4
	assert_contains "$output" "KEY_IO"
	assert_contains "$output" "I/O error reading cached data"
}

# ---- bad blocks mapped onto the layout ----

# badblocks_json LIST: fsck -n --json with LIST injected; output in $output.
badblocks_json() {
	PCACHE_TEST_BADBLOCKS=$1 run --separate-stderr pcache fsck -n --json "$img"
}

# has_problem LOCATION [DETAIL-SUBSTRING]: the last JSON output has a MEDIA_BADBLOCK there.
has_problem() {
	LOC=$1 SUB=${2:-} pyjson <(printf '%s' "$output") '
import os
loc, sub = os.environ["LOC"], os.environ["SUB"]
ps = [p for p in d[0]["problems"] if p["code"] == "MEDIA_BADBLOCK" and p["location"] == loc]
assert ps, "no MEDIA_BADBLOCK at %r in %r" % (loc, [p["location"] for p in d[0]["problems"]])
assert sub in ps[0]["detail"], "%r not in %r" % (sub, ps[0]["detail"])
' || die "problem at '$1' missing"
}

@test "bad blocks in the fixed metadata: superblock, cache_info, tails, unused bytes" {
	badblocks_json 4096:512,12288:24,16384:64,20000:100
	assert_status 4
	has_problem superblock "read at load: the load fails"
	has_problem "superblock block" "the kernel does not use"
	has_problem "cache_info replica 1" "24 bytes of it"
	for r in "key_tail replica 0" "key_tail replica 1" "dirty_tail replica 0" "dirty_tail replica 1"; do
		has_problem "$r" "16 bytes of it"
	done
	has_problem "cache ctrl area"
	pyjson <(printf '%s' "$output") 'assert d[0]["kernel_verdict"] == "refuses", d[0]["kernel_verdict"]'
}

@test "bad blocks in segment metadata: info and gen replicas, reserved bytes" {
	s3=$((20480 + 3 * SEG))
	badblocks_json $((s3 + 4096)):512,$((s3 + 8192)):4096
	assert_status 4
	has_problem "segment 3 (device segment 3) info replica 1" "read at load"
	has_problem "segment 3 (device segment 3) gen replica 0"
	has_problem "segment 3 (device segment 3) gen replica 1"
	has_problem "segment 3 (device segment 3) metadata"
}

@test "bad blocks on the log: a kset, and the bytes read at the log end" {
	head=$(pyjson "$BATS_FILE_TMPDIR/replay.json" 'print(d[-1]["key_head"]["seg_off"])')
	badblocks_json $(devoff 0 5144):8,$(devoff 0 $((head + 4096))):512
	assert_status 4
	has_problem "kset 0:5144" "keys); read at load"
	has_problem "log end at 0:$head" "5144 the kernel reads at this log position"
}

@test "bad blocks in cached data: dirty and clean extents with their logical range" {
	badblocks_json $(devoff "$DIRTY_SEG" "$DIRTY_SEGOFF"):4096,$(devoff "$CLEAN_SEG" $((CLEAN_SEGOFF + 4096))):512
	assert_status 4
	has_problem "cached data at $DIRTY_SEG:$DIRTY_SEGOFF" \
		"4096 bytes of dirty data, logical [$DIRTY_LOGICAL, $((DIRTY_LOGICAL + 4096))) not written back"
	has_problem "cached data at $CLEAN_SEG:$((CLEAN_SEGOFF + 4096))" \
		"512 bytes of clean data, logical [$((CLEAN_LOGICAL + 4096)), $((CLEAN_LOGICAL + 4608)))"
	has_problem "cached data at $DIRTY_SEG:$DIRTY_SEGOFF" "verified at load: the load fails"
}

@test "bad blocks under overwritten key data, free space and past the last segment" {
	badblocks_json $(devoff "$OVER_SEG" "$OVER_SEGOFF"):512,$(devoff 60 4096):4096,1071644000:100
	assert_status 4
	has_problem "key data at $OVER_SEG:$OVER_SEGOFF" "overwritten key"
	has_problem "segment 60 (device segment 60) data area" "free cache space"
	has_problem "space after the last segment" "the kernel does not use"
}

@test "bad blocks where the kernel does not read leave the verdict at loads" {
	badblocks_json $(devoff 60 4096):4096,100:10
	assert_status 4
	pyjson <(printf '%s' "$output") '
assert d[0]["kernel_verdict"] == "loads", d[0]["kernel_verdict"]
assert d[0]["problem_count"] == 2, d[0]["problem_count"]'
}

@test "fsck text output names the location; info's health names MEDIA_BADBLOCK" {
	PCACHE_TEST_BADBLOCKS=8192:512 run --separate-stderr pcache fsck -n "$img"
	assert_status 4
	assert_contains "$output" "error: MEDIA_BADBLOCK at cache_info replica 0 (@8192): "
	assert_contains "$output" "bad block at 8192 (512 bytes): 24 bytes of it; read at load"
	PCACHE_TEST_BADBLOCKS=8192:512 run --separate-stderr pcache info "$img"
	assert_status 0
	assert_contains "$(field health)" "refused"
	assert_contains "$(field health)" "MEDIA_BADBLOCK"
}

@test "a malformed PCACHE_TEST_BADBLOCKS is an operational error" {
	PCACHE_TEST_BADBLOCKS=12:x run --separate-stderr pcache fsck -n "$img"
	assert_status 8
	assert_contains "$stderr" "Invalid argument"
}

# ---- repair and bad blocks ----

@test "repair refuses to write over a bad block (exit 8, nothing written, no undo file)" {
	poke "$img" $((8192 + 9)) ff
	before=$(md5 "$img")
	PCACHE_TEST_BADBLOCKS=8192:512 run --separate-stderr pcache fsck -y --undo "$BATS_TEST_TMPDIR/u" "$img"
	assert_status 8
	assert_contains "$stderr" "refusing to repair: CI_REPLICA_BAD at cache_info replica 0 writes 24 bytes at 8192, on the bad block at 8192 (512 bytes): nothing was written"
	assert_contains "$stderr" "ndctl clear-errors"
	assert_contains "$stderr" "ndctl start-scrub"
	assert_contains "$stderr" "-f/--force"
	[ "$(md5 "$img")" = "$before" ] || die "the image changed"
	[ ! -e "$BATS_TEST_TMPDIR/u" ] || die "an undo file was created"
	PCACHE_TEST_BADBLOCKS=8192:512 run --separate-stderr pcache fsck -p "$img"
	assert_status 8
	[ "$(md5 "$img")" = "$before" ] || die "the image changed with -p"
}

@test "repair --dry-run says a real run needs --force" {
	poke "$img" $((8192 + 9)) ff
	PCACHE_TEST_BADBLOCKS=8192:512 run --separate-stderr pcache fsck -y --dry-run "$img"
	assert_status 4
	assert_contains "$output" "would fix: CI_REPLICA_BAD"
	assert_contains "$stderr" "the repair would write over the bad block at 8192 (512 bytes); a real run needs --force"
}

@test "repair -f writes over the bad block; the bad block stays reported" {
	poke "$img" $((8192 + 9)) ff
	before=$(md5 "$img")
	PCACHE_TEST_BADBLOCKS=8192:512 run --separate-stderr pcache fsck -y -f "$img"
	assert_status 5
	assert_contains "$output" "fixed: CI_REPLICA_BAD"
	assert_contains "$stderr" "writing over the bad block at 8192 (512 bytes) as --force asks"
	[ "$(md5 "$img")" != "$before" ] || die "nothing was written"
	run --separate-stderr pcache fsck -n "$img"
	assert_status 0
}

@test "repair goes ahead when its writes miss the bad blocks" {
	poke "$img" $((8192 + 9)) ff
	PCACHE_TEST_BADBLOCKS=$(devoff 60 0):4096 run --separate-stderr pcache fsck -y "$img"
	assert_status 5
	assert_contains "$output" "fixed: CI_REPLICA_BAD"
	assert_contains "$output" "MEDIA_BADBLOCK at segment 60"
}

# ---- busy devices ----

@test "writers refuse a file locked by another process and name it" {
	flock_hold "$img"
	run --separate-stderr pcache fsck -y "$img"
	s1=$status e1=$stderr
	run --separate-stderr pcache format --force -y "$img"
	s2=$status e2=$stderr
	run --separate-stderr pcache undo "$BATS_TEST_TMPDIR/none" "$img"
	s3=$status e3=$stderr
	truncate -s 64M "$BATS_TEST_TMPDIR/backing"
	run --separate-stderr pcache flush "$img" "$BATS_TEST_TMPDIR/backing"
	s4=$status
	flock_release
	[ "$s1" -eq 8 ] || die "fsck -y: status $s1"
	assert_contains "$e1" "pcache fsck: $img: cannot open: in use by process flock (pid $holder)"
	[ "$s2" -eq 8 ] || die "format: status $s2"
	assert_contains "$e2" "in use by process flock (pid $holder)"
	[ "$s3" -eq 8 ] || die "undo: status $s3"
	assert_contains "$e3" "in use by process flock"
	[ "$s4" -eq 8 ] || die "flush: status $s4"
}

@test "fsck -n refuses a device in use unless -f; info and list still read it" {
	flock_hold "$img"
	run --separate-stderr pcache fsck -n "$img"
	s1=$status e1=$stderr
	run --separate-stderr pcache fsck -n -f "$img"
	s2=$status
	run --separate-stderr pcache info "$img"
	s3=$status
	run --separate-stderr pcache list --json "$img"
	s4=$status out4=$output
	flock_release
	[ "$s1" -eq 8 ] || die "fsck -n: status $s1"
	assert_contains "$e1" "in use by process flock"
	assert_contains "$e1" "'pcache fsck -n -f $img' checks it anyway"
	[ "$s2" -eq 0 ] || die "fsck -n -f: status $s2"
	[ "$s3" -eq 0 ] || die "info: status $s3"
	[ "$s4" -eq 0 ] || die "list: status $s4"
	pyjson <(printf '%s' "$out4") '
assert d[0]["in_use"] is True and d[0]["holder"].startswith("process flock (pid "), d[0]
assert d[0]["dm_device"] is None'
}

# loopdev FILE: attaches FILE to a loop device (root and losetup needed); sets $loop.
loopdev() {
	[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices)"
	command -v losetup >/dev/null || skip "losetup is not installed"
	loop=$(losetup -f --show "$1" 2>/dev/null) || skip "no loop device available"
}

@test "block device held exclusively by another process: writers refuse (root, loop)" {
	loopdev "$img"
	python3 -c 'import os, sys, time; os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL); print(flush=True); time.sleep(60)' "$loop" >"$BATS_TEST_TMPDIR/ready" &
	pid=$!
	for _ in $(seq 50); do [ -s "$BATS_TEST_TMPDIR/ready" ] && break; sleep 0.1; done
	run --separate-stderr pcache fsck -y "$loop"
	s1=$status e1=$stderr
	run --separate-stderr pcache info "$loop"
	s2=$status
	kill "$pid"; wait "$pid" 2>/dev/null || true
	run --separate-stderr pcache fsck -n "$loop"
	s3=$status
	losetup -d "$loop"
	[ "$s1" -eq 8 ] || die "fsck -y: status $s1"
	[ "$e1" = "pcache fsck: $loop: cannot open: in use by process python3 (pid $pid)" ] || die "fsck -y: $e1"
	[ "$s2" -eq 0 ] || die "info: status $s2"
	[ "$s3" -eq 0 ] || die "fsck -n after release: status $s3"
}

@test "block device under a dm table: 'in use by dm device NAME' (root, device-mapper)" {
	loopdev "$img"
	name="pcache-test-$$"
	if ! command -v dmsetup >/dev/null ||
		! dmsetup create "$name" --table "0 1024 linear $loop 0" 2>/dev/null; then
		losetup -d "$loop"
		skip "device-mapper is not available here (dmsetup create failed)"
	fi
	run --separate-stderr pcache fsck -y "$loop"
	s1=$status e1=$stderr
	run --separate-stderr pcache list --json "$loop"
	out2=$output
	dmsetup remove "$name"
	run --separate-stderr pcache fsck -n "$loop"
	s3=$status
	losetup -d "$loop"
	[ "$s1" -eq 8 ] || die "fsck -y: status $s1"
	assert_contains "$e1" "cannot open: in use by dm device $name"
	assert_contains "$e1" "dmsetup remove $name"
	NAME=$name pyjson <(printf '%s' "$out2") 'import os; assert d[0]["dm_device"] == os.environ["NAME"], d'
	[ "$s3" -eq 0 ] || die "fsck -n after dmsetup remove: status $s3"
}

@test "real pmem: the namespace's bad blocks (needs an NVDIMM and root)" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	dev=""
	for b in /dev/pmem[0-9]*; do
		[ -b "$b" ] && dev=$b && break
	done
	[ -n "$dev" ] || skip "no /dev/pmemN here (runs in the kernel interop guest)"
	run --separate-stderr pcache list --json "$dev"
	assert_status 0
	n=$(awk '{ n++ } END { print n + 0 }' "/sys/class/block/$(basename "$dev")/badblocks")
	pyjson <(printf '%s' "$output") 'assert d[0]["bad_blocks"] is not None, d'
	N=$n pyjson <(printf '%s' "$output") 'import os; assert d[0]["bad_blocks"] <= int(os.environ["N"]), d'
}
