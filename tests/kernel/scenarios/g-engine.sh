#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario g: images written by our engine (pcache-tools/engine, driven from a write
# list by build/tests/enginewrite, no nbd) -> the kernel loads them.  Workloads, each
# on its own cache image over a 64 MiB backing device that starts random:
#  rand4k:   3000 random 4 KiB writes, data CRCs;
#  overlap:  1200 overlapping writes of 512 B .. 1 MiB (60% in 8 MiB), no data CRCs;
#  seq1m:    128 sequential 1 MiB writes (the range twice);
#  gcfill:   1536 sequential 1 MiB writes (1.5 GiB through a 1 GiB cache): the
#            engine runs out of segments, writes back and GC reclaims segments;
#  partialwb: 2000 writes, a writeback of 7 ksets after the first 1000, 1000 more;
#  cut-S-N:  a power cut at persist N (seeds 1, 2; three cut points each): the
#            engine stops without closing, every store issued so far on the media.
# The model of each (what the engine acknowledged; for a cut, our replay of the cut
# image, once model.py cutcheck found it holds every acknowledged write and only
# in-flight writes besides) is computed on the host.  In the guest the kernel must
# load each image, its status must equal pcache info's, md5 of the WHOLE device must
# equal the model's; then it writes 20 more, FLUSH, the table is removed, and on
# the host fsck -n is clean and our replay equals the model of both.
# All images go into one boot: each NVDIMM file is stamped at byte 0 (which the
# kernel never reads or writes; zeroed again afterwards) so the guest finds it;
# each gets a 64 MiB slice of the backing disk.
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

MiB=$((1 << 20))
SLOT=$((64 * MiB))
EW=$(dirname "$KT_MKIMAGE")/enginewrite
B=$(kt_case g)
SLOTS=()
BOOTED=()
declare -A CRC

if [ ! -x "$EW" ]; then
	kt_notok "g: $EW is needed (make)"
	exit 0
fi

# The 20 writes the kernel adds to every image.
$KT_MODEL genwrites --seed 70 --count 20 --range "$SLOT" --min 512 --max 65536 --align 512 \
	--blob-size $((4 * MiB)) --blob "$B/scn/more.blob" --list "$B/scn/more"

# new_slot NAME true|false (data CRCs): a formatted cache image and a random backing
# file (base.img, kept: the model starts from it).
new_slot() {
	local S=$B/s/$1
	mkdir -p "$S"
	kt_new_pmem "$S/pmem.img"
	if [ "$2" = true ]; then
		"$PCACHE" format -q --data-crc "$S/pmem.img"
	else
		"$PCACHE" format -q "$S/pmem.img"
	fi
	$KT_MODEL genwrites --seed "${#SLOTS[@]}" --count 0 --range 1 --blob-size "$SLOT" \
		--blob "$S/base.img" --list /dev/null
	cp "$S/base.img" "$S/back.img"
	CRC[$1]=$2
	SLOTS+=("$1")
}

# seq_list OUT COUNT: COUNT sequential 1 MiB writes over the slot (wrapping), data
# from a 16 MiB blob.
seq_list() {
	awk -v n="$2" -v mib="$MiB" -v slots=$((SLOT / MiB)) \
		'BEGIN { for (i = 0; i < n; i++) printf "%d %d %d\n", (i % slots) * mib, mib, (i * 7 % 15) * mib }' >"$1"
}

# engine_run NAME ENGINEWRITE-ARGS...: the engine writes S/writes; then the host
# checks what it left (fsck, our replay == the model) before the kernel sees it.
engine_run() {
	local n=$1 S=$B/s/$1 out
	shift
	if ! out=$("$EW" "$@" "$S/pmem.img" "$S/back.img" "$S/writes" "$S/blob" 2>&1); then
		kt_notok "g: $n: enginewrite $* ($out)"
		return 1
	fi
	echo "$out" | tail -n 1 >"$S/summary"
	kt_ok "g: $n: the engine writes the list ($(cat "$S/summary"))"
	$KT_MODEL model --range "$SLOT" --base "$S/base.img" --list "$S/writes" --blob "$S/blob" --out "$S/model"
	kt_fsck_clean "g: $n: fsck -n is clean on the engine's image" "$S/pmem.img"
	engine_status "$n"
	kt_replay_matches "g: $n: our replay of the engine's image equals the model" \
		"$S/pmem.img" "$S/back.img" "$S/model" "$SLOT"
}

