#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Scenario h: `pcache flush` -> the kernel.  Kernel-written images after our offline
# writeback: the dirty kernel fixture (kernel-dirty-300w, flushed here), and what
# scenarios c and d of this run flushed (lib.sh kt_flushed_keep; scenario b loads its
# own flushed image).  On the host the flushed backing file must equal the whole
# logical device before the flush (the fixture's: tests/fixtures/LOGICAL.md5).  In
# one boot the kernel must load each flushed cache, its status must show
# dirty_tail == key_head and equal pcache info's (GC may move key_tail at load), and
# the md5 of the WHOLE device it serves must equal the one before the flush.
# Run alone (`run.sh BUILD h`) it has only the fixture.
set -u
# shellcheck source=tests/kernel/lib.sh
. "$KT_HERE/lib.sh"

B=$(kt_case h)
FL=$KT_WORK/flushed
NAMES=()

# fixture_flush: the kernel fixture, copied and flushed into FL/kfx.
fixture_flush() {
	local fx f want out rc
	for f in "${PCACHE_FIXTURES:-}" "$(dirname "$PCACHE")/fixtures"; do
		[ -n "$f" ] && [ -r "$f/kernel-dirty-300w.pmem" ] && [ -r "$f/kernel-dirty-300w.back" ] && fx=$f && break
	done
	if [ -z "${fx:-}" ]; then
		echo "#   note: the kernel fixture (kernel-dirty-300w .pmem and .back) was not found"
		return
	fi
	want=$(awk '$2 == "kernel-dirty-300w.pmem" { print $1 }' "$KT_HERE/../fixtures/LOGICAL.md5")
	mkdir -p "$B/kfx"
	kt_cp "$fx/kernel-dirty-300w.pmem" "$B/kfx/pmem.img"
	kt_cp "$fx/kernel-dirty-300w.back" "$B/kfx/back.img"
	chmod u+w "$B/kfx/pmem.img" "$B/kfx/back.img"
	out=$("$PCACHE" flush "$B/kfx/pmem.img" "$B/kfx/back.img" 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then
		kt_notok "h: kfx: pcache flush of the kernel fixture exits 0 (exit $rc)"
		echo "$out" | tail -n 5 | sed 's/^/#   /'
		return
	fi
	kt_ok "h: kfx: pcache flush of the kernel fixture exits 0 ($(echo "$out" | tail -n 1))"
	kt_flushed_keep kfx true "$want" "$B/kfx/pmem.img" "$B/kfx/back.img"
	rm -rf "$B/kfx"
}

# host_check NAME: fsck is clean and the flushed backing file is the whole logical
# device of before the flush.
host_check() {
	local F=$FL/$1 crc md5 got
	read -r crc md5 <"$F/info"
	kt_fsck_clean "h: $1: fsck -n is clean on the flushed image" "$F/pmem.img"
	got=$(md5sum <"$F/back.img" | cut -d' ' -f1)
	if [ "$got" = "$md5" ]; then
		kt_ok "h: $1: the flushed backing file is the whole logical device of before the flush ($md5)"
	else
		kt_notok "h: $1: the flushed backing file is the whole logical device of before the flush ($got, want $md5)"
	fi
}

# slot_guest J NAME OFF: load, status, md5 of the whole device, remove.
slot_guest() {
	local j=$1 F=$FL/$2 crc md5 size
	read -r crc md5 <"$F/info"
	size=$(stat -c %s "$F/back.img")
	cat >>"$B/scn/guest.sh" <<EOG
P=\$(pg_find_pmem KT-FLUSHED-$(printf %04d "$j"))
if [ -z "\$P" ]; then
	pg_note "create_pc$j fail no pmem device carries the stamp of slot $j"
elif pg_linear bk$j \$BACK $3 $size; then
	if pg_create pc$j $crc \$P /dev/mapper/bk$j; then
		pg_status pc$j status_load_$j
		pg_note "md5_$j \$(md5sum </dev/mapper/pc$j | cut -d' ' -f1)"
		pg_remove pc$j
	fi
	dmsetup remove --noudevsync bk$j 2>/dev/null
fi
pg_note "slot_done_$j"
pg_save quick
EOG
}

prepare_boot() {
	local j=0 off=0 n F
	echo "pg_wait_pmems ${#NAMES[@]}" >>"$B/scn/guest.sh"
	for n in "${NAMES[@]}"; do
		F=$FL/$n
		kt_cp "$F/pmem.img" "$F/pre.img"
		printf 'KT-FLUSHED-%04d' "$j" | dd of="$F/pmem.img" conv=notrunc status=none
		kt_pmem_to_nv "$F/pmem.img" "$B/nv$j.img"
		dd if="$F/back.img" of="$B/back.img" bs=1M oflag=seek_bytes seek="$off" conv=sparse,notrunc status=none
		slot_guest "$j" "$n" "$off"
		off=$((off + $(stat -c %s "$F/back.img")))
		j=$((j + 1))
	done
	truncate -s "$off" "$B/back.img"
	echo 'pg_save' >>"$B/scn/guest.sh"
}

# check_slot J NAME
check_slot() {
	local j=$1 n=$2 F=$FL/$2 crc md5 st got
	read -r crc md5 <"$F/info"
	kt_expect "$B" "create_pc$j" ok "h: $n: the kernel loads the image pcache flush left (data_crc $crc)"
	[ "$(kt_result "$B" "create_pc$j")" = ok ] || return
	st=$(kt_result "$B" "status_load_$j")
	# shellcheck disable=SC2086 # its words, as positional parameters
	set -- $st
	if [ $# -eq 9 ] && [ "$7" = "$8" ]; then
		kt_ok "h: $n: after pcache flush the kernel sees dirty_tail == key_head ($8)"
	else
		kt_notok "h: $n: after pcache flush the kernel sees dirty_tail == key_head ($st)"
	fi
	kt_status_cmp "h: $n: kernel status at load equals pcache info after flush" \
		"$st" "$(kt_info_status "$F/pre.img")" gc
	got=$(kt_result "$B" "md5_$j")
	if [ "$got" = "$md5" ]; then
		kt_ok "h: $n: md5 of the whole device the kernel serves is the one before the flush ($md5)"
	else
		kt_notok "h: $n: md5 of the whole device the kernel serves is the one before the flush (kernel '$got', want $md5)"
	fi
	kt_expect "$B" "remove_pc$j" ok "h: $n: dmsetup remove"
}

if [ "$KT_HAVE_FLUSH" != 1 ]; then
	kt_skip "h: pcache flush -> kernel (build/pcache has no flush command)"
	exit 0
fi
fixture_flush
for F in "$FL"/*/; do
	[ -f "$F/info" ] || continue
	NAMES+=("$(basename "$F")")
	host_check "$(basename "$F")"
done
if [ ${#NAMES[@]} -eq 0 ]; then
	kt_skip "h: no flushed image to load (no fixture, scenarios c and d not run)"
	exit 0
fi
prepare_boot
kt_boot "$B"
kt_console_clean "$B" "h: no BUG, Oops, lockup or WARNING on the guest console"
j=0
for n in "${NAMES[@]}"; do
	if grep -qx "slot_done_$j" "$B/out/results" 2>/dev/null; then
		check_slot "$j" "$n"
	else
		kt_notok "h: $n: the guest did not reach slot $j"
	fi
	j=$((j + 1))
done
[ "${PCACHE_KERNEL_KEEP:-0}" = 1 ] || rm -rf "$B" "$FL"
