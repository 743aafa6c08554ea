# SPDX-License-Identifier: GPL-2.0-or-later
#
# Helpers for the scenario scripts that run inside the guest (busybox sh).
# Results go to /out/results as `key value...` lines; the host reads them back.
# Every helper is careful to leave a result line even when the step fails, so
# the host can say what went wrong.

BACK=/dev/vda
PMEM=/dev/pmem0
RB=/dev/vdd
OUT=/out
# GNU dd (gdd) for I/O through the target: busybox dd does not issue O_DIRECT
# writes of the requested size and has no oflag=dsync.
DD="dd"
command -v gdd >/dev/null 2>&1 && DD=gdd

pg_note() {
	echo "$*" >>"$OUT/results"
}

pg_wait_dev() {
	_d=$1
	_n=${2:-10}
	while [ ! -e "$_d" ] && [ "$_n" -gt 0 ]; do
		sleep 1
		_n=$((_n - 1))
	done
	[ -e "$_d" ]
}

# pg_create NAME DATA_CRC(true|false) [CACHE_DEV [BACKING_DEV]]: loads the pcache
# table.  Result line: create_NAME ok | create_NAME fail <error text>
pg_create() {
	_name=$1
	_crc=$2
	_pm=${3:-$PMEM}
	_bk=${4:-$BACK}
	_sz=$(blockdev --getsz "$_bk")
	_t0=$(date +%s)
	if dmsetup create --noudevsync "$_name" \
		--table "0 $_sz pcache $_pm $_bk 4 cache_mode writeback data_crc $_crc" 2>/tmp/dmerr; then
		dmsetup mknodes "$_name" 2>/dev/null
		pg_note "create_$_name ok"
		pg_note "time_create_$_name $(($(date +%s) - _t0))"
		return 0
	fi
	pg_note "create_$_name fail $(tr '\n' ' ' </tmp/dmerr) | $(dmesg | grep -iE 'pcache|device-mapper' | tail -n 3 | tr '\n' ' ')"
	return 1
}

# pg_linear NAME DEV OFFSET_BYTES SIZE_BYTES [drop_writes]: a dm-linear slice of DEV;
# with drop_writes a dm-flakey slice that reads normally and silently drops every
# write (so the kernel's writeback cannot change what reads return).
pg_linear() {
	_t="linear $2 $(($3 / 512))"
	[ "${5:-}" = drop_writes ] && _t="flakey $2 $(($3 / 512)) 0 1 1 drop_writes"
	if dmsetup create --noudevsync "$1" --table "0 $(($4 / 512)) $_t" 2>/tmp/dmerr; then
		dmsetup mknodes "$1" 2>/dev/null
		return 0
	fi
	pg_note "linear_$1 fail $(tr '\n' ' ' </tmp/dmerr)"
	return 1
}

# pg_find_pmem TAG: the /dev/pmemN whose first bytes are TAG (the host stamps each
# image at byte 0, which the kernel never reads or writes).
pg_find_pmem() {
	for _p in /dev/pmem*; do
		[ -b "$_p" ] || continue
		if [ "$(dd if="$_p" bs=512 count=1 2>/dev/null | head -c ${#1})" = "$1" ]; then
			echo "$_p"
			return 0
		fi
	done
	return 1
}

# pg_wait_pmems N: waits until N pmem devices exist.
pg_wait_pmems() {
	_n=0
	while [ "$(ls /dev/pmem* 2>/dev/null | wc -l)" -lt "$1" ] && [ $_n -lt 20 ]; do
		sleep 1
		_n=$((_n + 1))
	done
}

# pg_status NAME KEY: result line `KEY <the fields after "pcache">`.
pg_status() {
	_s=$(dmsetup status "$1" 2>&1)
	pg_note "$2 ${_s#* pcache }"
}

pg_table() {
	_s=$(dmsetup table "$1" 2>&1)
	pg_note "$2 ${_s#* pcache }"
}

