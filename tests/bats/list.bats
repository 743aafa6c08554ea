#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache list: pmem discovery (libndctl/libdaxctl) and the image files given as arguments.
# Machines without persistent memory (CI) check the "no persistent memory found" path; the
# namespace tests run where an NVDIMM exists (the kernel interop guest) and skip elsewhere.

load helpers

MKIMAGE="$(dirname "$PCACHE")/tests/mkimage"

# True when the kernel exposes an NVDIMM region (what libndctl would list).
have_pmem() {
	compgen -G "/sys/bus/nd/devices/region*" >/dev/null ||
		compgen -G "/sys/bus/dax/devices/dax*" >/dev/null
}

setup_file() {
	[ -x "$PCACHE" ] || die "$PCACHE is not built"
	[ -x "$MKIMAGE" ] || die "$MKIMAGE is not built"
	"$MKIMAGE" --size 1G --data-crc --gc-percent 55 --writes 500 --clean-pct 30 --quiet \
		"$BATS_FILE_TMPDIR/a.pmem" || die "mkimage failed"
}

@test "no persistent memory: says so on stderr, exits 0, lists nothing" {
	have_pmem && skip "this machine has persistent memory"
	run --separate-stderr pcache list
	assert_status 0
	assert_no_stdout
	[ "$stderr" = "pcache list: no persistent memory found" ] || die "stderr: '$stderr'"
	run --separate-stderr pcache list --json
	assert_status 0
	pyjson <(printf '%s' "$output") 'assert d == [], d'
	run --separate-stderr pcache list -q
	assert_status 0
	[ -z "$stderr" ] || die "-q still printed: '$stderr'"
}

@test "image files: a pcache and an empty file, text columns" {
	a="$BATS_FILE_TMPDIR/a.pmem"
	e=$(mkimg empty.img 600M)
	run --separate-stderr pcache list "$a" "$e"
	assert_status 0
	head=${output%%$'\n'*}
	[[ "$head" == DEVICE*MODE*SIZE*NAMESPACE*REGION*BADBLK*PCACHE ]] || die "header: '$head'"
	line=$(grep -F "$a " <<<"$output")
	assert_contains "$line" " file "
	assert_contains "$line" "1.00 GiB"
	assert_contains "$line" "pcache seg_num 63, data_crc on, gc 55%, dirty "
	line=$(grep -F "$e " <<<"$output")
	assert_contains "$line" "600.00 MiB"
	[[ "$line" == *" -" ]] || die "empty file line: '$line'"
}

@test "image files: JSON keys and values; -u for people" {
	a="$BATS_FILE_TMPDIR/a.pmem"
	e=$(mkimg empty.img 600M)
	dirty=$("$PCACHE" info --json "$a" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["dirty_bytes"])')
	run --separate-stderr pcache list --json "$a" "$e"
	assert_status 0
	A=$a E=$e DIRTY=$dirty pyjson <(printf '%s' "$output") '
import os
assert isinstance(d, list) and len(d) >= 2, d
a = next(x for x in d if x["device"] == os.environ["A"])
e = next(x for x in d if x["device"] == os.environ["E"])
keys = ["device", "mode", "size", "device_size", "region", "namespace", "bad_blocks", "bad_bytes",
        "pcache", "seg_num", "data_crc", "gc_percent", "dirty_bytes", "in_use", "holder",
        "dm_device", "error"]
assert list(a) == keys, list(a)
assert a["mode"] == "file" and a["size"] == 1 << 30 and a["device_size"] == 1 << 30, a
assert a["region"] is None and a["namespace"] is None, a
assert a["pcache"] is True and a["seg_num"] == 63 and a["data_crc"] is True, a
assert a["gc_percent"] == 55 and a["dirty_bytes"] == int(os.environ["DIRTY"]), a
assert a["bad_blocks"] == 0 and a["bad_bytes"] == 0 and a["in_use"] is False, a
assert a["holder"] is None and a["dm_device"] is None and a["error"] is None, a
assert e["pcache"] is False and e["seg_num"] is None and e["dirty_bytes"] is None, e
assert e["data_crc"] is None and e["gc_percent"] is None and e["error"] is None, e
'
	run --separate-stderr pcache list --json -u "$a"
	assert_status 0
	pyjson <(printf '%s' "$output") '
a = d[-1]
assert a["size"] == "1.00 GiB" and isinstance(a["dirty_bytes"], str), a
assert a["bad_bytes"] == "0 B", a'
}

