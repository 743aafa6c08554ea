#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache serve and the nbdkit plugin: data written through NBD reads back (also after a
# restart), flushed writes survive kill -9, the kernel's dirty fixture reads as the kernel
# served it, ext4 images go in and out clean, concurrent connections, GC past the cache
# size, and clear errors for corrupt or busy caches.  A captive nbdkit; no root needed
# (the kernel mount through nbdfuse is skipped without it).

load helpers

PLUGIN="$PCACHE_BUILD/nbdkit-pcache-plugin.so"
NBDMODEL="$REPO_ROOT/tests/tools/nbdmodel.py"
MKIMAGE="$PCACHE_BUILD/tests/mkimage"
CORRUPT="$PCACHE_BUILD/tests/corrupt"

setup_file() {
	[ -x "$PCACHE" ] || die "$PCACHE is not built (run make, or set PCACHE)"
	[ -f "$PLUGIN" ] || die "$PLUGIN is not built (run make)"
}

# The python3 that has the libnbd bindings (Debian: python3-libnbd, for /usr/bin/python3).
nbd_python() {
	local p
	for p in /usr/bin/python3 python3; do
		if "$p" -c 'import nbd' 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

setup() {
	command -v nbdkit >/dev/null || skip "nbdkit is not installed (scripts/deps.sh installs it)"
	NBD_PY=$(nbd_python) || skip "python3-libnbd is not installed (scripts/deps.sh installs it)"
	SERVE_PID=""
	NSERVE=0
}

teardown() {
	if [ -n "${SERVE_PID:-}" ]; then
		kill -TERM "$SERVE_PID" 2>/dev/null || true
		wait "$SERVE_PID" 2>/dev/null || true
	fi
	if [ -n "${FUSE_DIR:-}" ] && mountpoint -q "$FUSE_DIR" 2>/dev/null; then
		umount "$FUSE_DIR" 2>/dev/null || fusermount3 -u "$FUSE_DIR" 2>/dev/null || true
	fi
}

nbdm() {
	"$NBD_PY" "$NBDMODEL" "$@"
}

need() {
	command -v "$1" >/dev/null || skip "$1 is not installed (${2:-scripts/deps.sh installs it})"
}

# new_pair [BACKING_SIZE] [FORMAT_OPTS...]: a formatted cache CACHE ($CACHE_SIZE, default
# 1 GiB), a zero BACK and its model MODEL (what the export must hold).
new_pair() {
	local size=${1:-64M}
	shift || true
	CACHE=$(mkimg cache.pmem "${CACHE_SIZE:-1G}")
	BACK=$(mkimg back.img "$size")
	MODEL=$(mkimg model.img "$size")
	"$PCACHE" format -y "$@" "$CACHE" >/dev/null || die "format failed"
}

# start_serve ARGS...: `pcache serve ARGS` in the background; URI once it serves.
# Returns 1 (SERVE_STATUS, SERVE_ERR set) when it exits without serving.
start_serve() {
	NSERVE=$((NSERVE + 1))
	local out="$BATS_TEST_TMPDIR/serve.$NSERVE" i
	SERVE_ERR="$out.err"
	SERVE_STATUS=""
	"$PCACHE" serve "$@" >"$out.uri" 2>"$SERVE_ERR" &
	SERVE_PID=$!
	for i in $(seq 1200); do
		if [ -s "$out.uri" ]; then
			URI=$(head -n 1 "$out.uri")
			return 0
		fi
		if ! kill -0 "$SERVE_PID" 2>/dev/null; then
			SERVE_STATUS=0
			wait "$SERVE_PID" || SERVE_STATUS=$?
			SERVE_PID=""
			return 1
		fi
		sleep 0.05
	done
	die "pcache serve did not start within 60 s: $(cat "$SERVE_ERR")"
}

# stop_serve [SIGNAL]: stops the server, sets SERVE_STATUS.
stop_serve() {
	kill "-${1:-TERM}" "$SERVE_PID"
	SERVE_STATUS=0
	wait "$SERVE_PID" || SERVE_STATUS=$?
	SERVE_PID=""
}

# The pid of the nbdkit behind the Unix socket of URI (its pid file is beside the socket).
nbdkit_pid() {
	local sock=${URI#*socket=}
	cat "$(dirname "$sock")/nbdkit.pid"
}

@test "serve: random writes read back, and again after a restart; fsck clean, flush = model" {
	new_pair 64M
	start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	[[ "$URI" == "nbd+unix:///?socket=/"*"/nbd.sock" ]] || die "URI: $URI"
	run --separate-stderr nbdm write "$URI" "$MODEL" --seed 7 --count 400 --flush-every 64 \
		--fua-pct 10 --depth 8
	assert_status 0
	run --separate-stderr nbdm verify "$URI" "$MODEL"
	assert_status 0
	stop_serve TERM
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS: $(cat "$SERVE_ERR")"
	assert_contains "$(cat "$SERVE_ERR")" "closed cleanly"
	# nothing left behind in the private directory
	[ ! -e "${URI#*socket=}" ] || die "socket left behind"
	[ ! -e "$(dirname "${URI#*socket=}")" ] || die "directory left behind"
	start_serve "$CACHE" "$BACK" || die "restart failed: $(cat "$SERVE_ERR")"
	run --separate-stderr nbdm verify "$URI" "$MODEL"
	assert_status 0
	stop_serve INT
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS after SIGINT"
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	cmp "$BACK" "$MODEL" || die "the backing device differs from the model after flush"
}

@test "kill -9 after a FLUSH: every flushed write survives, unflushed ones are all or nothing" {
	new_pair 64M
	start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	# phase 1: flushed writes in the first half
	run --separate-stderr nbdm write "$URI" "$MODEL" --seed 11 --count 300 --region 0:32M \
		--depth 4
	assert_status 0
	cp "$MODEL" "$BATS_TEST_TMPDIR/before.img"
	# phase 2: sector-disjoint writes over the whole export, never flushed
	run --separate-stderr nbdm write "$URI" "$MODEL" --seed 12 --count 200 --disjoint \
		--max-len 65536 --no-final-flush --depth 8
	assert_status 0
	kill -9 "$(nbdkit_pid)"
	SERVE_STATUS=0
	wait "$SERVE_PID" || SERVE_STATUS=$?
	SERVE_PID=""
	[ "$SERVE_STATUS" -eq 8 ] || die "serve exited $SERVE_STATUS after nbdkit was killed"
	assert_contains "$(cat "$SERVE_ERR")" "killed by signal 9"
	# the crashed image: what the kernel would load, replayable
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
	run --separate-stderr pcache replay "$CACHE"
	assert_status 0
	start_serve "$CACHE" "$BACK" || die "serve after the crash failed: $(cat "$SERVE_ERR")"
	run --separate-stderr nbdm crashcheck "$URI" "$BATS_TEST_TMPDIR/before.img" "$MODEL"
	assert_status 0
	nbdcopy "$URI" "$BATS_TEST_TMPDIR/served.img" || die "nbdcopy failed"
	stop_serve
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS"
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	cmp "$BACK" "$BATS_TEST_TMPDIR/served.img" || die "flush left the backing unlike what was served"
}

@test "the kernel's dirty fixture, served read-only, reads as the kernel served it" {
	need nbdcopy libnbd-bin
	local c b
	c=$(fixture "$FX_DIRTY")
	b=$(fixture kernel-dirty-300w.back)
	start_serve --readonly "$c" "$b" || die "serve failed: $(cat "$SERVE_ERR")"
	run --separate-stderr bash -c 'nbdcopy "$1" - | md5sum' _ "$URI"
	assert_status 0
	[ "${output%% *}" = "$MD5_DIRTY_LOGICAL" ] || die "md5 ${output%% *}, the kernel served $MD5_DIRTY_LOGICAL"
	truncate -s 2G "$BATS_TEST_TMPDIR/m"
	run --separate-stderr nbdm write "$URI" "$BATS_TEST_TMPDIR/m" --count 1
	[ "$status" -eq 1 ] || die "a write to the read-only export: status $status"
	assert_contains "$stderr" "nbdmodel: write:"
	stop_serve
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS"
}

@test "the kernel's dirty fixture served writable: written back in the background as the kernel would" {
	local c b
	c=$(fixture_copy "$FX_DIRTY") || return 1
	b=$(fixture_copy kernel-dirty-300w.back) || return 1
	start_serve "$c" "$b" || die "serve failed: $(cat "$SERVE_ERR")"
	# the background writeback empties the dirty region within seconds
	for _ in $(seq 100); do
		run --separate-stderr pcache info "$c"
		[ "$(field dirty_bytes)" = "0 bytes" ] && break
		sleep 0.1
	done
	assert_field dirty_bytes "0 bytes"
	stop_serve
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS"
	[ "$(md5 "$b")" = "$MD5_DIRTY_LOGICAL" ] || die "backing md5 $(md5 "$b") after writeback"
	run --separate-stderr pcache fsck -n "$c"
	assert_status 0
}

@test "ext4: an image copied in and out with nbdcopy is clean and its files match" {
	need nbdcopy libnbd-bin
	need mkfs.ext4 "e2fsprogs"
	need debugfs "e2fsprogs"
	new_pair 64M
	local src="$BATS_TEST_TMPDIR/src" img="$BATS_TEST_TMPDIR/fs.img" out="$BATS_TEST_TMPDIR/out.img"
	mkdir -p "$src/dir"
	head -c 3000000 /dev/urandom >"$src/a.bin"
	head -c 70000 /dev/urandom >"$src/dir/b.bin"
	echo "hello pcache" >"$src/dir/c.txt"
	truncate -s 64M "$img"
	mkfs.ext4 -q -F -d "$src" "$img" || die "mkfs.ext4 -d failed"
	start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	nbdcopy "$img" "$URI" || die "nbdcopy in failed"
	stop_serve
	start_serve "$CACHE" "$BACK" || die "restart failed: $(cat "$SERVE_ERR")"
	nbdcopy "$URI" "$out" || die "nbdcopy out failed"
	stop_serve
	run fsck.ext4 -fn "$out"
	assert_status 0
	for f in a.bin dir/b.bin dir/c.txt; do
		[ "$(debugfs -R "cat /$f" "$out" 2>/dev/null | md5sum)" = "$(md5sum <"$src/$f")" ] ||
			die "$f differs after the round trip"
	done
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
}

@test "ext4 through nbdfuse: mkfs, debugfs writes, fsck clean; mounted by the kernel when root" {
	need nbdfuse libnbd-bin
	need mkfs.ext4 "e2fsprogs"
	[ -c /dev/fuse ] || skip "/dev/fuse is not available"
	[ "$(id -u)" -eq 0 ] || command -v fusermount3 >/dev/null ||
		skip "nbdfuse needs root or fusermount3 (fuse3) to mount"
	new_pair 64M
	local src="$BATS_TEST_TMPDIR/src" mnt="$BATS_TEST_TMPDIR/mnt" i dev
	mkdir -p "$src"
	head -c 2000000 /dev/urandom >"$src/a.bin"
	echo "through fuse" >"$src/c.txt"
	start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	FUSE_DIR="$BATS_TEST_TMPDIR/fuse"
	mkdir -p "$FUSE_DIR"
	nbdfuse "$FUSE_DIR" "$URI" 3>&- &
	for i in $(seq 100); do
		[ -e "$FUSE_DIR/nbd" ] && break
		sleep 0.05
	done
	dev="$FUSE_DIR/nbd"
	[ -e "$dev" ] || skip "nbdfuse could not mount here"
	[ "$(stat -c %s "$dev")" -eq $((64 << 20)) ] || die "nbdfuse file size $(stat -c %s "$dev")"
	mkfs.ext4 -q -F -d "$src" "$dev" || die "mkfs.ext4 on the export failed"
	run fsck.ext4 -fn "$dev"
	assert_status 0
	[ "$(debugfs -R "cat /a.bin" "$dev" 2>/dev/null | md5sum)" = "$(md5sum <"$src/a.bin")" ] ||
		die "a.bin differs"
	local mounted=""
	if [ "$(id -u)" -eq 0 ] && mkdir -p "$mnt" && mount -o loop "$dev" "$mnt" 2>/dev/null; then
		mounted=1
		cp "$src/a.bin" "$mnt/copy.bin"
		mkdir "$mnt/d"
		echo more >"$mnt/d/e.txt"
		umount "$mnt"
	fi
	run fsck.ext4 -fn "$dev"
	assert_status 0
	if [ -n "$mounted" ]; then
		[ "$(debugfs -R "cat /copy.bin" "$dev" 2>/dev/null | md5sum)" = "$(md5sum <"$src/a.bin")" ] ||
			die "copy.bin written through the kernel mount differs"
	fi
	umount "$FUSE_DIR" 2>/dev/null || fusermount3 -u "$FUSE_DIR"
	wait %nbdfuse 2>/dev/null || true
	FUSE_DIR=""
	stop_serve
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS"
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
	[ -n "$mounted" ] || skip "the kernel mount part needs root and loop devices (the rest passed)"
}

@test "concurrency: four connections with requests in flight, disjoint ranges, match the model" {
	new_pair 64M
	start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	run --separate-stderr nbdm concurrent "$URI" "$MODEL" --conns 4 --count 250 --depth 8 --seed 3
	assert_status 0
	run --separate-stderr nbdm verify "$URI" "$MODEL"
	assert_status 0
	stop_serve
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS"
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	cmp "$BACK" "$MODEL" || die "the backing device differs from the model after flush"
}

@test "writing more than the cache holds: writeback and GC keep it going (gc_percent 10)" {
	need nbdcopy libnbd-bin
	CACHE_SIZE=640M new_pair 64M --gc-percent 10
	local data="$BATS_TEST_TMPDIR/data.img" i
	head -c 64M /dev/urandom >"$data"
	start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	# 14 x 64 MiB through a 640 MiB cache (38 segments)
	for i in $(seq 14); do
		nbdcopy "$data" "$URI" || die "nbdcopy $i failed"
	done
	cmp <(nbdcopy "$URI" -) "$data" || die "the export differs from what was written"
	stop_serve
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS"
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	cmp "$BACK" "$data" || die "the backing device differs after flush"
}

@test "unaligned requests from a non-strict client are read-modify-written" {
	new_pair 64M
	start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	run --separate-stderr nbdm unaligned "$URI" "$MODEL" --count 200 --seed 5
	assert_status 0
	run --separate-stderr nbdm verify "$URI" "$MODEL"
	assert_status 0
	stop_serve
}

@test "nbdkit with the plugin directly: flags, size, FUA and flush, clean shutdown" {
	need nbdinfo libnbd-bin
	new_pair 64M
	local sock="$BATS_TEST_TMPDIR/direct.sock" pidf="$BATS_TEST_TMPDIR/direct.pid" i
	nbdkit -f -U "$sock" -P "$pidf" "$PLUGIN" cache="$CACHE" backing="$BACK" \
		2>"$BATS_TEST_TMPDIR/nbdkit.err" &
	SERVE_PID=$!
	for i in $(seq 200); do
		[ -s "$pidf" ] && break
		sleep 0.05
	done
	URI="nbd+unix:///?socket=$sock"
	nbdinfo --json "$URI" >"$BATS_TEST_TMPDIR/info.json" || die "nbdinfo failed"
	pyjson "$BATS_TEST_TMPDIR/info.json" '
e = d["exports"][0]
want = {"export-size": 64 << 20, "can_fua": True, "can_flush": True, "can_multi_conn": True,
        "can_trim": False, "can_fast_zero": False, "is_read_only": False,
        "block_size_minimum": 512}
bad = {k: (e.get(k), v) for k, v in want.items() if e.get(k) != v}
assert not bad, bad
' || die "export flags: $(cat "$BATS_TEST_TMPDIR/info.json")"
	run --separate-stderr nbdm write "$URI" "$MODEL" --count 100 --fua-pct 100 --no-final-flush
	assert_status 0
	run --separate-stderr nbdm write "$URI" "$MODEL" --count 100 --seed 2
	assert_status 0
	stop_serve TERM
	[ "$SERVE_STATUS" -eq 0 ] || die "nbdkit exited $SERVE_STATUS: $(cat "$BATS_TEST_TMPDIR/nbdkit.err")"
	run --separate-stderr pcache flush "$CACHE" "$BACK"
	assert_status 0
	cmp "$BACK" "$MODEL" || die "the backing device differs from the model"
	# magic parameter: the cache given first without cache=; readonly=true
	run --separate-stderr nbdkit -U - "$PLUGIN" "$CACHE" backing="$BACK" readonly=true \
		--run 'nbdinfo --json "$uri"'
	assert_status 0
	assert_contains "$output" '"is_read_only": true'
}

@test "serve --port: TCP on the loopback address; --gc-percent is stored as dmsetup message would" {
	need nbdinfo libnbd-bin
	new_pair 64M
	local port
	port=$("$NBD_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	start_serve --port "$port" --gc-percent 33 "$CACHE" "$BACK" ||
		die "serve failed: $(cat "$SERVE_ERR")"
	[ "$URI" = "nbd://127.0.0.1:$port" ] || die "URI: $URI"
	run --separate-stderr nbdinfo --size "$URI"
	assert_status 0
	[ "$output" = $((64 << 20)) ] || die "size $output"
	stop_serve
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS"
	run --separate-stderr pcache info "$CACHE"
	assert_field gc_percent 33
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
}

@test "serve --socket PATH: the URI names it; a live socket is refused, a stale one replaced" {
	new_pair 64M
	local sock="$BATS_TEST_TMPDIR/my sock"
	start_serve --socket "$sock" "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	[ "$URI" = "nbd+unix:///?socket=${sock// /%20}" ] || die "URI: $URI"
	local first=$SERVE_PID
	start_serve --socket "$sock" "$CACHE" "$BACK" && die "a second server on the same socket started"
	[ "$SERVE_STATUS" -eq 8 ] || die "second serve exited $SERVE_STATUS"
	assert_contains "$(cat "$SERVE_ERR")" "in use"
	SERVE_PID=$first
	stop_serve
	[ ! -e "$sock" ] || die "socket left behind"
	# a socket nobody listens on any more
	"$NBD_PY" -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$sock"
	start_serve --socket "$sock" "$CACHE" "$BACK" || die "serve over a stale socket failed: $(cat "$SERVE_ERR")"
	stop_serve
}

@test "a corrupt cache: nbdkit does not start, with the engine's message" {
	[ -x "$MKIMAGE" ] && [ -x "$CORRUPT" ] || die "mkimage/corrupt are not built"
	BACK=$(mkimg back.img 64M)
	local img="$BATS_TEST_TMPDIR/w.pmem" bad
	"$MKIMAGE" --size 1G --writes 200 --quiet "$img" || die "mkimage failed"
	# the superblock
	bad="$BATS_TEST_TMPDIR/sb.pmem"
	cp --sparse=always "$img" "$bad"
	"$CORRUPT" "$bad" sb-crc >/dev/null || die "corrupt failed"
	start_serve "$bad" "$BACK" && die "served a cache with a bad superblock"
	[ "$SERVE_STATUS" -eq 8 ] || die "serve exited $SERVE_STATUS"
	[ "$(cat "$SERVE_ERR")" = "pcache serve: $bad: corrupt pcache superblock: checksum mismatch
pcache serve: hint: run 'pcache fsck -n $bad' for details" ] || die "error: $(cat "$SERVE_ERR")"
	# a key the kernel's replay refuses
	bad="$BATS_TEST_TMPDIR/key.pmem"
	cp --sparse=always "$img" "$bad"
	"$CORRUPT" "$bad" key-seg-range 0 >/dev/null || die "corrupt failed"
	start_serve "$bad" "$BACK" && die "served a cache the kernel refuses"
	[ "$SERVE_STATUS" -eq 8 ] || die "serve exited $SERVE_STATUS"
	assert_contains "$(cat "$SERVE_ERR")" "pcache serve: $bad: the kernel would refuse to load the cache"
	assert_contains "$(cat "$SERVE_ERR")" "pcache fsck -n"
	# nbdkit with the plugin directly: exit 1, the same message
	run --separate-stderr nbdkit -f -U "$BATS_TEST_TMPDIR/x.sock" "$PLUGIN" cache="$bad" backing="$BACK"
	[ "$status" -eq 1 ] || die "nbdkit exited $status"
	assert_contains "$stderr" "the kernel would refuse to load the cache"
}

@test "a busy cache or backing device: a clear error naming the holder" {
	new_pair 64M
	# flock itself holds the lock (-o: not the command it runs)
	flock -o -x "$CACHE" sleep 10 3>&- &
	local holder=$!
	sleep 0.3
	start_serve "$CACHE" "$BACK" && die "served a cache another process holds"
	kill "$holder"
	wait "$holder" || true
	[ "$SERVE_STATUS" -eq 8 ] || die "serve exited $SERVE_STATUS"
	assert_contains "$(cat "$SERVE_ERR")" "pcache serve: $CACHE: cannot open: in use by process flock"
	# two servers on one cache
	start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	local first=$SERVE_PID
	start_serve "$CACHE" "$BACK" && die "a second server on the same cache started"
	[ "$SERVE_STATUS" -eq 8 ] || die "second serve exited $SERVE_STATUS"
	assert_contains "$(cat "$SERVE_ERR")" "cannot open: in use by process"
	SERVE_PID=$first
	stop_serve
}

@test "serve: usage errors and missing programs" {
	new_pair 64M
	run --separate-stderr pcache serve "$CACHE"
	assert_status 16
	run --separate-stderr pcache serve --socket /tmp/x --port 1 "$CACHE" "$BACK"
	assert_status 16
	run --separate-stderr pcache serve --port 70000 "$CACHE" "$BACK"
	assert_status 16
	run --separate-stderr pcache serve --readonly --gc-percent 5 "$CACHE" "$BACK"
	assert_status 16
	run --separate-stderr pcache serve "$CACHE" "$BATS_TEST_TMPDIR/nope"
	assert_status 8
	assert_error_line serve "$BATS_TEST_TMPDIR/nope"
	run --separate-stderr env PCACHE_NBDKIT=/nonexistent/nbdkit "$PCACHE" serve "$CACHE" "$BACK"
	assert_status 8
	assert_contains "$stderr" "cannot run /nonexistent/nbdkit"
	run --separate-stderr env PCACHE_NBDKIT_PLUGIN=/nonexistent/p.so "$PCACHE" serve "$CACHE" "$BACK"
	assert_status 8
	assert_contains "$stderr" "cannot open plugin"
	assert_no_stdout
}

@test "serve: clients killed with reads in flight, then two TERMs: nothing printed, clean stop" {
	need nbdcopy "libnbd-bin"
	new_pair 512M
	start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	local i
	for i in 1 2 3; do
		timeout -s KILL 0.3 nbdcopy "$URI" null: 2>/dev/null || true
	done
	# still serving after the clients went away
	nbdcopy "$URI" null: || die "serve stopped serving: $(cat "$SERVE_ERR")"
	kill -TERM "$SERVE_PID"
	sleep 0.05
	kill -TERM "$SERVE_PID" 2>/dev/null || true
	SERVE_STATUS=0
	wait "$SERVE_PID" || SERVE_STATUS=$?
	SERVE_PID=""
	[ "$SERVE_STATUS" -eq 0 ] || die "exit $SERVE_STATUS: $(cat "$SERVE_ERR")"
	run --separate-stderr cat "$SERVE_ERR"
	[ "${#lines[@]}" -eq 2 ] || die "stderr: $output"
	[[ "${lines[1]}" == *": stopped; the cache was closed cleanly" ]] || die "stderr: $output"
	run pcache fsck -n "$CACHE"
	assert_status 0
}

# stopped_cleanly: the last server exited 0 and said exactly that it served and stopped.
stopped_cleanly() {
	[ "$SERVE_STATUS" -eq 0 ] || die "exit $SERVE_STATUS: $(cat "$SERVE_ERR")"
	[ "$(cat "$SERVE_ERR")" = "$CACHE: serving $BACK at $URI; stop with Ctrl-C or SIGTERM
$CACHE: stopped; the cache was closed cleanly" ] || die "stderr: $(cat "$SERVE_ERR")"
}

@test "serve: SIGINT twice, SIGHUP, TERM then INT, ^C to its process group twice: exit 0, a clean stop" {
	new_pair 64M
	local sigs s
	for sigs in "INT INT" "HUP" "TERM INT"; do
		start_serve "$CACHE" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
		for s in $sigs; do
			kill "-$s" "$SERVE_PID" 2>/dev/null || true
			sleep 0.02
		done
		SERVE_STATUS=0
		wait "$SERVE_PID" || SERVE_STATUS=$?
		SERVE_PID=""
		stopped_cleanly || die "signals $sigs"
	done
	# a terminal's ^C reaches every process of the foreground group, twice
	NSERVE=$((NSERVE + 1))
	SERVE_ERR="$BATS_TEST_TMPDIR/serve.$NSERVE.err"
	setsid "$PCACHE" serve "$CACHE" "$BACK" >"$BATS_TEST_TMPDIR/pg.uri" 2>"$SERVE_ERR" &
	SERVE_PID=$!
	for _ in $(seq 600); do
		[ -s "$BATS_TEST_TMPDIR/pg.uri" ] && break
		sleep 0.05
	done
	URI=$(head -n 1 "$BATS_TEST_TMPDIR/pg.uri")
	[ -n "$URI" ] || die "serve did not start: $(cat "$SERVE_ERR")"
	kill -INT -- "-$SERVE_PID"
	sleep 0.02
	kill -INT -- "-$SERVE_PID" 2>/dev/null || true
	SERVE_STATUS=0
	wait "$SERVE_PID" || SERVE_STATUS=$?
	SERVE_PID=""
	stopped_cleanly
	run --separate-stderr pcache fsck -n "$CACHE"
	assert_status 0
}

# ---- caches the kernel loads although they are damaged (issue 18 item 5) ----

CONTENT="$PCACHE_BUILD/tests/content"

# damaged_base: LOG (300 writes, a FLUSH every 10: 30 ksets) and BACK (64 MiB of random
# bytes), and BASE_VIEW: the logical device the undamaged cache serves.
damaged_base() {
	[ -x "$MKIMAGE" ] && [ -x "$CORRUPT" ] && [ -x "$CONTENT" ] || die "mkimage/corrupt/content are not built"
	LOG="$BATS_TEST_TMPDIR/log.pmem"
	BACK="$BATS_TEST_TMPDIR/back.img"
	BASE_VIEW="$BATS_TEST_TMPDIR/base.view"
	"$MKIMAGE" --size 1G --writes 300 --flush-every 10 --quiet "$@" "$LOG" || die "mkimage failed"
	head -c 64M /dev/urandom >"$BACK"
	"$CONTENT" --image "$BACK" "$BASE_VIEW" "$LOG" >/dev/null || die "content failed"
}

# damaged CASE [ARGS...]: IMG, a copy of LOG with the corruption applied, and VIEW: the
# logical device the kernel serves after loading it (its replay over BACK).
damaged() {
	IMG="$BATS_TEST_TMPDIR/$1.pmem"
	VIEW="$BATS_TEST_TMPDIR/$1.view"
	cp --sparse=always "$LOG" "$IMG"
	"$CORRUPT" "$IMG" "$@" >/dev/null || die "corrupt $* failed"
	run --separate-stderr "$CONTENT" --image "$BACK" "$VIEW" "$IMG"
	assert_status 0
	[ "$output" != refused ] || die "our replay refuses $1"
}

# serve_damaged_ro WHY: IMG is served read-only with a reason that starts with WHY in one
# line; every byte read is VIEW; writes are refused; neither device changes.
serve_damaged_ro() {
	local sums
	sums=$(md5sum <"$IMG")$(md5sum <"$BACK")
	start_serve "$IMG" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	run cat "$SERVE_ERR"
	[[ "${lines[0]}" == "pcache serve: $IMG: served read-only: $1"*"; 'pcache fsck -y' repairs it" ]] ||
		die "stderr: $output"
	assert_contains "${lines[1]}" "$IMG: serving $BACK read-only at $URI"
	run --separate-stderr nbdm verify "$URI" "$VIEW"
	assert_status 0
	run --separate-stderr nbdm write "$URI" "$BATS_TEST_TMPDIR/m" --count 1
	[ "$status" -eq 1 ] || die "a write to the read-only export: status $status"
	stop_serve
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS"
	[ "$(md5sum <"$IMG")$(md5sum <"$BACK")" = "$sums" ] || die "a device was written"
}

@test "damaged tails the kernel loads (TL3, TL4): served read-only, as the kernel serves them" {
	local tl3="key_tail does not point at a kset: the log is empty for the kernel (writes would overwrite the ksets there, which fsck can recover)"
	local tl4="dirty_tail is not on the log between key_tail and key_head (the kernel's writeback would copy the wrong data back and its GC would reclaim data never written back)"
	local c
	damaged_base
	truncate -s 64M "$BATS_TEST_TMPDIR/m"
	for c in kset-first-crc key-tail-past-dirty dirty-tail-past-head dirty-tail-off-log; do
		damaged "$c"
		# the library's verdict: the kernel loads each of them
		run --separate-stderr pcache fsck -n --backing "$BACK" "$IMG"
		assert_status 4
		assert_contains "$output" "; the kernel would load this cache"
		case $c in
		kset-first-crc)
			# the kernel's replay finds no kset at key_tail: the backing device alone
			cmp -s "$VIEW" "$BACK" || die "$c: the kernel's view is not the backing device"
			serve_damaged_ro "$tl3" ;;
		key-tail-past-dirty)
			# replay from key_tail leaves out the first two ksets
			! cmp -s "$VIEW" "$BASE_VIEW" && ! cmp -s "$VIEW" "$BACK" ||
				die "$c: the kernel's view is the undamaged one or the backing device"
			serve_damaged_ro "$tl4" ;;
		*)
			cmp -s "$VIEW" "$BASE_VIEW" || die "$c: the kernel's view changed"
			serve_damaged_ro "$tl4" ;;
		esac
	done
}

@test "other damage the kernel loads: read-only where its writes would do harm, else writable" {
	local c spec
	damaged_base
	truncate -s 64M "$BATS_TEST_TMPDIR/m"
	for spec in "kset-crc|the log ends at a corrupt kset, and valid ksets follow it (writes" \
		"chain-duplicate|two cache segments map to one device segment (writes" \
		"gen-both-crc|no valid gen replica: gen 0 assumed, stale keys revive (once GC" \
		"key-in-log-segment|a live key points into a segment holding the log (new ksets" \
		"key-gen-ahead|key seg_gen ahead of its segment's gen (once GC"; do
		c=${spec%%|*}
		damaged "$c"
		serve_damaged_ro "${spec#*|}"
	done
	# what the kernel gets right after loading (or what the engine does better, §14)
	for c in key-stale key-alias; do
		damaged "$c"
		start_serve "$IMG" "$BACK" || die "$c: serve failed: $(cat "$SERVE_ERR")"
		run cat "$SERVE_ERR"
		[ "${#lines[@]}" -eq 1 ] && [[ "${lines[0]}" == "$IMG: serving $BACK at $URI;"* ]] ||
			die "$c: stderr: $output"
		run --separate-stderr nbdm verify "$URI" "$VIEW"
		assert_status 0
		stop_serve
		[ "$SERVE_STATUS" -eq 0 ] || die "$c: serve exited $SERVE_STATUS"
	done
}

@test "a damaged cache the kernel loads: --readonly is simply read-only; --gc-percent is refused" {
	damaged_base
	damaged dirty-tail-off-log
	local sum
	sum=$(md5sum <"$IMG")
	start_serve --readonly "$IMG" "$BACK" || die "serve failed: $(cat "$SERVE_ERR")"
	run cat "$SERVE_ERR"
	[ "${#lines[@]}" -eq 1 ] || die "stderr: $output"
	assert_contains "${lines[0]}" "$IMG: serving $BACK read-only at $URI"
	run --separate-stderr nbdm verify "$URI" "$VIEW"
	assert_status 0
	stop_serve
	[ "$SERVE_STATUS" -eq 0 ] || die "serve exited $SERVE_STATUS"
	# gc_percent is written to cache_info: not on a cache served read-only
	start_serve --gc-percent 20 "$IMG" "$BACK" && die "served after --gc-percent"
	[ "$SERVE_STATUS" -eq 8 ] || die "serve exited $SERVE_STATUS"
	assert_contains "$(cat "$SERVE_ERR")" "pcache serve: $IMG: cannot set gc_percent 20: the cache is served read-only"
	[ "$(md5sum <"$IMG")" = "$sum" ] || die "the cache was written"
}

@test "caches the kernel refuses or re-initialises: refused with the check's reason and fsck's hint" {
	damaged_base --data-crc
	local c want
	for c in key-off-huge key-data-crc ci-both-crc; do
		IMG="$BATS_TEST_TMPDIR/$c.pmem"
		cp --sparse=always "$LOG" "$IMG"
		"$CORRUPT" "$IMG" "$c" >/dev/null || die "corrupt $c failed"
		case $c in
		key-off-huge)
			want="the kernel would refuse to load the cache: key length 0 or past the backing device"
			# our replay over this backing device refuses it
			run "$CONTENT" --image "$BACK" "$BATS_TEST_TMPDIR/v" "$IMG"
			[ "$output" = refused ] || die "content: $output" ;;
		key-data-crc)
			want="the kernel would refuse to load the cache: key data checksum mismatch"
			run --separate-stderr pcache fsck -n "$IMG"
			assert_contains "$output" "; the kernel would refuse to load this cache" ;;
		ci-both-crc)
			want="the kernel would re-initialise the cache, losing all cached data: no valid cache_info replica"
			run --separate-stderr pcache fsck -n "$IMG"
			assert_contains "$output" "; the kernel would re-initialise this cache" ;;
		esac
		start_serve "$IMG" "$BACK" && die "$c: served a cache the kernel does not load"
		[ "$SERVE_STATUS" -eq 8 ] || die "$c: serve exited $SERVE_STATUS"
		run cat "$SERVE_ERR"
		[ "${lines[0]}" = "pcache serve: $IMG: $want" ] || die "$c: stderr: $output"
		[ "${lines[1]}" = "pcache serve: hint: run 'pcache fsck -n $IMG' for details" ] ||
			die "$c: stderr: $output"
	done
}
