#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The fsck corruption corpus (tests/corrupt/cases.txt, run by tests/corrupt/run-corpus.sh)
# and the damage tool it uses (tests/tools/corrupt.c).

load helpers

CORRUPT="$PCACHE_BUILD/tests/corrupt"
CORPUS="$REPO_ROOT/tests/corrupt/run-corpus.sh"
CASES="$REPO_ROOT/tests/corrupt/cases.txt"

# fresh NAME [FORMAT_OPTS]: a freshly formatted 1071644672-byte image; prints its path.
fresh() {
	local img
	img=$(mkimg "$1" "$KERNEL_DEV_SIZE") || return 1
	"$PCACHE" format -q -y "${@:2}" "$img" >/dev/null || return 1
	echo "$img"
}

@test "corrupt: usage errors exit 16" {
	[ -x "$CORRUPT" ] || die "$CORRUPT is not built"
	run --separate-stderr "$CORRUPT"
	assert_status 16
	img=$(fresh pmem)
	run --separate-stderr "$CORRUPT" "$img" no-such-corruption
	assert_status 16
	assert_contains "$stderr" "unknown corruption"
	run --separate-stderr "$CORRUPT" "$img" kset-crc notanumber
	assert_status 16
}

@test "corrupt: every case of the corpus names a known corruption, at least 40 of them" {
	run --separate-stderr "$CORRUPT" --list
	assert_status 0
	known=" $(echo $output) "
	[ "$(wc -w <<<"$output")" -ge 40 ] || die "only $(wc -w <<<"$output") corruptions"
	used=0
	while read -r name base opt code; do
		case "$name" in '' | '#'*) continue ;; esac
		name=${name%%:*}
		[[ "$known" == *" $name "* ]] || die "cases.txt uses unknown corruption '$name'"
		used=$((used + 1))
	done <"$CASES"
	[ "$used" -ge 40 ] || die "cases.txt has only $used cases"
}

@test "corrupt: a structure the image lacks exits 8 and changes nothing" {
	img=$(fresh pmem)
	before=$(md5 "$img")
	for c in kset-crc kset-first-crc key-len-zero last-crc; do
		run --separate-stderr "$CORRUPT" "$img" "$c"
		assert_status 8
		assert_no_stdout
		[ -n "$stderr" ] || die "$c: no error message"
	done
	run --separate-stderr "$CORRUPT" "$img" chain-no-next 99
	assert_status 8
	[ "$(md5 "$img")" = "$before" ] || die "the image changed"
}

@test "corrupt: says which bytes it changed, and changes exactly those" {
	img=$(fresh pmem)
	run --separate-stderr "$CORRUPT" "$img" sb-crc
	assert_status 0
	[ "$output" = "corrupt: sb-crc: @4096 +1: db -> 24 (superblock checksum broken)" ] ||
		die "unexpected report: '$output'"
	[ "$(od -An -tx1 -j4096 -N1 "$img" | tr -d ' ')" = 24 ] || die "byte 4096 not changed"
	# a checksum-valid rewrite: the superblock verdict moves from CRC to seg_num
	img=$(fresh pmem2)
	run --separate-stderr "$CORRUPT" "$img" sb-seg-num-zero
	assert_status 0
	[[ "$output" == "corrupt: sb-seg-num-zero: @4096 +"*" -> "* ]] || die "report: '$output'"
	run --separate-stderr pcache fsck -n --json "$img"
	assert_status 4
	echo "$output" >"$BATS_TEST_TMPDIR/fsck.json"
	pyjson "$BATS_TEST_TMPDIR/fsck.json" "
codes = sorted(set(p['code'] for p in d[0]['problems']))
assert codes == ['SB_SEG_NUM_RANGE'], codes
"
}

@test "corruption corpus: fsck reports exactly the expected problems (tests/corrupt/cases.txt)" {
	[ -x "$PCACHE_BUILD/tests/mkimage" ] || die "$PCACHE_BUILD/tests/mkimage is not built"
	run "$CORPUS" "$PCACHE_BUILD"
	echo "$output" | grep -E '^(not ok|# corpus:)' -A8 | grep -vE '^ok ' >&2 || true
	[[ "$output" == *"# corpus: "*" passed, 0 failed"* ]] || die "corpus failures (above)"
	assert_status 0
}

# ---- corrupt IMG mutate SEED (tests/tools/mutate.c), the generator of scenario j ----

@test "corrupt mutate: the same seed changes the same bytes the same way" {
	a=$(fixture_copy "$FX_DIRTY" a.pmem)
	b=$(fixture_copy "$FX_DIRTY" b.pmem)
	for seed in 7 1234567890123; do
		run --separate-stderr "$CORRUPT" "$a" mutate "$seed"
		assert_status 0
		out_a=$output
		run --separate-stderr "$CORRUPT" "$b" mutate "$seed"
		assert_status 0
		[ "$output" = "$out_a" ] || die "seed $seed: reports differ: '$out_a' / '$output'"
		[[ "$output" == "corrupt: mutate: @"* ]] || die "seed $seed: report '$output'"
	done
	cmp -s "$a" "$b" || die "the same seeds left different images"
	run --separate-stderr "$CORRUPT" "$a" mutate
	assert_status 16
}