@test "bad blocks are counted, overlapping ones merged (PCACHE_TEST_BADBLOCKS)" {
	a="$BATS_FILE_TMPDIR/a.pmem"
	PCACHE_TEST_BADBLOCKS=8192:512,8600:400,1048576:4096 run --separate-stderr pcache list --json "$a"
	assert_status 0
	pyjson <(printf '%s' "$output") '
a = d[-1]
assert a["bad_blocks"] == 2 and a["bad_bytes"] == 808 + 4096, a'
}

@test "a file that cannot be read: an error line, exit 8, the others still listed" {
	a="$BATS_FILE_TMPDIR/a.pmem"
	run --separate-stderr pcache list --json "$BATS_TEST_TMPDIR/missing" "$a"
	assert_status 8
	assert_contains "$stderr" "pcache list: $BATS_TEST_TMPDIR/missing: cannot open: No such file or directory"
	pyjson <(printf '%s' "$output") '
m = [x for x in d if x["device"].endswith("/missing")][0]
assert m["error"].startswith("cannot open") and m["pcache"] is None, m
assert d[-1]["pcache"] is True'
}

@test "a pcache the kernel would not load: pcache true, the reason in error" {
	c="$BATS_TEST_TMPDIR/c.pmem"
	cp --sparse=always "$BATS_FILE_TMPDIR/a.pmem" "$c"
	# both segment-info replicas of segment 0: the chain is broken
	printf '\xff' | dd of="$c" bs=1 seek=$((20480 + 9)) conv=notrunc status=none
	printf '\xff' | dd of="$c" bs=1 seek=$((20480 + 4096 + 9)) conv=notrunc status=none
	run --separate-stderr pcache list --json "$c"
	assert_status 0
	pyjson <(printf '%s' "$output") '
c = d[-1]
assert c["pcache"] is True and c["seg_num"] == 63, c
assert c["data_crc"] is None and c["dirty_bytes"] is None, c
assert c["error"].startswith("corrupt pcache metadata"), c'
}

@test "the same file twice is listed once; usage errors exit 16" {
	a="$BATS_FILE_TMPDIR/a.pmem"
	run --separate-stderr pcache list --json "$a" "$a"
	assert_status 0
	pyjson <(printf '%s' "$output") 'assert len([x for x in d if x["mode"] == "file"]) == 1, d'
	run --separate-stderr pcache list --bogus
	assert_status 16
}

@test "a loop block device is listed as block (root, loop)" {
	[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices)"
	command -v losetup >/dev/null || skip "losetup is not installed"
	c="$BATS_TEST_TMPDIR/c.pmem"
	cp --sparse=always "$BATS_FILE_TMPDIR/a.pmem" "$c"
	loop=$(losetup -f --show "$c" 2>/dev/null) || skip "no loop device available"
	run --separate-stderr pcache list --json "$loop"
	losetup -d "$loop"
	assert_status 0
	pyjson <(printf '%s' "$output") '
b = d[-1]
assert b["mode"] == "block" and b["pcache"] is True and b["seg_num"] == 63, b
assert b["bad_blocks"] == 0, b'
}

@test "persistent memory: every namespace with its device node (needs an NVDIMM)" {
	have_pmem || skip "no persistent memory here (runs in the kernel interop guest)"
	run --separate-stderr pcache list --json
	assert_status 0
	pyjson <(printf '%s' "$output") '
assert d, "nothing listed"
for x in d:
    assert x["region"] or x["mode"] == "devdax", x
    if x["device"]:
        assert x["device"].startswith("/dev/pmem") or x["device"].startswith("/dev/dax"), x
        assert x["mode"] in ("fsdax", "devdax", "raw", "sector"), x
'
	[[ "$stderr" != *"no persistent memory found"* ]] || die "said no pmem: $stderr"
}

@test "persistent memory: a cache on a namespace is recognised (needs pmem and root)" {
	have_pmem || skip "no persistent memory here (runs in the kernel interop guest)"
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	run --separate-stderr pcache list --json
	assert_status 0
	pyjson <(printf '%s' "$output") '
caches = [x for x in d if x["pcache"]]
print("caches:", [(x["device"], x["seg_num"], x["dm_device"]) for x in caches])
for x in caches:
    assert x["seg_num"] and x["error"] is None or x["in_use"], x'
}
