# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# Host-side helpers of the kernel interop suite, sourced by tests/kernel/run.sh
# and the scenario scripts.  Needs: KT_BUILD (the build directory prepare.sh
# printed), KT_WORK (this run's scratch directory), PCACHE (the pcache binary),
# KT_HERE (tests/kernel).
#
# Image files: an NVDIMM file is what qemu maps as the NVDIMM; the pmem namespace
# (/dev/pmem0 in the guest) is the part of it starting KT_NS_OFF bytes in, of
# KT_NS_SIZE bytes.  Our tools work on a separate "pmem image" file holding exactly
# the namespace bytes: kt_nv_to_pmem / kt_pmem_to_nv copy between the two.

KT_NV_SIZE=${KT_NV_SIZE:-1073741824}
KT_MODEL=${KT_MODEL:-python3 $KT_HERE/model.py}
KT_BOOT_TIMEOUT=${KT_BOOT_TIMEOUT:-600}

kt_log() { echo "# $*"; }

KT_PASSED=${KT_PASSED:-0}
KT_FAILED=${KT_FAILED:-0}
KT_SKIPPED=${KT_SKIPPED:-0}
[ -n "${KT_FAILURES+x}" ] || KT_FAILURES=()

# TAP-like results; counters live in the caller's shell (run.sh).
kt_ok() {
	KT_PASSED=$((KT_PASSED + 1))
	echo "ok - $*"
}
kt_notok() {
	KT_FAILED=$((KT_FAILED + 1))
	KT_FAILURES+=("$*")
	echo "not ok - $*"
}
# kt_check DESCRIPTION COMMAND...: ok when the command succeeds.
kt_check() {
	local d=$1
	shift
	if "$@"; then kt_ok "$d"; else kt_notok "$d"; fi
}
kt_skip() {
	KT_SKIPPED=$((KT_SKIPPED + 1))
	echo "ok - $* # SKIP"
}

# Sparse copy.
kt_cp() { cp --sparse=always "$1" "$2"; }

# kt_nv_to_pmem NV PMEM: the namespace bytes of NV into the file PMEM.
# kt_pmem_to_nv PMEM NV: a new NVDIMM file made of the namespace header and PMEM.
# Both copy sparsely and move the data by KT_NS_OFF with fallocate's collapse/insert
# range (ext4, xfs: no data is copied twice); elsewhere they fall back to dd.
kt_nv_to_pmem() {
	rm -f "$2"
	if cp --sparse=always "$1" "$2" 2>/dev/null &&
		fallocate --collapse-range -o 0 -l "$KT_NS_OFF" "$2" 2>/dev/null; then
		truncate -s "$KT_NS_SIZE" "$2"
		return
	fi
	rm -f "$2"
	dd if="$1" of="$2" bs=1M iflag=skip_bytes,count_bytes skip="$KT_NS_OFF" count="$KT_NS_SIZE" \
		conv=sparse status=none && truncate -s "$KT_NS_SIZE" "$2"
}

kt_pmem_to_nv() {
	rm -f "$2"
	if cp --sparse=always "$1" "$2" 2>/dev/null &&
		fallocate --insert-range -o 0 -l "$KT_NS_OFF" "$2" 2>/dev/null; then
		dd if="$KT_NV_HEADER" of="$2" conv=notrunc status=none &&
			truncate -s "$KT_NV_SIZE" "$2"
		return
	fi
	rm -f "$2"
	cp --sparse=always "$KT_NV_HEADER" "$2" &&
		truncate -s "$KT_NV_SIZE" "$2" &&
		dd if="$1" of="$2" bs=1M oflag=seek_bytes seek="$KT_NS_OFF" conv=sparse,notrunc status=none
}

