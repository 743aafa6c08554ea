#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tests/corrupt/run-corpus.sh BUILD_DIR [CASES_FILE]
#
# The fsck corruption corpus.  Builds the base images at test time (nothing binary is
# committed), checks that each base is clean, then for every line of cases.txt: makes a
# fresh sparse copy of its base, applies the corruption with BUILD_DIR/tests/corrupt, runs
# `pcache fsck -n --json` and compares the set of reported problem codes with the
# expected set (exact match), the exit status (0 clean, 4 problems, 8 with the
# `not a pcache device` error line), and that fsck changed no byte of the image.
# Then it repairs the image, e2fsprogs style: `fsck -y` must exit 1 (5 when problems
# without a repair remain), a second `fsck -n` must find nothing but problems without a
# repair, and when the repair reports no lost key and no skipped kset, the repaired cache
# must serve exactly the data the uncorrupted base serves (tests/tools/content).
#
# Output is TAP: a `1..N` plan, then `ok N - NAME on BASE` / `not ok N - NAME on BASE:
# expected X got Y` with `#` diagnostics.  Exit 0 when every test passed, 1 otherwise.
#
# Environment:
#   PCACHE            the pcache binary (default BUILD_DIR/pcache)
#   PCACHE_FIXTURES   decompressed kernel fixtures (default BUILD_DIR/fixtures) for the kfx base
#   CORPUS_FILTER     extended regex: only cases whose `NAME BASE` matches
#   CORPUS_FULL_MD5   numbers of the cases (1 = the first case run) whose whole image is
#                     md5-summed before and after fsck (default "1 2"); every case also
#                     gets the cheaper hash of its data extents and an mtime check
#   CORPUS_VERBOSE    1: show what each corruption changed, also for passing cases
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: tests/corrupt/run-corpus.sh BUILD_DIR [CASES_FILE]" >&2
	exit 2
fi

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
O=$(cd "$1" && pwd) || exit 2
CASES=${2:-$HERE/cases.txt}
PCACHE=${PCACHE:-$O/pcache}
CORRUPT=$O/tests/corrupt
MKIMAGE=$O/tests/mkimage
CONTENT=$O/tests/content
FIXTURES=${PCACHE_FIXTURES:-$O/fixtures}
FILTER=${CORPUS_FILTER:-}
FULL_MD5=" ${CORPUS_FULL_MD5-1 2} "
VERBOSE=${CORPUS_VERBOSE:-0}
DEV_SIZE=1071644672
LIMIT=300     # seconds for any one command

for f in "$PCACHE" "$CORRUPT"; do
	if [ ! -x "$f" ]; then
		echo "1..1"
		echo "not ok 1 - corpus: $f is not built (make O=$O)"
		exit 1
	fi
