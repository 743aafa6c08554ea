#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario b: the kernel writes (random sizes and offsets, many overlaps), FLUSH,
# power cut without `dmsetup remove`.  Then on the host: fsck is clean, our replay
# over the backing file reproduces the model, `pcache flush` makes the backing file
# equal the model; and the kernel loads both the crashed and the flushed image and
# serves the model.
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

RANGE=$((32 << 20))
BACK_SIZE=$((256 << 20))
tag="b: crash"

D=$(kt_case b-crash)
kt_new_pmem "$D/pmem.img"
"$PCACHE" format -q --data-crc "$D/pmem.img"
truncate -s "$BACK_SIZE" "$D/back.img"
$KT_MODEL genwrites --seed 21 --count 300 --range "$RANGE" --hot-range $((4 << 20)) --hot-pct 60 \
	--min 512 --max 65536 --align 512 --blob-size $((8 << 20)) --blob "$D/scn/blob" --list "$D/scn/writes"
$KT_MODEL model --range "$RANGE" --list "$D/scn/writes" --blob "$D/scn/blob" --out "$D/model"
cat >>"$D/scn/guest.sh" <<'EOF'
pg_create pc true
pg_writes pc /scn/writes /scn/blob
pg_flush pc
pg_status pc status_cut
pg_cut
EOF
kt_run "$D"
kt_expect "$D" create_pc ok "$tag: the kernel loads a fresh cache (data_crc true)"
kt_expect "$D" writes_pc "300 0" "$tag: 300 direct writes, 512 B-64 KiB, overlapping, then FLUSH and power cut"
kt_fsck_clean "$tag: fsck -n is clean on the crashed image" "$D/pmem.img"
kt_status_cmp "$tag: key_head after FLUSH + cut equals pcache info's (every flushed key replays)" \
	"$(kt_result "$D" status_cut)" "$(kt_info_status "$D/pmem.img")" segs_used,dirty_tail,key_tail
echo "#   $("$PCACHE" replay "$D/pmem.img" 2>&1 | grep -m1 'live keys')"
kt_replay_matches "$tag: pcache replay over the backing file equals the model" \
	"$D/pmem.img" "$D/back.img" "$D/model" "$RANGE"

# Offline writeback with our tool.
if [ "$KT_HAVE_FLUSH" = 1 ]; then
	kt_cp "$D/pmem.img" "$D/pmem-flushed.img"
	kt_cp "$D/back.img" "$D/back-flushed.img"
	out=$("$PCACHE" flush "$D/pmem-flushed.img" "$D/back-flushed.img" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		kt_ok "$tag: pcache flush exits 0 ($(echo "$out" | tail -n 1))"
	else
		kt_notok "$tag: pcache flush exits 0 (exit $rc)"
		echo "$out" | tail -n 5 | sed 's/^/#   /'
	fi
	kt_same "$tag: after pcache flush the backing file equals the model (all 256 MiB)" \
		"$D/back-flushed.img" "$D/model" "$BACK_SIZE"
	kt_fsck_clean "$tag: fsck -n is clean after pcache flush" "$D/pmem-flushed.img"
else
	kt_skip "$tag: pcache flush (build/pcache has no flush command)"
fi

# The kernel loads the crashed image and serves the model.
E=$(kt_case b-reload)
kt_cp "$D/pmem.img" "$E/pmem.img"
kt_cp "$D/pmem.img" "$E/pre.img"
kt_cp "$D/back.img" "$E/back.img"
cat >>"$E/scn/guest.sh" <<EOF
pg_create pc true
pg_status pc status_load
pg_readback pc $RANGE
pg_flush pc
pg_cut
EOF
kt_run "$E"
kt_expect "$E" create_pc ok "$tag: the kernel loads the crashed image"
kt_status_cmp "$tag: kernel status at load equals pcache info (writeback may already have moved dirty_tail)" \
	"$(kt_result "$E" status_load)" "$(kt_info_status "$E/pre.img")" dirty_tail
kt_readback_matches "$tag: the kernel serves the model after the crash" "$E" "$D/model" "$RANGE"
kt_fsck_clean "$tag: fsck -n is clean after the reload (read misses added CLEAN keys)" "$E/pmem.img"
kt_replay_matches "$tag: our replay still equals the model after the reload" \
	"$E/pmem.img" "$E/back.img" "$D/model" "$RANGE"
rm -rf "$E"

# The kernel loads the image our flush left: clean, and serving the model.
if [ "$KT_HAVE_FLUSH" = 1 ]; then
	F=$(kt_case b-flushed)
	mv "$D/pmem-flushed.img" "$F/pmem.img"
	mv "$D/back-flushed.img" "$F/back.img"
	kt_cp "$F/pmem.img" "$F/pre.img"
	cat >>"$F/scn/guest.sh" <<EOF
pg_create pc true
pg_status pc status_load
pg_readback pc $RANGE
pg_remove pc
EOF
	kt_run "$F"
	kt_expect "$F" create_pc ok "$tag: the kernel loads the image pcache flush left"
	st=$(kt_result "$F" status_load)
	set -- $st
	if [ $# -eq 9 ] && [ "$7" = "$8" ]; then
		kt_ok "$tag: after pcache flush the kernel sees dirty_tail == key_head ($8)"
	else
		kt_notok "$tag: after pcache flush the kernel sees dirty_tail == key_head"
		echo "#   kernel status: $st"
	fi
	kt_status_cmp "$tag: kernel status at load equals pcache info after flush" \
		"$st" "$(kt_info_status "$F/pre.img")"
	kt_readback_matches "$tag: the kernel serves the model after pcache flush" "$F" "$D/model" "$RANGE"
	rm -rf "$F"
else
	kt_skip "$tag: the kernel loads the image pcache flush left (no flush command)"
fi
rm -rf "$D"
