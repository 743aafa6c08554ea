#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tests/fsck/run.sh [--regen] BUILD_DIR [CASE...]
#
# Golden fsck transcripts, in the style of e2fsprogs' tests/f_*: every directory
# tests/fsck/CASE/ holds
#   image     the recipe of a damaged image (a base, the corruptions applied to it with
#             BUILD_DIR/tests/corrupt, fsck options; see README.md)
#   expect.1  stdout+stderr of `pcache fsck -y OPTS image`, then `Exit status is N`
#   expect.2  the same for the second run, `pcache fsck -n OPTS image`
# Each case is built in a temporary directory and fsck runs there on the file `image`,
# so the transcripts hold no temporary path.
#
# Checking (the default): the output is compared with expect.1 / expect.2 (diff -u) and
# printed as TAP: `ok - fsck: CASE`, or `not ok - fsck: CASE: expect.1 differs` followed
# by the diff as `#` lines.  A case whose expect.2 is not a clean run (exit 0 and the
# `image: clean: no problems found` line) fails too, unless tests/fsck/known-unconverged
# lists it with its reason; a case listed there whose expect.2 is clean fails as well
# (the list is stale).  Exit 0 when every case passed, 1 otherwise.
#
# --regen (what tests/fsck/regen.sh and `make fsck-expect` run): expect.1 and expect.2
# are rewritten from the output of BUILD_DIR/pcache; review the change with git diff.
#
# Environment:
#   PCACHE           the pcache binary (default BUILD_DIR/pcache)
#   PCACHE_FIXTURES  decompressed kernel fixtures (default BUILD_DIR/fixtures; made by
#                    `tests/run-tests.sh BUILD_DIR unit`)
#   FSCK_JOBS        cases run at once (default 2)
set -u

usage() {
	echo "usage: tests/fsck/run.sh [--regen] BUILD_DIR [CASE...]" >&2
	exit 2
}

REGEN=0
if [ "${1:-}" = --regen ]; then
	REGEN=1
	shift
fi
[ $# -ge 1 ] || usage

HERE=$(cd "$(dirname "$0")" && pwd)
O=$(cd "$1" && pwd) || exit 2
shift
PCACHE=${PCACHE:-$O/pcache}
CORRUPT=$O/tests/corrupt
MKIMAGE=$O/tests/mkimage
FIXTURES=${PCACHE_FIXTURES:-$O/fixtures}
JOBS=${FSCK_JOBS:-2}
KNOWN=$HERE/known-unconverged
DEV_SIZE=1071644672
LIMIT=120     # seconds for any one command
CLEAN_RE='^image: clean: no problems found'

for f in "$PCACHE" "$CORRUPT" "$MKIMAGE"; do
	if [ ! -x "$f" ]; then
		echo "1..1"
		echo "not ok - fsck: $f is not built (make O=$O)"
		exit 1
	fi
done

# the cases: the arguments, else every directory holding an `image` recipe
cases=()
if [ $# -gt 0 ]; then
	for c in "$@"; do
		c=${c%/}
		cases+=("${c##*/}")
	done
else
	for d in "$HERE"/*/; do
		[ -f "$d/image" ] && cases+=("$(basename "$d")")
	done
fi
if [ "${#cases[@]}" -eq 0 ]; then
	echo "1..1"
	echo "not ok - fsck: no cases in $HERE"
	exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pcache-fsck.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/bases" "$WORK/results"

# ---- bases: built once per run, copied (sparse) into each case ----

# base_path NAME: prints the file holding base NAME, building it first when needed.
# A kernel fixture is named by its file name (NAME.pmem in PCACHE_FIXTURES).
base_path() {
	local b=$1 img="$WORK/bases/$1.img" rc
	case "$b" in
	*.pmem)
		if [ ! -r "$FIXTURES/$b" ]; then
			echo "kernel fixture $FIXTURES/$b is missing (tests/run-tests.sh $O unit makes it)" >&2
			return 3
		fi
		echo "$FIXTURES/$b"
		return 0
		;;
	*/* | '') echo "bad base name '$b'" >&2; return 1 ;;
	esac
	# a lock per base: two cases may need it at once
	(
		flock 9
		[ -f "$img" ] && exit 0
		case "$b" in
		fresh | fresh-crc)
			set --
			[ "$b" = fresh-crc ] && set -- --data-crc
			truncate -s "$DEV_SIZE" "$img.tmp" &&
				timeout "$LIMIT" "$PCACHE" format -q -y "$@" "$img.tmp" >/dev/null
			;;
		w) timeout "$LIMIT" "$MKIMAGE" --size "$DEV_SIZE" --quiet --writes 3000 --seed 7 \
			--clean-pct 10 "$img.tmp" ;;
		wcrc) timeout "$LIMIT" "$MKIMAGE" --size "$DEV_SIZE" --quiet --data-crc --writes 3000 \
			--seed 3 --range 256M "$img.tmp" ;;
		long) timeout "$LIMIT" "$MKIMAGE" --size "$DEV_SIZE" --quiet --writes 440000 \
			--min-len 512 --max-len 512 --align 512 --seed 5 "$img.tmp" ;;
		*) echo "unknown base '$b'" >&2; exit 1 ;;
		esac
		rc=$?
		if [ "$rc" -ne 0 ]; then
			echo "building base $b failed (exit $rc)" >&2
			rm -f "$img.tmp"
			exit 1
		fi
		mv "$img.tmp" "$img"
	) 9>"$WORK/bases/$b.lock" || return
	echo "$img"
}