done
[ -r "$CASES" ] || { echo "1..1"; echo "not ok 1 - corpus: cannot read $CASES"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pcache-corpus.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT

# ---- python helpers: JSON verdicts and image hashes ----
cat >"$WORK/helper.py" <<'EOF'
import hashlib, json, os, re, sys

def sparse_hash(path):
    """md5 over the data extents (offsets, lengths, bytes): holes read as zero are
    skipped, and a write into a hole changes the extent list."""
    h = hashlib.md5()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        h.update(str(size).encode())
        off = 0
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            h.update(b"%d+%d;" % (data, hole - data))
            pos = data
            while pos < hole:
                buf = os.pread(fd, min(1 << 22, hole - pos), pos)
                if not buf:
                    break
                h.update(buf)
                pos += len(buf)
            off = hole
    finally:
        os.close(fd)
    return h.hexdigest()

NOT_PCACHE = {"SB_NO_MAGIC", "SB_BAD_MAGIC", "SB_TOO_SMALL"}
# The error line of each (pcache-tools/open.c cli_sb_words): a device below 512 MiB
# with a pcache superblock is a truncated pcache device.
NOT_PCACHE_WORDS = {
    "SB_NO_MAGIC": r"not a pcache device: no pcache superblock",
    "SB_BAD_MAGIC": r"not a pcache device: no pcache superblock \(magic 0x[0-9a-f]{16}\)",
    "SB_TOO_SMALL": r"(not a pcache device: smaller than 512 MiB|truncated pcache device: .* "
                    r"the device holds 512\.00 MiB)",
}

def verdict(json_path, err_path, rc, expected):
    """Prints nothing and exits 0 when fsck did what the case expects; else prints the
    reason on one line and exits 1."""
    exp = set() if expected == "-" else set(expected.split(","))
    err = open(err_path, errors="replace").read()
    first = err.splitlines()[0] if err else ""
    if exp == {"WRONG_BACKING"}:
        if rc != 8 or "wrong backing device?" not in first:
            return "expected WRONG_BACKING (exit 8, 'wrong backing device?') got exit %d, %s" % (
                rc, codes_of(json_path) or first or "no error line")
        return None
    if exp and exp <= NOT_PCACHE:
        if len(exp) != 1:
            return "bad case: several not-a-pcache codes"
        code = exp.pop()
        want = NOT_PCACHE_WORDS[code]
        if rc != 8 or not re.search(want, first):
            got = "exit %d, %s" % (rc, codes_of(json_path) or first or "no error line")
            return "expected %s (exit 8, error line /%s/) got %s" % (code, want, got)
        return None
    got = codes_of(json_path)
    if got is None:
        return "expected %s got no JSON (exit %d): %s" % (expected, rc, first)
    # remarks (SB_SEG_NUM_SHORT) are listed but are not problems: they leave exit 0
    want_rc = 4 if exp - remarks_of(json_path) else 0
    if got != exp or rc != want_rc:
        return "expected %s (exit %d) got %s (exit %d)" % (
            ",".join(sorted(exp)) or "-", want_rc, ",".join(sorted(got)) or "-", rc)
    return None

def repair_check(json_path, rc):
    """After fsck -y: prints "LOST_KEYS LOST_KSETS" and exits 0 if the exit status fits
    what is left; else prints the reason and exits 1."""
    try:
        d = json.load(open(json_path))[0]
        rep = d["repair"]
    except Exception:
        return None, "fsck -y printed no repair JSON (exit %d)" % rc
    want = (1 if rep["actions"] else 0) | (4 if rep["remaining_problems"] else 0)
    if rc != want:
        return None, "fsck -y exited %d, expected %d (%d actions, %d problems left)" % (
            rc, want, len(rep["actions"]), rep["remaining_problems"])
    return "%d %d" % (rep["lost_keys"], rep["lost_ksets"]), None

def after_check(json_path, rc):
    """After the repair, fsck -n may only find problems that have no repair."""
    try:
        probs = json.load(open(json_path))[0]["problems"]
    except Exception:
        return "fsck -n after the repair printed no JSON (exit %d)" % rc
    left = sorted(set(p["code"] for p in probs if p["fixable"]))
    if left or rc != (4 if [p for p in probs if not p["remark"]] else 0):
        return "after the repair fsck -n exited %d with fixable %s" % (rc, ",".join(left) or "-")
    return None

def remarks_of(json_path):
    try:
        return set(p["code"] for p in json.load(open(json_path))[0]["problems"] if p["remark"])
    except Exception:
        return set()

def codes_of(json_path):
    try:
        d = json.load(open(json_path))
        return set(p["code"] for p in d[0]["problems"])
    except Exception:
        return None

if __name__ == "__main__":
    if sys.argv[1] == "hash":
        print(sparse_hash(sys.argv[2]))
    elif sys.argv[1] == "repair":
        out, why = repair_check(sys.argv[2], int(sys.argv[3]))
        print(out or why)
        sys.exit(0 if out else 1)
    elif sys.argv[1] == "after":
        why = after_check(sys.argv[2], int(sys.argv[3]))
        if why:
            print(why)
            sys.exit(1)
    elif sys.argv[1] == "verdict":
        why = verdict(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        if why:
            print(why)
            sys.exit(1)
EOF

helper() {
	python3 "$WORK/helper.py" "$@"
}

# ---- the cases ----
names=() bases=() opts=() codes=()
while read -r name base opt code extra; do
	case "$name" in '' | '#'*) continue ;; esac
	if [ -z "$code" ] || [ -n "$extra" ]; then
		echo "1..1"
		echo "not ok 1 - corpus: bad line in $CASES: $name $base $opt $code $extra"
		exit 1
	fi
	if [ -n "$FILTER" ] && ! [[ "$name $base" =~ $FILTER ]]; then
		continue
	fi
	names+=("$name") bases+=("$base") opts+=("$opt") codes+=("$code")
done <"$CASES"

used_bases=()
for b in "${bases[@]}"; do
	case " ${used_bases[*]} " in *" $b "*) ;; *) used_bases+=("$b") ;; esac
