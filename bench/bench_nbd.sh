#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# bench/bench_nbd.sh BUILD_DIR: the pcache nbdkit plugin against nbdkit's own `file`
# plugin serving the same backing file, with the same client (fio's nbd engine, one
# connection each), in the same run:
#   4K random read and write (queue depth 16), 1 MiB sequential read and write (depth 4).
# Prints MB/s and IOPS of both and the ratio pcache/file per workload (target >= 0.8).
#
# The cache image lives on /dev/shm when it has room (tmpfs: memory, the stand-in for
# pmem, where persisting is cheap), preallocated as a pmem namespace is;
# BENCH_NBD_CACHE_DIR chooses another directory (a cache file on a disk pays a disk
# flush, msync, per write).  The backing file is in BENCH_NBD_DIR (default $TMPDIR or
# /tmp).  The write workloads write less than the cache holds and start with nothing
# dirty, so they measure the cache, not the backing device's sustained speed.
# Each workload runs BENCH_NBD_REPEAT times (default 3) on each server, alternating, for
# at most BENCH_NBD_RUNTIME seconds (default 3); the best run of each counts (a shared
# machine is noisy).  BENCH_NBD_PLUGIN_ARGS: more plugin parameters (e.g. background=false:
# no writeback competing with the writes).  Exits 1 when a tool is missing or a run fails (not when a ratio is
# below the target).
set -u

O=${1:-build}
PCACHE="$O/pcache"
PLUGIN="$O/nbdkit-pcache-plugin.so"
RUNTIME=${BENCH_NBD_RUNTIME:-3}
REPEAT=${BENCH_NBD_REPEAT:-3}
BACKING_MB=256
CACHE_SIZE=1G

for t in nbdkit fio python3; do
	if ! command -v "$t" >/dev/null; then
		echo "bench_nbd: $t is not installed (Debian: apt-get install $t)" >&2
		exit 1
	fi
done
if ! fio --enghelp 2>/dev/null | grep -qw nbd; then
	echo "bench_nbd: this fio has no nbd engine" >&2
	exit 1
fi
if [ ! -x "$PCACHE" ] || [ ! -f "$PLUGIN" ]; then
	echo "bench_nbd: build $O first (pcache and nbdkit-pcache-plugin.so)" >&2
	exit 1
fi

work=$(mktemp -d "${BENCH_NBD_DIR:-${TMPDIR:-/tmp}}/bench_nbd.XXXXXX") || exit 1
cdir=${BENCH_NBD_CACHE_DIR:-}
if [ -z "$cdir" ]; then
	cdir=$work
	if [ -d /dev/shm ] && [ -w /dev/shm ] &&
		[ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -gt $((3 << 20)) ]; then
		cdir=/dev/shm
	fi
fi
cache=$(mktemp "$cdir/bench_nbd.cache.XXXXXX") || exit 1
back="$work/backing.img"
server_pids=""
URI_file=""
URI_pcache=""

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local pid
	for pid in $server_pids; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	rm -rf "$work"
	rm -f "$cache"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# start_server NAME ARGS...: nbdkit on a Unix socket in $work; sets URI_<NAME>.
start_server() {
	local name=$1 _ pid
	shift
	local sock="$work/$name.sock" pidf="$work/$name.pid"
	nbdkit -f -U "$sock" -P "$pidf" "$@" 2>"$work/$name.err" &
	pid=$!
	server_pids="$server_pids $pid"
	for _ in $(seq 600); do
		[ -s "$pidf" ] && break
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench_nbd: nbdkit $name did not start: $(cat "$work/$name.err")" >&2
			exit 1
		fi
		sleep 0.05
	done
	printf -v "URI_$name" '%s' "nbd+unix:///?socket=$sock"
}

