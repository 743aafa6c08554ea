#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# tests/fuzz/ledger-sum.sh [LEDGER]: executions per target in a fuzz ledger
# (default tests/fuzz/ledger.txt; lines `date commit target executions seconds result`,
# written by run-fuzz.sh with FUZZ_LEDGER set).  Runs that ended in a finding are
# counted apart.
set -u
f=${1:-$(dirname "$0")/ledger.txt}
# `since finding`: clean executions after the target's last finding, i.e. on the code
# that has its fix (a finding is fixed before fuzzing goes on).
awk '!/^#/ && NF >= 6 {
	if ($6 == "clean") { ex[$3] += $4; s[$3] += $5; runs[$3]++; since[$3] += $4 }
	else { bad[$3]++; since[$3] = 0 }
	seen[$3] = 1
}
END {
	printf "%-12s %14s %10s %6s %9s %14s\n", "target", "executions", "seconds", "runs",
	       "findings", "since finding"
	for (t in seen)
		printf "%-12s %14d %10d %6d %9d %14d\n", t, ex[t], s[t], runs[t], bad[t], since[t]
}' "$f" | { read -r h; echo "$h"; sort; }