# pg_writes NAME LIST BLOB [oflag extra]: one direct write per line `off len src`
# of LIST (bytes), data from BLOB at src.  Result: writes_NAME <done> <failed>.
pg_writes() {
	_name=$1
	_list=$2
	_blob=$3
	_of=direct${4:+,$4}
	_ok=0
	_bad=0
	while read -r _off _len _src; do
		[ -n "$_off" ] || continue
		if $DD if="$_blob" of="/dev/mapper/$_name" bs="$_len" count=1 iflag=skip_bytes skip="$_src" \
			oflag="seek_bytes,$_of" seek="$_off" conv=notrunc status=none 2>/tmp/dderr; then
			_ok=$((_ok + 1))
		else
			_bad=$((_bad + 1))
			[ "$_bad" -le 3 ] && pg_note "write_error $_off $_len $(tr '\n' ' ' </tmp/dderr)"
		fi
	done <"$_list"
	pg_note "writes_$_name $_ok $_bad"
}

# pg_copy NAME OFF LEN SRC BS [oflag extra]: LEN bytes of /scn/blob from SRC to
# the target at OFF, as direct writes of BS bytes each (one key per write).
# Result: copy_NAME_OFF ok|fail.
pg_copy() {
	if $DD if=/scn/blob of="/dev/mapper/$1" bs="$5" iflag=skip_bytes,count_bytes skip="$4" count="$3" \
		oflag="seek_bytes,direct${6:+,$6}" seek="$2" conv=notrunc status=none 2>/tmp/dderr; then
		pg_note "copy_$1_$2 ok"
	else
		pg_note "copy_$1_$2 fail $(tr '\n' ' ' </tmp/dderr)"
	fi
}

# pg_flush NAME: an empty FLUSH (fsync of the block device).
pg_flush() {
	if $DD if=/dev/null of="/dev/mapper/$1" count=0 conv=notrunc,fsync 2>/dev/null; then
		pg_note "flush_$1 ok"
	else
		pg_note "flush_$1 fail"
	fi
}

# pg_readback NAME BYTES [KEY [SEEK_MIB [LIMIT_SECONDS]]]: copies [0, BYTES) of the
# mapped device to the read-back disk at SEEK_MIB; the host compares it byte for
# byte.  A copy still running after LIMIT seconds (default 300) is reported as
# `KEY hang` and left behind.
pg_readback() {
	_key=${3:-readback}
	_mb=$((($2 + 1048575) / 1048576))
	_t0=$(date +%s)
	rm -f /tmp/rb.rc
	($DD if="/dev/mapper/$1" of="$RB" bs=1M count="$_mb" seek="${4:-0}" iflag=direct conv=notrunc,fsync \
		2>/tmp/dderr; echo $? >/tmp/rb.rc) &
	_pid=$!
	_n=0
	while [ ! -f /tmp/rb.rc ] && [ $_n -lt $((${5:-300} * 10)) ]; do
		usleep 100000
		_n=$((_n + 1))
	done
	if [ ! -f /tmp/rb.rc ]; then
		pg_note "$_key hang"
		return 1
	fi
	wait $_pid
	if [ "$(cat /tmp/rb.rc)" = 0 ]; then
		pg_note "time_$_key $(($(date +%s) - _t0))"
		pg_note "$_key ok $2"
	else
		pg_note "$_key fail $(tr '\n' ' ' </tmp/dderr)"
	fi
}

# pg_readback_runs NAME KEY SEEK_MIB LIMIT_SECONDS FIRST:COUNT...: like pg_readback,
# for the MiB runs given only, each to its own offset past SEEK_MIB, and sparsely:
# all-zero MiBs are not written (the read-back disk starts all zero).  Result:
# KEY ok RUNS | KEY fail ... | KEY hang (LIMIT passed between two runs).
pg_readback_runs() {
	_n=$1 _k=$2 _s=$3 _l=$4
	shift 4
	_t0=$(date +%s)
	for _r in "$@"; do
		if [ $(($(date +%s) - _t0)) -gt "$_l" ]; then
			pg_note "$_k hang"
			return 1
		fi
		if ! $DD if="/dev/mapper/$_n" of="$RB" bs=1M skip="${_r%:*}" count="${_r#*:}" \
			seek=$((_s + ${_r%:*})) iflag=direct conv=notrunc,sparse 2>/tmp/dderr; then
			pg_note "$_k fail $_r $(tr '\n' ' ' </tmp/dderr)"
			return 1
		fi
	done
	sync
	pg_note "time_$_k $(($(date +%s) - _t0))"
	pg_note "$_k ok $#"
}

