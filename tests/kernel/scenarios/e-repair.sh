#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario e: the fsck corruption corpus (tests/corrupt/cases.txt) against the kernel.
# For each case: the base image (built as the corpus builds it) is corrupted with
# build/tests/corrupt, then
#  1. the kernel loads the corrupted image: its verdict (loads / refuses / resets)
#     must be the one `pcache fsck -n` predicts (its kernel_verdict), and when it loads it must serve
#     what our replay says (resets: the backing device);
#  2. `pcache fsck -y` repairs a copy: the kernel must load the repaired image and
#     serve exactly what our replay of the repaired image says fsck kept.
# Cases whose problems make the kernel crash (fsck says so) are not loaded
# corrupted.  The backing slices drop every write (dm-flakey drop_writes): several
# corruptions make the kernel's writeback copy data the index does not serve
# (§10.4 TL4, §12.5), which would otherwise change what later reads return.
# Many NVDIMMs per boot: every image is stamped at byte 0 (which the kernel never
# reads nor writes) so the guest finds it; each gets a slice of the backing disk.
# A kernel crash (BUG, Oops, lockup) ends the boot at once: the image being loaded
# is reported as crashing the kernel, and the images after it go to the next boot.
#
# Every line of cases.txt runs; KT_E_COVER=1 runs only a set of cases that covers
# every problem code of the corpus once (cheapest bases first, about 60 cases),
# KT_E_FILTER=REGEX only the cases whose `NAME BASE` matches.
# The whole logical device is read back (sparsely) and compared with our replay's
# (devices past 256 MiB, kfx's 2 GiB: every byte any key in the image can reach, see
# read_ranges), and with the data before the damage (the base image's device): the sectors that
# differ are what the damage, or the repair, lost.  After fsck -y every lost sector
# must lie in the ranges fsck declared (lost_ranges, suspect_ranges).
# The status line at load (all nine fields) must be what `pcache info` predicted.
# Refusals are matched by reason: refusals.txt gives, per problem code, the errno and the
# kernel log line the refusal must come with.
# known-issues.txt lists discrepancies already reported: they print as
# `not ok ... # TODO known: ...` and run.sh does not count them as failures.
# For other scenarios that feed it cases (j-fuzz.sh): KT_E_CASES=FILE (case lines to
# run instead of cases.txt), KT_E_NAME (the prefix of titles, default e),
# KT_E_BASES="kfx w ..." (only these bases are built), KT_E_REPAIR=0 (no fsck -y
# copies), KT_E_LOG=FILE (a line `TITLE|VERDICT|FSCK_EXIT|CORRUPT'S FIRST LINE` per case),
# KT_E_CRC_FROM_IMAGE=1 (the table's data_crc from the image, not from its base).
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

MiB=$((1 << 20))
PER_BOOT=${KT_E_PER_BOOT:-16}
CORRUPT=$(dirname "$KT_MKIMAGE")/corrupt
CASES=${KT_E_CASES:-$KT_HERE/../corrupt/cases.txt}
E=${KT_E_NAME:-e}
D=$(kt_case "$E")
: >"$D/empty"

if [ ! -x "$CORRUPT" ] || [ ! -r "$CASES" ]; then
	kt_notok "e: $CORRUPT and $CASES are needed"
	exit 0
fi

# ---- bases (as tests/corrupt/run-corpus.sh builds them) ----
FX=
for f in "${PCACHE_FIXTURES:-}" "$(dirname "$PCACHE")/fixtures"; do
	if [ -n "$f" ] && [ -r "$f/kernel-dirty-300w.pmem" ] && [ -r "$f/kernel-dirty-300w.back" ]; then
		FX=$f
		break
	fi
