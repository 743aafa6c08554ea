#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario i: power cuts inside the real kernel at random moments (issue 19 item 6).
# Each cut boot (one CPU) loads a cache over a 64 MiB backing device, runs one
# workload, and cuts the power (sysrq b: nothing removed, nothing synced) once a
# trigger seen in `dmsetup status` has come and a delay drawn from the run seed has
# passed:
#  wb:   a fresh cache; 512-byte writes of every other sector (dd conv=sparse), so
#        writeback cannot merge the keys of a kset.  Two writes and FLUSH; once
#        writeback has taken them (it then waits 5 s before it looks again), 20
#        more writes and FLUSH; trigger: dirty_tail moves after that FLUSH.
#  gc:   a fresh cache with gc_percent 10 (pcache format --gc-percent: GC from 6
#        segments on); a stream of 16 MiB writes (64 KiB each) with a FLUSH every
#        4 keeps writeback busy and GC reclaiming; trigger: key_tail moves.  The
#        writes go on until the cut.
#  seg:  our image (build/tests/mkimage: 413000 CLEAN 512-byte keys over a backing
#        file holding the same data, written back with pcache flush) whose log
#        ends about 32 ksets before the end of segment 0; a stream of 512-byte
#        writes without FLUSH; trigger: key_head leaves segment 0 (the kernel
#        wrote a LAST kset).  The writes go on until the cut.
#  full: our image (mkimage: 244000 dirty 4 KiB keys, 61 of 63 segments in use,
#        gc_percent 90) that the kernel's writeback needs long to work through, so
#        GC can free little; a stream of 16 MiB writes (4 MiB each) with a FLUSH
#        every 4; trigger: segs_used reaches the segment count (writes wait).
# Two cuts of each (data CRCs on one, off the other); the first draws its delay
# from the lower half of the kind's range, the second from the upper half.  Two
# workers run their cut boots at the same time.  The writer in the guest records,
# before each group of writes, how many may be issued and how many a FLUSH
# acknowledged, on a raw disk with direct writes (in the host's file before the
# writer goes on): nothing else is trusted.
# After each cut, on the host: fsck -n is clean; our replay of the cut image over
# the backing file keeps every acknowledged write and holds nothing but in-flight
# writes besides (model.py cutcheck); where the cut landed is printed (tails,
# segments in use, LAST ksets, gens) and each kind must have landed where it aims
# at least once.  Then one more boot per worker loads its cut images, each on its
# own NVDIMM: the kernel loads each, its status equals pcache info's (writeback and
# GC may move dirty_tail and key_tail after the load), and the md5 of the whole
# device it serves equals our replay's.  The guest kernel log is clean in every
# boot.
#
# What the guest cannot aim at: windows of a few stores inside the kernel (a GC
# step between its gen bump and its key_tail write, doc/format.md §12.4; a kset
# close between its LAST kset and the first kset of the new segment).  The cuts
# land at random moments while writeback, GC or the crossing writes run.  A cut
# inside the §12.4 window leaves stale keys in the live log, which fsck -n reports
# (KEY_STALE warnings, exit 4), rightly: the next GC would take a second reference off
# their segments.  That outcome is accepted (and counted) when KEY_STALE is all fsck
# finds, and fsck -y must then leave a clean cache.  It happened in about 1 of 8 gc
# cuts (with data CRCs); the kernel loaded that image and served what our replay serves.
#
# KT_I_SEED=N repeats a run's delays and data (not the kernel's timing);
# KT_I_ONLY=REGEX runs only the cuts whose name (wb-1, gc-2, ...) matches;
# KT_I_MONITOR=1 samples the status every 200 ms into out/mon (debugging; slows
# the guest).
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