@test "corrupt mutate: seeds cover the four classes, a field change passes its CRC" {
	base=$(fixture "$FX_DIRTY")
	img=$BATS_TEST_TMPDIR/m.pmem
	declare -A seen
	changed=0
	for seed in $(seq 1 48); do
		cp --sparse=always "$base" "$img"
		run --separate-stderr "$CORRUPT" "$img" mutate "$seed"
		assert_status 0
		first=${lines[0]}
		[[ "$first" == "corrupt: mutate: @"* ]] || die "seed $seed: report '$output'"
		cls=$(sed -nE 's/.*\((field|flip|zero|data): .*/\1/p' <<<"$first")
		[ -n "$cls" ] || die "seed $seed: no class in '$first'"
		seen[$cls]=1
		[[ "$first" == *": unchanged ("* ]] || changed=$((changed + 1))
		# a field set on a record is sealed again: fsck finds no checksum problem in it
		if [[ "$first" == *"(field: "* && "$first" != *"kset"* ]]; then
			run --separate-stderr pcache fsck -n --json "$img"
			codes=$(python3 -c 'import json,sys; print(" ".join(p["code"] for p in json.loads(sys.argv[1])[0]["problems"]))' "$output" 2>/dev/null)
			[[ " $codes " != *"_CRC_BAD "* && " $codes " != *"REPLICA_BAD "* && " $codes " != *"BOTH_BAD "* ]] ||
				die "seed $seed: '$first': fsck reports $codes"
		fi
	done
	for c in field flip zero data; do
		[ -n "${seen[$c]:-}" ] || die "no '$c' mutation in 48 seeds (seen: ${!seen[*]})"
	done
	[ "$changed" -ge 40 ] || die "only $changed of 48 mutations changed a byte"
	# a cache without keys: a data mutation becomes a metadata flip
	base=$(fresh f.pmem --data-crc)
	for seed in $(seq 1 24); do
		cp --sparse=always "$base" "$img"
		run --separate-stderr "$CORRUPT" "$img" mutate "$seed"
		assert_status 0
		[[ "$output" != *"(data: "* ]] || die "seed $seed: data mutation on a cache without keys"
	done
}

@test "kernel suite read-back: model.py ranges covers every key, rangecopy copies exactly those ranges" {
	local fx img ranges src dst
	fx=$(fixture "$FX_DIRTY")
	ranges="$BATS_TEST_TMPDIR/ranges"
	run --separate-stderr python3 "$REPO_ROOT/tests/kernel/model.py" ranges --img "$fx" --len $((2 << 30))
	assert_status 0
	echo "$output" >"$ranges"
	# every key the log holds lies inside a listed range; every range is 4 KiB aligned
	pcache dump --json "$fx" | python3 -c '
import json, sys
ranges = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
assert ranges and all(s % 4096 == 0 and n % 4096 == 0 for s, n in ranges), "not aligned"
keys = [(r["off"], r["len"]) for r in json.load(sys.stdin) if r.get("type") == "key"]
assert len(keys) > 1000, len(keys)
for off, ln in keys:
    assert any(s <= off and off + ln <= s + n for s, n in ranges), (off, ln)
print(len(ranges), len(keys))' "$ranges" || die "a key outside the ranges"
	# rangecopy: the listed ranges land at START + SHIFT, nothing else is written
	src="$BATS_TEST_TMPDIR/src" dst="$BATS_TEST_TMPDIR/dst"
	head -c $((4 << 20)) /dev/urandom >"$src"
	truncate -s $((8 << 20)) "$dst"
	printf '0 8192\n1048576 65536\n4186112 8192\n' >"$ranges"
	run --separate-stderr "$PCACHE_BUILD/tests/rangecopy" "$src" "$dst" 1048576 60 <"$ranges"
	assert_status 0
	[ "$output" = "ok 3" ] || die "rangecopy said '$output'"
	cmp -s <(head -c 8192 "$src") <(tail -c +$((1048576 + 1)) "$dst" | head -c 8192) || die "range 1 differs"
	cmp -s <(tail -c +$((1048576 + 1)) "$src" | head -c 65536) <(tail -c +$((2097152 + 1)) "$dst" | head -c 65536) ||
		die "range 2 differs"
	cmp -s <(tail -c 8192 "$src") <(tail -c +$((5234688 + 1)) "$dst" | head -c 8192) || die "range 3 differs"
	[ "$(tr -d '\0' <"$dst" | wc -c)" -le $((81920)) ] || die "rangecopy wrote outside the ranges"
	[ "$(tr -d '\0' <"$dst" | wc -c)" -ge $((81920 * 99 / 100)) ] || die "rangecopy wrote too little"
	echo "8192 100" >"$ranges"
	run --separate-stderr "$PCACHE_BUILD/tests/rangecopy" "$src" "$dst" 0 60 <"$ranges"
	[ "$status" -eq 1 ] && [ "$output" = "fail 8192 100: not 4 KiB aligned" ] || die "unaligned: $status '$output'"
}
