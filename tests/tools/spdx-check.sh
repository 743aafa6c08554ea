#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Checks that every source file starts with its SPDX line:
#   libpcachemeta/ C sources and headers: /* SPDX-License-Identifier: LGPL-2.1-or-later */
#   every other C file:                    /* SPDX-License-Identifier: GPL-2.0-or-later */
#   shell, bats, Python, Makefiles:        # SPDX-License-Identifier: GPL-2.0-or-later
#                                          (on line 1, or line 2 after a #! line)
# Prints `ok - ...` or one `not ok - FILE: ...` per offender; exits 1 on any.
set -u
cd "$(dirname "$0")/../.." || exit 2

list_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard
	else
		find . -path ./build -prune -o -path ./.git -prune -o -type f -print | sed 's|^\./||'
	fi
}

bad=0
n=0
while IFS= read -r f; do
	[ -f "$f" ] || continue
	case "$f" in
	libpcachemeta/*.c | libpcachemeta/*.h)
		kind=c want="/* SPDX-License-Identifier: LGPL-2.1-or-later */" ;;
	*.c | *.h)
		kind=c want="/* SPDX-License-Identifier: GPL-2.0-or-later */" ;;
	*.sh | *.bash | *.bats | *.py | .ci/run | Makefile | */Makefile | *.mk)
		kind=hash want="# SPDX-License-Identifier: GPL-2.0-or-later" ;;
	*)
		continue ;;
	esac
	n=$((n + 1))
	first=$(head -n 1 "$f")
	if [ "$kind" = hash ] && [ "${first#\#!}" != "$first" ]; then
		first=$(sed -n 2p "$f")
	fi
	if [ "$first" != "$want" ]; then
		echo "not ok - $f: first line should be '$want'"
		bad=$((bad + 1))
	fi
done < <(list_files | LC_ALL=C sort)

if [ "$n" -eq 0 ]; then
	echo "not ok - no source files found"
	exit 1
fi
if [ "$bad" -eq 0 ]; then
	echo "ok - SPDX line in all $n source files"
fi
[ "$bad" -eq 0 ]