# pg_readback_ranges NAME KEY SHIFT_BYTES LIMIT_S RANGES_FILE: the byte ranges the file
# lists (`START LEN` lines) of /dev/mapper/NAME to the read-back disk at START + SHIFT,
# by rangecopy (tests/tools/rangecopy.c) in one process.  Result lines as
# pg_readback_runs: KEY ok N | KEY fail ... | KEY hang, and time_KEY.
pg_readback_ranges() {
	_t0=$(date +%s)
	_r=$(rangecopy "/dev/mapper/$1" "$RB" "$3" "$4" <"$5" 2>&1 | tail -n 1)
	case "$_r" in
	ok*) pg_note "time_$2 $(($(date +%s) - _t0))" ;;
	esac
	pg_note "$2 $_r"
	case "$_r" in ok*) return 0 ;; *) return 1 ;; esac
}

pg_remove() {
	if dmsetup remove --noudevsync "$1" 2>/tmp/dmerr; then
		pg_note "remove_$1 ok"
	else
		pg_note "remove_$1 fail $(tr '\n' ' ' </tmp/dmerr)"
	fi
}

# pg_save [quick]: the results to the results disk (quick: without the kernel log).
# shellcheck disable=SC2120 # the scenarios pass "quick"
pg_save() {
	[ "${1:-}" = quick ] || dmesg >"$OUT/dmesg" 2>/dev/null
	date +%s >"$OUT/t_end"
	tar -cf /tmp/results.tar -C "$OUT" . 2>/dev/null
	dd if=/tmp/results.tar of=/dev/vdc bs=64k conv=notrunc,fsync 2>/dev/null
}

# Power cut: nothing is removed or synced; the machine resets at once.
pg_cut() {
	pg_note "end cut"
	pg_save
	echo b >/proc/sysrq-trigger
	sleep 10
}

pg_poweroff() {
	pg_note "end poweroff"
	pg_save
	poweroff -f
	sleep 10
}

# ---------------------------------------------------------------------------
# Power cuts at random moments (scenario i).

# pg_progress SEQ ISSUED DURABLE: a progress record `KTCUT SEQ ISSUED DURABLE` in
# sector SEQ of the read-back disk, written direct: it is in the host's file before
# the writer goes on, so it survives a power cut that loses /out.
pg_progress() {
	printf 'KTCUT %d %d %d\n' "$1" "$2" "$3" |
		$DD of="$RB" bs=512 seek="$1" conv=sync,notrunc oflag=direct status=none 2>/dev/null
}

