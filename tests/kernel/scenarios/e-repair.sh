#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario e: the fsck corruption corpus (tests/corrupt/cases.txt) against the kernel.
# For each case: the base image (built as the corpus builds it) is corrupted with
# build/tests/corrupt, then
#  1. the kernel loads the corrupted image: its verdict (loads / refuses / resets)
#     must be the one `pcache fsck -n` predicts, and when it loads it must serve
#     what our replay says (resets: the backing device);
#  2. `pcache fsck -y` repairs a copy: the kernel must load the repaired image and
#     serve exactly what our replay of the repaired image says fsck kept.
# Cases whose problems make the kernel crash (fsck says so) are not loaded
# corrupted.  The backing slices drop every write (dm-flakey drop_writes): several
# corruptions make the kernel's writeback copy data the index does not serve
# (FORMAT.md 10.4 TL4, 12.5), which would otherwise change what later reads return.  Many NVDIMMs per boot: every image is stamped at byte 0 (which the
# kernel never reads nor writes) so the guest finds it; each gets a dm-linear slice
# of the backing disk.
#
# Default: the first case of each corruption name; KT_E_ALL=1 runs every line,
# KT_E_FILTER=REGEX only cases whose `NAME BASE` matches.
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

MiB=$((1 << 20))
RB=$((64 * MiB))        # bytes read back per image
PER_BOOT=${KT_E_PER_BOOT:-16}
CORRUPT=$(dirname "$KT_MKIMAGE")/corrupt
CASES=$KT_HERE/../corrupt/cases.txt
D=$(kt_case e)
: >"$D/empty"

if [ ! -x "$CORRUPT" ] || [ ! -r "$CASES" ]; then
	kt_notok "e: $CORRUPT and $CASES are needed"
	exit 0
fi

# ---- bases (as tests/corrupt/run-corpus.sh builds them) ----
FX=
for f in "${PCACHE_FIXTURES:-}" "$(dirname "$PCACHE")/fixtures" /tmp/fx; do
	if [ -n "$f" ] && [ -r "$f/kernel-dirty-300w.pmem" ] && [ -r "$f/kernel-dirty-300w.back" ]; then
		FX=$f
		break
	fi
done
declare -A BASE_OK BASE_CRC BASE_BACK BASE_BACKFILE
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
for b in fresh fresh-crc w wcrc long kfx; do
	BASE_CRC[$b]=false
	BASE_BACK[$b]=$((64 * MiB))
	BASE_BACKFILE[$b]=$D/empty
	case "$b" in
	fresh-crc | wcrc) BASE_CRC[$b]=true ;;
	kfx) BASE_CRC[$b]=true BASE_BACK[$b]=$((2048 * MiB)) BASE_BACKFILE[$b]=$FX/kernel-dirty-300w.back ;;
	esac
	[ "$b" = wcrc ] && BASE_BACK[$b]=$((256 * MiB))
	if build_base "$b" && [ "$("$PCACHE" fsck -n "$D/base-$b.img" >/dev/null 2>&1; echo $?)" = 0 ]; then
		BASE_OK[$b]=1
	else
		BASE_OK[$b]=0
	fi
done
if [ "${BASE_OK[kfx]}" = 0 ]; then
	echo "#   note: the kernel fixture (kernel-dirty-300w .pmem and .back) was not found: kfx cases skipped"
fi

# ---- prepare every case: images, predictions, expected content ----
# A slot is one image loaded in the guest: SLOT_* arrays.
SLOT_IMG=() SLOT_CRC=() SLOT_BACK=() SLOT_BACKFILE=() SLOT_EXPECT=() SLOT_VERDICT=() SLOT_TITLE=()
SLOT_FSCK=()
declare -A seen
add_slot() { # IMG CRC BACK BACKFILE VERDICT TITLE FSCK_JSON
	local k=${#SLOT_IMG[@]}
	local exp=$D/exp$k
	case "$5" in
	loads)
		kt_logical "$1" "$4" "$RB" "$exp" nostrict >"$D/logical.err" 2>&1 || {
			kt_notok "$6: our replay of the image failed"
			sed 's/^/#   /' "$D/logical.err"
			return
		}
		;;
	resets) $KT_MODEL model --range "$RB" --base "$4" --out "$exp" ;;
	*) : ;;
	esac
	SLOT_IMG+=("$1") SLOT_CRC+=("$2") SLOT_BACK+=("$3") SLOT_BACKFILE+=("$4")
	SLOT_VERDICT+=("$5") SLOT_TITLE+=("$6") SLOT_EXPECT+=("$exp") SLOT_FSCK+=("$7")
}