MiB=$((1 << 20))
SLOT=$((64 * MiB))
I=$(kt_case i)
T0=$(date +%s)
SEED=${KT_I_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "# i: seed $SEED (KT_I_SEED=$SEED reproduces)"

# The cuts: NAME KIND DATA_CRC.
# Two workers take every second one (the first worker full-1, wb-1, ...).
CUTS=(
	"full-1 full false" "full-2 full true" "wb-1 wb true" "wb-2 wb false"
	"gc-1 gc true" "gc-2 gc false" "seg-1 seg false" "seg-2 seg true"
)
# Delay ranges after the trigger, milliseconds.
declare -A DMIN=([wb]=0 [gc]=0 [seg]=0 [full]=0) DMAX=([wb]=1000 [gc]=1500 [seg]=400 [full]=1000)

# rnd NAME LO HI: a number in [LO, HI] drawn from the run seed and NAME.
rnd() {
	python3 -c 'import random, sys; print(random.Random("%s-%s" % (sys.argv[1], sys.argv[2])).randint(int(sys.argv[3]), int(sys.argv[4])))' \
		"$SEED" "$@"
}

# A random backing device the fresh caches start over (the model starts from it).
$KT_MODEL genwrites --seed "$(rnd base 1 2147483647)" --count 0 --range 1 --blob-size "$SLOT" \
	--blob "$I/base.img" --list /dev/null

# prefill C SEED WRITES LEN clean|dirty [mkimage options]: C/pmem.img gets WRITES
# keys of LEN bytes each (build/tests/mkimage), C/base.img the logical device they
# make.  clean: CLEAN keys, the backing file holds the same data (as a read miss
# leaves it), and pcache flush moves dirty_tail to key_head, so the kernel's
# writeback has nothing to walk through and GC may take it all; dirty: dirty keys
# over a zero backing file, for the kernel's writeback to work through.
prefill() {
	local C=$1 seed=$2 w=$3 len=$4 how=$5 pct=100
	shift 5
	[ "$how" = dirty ] && pct=0
	"$KT_MKIMAGE" --size "$KT_NS_SIZE" --quiet "$@" --writes "$w" --min-len "$len" --max-len "$len" \
		--align "$len" --seed "$seed" --clean-pct "$pct" --range "$SLOT" --model "$C/base.img" "$C/pmem.img" &&
		truncate -s "$SLOT" "$C/base.img" || return 1
	if [ "$how" = clean ]; then
		kt_cp "$C/base.img" "$C/back.img" &&
			"$PCACHE" flush -q "$C/pmem.img" "$C/back.img" >/dev/null 2>&1
	else
		truncate -s "$SLOT" "$C/back.img"
	fi
}

# prepare NAME KIND CRC DELAY_MS: the case directory: pmem.img, base.img (the
# backing device before the boot; back.img is a copy the boot changes), the write
# list and blob, the guest script.
prepare() {
	local n=$1 kind=$2 crc=$3 dus=$(($4 * 1000)) C=$I/$1 ls g fmt=()
	ls=$(rnd "$n-list" 1 2147483647)
	rm -rf "$C"
	mkdir -p "$C"
	kt_guest_script "$C/scn"
	g=$C/scn/guest.sh
	[ "$crc" = true ] && fmt=(--data-crc)
	case "$kind" in
	seg)
		# 413000 CLEAN 512-byte keys: the log ends about 32 ksets before the end of
		# segment 0
		prefill "$C" "$ls" 413000 512 clean "${fmt[@]}" || return 1
		;;
	full)
		# 244000 dirty 4 KiB keys: 61 of the 63 segments in use.  The kernel's
		# writes fill the other two in a second or two; GC (at 56 segments, 90 %)
		# frees nothing before writeback has passed the keys of a segment, and it
		# runs every 5 s
		prefill "$C" "$ls" 244000 4096 dirty --gc-percent 90 "${fmt[@]}" || return 1
		;;
	*)
		kt_new_pmem "$C/pmem.img"
		[ "$kind" = gc ] && fmt+=(--gc-percent 10)
		"$PCACHE" format -q "${fmt[@]}" "$C/pmem.img" || return 1
		kt_cp "$I/base.img" "$C/base.img"
		kt_cp "$I/base.img" "$C/back.img"
		;;
	esac
	case "$kind" in
	wb)
		# 22 writes of 1536000 bytes as 512-byte writes of every other sector
		# (dd conv=sparse skips the zero sectors of the blob): 1500 keys each that
		# writeback cannot merge, so it does 128 backing writes per kset.  Two
		# writes and FLUSH first; once writeback has taken them it waits 5 s
		# before it looks again, and the other 20 writes (234 ksets, 1.5-4 s)
		# and their FLUSHes go in then.  Writeback needs 1-2 s for them.
		$KT_MODEL sparsewrites --seed "$ls" --count 22 --len 1536000 --stride 3000320 --range "$SLOT" \
			--base "$C/base.img" --blob "$C/scn/blob" --model-blob "$C/model.blob" --list "$C/scn/writes" || return 1
		cat >>"$g" <<EOF