# pg_cut_writer NAME LIST BLOB BS FLUSH_EVERY [FIRST [COUNT]]: one direct dd per
# line `off len src` of LIST (LEN bytes of BLOB from SRC, in writes of BS bytes),
# lines FIRST (counting from 0; default 0) to FIRST+COUNT-1 (default: to the end);
# an empty FLUSH after every FLUSH_EVERY lines and after the last (FLUSH_EVERY 0:
# no FLUSH at all).  Before each group of lines a progress record says how many
# lines of LIST may have been issued by the end of the group and how many a FLUSH
# acknowledged: the host trusts nothing else.  Several calls on one LIST go on
# where the last stopped (the record count and the acknowledged lines are kept in
# /tmp/cw.state).  /out/wlog gets `LINES_DONE UPTIME` at the start and after each
# line.  CW_CONV adds dd conv= flags (sparse: all-zero blocks of BS bytes are
# skipped, not written).  Results: cutw_error LINE ... for a failed write;
# cutw_done LINES after the last line.
pg_cut_writer() {
	_cw_n=$(grep -c . "$2")
	_cw_fe=$5
	_cw_i=${6:-0}
	_cw_end=$_cw_n
	[ -n "${7:-}" ] && [ $((_cw_i + $7)) -lt "$_cw_n" ] && _cw_end=$((_cw_i + $7))
	_cw_seq=-1
	_cw_dur=0
	[ -f /tmp/cw.state ] && read -r _cw_seq _cw_dur </tmp/cw.state
	_cw_iss=$_cw_end
	[ "$_cw_fe" -gt 0 ] && [ $((_cw_i + _cw_fe)) -lt "$_cw_end" ] && _cw_iss=$((_cw_i + _cw_fe))
	_cw_seq=$((_cw_seq + 1))
	pg_progress "$_cw_seq" "$_cw_iss" "$_cw_dur"
	read -r _cw_up _ </proc/uptime
	echo "$_cw_i $_cw_up" >>"$OUT/wlog"
	_cw_k=0
	while read -r _cw_off _cw_len _cw_src; do
		[ -n "$_cw_off" ] || continue
		_cw_k=$((_cw_k + 1))
		[ "$_cw_k" -gt "$_cw_i" ] || continue
		if ! $DD if="$3" of="/dev/mapper/$1" bs="$4" count=$((_cw_len / $4)) iflag=skip_bytes skip="$_cw_src" \
			oflag=seek_bytes,direct seek="$_cw_off" conv="notrunc${CW_CONV:+,$CW_CONV}" status=none 2>/tmp/cwerr; then
			pg_note "cutw_error $_cw_i $(tr '\n' ' ' </tmp/cwerr)"
		fi
		_cw_i=$((_cw_i + 1))
		read -r _cw_up _ </proc/uptime
		echo "$_cw_i $_cw_up" >>"$OUT/wlog"
		if [ "$_cw_fe" -gt 0 ] && { [ $((_cw_i % _cw_fe)) -eq 0 ] || [ "$_cw_i" -eq "$_cw_end" ]; }; then
			$DD if=/dev/null of="/dev/mapper/$1" count=0 conv=notrunc,fsync 2>/dev/null ||
				pg_note "cutw_error flush after $_cw_i"
			_cw_dur=$_cw_i
			_cw_iss=$((_cw_i + _cw_fe))
			[ "$_cw_iss" -gt "$_cw_end" ] && _cw_iss=$_cw_end
			_cw_seq=$((_cw_seq + 1))
			pg_progress "$_cw_seq" "$_cw_iss" "$_cw_dur"
		fi
		[ "$_cw_i" -lt "$_cw_end" ] || break
	done <"$2"
	echo "$_cw_seq $_cw_dur" >/tmp/cw.state
	pg_note "cutw_done $_cw_i"
}

# pg_poll NAME KEY AWK_CONDITION LIMIT_SECONDS: reads the status of NAME until the
# condition holds, with the nine status fields as $1..$9 (sb_flags ... key_tail).
# Result: `KEY ok MILLISECONDS STATUS` or `KEY timeout MILLISECONDS STATUS`.
pg_poll() {
	read -r _pp_t0 _ </proc/uptime
	while :; do
		_pp_s=$(dmsetup status "$1" 2>&1)
		_pp_s=${_pp_s#* pcache }
		read -r _pp_t _ </proc/uptime
		_pp_ms=$(echo "$_pp_t $_pp_t0" | awk '{ printf "%d", ($1 - $2) * 1000 }')
		if echo "$_pp_s" | awk "{ exit !($3) }"; then
			pg_note "$2 ok $_pp_ms $_pp_s"
			return 0
		fi
		if [ "$_pp_ms" -ge $(($4 * 1000)) ]; then
			pg_note "$2 timeout $_pp_ms $_pp_s"
			return 1
		fi
		usleep 50000
	done
}

# pg_poll_moves NAME KEY FIELD LIMIT_SECONDS: pg_poll until status field FIELD
# (1..9) differs from its value now.
pg_poll_moves() {
	_pm_v=$(dmsetup status "$1" 2>/dev/null | sed 's/.* pcache //' | awk -v f="$3" '{ print $f }')
	pg_poll "$1" "$2" "\$$3 != \"$_pm_v\"" "$4"
}
