#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache undo (doc/undo.md, pcache-undo(8)): the undo files of fsck --undo, shell -w and
# undo --undo put the image back byte for byte; a file made for another device or state,
# applied twice, cut short or with any byte changed is refused and nothing is written.
# The images are copies of the dirty kernel fixture damaged with build/tests/corrupt.

load helpers

CORRUPT="$PCACHE_BUILD/tests/corrupt"
DAMAGE=(ci-replica0-crc tail-key-replica-crc kset-crc)   # 4 problems, 3 fixes, 4 writes
# (with --salvage: the log is rebuilt in a free segment, a write of its own to undo)



# repaired: IMG damaged with DAMAGE and repaired by fsck -y --undo U; SUM_DAMAGED and
# SUM_REPAIRED are its imgsums before and after.
repaired() {
	IMG=$(damaged img.pmem "${DAMAGE[@]}") || return 1
	U="$BATS_TEST_TMPDIR/img.undo"
	SUM_DAMAGED=$(imgsum "$IMG")
	"$PCACHE" fsck -y --salvage --undo "$U" "$IMG" >/dev/null 2>&1 || [ $? -eq 1 ] || { die "fsck -y failed"; return 1; }
	SUM_REPAIRED=$(imgsum "$IMG")
	[ "$SUM_REPAIRED" != "$SUM_DAMAGED" ] || die "fsck -y changed nothing"
}

# records UNDO: one line per record, "FILE_OFFSET LEN DEVICE_OFFSET".
records() {
	python3 - "$1" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
at = 128
while at + 24 <= len(d):
    magic, n, off = struct.unpack_from("<IIQ", d, at)
    if magic != 0x52554350:
        break
    print(at, n, off)
    at += 24 + n
EOF
}

