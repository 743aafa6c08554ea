#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario f: our pcache binary inside the guest, on the real devices.
#  f1 fsdax (/dev/pmem0): format through the block device, the kernel loads it
#     without reformatting; fsck -y and format refuse the device while the table
#     is loaded ("device is in use", exit 8) and leave it intact; after dmsetup
#     remove, fsck/info/replay on /dev/pmem0 agree with the same commands on the
#     image file on the host.
#  f2 devdax (/dev/dax0.0, through libpmem2): format, info, fsck and replay in the
#     guest; the host finds the same bytes in the NVDIMM file and agrees.
#  `pcache list` when the binary has it.
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

RANGE=$((16 << 20))
tag="f: fsdax"

D=$(kt_case f-fsdax)
kt_new_pmem "$D/pmem.img"
truncate -s 256M "$D/back.img"
$KT_MODEL genwrites --seed 61 --count 80 --range "$RANGE" --min 512 --max 65536 --align 512 \
	--blob-size $((4 << 20)) --blob "$D/scn/blob" --list "$D/scn/writes"
$KT_MODEL model --range "$RANGE" --list "$D/scn/writes" --blob "$D/scn/blob" --out "$D/model"
cat >>"$D/scn/guest.sh" <<'EOF'
pcache info /dev/pmem0 >/out/info0.txt 2>&1
pg_note "info0_rc $?"
pcache format -q --data-crc /dev/pmem0 >/out/format.txt 2>&1
pg_note "format_rc $?"
pcache info --json /dev/pmem0 >/out/info1.json 2>&1
pg_note "info1_rc $?"
pg_create pc true
pg_status pc status_load
pcache info --json /dev/pmem0 >/out/info_live.json 2>&1
pg_note "info_live_rc $?"
pg_writes pc /scn/writes /scn/blob
pg_flush pc
pcache fsck -y /dev/pmem0 >/out/fsck_busy.txt 2>&1
pg_note "fsck_busy_rc $?"
pcache format -q -y --force /dev/pmem0 >/out/format_busy.txt 2>&1
pg_note "format_busy_rc $?"
if pcache --help 2>&1 | grep -qE '^ +list '; then
	pcache list --json >/out/list.json 2>&1
	pg_note "list_rc $?"
else
	pg_note "list_rc absent"
fi
pg_remove pc
pcache fsck -n /dev/pmem0 >/out/fsck_after.txt 2>&1
pg_note "fsck_after_rc $?"
pcache info --json /dev/pmem0 >/out/info_after.json 2>&1
pcache replay --json /dev/pmem0 >/out/replay.json 2>&1
pg_note "replay_rc $?"
EOF
kt_run "$D"
kt_expect "$D" info0_rc 8 "$tag: pcache info on a zeroed /dev/pmem0: not a pcache device (exit 8)"
kt_expect "$D" format_rc 0 "$tag: pcache format --data-crc /dev/pmem0 in the guest"
kt_expect "$D" create_pc ok "$tag: the kernel loads the cache formatted through /dev/pmem0"
kt_status_cmp "$tag: kernel status equals pcache info /dev/pmem0 (before the load)" \
	"$(kt_result "$D" status_load)" "$($KT_MODEL json-get "$D/out/info1.json" 0.status_line 2>/dev/null)"
for w in fsck_busy format_busy; do
	rc=$(kt_result "$D" "${w}_rc")
	msg=$(head -n 1 "$D/out/$w.txt" 2>/dev/null)
	cmd=${w%_busy}
	[ "$cmd" = fsck ] && cmd="fsck -y" || cmd="format --force"
	if [ "$rc" = 8 ] && echo "$msg" | grep -q 'in use'; then
		kt_ok "$tag: pcache $cmd refuses /dev/pmem0 while the table is loaded (exit 8: $msg)"
	else
		kt_notok "$tag: pcache $cmd refuses /dev/pmem0 while the table is loaded (exit $rc: $msg)"
	fi
done
echo "#   pcache info on the live /dev/pmem0: exit $(kt_result "$D" info_live_rc)"
case "$(kt_result "$D" list_rc)" in
absent) kt_skip "$tag: pcache list (build/pcache has no list command)" ;;
0) kt_ok "$tag: pcache list runs in the guest: $(tr -d ' \n' <"$D/out/list.json" | head -c 200)" ;;
*) kt_notok "$tag: pcache list exit $(kt_result "$D" list_rc): $(head -c 200 "$D/out/list.json")" ;;
esac
kt_expect "$D" fsck_after_rc 0 "$tag: pcache fsck -n /dev/pmem0 is clean after dmsetup remove"
kt_fsck_clean "$tag: fsck -n of the same bytes on the host is clean" "$D/pmem.img"
kt_status_cmp "$tag: pcache info /dev/pmem0 in the guest equals pcache info of the image on the host" \
	"$($KT_MODEL json-get "$D/out/info_after.json" 0.status_line 2>/dev/null)" "$(kt_info_status "$D/pmem.img")"
