#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario c: a long kernel-written log.  gc_percent 10 (set by pcache format), data
# CRCs on.  About a million 512-byte keys in 128-key ksets spread the log over
# several key segments (LAST ksets); 672 MiB of 1 MiB writes in between push the
# segment allocator round the whole cache, so writeback and GC reclaim data
# segments (gen bumps) and log segments while the kernel writes.  Before the last
# 512-byte passes `dmsetup message gc_percent 90` stops GC, so the LAST kset they
# write stays on the live log.  Then random overlapping writes, FLUSH, power cut,
# and the same checks as scenario b.
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

MiB=$((1 << 20))
BACK_SIZE=$((160 * MiB))
RANGE=$BACK_SIZE
tag="c: long log"

D=$(kt_case c-longlog)
kt_new_pmem "$D/pmem.img"
"$PCACHE" format -q --data-crc --gc-percent 10 "$D/pmem.img"
truncate -s "$BACK_SIZE" "$D/back.img"
# One random blob: [0,32M) and [32M,64M) feed the 512-byte passes, [64M,80M) the
# 1 MiB writes; the random writes take their data from anywhere in it.
$KT_MODEL genwrites --seed 31 --count 200 --range $((32 * MiB)) --hot-range $((2 * MiB)) --hot-pct 50 \
	--min 512 --max 65536 --align 512 --blob-size $((88 * MiB)) --blob "$D/scn/blob" --list "$D/scn/writes"
: >"$D/ops"
g=$D/scn/guest.sh
echo 'pg_create pc true' >>"$g"
echo 'pg_status pc status_load' >>"$g"
echo 'pg_note "time_start $(date +%s)"' >>"$g"
small_passes() { # FIRST_SOURCE_INDEX
	local i
	for i in 0 1 2 3 4 5 6 7; do
		echo "0 $((32 * MiB)) $(((i + $1) % 2 * 32 * MiB))" >>"$D/ops"
		echo "pg_copy pc 0 $((32 * MiB)) $(((i + $1) % 2 * 32 * MiB)) 512" >>"$g"
	done
	echo "pg_status pc status_small$1" >>"$g"
	echo 'pg_note "time_small '"$1"' $(date +%s)"' >>"$g"
}
big_rounds() { # 7 rounds over [64M, 160M), each from another part of the blob
	local k r
	for r in 0 1 2 3 4 5 6; do
		for k in 0 1 2 3 4 5; do
			echo "$((64 * MiB + k * 16 * MiB)) $((16 * MiB)) $(((r + k) % 5 * 16 * MiB))" >>"$D/ops"
			echo "pg_copy pc $((64 * MiB + k * 16 * MiB)) $((16 * MiB)) $(((r + k) % 5 * 16 * MiB)) 1M" >>"$g"
		done
	done
	echo "pg_status pc status_big" >>"$g"
	echo 'pg_note "time_big $(date +%s)"' >>"$g"
}
small_passes 0
big_rounds
# Stop GC before the last passes (§9.3: the message rewrites cache_info), so
# the LAST kset they write stays on the live log for our replay to walk through;
# first let writeback and GC bring segs_used down, so the cache does not fill up.
cat >>"$g" <<'EOF'
n=0
while [ "$(dmsetup status pc | awk '{ print $7 }')" -gt 20 ] && [ $n -lt 120 ]; do
	usleep 500000
	n=$((n + 1))
done
pg_status pc status_settled
dmsetup message pc 0 gc_percent 90
pg_note "gc_message $?"
EOF
small_passes 1
cat "$D/scn/writes" >>"$D/ops"
cat >>"$g" <<'EOF'
pg_writes pc /scn/writes /scn/blob
pg_flush pc
pg_status pc status_cut
pg_cut
EOF
$KT_MODEL model --range "$RANGE" --list "$D/ops" --blob "$D/scn/blob" --out "$D/model"

kt_run "$D"
kt_expect "$D" create_pc ok "$tag: the kernel loads a cache formatted with --gc-percent 10 --data-crc"
nfail=$(grep -c '^copy_.* fail' "$D/out/results")
if [ "$nfail" -eq 0 ] && [ "$(kt_result "$D" writes_pc)" = "200 0" ]; then
	kt_ok "$tag: ~1M 512-byte writes, 672 MiB of 1 MiB writes and 200 random writes, FLUSH, power cut"
else
	kt_notok "$tag: the kernel took every write"
	kt_show_guest "$D"
fi
grep '^status_' "$D/out/results" | sed 's/^/#   kernel /'
kt_fsck_clean "$tag: fsck -n is clean on the crashed image" "$D/pmem.img"
kt_status_cmp "$tag: key_head after FLUSH + cut equals pcache info's" \
	"$(kt_result "$D" status_cut)" "$(kt_info_status "$D/pmem.img")" segs_used,dirty_tail,key_tail