# ---- one case ----

# build_case CASE DIR: reads tests/fsck/CASE/image, makes DIR/image (and DIR/backing),
# writes the fsck options, one a line, to DIR/opts and the environment to DIR/env.
# Returns 0, or 3 when a kernel fixture is missing (skip); else 1, the reason on stderr.
build_case() {
	local case=$1 dir=$2 recipe="$HERE/$1/image" kw rest base="" src rc n=0
	local -a args
	: >"$dir/opts"
	: >"$dir/opts.y"
	: >"$dir/env"
	while read -r kw rest; do
		n=$((n + 1))
		case "$kw" in '' | '#'*) continue ;; esac
		read -r -a args <<<"$rest"
		case "$kw" in
		base)
			if [ -n "$base" ] || [ "${#args[@]}" -ne 1 ]; then
				echo "image line $n: one base, named once" >&2
				return 1
			fi
			base=${args[0]}
			src=$(base_path "$base")
			rc=$?
			[ "$rc" -eq 0 ] || return "$rc"
			cp --sparse=always "$src" "$dir/image" && chmod u+w "$dir/image" || return 1
			;;
		corrupt)
			if [ -z "$base" ] || [ "${#args[@]}" -lt 1 ]; then
				echo "image line $n: corrupt NAME [ARGS...] after the base line" >&2
				return 1
			fi
			if ! (cd "$dir" && timeout "$LIMIT" "$CORRUPT" image "${args[@]}") \
				>>"$dir/corrupt.out" 2>&1; then
				echo "image line $n: corrupt ${args[*]} failed:" >&2
				cat "$dir/corrupt.out" >&2
				return 1
			fi
			;;
		backing)
			# backing SIZE: a sparse file; backing fixture NAME: a kernel fixture
			if [ "${#args[@]}" -eq 1 ]; then
				truncate -s "${args[0]}" "$dir/backing" || return 1
			elif [ "${#args[@]}" -eq 2 ] && [ "${args[0]}" = fixture ]; then
				if [ ! -r "$FIXTURES/${args[1]}" ]; then
					echo "kernel fixture $FIXTURES/${args[1]} is missing" >&2
					return 3
				fi
				ln -s "$FIXTURES/${args[1]}" "$dir/backing" || return 1
			else
				echo "image line $n: backing SIZE | backing fixture NAME" >&2
				return 1
			fi
			printf '%s\n' --backing backing >>"$dir/opts"
			;;
		fsck)
			printf '%s\n' "${args[@]}" >>"$dir/opts"
			;;
		repair)
			printf '%s\n' "${args[@]}" >>"$dir/opts.y"
			;;
		env)
			if [ "${#args[@]}" -ne 1 ] || [[ "${args[0]}" != [A-Z]*=* ]]; then
				echo "image line $n: env NAME=VALUE" >&2
				return 1
			fi
			printf '%s\n' "${args[0]}" >>"$dir/env"
			;;
		*)
			echo "image line $n: unknown keyword '$kw'" >&2
			return 1
			;;
		esac
	done <"$recipe"
	if [ -z "$base" ]; then
		echo "image: no base line" >&2
		return 1
	fi
}

# fsck_run DIR MODE OUT: `pcache fsck MODE OPTS image` in DIR, transcript to OUT.
fsck_run() {
	local dir=$1 mode=$2 out=$3 rc
	local -a opts envs
	mapfile -t opts <"$dir/opts"
	[ "$mode" = -y ] && mapfile -t -O "${#opts[@]}" opts <"$dir/opts.y"
	mapfile -t envs <"$dir/env"
	(cd "$dir" && env "${envs[@]}" timeout "$LIMIT" "$PCACHE" fsck "$mode" "${opts[@]}" image) \
		>"$out" 2>&1 </dev/null
	rc=$?
	echo "Exit status is $rc" >>"$out"
	return "$rc"
}

# is_known CASE: known-unconverged lists CASE with a reason.
is_known() {
	[ -f "$KNOWN" ] && awk -v c="$1" '$1 == c && NF > 1 { f = 1 } END { exit !f }' "$KNOWN"
}