done
declare -A BASE_OK BASE_CRC BASE_BACK BASE_BACKFILE BASE_BEFORE
build_base() {
	local b=$1 img=$D/base-$1.img
	case "$b" in
	fresh) truncate -s "$KT_NS_SIZE" "$img" && "$PCACHE" format -q "$img" ;;
	fresh-crc) truncate -s "$KT_NS_SIZE" "$img" && "$PCACHE" format -q --data-crc "$img" ;;
	w) "$KT_MKIMAGE" --size "$KT_NS_SIZE" --quiet --writes 3000 --seed 7 --clean-pct 10 "$img" ;;
	wcrc) "$KT_MKIMAGE" --size "$KT_NS_SIZE" --quiet --data-crc --writes 3000 --seed 3 --range 256M "$img" ;;
	long) "$KT_MKIMAGE" --size "$KT_NS_SIZE" --quiet --writes 440000 --min-len 512 --max-len 512 \
		--align 512 --seed 5 "$img" ;;
	kfx) [ -n "$FX" ] && cp --sparse=always "$FX/kernel-dirty-300w.pmem" "$img" && chmod u+w "$img" ;;
	*) false ;;
	esac >/dev/null 2>&1
}
# clean_backing BASE: mkimage's CLEAN keys (read-miss fills) say their data is on the
# backing device; a backing file that holds it makes a dropped CLEAN key cost
# nothing, as on a real device.
clean_backing() {
	local b=$1 img=$D/base-$1.img
	[ "${BASE_BACKFILE[$b]}" = "$D/empty" ] || return 0
	"$PCACHE" replay --json "$img" >"$D/clean.json" 2>/dev/null &&
		"$PCACHE" dump --json --what segments "$img" >"$D/clean.dump.json" 2>/dev/null || return 1
	grep -q '"dirty":false' "$D/clean.json" || return 0
	$KT_MODEL logical --clean-only --pmem "$img" --backing "$D/empty" --replay "$D/clean.json" \
		--dump "$D/clean.dump.json" --range "${BASE_BACK[$b]}" --out "$D/back-$b.img" >/dev/null &&
		BASE_BACKFILE[$b]=$D/back-$b.img
}
for b in ${KT_E_BASES:-fresh fresh-crc w wcrc long kfx}; do
	BASE_CRC[$b]=false
	BASE_BACK[$b]=$((64 * MiB))
	BASE_BACKFILE[$b]=$D/empty
	case "$b" in
	fresh-crc) BASE_CRC[$b]=true ;;
	wcrc) BASE_CRC[$b]=true BASE_BACK[$b]=$((256 * MiB)) ;;
	kfx) BASE_CRC[$b]=true BASE_BACK[$b]=$((2048 * MiB)) BASE_BACKFILE[$b]=$FX/kernel-dirty-300w.back
		# all zero (it is): nothing to copy into every boot's backing disk
		[ -n "$FX" ] && [ -n "$($KT_MODEL mibs --nonzero "$FX/kernel-dirty-300w.back" --len $((2048 * MiB)))" ] ||
			BASE_BACKFILE[$b]=$D/empty
		;;
	esac
	# the whole device before the damage: what every loss is measured against
	BASE_BEFORE[$b]=$D/before-$b.img
	if build_base "$b" && "$PCACHE" fsck -n "$D/base-$b.img" >/dev/null 2>&1 &&
		clean_backing "$b" &&
		kt_logical "$D/base-$b.img" "${BASE_BACKFILE[$b]}" "${BASE_BACK[$b]}" "${BASE_BEFORE[$b]}" \
			>"$D/logical.err" 2>&1; then
		BASE_OK[$b]=1
	else
		BASE_OK[$b]=0
	fi
done
if [ "${BASE_OK[kfx]-1}" = 0 ]; then
	echo "#   note: the kernel fixture (kernel-dirty-300w .pmem and .back) was not found: kfx cases skipped"
fi

# ---- the cases to run, in cases.txt order ----
select_cases() {
	python3 - "$CASES" "${KT_E_COVER:-0}" "${KT_E_FILTER:-}" "$@" <<'PYEOF'
import re, sys
path, cover, filt = sys.argv[1:4]
avail = set(sys.argv[4:])
cost = {"fresh": 0, "fresh-crc": 1, "w": 2, "wcrc": 3, "kfx": 4, "long": 5}
cases = []
for line in open(path):
    p = line.split()
    if len(p) == 4 and not p[0].startswith("#") and p[1] in avail:
        cases.append(p)
if filt:
    sel = [c for c in cases if re.search(filt, c[0] + " " + c[1])]
elif cover != "1":
    sel = cases
else:
    # greedy cover of the problem codes, cheapest bases first
    order = sorted(range(len(cases)), key=lambda i: (cost.get(cases[i][1], 9), i))
    cov, keep = set(), set()
    for i in order:
        spec, base, opt, codes = cases[i]
        cs = set(codes.split(",")) if codes != "-" else {"clean:" + spec.split(":")[0]}
        if cs - cov:
            keep.add(i)
            cov |= cs
    sel = [cases[i] for i in sorted(keep)]
for c in sel:
    print(" ".join(c))
PYEOF
}
avail=()
for b in "${!BASE_OK[@]}"; do [ "${BASE_OK[$b]}" = 1 ] && avail+=("$b"); done
select_cases "${avail[@]}" >"$D/selected"

