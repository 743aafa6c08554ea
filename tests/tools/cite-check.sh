#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tests/tools/cite-check.sh [FORMAT_MD]
#
# Checks the citations of doc/format.md.  In this repository `§N` and `§N.M` (in man
# pages also `\[sc]N.M`) always mean a section of doc/format.md.  Every such citation in
# the source files (git ls-files: tracked and new, not ignored; binary files skipped;
# doc/format.md itself left out) must name a heading `## N. ...` or `### N.M ...` of
# doc/format.md.  No file may still point at the old outside specification (the names
# matched by STALE below); this script is the only exception.
#
# The document checked is FORMAT_MD, else $CITE_FORMAT_MD, else doc/format.md (a test
# gives it a copy with a heading taken out, to see this check fail).
#
# Prints TAP lines:
#   ok - cite: §N.M (K places)
#   not ok - cite: §N.M cited at FILE:LINE has no section in doc/format.md
#   not ok - stale reference at FILE:LINE: TEXT
# and exits 1 when any line is `not ok`, 2 when it cannot run.
set -u

FORMAT_MD=${1:-${CITE_FORMAT_MD:-}}
if [ -n "$FORMAT_MD" ]; then
	FORMAT_MD=$(realpath -m -- "$FORMAT_MD") || exit 2
fi
cd "$(dirname "$0")/../.." || exit 2
: "${FORMAT_MD:=$PWD/doc/format.md}"
SELF=tests/tools/cite-check.sh
# The old outside specification, written so that this line does not match itself.
STALE='FORMAT[.]md|CLI[.]md|shared[/]spec|[.][.][/]shared'

if [ ! -r "$FORMAT_MD" ]; then
	echo "not ok - cite: cannot read $FORMAT_MD"
	exit 1
fi

list_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard
	else
		find . -path ./build -prune -o -path ./.git -prune -o -type f -print | sed 's|^\./||'
	fi
}

files=$(mktemp) || exit 2
cites=$(mktemp) || exit 2
trap 'rm -f "$files" "$cites"' EXIT
list_files | LC_ALL=C sort | while IFS= read -r f; do
	[ -f "$f" ] && [ "$f" != "$SELF" ] && [ "$f" != doc/format.md ] && printf '%s\0' "$f"
done >"$files"

# FILE:LINE:§N.M, one per citation, `\[sc]` and `\(sc` (groff) written as §.
LC_ALL=C xargs -0 -r grep -I -H -n -o -E '(§|\\\[sc\]|\\\(sc)[0-9]+(\.[0-9]+)?' <"$files" |
	LC_ALL=C sed -E 's/(\\\[sc\]|\\\(sc)([0-9])/§\2/' >"$cites"

# The section numbers doc/format.md has: "N" for "## N. ", "N.M" for "### N.M ".
headings=$(LC_ALL=C sed -nE 's/^## ([0-9]+)\. .*/\1/p; s/^### ([0-9]+\.[0-9]+) .*/\1/p' "$FORMAT_MD")

bad=0
ncites=$(wc -l <"$cites")
if [ "$ncites" -eq 0 ]; then
	echo "not ok - cite: no § citation found at all (is this the repository?)"
	bad=1
fi
# One line per distinct section: its count and its first place, in section order.
while IFS=' ' read -r sec count place; do
	if grep -qxF -- "$sec" <<<"$headings"; then
		echo "ok - cite: §$sec ($count places)"
	else
		echo "not ok - cite: §$sec cited at $place has no section in doc/format.md"
		bad=1
	fi
done < <(LC_ALL=C awk '{
		n = index($0, "§"); sec = substr($0, n + length("§"))
		split($0, p, ":"); place = p[1] ":" p[2]
		if (!(sec in count)) first[sec] = place
		count[sec]++
	}
	END { for (s in count) print s, count[s], first[s] }' "$cites" |
	LC_ALL=C sort -t. -k1,1n -k2,2n)

# References to the old outside specification.
while IFS= read -r hit; do
	[ -n "$hit" ] || continue
	file=${hit%%:*}
	rest=${hit#*:}
	line=${rest%%:*}
	text=${rest#*:}
	echo "not ok - stale reference at $file:$line: $(echo "$text" | sed -E 's/^[[:space:]]+//' | cut -c1-100)"
	bad=1
done < <(LC_ALL=C xargs -0 -r grep -I -H -n -E "$STALE" <"$files")
# doc/format.md itself must not point there either.
while IFS= read -r hit; do
	[ -n "$hit" ] || continue
	echo "not ok - stale reference at doc/format.md:${hit%%:*}: $(echo "${hit#*:}" | cut -c1-100)"
	bad=1
done < <(LC_ALL=C grep -n -E "$STALE" "$FORMAT_MD")

echo "# $ncites citations of $(grep -c . <<<"$headings") sections of $(basename "$FORMAT_MD")"
[ "$bad" -eq 0 ]
