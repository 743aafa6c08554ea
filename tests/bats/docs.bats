#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The documentation stays in step with the code: the problem table, the man pages
# (render cleanly, document every option), the JSON keys, the exit codes and the
# undo file layout.

load helpers

BIN_DIR=$(dirname "$PCACHE")
PROBLEMS_DOC="$BIN_DIR/tests/problems-doc"
MKIMAGE="$BIN_DIR/tests/mkimage"
CORRUPT="$BIN_DIR/tests/corrupt"
MAN_DIR="$REPO_ROOT/doc/man"

# The commands `pcache --help` lists (without `help` itself).
commands() {
	"$PCACHE" --help | awk '/^commands:/ { on = 1; next } on && /^   [a-z]/ { print $1 } on && /^$/ { on = 0 }' |
		grep -vx help
}

# render PAGE: the page as plain text, 80 columns; warnings go to stderr.
render() {
	LC_ALL=C MANWIDTH=80 MANPAGER=cat PAGER=cat man --warnings -l "$1"
}

# options CMD: every option name (-x, --long-name) in `pcache CMD --help`, one per line.
options() {
	"$PCACHE" "$1" --help |
		grep -oE -- '(^|[^A-Za-z0-9-])--?[A-Za-z][A-Za-z0-9-]*' |
		sed -E 's/^[^-]*//' | sort -u
}