ncase=0
while read -r spec base opt codes extra; do
	case "$spec" in '' | '#'*) continue ;; esac
	name=${spec%%:*}
	if [ -n "${KT_E_FILTER:-}" ]; then
		[[ "$spec $base" =~ $KT_E_FILTER ]] || continue
	elif [ "${KT_E_ALL:-0}" != 1 ]; then
		[ -n "${seen[$name]:-}" ] && continue
	fi
	[ "${BASE_OK[$base]:-0}" = 1 ] || continue
	seen[$name]=1
	title="e: $spec on $base"
	ncase=$((ncase + 1))
	img=$D/c$ncase.img
	cp --sparse=always "$D/base-$base.img" "$img"
	IFS=: read -r -a cargs <<<"$spec"
	if ! "$CORRUPT" "$img" "${cargs[@]}" >"$D/corrupt.out" 2>&1; then
		kt_notok "$title: corrupt failed: $(head -c 200 "$D/corrupt.out")"
		continue
	fi
	if [ "$(stat -c %s "$img")" != "$KT_NS_SIZE" ]; then
		echo "#   $title: changes the device size; the NVDIMM size is fixed: not loaded"
		rm -f "$img"
		continue
	fi
	fopts=()
	case "$opt" in *--verify-data*) fopts+=(--verify-data) ;; esac
	"$PCACHE" fsck -n --json "${fopts[@]}" "$img" >"$D/fsck.json" 2>"$D/fsck.err"
	frc=$?
	verdict=$(python3 - "$D/fsck.json" "$D/fsck.err" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))[0]
except Exception:
    err = open(sys.argv[2]).read()
    # not a pcache device: magic 0 -> the kernel formats it; anything else -> refused
    print("resets" if "magic is 0" in err or "no pcache superblock" in err else "refuses")
    sys.exit(0)
crash = any(p.get("kernel", "").startswith("crashes") for p in d.get("problems", []))
print("crashes" if crash else d["kernel_verdict"])
EOF
	)
	cp "$D/fsck.json" "$D/c$ncase.fsck.json"
	# The repaired copy.
	rep=$D/c$ncase.rep.img
	cp --sparse=always "$img" "$rep"
	"$PCACHE" fsck -y --json "${fopts[@]}" "$rep" >"$D/c$ncase.rep.fsck.json" 2>"$D/fsckr.err"
	rrc=$?
	rverdict=$(python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))[0]
    print(d["repair"]["kernel_verdict_after"], len(d["repair"]["actions"]), d["repair"]["lost_keys"])
except Exception:
    print("none 0 0")' "$D/c$ncase.rep.fsck.json")
	set -- $rverdict
	rverdict=$1 nact=$2 lost=$3
	crc=${BASE_CRC[$base]}
	back=${BASE_BACK[$base]}
	bf=${BASE_BACKFILE[$base]}
	if [ "$verdict" = crashes ]; then
		echo "#   $title: fsck says the kernel would crash on it (BUG): not loaded corrupted"
	else
		add_slot "$img" "$crc" "$back" "$bf" "$verdict" "$title: corrupted, fsck -n exit $frc" \
			"$D/c$ncase.fsck.json"
	fi
	if [ "$nact" -gt 0 ]; then
		add_slot "$rep" "$crc" "$back" "$bf" "$rverdict" \
			"$title: after fsck -y (exit $rrc, $nact repairs, $lost keys dropped)" "$D/c$ncase.rep.fsck.json"
	else
		rm -f "$rep"
	fi
done <"$CASES"
echo "#   $ncase corruption cases, ${#SLOT_IMG[@]} images to load"

