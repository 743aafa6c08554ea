#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# tests/fuzz/ledger-sum.sh [LEDGER]: executions per target in a fuzz ledger
# (default tests/fuzz/ledger.txt; lines `date commit target executions seconds result`,
# written by run-fuzz.sh with FUZZ_LEDGER set).  Runs that ended in a finding are
# counted apart.
set -u
f=${1:-$(dirname "$0")/ledger.txt}
awk '!/^#/ && NF >= 6 {
	if ($6 == "clean") { ex[$3] += $4; s[$3] += $5; runs[$3]++ } else bad[$3]++
	seen[$3] = 1
}
END {
	printf "%-12s %14s %10s %6s %9s\n", "target", "executions", "seconds", "runs", "findings"
	for (t in seen)
		printf "%-12s %14d %10d %6d %9d\n", t, ex[t], s[t], runs[t], bad[t]
}' "$f" | { read -r h; echo "$h"; sort; }
