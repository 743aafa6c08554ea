#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# A damaged kset in the middle of the log (pcache-fsck(8) --salvage, doc/format.md §13.4,
# §13.6): by default the repair ends the log there as the kernel does and names every byte
# range that loses its newest version; --salvage keeps the valid ksets behind the damage.
# The image: the dirty kernel fixture with the checksum of its third kset (0:10288) broken;
# 13 valid ksets with 1526 keys follow it.

load helpers

HINT="pcache fsck: hint: 13 valid ksets (1526 keys) behind the damage are dropped, as the kernel drops them; 'pcache fsck -y --salvage img.pmem' keeps them instead, beyond the kernel (ranges the damaged kset held then show older data)"

# extents IMG: the extent map replay prints (what the kernel would serve), no summary.
extents() {
	"$PCACHE" replay "$1" 2>/dev/null | grep -v '^live keys'
}

@test "fsck -y ends the log at the damage as the kernel does, and lists what is lost" {
	img=$(damaged img.pmem kset-crc)
	extents "$img" >"$BATS_TEST_TMPDIR/kernel-view"
	cd "$BATS_TEST_TMPDIR"
	run pcache fsck -y img.pmem
	[ "$status" -eq 1 ] || die "exit $status: $output"
	[[ "$output" == *"fixed: LOG_END_CORRUPT at kset 0:10288: log from 0:10288: end the log there; 0 keys dropped, 1 corrupt kset skipped; 13 valid ksets behind the damage dropped, as the kernel drops them"* ]] || die "$output"
	[[ "$output" == *"img.pmem: lost to the repair: 1526 keys, 5.79 MiB (6074368 bytes) of dirty data, 1 corrupt kset"$'\n'* ]] || die "$output"
	[[ "$output" == *"img.pmem: 5.79 MiB (6074368 bytes) in 218 ranges lost their newest version (reads there return older cached data or the backing device):"$'\n'"  192512 +32768"$'\n'* ]] || die "$output"
	[[ "$output" == *"  ... 198 more (-v or --json lists them all)"* ]] || die "$output"
	[[ "$output" == *"img.pmem: 472.00 KiB (483328 bytes) in 25 ranges probably lost their newest version too (the keys of corrupt ksets read without trusting them, and keys whose data cannot be found):"* ]] || die "$output"
	[[ "$output" == *"$HINT"* ]] || die "$output"
	run pcache fsck -n img.pmem
	[ "$status" -eq 0 ] || die "second run: exit $status: $output"
	# the kernel served exactly this before the repair: nothing more is lost
	extents img.pmem | cmp - kernel-view || die "the repair changed what the kernel serves"
}

@test "fsck -y -v lists every lost range; --json has them all with the totals" {
	img=$(damaged img.pmem kset-crc)
	cp --sparse=always "$img" "$BATS_TEST_TMPDIR/j.pmem"
	run pcache fsck -y -v "$img"
	[ "$status" -eq 1 ]
	[ "$(grep -c '^  [0-9]* +[0-9]*$' <<<"$output")" -eq $((218 + 25)) ] || die "$output"
	run pcache fsck -y --json "$BATS_TEST_TMPDIR/j.pmem"
	[ "$status" -eq 1 ]
	python3 - "$output" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])[0]["repair"]
assert r["dropped_behind_damage"] == {"ksets": 13, "keys": 1526}, r["dropped_behind_damage"]
assert r["lost_keys"] == 1526 and r["lost_ksets"] == 1, r
assert len(r["lost_ranges"]) == 218 and r["lost_bytes"] == 6074368, r["lost_bytes"]
assert sum(x["length"] for x in r["lost_ranges"]) == r["lost_bytes"]
assert r["lost_ranges"][0] == {"offset": 192512, "length": 32768}, r["lost_ranges"][0]
assert len(r["suspect_ranges"]) == 25 and r["suspect_bytes"] == 483328
assert r["lost_dirty_bytes"] == 6074368
EOF
}

@test "fsck -y --salvage keeps the valid ksets behind the damage" {
	img=$(damaged img.pmem kset-crc)
	cd "$BATS_TEST_TMPDIR"
	run pcache fsck -y --salvage img.pmem
	[ "$status" -eq 1 ] || die "exit $status: $output"
	[[ "$output" == *"fixed: LOG_END_CORRUPT at kset 0:10288: log from 0:10288: rebuild it in free segment 3 (13 ksets); 0 keys dropped, 1 corrupt kset skipped"$'\n'* ]] || die "$output"
	[[ "$output" == *"img.pmem: lost to the repair: 0 keys, 0 bytes of dirty data, 1 corrupt kset (they were unusable)"* ]] || die "$output"
	[[ "$output" == *"img.pmem: 472.00 KiB (483328 bytes) in 25 ranges probably lost their newest version (the keys of corrupt ksets read without trusting them, and keys whose data cannot be found):"* ]] || die "$output"
	[[ "$output" != *"hint:"* ]] || die "$output"
	run pcache fsck -n img.pmem
	[ "$status" -eq 0 ] || die "second run: exit $status: $output"
	[[ "$output" == *"img.pmem: log: 15 ksets, 1782 keys, 1721 live extents"* ]] || die "$output"
}

@test "--salvage goes with a repair: with -n it is a usage error, nothing opened" {
	img=$(damaged img.pmem kset-crc)
	before=$(imgsum "$img")
	run pcache fsck -n --salvage "$img"
	[ "$status" -eq 16 ]
	[ "$output" = "pcache fsck: --undo, --dry-run and --salvage go with -p, -y, --repair or the interactive mode (try 'pcache fsck --help')" ] || die "$output"
	[ "$(imgsum "$img")" = "$before" ]
}

@test "a dry run says what it would lose, and writes nothing" {
	img=$(damaged img.pmem kset-crc)
	before=$(imgsum "$img")
	run pcache fsck -y --dry-run "$img"
	[ "$status" -eq 4 ] || die "exit $status: $output"
	[[ "$output" == *": the repair would lose: 1526 keys, 5.79 MiB (6074368 bytes) of dirty data, 1 corrupt kset"* ]] || die "$output"
	[[ "$output" == *": 5.79 MiB (6074368 bytes) in 218 ranges would lose their newest version"* ]] || die "$output"
	[ "$(imgsum "$img")" = "$before" ]
}

@test "--no-verify-data goes with -n only: a repair always checks the data (usage error 16)" {
	img=$(damaged img.pmem kset-crc)
	before=$(imgsum "$img")
	for mode in -y -p --repair; do
		run --separate-stderr pcache fsck "$mode" --no-verify-data "$img" </dev/null
		[ "$status" -eq 16 ] || die "$mode: exit $status"
		[ "$stderr" = "pcache fsck: --no-verify-data goes with -n: a repair always checks the data checksums the kernel checks (try 'pcache fsck --help')" ] || die "$mode: $stderr"
	done
	[ "$(imgsum "$img")" = "$before" ]
	run pcache fsck -n --no-verify-data "$img"
	[ "$status" -eq 4 ]
}