# ---- prepare every case: images, predictions, expected content ----
# A slot is one image loaded in the guest.
# SLOT_KIND: corrupted (as the damage left it) or repaired (after fsck -y).
SLOT_IMG=() SLOT_BASE=() SLOT_KIND=() SLOT_EXPECT=() SLOT_VERDICT=() SLOT_TITLE=() SLOT_FSCK=()
SLOT_CRC=() SLOT_BACK=() SLOT_BACKFILE=() SLOT_CASE=()
add_slot() { # IMG BASE KIND VERDICT TITLE FSCK_JSON DATA_CRC
	local k=${#SLOT_IMG[@]}
	SLOT_CASE+=("$ncase")
	SLOT_IMG+=("$1") SLOT_BASE+=("$2") SLOT_KIND+=("$3") SLOT_VERDICT+=("$4") SLOT_TITLE+=("$5")
	SLOT_FSCK+=("$6") SLOT_EXPECT+=("$D/exp$k")
	SLOT_CRC+=("$7") SLOT_BACK+=("${BASE_BACK[$2]}") SLOT_BACKFILE+=("${BASE_BACKFILE[$2]}")
}

# expect_slot SLOT: SLOT_EXPECT[SLOT] = what the kernel must serve (our replay over the
# backing content; a reset serves the backing content).  Fails when our replay does.
expect_slot() {
	local k=$1 exp=${SLOT_EXPECT[$1]}
	case "${SLOT_VERDICT[$k]}" in
	loads)
		kt_logical "${SLOT_IMG[$k]}" "${SLOT_BACKFILE[$k]}" "${SLOT_BACK[$k]}" "$exp" nostrict \
			>"$D/logical.err" 2>&1
		local rc=$?
		rm -f "$exp.replay.json" "$exp.dump.json" "$exp.replay.err"
		if [ $rc -ne 0 ]; then
			kt_notok "${SLOT_TITLE[$k]}: our replay of the image failed"
			sed 's/^/#   /' "$D/logical.err"
			return 1
		fi
		;;
	resets)
		cp --sparse=always "${SLOT_BACKFILE[$k]}" "$exp" && truncate -s "${SLOT_BACK[$k]}" "$exp" ;;
	esac
	# The status the kernel must show at load (not for a reset: a new cache).
	[ "${SLOT_VERDICT[$k]}" = loads ] && kt_info_status "${SLOT_IMG[$k]}" >"$exp.status"
	return 0
}

# Counts for the summary: verdicts, agreements, bytes lost.
declare -A E_STAT
for x in crash_predicted kernel_loads kernel_refuses kernel_resets kernel_crashes "kernel_no result" \
	agree disagree lost_by_damage lost_by_repair declared_by_fsck lost_undeclared lost_undeclared_unserved; do
	E_STAT[$x]=0
done

# crc_of IMG BASE: the table's data_crc: the base's, or with KT_E_CRC_FROM_IMAGE=1
# the DATA_CRC bit of the cache_info the kernel picks (a mutation may flip it, and the
# kernel refuses a table that disagrees, §10.2 CI3, which no offline check can see).
crc_of() {
	local crc=${BASE_CRC[$2]}
	if [ "${KT_E_CRC_FROM_IMAGE:-0}" = 1 ]; then
		case $("$PCACHE" dump --json --what cache-info "$1" 2>/dev/null | grep -o '"data_crc":[a-z]*') in
		*true) crc=true ;;
		*false) crc=false ;;
		esac
	fi
	echo "$crc"
}

ncase=0
# prepare_case SPEC BASE: corrupts a copy of the base, asks fsck, repairs another copy;
# adds a slot for each image the kernel is to load.
prepare_case() {
	local spec=$1 base=$2 title img fopts bkf frc verdict rep rrc rv rverdict nact lost
	local -a cargs
	title="$E: $spec on $base"
	ncase=$((ncase + 1))
	img=$D/c$ncase.img
	cp --sparse=always "$D/base-$base.img" "$img"
	IFS=: read -r -a cargs <<<"$spec"
	if ! "$CORRUPT" "$img" "${cargs[@]}" >"$D/corrupt.out" 2>&1; then
		kt_notok "$title: corrupt failed: $(head -c 200 "$D/corrupt.out")"
		return
	fi
	if [ "$(stat -c %s "$img")" != "$KT_NS_SIZE" ]; then
		echo "#   $title: changes the device size; the NVDIMM size is fixed: not loaded"
		rm -f "$img"
		return
	fi
	# The kernel checks every data CRC at load and knows the backing size: fsck
	# predicts it only when it does the same (--verify-data, --backing).
	bkf=$D/backing-${BASE_BACK[$base]}
	[ -f "$bkf" ] || truncate -s "${BASE_BACK[$base]}" "$bkf"
	fopts=(--verify-data --backing "$bkf")
	"$PCACHE" fsck -n --json "${fopts[@]}" "$img" >"$D/c$ncase.fsck.json" 2>"$D/c$ncase.fsck.err"
	frc=$?
	verdict=$(python3 - "$D/c$ncase.fsck.json" "$D/c$ncase.fsck.err" <<'PYEOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))[0]
except Exception:
    err = open(sys.argv[2]).read()
    # not a pcache device: magic 0 on a big enough device -> the kernel formats it;
    # a foreign magic, a device too small, a wrong backing device -> refused
    zero = "no pcache superblock" in err and "(magic 0x" not in err and "512 MiB" not in err
    print("resets" if zero else "refuses")
    sys.exit(0)
print(d["kernel_verdict"])
PYEOF
	)
	[ -n "${KT_E_LOG:-}" ] && echo "$title|$verdict|$frc|$(head -n 1 "$D/corrupt.out")" >>"$KT_E_LOG"
	# The repaired copy.
	rep=$D/c$ncase.rep.img
	: >"$D/c$ncase.rep.fsck.json"
	rrc=0
	if [ "${KT_E_REPAIR:-1}" = 1 ]; then
		cp --sparse=always "$img" "$rep"
		"$PCACHE" fsck -y --json "${fopts[@]}" "$rep" >"$D/c$ncase.rep.fsck.json" 2>"$D/fsckr.err"
		rrc=$?
	fi
	rv=$(python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))[0]
    print(d["repair"]["kernel_verdict_after"], len(d["repair"]["actions"]), d["repair"]["lost_keys"])
