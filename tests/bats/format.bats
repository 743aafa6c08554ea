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
	[ "$stderr" = "pcache format: $img: already holds a pcache cache: refusing to overwrite it
pcache format: hint: add --force to overwrite (dirty data is kept safe unless --discard-dirty)" ] ||
		die "stderr: '$stderr'"
	[ "$(md5 "$img")" = "$MD5_FRESH_CRC" ] || die "the image was changed"
}

@test "format --force overwrites a clean cache, keeping its data_crc, and says so" {
	img=$(fixture_copy "$FX_FRESH_CRC")
	run --separate-stderr pcache format --force -y "$img"
	assert_status 0
	[ "$stderr" = "pcache format: $img: data_crc on (kept from the existing cache; --no-data-crc turns it off)" ] ||
		die "stderr: '$stderr'"
	[ "$(md5 "$img")" = "$MD5_FRESH_CRC" ] || die "md5 $(md5 "$img") != $MD5_FRESH_CRC"
	img=$(fixture_copy "$FX_FRESH_NOCRC")
	run --separate-stderr pcache format --force -y "$img"
	assert_status 0
	[ "$stderr" = "pcache format: $img: data_crc off (kept from the existing cache; --data-crc turns it on)" ] ||
		die "stderr: '$stderr'"
	[ "$(md5 "$img")" = "$MD5_FRESH_NOCRC" ] || die "md5 $(md5 "$img") != $MD5_FRESH_NOCRC"
	# -q: the line is informational
	run --separate-stderr pcache format --force -y -q "$img"
	assert_status 0
	[ -z "$stderr" ] || die "stderr with -q: '$stderr'"
}