pg_create pc $crc
pg_status pc status_load
export CW_CONV=sparse
pg_cut_writer pc /scn/writes /scn/blob 512 2 0 2
pg_poll pc idle '\$8 == \$7' 30
pg_cut_writer pc /scn/writes /scn/blob 512 4 2
pg_status pc status_flushed
pg_poll_moves pc trigger 8 30 && usleep $dus
EOF
		;;
	gc)
		$KT_MODEL genwrites --seed "$ls" --count 60 --range "$SLOT" --min $((16 * MiB)) --max $((16 * MiB)) \
			--align 65536 --blob-size $((32 * MiB)) --blob "$C/scn/blob" --list "$C/scn/writes" || return 1
		cat >>"$g" <<EOF
pg_create pc $crc
pg_status pc status_load
pg_cut_writer pc /scn/writes /scn/blob 65536 4 &
pg_poll pc trigger '\$9 != "0:0"' 60 && usleep $dus
EOF
		;;
	full)
		$KT_MODEL genwrites --seed "$ls" --count 120 --range "$SLOT" --min $((16 * MiB)) --max $((16 * MiB)) \
			--align $((16 * MiB)) --blob-size $((32 * MiB)) --blob "$C/scn/blob" --list "$C/scn/writes" || return 1
		cat >>"$g" <<EOF
pg_create pc $crc
pg_status pc status_load
pg_cut_writer pc /scn/writes /scn/blob 4194304 4 &
pg_poll pc trigger '\$4 >= \$2' 90 && usleep $dus
EOF
		;;
	seg)
		# 24 runs of 1000 sequential 512-byte writes, one key each
		$KT_MODEL genwrites --seed "$ls" --count 0 --range 1 --blob-size $((32 * MiB)) \
			--blob "$C/scn/blob" --list /dev/null || return 1
		awk 'BEGIN { for (i = 0; i < 24; i++) printf "%d 512000 %d\n", i * 512000, (i * 7 % 60) * 512000 }' \
			>"$C/scn/writes"
		cat >>"$g" <<EOF
pg_create pc $crc
pg_status pc status_load
pg_cut_writer pc /scn/writes /scn/blob 512 0 &
pg_poll pc trigger '\$7 !~ /^0:/' 30 && usleep $dus
EOF
		;;
	esac
	# KT_I_MONITOR=1 (debugging): the status every 200 ms in out/mon
	if [ "${KT_I_MONITOR:-0}" = 1 ]; then
		# shellcheck disable=SC2016 # guest code, expanded in the guest
		sed -i '/^pg_status pc status_load$/a ( while :; do read -r u _ </proc/uptime; echo "$u $(dmsetup status pc | cut -d" " -f4-)" >>/out/mon; usleep 200000; done ) \&' "$g"
	fi
	cat >>"$g" <<'EOF'
read -r u _ </proc/uptime
pg_note "t_cut $u"
pg_status pc status_cut
pg_cut
EOF
}

# progress C: `ISSUED DURABLE` of the last progress record the writer left.
progress() {
	dd if="$1/rb.img" bs=512 count=256 status=none | tr '\0' '\n' |
		grep -E '^KTCUT [0-9]+ [0-9]+ [0-9]+$' | sort -n -k2 | tail -n 1 | cut -d' ' -f3,4
}

# fsck_cut TAG NAME PMEM: fsck -n must be clean, or (a cut inside the GC window
# of doc/format.md §12.4: the kernel's gen bump landed, its key_tail write did not)
# report only KEY_STALE, which is right: the kernel loads such a cache, but its next
# GC takes a second reference off those keys' segments.  Then fsck -y on a copy
# drops them and leaves a clean cache.
fsck_cut() {
	local tag=$1 n=$2 pm=$3 codes rc
	"$PCACHE" fsck -n --json "$pm" >"$pm.fsck.json" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		kt_ok "$tag: fsck -n is clean on the cut image"
		return
	fi
	codes=$(python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))[0]
    print(" ".join(sorted({p["code"] for p in d["problems"]})), d["kernel_verdict"])