except Exception:
    print("none 0 0")' "$D/c$ncase.rep.fsck.json")
	read -r rverdict nact lost <<<"$rv"
	if [ "$verdict" = crashes ]; then
		echo "#   $title: fsck says the kernel would crash on it (BUG): not loaded corrupted"
		E_STAT[crash_predicted]=$((E_STAT[crash_predicted] + 1))
	else
		add_slot "$img" "$base" corrupted "$verdict" "$title: corrupted, fsck -n exit $frc" \
			"$D/c$ncase.fsck.json" "$(crc_of "$img" "$base")"
	fi
	if [ "$nact" -gt 0 ] && [ "$rverdict" = crashes ]; then
		e_notok "$title: fsck -y (exit $rrc, $nact repairs) leaves a cache it says the kernel crashes on"
		rm -f "$rep"
	elif [ "$nact" -gt 0 ]; then
		add_slot "$rep" "$base" repaired "$rverdict" \
			"$title: after fsck -y (exit $rrc, $nact repairs, $lost keys dropped)" \
			"$D/c$ncase.rep.fsck.json" "$(crc_of "$rep" "$base")"
	else
		rm -f "$rep"
	fi
}
mapfile -t CASELINES <"$D/selected"
next_case=0
# more_cases N: prepares cases until N slots wait in `pending` or none is left.
more_cases() {
	local before k spec base
	while [ ${#pending[@]} -lt "$1" ] && [ "$next_case" -lt ${#CASELINES[@]} ]; do
		read -r spec base _ <<<"${CASELINES[$next_case]}"
		next_case=$((next_case + 1))
		before=${#SLOT_IMG[@]}
		prepare_case "$spec" "$base"
		for ((k = before; k < ${#SLOT_IMG[@]}; k++)); do pending+=("$k"); done
	done
}
pending=()

# ---- verdicts ----
# known_issue TITLE: the explanation when TITLE starts with a line of known-issues.txt.
known_issue() {
	local pat why
	[ -r "$KT_HERE/known-issues.txt" ] || return 1
	while IFS='|' read -r pat why; do
		case "$pat" in '' | '#'*) continue ;; esac
		pat=$(echo "$pat" | sed 's/[[:space:]]*$//')
		case "$1" in "$pat"*)
			echo "$why" | sed 's/^[[:space:]]*//'
			return 0
			;;
		esac
	done <"$KT_HERE/known-issues.txt"
	return 1
}

# e_notok DESCRIPTION: not ok, or `not ok ... # TODO known: ...` for a known issue.
e_notok() {
	local why
	if why=$(known_issue "$1"); then
		echo "not ok - $1 # TODO known: $why"
	else
		kt_notok "$1"
	fi
}

problems_of() {
	python3 -c '
import json,sys
try: print(", ".join("%s (%s)" % (p["code"], p["kernel"]) for p in json.load(open(sys.argv[1]))[0]["problems"][:6]))
except Exception: print("-")' "$1" 2>/dev/null
}

slot_crashed() { # SLOT BATCHDIR
	local k=$1 B=$2 t=${SLOT_TITLE[$1]} what
	what=${KT_BOOT_CRASH:-the guest hung: no console output, no progress}
	if grep -qE "pcache-loaded $k[[:space:]]*\$" "$B/console.log" 2>/dev/null; then
		what="it loads, then: $what"
	fi
	e_notok "$t: the kernel crashed ($what); fsck predicted '${SLOT_VERDICT[$k]}'"
	echo "#   fsck problems: $(problems_of "${SLOT_FSCK[$k]}")"
	grep -E -A8 "$KT_CRASH_RE" "$B/console.log" 2>/dev/null | head -n 10 | sed 's/^/#   console: /'
}

# first_refusing_code FSCK_JSON: the first problem the kernel refuses a load on.  When
# fsck printed no JSON (exit 8, the reason in FSCK_JSON's .err twin): a device too
# small, a foreign magic, or cached data past the end of the backing device, which
# the kernel refuses as a key past the backing size.
first_refusing_code() {
	python3 -c '
import json, sys
try:
    ps = json.load(open(sys.argv[1]))[0]["problems"]
    print(next(p["code"] for p in ps if p.get("kernel", "").startswith("refuses")))
except Exception:
    err = open(sys.argv[1][:-len(".json")] + ".err").read()
    print("SB_TOO_SMALL" if "512 MiB" in err else "SB_BAD_MAGIC" if "(magic 0x" in err else
          "KEY_RANGE" if "wrong backing device?" in err else "-")
' "$1" 2>/dev/null
}

# refusal_check SLOT WHY: the kernel refused, as predicted; WHY (dmsetup's error, then
# the last kernel log lines) must be the reason tests/kernel/refusals.txt gives for
# the first refusing problem fsck found.
refusal_check() {
	local k=$1 why=$2 t=${SLOT_TITLE[$1]} code errno re
	code=$(first_refusing_code "${SLOT_FSCK[$k]}")
	IFS='|' read -r _ errno re < <(grep -E "^$code +\|" "$KT_HERE/refusals.txt")
	errno=$(echo "$errno" | sed 's/^ *//; s/ *$//')
	re=$(echo "$re" | sed 's/^ *//; s/ *$//')
	if [ -z "$re" ]; then
		e_notok "$t: the kernel refuses it, as fsck predicted, but refusals.txt has no reason for $code ($why)"
	elif [[ "$why" == *"failed: $errno"* ]] && grep -qE "$re" <<<"$why"; then
		kt_ok "$t: the kernel refuses it, as fsck predicted, for the reason of $code ($errno)"
	else
		e_notok "$t: the kernel refuses it, as fsck predicted, but not for the reason of $code: $why"
		echo "#   expected: '$errno' and /$re/"
	fi
}

# loss_check SLOT BATCHDIR OFF: the sectors where the device the kernel served
# differs from the device before the damage (SLOT_LOST).  The damaged image's losses
# are what the damage forces (when the kernel loads it); after fsck -y every lost
# sector must lie in those or in the ranges fsck declared (lost_ranges,
# suspect_ranges): a repair may lose what the damage took and what it says it
# drops, nothing more.
loss_check() {
	local k=$1 B=$2 off=$3 t=${SLOT_TITLE[$1]} n bytes undecl decl lost=${SLOT_EXPECT[$1]}.lost
	$KT_MODEL sdiff "$B/rb.img" "${BASE_BEFORE[${SLOT_BASE[$k]}]}" --a-off "$off" \
		--len "${SLOT_BACK[$k]}" $(only "$k" "$B") >"$lost" || { e_notok "$t: comparing with the device before the damage failed"; return; }
	if [ "${SLOT_KIND[$k]}" = corrupted ]; then
		cp "$lost" "$D/case${SLOT_CASE[$k]}.forced"
	fi
	read -r n bytes undecl decl < <(python3 - "${SLOT_FSCK[$k]}" "${SLOT_KIND[$k]}" "$lost" \
		"$D/case${SLOT_CASE[$k]}.forced" <<'PYEOF'
import json, os, sys
path, kind, lost_path, forced_path = sys.argv[1:5]
def ranges(p):
    if not os.path.exists(p):
        return []
    return [tuple(map(int, r.split("-"))) for r in open(p).read().split()]
lost = ranges(lost_path)
decl, declared = [], 0
if kind == "repaired":
    try:
        rep = json.load(open(path))[0]["repair"]
        for key in ("lost_ranges", "suspect_ranges"):
            decl += [(r["offset"], r["offset"] + r["length"]) for r in rep.get(key) or []]
        declared = (rep.get("lost_bytes") or 0) + (rep.get("suspect_bytes") or 0)
    except Exception:
        pass
    decl += ranges(forced_path)
decl.sort()
undecl, j = 0, 0
for s, e in lost:
    while j < len(decl) and decl[j][1] <= s:
        j += 1
    cov, i = 0, j
    while i < len(decl) and decl[i][0] < e:
        cov += max(0, min(e, decl[i][1]) - max(s, decl[i][0]))
        i += 1
    undecl += max(0, (e - s) - cov)
print(len(lost), sum(e - s for s, e in lost), undecl if kind == "repaired" else 0, declared)
PYEOF
	)
	if [ "${SLOT_KIND[$k]}" = corrupted ]; then
		E_STAT[lost_by_damage]=$((E_STAT[lost_by_damage] + bytes))
		[ "$n" -gt 0 ] && echo "#   $t: the kernel serves $bytes bytes ($n ranges) other than before the damage"
		return
	fi
	E_STAT[lost_by_repair]=$((E_STAT[lost_by_repair] + bytes))
	E_STAT[declared_by_fsck]=$((E_STAT[declared_by_fsck] + decl))
	if [ "$undecl" -eq 0 ]; then
		kt_ok "$t: every sector the repair lost ($bytes bytes, $n ranges) was lost to the damage or declared by fsck"
	elif [ ! -f "$D/case${SLOT_CASE[$k]}.forced" ]; then
		# the kernel did not serve the damaged cache (it refuses it, or fsck says it
		# crashes on it): the damage costs all of it, and no repair loses more
		echo "#   $t: the kernel does not serve the damaged cache; of the $bytes bytes ($n ranges) the repair lost, fsck declared all but $undecl"
		E_STAT[lost_undeclared_unserved]=$((E_STAT[lost_undeclared_unserved] + undecl))
	else
		E_STAT[lost_undeclared]=$((E_STAT[lost_undeclared] + undecl))
		e_notok "$t: the repair lost $undecl bytes neither the damage forced nor fsck declared (of $bytes lost, $n ranges)"
	fi
	[ "$n" -gt 0 ] && echo "#   lost: $(tr ' ' '\n' <"$lost" | head -n 8 | tr '\n' ' ')"
}

# only SLOT DIR: the sdiff option that limits a comparison to what the guest read.
only() {
	whole "$1" || echo "--only $2/scn/ranges$1"
}

what_read() { # SLOT DIR
	if whole "$1"; then
		echo "the whole $((SLOT_BACK[$1] / MiB)) MiB"
	else
		awk -v m=$MiB '{ n++; b += $2 } END { printf "%d ranges, %.1f MiB: every byte a key in the image can reach", n, b / m }' "$2/scn/ranges$1"
	fi
}

check_slot() { # SLOT BATCHDIR RB_OFFSET
	local k=$1 B=$2 off=$3 cr rb want=${SLOT_VERDICT[$1]} got t=${SLOT_TITLE[$1]} RB=${SLOT_BACK[$1]} d ov
	cr=$(kt_result "$B" "create_pc$k")
	rb=$(kt_result "$B" "rb$k")
	case "$cr" in
	ok) got=loads ;;
	fail*) got=refuses ;;
	*) got="no result" ;;
	esac
	# A reset is a load that serves the backing device.
	if [ "$want" = resets ] && [ "$got" = loads ]; then got=resets; fi
	E_STAT[kernel_$got]=$((E_STAT[kernel_$got] + 1))
	if [ "$got" != "$want" ]; then
		E_STAT[disagree]=$((E_STAT[disagree] + 1))
		e_notok "$t: the kernel $got, fsck predicted '$want'"
		[ -n "$cr" ] && echo "#   dmsetup: $cr"
		echo "#   fsck problems: $(problems_of "${SLOT_FSCK[$k]}")"
		return
	fi
	E_STAT[agree]=$((E_STAT[agree] + 1))
	if [ "$got" = refuses ]; then
		refusal_check "$k" "${cr#fail }"
		return
	fi
	if [ "$got" = loads ]; then
		# writeback starts at once (into a slice that drops writes): dirty_tail may
		# already be past where pcache info put it
		kt_status_cmp "$t: status at load equals pcache info's (all nine fields; dirty_tail may have moved on)" \
			"$(kt_result "$B" "st$k")" "$(cat "${SLOT_EXPECT[$k]}.status")" dirty_tail >"$D/st.out"
		if grep -q '^not ok' "$D/st.out"; then cat "$D/st.out"; else grep '^ok' "$D/st.out"; fi
	fi
	case "$rb" in
	ok*)
		if ! d=$($KT_MODEL sdiff "$B/rb.img" "${SLOT_EXPECT[$k]}" --a-off "$off" --len "$RB" $(only "$k" "$B") 2>&1); then
			e_notok "$t: comparing what the kernel served failed: $(echo "$d" | tail -n 1)"
		elif ! grep -qx "remove_pc$k ok" "$B/out/results"; then
			e_notok "$t: dmsetup remove after reading it: $(kt_result "$B" "remove_pc$k")"
		elif [ -z "$d" ]; then
			kt_ok "$t: the kernel $got it, as fsck predicted, and serves what our replay serves ($(what_read "$k" "$B"))"
			loss_check "$k" "$B" "$off"
		elif [ "${SLOT_KIND[$k]}" = corrupted ] &&
			ov=$(grep -oE '"code":"(LOG_DATA_OVERLAP|CHAIN_DUPLICATE)"' "${SLOT_FSCK[$k]}" | head -n 1 | cut -d'"' -f4) &&
			[ -n "$ov" ]; then
			# the log runs through a data segment (LOG_DATA_OVERLAP, §10.5), or two
			# cache segments share a device segment (CHAIN_DUPLICATE, §12.25): the
			# read-miss fills of the read-back, and their ksets, land on cached data,
			# the silent corruption fsck predicts
			kt_ok "$t: the kernel $got it, as fsck predicted, and serves our replay's bytes but where its own writes overwrote cached data, as $ov predicts ($(echo "$d" | wc -w) ranges)"
			loss_check "$k" "$B" "$off"
		else
			e_notok "$t: the kernel $got it, as fsck predicted, and serves what our replay serves"
			echo "#   differ (sectors): $(echo "$d" | tr ' ' '\n' | head -n 8 | tr '\n' ' ')"
		fi
		;;
	*)
		e_notok "$t: the kernel $got it, but reading it failed: ${rb:-no result}"
		;;
	esac
}