# The initramfs: the cached base plus an overlay with /init, the guest helpers and
# our pcache binary with the host's libraries (run through the host's ld.so, so
# the guest's newer libraries never mix with them).
kt_make_initrd() {
	local root=$KT_WORK/overlay lib
	rm -rf "$root"
	mkdir -p "$root/lib" "$root/host/bin" "$root/host/lib" "$root/bin"
	cp "$KT_HERE/guest/init" "$root/init"
	chmod 755 "$root/init"
	cp "$KT_HERE/guest/pcache-guest.sh" "$root/lib/pcache-guest.sh"
	cp "$PCACHE" "$root/host/bin/pcache"
	for lib in $(ldd "$PCACHE" | grep -oE '/[^ ]+'); do
		cp -L "$lib" "$root/host/lib/"
	done
	cat >"$root/bin/pcache" <<'EOF'
#!/bin/sh
exec /host/lib/ld-linux-x86-64.so.2 --library-path /host/lib /host/bin/pcache "$@"
EOF
	chmod 755 "$root/bin/pcache"
	# rangecopy (tests/tools/rangecopy.c): the read-back of chosen ranges, libc only
	local rc=$(dirname "$PCACHE")/tests/rangecopy
	if [ -x "$rc" ]; then
		cp "$rc" "$root/host/bin/rangecopy"
		printf '#!/bin/sh\nexec /host/lib/ld-linux-x86-64.so.2 --library-path /host/lib /host/bin/rangecopy "$@"\n' \
			>"$root/bin/rangecopy"
		chmod 755 "$root/bin/rangecopy"
	fi
	(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$KT_WORK/overlay.cpio.gz" &&
		cat "$KT_BUILD/base.cpio.gz" "$KT_WORK/overlay.cpio.gz" >"$KT_WORK/initrd.img"
}

# kt_guest_script DIR: starts DIR/guest.sh (the scenario appends to it).
kt_guest_script() {
	mkdir -p "$1"
	printf '# guest side of a kernel interop scenario\n. /lib/pcache-guest.sh\n' >"$1/guest.sh"
}

# kt_boot DIR: boots the guest with
#   DIR/nv.img, or DIR/nv0.img DIR/nv1.img ... (NVDIMM files, one namespace each),
#   DIR/back.img (backing device), DIR/scn/ (guest.sh + data);
#   KT_RB_SIZE bytes of read-back disk (DIR/rb.img, default 64 MiB).
# Leaves DIR/out/ (the guest's /out: results, log, dmesg) and DIR/console.log.
# Returns 0 when the guest left its results.
kt_boot() {
	local d=$1 t0 rc n=0 nv=()
	rm -rf "$d/out" "$d/results.img" "$d/rb.img" "$d/scn.tar"
	mkdir -p "$d/out"
	if [ -f "$d/nv.img" ]; then
		# shellcheck disable=SC2054 # qemu option values are comma lists
		nv=(-object "memory-backend-file,id=m0,share=on,mem-path=$d/nv.img,size=$KT_NV_SIZE"
			-device nvdimm,memdev=m0,id=nv0)
		n=1
	else
		while [ -f "$d/nv$n.img" ]; do
			nv+=(-object "memory-backend-file,id=m$n,share=on,mem-path=$d/nv$n.img,size=$KT_NV_SIZE"
				-device "nvdimm,memdev=m$n,id=nv$n")
			n=$((n + 1))
		done
	fi
	tar -cf "$d/scn.tar" -C "$d/scn" . || return 1
	truncate -s %1M "$d/scn.tar"
	truncate -s 64M "$d/results.img"
	truncate -s "${KT_RB_SIZE:-64M}" "$d/rb.img"
	local attempt=1
	while :; do
		t0=$(date +%s)
		KT_BOOT_CRASH=
		rm -f "$d/console.log"
		qemu-system-x86_64 -nodefaults -machine pc,nvdimm=on -accel tcg \
			-cpu max -smp "${KT_SMP:-2}" -m "1G,slots=$((n + 1)),maxmem=$((n * KT_NV_SIZE / 1073741824 + 8))G" \
			"${nv[@]}" \
			-kernel "$KT_BUILD/vmlinuz" -initrd "$KT_WORK/initrd.img" \
			-append "console=ttyS0 panic=-1 loglevel=$KT_LOGLEVEL rdinit=/init" \
			-drive "file=$d/back.img,format=raw,if=virtio,cache=unsafe" \
			-drive "file=$d/scn.tar,format=raw,if=virtio,readonly=on" \
			-drive "file=$d/results.img,format=raw,if=virtio,cache=unsafe" \
			-drive "file=$d/rb.img,format=raw,if=virtio,cache=unsafe" \
			-display none -no-reboot -serial "file:$d/console.log" -monitor none \
			</dev/null >"$d/qemu.log" 2>&1 &
		kt_watch "$d" $! "$t0"
		rc=$?
		KT_BOOT_SECS=$(($(date +%s) - t0))
		echo "# boot $(basename "$d"): qemu exit $rc after ${KT_BOOT_SECS}s" >>"$KT_WORK/boots.log"
		if [ -z "$KT_BOOT_CRASH" ] && grep -qE "$KT_CRASH_RE" "$d/console.log" 2>/dev/null; then
			KT_BOOT_CRASH=$(grep -m1 -E "$KT_CRASH_RE" "$d/console.log" | sed 's/^\[ *[0-9.]*\] //')
		fi
		# A guest kernel that dies before the scenario starts (seen once: an "Oops: int3"
		# in early boot under qemu TCG, before any module was loaded) touched nothing of
		# ours: boot again, twice at most.
		if [ -n "$KT_BOOT_CRASH" ] && ! grep -q 'pcache-guest: running the scenario' "$d/console.log" &&
			[ $attempt -lt 3 ]; then
			echo "# boot $(basename "$d"): the guest kernel died before the scenario ($KT_BOOT_CRASH); booting again"
			cp "$d/console.log" "$d/console.early-crash.$attempt.log"
			attempt=$((attempt + 1))
			continue
		fi
		break
	done
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		echo "# qemu timed out after ${KT_BOOT_TIMEOUT}s; console tail:"
		tail -n 20 "$d/console.log" | sed 's/^/#   /'
	elif [ $rc -ne 0 ]; then
		echo "# qemu exit $rc: $(head -c 300 "$d/qemu.log")"
	fi
	tar -xf "$d/results.img" -C "$d/out" 2>/dev/null
	if [ ! -f "$d/out/results" ]; then
		echo "# guest left no results (qemu exit $rc); console tail:"
		tail -n 25 "$d/console.log" | sed 's/^/#   /'
		return 1
	fi
	return 0
}

# The console shows KERN_WARNING (4) and more severe: a WARN() prints at that level.
KT_LOGLEVEL=${KT_LOGLEVEL:-5}

# What a crashed or wedged kernel prints on the console.
KT_CRASH_RE='kernel BUG at|Oops:|BUG: (soft|hard) lockup|Kernel panic|general protection fault|BUG: unable to handle|blocked for more than'

# kt_watch DIR QEMU_PID T0: waits for qemu; kills it KT_BOOT_TIMEOUT seconds after T0,
# or 3 s after the console shows a kernel crash (KT_BOOT_CRASH = that line).
# Returns qemu's exit status (124 on timeout, 125 after a crash).
# With KT_IDLE_TIMEOUT set, also kills it when the console has not grown for that
# many seconds (returns 126: a silent hang).
kt_watch() {
	local d=$1 pid=$2 t0=$3 rc size last_size=-1 last_change
	last_change=$(date +%s)
	while kill -0 "$pid" 2>/dev/null; do
		if [ $(($(date +%s) - t0)) -ge "$KT_BOOT_TIMEOUT" ]; then
			kill "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			return 124
		fi
		if [ -n "${KT_IDLE_TIMEOUT:-}" ]; then
			size=$(stat -c %s "$d/console.log" 2>/dev/null || echo 0)
			if [ "$size" != "$last_size" ]; then
				last_size=$size
				last_change=$(date +%s)
			elif [ $(($(date +%s) - last_change)) -ge "$KT_IDLE_TIMEOUT" ]; then
				echo "# boot $(basename "$d"): no console output for ${KT_IDLE_TIMEOUT}s: the guest hangs"
				kill "$pid" 2>/dev/null
				wait "$pid" 2>/dev/null
				return 126
			fi
		fi
		if [ -z "$KT_BOOT_CRASH" ] && grep -qE "$KT_CRASH_RE" "$d/console.log" 2>/dev/null; then
			KT_BOOT_CRASH=$(grep -m1 -E "$KT_CRASH_RE" "$d/console.log" | sed 's/^\[ *[0-9.]*\] //')
			sleep 3
			kill "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			echo "# KERNEL CRASH in boot $(basename "$d"): $KT_BOOT_CRASH"
			grep -E -A12 "$KT_CRASH_RE" "$d/console.log" | head -n 24 | sed 's/^/#   /'
			return 125
		fi
		sleep 0.5
	done
	wait "$pid"
	rc=$?
	return $rc
}

# What fails a boot however the scenario went: a crash, a WARN() (WARNING:), any BUG
# line, a call trace.
KT_BAD_LOG_RE="$KT_CRASH_RE|WARNING:|BUG:|Call Trace:"

# kt_console_clean DIR DESCRIPTION: ok when the guest kernel logged no BUG, Oops,
# lockup, WARNING or call trace during the boot: on the console, and in the full
# kernel log the guest saved (out/dmesg, which has every level).
kt_console_clean() {
	local bad
	bad=$(cat "$1/console.log" "$1/out/dmesg" 2>/dev/null | grep -E "$KT_BAD_LOG_RE" | head -n 3)
	if [ -z "$bad" ]; then
		kt_ok "$2"
	else
		kt_notok "$2"
		echo "$bad" | sed 's/^/#   /'
	fi
}

# kt_result DIR KEY: the value part of the first result line `KEY value...`.
kt_result() {
	sed -n "s/^$2 //p" "$1/out/results" | head -n 1
}

# kt_info_status PMEM: the status_line pcache info computes for PMEM.
kt_info_status() {
	"$PCACHE" info --json "$1" 2>/dev/null | $KT_MODEL json-get - 0.status_line
}

# kt_show_guest DIR: the guest's log tail, for a failure.
kt_show_guest() {
	sed 's/^/#   results: /' "$1/out/results" 2>/dev/null | tail -n 30
	tail -n 15 "$1/out/log" 2>/dev/null | sed 's/^/#   guest: /'
	grep -iE 'pcache|dm-|error|bug|warn' "$1/out/dmesg" 2>/dev/null | tail -n 15 | sed 's/^/#   dmesg: /'
}

# ---------------------------------------------------------------------------
# Scenario building blocks.  A case directory D holds pmem.img (the namespace
# bytes our tools read and write), back.img and scn/.

# kt_case NAME: a fresh case directory, printed.
kt_case() {
	local d=$KT_WORK/$1
	rm -rf "$d"
	mkdir -p "$d/scn"
	kt_guest_script "$d/scn"
	echo "$d"
}

# kt_new_pmem FILE: an all-zero namespace image.
kt_new_pmem() {
	rm -f "$1"
	truncate -s "$KT_NS_SIZE" "$1"
}

# kt_run D: boots with D/pmem.img as the namespace; afterwards D/pmem.img holds
# what the kernel left there.  The scenario disk is rebuilt from D/scn.
kt_run() {
	local d=$1 rc
	kt_pmem_to_nv "$d/pmem.img" "$d/nv.img" || return 1
	kt_boot "$d"
	rc=$?
	kt_console_clean "$d" "${tag:-$(basename "$d")}: no BUG, Oops, lockup or WARNING in the guest kernel log (boot $(basename "$d"))"
	kt_nv_to_pmem "$d/nv.img" "$d/pmem.img" || return 1
	rm -f "$d/nv.img"
	return $rc
}

# kt_expect D KEY VALUE DESCRIPTION: ok when result KEY is exactly VALUE.
kt_expect() {
	local got
	got=$(kt_result "$1" "$2")
	if [ "$got" = "$3" ]; then
		kt_ok "$4"
	else
		kt_notok "$4"
		echo "#   expected $2 = '$3', got '$got'"
		kt_show_guest "$1"
	fi
}

# kt_status_cmp DESCRIPTION KERNEL_STATUS TOOLS_STATUS [ignored fields[,gc]]
# (gc: GC may have run since the load; see model.py status-cmp --gc).
kt_status_cmp() {
	local out ign=${4:-} gc=
	case ",$ign," in *,gc,*) gc=--gc ;; esac
	if out=$($KT_MODEL status-cmp "$2" "$3" --ignore "$ign" $gc); then
		kt_ok "$1"
	else
		kt_notok "$1"
	fi
	[ -n "$out" ] && echo "$out" | sed 's/^/#   /'
	echo "#   kernel: $2"
	echo "#   tools:  $3"
}