# flip FILE OFFSET: inverts the byte at OFFSET.
flip() {
	python3 -c 'import sys
f = open(sys.argv[1], "r+b"); o = int(sys.argv[2]); f.seek(o); b = f.read(1)
f.seek(o); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

# refused_damaged FILE: the last run refused FILE as damaged (exit 8, one line, nothing on
# stdout) and IMG is still as fsck left it.
refused_damaged() {
	[ "$status" -eq 8 ] || die "$1: exit $status, expected 8; stdout '$output' stderr '$stderr'" || return 1
	[ "$stderr" = "pcache undo: $1: not a pcache undo file, or damaged" ] ||
		die "$1: stderr '$stderr'" || return 1
	assert_no_stdout || return 1
	[ "$(imgsum "$IMG")" = "$SUM_REPAIRED" ] || die "$1: the image was written"
}

# refused_stale FILE DEV SUM: the last run refused FILE for DEV, whose imgsum is still SUM.
refused_stale() {
	[ "$status" -eq 8 ] || die "$1 on $2: exit $status, expected 8; stdout '$output' stderr '$stderr'" || return 1
	[ "$stderr" = "pcache undo: $1: belongs to another device or state: $2 does not hold what the repair wrote (size, superblock or a saved range differs)" ] ||
		die "$1 on $2: stderr '$stderr'" || return 1
	assert_no_stdout || return 1
	[ "$(imgsum "$2")" = "$3" ] || die "$1: $2 was written"
}

@test "fsck -y --undo, then undo: the damaged image comes back byte for byte (md5 and cmp)" {
	img=$(damaged img.pmem "${DAMAGE[@]}")
	cp --sparse=always "$img" "$BATS_TEST_TMPDIR/damaged.copy"
	before=$(md5 "$img")
	u="$BATS_TEST_TMPDIR/img.undo"
	run --separate-stderr pcache fsck -y --salvage --undo "$u" "$img"
	assert_status 1
	[ "${output##*$'\n'}" = "$img: 4 problems found, 3 changes made; 0 problems remain; the kernel would load this cache over a backing device of at least 2.00 GiB (2146758656 bytes)" ] ||
		die "fsck -y: '$output'"
	[ "$(stat -c %a "$u")" = 600 ] || die "undo file mode $(stat -c %a "$u")"
	[ "$(records "$u" | wc -l)" -eq 4 ] || die "records: $(records "$u")"
	# a finished file: flags 1, records 4, end = its size (doc/undo.md)
	[ "$(od -An -tu4 -j 12 -N 4 "$u" | tr -d ' ')" = 1 ] || die "not finished"
	[ "$(od -An -tu8 -j 72 -N 16 "$u" | tr -s ' ')" = " 4 $(stat -c %s "$u")" ] ||
		die "records/end: $(od -An -tu8 -j 72 -N 16 "$u")"
	[ "$(imgsum "$img")" != "$(imgsum "$BATS_TEST_TMPDIR/damaged.copy")" ] || die "fsck -y wrote nothing"
	run --separate-stderr pcache fsck -n "$img"
	assert_status 0
	run --separate-stderr pcache undo "$u" "$img"
	assert_status 0
	[ "$output" = "$img: 4 ranges restored from $u" ] || die "undo: '$output'"
	[ -z "$stderr" ] || die "undo stderr: '$stderr'"
	[ "$(md5 "$img")" = "$before" ] || die "md5 differs after undo"
	cmp "$img" "$BATS_TEST_TMPDIR/damaged.copy" || die "cmp: the image differs after undo"
	# imgsum, used by the other tests, agrees with md5 both ways
	[ "$(imgsum "$img")" = "$(imgsum "$BATS_TEST_TMPDIR/damaged.copy")" ] || die "imgsum differs"
	flip "$BATS_TEST_TMPDIR/damaged.copy" 1000000000
	[ "$(imgsum "$img")" != "$(imgsum "$BATS_TEST_TMPDIR/damaged.copy")" ] || die "imgsum misses a byte"
	run --separate-stderr pcache fsck -n "$img"
	assert_status 4
}

@test "each kind of repair (-y, and -p) is undone byte for byte, the superblock's too" {
	for c in sb-crc chain-no-next dirty-tail-off-log gen-both-crc seginfo-both-crc last-loop \
		"-p tail-key-replica-crc"; do
		mode=-y
		[[ "$c" != "-p "* ]] || { mode=-p; c=${c#-p }; }
		img=$(damaged "$c.pmem" "$c")
		u="$BATS_TEST_TMPDIR/$c.undo"
		sum=$(imgsum "$img")
		run --separate-stderr pcache fsck "$mode" --undo "$u" "$img"
		[ "$status" -eq 1 ] || die "$c: fsck $mode exit $status: $output $stderr"
		[ "$(imgsum "$img")" != "$sum" ] || die "$c: fsck $mode wrote nothing"
		run --separate-stderr pcache undo "$u" "$img"
		[ "$status" -eq 0 ] || die "$c: undo exit $status: $stderr"
		[ "$(imgsum "$img")" = "$sum" ] || die "$c: undo did not restore the image"
		rm -f "$img"
	done
}

@test "shell -w --undo: undo restores byte for byte; undo --undo brings the changes back" {
	img=$(fixture_copy "$FX_DIRTY")
	sum=$(imgsum "$img")
	u="$BATS_TEST_TMPDIR/shell.undo"
	run --separate-stderr pcache shell -w --undo "$u" -c 'set cache_info gc_percent 50; set sb pad 7' "$img"
	assert_status 0
	changed=$(imgsum "$img")
	[ "$changed" != "$sum" ] || die "shell -w wrote nothing"
	run --separate-stderr pcache undo --undo "$u.2" "$u" "$img"
	assert_status 0
	[ "$output" = "$img: 2 ranges restored from $u" ] || die "undo: '$output'"
	[ "$(imgsum "$img")" = "$sum" ] || die "undo did not restore the image"
	run --separate-stderr pcache undo "$u.2" "$img"
	assert_status 0
	[ "$output" = "$img: 2 ranges restored from $u.2" ] || die "undo of the undo: '$output'"
	[ "$(imgsum "$img")" = "$changed" ] || die "undo of the undo did not bring the changes back"
}

@test "undo --undo U2: undoing U2 brings back the repaired image byte for byte, and so on" {
	repaired
	u2="$BATS_TEST_TMPDIR/redo.undo"
	run --separate-stderr pcache undo --undo "$u2" "$U" "$IMG"
	assert_status 0
	[ "$output" = "$IMG: 4 ranges restored from $U" ] || die "undo: '$output'"
	[ "$(imgsum "$IMG")" = "$SUM_DAMAGED" ] || die "undo did not restore the damaged image"
	[ "$(stat -c %a "$u2")" = 600 ] || die "U2 mode $(stat -c %a "$u2")"
	[ "$(records "$u2" | wc -l)" -eq 4 ] || die "U2 records: $(records "$u2")"
	run --separate-stderr pcache undo "$u2" "$IMG"
	assert_status 0
	[ "$output" = "$IMG: 4 ranges restored from $u2" ] || die "undo U2: '$output'"
	[ "$(imgsum "$IMG")" = "$SUM_REPAIRED" ] || die "undo U2 did not bring back the repaired image"
	# the repaired state again: U applies again, U2 no longer
	run --separate-stderr pcache undo "$u2" "$IMG"
	refused_stale "$u2" "$IMG" "$SUM_REPAIRED"
	run --separate-stderr pcache undo "$U" "$IMG"
	assert_status 0
	[ "$(imgsum "$IMG")" = "$SUM_DAMAGED" ] || die "U did not apply again"
}

@test "undo --json: one object with the ranges restored; --undo FILE2 in saved_to; nothing on a refusal" {
	repaired
	local u2="$BATS_TEST_TMPDIR/u2.undo"
	run --separate-stderr pcache undo --json --undo "$u2" "$U" "$IMG"
	assert_status 0
	[ -z "$stderr" ] || die "stderr: '$stderr'"
	echo "$output" >"$BATS_TEST_TMPDIR/u.json"
	pyjson "$BATS_TEST_TMPDIR/u.json" "
assert d == [{'device': '$IMG', 'undo_file': '$U', 'ranges_restored': 4, 'saved_to': '$u2'}], d
"
	[ "$(imgsum "$IMG")" = "$SUM_DAMAGED" ] || die "undo --json did not restore the image"
	run --separate-stderr pcache undo --json "$u2" "$IMG"
	assert_status 0
	echo "$output" >"$BATS_TEST_TMPDIR/u.json"
	pyjson "$BATS_TEST_TMPDIR/u.json" "
assert d == [{'device': '$IMG', 'undo_file': '$u2', 'ranges_restored': 4, 'saved_to': None}], d
"
	[ "$(imgsum "$IMG")" = "$SUM_REPAIRED" ] || die "undo of U2 did not bring the repair back"
	# the same file again: refused, nothing on stdout
	run --separate-stderr pcache undo --json "$u2" "$IMG"
	assert_status 8
	assert_no_stdout
}

@test "undo --undo: an existing FILE2 is refused, nothing written; a refused undo creates no FILE2" {
	repaired
	: >"$BATS_TEST_TMPDIR/exists"
	run --separate-stderr pcache undo --undo "$BATS_TEST_TMPDIR/exists" "$U" "$IMG"
	assert_status 8
	[ "$stderr" = "pcache undo: $BATS_TEST_TMPDIR/exists: cannot create undo file: File exists" ] ||
		die "stderr '$stderr'"
	assert_no_stdout
	[ ! -s "$BATS_TEST_TMPDIR/exists" ] || die "the existing file was written"
	[ "$(imgsum "$IMG")" = "$SUM_REPAIRED" ] || die "the image was written"
	# refused (the image is not in the state the repair left): no FILE2
	flip "$IMG" 4100
	sum=$(imgsum "$IMG")
	run --separate-stderr pcache undo --undo "$BATS_TEST_TMPDIR/u2" "$U" "$IMG"
	refused_stale "$U" "$IMG" "$sum"
	[ ! -e "$BATS_TEST_TMPDIR/u2" ] || die "FILE2 was created for a refused undo"
	run --separate-stderr pcache undo --undo
	assert_status 16
	[[ "$stderr" == "pcache undo: option '--undo': unknown, or its argument is missing"* ]] || die "stderr '$stderr'"
}

@test "an undo file made for another device is refused and nothing is written" {
	repaired
	# another cache of the same size (another superblock)
	other=$(fixture_copy "$FX_FRESH_NOCRC")
	sum=$(imgsum "$other")
	run --separate-stderr pcache undo "$U" "$other"
	refused_stale "$U" "$other" "$sum"
	# the same cache, the same superblock, another repair: the saved ranges differ
	other=$(damaged other.pmem tail-key-replica-crc)
	"$PCACHE" fsck -y "$other" >/dev/null || [ $? -eq 1 ] || die "fsck -y other"
	sum=$(imgsum "$other")
	run --separate-stderr pcache undo "$U" "$other"
	refused_stale "$U" "$other" "$sum"
	# the repaired image itself, one block longer: the size differs
	cp --sparse=always "$IMG" "$BATS_TEST_TMPDIR/longer.pmem"
	truncate -s +4096 "$BATS_TEST_TMPDIR/longer.pmem"
	sum=$(imgsum "$BATS_TEST_TMPDIR/longer.pmem")
	run --separate-stderr pcache undo "$U" "$BATS_TEST_TMPDIR/longer.pmem"
	refused_stale "$U" "$BATS_TEST_TMPDIR/longer.pmem" "$sum"
	# and the file still applies where it belongs
	run --separate-stderr pcache undo "$U" "$IMG"
	assert_status 0
}

@test "the same undo file twice: the second run is refused and writes nothing" {
	repaired
	run --separate-stderr pcache undo "$U" "$IMG"
	assert_status 0
	[ "$(imgsum "$IMG")" = "$SUM_DAMAGED" ] || die "undo did not restore the image"
	run --separate-stderr pcache undo "$U" "$IMG"
	refused_stale "$U" "$IMG" "$SUM_DAMAGED"
}

@test "an image changed since the repair (its oldest saved range, or its superblock) is refused and nothing is written" {
	repaired
	read -r _ len off < <(records "$U" | head -1)
	[ "$off" -eq 8192 ] && [ "$len" -eq 24 ] || die "the oldest record is $len bytes at $off"
	# the oldest range: the three newer ones would match, but nothing is written
	flip "$IMG" $((off + 5))
	sum=$(imgsum "$IMG")
	run --separate-stderr pcache undo "$U" "$IMG"
	refused_stale "$U" "$IMG" "$sum"
	flip "$IMG" $((off + 5))
	# the superblock (bound by the header)
	flip "$IMG" $((4096 + 12))
	sum=$(imgsum "$IMG")
	run --separate-stderr pcache undo "$U" "$IMG"
	refused_stale "$U" "$IMG" "$sum"
	flip "$IMG" $((4096 + 12))
	run --separate-stderr pcache undo "$U" "$IMG"
	assert_status 0
}

@test "a change outside every saved range is not recorded: undo puts the ranges back and keeps it" {
	repaired
	cp --sparse=always "$(fixture "$FX_DIRTY")" "$BATS_TEST_TMPDIR/expected.pmem"
	for c in "${DAMAGE[@]}"; do "$CORRUPT" "$BATS_TEST_TMPDIR/expected.pmem" "$c" >/dev/null; done
	[ "$(imgsum "$BATS_TEST_TMPDIR/expected.pmem")" = "$SUM_DAMAGED" ] || die "the damage is not repeatable"
	# [0, 4096) is neither read nor written by anyone (doc/format.md)
	flip "$IMG" 100
	flip "$BATS_TEST_TMPDIR/expected.pmem" 100
	run --separate-stderr pcache undo "$U" "$IMG"
	assert_status 0
	[ "$(imgsum "$IMG")" = "$(imgsum "$BATS_TEST_TMPDIR/expected.pmem")" ] ||
		die "not the damaged image with the byte at 100 changed"
}

@test "an undo file cut anywhere (header, record header, data, record boundary, last byte) is refused, nothing written" {
	repaired
	size=$(stat -c %s "$U")
	mapfile -t recs < <(records "$U")
	[ "${#recs[@]}" -eq 4 ] || die "records: ${recs[*]}"
	read -r r3 _ _ <<<"${recs[2]}"   # the big one: the log rebuilt in a free segment
	read -r r4 _ _ <<<"${recs[3]}"
	for cut in 0 1 100 127 128 140 $((128 + 24 + 5)) "$r3" $((r3 + 10)) $((r3 + 24 + 30000)) \
		"$r4" $((r4 + 24 + 23)) $((size - 1)); do
		t="$BATS_TEST_TMPDIR/cut-$cut.undo"
		head -c "$cut" "$U" >"$t"
		run --separate-stderr pcache undo "$t" "$IMG"
		refused_damaged "$t"
	done
	run --separate-stderr pcache undo "$U" "$IMG"
	assert_status 0
}

@test "an undo file with any byte changed (header, crc, record fields, data, checksums) is refused, nothing written" {
	repaired
	size=$(stat -c %s "$U")
	mapfile -t recs < <(records "$U")
	read -r r2 _ _ <<<"${recs[1]}"
	read -r r3 _ _ <<<"${recs[2]}"
	# header: magic, flags, size, superblock before/after, records, end, records crc, zero,
	# crc; record 1: magic, len, offset, old crc, new crc, data; data deep in record 3;
	# record 2's new crc; the last byte of the file
	for at in 0 12 16 30 50 72 80 88 100 124 127 128 132 136 144 148 $((128 + 24 + 3)) \
		$((r2 + 20)) $((r3 + 24 + 40000)) $((size - 1)); do
		t="$BATS_TEST_TMPDIR/flip-$at.undo"
		cp "$U" "$t"
		flip "$t" "$at"
		run --separate-stderr pcache undo "$t" "$IMG"
		refused_damaged "$t"
	done
	run --separate-stderr pcache undo "$U" "$IMG"
	assert_status 0
}

@test "a repair cut short (file not finished): a torn last record is ignored, a damaged one is not" {
	repaired
	# the file as a crash before step 3 leaves it: not finished, header re-sealed
	python3 - "$U" "$BATS_TEST_TMPDIR/crash.undo" <<'EOF'
import struct, sys
def kcrc(b, crc=0x3B15A):
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc
d = bytearray(open(sys.argv[1], "rb").read())
assert struct.unpack_from("<I", d, 124)[0] == kcrc(d[:124]), "kcrc does not match the header"
struct.pack_into("<I", d, 12, 0)
d[48:124] = bytes(76)
struct.pack_into("<I", d, 124, kcrc(d[:124]))
open(sys.argv[2], "wb").write(d)
EOF
	t="$BATS_TEST_TMPDIR/crash.undo"
	mapfile -t recs < <(records "$t")
	read -r r2 _ _ <<<"${recs[1]}"
	# a fifth record torn by the crash: its header and part of its data
	cp "$t" "$t.torn"
	tail -c +129 "$t" | head -c $((24 + 10)) >>"$t.torn"
	run --separate-stderr pcache undo "$t.torn" "$IMG"
	assert_status 0
	[ "$output" = "$IMG: 4 ranges restored from $t.torn" ] || die "torn: '$output'"
	[ "$(imgsum "$IMG")" = "$SUM_DAMAGED" ] || die "torn: the image was not restored"
	# back to the repaired state, then: a record in the middle with a changed byte
	"$PCACHE" fsck -y --salvage "$IMG" >/dev/null || [ $? -eq 1 ] || die "fsck -y again"
	[ "$(imgsum "$IMG")" = "$SUM_REPAIRED" ] || die "the second repair differs from the first"
	cp "$t" "$t.bad"
	flip "$t.bad" $((r2 + 24 + 2))
	run --separate-stderr pcache undo "$t.bad" "$IMG"
	refused_damaged "$t.bad"
	run --separate-stderr pcache undo "$t" "$IMG"
	assert_status 0
	[ "$(imgsum "$IMG")" = "$SUM_DAMAGED" ] || die "the unfinished file did not restore the image"
}

@test "not an undo file, a missing one, a usage error" {
	repaired
	head -c 4096 "$IMG" >"$BATS_TEST_TMPDIR/notundo"
	run --separate-stderr pcache undo "$BATS_TEST_TMPDIR/notundo" "$IMG"
	refused_damaged "$BATS_TEST_TMPDIR/notundo"
	run --separate-stderr pcache undo "$BATS_TEST_TMPDIR/none" "$IMG"
	assert_status 8
	[ "$stderr" = "pcache undo: $BATS_TEST_TMPDIR/none: undo failed: No such file or directory" ] ||
		die "stderr '$stderr'"
	[ "$(imgsum "$IMG")" = "$SUM_REPAIRED" ] || die "the image was written"
	run --separate-stderr pcache undo "$U"
	assert_status 16
	[ "$stderr" = "pcache undo: missing FILE or DEV (try 'pcache undo --help')" ] || die "stderr '$stderr'"
	run --separate-stderr pcache undo "$U" "$IMG" extra
	assert_status 16
	[ "$stderr" = "pcache undo: too many arguments (try 'pcache undo --help')" ] || die "stderr '$stderr'"
}

@test "format --force takes no --undo: a usage error, nothing written" {
	img=$(fixture_copy "$FX_FRESH_NOCRC")
	sum=$(imgsum "$img")
	run --separate-stderr pcache format --force --undo "$BATS_TEST_TMPDIR/f.undo" "$img"
	assert_status 16
	[[ "$stderr" == "pcache format: option '--undo': unknown, or its argument is missing"* ]] || die "stderr '$stderr'"
	[ ! -e "$BATS_TEST_TMPDIR/f.undo" ] || die "an undo file was created"
	[ "$(imgsum "$img")" = "$sum" ] || die "the image was written"
}