# ---- boots ----
# whole SLOT: is its whole device read back?  Yes up to KT_E_WHOLE_MAX (256 MiB).
# Past that (kfx's 2 GiB) the guest reads the byte ranges of read_ranges: reading all
# 2 GiB through its 1 GiB cache would take minutes in the emulated guest, and the
# read-miss fills would make GC evict written-back data, which the write-dropping
# backing slice does not hold.
whole() {
	[ "${SLOT_BACK[$1]}" -le "${KT_E_WHOLE_MAX:-$((256 * MiB))}" ]
}

# read_ranges SLOT: `START LEN` lines, every byte of its device a key can reach:
# where the device before the damage or our replay of the image holds cached data,
# and every key of every kset-shaped record in the image, read without trusting its
# CRC or place (so a key the kernel indexes and we do not is read too); 4 KiB
# aligned, merged when less than 64 KiB apart.  No key, no cache: the rest is the
# backing device, which is all zero for the one base read this way (kfx).
read_ranges() {
	local k=$1 f files=()
	# no expected device when the kernel is predicted to refuse it (nothing is read)
	for f in "${BASE_BEFORE[${SLOT_BASE[$k]}]}" "${SLOT_EXPECT[$k]}"; do
		[ -f "$f" ] && files+=("$f")
	done
	$KT_MODEL ranges "${files[@]}" --img "${SLOT_IMG[$k]}" --len "${SLOT_BACK[$k]}"
}

