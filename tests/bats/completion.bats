#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# completion/pcache.bash: loads, completes subcommands, every command's options (kept in
# step with 'pcache CMD --help'), option arguments, device nodes and files.

load helpers

COMPLETION="$REPO_ROOT/completion/pcache.bash"

# complete_words WORD...: what the completion offers when the last WORD is being typed
# (as bash would call it on 'WORD WORD ...<Tab>'), one candidate a line.  The pcache
# under test is the first one in PATH, as it is for a user.
complete_words() {
	PATH="$(dirname "$PCACHE"):$PATH" bash -c '
		source "$1" || exit 1
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_pcache
		[ "${#COMPREPLY[@]}" -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}"
	' _ "$COMPLETION" "$@"
}

# The commands `pcache --help` lists.
commands() {
	"$PCACHE" --help | awk '/^commands:/ { on = 1; next } on && /^   [a-z]/ { print $1 } on && /^$/ { on = 0 }'
}

# options CMD: the options of `pcache CMD --help`: every -x / --name on its usage lines
# (up to the first blank line) and on its option lines (lines starting with blanks and -).
options() {
	"$PCACHE" "$1" --help |
		awk 'u == 0 && /^$/ { u = 1; next } u == 0 || /^[ \t]+-/' |
		grep -oE -- '(^|[^A-Za-z0-9-])--?[A-Za-z][A-Za-z0-9-]*' |
		sed -E 's/^[^-]*//' | sort -u
}

@test "the completion file loads and registers _pcache for pcache" {
	cd "$REPO_ROOT"
	run --separate-stderr bash -c 'source completion/pcache.bash; complete -p pcache'
	assert_status 0
	[ "$output" = "complete -F _pcache pcache" ] || die "complete -p: '$output' (stderr: $stderr)"
	[ -z "$stderr" ] || die "stderr: $stderr"
	head -n 1 "$COMPLETION" | grep -qx '# SPDX-License-Identifier: GPL-2.0-or-later' ||
		die "no SPDX line"
	run bash -n "$COMPLETION"
	assert_status 0
}

@test "pcache f<Tab>: the subcommands starting with f, from pcache --help" {
	run --separate-stderr complete_words pcache f
	assert_status 0
	want=$(commands | grep '^f' | sort)
	[ -n "$want" ] || die "pcache --help lists no command starting with f"
	[ "$(sort <<<"$output")" = "$want" ] || die "got '$output', want '$want'"
	run --separate-stderr complete_words pcache ''
	assert_status 0
	for cmd in $(commands) --help --version; do
		grep -qxF -- "$cmd" <<<"$output" || die "'$cmd' not offered: $output"
	done
	run --separate-stderr complete_words pcache help sh
	assert_status 0
	[ "$output" = shell ] || die "pcache help sh: '$output'"
}

@test "pcache fsck --<Tab>: the long options of fsck" {
	run --separate-stderr complete_words pcache fsck --
	assert_status 0
	for opt in --no --preen --yes --dry-run --undo --force --verify-data --backing --json --human --quiet --verbose --help; do
		grep -qxF -- "$opt" <<<"$output" || die "'$opt' not offered: $output"
	done
	! grep -qv '^--' <<<"$output" || die "not only long options: $output"
}

@test "pcache format --no<Tab>, pcache flush --no<Tab>: the negative options, --json" {
	run --separate-stderr complete_words pcache format --no
	assert_status 0
	[ "$output" = --no-data-crc ] || die "format --no: '$output'"
	run --separate-stderr complete_words pcache flush --no
	assert_status 0
	[ "$(sort <<<"$output")" = $'--no-metadata-update\n--no-verify-data' ] || die "flush --no: '$output'"
	for cmd in format flush; do
		run --separate-stderr complete_words pcache "$cmd" --j
		assert_status 0
		[ "$output" = --json ] || die "$cmd --j: '$output'"
	done
}

@test "every option in every command's --help is completed (and nothing else)" {
	missing=""
	extra=""
	n=0
	for cmd in $(commands | grep -vx help); do
		want=$( (options "$cmd"; echo --help) | sort -u)
		[ -n "$want" ] || die "no options parsed from 'pcache $cmd --help'"
		got=$(complete_words pcache "$cmd" - | sort -u)
		for opt in $want; do
			n=$((n + 1))
			grep -qxF -- "$opt" <<<"$got" || missing="$missing $cmd:$opt"
		done
		for opt in $got; do
			grep -qxF -- "$opt" <<<"$want" || extra="$extra $cmd:$opt"
		done
	done
	[ -z "$missing" ] || die "options missing from the completion:$missing"
	[ -z "$extra" ] || die "completion offers options --help does not list:$extra"
	[ "$n" -ge 40 ] || die "only $n options checked"
}

@test "DEV, BACKING and FILE arguments complete image files; option arguments by kind" {
	dir="$BATS_TEST_TMPDIR/imgs"
	mkdir -p "$dir"
	: >"$dir/cache-a.pmem"
	: >"$dir/cache-b.pmem"
	: >"$dir/back.img"
	run --separate-stderr complete_words pcache info "$dir/cache-"
	assert_status 0
	[ "$(sort <<<"$output")" = "$dir/cache-a.pmem"$'\n'"$dir/cache-b.pmem" ] || die "info: '$output'"
	run --separate-stderr complete_words pcache flush "$dir/cache-a.pmem" "$dir/ba"
	assert_status 0
	[ "$output" = "$dir/back.img" ] || die "flush BACKING: '$output'"
	run --separate-stderr complete_words pcache fsck --undo "$dir/b"
	assert_status 0
	[ "$output" = "$dir/back.img" ] || die "--undo FILE: '$output'"
	run --separate-stderr complete_words pcache replay --backing "$dir/b"
	assert_status 0
	[ "$output" = "$dir/back.img" ] || die "--backing PATH: '$output'"
	run --separate-stderr complete_words pcache shell -w "$dir/cache-b"
	assert_status 0
	[ "$output" = "$dir/cache-b.pmem" ] || die "shell -w DEV: '$output'"
	# numbers and shell commands: nothing to offer
	run --separate-stderr complete_words pcache format --gc-percent ''
	assert_status 0
	[ -z "$output" ] || die "--gc-percent N: '$output'"
	run --separate-stderr complete_words pcache shell -c ''
	assert_status 0
	[ -z "$output" ] || die "shell -c COMMANDS: '$output'"
	run --separate-stderr complete_words pcache dump --what sb,c
	assert_status 0
	[ "$(sort <<<"$output")" = $'sb,cache-ctrl\nsb,cache-info' ] || die "--what: '$output'"
}

@test "device nodes: /dev/pmem* and /dev/dax* are offered for DEV" {
	nodes=$(ls -d /dev/pmem* /dev/dax* 2>/dev/null || true)
	run --separate-stderr complete_words pcache info /dev/
	assert_status 0
	for d in $nodes; do
		grep -qxF "$d" <<<"$output" || die "$d not offered: $output"
	done
	if [ -z "$nodes" ]; then
		# no pmem here: the dev directory's files are still offered
		grep -qx /dev/null <<<"$output" || die "/dev/null not offered: $output"
	fi
}