@test "format --force --no-data-crc / --data-crc override the existing cache's data_crc" {
	img=$(fixture_copy "$FX_FRESH_CRC")
	run --separate-stderr pcache format --force --no-data-crc -y "$img"
	assert_status 0
	[ "$stderr" = "pcache format: $img: data_crc off (--no-data-crc; the existing cache has it on)" ] ||
		die "stderr: '$stderr'"
	[ "$(md5 "$img")" = "$MD5_FRESH_NOCRC" ] || die "md5 $(md5 "$img") != $MD5_FRESH_NOCRC"
	run --separate-stderr pcache format --force --data-crc -y "$img"
	assert_status 0
	[ "$stderr" = "pcache format: $img: data_crc on (--data-crc; the existing cache has it off)" ] ||
		die "stderr: '$stderr'"
	[ "$(md5 "$img")" = "$MD5_FRESH_CRC" ] || die "md5 $(md5 "$img") != $MD5_FRESH_CRC"
	run --separate-stderr pcache format --force --data-crc -y "$img"
	assert_status 0
	[ "$stderr" = "pcache format: $img: data_crc on (--data-crc; the existing cache has it on too)" ] ||
		die "stderr: '$stderr'"
	# the last of the two options wins
	run --separate-stderr pcache format --force --no-data-crc --data-crc -y "$img"
	assert_status 0
	[ "$(md5 "$img")" = "$MD5_FRESH_CRC" ] || die "md5 $(md5 "$img") != $MD5_FRESH_CRC"
	# a blank device: the default is off, and nothing is said about it
	blank=$(mkimg pmem "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format --force -y "$blank"
	assert_status 0
	[ -z "$stderr" ] || die "stderr on a blank device: '$stderr'"
	[ "$(md5 "$blank")" = "$MD5_FRESH_NOCRC" ] || die "md5 $(md5 "$blank") != $MD5_FRESH_NOCRC"
}

@test "format --force --dry-run says which data_crc it would keep, and writes nothing" {
	img=$(fixture_copy "$FX_FRESH_CRC")
	run --separate-stderr pcache format --force --dry-run "$img"
	assert_status 0
	[ "$stderr" = "pcache format: $img: data_crc on (kept from the existing cache; --no-data-crc turns it off)" ] ||
		die "stderr: '$stderr'"
	assert_contains "$output" "flags 0x1183 (data_crc on"
	[ "$(md5 "$img")" = "$MD5_FRESH_CRC" ] || die "--dry-run changed the image"
}

@test "format --force --discard-dirty over unreadable cache_info: data_crc off, said so" {
	img=$(fixture_copy "$FX_DIRTY")
	# both cache_info replicas (8192, 12288): one byte each, their CRCs fail
	printf '\xff' | dd of="$img" bs=1 seek=8200 conv=notrunc status=none
	printf '\xff' | dd of="$img" bs=1 seek=12296 conv=notrunc status=none
	run --separate-stderr pcache format --force --discard-dirty -y "$img"
	assert_status 0
	[ "$stderr" = "pcache format: $img: data_crc off (the cache_info of the existing cache cannot be read; --data-crc turns it on)" ] ||
		die "stderr: '$stderr'"
	run --separate-stderr pcache info "$img"
	assert_field data_crc false
}

# ---- other signatures (libblkid) ----

# blkid_value IMG TAG: what `blkid -p` reports for TAG, or nothing.
blkid_value() {
	blkid -p -s "$2" -o value "$1" 2>/dev/null || true
}

# refused_then_forced IMG WHAT: format refuses IMG naming WHAT (exit 8, image unchanged),
# then --force formats it: blkid -p finds nothing left, pcache info reads a healthy cache.
refused_then_forced() {
	local img=$1 what=$2 before
	before=$(md5 "$img")
	run --separate-stderr pcache format -y "$img"
	assert_status 8
	assert_no_stdout
	[ "$stderr" = "pcache format: $img: holds $what: refusing to overwrite it
pcache format: hint: add --force to overwrite it" ] || die "stderr: '$stderr'"
	[ "$(md5 "$img")" = "$before" ] || die "the refused image was changed"
	run --separate-stderr pcache format --dry-run "$img"
	assert_status 8
	[ "$(md5 "$img")" = "$before" ] || die "the refused dry run changed the image"
	run --separate-stderr pcache format --force --dry-run "$img"
	assert_status 0
	assert_contains "$output" "erased      $what, magic at "
	[ "$(md5 "$img")" = "$before" ] || die "--dry-run changed the image"
	run --separate-stderr pcache format --force -y "$img"
	assert_status 0
	assert_contains "$output" "done: $img holds an empty pcache cache"
	run blkid -p "$img"
	[ "$status" -eq 2 ] || die "blkid -p after format: status $status: '$output'"
	[ -z "$output" ] || die "blkid -p after format: '$output'"
	run --separate-stderr pcache info "$img"
	assert_status 0
	assert_field health ok
	# [0, 4096) is zeroed, whatever it held
	cmp -s -n 4096 "$img" /dev/zero || die "[0, 4096) not zeroed"
}

@test "format refuses an ext4 file system (8), names it; --force formats it and blkid finds nothing" {
	img=$(mkimg ext4.img 600M)
	mkfs.ext4 -q -F "$img" || die "mkfs.ext4 failed"
	uuid=$(blkid_value "$img" UUID)
	[ -n "$uuid" ] || die "blkid sees no ext4 UUID"
	refused_then_forced "$img" "a file system (ext4, UUID $uuid)"
}

@test "format refuses a labelled swap area (8), names it; --force formats it" {
	img=$(mkimg swap.img 600M)
	mkswap -q -L myswap "$img" || die "mkswap failed"
	uuid=$(blkid_value "$img" UUID)
	[ -n "$uuid" ] || die "blkid sees no swap UUID"
	refused_then_forced "$img" "a swap area (swap, UUID $uuid, label \"myswap\")"
}

@test "format refuses an LVM physical volume (8) (pvcreate)" {
	command -v pvcreate >/dev/null || skip "pvcreate (lvm2) is not installed"
	img=$(mkimg lvm.img 600M)
	pvcreate -q -y --devicesfile "" "$img" >/dev/null 2>&1 || skip "pvcreate cannot label a file here"
	uuid=$(blkid_value "$img" UUID)
	refused_then_forced "$img" "an LVM physical volume (LVM2_member, UUID $uuid)"
}

# lvm_label IMG: an LVM2 physical volume label in sector 1, as pvcreate writes it (label
# header, PV UUID, device size; LVM's CRC over the header from offset_xl on), without lvm2.
lvm_label() {
	python3 - "$1" <<'PY'
import struct, sys, zlib
hdr = bytearray(512)
hdr[0:8] = b"LABELONE"
struct.pack_into("<Q", hdr, 8, 1)            # sector_xl: the label's own sector
struct.pack_into("<I", hdr, 20, 32)          # offset_xl: the PV header at +32
hdr[24:32] = b"LVM2 001"
hdr[32:64] = b"AbCdEf0123456789GhIjKl0123456789"
struct.pack_into("<Q", hdr, 64, 600 << 20)   # device_size_xl
# reflected CRC-32 started at 0xf597a6cf, no final xor (zlib's inverts both)
struct.pack_into("<I", hdr, 16, ~zlib.crc32(bytes(hdr[20:]), ~0xf597a6cf & 0xffffffff) & 0xffffffff)
f = open(sys.argv[1], "r+b")
f.seek(512)
f.write(hdr)
PY
}

@test "format refuses an LVM label written without lvm2 (8), names it; --force formats it" {
	img=$(mkimg lvm.img 600M)
	lvm_label "$img"
	[ "$(blkid_value "$img" TYPE)" = LVM2_member ] || die "blkid does not see the LVM label"
	refused_then_forced "$img" "an LVM physical volume (LVM2_member, UUID AbCdEf-0123-4567-89Gh-IjKl-0123-456789)"
}

# md090_sb IMG: an md RAID superblock, version 0.90, where md puts it: the last 64 KiB
# aligned block but one (past everything format writes: it must be erased).
md090_sb() {
	python3 - "$1" <<'PY'
import os, struct, sys
size = os.path.getsize(sys.argv[1])
f = open(sys.argv[1], "r+b")
f.seek((size & ~0xffff) - 0x10000)
# magic, version 0.90.0, gvalid_words, set_uuid0, ctime, level 1, size, nr_disks,
# raid_disks, md_minor, not_persistent, set_uuid1..3
f.write(struct.pack("<16I", 0xa92b4efc, 0, 90, 0, 0, 0x11223344, 0, 1, 0, 2, 2, 0, 0,
                    0x55667788, 0x99aabbcc, 0xddeeff00))
PY
}

@test "format refuses a RAID member (md 0.90 superblock at the end) (8), names it; --force erases it" {
	img=$(mkimg md.img 600M)
	md090_sb "$img"
	[ "$(blkid_value "$img" TYPE)" = linux_raid_member ] || die "blkid does not see the md superblock"
	refused_then_forced "$img" "a RAID member (linux_raid_member, UUID 11223344-5566-7788-99aa-bbccddeeff00)"
}

# reiserfs_sb IMG: a reiserfs superblock at 64 KiB, as blkid knows it: journal block 18,
# block size 4096, magic at +52 (65588: in segment 0's data area, past what format writes).
reiserfs_sb() {
	python3 -c '
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(65536 + 12); f.write(struct.pack("<I", 18))
f.seek(65536 + 44); f.write(struct.pack("<H", 4096))
f.seek(65536 + 52); f.write(b"ReIsEr2Fs\0")
' "$1"
}

@test "format --force erases a signature it does not overwrite (reiserfs magic in a data area)" {
	img=$(mkimg reiser.img 600M)
	reiserfs_sb "$img"
	[ "$(blkid_value "$img" TYPE)" = reiserfs ] || die "blkid does not see the reiserfs signature"
	refused_then_forced "$img" "a file system (reiserfs)"
	# over the cache it left: the signature is erased after the layout is written
	reiserfs_sb "$img"
	run --separate-stderr pcache format --force -y -v "$img"
	assert_status 0
	assert_contains "$stderr" "pcache format: $img: 1 old signature erased outside the layout"
	run blkid -p "$img"
	[ -z "$output" ] || die "blkid -p after format: '$output'"
	[ "$(od -An -tx1 -j 65588 -N 9 "$img" | tr -d ' ')" = 000000000000000000 ] ||
		die "the magic is still there"
}

@test "format refuses a partition table and a file system together, naming both" {
	img=$(mkimg pt.img 600M)
	mkfs.ext4 -q -F "$img" || die "mkfs.ext4 failed"
	uuid=$(blkid_value "$img" UUID)
	# a DOS partition table: one Linux partition from sector 2048, boot signature 55aa
	python3 -c '
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(446); f.write(bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", 2048, 204800))
f.seek(510); f.write(b"\x55\xaa")
' "$img"
	before=$(md5 "$img")
	run --separate-stderr pcache format -y "$img"
	assert_status 8
	assert_contains "$stderr" "pcache format: $img: holds "
	assert_contains "$stderr" "a partition table (dos"
	assert_contains "$stderr" " and "
	assert_contains "$stderr" "a file system (ext4, UUID $uuid)"
	assert_contains "$stderr" "pcache format: hint: add --force to overwrite them"
	[ "$(md5 "$img")" = "$before" ] || die "the refused image was changed"
	run --separate-stderr pcache format --force -y -q "$img"
	assert_status 0
	run blkid -p "$img"
	[ -z "$output" ] || die "blkid -p after format: '$output'"
}

@test "format: an existing pcache cache keeps its own message, before other signatures" {
	img=$(fixture_copy "$FX_FRESH_NOCRC")
	mkswap -q "$img" >/dev/null 2>&1 || true
	# mkswap wrote [0, 4096) only: the cache is still there
	printf 'SWAPSPACE2' | dd of="$img" bs=1 seek=4086 conv=notrunc status=none
	run --separate-stderr pcache format -y "$img"
	assert_status 8
	assert_contains "$stderr" "already holds a pcache cache: refusing to overwrite it"
}

# ---- --json ----

@test "format --json: the layout as an array of one object" {
	img=$(mkimg pmem "$KERNEL_DEV_SIZE")
	run --separate-stderr pcache format --json --data-crc --gc-percent 50 -y "$img"
	assert_status 0
	[ -z "$stderr" ] || die "stderr: '$stderr'"
	echo "$output" >"$BATS_TEST_TMPDIR/f.json"
	pyjson "$BATS_TEST_TMPDIR/f.json" "
assert isinstance(d, list) and len(d) == 1, d
r = d[0]
assert r['device'] == '$img', r['device']
assert r['dry_run'] is False
assert r['device_size'] == $KERNEL_DEV_SIZE
assert r['seg_total'] == 63 and r['n_segs'] == 63, r
assert r['data_crc'] is True and r['data_crc_from'] == 'option', r
assert r['gc_percent'] == 50 and r['cache_mode'] == 'writeback', r
assert r['cache_flags'] == (50 << 6) | 2 | 1, r['cache_flags']
zero = {'cache_seg': 0, 'seg_off': 0}
assert r['key_head'] == zero and r['dirty_tail'] == zero and r['key_tail'] == zero, r
recs = {x['record']: x for x in r['records']}
assert recs['superblock'] == {'record': 'superblock', 'offset': 4096, 'length': 24, 'slot': None, 'seq': None}, recs
assert recs['cache_info'] == {'record': 'cache_info', 'offset': 12288, 'length': 24, 'slot': 1, 'seq': 1}, recs
assert recs['key_tail']['offset'] == 16384 and recs['dirty_tail']['offset'] == 16416, recs
assert r['segments'] == {'offset': 20480, 'count': 63, 'size': 16777216, 'gen': 0, 'zeroed_per_segment': 12312}, r['segments']
assert r['zeroed'] == [{'offset': 0, 'length': 4096}, {'offset': 8192, 'length': 12288}], r['zeroed']
assert r['erased'] == [], r['erased']
"
	run --separate-stderr pcache info "$img"
	assert_field gc_percent 50
	assert_field data_crc true
}

@test "format --json --dry-run over a swap area with --force: erased lists it, nothing written" {
	img=$(mkimg swap.img 600M)
	mkswap -q "$img" || die "mkswap failed"
	uuid=$(blkid_value "$img" UUID)
	before=$(md5 "$img")
	run --separate-stderr pcache format --json -u --dry-run --force "$img"
	assert_status 0
	[ "$(md5 "$img")" = "$before" ] || die "--dry-run changed the image"
	echo "$output" >"$BATS_TEST_TMPDIR/f.json"
	pyjson "$BATS_TEST_TMPDIR/f.json" "
r = d[0]
assert r['dry_run'] is True
assert r['data_crc'] is False and r['data_crc_from'] == 'default', r
assert r['device_size'] == '600.00 MiB', r['device_size']
assert r['cache_flags'] == '0x1182', r['cache_flags']
assert r['erased'] == [{'signature': 'swap', 'kind': 'swap area', 'uuid': '$uuid', 'label': None, 'offset': 4086, 'length': '10 B'}], r['erased']
"
	# refused: nothing on stdout
	run --separate-stderr pcache format --json "$img"
	assert_status 8
	assert_no_stdout
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
	assert_field dirty_bytes "0 bytes"
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
	assert_field device_size "1.00 GiB (1073741824 bytes)"
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
