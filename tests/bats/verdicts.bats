#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# Verdicts a person can trust: fsck, info and replay say by default what the kernel would
# do (data checksums verified, the backing device's size named or checked), in the same
# words for the same device, and never promise what they did not check.  With the tests
# named below in flush, format, fsck, global, serve and undo.bats, every item of issue 18
# has a test of its exact words and exit code:
#   1 data CRCs by default, --no-verify-data, info's health   this file
#   2 --backing, too small a backing, the cache as its own    this file
#   3 every problem repaired or documented unfixable          tests/fsck, test_converge.c
#   5 the engine: loads, read-only with the reason, refuses   serve.bats (issue 18 item 5)
#   6 --repair without a terminal / on one                    this file, fsck.bats
#   7 flush stops at a data checksum mismatch                 flush.bats
#   8 write errors, options anywhere, plain words, plurals,   this file, global.bats,
#     one wording, hints with options, --json, -V, signals    undo.bats, serve.bats
#   9 format refuses signatures, wipes [0,4096), data_crc     format.bats
#  10 flush names the holder of a busy device                 flush.bats

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

# ---- issue 18: the rest of its items, each with its exact words and exit code ----

SMALL_64M="64.00 MiB (67108864 bytes)"

teardown() {
	flock_release
}

# item 2: a backing device too small for the cached data, in info too
@test "info --backing smaller than the cached data: the line fsck and replay give, exit 8" {
	local img small c
	img=$(fixture "$FX_DIRTY") || return 1
	small=$(mkimg small.back 64M)
	for c in info replay "fsck -n"; do
		run --separate-stderr pcache $c --backing "$small" "$img"
		assert_status 8
		assert_no_stdout
		[ "$stderr" = "pcache ${c%% *}: $img: cached data reaches $NEED_DIRTY, but the backing device $small holds $SMALL_64M: wrong backing device? nothing was checked or changed" ] ||
			die "$c: $stderr"
	done
}

# item 2: the same device as cache and backing, refused before it is opened for write
@test "the cache as its own backing device: a usage error (16) before it is opened, even while it is held" {
	local img back sum want c
	img=$(fixture_copy "$FX_DIRTY") || return 1
	back=$(fixture_copy kernel-dirty-300w.back) || return 1
	sum=$(md5 "$img")
	flock_hold "$img"
	want="$img: is also given as the backing device ($img): a cache cannot be its own backing device"
	for c in "fsck -y --backing $img" "fsck -n --backing $img" "info --backing $img" \
		"replay --backing $img"; do
		run --separate-stderr pcache $c "$img"
		assert_status 16
		[ "$stderr" = "pcache ${c%% *}: $want" ] || die "$c: $stderr"
	done
	for c in flush serve; do
		run --separate-stderr pcache $c "$img" "$img"
		assert_status 16
		assert_no_stdout
		[ "$stderr" = "pcache $c: $want" ] || die "$c: $stderr"
	done
	# the same device, held: opened it would be 'in use'
	run --separate-stderr pcache flush "$img" "$back"
	assert_status 8
	[ "$stderr" = "pcache flush: $img: cannot open: in use by process flock (pid $holder)" ] || die "$stderr"
	flock_release
	[ "$(md5 "$img")" = "$sum" ] || die "the image changed"
}

# no_errno_words: the last run's stderr names no errno (its name or its strerror text).
no_errno_words() {
	local w
	for w in "Numerical result out of range" "Invalid argument" "No such device" \
		ERANGE EINVAL ENODEV EUCLEAN EBADMSG "Structure needs cleaning" "Bad message"; do
		[[ "$stderr" != *"$w"* ]] || die "errno words '$w' in: $stderr"
	done
}