# kt_fsck_clean DESCRIPTION PMEM: `pcache fsck -n` exits 0.
kt_fsck_clean() {
	local out rc
	out=$("$PCACHE" fsck -n "$2" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		kt_ok "$1"
	else
		kt_notok "$1 (fsck -n exit $rc)"
		echo "$out" | head -n 30 | sed 's/^/#   /'
	fi
	return $rc
}

# kt_logical PMEM BACK RANGE OUT [nostrict]: OUT = first RANGE bytes of the logical
# device as our replay says (BACK with the extents of PMEM applied).  Fails (and says
# why) when replay fails or, unless nostrict, an extent reaches past RANGE.
kt_logical() {
	local pm=$1 bk=$2 range=$3 out=$4 rc strict=--strict
	[ "${5:-}" = nostrict ] && strict=
	"$PCACHE" replay --json "$pm" >"$out.replay.json" 2>"$out.replay.err"
	rc=$?
	# exit 4 with an extent map: a damaged cache the kernel still loads (the map is
	# what it serves); exit 4 without one: the kernel would refuse it.
	if [ $rc -ne 0 ] && ! { [ $rc -eq 4 ] && grep -q '"type":"summary"' "$out.replay.json"; }; then
		echo "#   pcache replay exit $rc: $(head -c 300 "$out.replay.err")"
		return 1
	fi
	"$PCACHE" dump --json --what segments "$pm" >"$out.dump.json" 2>/dev/null || {
		echo "#   pcache dump --what segments failed"
		return 1
	}
	$KT_MODEL logical --pmem "$pm" --backing "$bk" --replay "$out.replay.json" \
		--dump "$out.dump.json" --range "$range" $strict --out "$out" | sed 's/^/#   /'
	return "${PIPESTATUS[0]}"
}

# kt_cutcheck DESCRIPTION RANGE BASE LIST BLOB DURABLE ISSUED GOT: ok when GOT (the
# device a power cut left, as our replay reads it) keeps the first DURABLE writes of
# LIST over BASE and nothing but the first ISSUED besides (model.py cutcheck).
kt_cutcheck() {
	local out
	if out=$($KT_MODEL cutcheck --range "$2" --base "$3" --list "$4" --blob "$5" \
		--durable "$6" --issued "$7" --got "$8"); then
		kt_ok "$1 (${out#cutcheck: })"
	else
		kt_notok "$1"
		echo "#   $out"
	fi
}

# kt_same DESCRIPTION A B [LEN]: byte equality (of the first LEN bytes).
kt_same() {
	local out
	if cmp -s ${4:+-n "$4"} "$2" "$3" || out=$($KT_MODEL cmp "$2" "$3" ${4:+--len "$4"}); then
		kt_ok "$1"
	else
		kt_notok "$1"
		echo "$out" | sed 's/^/#   /'
	fi
}

# kt_replay_matches DESCRIPTION PMEM BACK MODEL RANGE: our replay over BACK == MODEL.
kt_replay_matches() {
	local out=$KT_WORK/logical.$$.img
	if kt_logical "$2" "$3" "$5" "$out"; then
		kt_same "$1" "$out" "$4" "$5"
	else
		kt_notok "$1"
	fi
	rm -f "$out" "$out".*
}

# kt_readback_matches DESCRIPTION D MODEL RANGE: the guest's read-back == MODEL.
kt_readback_matches() {
	local r
	r=$(kt_result "$2" readback)
	case "$r" in
	ok*) kt_same "$1" "$2/rb.img" "$3" "$4" ;;
	*)
		kt_notok "$1"
		echo "#   read-back failed in the guest: $r"
		kt_show_guest "$2"
		;;
	esac
}