except Exception:
    print("-")' "$pm.fsck.json")
	if [ $rc -eq 4 ] && [ "$codes" = "KEY_STALE loads" ]; then
		kt_ok "$tag: fsck -n finds only stale keys in the live log: the cut fell in the GC window of doc/format.md §12.4"
		kt_cp "$pm" "$pm.rep"
		if "$PCACHE" fsck -y "$pm.rep" >/dev/null 2>&1; [ $? -le 1 ] && "$PCACHE" fsck -n "$pm.rep" >/dev/null 2>&1; then
			kt_ok "$tag: fsck -y drops the stale keys and leaves a clean cache"
		else
			kt_notok "$tag: fsck -y drops the stale keys and leaves a clean cache"
		fi
		rm -f "$pm.rep"
	else
		kt_notok "$tag: fsck -n is clean on the cut image (exit $rc: $codes)"
		"$PCACHE" fsck -n "$pm" 2>&1 | head -n 20 | sed 's/^/#   /'
	fi
	rm -f "$pm.fsck.json"
}

# where NAME KIND: where the cut landed, from the kernel's status before the cut,
# the status pcache info computes for the cut image and the log itself.  Sets LANDED
# (1 when it landed where the workload aims) and prints what it found.
where() {
	local n=$1 kind=$2 C=$I/$1 st ks facts
	st=$(kt_info_status "$C/pmem.img")
	ks=$(kt_result "$C" status_cut)
	echo "#   $n: kernel status just before the cut: $ks"
	echo "#   $n: pcache info of the cut image:      $st"
	# shellcheck disable=SC2086 # its words, as positional parameters
	set -- $st
	LANDED=0
	"$PCACHE" dump --json --what segments,ksets "$C/pmem.img" >"$C/dump.json" 2>/dev/null
	facts=$(python3 - "$C/dump.json" <<'PYEOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    print("? ?")
    sys.exit(0)
lasts = [r for r in d if r.get("type") == "kset" and r.get("last")]
gens = [r["gen"] for r in d if r.get("type") == "segment_gen" and r.get("picked", True)]
print(len(lasts), max(gens) if gens else 0)
PYEOF
	)
	case "$kind" in
	wb)
		# dirty_tail moved after the last FLUSH, and had not reached key_head
		local fd
		fd=$(kt_result "$C" status_flushed | awk '{ print $8 }')
		if [ "$8" != "$fd" ] && [ "$8" != "$7" ]; then
			LANDED=1
			echo "#   $n: landed inside writeback: dirty_tail $fd at the FLUSH, $8 at the cut, key_head $7 not reached"
		else
			echo "#   $n: landed outside writeback: dirty_tail $fd at the FLUSH, $8 at the cut, key_head $7"
		fi
		;;
	gc)
		if [ "$9" != 0:0 ] && [ "$9" != "$8" ]; then
			LANDED=1
			echo "#   $n: landed while GC had work: key_tail $9 moved, dirty_tail $8 ahead (segment gens up to ${facts#* })"
		else
			echo "#   $n: key_tail $9, dirty_tail $8 (segment gens up to ${facts#* })"
		fi
		;;
	seg)
		if [ "${facts%% *}" != "?" ] && [ "${facts%% *}" -ge 1 ] && [ "${7%%:*}" != 0 ]; then
			LANDED=1
			echo "#   $n: landed after the crossing: ${facts%% *} LAST kset(s) on the live log, key_head $7"
		else
			echo "#   $n: no crossing in the cut image: key_head $7, LAST ksets ${facts%% *}"
		fi
		;;
	full)
		local longest
		# the longest a write took, the one in progress at the cut included
		longest=$( (cat "$C/out/wlog"; echo "cut $(kt_result "$C" t_cut)") 2>/dev/null |
			awk 'NR > 1 { d = $2 - p; if (d > m) m = d } { p = $2 } END { printf "%.1f", m }')
		# the kernel's segs_used just before the cut, or the cut image's
		local ku
		ku=$(echo "$ks" | awk '{ print $4 }')
		if [ "$4" -ge "$2" ] || [ "${ku:-0}" -ge "$2" ]; then
			LANDED=1
			echo "#   $n: landed with the cache full: segs_used $ku (kernel, just before), $4 (cut image) of $2; the longest write took ${longest:-?} s"
		else
			echo "#   $n: not full at the cut: segs_used $ku (kernel, just before), $4 (cut image) of $2; the longest write took ${longest:-?} s"
		fi
		;;
	esac
	rm -f "$C/dump.json"
}