done

n=0 passed=0 failed=0 skipped=0
echo "1..$((${#used_bases[@]} + ${#names[@]}))"

ok() {
	n=$((n + 1))
	passed=$((passed + 1))
	echo "ok $n - $1"
}

not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
}

skip() {
	n=$((n + 1))
	skipped=$((skipped + 1))
	echo "ok $n - $1 # skip $2"
}

# comment FILE: a file's lines as TAP diagnostics.
comment() {
	[ -s "$1" ] && sed 's/^/#   /' "$1"
	return 0
}

# ---- bases ----
declare -A base_why   # empty: built; otherwise why it is unavailable
declare -A base_content   # what each base serves (tests/tools/content)

# mk_fresh IMG [FORMAT_OPTS...]
mk_fresh() {
	truncate -s "$DEV_SIZE" "$1" && "$PCACHE" format -q -y "${@:2}" "$1" >/dev/null
}

# build_base NAME: $WORK/base-NAME.img, or sets base_why[NAME].
build_base() {
	local b=$1 img="$WORK/base-$1.img" log="$WORK/base-$1.log" rc
	rm -f "$img"
	case "$b" in
	fresh) mk_fresh "$img" ;;
	fresh-crc) mk_fresh "$img" --data-crc ;;
	w | wcrc | long)
		if [ ! -x "$MKIMAGE" ]; then
			base_why[$b]="$MKIMAGE is not built"
			return 1
		fi
		case "$b" in
		w) set -- --writes 3000 --seed 7 --clean-pct 10 ;;
		wcrc) set -- --data-crc --writes 3000 --seed 3 --range 256M ;;
		long) set -- --writes 440000 --min-len 512 --max-len 512 --align 512 --seed 5 ;;
		esac
		timeout "$LIMIT" "$MKIMAGE" --size "$DEV_SIZE" --quiet "$@" "$img"
		;;
	kfx)
		if [ ! -r "$FIXTURES/kernel-dirty-300w.pmem" ]; then
			base_why[$b]="kernel fixture $FIXTURES/kernel-dirty-300w.pmem is missing"
			return 1
		fi
		cp --sparse=always "$FIXTURES/kernel-dirty-300w.pmem" "$img" && chmod u+w "$img"
		;;
	*)
		base_why[$b]="unknown base '$b'"
		return 1
		;;
	esac >"$log" 2>&1
	rc=$?
	if [ "$rc" -ne 0 ]; then
		base_why[$b]="building it failed (exit $rc): $(head -c 300 "$log")"
		return 1
	fi
	base_why[$b]=""
}

for b in "${used_bases[@]}"; do
	if ! build_base "$b"; then
		if [ "$b" = kfx ]; then
			skip "base $b is clean" "${base_why[$b]}"
		else
			not_ok "base $b is clean: ${base_why[$b]}"
		fi
		continue
	fi
	img="$WORK/base-$b.img"
	timeout "$LIMIT" "$PCACHE" fsck -n --json --verify-data "$img" >"$WORK/json" 2>"$WORK/err"
	rc=$?
	if why=$(helper verdict "$WORK/json" "$WORK/err" "$rc" -); then
		ok "base $b is clean"
		base_content[$b]=$("$CONTENT" "$img")
	else
		not_ok "base $b is clean: $why"
		base_why[$b]="not clean"
	fi
done