# item 8: plain words (no errno, ERANGE's "Numerical result out of range" included), one
# wording for a device that is not a pcache device
@test "an empty file: 'not a pcache device', in the same plain words in every command (8)" {
	local empty back c first want=""
	empty=$(mkimg empty 0)
	back=$(mkimg back.img 64M)
	for c in info replay dump "fsck -n" "fsck -y" "flush __ $back" "serve __ $back" "shell -c sb"; do
		if [[ "$c" == *__* ]]; then
			run --separate-stderr pcache ${c/__/$empty}
		else
			run --separate-stderr pcache $c "$empty"
		fi
		assert_status 8
		no_errno_words
		first=${stderr%%$'\n'*}
		[[ "$first" == "pcache ${c%% *}: $empty: not a pcache device: "*" is too small to hold a superblock"* ]] ||
			die "$c: $stderr"
		first=${first#"pcache ${c%% *}: "}
		[ "$c" != "fsck -y" ] || first=${first%": nothing was changed"}
		# one wording: the same line from every command
		[ -z "$want" ] || [ "$first" = "$want" ] || die "$c: '$first', others: '$want'"
		want=$first
	done
}

# item 8: plain words for a device that cannot be one (EINVAL, ENODEV), in every command
@test "a character device that is not dax (/dev/null): the same plain words in every command (8)" {
	local img back c line want="/dev/null: cannot open: a character device that is not a dax device"
	img=$(fixture_copy "$FX_DIRTY") || return 1
	back=$(mkimg back.img 64M)
	for c in "info /dev/null" "dump /dev/null" "replay /dev/null" "fsck -n /dev/null" \
		"fsck -y /dev/null" "format -y /dev/null" "shell -c sb /dev/null" \
		"flush /dev/null $back" "flush $img /dev/null" "serve /dev/null $back" \
		"serve $img /dev/null" "fsck -n --backing /dev/null $img" "info --backing /dev/null $img" \
		"undo $back /dev/null" "list /dev/null"; do
		run --separate-stderr pcache $c
		assert_status 8
		no_errno_words
		# list says first that there is no persistent memory here
		line=$(grep -F '/dev/null' <<<"$stderr")
		[ "$line" = "pcache ${c%% *}: $want" ] || die "$c: $stderr"
	done
}

# item 8: one wording for a truncated or non-pcache device, flush and serve included
@test "not a pcache device, a truncated one: flush and serve say it in the words of info" {
	local zero img back want c
	back=$(mkimg back.img 64M)
	zero=$(mkimg zero.img 600M)
	for c in info flush serve; do
		if [ "$c" = info ]; then
			run --separate-stderr pcache info "$zero"
		else
			run --separate-stderr pcache $c "$zero" "$back"
		fi
		assert_status 8
		assert_no_stdout
		[ "$stderr" = "pcache $c: $zero: not a pcache device: no pcache superblock" ] || die "$c: $stderr"
	done
	img=$(mkimg trunc.img 1G)
	pcache format "$img" >/dev/null
	truncate -s 700M "$img"
	want="$img: truncated pcache device: its superblock's 63 segments need "*", the device holds "*": a truncated image, or the wrong device?"
	for c in flush serve; do
		run --separate-stderr pcache $c "$img" "$back"
		assert_status 8
		assert_no_stdout
		[[ "${stderr%%$'\n'*}" == "pcache $c: "$want ]] || die "$c: $stderr"
		[ "${stderr#*$'\n'}" = "pcache $c: hint: run 'pcache fsck -n $img' for details" ] || die "$c: $stderr"
	done
	# and the same line as info's, word for word
	run --separate-stderr pcache info "$img"
	want=${stderr%%$'\n'*}
	run --separate-stderr pcache flush "$img" "$back"
	[ "${stderr%%$'\n'*}" = "${want/pcache info:/pcache flush:}" ] || die "flush: $stderr; info: $want"
}

# item 8: hints carry the options the person used
@test "hints carry the options the person used" {
	local img back pid
	img=$(fixture_copy "$FX_DIRTY") || return 1
	back=$(fixture kernel-dirty-300w.back) || return 1
	"$CORRUPT" "$img" kset-crc >/dev/null
	run --separate-stderr pcache info --no-verify-data --backing "$back" "$img"
	assert_status 0
	assert_field health "damaged: 2 problems, worst LOG_LOST_KSETS (valid ksets follow the corrupt end of the log: their keys are lost); run 'pcache fsck -n --no-verify-data --backing $back $img'"
	run --separate-stderr pcache replay "$img" --backing-size 2G --no-verify-data
	assert_status 4
	[ "${stderr#*$'\n'}" = "pcache replay: hint: run 'pcache fsck -n --no-verify-data --backing-size 2G $img' for details" ] ||
		die "replay: $stderr"
	run --separate-stderr pcache fsck --repair --backing "$back" "$img" </dev/null
	assert_status 4
	[ "${lines[-1]}" = "$img: 2 problems need a person: run 'pcache fsck -y --backing $back $img', or 'pcache fsck --repair --backing $back $img' on a terminal to be asked" ] ||
		die "last: ${lines[-1]}"
	# a cache in use: the way to check it anyway keeps the options too
	flock_hold "$img"
	pid=$holder
	run --separate-stderr pcache fsck -n --backing-size 2G "$img"
	flock_release
	assert_status 8
	[ "$stderr" = "pcache fsck: $img: cannot open: in use by process flock (pid $pid)
pcache fsck: hint: 'pcache fsck -n -f --backing-size 2G $img' checks it anyway (a cache in use changes while it is read)" ] ||
		die "busy: $stderr"
}

# item 8: options anywhere on the line; --json for flush, format and undo
@test "options anywhere: flush, format and undo take them after their arguments" {
	local img back blank u
	img=$(fixture_copy "$FX_DIRTY") || return 1
	back=$(fixture_copy kernel-dirty-300w.back) || return 1
	# a dry run that finds dirty data: exit 4
	run --separate-stderr pcache flush "$img" "$back" --dry-run --json
	assert_status 4
	[ "$(jval "$output" 'd[0]["dry_run"], d[0]["result"]')" = "(True, 'dry_run')" ] || die "$output"
	blank=$(mkimg blank.img 600M)
	run --separate-stderr pcache format "$blank" --dry-run --json
	assert_status 0
	[ "$(jval "$output" 'd[0]["dry_run"]')" = True ] || die "$output"
	is_all_zero "$blank" || die "format --dry-run wrote"
	"$CORRUPT" "$img" ci-replica0-crc >/dev/null
	u="$BATS_TEST_TMPDIR/r.undo"
	run --separate-stderr pcache fsck "$img" -y --undo "$u"
	assert_status 1
	run --separate-stderr pcache undo "$u" "$img" --json
	assert_status 0
	[ "$(jval "$output" 'd[0]["ranges_restored"]')" = 1 ] || die "$output"
}