# ---- boots ----
run_batch() { # FIRST LAST (slot indexes, inclusive)
	local first=$1 last=$2 k j B off g
	B=$D/batch$first
	rm -rf "$B"
	mkdir -p "$B/scn"
	kt_guest_script "$B/scn"
	g=$B/scn/guest.sh
	echo "pg_wait_pmems $((last - first + 1))" >>"$g"
	rm -f "$B/back.img"
	off=0
	j=0
	for k in $(seq "$first" "$last"); do
		printf 'KT-SLOT-%04d' "$k" | dd of="${SLOT_IMG[$k]}" conv=notrunc status=none
		kt_pmem_to_nv "${SLOT_IMG[$k]}" "$B/nv$j.img"
		truncate -s $((off + SLOT_BACK[k])) "$B/back.img"
		if [ -s "${SLOT_BACKFILE[$k]}" ]; then
			dd if="${SLOT_BACKFILE[$k]}" of="$B/back.img" bs=1M oflag=seek_bytes seek="$off" \
				conv=sparse,notrunc status=none
		fi
		cat >>"$g" <<EOF
P=\$(pg_find_pmem KT-SLOT-$(printf %04d "$k"))
if [ -z "\$P" ]; then
	pg_note "create_pc$k fail no pmem device carries the stamp of slot $k"
elif pg_linear bk$k \$BACK $off ${SLOT_BACK[$k]} drop_writes; then
	if pg_create pc$k ${SLOT_CRC[$k]} \$P /dev/mapper/bk$k; then
		pg_readback pc$k $RB rb$k $((j * RB / MiB)) 60 && pg_remove pc$k
	fi
	dmsetup remove --noudevsync bk$k 2>/dev/null
fi
pg_save
EOF
		off=$((off + SLOT_BACK[k]))
		j=$((j + 1))
	done
	KT_RB_SIZE=$((j * RB)) kt_boot "$B"
	j=0
	for k in $(seq "$first" "$last"); do
		check_slot "$k" "$B" "$j"
		j=$((j + 1))
	done
	[ "${PCACHE_KERNEL_KEEP:-0}" = 1 ] || rm -rf "$B"
}

check_slot() { # SLOT BATCHDIR INDEX
	local k=$1 B=$2 j=$3 cr rb want=${SLOT_VERDICT[$1]} got t=${SLOT_TITLE[$1]}
	cr=$(kt_result "$B" "create_pc$k")
	rb=$(kt_result "$B" "rb$k")
	case "$cr" in
	ok) got=loads ;;
	fail*) got=refuses ;;
	*) got="no result" ;;
	esac
	# A reset is a load that serves the backing device.
	if [ "$want" = resets ] && [ "$got" = loads ]; then got=resets; fi
	if [ "$got" != "$want" ]; then
		kt_notok "$t: the kernel $got, fsck predicted '$want'"
		[ -n "$cr" ] && echo "#   dmsetup: $cr"
		echo "#   fsck problems: $(python3 -c '
import json,sys
try: print(", ".join("%s (%s)" % (p["code"], p["kernel"]) for p in json.load(open(sys.argv[1]))[0]["problems"][:6]))
except Exception: print("-")' "${SLOT_FSCK[$k]}" 2>/dev/null)"
		return
	fi
	if [ "$got" = refuses ]; then
		kt_ok "$t: the kernel refuses it, as fsck predicted (${cr#fail })"
		return
	fi
	case "$rb" in
	ok*)
		if cmp -s -i $((j * RB)):0 -n "$RB" "$B/rb.img" "${SLOT_EXPECT[$k]}"; then
			kt_ok "$t: the kernel $got it, as fsck predicted, and serves what our replay serves"
		else
			kt_notok "$t: the kernel $got it, as fsck predicted, and serves what our replay serves"
			dd if="$B/rb.img" of="$D/got" bs=1M skip=$((j * RB / MiB)) count=$((RB / MiB)) status=none
			$KT_MODEL cmp "$D/got" "${SLOT_EXPECT[$k]}" | sed 's/^/#   /'
		fi
		;;
	*)
		kt_notok "$t: the kernel $got it, but reading it failed: ${rb:-no result}"
		;;
	esac
}

n=${#SLOT_IMG[@]}
first=0
while [ "$first" -lt "$n" ]; do
	last=$((first + PER_BOOT - 1))
	[ "$last" -ge "$n" ] && last=$((n - 1))
	run_batch "$first" "$last"
	first=$((last + 1))
done
[ "${PCACHE_KERNEL_KEEP:-0}" = 1 ] || rm -rf "$D"
