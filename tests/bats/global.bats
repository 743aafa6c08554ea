#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The global options of `pcache` and what every command must do (pcache(8), GLOBAL OPTIONS).

load helpers

# The commands `pcache --help` lists (without `help` itself).
commands() {
	"$PCACHE" --help | awk '/^commands:/ { on = 1; next } on && /^   [a-z]/ { print $1 } on && /^$/ { on = 0 }' |
		grep -vx help
}

@test "pcache --version prints the version and exits 0" {
	run --separate-stderr pcache --version
	assert_status 0
	version=$(sed -n 's/^VERSION *:= *//p' "$REPO_ROOT/Makefile")
	[[ "$output" == "pcache $version"* ]] || die "'$output' does not start with 'pcache $version'"
	[ -z "$stderr" ] || die "stderr: '$stderr'"
}

@test "pcache --help lists the commands on stdout and exits 0" {
	run --separate-stderr pcache --help
	assert_status 0
	assert_contains "$output" "usage: pcache"
	assert_contains "$output" "format"
	assert_contains "$output" "info"
	[ -z "$stderr" ] || die "stderr: '$stderr'"
	[ "$(commands | wc -l)" -ge 2 ] || die "no command list in: '$output'"
}

@test "pcache without a command is a usage error (16), usage on stderr" {
	run --separate-stderr pcache
	assert_status 16
	assert_no_stdout
	assert_contains "$stderr" "usage: pcache"
}

@test "pcache with an unknown command is a usage error (16)" {
	run --separate-stderr pcache no-such-command
	assert_status 16
	assert_no_stdout
	assert_contains "$stderr" "no-such-command"
	run --separate-stderr pcache --no-such-option
	assert_status 16
	assert_no_stdout
}

@test "pcache help format shows the format manual or usage and exits 0" {
	run --separate-stderr pcache help format
	assert_status 0
	assert_contains "$output" "pcache format"
	assert_contains "$output" "--data-crc"
}

@test "pcache help with an unknown command is a usage error (16)" {
	run --separate-stderr pcache help no-such-command
	assert_status 16
	assert_no_stdout
}

@test "every command's --help exits 0 and prints its usage on stdout" {
	bad=""
	for cmd in $(commands); do
		run --separate-stderr pcache "$cmd" --help
		if [ "$status" -ne 0 ] || [[ "$output" != "usage: pcache $cmd"* ]] || [ -n "$stderr" ]; then
			bad="$bad $cmd(exit $status)"
		fi
	done
	[ -z "$bad" ] || die "--help is wrong for:$bad"
}

@test "every command rejects an unknown option with 16 and nothing on stdout" {
	bad=""
	for cmd in $(commands); do
		run --separate-stderr pcache "$cmd" --no-such-option
		if [ "$status" -ne 16 ] || [ -n "$output" ] || [ -z "$stderr" ]; then
			bad="$bad $cmd(exit $status)"
		fi
	done
	[ -z "$bad" ] || die "bad option handling is wrong for:$bad"
}

@test "a write error on standard output is an operational error (8), named on stderr" {
	local img
	img=$(fixture "$FX_FRESH_NOCRC") || return 1
	run --separate-stderr bash -c '"$1" info "$2" >/dev/full' _ "$PCACHE" "$img"
	assert_status 8
	[ "$stderr" = "pcache info: write error: No space left on device" ] || die "stderr: $stderr"
	run --separate-stderr bash -c '"$1" --version >/dev/full' _ "$PCACHE"
	assert_status 8
	[ "$stderr" = "pcache: write error: No space left on device" ] || die "stderr: $stderr"
	run --separate-stderr bash -c '"$1" info --json "$2" >/dev/full' _ "$PCACHE" "$img"
	assert_status 8
	run --separate-stderr bash -c '"$1" dump "$2" >/dev/full' _ "$PCACHE" "$img"
	assert_status 8
	[ "$stderr" = "pcache dump: write error: No space left on device" ] || die "stderr: $stderr"
}

@test "a write error on standard output, in every command that prints: the errno's words, exit 8" {
	local img fresh blank back c want
	img=$(fixture_copy "$FX_DIRTY") || return 1
	back=$(fixture_copy kernel-dirty-300w.back) || return 1
	fresh=$(fixture "$FX_FRESH_NOCRC") || return 1
	blank=$(mkimg blank.img 600M)
	# long outputs (replay, dump, shell of the dirty fixture) fail while the command runs,
	# short ones at the end: the same line
	for c in "replay $img" "dump $img" "info -v $img" "fsck -n $img" "fsck -n --json $img" \
		"shell -c sb -c cache_info -c walk $img" "list $fresh" "format --dry-run $blank" \
		"info --help"; do
		run --separate-stderr bash -c '"$1" $2 >/dev/full' _ "$PCACHE" "$c"
		assert_status 8
		want="pcache ${c%% *}: write error: No space left on device"
		[ "${stderr##*$'\n'}" = "$want" ] || die "$c: '$stderr'"
		[ "$(grep -c 'write error' <<<"$stderr")" -eq 1 ] || die "$c: '$stderr'"
	done
	# a flush dry run that finds dirty data (4) and cannot print its plan (8): 4|8
	run --separate-stderr bash -c '"$1" flush --dry-run "$2" "$3" >/dev/full' _ "$PCACHE" "$img" "$back"
	assert_status 12
	[ "${stderr##*$'\n'}" = "pcache flush: write error: No space left on device" ] || die "flush: '$stderr'"
}

@test "-V and --version work before and after a command" {
	local c want
	want=$("$PCACHE" --version)
	[[ "$want" == "pcache "[0-9]*" (libpcachemeta, crc32c "*")" ]] || die "--version: $want"
	for c in "" info dump replay fsck list shell serve flush format undo; do
		run --separate-stderr pcache $c -V
		assert_status 0
		[ "$output" = "$want" ] && [ -z "$stderr" ] || die "$c -V: '$output' '$stderr'"
		run --separate-stderr pcache $c --version
		assert_status 0
		[ "$output" = "$want" ] && [ -z "$stderr" ] || die "$c --version: '$output' '$stderr'"
	done
}