# batch_prepare DIR SLOT...: the NVDIMM files, backing disk and guest script of one
# boot; DIR/slots lists the slots it holds (those whose expected content exists), as
# `SLOT RB_OFFSET`: where its whole device goes on the read-back disk (sparsely:
# the guest skips all-zero MiBs), whose size DIR/rbsize holds.
batch_prepare() {
	local B=$1 k j=0 off=0 g RB rbo=0
	shift
	rm -rf "$B"
	mkdir -p "$B/scn"
	kt_guest_script "$B/scn"
	g=$B/scn/guest.sh
	: >"$B/slots"
	for k in "$@"; do
		expect_slot "$k" || continue
		echo "$k $rbo" >>"$B/slots"
		rbo=$((rbo + SLOT_BACK[k]))
	done
	echo "$rbo" >"$B/rbsize"
	echo "pg_wait_pmems $(wc -l <"$B/slots")" >>"$g"
	while read -r k rbo; do
		RB=${SLOT_BACK[$k]}
		printf 'KT-SLOT-%04d' "$k" | dd of="${SLOT_IMG[$k]}" conv=notrunc status=none
		kt_pmem_to_nv "${SLOT_IMG[$k]}" "$B/nv$j.img"
		truncate -s $((off + SLOT_BACK[k])) "$B/back.img"
		if [ -s "${SLOT_BACKFILE[$k]}" ]; then
			dd if="${SLOT_BACKFILE[$k]}" of="$B/back.img" bs=1M oflag=seek_bytes seek="$off" \
				conv=sparse,notrunc status=none
		fi
		cat >>"$g" <<EOF
echo "<3>pcache-slot $k" >/dev/kmsg
P=\$(pg_find_pmem KT-SLOT-$(printf %04d "$k"))
if [ -z "\$P" ]; then
	pg_note "create_pc$k fail no pmem device carries the stamp of slot $k"
elif pg_linear bk$k \$BACK $off ${SLOT_BACK[$k]} drop_writes; then
	if pg_create pc$k ${SLOT_CRC[$k]} \$P /dev/mapper/bk$k; then
		echo "<3>pcache-loaded $k" >/dev/kmsg
		pg_status pc$k st$k
		$(readback "$k" "$B" "$rbo") && pg_remove pc$k
	fi
	dmsetup remove --noudevsync bk$k 2>/dev/null
fi
pg_note "slot_done_$k"
pg_save quick
EOF
		off=$((off + SLOT_BACK[k]))
		j=$((j + 1))
	done <"$B/slots"
}