# cut_boot C: boots C (one CPU) with C/pmem.img as the namespace; afterwards
# C/pmem.img holds what the kernel left, and C/nv.img is kept for the load boot.
cut_boot() {
	local C=$1
	kt_pmem_to_nv "$C/pmem.img" "$C/nv.img" || return 1
	KT_SMP=1 kt_boot "$C"
	kt_console_clean "$C" "$tag: no BUG, Oops, lockup or WARNING in the guest kernel log"
	kt_nv_to_pmem "$C/nv.img" "$C/pmem.img"
}

# do_cut NAME KIND CRC: prepares, boots and checks one cut.  Leaves C/pre.img (the cut
# image) and C/expect.md5 (what the kernel must serve) for the load boot.
do_cut() {
	local n=$1 kind=$2 crc=$3 C=$I/$1 delay tag p issued durable trig out t0 blob
	t0=$(date +%s)
	# the first cut of a kind draws from the lower half of the range, the second
	# from the upper half, so that they spread over it
	local lo=${DMIN[$kind]} mid=$(((DMIN[$kind] + DMAX[$kind]) / 2)) hi=${DMAX[$kind]}
	case "$n" in
	*-1) delay=$(rnd "$n-delay" "$lo" "$mid") ;;
	*) delay=$(rnd "$n-delay" "$mid" "$hi") ;;
	esac
	tag="i: $kind cut $n (data_crc $crc, seed $SEED, delay $delay ms)"
	if ! prepare "$n" "$kind" "$crc" "$delay"; then
		kt_notok "$tag: preparing the cache image"
		return
	fi
	cut_boot "$C"
	echo "#   $n: prepared and booted in $(($(date +%s) - t0)) s (guest $KT_BOOT_SECS s)"
	kt_expect "$C" create_pc ok "$tag: the kernel loads the cache"
	[ "$(kt_result "$C" create_pc)" = ok ] || return
	if ! grep -qx 'end cut' "$C/out/results"; then
		kt_notok "$tag: the guest reached the power cut"
		kt_show_guest "$C"
		return
	fi
	trig=$(kt_result "$C" trigger)
	case "$trig" in
	ok*) kt_ok "$tag: the moment came (after $(echo "$trig" | cut -d' ' -f2) ms: $(echo "$trig" | cut -d' ' -f3-))" ;;
	*) kt_notok "$tag: the moment came (trigger: ${trig:-none})" ;;
	esac
	if grep -q '^cutw_error' "$C/out/results"; then
		kt_notok "$tag: the kernel failed no write before the cut"
		grep '^cutw_error' "$C/out/results" | head -n 3 | sed 's/^/#   /'
	fi
	p=$(progress "$C")
	read -r issued durable <<<"$p"
	if [ -z "$p" ]; then
		kt_notok "$tag: the writer left its progress on the read-back disk"
		return
	fi
	echo "#   $n: $issued writes may have been issued, $durable acknowledged by a FLUSH; $(tail -n 1 "$C/out/wlog" 2>/dev/null | cut -d' ' -f1) completed by the time /out was saved"
	fsck_cut "$tag" "$n" "$C/pmem.img"
	if ! kt_logical "$C/pmem.img" "$C/back.img" "$SLOT" "$C/got"; then
		kt_notok "$tag: our replay of the cut image"
		return
	fi
	rm -f "$C/got".*
	# the model's blob: the guest's, or (sparse writes) what the writes leave
	blob=$C/scn/blob
	[ -f "$C/model.blob" ] && blob=$C/model.blob
	kt_cutcheck "$tag: our replay keeps every acknowledged write, nothing but in-flight writes besides" \
		"$SLOT" "$C/base.img" "$C/scn/writes" "$blob" "$durable" "$issued" "$C/got"
	# One CPU, one open kset: the 512-byte keys of the crossing stream reach the log
	# in the order they were made, so a cut keeps a prefix of them, LAST kset or not.
	if [ "$kind" = seg ]; then
		if out=$($KT_MODEL cutprefix --range "$SLOT" --base "$C/base.img" --list "$C/scn/writes" \
			--blob "$blob" --got "$C/got"); then
			kt_ok "$tag: our replay holds a prefix of the 512-byte stream (${out#cutprefix: })"
		else
			kt_notok "$tag: our replay holds a prefix of the 512-byte stream"
			echo "#   $out"
		fi
	fi
	where "$n" "$kind"
	echo "$LANDED" >"$C/landed"
	md5sum <"$C/got" | cut -d' ' -f1 >"$C/expect.md5"
	mv "$C/pmem.img" "$C/pre.img"
	echo "$tag" >"$C/tag"
	rm -f "$C/got" "$C/base.img" "$C/scn/blob" "$C/model.blob" "$C/rb.img" "$C/results.img"
	echo "#   $n: $(($(date +%s) - t0)) s in all"
}