# fio_run URI NAME RW BS DEPTH [IO_SIZE]: prints "MBps IOPS" of one fio job.
fio_run() {
	local uri=$1 name=$2 rw=$3 bs=$4 depth=$5 io=${6:-}
	local out="$work/fio.$name.json"
	local args=(--name="$name" --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs"
		--iodepth="$depth" --size="${BACKING_MB}M" --runtime="$RUNTIME"
		--randrepeat=1 --norandommap=1 --output-format=json --output="$out")
	if [ -n "$io" ]; then
		args+=(--io_size="$io")
	else
		args+=(--time_based=1)
	fi
	if ! fio "${args[@]}" >/dev/null 2>"$work/fio.err"; then
		echo "bench_nbd: fio $name failed: $(cat "$work/fio.err")" >&2
		exit 1
	fi
	# fio may print notes before the JSON
	python3 -c '
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text[text.index("{"):])["jobs"][0]
io = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.1f %.0f" % (io["bw_bytes"] / 1e6, io["iops"]))
' "$out"
}

# Before a pcache write run: the background writeback has emptied the cache of dirty
# data (at most 30 s), so that every run starts from the same state.
settle() {
	local _
	for _ in $(seq 300); do
		"$PCACHE" info --json "$cache" 2>/dev/null | python3 -c '
import json, sys
sys.exit(json.load(sys.stdin)[0]["dirty_bytes"] != 0)' 2>/dev/null && return 0
		sleep 0.1
	done
}

# best A B: the one of two "MBps IOPS" lines with the higher MB/s.
best() {
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
		print ((a == "" || y[1] + 0 > x[1] + 0) ? b : a) }'
}

declare -A R

# workload NAME RW BS DEPTH [IO_SIZE]: the same fio job on both servers, interleaved.
workload() {
	local w=$1 r _
	shift
	for _ in $(seq "$REPEAT"); do
		r=$(fio_run "$URI_file" "file-$w" "$@") || exit 1
		R[file.$w]=$(best "${R[file.$w]:-}" "$r")
		case "$1 ${BENCH_NBD_PLUGIN_ARGS:-}" in *background=false*) ;; *write*) settle ;; esac
		r=$(fio_run "$URI_pcache" "pcache-$w" "$@") || exit 1
		R[pcache.$w]=$(best "${R[pcache.$w]:-}" "$r")
	done
}

echo "# bench_nbd: backing $back (${BACKING_MB} MiB, random data), cache $cache" \
	"($CACHE_SIZE, preallocated); fio nbd engine, ${RUNTIME} s per run, best of $REPEAT" \
	"interleaved runs"
head -c "${BACKING_MB}M" /dev/urandom >"$back" || exit 1
sync "$back"
truncate -s "$CACHE_SIZE" "$cache" || exit 1
# as a pmem namespace: the first writes do not allocate file pages
fallocate -l "$CACHE_SIZE" "$cache" 2>/dev/null || true
"$PCACHE" format -y "$cache" >/dev/null || exit 1

start_server file file "$back"
# shellcheck disable=SC2086 # extra plugin parameters, split on blanks
start_server pcache "$PLUGIN" cache="$cache" backing="$back" ${BENCH_NBD_PLUGIN_ARGS:-}

# writes first: the pcache reads then find the data in the cache, as after real use
workload randwrite randwrite 4k 16 256M
workload seqwrite write 1M 4 192M
workload randread randread 4k 16
workload seqread read 1M 4

for pid in $server_pids; do
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
server_pids=""
if ! "$PCACHE" fsck -n "$cache" >/dev/null; then
	echo "bench_nbd: the cache is not clean after the runs" >&2
	exit 1
fi

printf '%-22s %12s %12s %12s %12s %8s\n' workload "file MB/s" "file IOPS" "pcache MB/s" \
	"pcache IOPS" ratio
low=0
for w in randread randwrite seqread seqwrite; do
	read -r fb fiops <<<"${R[file.$w]}"
	read -r pb piops <<<"${R[pcache.$w]}"
	ratio=$(awk -v p="$pb" -v f="$fb" 'BEGIN { printf "%.2f", (f > 0 ? p / f : 0) }')
	case $w in
	rand*) label="4K $w QD16" ;;
	*) label="1M $w QD4" ;;
	esac
	printf '%-22s %12s %12s %12s %12s %8s\n' "$label" "$fb" "$fiops" "$pb" "$piops" "$ratio"
	if awk -v r="$ratio" 'BEGIN { exit !(r < 0.8) }'; then
		low=$((low + 1))
	fi
done
echo "# ratio = pcache / file (target >= 0.8): $((4 - low))/4 workloads at or above"
exit 0