# readback SLOT DIR RB_OFFSET: the guest's command that reads the slot's device back.
readback() {
	local k=$1 B=$2 rbo=$3 RB=${SLOT_BACK[$1]}
	if whole "$k"; then
		echo "pg_readback_runs pc$k rb$k $((rbo / MiB)) $((60 + RB / (8 * MiB))) 0:$((RB / MiB))"
	else
		read_ranges "$k" >"$B/scn/ranges$k"
		echo "pg_readback_ranges pc$k rb$k $rbo 120 ranges$k"
	fi
}

# batch_boot DIR: boots it (may run in the background); DIR/crash gets the crash line.
batch_boot() {
	local B=$1 n t0
	n=$(wc -l <"$B/slots")
	t0=$(date +%s)
	KT_SMP=$E_SMP KT_RB_SIZE=$(cat "$B/rbsize") KT_IDLE_TIMEOUT=${KT_E_IDLE_TIMEOUT:-90} \
		kt_boot "$B" >"$B/boot.out" 2>&1
	echo "$KT_BOOT_CRASH" >"$B/crash"
	echo "$(($(date +%s) - t0))" >"$B/secs"
}

# batch_check DIR: the verdicts of one boot; sets RETRY to the slots it did not reach.
batch_check() {
	local B=$1 k rbo crashed="" slots line
	mapfile -t slots <"$B/slots"
	KT_BOOT_CRASH=$(cat "$B/crash" 2>/dev/null)
	grep -v '^#   ' "$B/boot.out"
	# The slot the kernel died on: the last slot marker before the first crash line
	# on the console (its lines end in CR LF); after a silent hang, the first slot that
	# did not finish.
	if [ -n "$KT_BOOT_CRASH" ]; then
		crashed=$(awk -v re="$KT_CRASH_RE" '/pcache-slot [0-9]+/ { s = $NF; sub(/\r$/, "", s) } $0 ~ re { print s; exit }' \
			"$B/console.log")
	fi
	RETRY=()
	for line in "${slots[@]}"; do
		read -r k rbo <<<"$line"
		if [ "$k" = "$crashed" ]; then
			E_STAT[kernel_crashes]=$((E_STAT[kernel_crashes] + 1)) E_STAT[disagree]=$((E_STAT[disagree] + 1))
			slot_crashed "$k" "$B"
		elif grep -qx "slot_done_$k" "$B/out/results" 2>/dev/null; then
			[ -n "${HUNG[$k]:-}" ] &&
				echo "#   note: ${SLOT_TITLE[$k]}: a first boot hung silently while loading it; it passed on its own boot"
			check_slot "$k" "$B" "$rbo"
		elif [ -z "$crashed" ]; then
			# a silent hang: the first image that did not finish; it gets one more
			# boot of its own before it is called a hang of the kernel
			crashed=$k
			if [ -z "${HUNG[$k]:-}" ]; then
				HUNG[$k]=1
				echo "#   ${SLOT_TITLE[$k]}: the guest hung silently while loading it; trying it once more"
				RETRY+=("$k")
				continue
			fi
			E_STAT[kernel_crashes]=$((E_STAT[kernel_crashes] + 1)) E_STAT[disagree]=$((E_STAT[disagree] + 1))
			slot_crashed "$k" "$B"
		else
			RETRY+=("$k")
			continue
		fi
		# done with this image
		[ "${PCACHE_KERNEL_KEEP:-0}" = 1 ] || rm -f "${SLOT_IMG[$k]}" "${SLOT_EXPECT[$k]}" "${SLOT_EXPECT[$k]}.status" "${SLOT_EXPECT[$k]}.lost"
	done
	echo "#   boot $(basename "$B"): ${#slots[@]} images, guest $(cat "$B/secs" 2>/dev/null) s"
	[ "${PCACHE_KERNEL_KEEP:-0}" = 1 ] || rm -rf "$B"
}