# check_known: every line of known-unconverged names an existing case and gives a reason.
check_known() {
	local bad
	[ -f "$KNOWN" ] || { echo "ok - fsck: known-unconverged (none)"; return 0; }
	bad=$(while read -r c reason; do
		case "$c" in '' | '#'*) continue ;; esac
		if [ ! -f "$HERE/$c/image" ]; then
			echo "$c: no such case"
		elif [ -z "$reason" ]; then
			echo "$c: no reason given"
		fi
	done <"$KNOWN")
	if [ -n "$bad" ]; then
		echo "not ok - fsck: known-unconverged: bad lines"
		printf '# %s\n' "${bad//$'\n'/$'\n'# }"
		return 1
	fi
	echo "ok - fsck: known-unconverged: every line names a case and its reason"
}

is_clean() {
	[ "$(tail -n 1 "$1")" = "Exit status is 0" ] && grep -q -E "$CLEAN_RE" "$1"
}

# run_case CASE: prints the case's TAP line (and diagnostics) to results/CASE.
run_case() {
	local case=$1 dir="$WORK/$1" res="$WORK/results/$1" rc bad="" n
	mkdir "$dir" || return
	exec 3>"$res"
	if [ ! -f "$HERE/$case/image" ]; then
		echo "not ok - fsck: $case: no $HERE/$case/image" >&3
		return
	fi
	build_case "$case" "$dir" 2>"$dir/build.err"
	rc=$?
	if [ "$rc" -eq 3 ] && [ "$REGEN" = 1 ]; then
		echo "not ok - fsck: $case: not regenerated: $(head -n 1 "$dir/build.err")" >&3
		return
	elif [ "$rc" -eq 3 ]; then
		echo "ok - fsck: $case # skip $(head -n 1 "$dir/build.err")" >&3
		rm -rf "$dir"
		return
	elif [ "$rc" -ne 0 ]; then
		echo "not ok - fsck: $case: building the image failed" >&3
		sed 's/^/# /' "$dir/build.err" >&3
		return
	fi
	fsck_run "$dir" -y "$dir/out.1"
	rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -gt 125 ]; then
		echo "not ok - fsck: $case: fsck -y did not run, crashed or timed out (exit $rc)" >&3
		sed 's/^/# /' "$dir/out.1" >&3
		return
	fi
	fsck_run "$dir" -n "$dir/out.2"
	rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -gt 125 ]; then
		echo "not ok - fsck: $case: fsck -n did not run, crashed or timed out (exit $rc)" >&3
		sed 's/^/# /' "$dir/out.2" >&3
		return
	fi

	if [ "$REGEN" = 1 ]; then
		if ! cp "$dir/out.1" "$HERE/$case/expect.1" || ! cp "$dir/out.2" "$HERE/$case/expect.2"; then
			echo "not ok - fsck: $case: cannot write the expect files" >&3
			return
		fi
		if ! is_clean "$dir/out.2" && ! is_known "$case"; then
			echo "ok - fsck: $case: regenerated # expect.2 is not clean: list it in known-unconverged" >&3
		else
			echo "ok - fsck: $case: regenerated" >&3
		fi
		rm -rf "$dir"
		return
	fi

	for n in 1 2; do
		if [ ! -f "$HERE/$case/expect.$n" ]; then
			bad="$bad${bad:+; }no expect.$n (tests/fsck/regen.sh writes it)"
			continue
		fi
		if ! diff -u --label "expect.$n" --label "fsck output" "$HERE/$case/expect.$n" \
			"$dir/out.$n" >"$dir/diff.$n"; then
			bad="$bad${bad:+; }expect.$n differs"
		fi
	done
	if is_clean "$dir/out.2"; then
		is_known "$case" && bad="$bad${bad:+; }the second run is clean: remove it from known-unconverged"
	elif ! is_known "$case"; then
		bad="$bad${bad:+; }the second run (fsck -n) is not clean and the case is not in known-unconverged"
	fi
	if [ -n "$bad" ]; then
		echo "not ok - fsck: $case: $bad" >&3
		for n in 1 2; do
			[ -s "$dir/diff.$n" ] && sed 's/^/# /' "$dir/diff.$n" >&3
		done
		if [[ "$bad" == *"not clean"* ]]; then
			sed 's/^/# /' "$dir/out.2" >&3
		fi
	else
		echo "ok - fsck: $case" >&3
		rm -rf "$dir"
	fi
}

# the cases, FSCK_JOBS at a time; the results are printed in the cases' order
if [ "$REGEN" = 1 ]; then
	echo "1..${#cases[@]}"
else
	echo "1..$((${#cases[@]} + 1))"
fi
running=0
for c in "${cases[@]}"; do
	run_case "$c" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

failed=0 passed=0
if [ "$REGEN" = 0 ]; then
	check_known && passed=1 || failed=1
fi
for c in "${cases[@]}"; do
	if [ -s "$WORK/results/$c" ]; then
		cat "$WORK/results/$c"
		head -n 1 "$WORK/results/$c" | grep -q '^not ok' && failed=$((failed + 1)) ||
			passed=$((passed + 1))
	else
		echo "not ok - fsck: $c: the case printed no result"
		failed=$((failed + 1))
	fi
done
if [ "$REGEN" = 1 ]; then
	echo "# fsck: ${#cases[@]} cases regenerated, $failed failed"
else
	echo "# fsck: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