kt_have_flush() {
	"$PCACHE" --help 2>&1 | grep -qE '^ +flush '
}

# kt_info_field PMEM FIELD
kt_info_field() {
	"$PCACHE" info --json "$1" 2>/dev/null | $KT_MODEL json-get - "0.$2"
}

# kt_ranges_within "S-E S-E ..." LO HI: every range inside [LO, HI).
kt_ranges_within() {
	local r
	for r in $1; do
		[ "${r%-*}" -ge "$2" ] && [ "${r#*-}" -le "$3" ] || return 1
	done
	return 0
}

# ---------------------------------------------------------------------------
# Images `pcache flush` left, for scenario h, which loads them all in one boot:
# KT_WORK/flushed/NAME/ holds pmem.img, back.img and info (`DATA_CRC MD5`: MD5 of
# the whole logical device before the flush, which the kernel must serve after it).

# kt_logical_md5 PMEM BACK: md5 of the whole logical device (BACK's size) our
# replay gives.
kt_logical_md5() {
	local out=$KT_WORK/lmd5.$$.img rc
	kt_logical "$1" "$2" "$(stat -c %s "$2")" "$out" >&2
	rc=$?
	[ $rc -eq 0 ] && md5sum <"$out" | cut -d' ' -f1
	rm -f "$out" "$out".*
	return $rc
}

# kt_flushed_keep NAME DATA_CRC MD5 PMEM BACK: copies a flushed image pair there.
kt_flushed_keep() {
	local F=$KT_WORK/flushed/$1
	mkdir -p "$F"
	kt_cp "$4" "$F/pmem.img" && kt_cp "$5" "$F/back.img" && echo "$2 $3" >"$F/info"
}