# repair_case IMG BASE [FSCK_OPTS...]: fsck -y, then fsck -n, then the data served.
# Prints what it found (one line) and returns 0, or prints why it failed and returns 1.
repair_case() {
	local img=$1 base=$2 rc lost why got pre
	pre=$("$CONTENT" "$img")
	[ "$pre" = refused ] && pre="0 -"
	timeout "$LIMIT" "$PCACHE" fsck -y --json "${@:3}" "$img" >"$WORK/rjson" 2>"$WORK/rerr"
	rc=$?
	"$PCACHE" fsck -y --dry-run "${@:3}" "$img" >"$WORK/repair.txt" 2>&1
	if ! lost=$(helper repair "$WORK/rjson" "$rc"); then
		echo "repair: $lost"
		return 1
	fi
	timeout "$LIMIT" "$PCACHE" fsck -n --json "${@:3}" "$img" >"$WORK/json2" 2>/dev/null
	rc=$?
	if ! why=$(helper after "$WORK/json2" "$rc"); then
		echo "repair: $why"
		return 1
	fi
	got=$("$CONTENT" "$img")
	# nothing lost: the base's data, or (when the damage added data, as crafted keys do)
	# what the damaged cache served, provided that misses none of the base's sectors
	if [ "$lost" = "0 0" ] && [ "$got" != "${base_content[$base]}" ] &&
	   { [ "$got" != "$pre" ] || [ "${pre%% *}" -lt "${base_content[$base]%% *}" ]; }; then
		echo "repair: nothing reported lost, yet the cache serves other data ($got; base ${base_content[$base]}; before the repair $pre)"
		return 1
	fi
	echo "repaired (lost keys, corrupt ksets: $lost)"
}

# ---- one case ----
run_case() {
	local i=$1 spec=${names[$1]} base=${bases[$1]} opt=${opts[$1]} code=${codes[$1]}
	local title name img="$WORK/case.img" rc frc why h1 h2 m1 m2 t1 t2 x
	local -a cargs fopts o
	IFS=: read -r -a cargs <<<"$spec"
	name=${cargs[0]}
	cargs=("${cargs[@]:1}")
	title="$spec on $base"
	[ "$opt" != - ] && title="$title ($opt)"

	if [ -n "${base_why[$base]}" ]; then
		skip "$title" "base unavailable: ${base_why[$base]}"
		return
	fi
	fopts=()
	if [ "$opt" != - ]; then
		IFS=, read -r -a o <<<"$opt"
		for x in "${o[@]}"; do
			case "$x" in
			--backing=*)
				truncate -s "${x#--backing=}" "$WORK/backing-${x#--backing=}" || return
				fopts+=(--backing "$WORK/backing-${x#--backing=}")
				;;
			*) fopts+=("$x") ;;
			esac
		done
	fi

	rm -f "$img"
	cp --sparse=always "$WORK/base-$base.img" "$img"
	timeout "$LIMIT" "$CORRUPT" "$img" "$name" "${cargs[@]}" >"$WORK/corrupt.out" 2>&1
	rc=$?
	if [ "$rc" -ne 0 ]; then
		not_ok "$title: corrupt exited $rc"
		comment "$WORK/corrupt.out"
		return
	fi
	if ! grep -q "^corrupt: $name: " "$WORK/corrupt.out"; then
		not_ok "$title: corrupt did not say what it changed"
		comment "$WORK/corrupt.out"
		return
	fi

	h1=$(helper hash "$img")
	t1=$(stat -c %Y.%s "$img")
	case "$FULL_MD5" in *" $((i + 1)) "*) m1=$(md5sum <"$img") ;; *) m1= ;; esac
	timeout "$LIMIT" "$PCACHE" fsck -n --json "${fopts[@]}" "$img" >"$WORK/json" 2>"$WORK/err"
	frc=$?
	h2=$(helper hash "$img")
	t2=$(stat -c %Y.%s "$img")
	[ -n "$m1" ] && m2=$(md5sum <"$img") || m2=

	if [ "$frc" -eq 124 ] || [ "$frc" -gt 128 ]; then
		not_ok "$title: fsck crashed or timed out (exit $frc)"
		comment "$WORK/err"
		comment "$WORK/corrupt.out"
		return
	fi
	if [ "$h1" != "$h2" ] || [ "$t1" != "$t2" ] || [ "$m1" != "$m2" ]; then
		not_ok "$title: fsck -n modified the image"
		return
	fi
	if why=$(helper verdict "$WORK/json" "$WORK/err" "$frc" "$code"); then
		if [ "$frc" -eq 4 ] && ! why=$(repair_case "$img" "$base" "${fopts[@]}"); then
			not_ok "$title: $why"
			comment "$WORK/corrupt.out"
			comment "$WORK/repair.txt"
			return
		fi
		ok "$title${m1:+ (md5 unchanged)}${why:+; $why}"
		[ "$VERBOSE" = 1 ] && comment "$WORK/corrupt.out"
	else
		not_ok "$title: $why"
		comment "$WORK/corrupt.out"
	fi
	rm -f "$img"
}

for i in "${!names[@]}"; do
	run_case "$i"
done

echo "# corpus: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
