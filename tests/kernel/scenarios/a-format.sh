#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario a: `pcache format`, with and without --data-crc, against the kernel.
#  1. the kernel formats a zeroed device; `pcache format` must write the same bytes;
#  2. the kernel loads our formatted image without reformatting it: the only bytes
#     a table load changes are the cache_info replica it advances (slot 0, seq 2),
#     and its status line equals `pcache info`;
#  3. data written through the target reads back equal to the model; after a clean
#     `dmsetup remove`, fsck is clean and our replay serves the same bytes.
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

RANGE=$((16 << 20))

for crc in false true; do
	opt=
	[ "$crc" = true ] && opt=--data-crc
	tag="a: data_crc $crc"

	# 1. The kernel's own format.
	D=$(kt_case "a-$crc-kfmt")
	kt_new_pmem "$D/pmem.img"
	truncate -s 256M "$D/back.img"
	cat >>"$D/scn/guest.sh" <<EOF
pg_create pc $crc
pg_status pc status_load
pg_remove pc
EOF
	kt_run "$D"
	kt_expect "$D" create_pc ok "$tag: the kernel formats a zeroed device"
	kt_new_pmem "$D/ours.img"
	"$PCACHE" format -q $opt "$D/ours.img" || kt_notok "$tag: pcache format exit $?"
	kt_same "$tag: pcache format writes the same $KT_NS_SIZE bytes as the kernel's format" \
		"$D/ours.img" "$D/pmem.img"
	kt_status_cmp "$tag: status after the kernel's format equals pcache info of our format" \
		"$(kt_result "$D" status_load)" "$(kt_info_status "$D/ours.img")"

	# 2. The kernel loads our format without reformatting.
	E=$(kt_case "a-$crc-load")
	mv "$D/ours.img" "$E/pmem.img"
	rm -rf "$D"
	truncate -s 256M "$E/back.img"
	kt_cp "$E/pmem.img" "$E/pre.img"
	cat >>"$E/scn/guest.sh" <<EOF
pg_create pc $crc
pg_status pc status_load
pg_table pc table
pg_remove pc
EOF
	kt_run "$E"
	kt_expect "$E" create_pc ok "$tag: the kernel loads an image made by pcache format"
	kt_status_cmp "$tag: kernel status at load equals pcache info" \
		"$(kt_result "$E" status_load)" "$(kt_info_status "$E/pre.img")"
	kt_expect "$E" table "259:0 253:0 4 cache_mode writeback crc $crc" \
		"$tag: table status is 'cache_mode writeback crc $crc' (§9.2)"
	changed=$($KT_MODEL diff "$E/pre.img" "$E/pmem.img")
	if [ -n "$changed" ] && kt_ranges_within "$changed" 8192 8216; then
		kt_ok "$tag: the load changed only cache_info replica 0 (no reformat)"
	else
		kt_notok "$tag: the load changed only cache_info replica 0 (no reformat)"
		echo "#   changed byte ranges: ${changed:-none}"
	fi
	ci=$("$PCACHE" dump --json --all-replicas --what cache-info "$E/pmem.img" |
		$KT_MODEL json-get - 0.seq)/$("$PCACHE" dump --json --all-replicas --what cache-info "$E/pmem.img" |
		$KT_MODEL json-get - 1.seq)
	if [ "$ci" = "2/1" ]; then
		kt_ok "$tag: cache_info after the load: slot 0 seq 2, slot 1 seq 1 (advance-then-write)"
	else
		kt_notok "$tag: cache_info after the load: slot 0 seq 2, slot 1 seq 1 (advance-then-write)"
		echo "#   slot seqs: $ci"
	fi
	kt_fsck_clean "$tag: fsck -n is clean after the kernel's load" "$E/pmem.img"

	# 3. Writes and reads through the target.
	F=$(kt_case "a-$crc-io")
	mv "$E/pmem.img" "$F/pmem.img"
	mv "$E/back.img" "$F/back.img"
	rm -rf "$E"
	kt_cp "$F/pmem.img" "$F/pre.img"
	$KT_MODEL genwrites --seed 11 --count 60 --range "$RANGE" --min 512 --max 131072 --align 512 \
		--blob-size $((4 << 20)) --blob "$F/scn/blob" --list "$F/scn/writes"
	$KT_MODEL model --range "$RANGE" --list "$F/scn/writes" --blob "$F/scn/blob" --out "$F/model"
	cat >>"$F/scn/guest.sh" <<EOF
pg_create pc $crc
pg_status pc status_load
pg_writes pc /scn/writes /scn/blob
pg_flush pc
pg_readback pc $RANGE
pg_status pc status_end
pg_remove pc
EOF
	kt_run "$F"
	kt_expect "$F" create_pc ok "$tag: the kernel loads it again"
	kt_status_cmp "$tag: kernel status at the second load equals pcache info" \
		"$(kt_result "$F" status_load)" "$(kt_info_status "$F/pre.img")"
	kt_expect "$F" writes_pc "60 0" "$tag: 60 direct writes through the target"
	kt_readback_matches "$tag: the target reads back the model (16 MiB, byte for byte)" "$F" "$F/model" "$RANGE"
	kt_fsck_clean "$tag: fsck -n is clean after writes and dmsetup remove" "$F/pmem.img"
	kt_replay_matches "$tag: pcache replay over the backing file equals the model" \
		"$F/pmem.img" "$F/back.img" "$F/model" "$RANGE"
	rm -rf "$F"
done
