#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario d: images written by our tools (the library's log appender, through
# build/tests/mkimage, formatted by our format code) -> the kernel loads them and
# serves mkimage's model; then the kernel appends more writes, FLUSH, power cut ->
# our replay (and pcache flush) agree with the model of both.
#  d1: data CRCs, 2990 overlapping writes, a FLUSH every 50, the last 40 writes
#      left in the open kset (not durable, not in the model);
#  d2: no data CRCs, a log that ends 48 bytes before the end of key segment 0, so
#      the kernel's first kset must go through a LAST kset into a new segment.
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

MiB=$((1 << 20))
RANGE=$((32 * MiB))
BACK_SIZE=$((256 * MiB))

# run_case NAME CRC(true|false) SEED MKIMAGE-ARGS...
run_case() {
	local name=$1 crc=$2 seed=$3 tag D mk md5
	shift 3
	tag="d: $name"
	D=$(kt_case "d-$name")
	truncate -s "$BACK_SIZE" "$D/back.img"
	mk=$("$KT_MKIMAGE" --size "$KT_NS_SIZE" "$@" --model "$D/model" "$D/pmem.img" 2>&1)
	if [ $? -ne 0 ]; then
		kt_notok "$tag: mkimage $* ($mk)"
		return
	fi
	echo "#   mkimage: $mk"
	truncate -s "$RANGE" "$D/model"
	kt_fsck_clean "$tag: fsck -n is clean on the mkimage image" "$D/pmem.img"
	kt_cp "$D/pmem.img" "$D/pre.img"
	$KT_MODEL genwrites --seed "$seed" --count 150 --range "$RANGE" --min 512 --max 65536 --align 512 \
		--blob-size $((4 * MiB)) --blob "$D/scn/blob" --list "$D/scn/writes"
	$KT_MODEL model --range "$RANGE" --base "$D/model" --list "$D/scn/writes" --blob "$D/scn/blob" \
		--out "$D/model2"
	cat >>"$D/scn/guest.sh" <<EOF
pg_create pc $crc
pg_status pc status_load
pg_readback pc $RANGE
pg_writes pc /scn/writes /scn/blob
pg_flush pc
pg_status pc status_cut
pg_cut
EOF
	kt_run "$D"
	kt_expect "$D" create_pc ok "$tag: the kernel loads the image our appender wrote"
	kt_status_cmp "$tag: kernel status at load equals pcache info" \
		"$(kt_result "$D" status_load)" "$(kt_info_status "$D/pre.img")" dirty_tail,gc
	kt_readback_matches "$tag: the kernel serves mkimage's model" "$D" "$D/model" "$RANGE"
	kt_expect "$D" writes_pc "150 0" "$tag: the kernel appends 150 writes, FLUSH, power cut"
	kt_fsck_clean "$tag: fsck -n is clean after the kernel appended" "$D/pmem.img"
	kt_status_cmp "$tag: key_head after FLUSH + cut equals pcache info's" \
		"$(kt_result "$D" status_cut)" "$(kt_info_status "$D/pmem.img")" segs_used,dirty_tail,key_tail
	kt_replay_matches "$tag: our replay of the kernel-extended log equals the model" \
		"$D/pmem.img" "$D/back.img" "$D/model2" "$RANGE"
	if [ "$KT_HAVE_FLUSH" = 1 ]; then
		md5=$(kt_logical_md5 "$D/pmem.img" "$D/back.img")
		out=$("$PCACHE" flush "$D/pmem.img" "$D/back.img" 2>&1)
		rc=$?
		if [ $rc -eq 0 ]; then
			kt_ok "$tag: pcache flush exits 0 ($(echo "$out" | tail -n 1))"
		else
			kt_notok "$tag: pcache flush exits 0 (exit $rc)"
			echo "$out" | tail -n 5 | sed 's/^/#   /'
		fi
		kt_same "$tag: after pcache flush the backing file equals the model" \
			"$D/back.img" "$D/model2" "$BACK_SIZE"
		# scenario h loads it
		[ -n "$md5" ] && kt_flushed_keep "d-$name" "$crc" "$md5" "$D/pmem.img" "$D/back.img"
	else
		kt_skip "$tag: pcache flush (build/pcache has no flush command)"
	fi
	LAST_CASE=$D
}

run_case crc true 42 --data-crc --writes 2990 --seed 41 --range "$RANGE" \
	--min-len 512 --max-len 65536 --align 512 --flush-every 50 --no-final-flush
rm -rf "$LAST_CASE"

# 3259 full ksets and one of 14 keys: key_head = 0:16764880, 48 bytes before the
# end of segment 0's data area (§6.2: no kset fits there any more).
run_case segment-end false 43 --writes 417166 --seed 5 --range $((4 * MiB)) \
	--min-len 512 --max-len 512 --align 512
D=$LAST_CASE
"$PCACHE" dump --json --what ksets "$D/pmem.img" >"$D/dump.json" 2>/dev/null
last=$(python3 - "$D/dump.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1])):
    if r.get("type") == "kset" and r.get("last"):
        print("%d:%d->%d" % (r["cache_seg"], r["seg_off"], r["next_cache_seg"]))
        break
EOF
)
case "$last" in
0:16764880-\>*) kt_ok "d: segment-end: the kernel continued our log with a LAST kset at 0:16764880 ($last)" ;;
*) kt_notok "d: segment-end: the kernel continued our log with a LAST kset at 0:16764880 (found '$last')" ;;
esac
rm -rf "$D"