# poke FILE OFFSET BYTE: overwrites one byte (BYTE in hex, e.g. ff).
poke() {
	printf "\\x$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

@test "doc/problems.md holds the problem table the code generates" {
	[ -x "$PROBLEMS_DOC" ] || die "$PROBLEMS_DOC is not built"
	run --separate-stderr "$PROBLEMS_DOC"
	assert_status 0
	[ -z "$stderr" ] || die "problems-doc: $stderr"
	want=$output
	[ "$(printf '%s\n' "$want" | grep -c '^| `')" -ge 50 ] || die "too few rows: $want"
	doc="$REPO_ROOT/doc/problems.md"
	grep -qx '<!-- BEGIN problems-doc -->' "$doc" || die "no BEGIN marker in $doc"
	grep -qx '<!-- END problems-doc -->' "$doc" || die "no END marker in $doc"
	got=$(sed -n '/^<!-- BEGIN problems-doc -->$/,/^<!-- END problems-doc -->$/p' "$doc" | sed '1d;$d')
	if [ "$got" != "$want" ]; then
		diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") >&2 || true
		die "doc/problems.md is out of date: run '$PROBLEMS_DOC --update doc/problems.md'"
	fi
}

@test "problems-doc --update rewrites only the table between the markers" {
	doc="$BATS_TEST_TMPDIR/problems.md"
	printf 'intro\n<!-- BEGIN problems-doc -->\nold table\n<!-- END problems-doc -->\nafter\n' >"$doc"
	run --separate-stderr "$PROBLEMS_DOC" --update "$doc"
	assert_status 0
	[ "$(head -n 2 "$doc")" = $'intro\n<!-- BEGIN problems-doc -->' ] || die "head: $(head -n 2 "$doc")"
	[ "$(tail -n 2 "$doc")" = $'<!-- END problems-doc -->\nafter' ] || die "tail: $(tail -n 2 "$doc")"
	grep -q 'SB_CRC_BAD' "$doc" || die "no table written"
	! grep -q 'old table' "$doc" || die "old table kept"
	printf 'no markers\n' >"$doc"
	run --separate-stderr "$PROBLEMS_DOC" --update "$doc"
	[ "$status" -ne 0 ] || die "--update without markers succeeded"
	[ "$(cat "$doc")" = "no markers" ] || die "file without markers was changed"
}

@test "every man page renders without warnings" {
	command -v man >/dev/null || die "man is not installed"
	command -v groff >/dev/null || die "groff is not installed"
	n=0
	for page in "$MAN_DIR"/*.8; do
		[ -f "$page" ] || continue
		n=$((n + 1))
		run --separate-stderr render "$page"
		assert_status 0
		[ -z "$stderr" ] || die "$(basename "$page"): man warnings: $stderr"
		assert_contains "$output" "NAME"
		run --separate-stderr groff -man -Tutf8 -ww -z "$page"
		assert_status 0
		[ -z "$stderr" ] || die "$(basename "$page"): groff warnings: $stderr"
	done
	[ "$n" -ge 6 ] || die "only $n man pages in $MAN_DIR"
}

@test "every command has a man page with the required sections, listed in pcache(8)" {
	main=$(render "$MAN_DIR/pcache.8")
	for s in NAME SYNOPSIS DESCRIPTION COMMANDS "GLOBAL OPTIONS" "EXIT STATUS" FILES "SEE ALSO"; do
		grep -qx "$s" <<<"$main" || die "pcache.8 has no $s section"
	done
	for cmd in $(commands); do
		page="$MAN_DIR/pcache-$cmd.8"
		[ -f "$page" ] || die "no man page $page"
		text=$(render "$page")
		for s in NAME SYNOPSIS DESCRIPTION OPTIONS OUTPUT "EXIT STATUS" EXAMPLES "SEE ALSO"; do
			grep -qx "$s" <<<"$text" || die "pcache-$cmd.8 has no $s section"
		done
		grep -qE "^ +$cmd( |$)" <<<"$main" || die "pcache.8 does not list $cmd under COMMANDS"
		assert_contains "$main" "pcache-$cmd(8)"
	done
}

@test "every option of every command's --help is in its man page" {
	missing=""
	for cmd in $(commands); do
		text=$(render "$MAN_DIR/pcache-$cmd.8")
		opts=$(options "$cmd")
		[ -n "$opts" ] || die "no options parsed from 'pcache $cmd --help'"
		for opt in $opts; do
			grep -qE -- "(^|[^A-Za-z0-9-])$opt([^A-Za-z0-9-]|$)" <<<"$text" ||
				missing="$missing $cmd:$opt"
		done
	done
	[ -z "$missing" ] || die "options missing from the man pages:$missing"
}

@test "pcache help CMD exits 0 for every command" {
	for cmd in $(commands); do
		run --separate-stderr pcache help "$cmd"
		assert_status 0
		assert_contains "$output" "pcache $cmd"
	done
}

@test "doc/exit-codes.md lists every exit code of pcache-tools/cli.h" {
	doc="$REPO_ROOT/doc/exit-codes.md"
	n=0
	while read -r name value; do
		n=$((n + 1))
		grep -qF "| $value | \`$name\` |" "$doc" || die "$name = $value is not in $doc"
	done < <(sed -nE 's/^\s*(EXIT_[A-Z]+) = ([0-9]+),.*/\1 \2/p' "$REPO_ROOT/pcache-tools/cli.h")
	[ "$n" -ge 6 ] || die "only $n exit codes found in cli.h"
}

@test "doc/json.md documents every key the commands print" {
	[ -x "$MKIMAGE" ] || die "$MKIMAGE is not built"
	img="$BATS_TEST_TMPDIR/a.pmem"
	"$MKIMAGE" --size 1G --data-crc --writes 3000 --clean-pct 30 --quiet "$img" ||
		die "mkimage failed"
	# b: the first kset corrupt (the log ends at once) and one segment info replica bad.
	b="$BATS_TEST_TMPDIR/b.pmem"
	cp --sparse=always "$img" "$b"
	poke "$b" $((20480 + 12288 + 40)) ff
	poke "$b" $((20480 + 5 * 16777216 + 4096 + 9)) ff
	# c: segment 0 has no valid segment info: the cache does not open.
	c="$BATS_TEST_TMPDIR/c.pmem"
	cp --sparse=always "$img" "$c"
	poke "$c" $((20480 + 9)) ff
	poke "$c" $((20480 + 4096 + 9)) ff
	out="$BATS_TEST_TMPDIR/json"
	mkdir -p "$out"
	i=0
	for dev in "$img" "$b" "$c"; do
		for h in "" -u; do
			for args in "info" "dump" "dump --all-replicas" "replay --verify-data" "fsck --verify-data" \
				"fsck -y --dry-run" "fsck -p --dry-run"; do
				i=$((i + 1))
				# shellcheck disable=SC2086
				"$PCACHE" $args --json $h "$dev" >"$out/$i.json" 2>/dev/null || true
			done
		done
	done
	# undo: a repair of a copy of b with an undo file, put back with --json
	cp --sparse=always "$b" "$BATS_TEST_TMPDIR/u.pmem"
	run "$PCACHE" fsck -y --undo "$BATS_TEST_TMPDIR/u.undo" "$BATS_TEST_TMPDIR/u.pmem"
	[ "$status" -eq 1 ] || die "fsck -y --undo exit $status: $output"
	"$PCACHE" undo --json "$BATS_TEST_TMPDIR/u.undo" "$BATS_TEST_TMPDIR/u.pmem" >"$out/undo.json" ||
		die "undo --json failed"
	# format: a layout (over a swap area: the erased signature) and a refusal (no output);
	# flush: a dry run and a flush, both stopped by a data checksum mismatch, and a clean one.
	back="$BATS_TEST_TMPDIR/back"
	truncate -s 64M "$back"
	swap="$BATS_TEST_TMPDIR/swap.img"
	truncate -s 600M "$swap"
	mkswap -q "$swap" || die "mkswap failed"
	f="$BATS_TEST_TMPDIR/f.pmem"
	for h in "" -u; do
		i=$((i + 1))
		# shellcheck disable=SC2086
		"$PCACHE" format --json $h --dry-run --force --discard-dirty "$img" >"$out/$i.json" 2>/dev/null || true
		i=$((i + 1))
		# shellcheck disable=SC2086
		"$PCACHE" format --json $h --dry-run --force "$swap" >"$out/$i.json" 2>/dev/null || true
		i=$((i + 1))
		# shellcheck disable=SC2086
		"$PCACHE" format --json $h --dry-run "$swap" >"$out/$i.json" 2>/dev/null || true
		cp --sparse=always "$img" "$f"
		"$CORRUPT" "$f" key-data-crc >/dev/null || die "corrupt key-data-crc failed"
		for args in "flush --dry-run" "flush" "flush --no-verify-data"; do
			i=$((i + 1))
			# shellcheck disable=SC2086
			"$PCACHE" $args --json $h "$f" "$back" >"$out/$i.json" 2>/dev/null || true
		done
	done
	run --separate-stderr python3 - "$REPO_ROOT/doc/json.md" "$out" <<'EOF'
import json, os, sys
doc = open(sys.argv[1]).read()
keys, types, files = set(), set(), 0
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            keys.add(k)
            if k == "type":
                types.add(x)
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
for f in sorted(os.listdir(sys.argv[2])):
    text = open(os.path.join(sys.argv[2], f)).read()
    if not text:
        continue
    d = json.loads(text)
    assert isinstance(d, list), f + ": top level is not an array"
    files += 1
    walk(d)
assert files >= 20, "only %d JSON outputs" % files
missing = sorted(k for k in keys | types if "`%s`" % k not in doc)
print("keys: %d, record types: %d, missing: %s" % (len(keys), len(types), missing))
sys.exit(1 if missing else 0)
EOF
	[ "$status" -eq 0 ] || die "doc/json.md misses: $output $stderr"
	# The outputs covered the interesting shapes.
	for k in crc_expected reason note code repair action kernel_verdict_after \
		records zeroed_per_segment signature data_crc_from not_written cache_pos stopped_at; do
		grep -rqF "\"$k\"" "$out" || die "no JSON output had '$k': the test images changed"
	done
}

@test "doc/undo.md describes the undo files fsck --undo writes" {
	[ -x "$MKIMAGE" ] || die "$MKIMAGE is not built"
	img="$BATS_TEST_TMPDIR/u.pmem"
	"$MKIMAGE" --size 1G --writes 200 --quiet "$img" || die "mkimage failed"
	poke "$img" $((20480 + 12288 + 40)) ff
	undo="$BATS_TEST_TMPDIR/u.undo"
	run --separate-stderr "$PCACHE" fsck -y --undo "$undo" "$img"
	[ $((status & 1)) -eq 1 ] || die "fsck -y changed nothing (status $status): $output $stderr"
	doc="$REPO_ROOT/doc/undo.md"
	# header: magic, version 1, flags 1 (finished), crc at 124; the first record at 128
	[ "$(head -c 8 "$undo")" = PCMUNDO1 ] || die "header magic: $(head -c 8 "$undo" | od -c)"
	grep -qF '`PCMUNDO1`' "$doc" || die "doc/undo.md does not name the magic PCMUNDO1"
	[ "$(od -An -tu4 -j 8 -N 8 "$undo" | tr -s ' ')" = " 1 1" ] || die "version/flags: $(od -An -tu4 -j 8 -N 8 "$undo")"
	grep -qF '| 124 | 4 | crc |' "$doc" || die "doc/undo.md: no header crc at 124"
	[ "$(tail -c +129 "$undo" | head -c 4)" = PCUR ] || die "no record at offset 128"
	grep -qF 'from offset 128' "$doc" || die "doc/undo.md: records do not start at 128"
	grep -qF '`PCUR`' "$doc" || die "doc/undo.md does not name the record magic PCUR"
	run --separate-stderr "$PCACHE" undo "$undo" "$img"
	assert_status 0
	run --separate-stderr "$PCACHE" undo "$undo" "$img"
	assert_status 8
}

@test "every § cited in the repository is a section of doc/format.md" {
	run --separate-stderr bash "$REPO_ROOT/tests/tools/cite-check.sh"
	[ "$status" -eq 0 ] || die "cite-check.sh exit $status: $(grep '^not ok' <<<"$output") $stderr"
	! grep -q '^not ok' <<<"$output" || die "not ok lines: $output"
	# the citations the code is known to make are found
	for s in 0.1 5.5 6.4 6.6 10.4 12.9; do
		grep -q "^ok - cite: §$s (" <<<"$output" || die "§$s not reported: $output"
	done
	[ "$(grep -c '^ok - cite: ' <<<"$output")" -ge 30 ] || die "too few sections cited: $output"
}

@test "cite-check.sh fails, naming the section, when a cited heading is missing" {
	doc="$BATS_TEST_TMPDIR/format.md"
	grep -q '^### 6\.4 ' "$REPO_ROOT/doc/format.md" || die "doc/format.md has no heading 6.4"
	sed '/^### 6\.4 /d' "$REPO_ROOT/doc/format.md" >"$doc"
	run --separate-stderr env CITE_FORMAT_MD="$doc" bash "$REPO_ROOT/tests/tools/cite-check.sh"
	assert_status 1
	grep -qE '^not ok - cite: §6\.4 cited at [^ ]+:[0-9]+ has no section in doc/format\.md$' <<<"$output" ||
		die "no 'not ok' line for §6.4: $output"
	[ "$(grep -c '^not ok' <<<"$output")" -eq 1 ] || die "other failures: $(grep '^not ok' <<<"$output")"
	grep -q '^ok - cite: §6\.5 (' <<<"$output" || die "§6.5 no longer ok: $output"
	# the same through the argument, and for a top-level heading
	sed '/^## 4\. /d' "$REPO_ROOT/doc/format.md" >"$doc"
	run --separate-stderr bash "$REPO_ROOT/tests/tools/cite-check.sh" "$doc"
	assert_status 1
	grep -qE '^not ok - cite: §4 cited at ' <<<"$output" || die "no 'not ok' line for §4: $output"
}

@test "test_doc_vectors fails when a test vector of doc/format.md is wrong or missing" {
	prog="$PCACHE_BUILD/tests/test_doc_vectors"
	[ -x "$prog" ] || die "$prog is not built"
	mkdir -p "$BATS_TEST_TMPDIR/src/doc"
	doc="$BATS_TEST_TMPDIR/src/doc/format.md"
	cp "$REPO_ROOT/doc/format.md" "$doc"
	run --separate-stderr env PCACHE_SRCDIR="$BATS_TEST_TMPDIR/src" "$prog"
	assert_status 0
	# a wrong CRC in §11.2
	sed 's/^| V4c | cache_info | 24 | 0xA6A5336C |/| V4c | cache_info | 24 | 0xA6A5336D |/' \
		"$REPO_ROOT/doc/format.md" >"$doc"
	! cmp -s "$doc" "$REPO_ROOT/doc/format.md" || die "the V4c row was not found to alter"
	run --separate-stderr env PCACHE_SRCDIR="$BATS_TEST_TMPDIR/src" "$prog"
	[ "$status" -ne 0 ] || die "a wrong V4c crc passed: $output"
	grep -q '^not ok - §11.2 V4c' <<<"$output" || die "V4c not named: $output"
	# a row fewer in §11.4
	grep -v '^| R13 ' "$REPO_ROOT/doc/format.md" >"$doc"
	run --separate-stderr env PCACHE_SRCDIR="$BATS_TEST_TMPDIR/src" "$prog"
	[ "$status" -ne 0 ] || die "a missing replica row passed: $output"
	grep -q '^not ok - §11.4: 12 replica cases found' <<<"$output" || die "count not checked: $output"
}

@test "doc/exit-codes.md and every manual page give each command the same exit codes" {
	run --separate-stderr python3 - "$REPO_ROOT" <<'EOF'
import glob, os, re, sys
root = sys.argv[1]
rows = {}
for line in open(os.path.join(root, "doc/exit-codes.md")):
    m = re.match(r"\| `(\w+)` \|(.*)\|\s*$", line)
    if m:
        cells = [c.strip() for c in m.group(2).split("|")]
        if len(cells) == 6:
            rows[m.group(1)] = {c for c, v in zip([0, 1, 4, 8, 16, 32], cells) if v}
bad = []
for f in sorted(glob.glob(os.path.join(root, "doc/man/pcache-*.8"))):
    cmd = os.path.basename(f)[len("pcache-"):-2]
    m = re.search(r"^\.SH EXIT STATUS\n(.*?)^\.SH ", open(f).read(), re.S | re.M)
    if not m:
        bad.append("%s: no EXIT STATUS section" % cmd)
        continue
    man = {int(x) for x in re.findall(r"^\.B (\d+)\s*$", m.group(1), re.M)}
    if cmd not in rows:
        bad.append("%s: no row in doc/exit-codes.md" % cmd)
    elif rows[cmd] != man:
        bad.append("%s: manual %s, doc/exit-codes.md %s" % (cmd, sorted(man), sorted(rows[cmd])))
print("; ".join(bad) or "%d commands agree" % len(rows))
sys.exit(1 if bad else 0)
EOF
	[ "$status" -eq 0 ] || die "$output $stderr"
}