"$PCACHE" replay --json "$D/pmem.img" >"$D/replay-host.json" 2>/dev/null
if [ "$(kt_result "$D" replay_rc)" = 0 ] && cmp -s "$D/out/replay.json" "$D/replay-host.json"; then
	kt_ok "$tag: pcache replay --json /dev/pmem0 in the guest equals replay of the image on the host"
else
	kt_notok "$tag: pcache replay --json /dev/pmem0 in the guest equals replay of the image on the host"
	diff "$D/out/replay.json" "$D/replay-host.json" | head -n 5 | sed 's/^/#   /'
fi
kt_replay_matches "$tag: the refused commands left the data intact: replay equals the model" \
	"$D/pmem.img" "$D/back.img" "$D/model" "$RANGE"
rm -rf "$D"

# ---- devdax ----
# dm-pcache needs a block device, so the kernel cannot load a devdax namespace; what
# is checked is that our tools write and read the right bytes through the devdax
# mapping: the host finds the cache in the NVDIMM file and reads the same status.
tag="f: devdax"
E=$(kt_case f-devdax)
truncate -s 64M "$E/back.img"
cat >>"$E/scn/guest.sh" <<'EOF'
ndctl create-namespace -f -e namespace0.0 -m devdax >/out/ndctl_devdax.json 2>&1
pg_note "devdax_rc $?"
pg_wait_dev /dev/dax0.0 10
pcache format -q --data-crc --gc-percent 33 /dev/dax0.0 >/out/dax_format.txt 2>&1
pg_note "dax_format_rc $?"
pcache info --json /dev/dax0.0 >/out/dax_info.json 2>&1
pg_note "dax_info_rc $?"
pcache fsck -n /dev/dax0.0 >/out/dax_fsck.txt 2>&1
pg_note "dax_fsck_rc $?"
pcache replay --json /dev/dax0.0 >/out/dax_replay.json 2>&1
pg_note "dax_replay_rc $?"
EOF
# A bare NVDIMM file (no namespace info block): the guest configures it.
truncate -s "$KT_NV_SIZE" "$E/nv.img"
kt_boot "$E"
kt_expect "$E" devdax_rc 0 "$tag: ndctl create-namespace -m devdax gives /dev/dax0.0"
kt_expect "$E" dax_format_rc 0 "$tag: pcache format --data-crc --gc-percent 33 /dev/dax0.0 (libpmem2 devdax mapping)"
kt_expect "$E" dax_fsck_rc 0 "$tag: pcache fsck -n /dev/dax0.0 is clean"
kt_expect "$E" dax_replay_rc 0 "$tag: pcache replay /dev/dax0.0"
# Where the devdax data starts in the file: the superblock magic sits at 4104.
size=$($KT_MODEL json-get "$E/out/dax_info.json" 0.device_size 2>/dev/null)
magic=$(printf '\xef\x96\xc5\x96\xfa\x5e\xb0\x65')
at=$(grep -oba "$magic" "$E/nv.img" 2>/dev/null | head -n 1 | cut -d: -f1)
if [ -n "$at" ] && [ -n "$size" ]; then
	off=$((at - 4104))
	dd if="$E/nv.img" of="$E/dax.img" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$size" \
		conv=sparse status=none
	truncate -s "$size" "$E/dax.img"
	echo "#   devdax data at byte $off of the NVDIMM file, $size bytes (fsdax -M mem: $KT_NS_OFF, $KT_NS_SIZE)"
	kt_status_cmp "$tag: pcache info of those bytes on the host equals pcache info /dev/dax0.0 in the guest" \
		"$(kt_info_status "$E/dax.img")" "$($KT_MODEL json-get "$E/out/dax_info.json" 0.status_line 2>/dev/null)"
	kt_fsck_clean "$tag: fsck -n of those bytes on the host is clean" "$E/dax.img"
else
	kt_notok "$tag: the cache written through /dev/dax0.0 is in the NVDIMM file (magic at '${at:-none}', size '${size:-?}')"
fi
rm -rf "$E"