# ---- the cut boots, two at a time ----
# load_boot NAME CUT...: one boot (one CPU) loads the images the CUTs left, each on
# its own NVDIMM (stamped at byte 0, which the kernel never reads or writes) over its
# own 64 MiB slice of the backing disk: load, status, md5 of the whole device,
# remove.  Then the verdicts.
load_boot() {
	local B=$I/$1 j=0 n C crc tag want got t0
	shift
	rm -rf "$B"
	mkdir -p "$B"
	kt_guest_script "$B/scn"
	echo "pg_wait_pmems $#" >>"$B/scn/guest.sh"
	truncate -s $(($# * SLOT)) "$B/back.img"
	for n in "$@"; do
		C=$I/$n
		crc=$(grep -oE 'data_crc (true|false)' "$C/tag" | cut -d' ' -f2)
		mv "$C/nv.img" "$B/nv$j.img"
		printf 'KT-CUT-%04d' "$j" | dd of="$B/nv$j.img" bs=1 seek="$KT_NS_OFF" conv=notrunc status=none
		dd if="$C/back.img" of="$B/back.img" bs=1M seek=$((j * SLOT / MiB)) conv=sparse,notrunc status=none
		cat >>"$B/scn/guest.sh" <<EOG
P=\$(pg_find_pmem KT-CUT-$(printf %04d "$j"))
if [ -z "\$P" ]; then
	pg_note "create_pc$j fail no pmem device carries the stamp of slot $j"
elif pg_linear bk$j \$BACK $((j * SLOT)) $SLOT; then
	if pg_create pc$j $crc \$P /dev/mapper/bk$j; then
		pg_status pc$j status_load_$j
		t0=\$(date +%s)
		pg_note "md5_$j \$(md5sum </dev/mapper/pc$j | cut -d' ' -f1)"
		pg_note "time_md5_$j \$((\$(date +%s) - t0))"
		pg_remove pc$j
	fi
	dmsetup remove --noudevsync bk$j 2>/dev/null
fi
pg_note "slot_done_$j"
pg_save quick
EOG
		j=$((j + 1))
	done
	echo 'pg_save' >>"$B/scn/guest.sh"
	t0=$(date +%s)
	KT_SMP=1 kt_boot "$B"
	kt_console_clean "$B" "i: load boot $(basename "$B") ($*): no BUG, Oops, lockup or WARNING in the guest kernel log"
	echo "#   load boot $(basename "$B"): $(($(date +%s) - t0)) s; load and md5 seconds: $(grep -E '^time_(create|md5)' "$B/out/results" 2>/dev/null | awk '{ printf "%s ", $2 }')"
	j=0
	for n in "$@"; do
		C=$I/$n
		tag=$(cat "$C/tag")
		if ! grep -qx "slot_done_$j" "$B/out/results" 2>/dev/null; then
			kt_notok "$tag: the load boot reached it"
			j=$((j + 1))
			continue
		fi
		kt_expect "$B" "create_pc$j" ok "$tag: the kernel loads the cut image"
		if [ "$(kt_result "$B" "create_pc$j")" = ok ]; then
			kt_status_cmp "$tag: kernel status at load equals pcache info's" \
				"$(kt_result "$B" "status_load_$j")" "$(kt_info_status "$C/pre.img")" dirty_tail,gc
			want=$(cat "$C/expect.md5")
			got=$(kt_result "$B" "md5_$j")
			if [ "$got" = "$want" ]; then
				kt_ok "$tag: md5 of the whole 64 MiB device the kernel serves equals our replay's ($got)"
			else
				kt_notok "$tag: md5 of the whole 64 MiB device the kernel serves equals our replay's (kernel '$got', replay $want)"
			fi
		fi
		j=$((j + 1))
	done
	# the images are large: gone as soon as they are judged
	if [ "${PCACHE_KERNEL_KEEP:-0}" != 1 ]; then
		rm -rf "$B"
		for n in "$@"; do rm -f "$I/$n/pre.img" "$I/$n/back.img"; done
	fi
}

# ---- two workers, each: its cut boots one after the other, then its load boot ----
SEL=()
for c in "${CUTS[@]}"; do
	read -r n _ <<<"$c"
	[[ "$n" =~ ${KT_I_ONLY:-.} ]] && SEL+=("$c")
done
worker() { # W: the cuts W, W+2, W+4, ...
	local k c n done=()
	for ((k = $1; k < ${#SEL[@]}; k += 2)); do
		c=${SEL[$k]}
		n=${c%% *}
		# shellcheck disable=SC2086 # NAME KIND CRC
		do_cut $c >"$I/$n.out" 2>&1
		[ -f "$I/$n/pre.img" ] && done+=("$n") && touch "$I/$n/judged"
	done
	echo "#   i: worker $1: cut boots done after $(($(date +%s) - T0)) s" >"$I/load$1.out"
	[ ${#done[@]} -gt 0 ] && load_boot "load$1" "${done[@]}" >>"$I/load$1.out" 2>&1
}
worker 0 &
worker 1 &
wait
declare -A NKIND=([wb]=0 [gc]=0 [seg]=0 [full]=0) NLANDED=([wb]=0 [gc]=0 [seg]=0 [full]=0)
NCUT=0
for c in "${SEL[@]}"; do
	read -r n kind _ <<<"$c"
	cat "$I/$n.out"
	if [ -f "$I/$n/judged" ]; then
		NCUT=$((NCUT + 1))
		NKIND[$kind]=$((NKIND[$kind] + 1))
		NLANDED[$kind]=$((NLANDED[$kind] + $(cat "$I/$n/landed")))
	fi
done
cat "$I/load0.out" "$I/load1.out" 2>/dev/null
# Each workload must have landed where it aims at least once: otherwise its
# delays no longer fit what the kernel does.
for kind in wb gc seg full; do
	[ "${NKIND[$kind]}" -gt 0 ] || continue
	if [ "${NLANDED[$kind]}" -gt 0 ]; then
		kt_ok "i: $kind: ${NLANDED[$kind]} of ${NKIND[$kind]} cuts landed where the workload aims (seed $SEED)"
	else
		kt_notok "i: $kind: none of ${NKIND[$kind]} cuts landed where the workload aims (seed $SEED)"
	fi
done
echo "# i: $NCUT cuts (writeback ${NKIND[wb]}, gc ${NKIND[gc]}, segment-crossing ${NKIND[seg]}, full ${NKIND[full]}), seed $SEED"
echo "# stat: i cuts $NCUT"
echo "# stat: i cut_writeback ${NKIND[wb]}"
echo "# stat: i cut_gc ${NKIND[gc]}"
echo "# stat: i cut_segment_crossing ${NKIND[seg]}"
echo "# stat: i cut_full ${NKIND[full]}"
echo "# stat: i cut_in_gc_window $(cat "$I"/*.out | grep -c 'the cut fell in the GC window')"
echo "# stat: i seed $SEED"
echo "#   i: $(($(date +%s) - T0)) s"
[ "${PCACHE_KERNEL_KEEP:-0}" = 1 ] || rm -rf "$I"