if [ "${KT_E_PREPARE_ONLY:-0}" = 1 ]; then
	more_cases 1000000
	kt_ok "e: prepared ${#SLOT_IMG[@]} images of $ncase cases (KT_E_PREPARE_ONLY=1: nothing loaded)"
	exit 0
fi
# shellcheck disable=SC2034 # read by kt_boot (lib.sh)
KT_BOOT_TIMEOUT=${KT_E_BOOT_TIMEOUT:-300}
# Boots run PARALLEL at a time, each guest with one CPU: the work in a guest is
# sequential, so two one-CPU guests get through twice as much as one two-CPU guest.
PARALLEL=${KT_E_PARALLEL:-$(nproc 2>/dev/null || echo 1)}
[ "$PARALLEL" -gt 4 ] && PARALLEL=4
E_SMP=1
[ "$PARALLEL" -le 1 ] && E_SMP=2
declare -A HUNG
# Cases are prepared a round at a time, so the scratch space holds the images of
# one round only (a few GiB at most).
nb=0
while :; do
	more_cases $((PARALLEL * PER_BOOT))
	[ ${#pending[@]} -gt 0 ] || break
	group=()
	while [ ${#group[@]} -lt "$PARALLEL" ] && [ ${#pending[@]} -gt 0 ]; do
		if [ -n "${HUNG[${pending[0]}]:-}" ]; then
			batch=("${pending[0]}") # an image that hung a boot: alone
			pending=("${pending[@]:1}")
		else
			batch=("${pending[@]:0:$PER_BOOT}")
			pending=("${pending[@]:$PER_BOOT}")
		fi
		nb=$((nb + 1))
		batch_prepare "$D/boot$nb" "${batch[@]}"
		[ -s "$D/boot$nb/slots" ] && group+=("$D/boot$nb")
	done
	for B in "${group[@]}"; do
		batch_boot "$B" &
	done
	more_cases $((2 * PARALLEL * PER_BOOT)) # the next round's, while the guests run
	wait
	retry_all=()
	for B in "${group[@]}"; do
		batch_check "$B"
		retry_all+=("${RETRY[@]}")
	done
	pending=("${retry_all[@]}" "${pending[@]}")
done
echo "#   $ncase corruption cases, ${#SLOT_IMG[@]} images loaded in $nb boots"
# `# stat: ` lines feed run.sh's summary table.
echo "# stat: $E cases $ncase"
echo "# stat: $E images ${#SLOT_IMG[@]}"
for x in "${!E_STAT[@]}"; do echo "# stat: $E ${x// /_} ${E_STAT[$x]}"; done | sort
[ "${PCACHE_KERNEL_KEEP:-0}" = 1 ] || rm -rf "$D"