# engine_status NAME: the engine's own view at the end (segs_used, key_head,
# dirty_tail, key_tail of its summary) is what pcache info reads from the image.
engine_status() {
	local S=$B/s/$1 e t
	e=$(sed -E 's/.* segs_used ([0-9]+) key_head ([0-9:]+) dirty_tail ([0-9:]+) key_tail ([0-9:]+) .*/\1 \2 \3 \4/' \
		"$S/summary")
	t=$(kt_info_status "$S/pmem.img" | awk '{ print $4, $7, $8, $9 }')
	if [ -n "$e" ] && [ "$e" = "$t" ]; then
		kt_ok "g: $1: the engine's segs_used and tails equal pcache info's ($e)"
	else
		kt_notok "g: $1: the engine's segs_used and tails equal pcache info's (engine '$e', pcache info '$t')"
	fi
}

# cut_run NAME CUT ENGINEWRITE-ARGS...: the engine stopped at persist CUT.  The model
# is our replay of the cut image, once cutcheck says it keeps every acknowledged write.
cut_run() {
	local n=$1 cut=$2 S=$B/s/$1 out p
	shift 2
	out=$("$EW" --cut "$cut" --progress "$S/progress" "$@" "$S/pmem.img" "$S/back.img" \
		"$S/writes" "$S/blob" 2>&1)
	p=$(cat "$S/progress" 2>/dev/null)
	# shellcheck disable=SC2086 # its words, as positional parameters
	set -- $p
	if [ $# -ne 4 ]; then
		kt_notok "g: $n: the engine stops at persist $cut ($out)"
		return 1
	fi
	kt_fsck_clean "g: $n: fsck -n is clean after a power cut at persist $cut ($p)" "$S/pmem.img"
	kt_logical "$S/pmem.img" "$S/back.img" "$SLOT" "$S/model" || {
		kt_notok "g: $n: our replay of the cut image"
		return 1
	}
	kt_cutcheck "g: $n: the cut image keeps every acknowledged write" "$SLOT" "$S/base.img" \
		"$S/writes" "$S/blob" "$2" "$4" "$S/model"
	rm -f "$S/model".*
}

# cut_points SEED: three persists to cut at, from a full run's count: the last
# persist of an early FLUSH (its kset stored, not persisted), the second persist of
# the writeback after write 500 (it moved dirty_tail once), and the last persist
# before the FLUSH after it (data persisted, keys only in the open kset).
cut_points() {
	local S=$B/s/count-$1 fe wb
	mkdir -p "$S"
	kt_new_pmem "$S/pmem.img"
	"$PCACHE" format -q --data-crc "$S/pmem.img"
	truncate -s "$SLOT" "$S/back.img"
	# shellcheck disable=SC2086 # CUT_ARGS is a list of options
	"$EW" --count-persists $CUT_ARGS "$S/pmem.img" "$S/back.img" \
		"$B/s/cut.writes.$1" "$B/s/cut.blob.$1" >"$S/count"
	mapfile -t fe < <(sed -n 's/^flush_end //p' "$S/count")
	wb=$(sed -n 's/^wb_persists //p' "$S/count")
	rm -rf "$S"
	echo "${fe[$((2 + $1))]} $((${wb% *} + 2)) $((fe[12] - 1))"
}

prepare_workloads() {
	local S
	new_slot rand4k true
	S=$B/s/rand4k
	$KT_MODEL genwrites --seed 101 --count 3000 --range "$SLOT" --min 4096 --max 4096 --align 4096 \
		--blob-size $((8 * MiB)) --blob "$S/blob" --list "$S/writes"
	engine_run rand4k --flush-every 100 --verify-data

	new_slot overlap false
	S=$B/s/overlap
	$KT_MODEL genwrites --seed 102 --count 1200 --range "$SLOT" --hot-range $((8 * MiB)) --hot-pct 60 \
		--min 512 --max "$MiB" --align 512 --blob-size $((16 * MiB)) --blob "$S/blob" --list "$S/writes"
	engine_run overlap --flush-every 30

	new_slot seq1m true
	S=$B/s/seq1m
	$KT_MODEL genwrites --seed 103 --count 0 --range 1 --blob-size $((16 * MiB)) --blob "$S/blob" --list /dev/null
	seq_list "$S/writes" 128
	engine_run seq1m --flush-every 8

	new_slot gcfill true
	S=$B/s/gcfill
	cp "$B/s/seq1m/blob" "$S/blob"
	seq_list "$S/writes" 1536
	engine_run gcfill --flush-every 16 && gc_reclaimed gcfill

	new_slot partialwb false
	S=$B/s/partialwb
	$KT_MODEL genwrites --seed 105 --count 2000 --range "$SLOT" --min 4096 --max 65536 --align 4096 \
		--blob-size $((8 * MiB)) --blob "$S/blob" --list "$S/writes"
	engine_run partialwb --flush-every 50 --wb-at 1000 --wb-ksets 7 && partial_dirty partialwb
}

# gc_reclaimed NAME: the engine's summary says GC reclaimed segments, and key_tail moved.
gc_reclaimed() {
	local r st
	r=$(sed -n 's/.* reclaimed \([0-9]*\) .*/\1/p' "$B/s/$1/summary")
	st=$(kt_info_status "$B/s/$1/pmem.img")
	# shellcheck disable=SC2086 # its words, as positional parameters
	set -- $st
	if [ "${r:-0}" -gt 0 ] && [ $# -eq 9 ] && [ "$9" != 0:0 ]; then
		kt_ok "g: gcfill: GC reclaimed $r segments, key_tail moved ($st)"
	else
		kt_notok "g: gcfill: GC reclaimed segments (${r:-?}), key_tail moved ($st)"
	fi
}

# partial_dirty NAME: dirty_tail moved, but not to key_head.
partial_dirty() {
	local r
	r=$(kt_info_status "$B/s/$1/pmem.img")
	# shellcheck disable=SC2086 # its words, as positional parameters
	set -- $r
	if [ $# -eq 9 ] && [ "$8" != 0:0 ] && [ "$8" != "$7" ]; then
		kt_ok "g: partialwb: after the partial writeback dirty_tail is inside the log ($r)"
	else
		kt_notok "g: partialwb: after the partial writeback dirty_tail is inside the log ($r)"
	fi
}

# Cut workload: 1000 writes of 4-64 KiB, FLUSH every 40, a writeback of 4 ksets
# after write 500 (so tail persists are among the cut points).
CUT_ARGS="--flush-every 40 --wb-at 500 --wb-ksets 4"
prepare_cuts() {
	local seed c n
	for seed in 1 2; do
		$KT_MODEL genwrites --seed $((110 + seed)) --count 1000 --range "$SLOT" --min 4096 --max 65536 \
			--align 4096 --blob-size $((8 * MiB)) --blob "$B/s/cut.blob.$seed" --list "$B/s/cut.writes.$seed"
		for c in $(cut_points "$seed"); do
			n=cut-$seed-$c
			new_slot "$n" true
			cp "$B/s/cut.writes.$seed" "$B/s/$n/writes"
			cp "$B/s/cut.blob.$seed" "$B/s/$n/blob"
			# shellcheck disable=SC2086 # CUT_ARGS is a list of options
			cut_run "$n" "$c" $CUT_ARGS
		done
	done
}

# ---- the boot ----
# slot_guest J NAME: the guest steps for slot J: load, status, md5 of the whole
# device (a read-back into the read-back disk only when it differs from the
# model's), 20 writes, FLUSH, status, remove.
slot_guest() {
	local j=$1 n=$2 md5
	md5=$(md5sum <"$B/s/$n/model" | cut -d' ' -f1)
	cat >>"$B/scn/guest.sh" <<EOG
P=\$(pg_find_pmem KT-ENGINE-$(printf %04d "$j"))
if [ -z "\$P" ]; then
	pg_note "create_pc$j fail no pmem device carries the stamp of slot $j"
elif pg_linear bk$j \$BACK $((j * SLOT)) $SLOT; then
	if pg_create pc$j ${CRC[$n]} \$P /dev/mapper/bk$j; then
		pg_status pc$j status_load_$j
		m=\$(md5sum </dev/mapper/pc$j | cut -d' ' -f1)
		pg_note "md5_$j \$m"
		[ "\$m" = $md5 ] || pg_readback pc$j $SLOT rb$j $((j * SLOT / MiB)) 120
		pg_writes pc$j /scn/more /scn/more.blob
		pg_flush pc$j
		pg_status pc$j status_end_$j
		pg_remove pc$j
	fi
	dmsetup remove --noudevsync bk$j 2>/dev/null
fi
pg_note "slot_done_$j"
pg_save quick
EOG
}

# prepare_boot: every slot's image stamped into an NVDIMM file, its backing into
# the backing disk, its steps into the guest script.
prepare_boot() {
	local j=0 n S
	truncate -s $((${#SLOTS[@]} * SLOT)) "$B/back.img"
	for n in "${SLOTS[@]}"; do
		S=$B/s/$n
		[ -f "$S/model" ] || continue   # the engine failed: reported already
		BOOTED+=("$n")
		kt_cp "$S/pmem.img" "$S/pre.img"
		printf 'KT-ENGINE-%04d' "$j" | dd of="$S/pmem.img" conv=notrunc status=none
		kt_pmem_to_nv "$S/pmem.img" "$B/nv$j.img"
		dd if="$S/back.img" of="$B/back.img" bs=1M seek=$((j * SLOT / MiB)) conv=notrunc status=none
		slot_guest "$j" "$n"
		j=$((j + 1))
	done
	# the guest waits for every NVDIMM before the first slot
	sed -i "3i pg_wait_pmems $j" "$B/scn/guest.sh"
	echo 'pg_save' >>"$B/scn/guest.sh"
}

# slot_back J NAME: after the boot, the slot's image and backing slice back in S/.
slot_back() {
	local S=$B/s/$2
	kt_nv_to_pmem "$B/nv$1.img" "$S/pmem.img" && rm -f "$B/nv$1.img"
	dd if=/dev/zero of="$S/pmem.img" bs=14 count=1 conv=notrunc status=none
	dd if="$B/back.img" of="$S/back.img" bs=1M skip=$(($1 * SLOT / MiB)) count=$((SLOT / MiB)) status=none
}

# check_md5 J NAME: the kernel served the whole device as the model says.
check_md5() {
	local j=$1 n=$2 S=$B/s/$2 want got
	want=$(md5sum <"$S/model" | cut -d' ' -f1)
	got=$(kt_result "$B" "md5_$j")
	if [ "$got" = "$want" ]; then
		kt_ok "g: $n: md5 of the whole 64 MiB device the kernel serves equals the model's ($got)"
		return
	fi
	kt_notok "g: $n: md5 of the whole 64 MiB device the kernel serves equals the model's (kernel '$got', model $want)"
	dd if="$B/rb.img" of="$S/got" bs=1M skip=$((j * SLOT / MiB)) count=$((SLOT / MiB)) status=none
	$KT_MODEL cmp "$S/got" "$S/model" | sed 's/^/#   /'
}

# check_slot J NAME
check_slot() {
	local j=$1 n=$2 S=$B/s/$2
	slot_back "$j" "$n"
	kt_expect "$B" "create_pc$j" ok "g: $n: the kernel loads the image the engine wrote (data_crc ${CRC[$n]})" ||
		return
	[ "$(kt_result "$B" "create_pc$j")" = ok ] || return
	kt_status_cmp "g: $n: kernel status at load equals pcache info" \
		"$(kt_result "$B" "status_load_$j")" "$(kt_info_status "$S/pre.img")" dirty_tail,gc
	check_md5 "$j" "$n"
	kt_expect "$B" "writes_pc$j" "20 0" "g: $n: the kernel writes 20 more, FLUSH, removes the table"
	kt_expect "$B" "remove_pc$j" ok "g: $n: dmsetup remove"
	kt_fsck_clean "g: $n: fsck -n is clean after the kernel" "$S/pmem.img"
	kt_status_cmp "g: $n: key_head after FLUSH + remove equals pcache info's" \
		"$(kt_result "$B" "status_end_$j")" "$(kt_info_status "$S/pmem.img")" segs_used,dirty_tail,key_tail
	$KT_MODEL model --range "$SLOT" --base "$S/model" --list "$B/scn/more" --blob "$B/scn/more.blob" \
		--out "$S/model2"
	kt_replay_matches "g: $n: our replay equals the kernel's view (model + its 20 writes)" \
		"$S/pmem.img" "$S/back.img" "$S/model2" "$SLOT"
}

# dmesg_clean: no WARN, BUG, Oops or call trace in the guest's kernel log.
dmesg_clean() {
	local bad l
	bad=$(grep -E 'WARNING:|BUG|Oops|Call Trace|RIP:' "$B/out/dmesg" 2>/dev/null | head -n 5)
	if [ ! -s "$B/out/dmesg" ]; then
		kt_notok "g: the guest left its kernel log"
	elif [ -z "$bad" ]; then
		kt_ok "g: no WARN, BUG, Oops or call trace in the guest's dmesg"
	else
		kt_notok "g: no WARN, BUG, Oops or call trace in the guest's dmesg"
		while IFS= read -r l; do echo "#   $l"; done <<<"$bad"
	fi
}

prepare_workloads
prepare_cuts
prepare_boot
KT_RB_SIZE=$((${#BOOTED[@]} * SLOT)) kt_boot "$B"
kt_console_clean "$B" "g: no BUG, Oops, lockup or WARNING on the guest console"
dmesg_clean
j=0
for n in "${BOOTED[@]}"; do
	if grep -qx "slot_done_$j" "$B/out/results" 2>/dev/null; then
		check_slot "$j" "$n"
	else
		kt_notok "g: $n: the guest did not reach slot $j"
	fi
	j=$((j + 1))
done
[ "${PCACHE_KERNEL_KEEP:-0}" = 1 ] || rm -rf "$B"