# What the log looks like: LAST ksets on the path from key_tail, GC, gens.
"$PCACHE" dump --json --what segments,ksets "$D/pmem.img" >"$D/dump.json" 2>/dev/null
facts=$(python3 - "$D/dump.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
lasts = [r for r in d if r.get("type") == "kset" and r.get("last")]
wraps = [r for r in lasts if r["next_cache_seg"] < r["cache_seg"]]
gens = [r["gen"] for r in d if r.get("type") == "segment_gen" and r.get("picked", True)]
kt = [r for r in d if r.get("type") == "kset" and r.get("at_key_tail")]
end = [r for r in d if r.get("type") == "log_end"][0]
print(len(lasts), len(wraps), max(gens) if gens else 0,
      "%d:%d" % (kt[0]["cache_seg"], kt[0]["seg_off"]) if kt else "none",
      "%d:%d" % (end["key_head"]["cache_seg"], end["key_head"]["seg_off"]),
      " ".join("%d->%d" % (r["cache_seg"], r["next_cache_seg"]) for r in lasts))
EOF
)
set -- $facts
echo "#   log from key_tail $4 to key_head $5: $1 LAST ksets ($(echo "$facts" | cut -d' ' -f6-)); highest segment gen $3"
# The segments key_head went through, from the kernel's own status lines.
trail=$(grep '^status_' "$D/out/results" | awk '{ split($8, p, ":"); if (!seen || p[1] "" != last "") { printf "%s ", p[1]; last = p[1]; seen = 1 } }')
echo "#   key_head went through segments: $trail"
if [ "$(echo "$trail" | wc -w)" -ge 3 ]; then
	kt_ok "$tag: the kernel's log went through $(echo "$trail" | wc -w) key segments ($trail)"
else
	kt_notok "$tag: the kernel's log went through several key segments (only: $trail)"
fi
kt_expect "$D" gc_message 0 "$tag: dmsetup message pc 0 gc_percent 90"
if [ "${1:-0}" -ge 1 ]; then
	kt_ok "$tag: the live log holds $1 LAST kset(s) written by the kernel, and our replay walks through them"
else
	kt_notok "$tag: the live log holds a LAST kset written by the kernel (none found)"
fi
if [ "${3:-0}" -ge 1 ] && [ "${4:-0:0}" != "0:0" ]; then
	kt_ok "$tag: GC ran while the kernel wrote (key_tail at $4, segment gens up to $3)"
else
	kt_notok "$tag: GC ran while the kernel wrote (key_tail '$4', highest gen '$3')"
fi
if [ "${2:-0}" -ge 1 ]; then
	kt_ok "$tag: the log wrapped round the segment space (a LAST kset names a lower segment)"
else
	echo "#   note: no LAST kset on the live log names a lower segment this time"
fi
kt_replay_matches "$tag: pcache replay over the backing file equals the model (160 MiB)" \
	"$D/pmem.img" "$D/back.img" "$D/model" "$RANGE"
grep '^time_' "$D/out/results" | sed 's/^/#   guest /'

if [ "$KT_HAVE_FLUSH" = 1 ]; then
	kt_cp "$D/pmem.img" "$D/pmem-flushed.img"
	kt_cp "$D/back.img" "$D/back-flushed.img"
	md5=$(kt_logical_md5 "$D/pmem.img" "$D/back.img")
	out=$("$PCACHE" flush "$D/pmem-flushed.img" "$D/back-flushed.img" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		kt_ok "$tag: pcache flush exits 0 ($(echo "$out" | tail -n 1))"
	else
		kt_notok "$tag: pcache flush exits 0 (exit $rc)"
		echo "$out" | tail -n 5 | sed 's/^/#   /'
	fi
	kt_same "$tag: after pcache flush the backing file equals the model" \
		"$D/back-flushed.img" "$D/model" "$BACK_SIZE"
	kt_fsck_clean "$tag: fsck -n is clean after pcache flush" "$D/pmem-flushed.img"
	# scenario h loads it
	[ -n "$md5" ] && kt_flushed_keep c-longlog true "$md5" "$D/pmem-flushed.img" "$D/back-flushed.img"
	rm -f "$D/pmem-flushed.img" "$D/back-flushed.img"
else
	kt_skip "$tag: pcache flush (build/pcache has no flush command)"
fi

# The kernel replays the long log and serves the model.
E=$(kt_case c-reload)
mv "$D/pmem.img" "$E/pmem.img"
mv "$D/back.img" "$E/back.img"
kt_cp "$E/pmem.img" "$E/pre.img"
cat >>"$E/scn/guest.sh" <<EOF
pg_create pc true
pg_status pc status_load
pg_readback pc $RANGE
pg_cut
EOF
KT_RB_SIZE=$RANGE kt_run "$E"
kt_expect "$E" create_pc ok "$tag: the kernel loads the crashed long-log image"
kt_status_cmp "$tag: kernel status at load equals pcache info" \
	"$(kt_result "$E" status_load)" "$(kt_info_status "$E/pre.img")" dirty_tail,gc
kt_readback_matches "$tag: the kernel serves the model after the crash (160 MiB)" "$E" "$D/model" "$RANGE"
grep '^time_' "$E/out/results" | sed 's/^/#   guest /' 
rm -rf "$D" "$E"
