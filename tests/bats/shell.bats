#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# pcache shell: the interactive shell in a tmux pane (typed commands, tab completion,
# history), -c and standard input on the kernel fixtures, set with -w and its undo file.

load helpers

# Device offset of the data area of cache segment 1 in the kernel fixtures (chain 0, 1, ...).
SEG1_DATA=$((20480 + 16777216 + 12288))

# od_hex FILE OFFSET LEN: the bytes as "xx xx ..." on one line.
od_hex() {
	od -An -v -tx1 -j "$2" -N "$3" "$1" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'
}

# shell_hex: the hex bytes of the dump lines of $output, as "xx xx ..." on one line.
shell_hex() {
	grep -E '^[0-9a-f]{10} ' <<<"$output" | cut -c12-60 | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'
}

# ---- tmux ----
TMUX_SOCK=

# tmux_start CMD...: runs CMD in a new 200x60 tmux pane (a private server).
tmux_start() {
	command -v tmux >/dev/null || die "tmux is not installed (scripts/deps.sh installs it)"
	TMUX_SOCK="$BATS_TEST_TMPDIR/tmux.sock"
	tmux -S "$TMUX_SOCK" -f /dev/null new-session -d -x 200 -y 60 "$(printf '%q ' "$@")"
}

tmux_screen() {
	tmux -S "$TMUX_SOCK" capture-pane -p -J -S - 2>/dev/null
}

# tmux_wait REGEX: waits (up to 10 s) until the pane shows a line matching REGEX.
tmux_wait() {
	local i screen
	for ((i = 0; i < 100; i++)); do
		screen=$(tmux_screen) || true
		grep -qE -- "$1" <<<"$screen" && return 0
		sleep 0.1
	done
	die "the pane never showed /$1/; it shows:
$screen"
}

# tmux_type KEYS...: tmux send-keys (use Enter, Tab, C-c for those keys).
tmux_type() {
	tmux -S "$TMUX_SOCK" send-keys "$@"
}

# tmux_gone: waits until the pane's program exited (the server goes with it).
tmux_gone() {
	local i
	for ((i = 0; i < 100; i++)); do
		tmux -S "$TMUX_SOCK" has-session 2>/dev/null || return 0
		sleep 0.1
	done
	die "the shell did not exit; it shows:
$(tmux_screen)"
}

teardown() {
	if [ -n "$TMUX_SOCK" ]; then
		tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true
	fi
}

@test "tmux: the shell answers typed commands, completes names, keeps history, quits" {
	fx=$(fixture "$FX_DIRTY")
	home="$BATS_TEST_TMPDIR/home"
	mkdir -p "$home"
	tmux_start env HOME="$home" TERM=xterm "$PCACHE" shell "$fx"
	tmux_wait '^pcache> $'
	assert_contains "$(tmux_screen)" "pcache shell on $fx: read-only, 1022.00 MiB (1071644672 bytes)"
	tmux_type sb Enter
	tmux_wait '^seg_num +63$'
	tmux_wait '^magic +0x65b05efa96c596ef \(pcache\)$'
	# command name completion: ca<Tab> -> cache_info
	tmux_type ca Tab
	tmux_wait '^pcache> cache_info $'
	tmux_type Enter
	tmux_wait '^  gc_percent 70$'
	tmux_wait '^n_segs +63$'
	# record and field completion: set c<Tab> -> cache_info, gc<Tab> -> gc_percent
	tmux_type 'set c' Tab
	tmux_wait '^pcache> set cache_info $'
	tmux_type 'gc' Tab
	tmux_wait '^pcache> set cache_info gc_percent $'
	# Ctrl-C drops the line; the read-only shell would have refused it anyway
	tmux_type C-c
	tmux_wait '^pcache> set cache_info gc_percent \^C$'
	tmux_type 'map 31920128' Enter
	tmux_wait '^31920128: extent off 31920128 len 4096 cache_seg 1 seg_off 0 '
	tmux_type 'kset 0:0' Enter
	tmux_wait '^  key 127 '
	tmux_type 'bogus' Enter
	tmux_wait "^pcache shell: bogus: not a command \('help' lists them\)$"
	tmux_type quit Enter
	tmux_gone
	hist="$home/.pcache_history"
	[ -f "$hist" ] || die "no history file $hist"
	for cmd in sb cache_info 'map 31920128' 'kset 0:0' quit; do
		grep -qxF "$cmd" "$hist" || die "'$cmd' not in the history: $(cat "$hist")"
	done
	! grep -q 'set cache_info' "$hist" || die "the line dropped by Ctrl-C is in the history"
}

@test "tmux: history is read back by the next session" {
	fx=$(fixture "$FX_FRESH_NOCRC")
	home="$BATS_TEST_TMPDIR/home"
	mkdir -p "$home"
	printf 'ctrl\n' >"$home/.pcache_history"
	tmux_start env HOME="$home" TERM=xterm "$PCACHE" shell "$fx"
	tmux_wait '^pcache> $'
	tmux_type Up
	tmux_wait '^pcache> ctrl$'
	tmux_type Enter
	tmux_wait '^key_tail +replica 0 @16384 .* picked$'
	tmux_type C-d
	tmux_gone
}

@test "tmux: with -w the prompt says so and set changes the device" {
	img=$(fixture_copy "$FX_FRESH_NOCRC")
	home="$BATS_TEST_TMPDIR/home"
	mkdir -p "$home"
	tmux_start env HOME="$home" TERM=xterm "$PCACHE" shell -w --undo "$BATS_TEST_TMPDIR/u" "$img"
	tmux_wait '^pcache\[w\]> $'
	tmux_type 'set cache_info gc_percent 60' Enter
	tmux_wait 'gc_percent 70 -> 60, seq 2'
	tmux_type quit Enter
	tmux_gone
	run --separate-stderr pcache info "$img"
	assert_status 0
	assert_field gc_percent 60
}

@test "-c: sb of a kernel fixture" {
	fx=$(fixture "$FX_FRESH_NOCRC")
	run --separate-stderr pcache shell -c sb "$fx"
	assert_status 0
	[ -z "$stderr" ] || die "stderr: $stderr"
	grep -qE '^seg_num +63$' <<<"$output" || die "no seg_num 63: $output"
	grep -qE '^magic +0x65b05efa96c596ef \(pcache\)$' <<<"$output" || die "magic: $output"
	grep -qE '^crc +0x[0-9a-f]{8} ok$' <<<"$output" || die "crc: $output"
	grep -qE '^verdict +valid$' <<<"$output" || die "verdict: $output"
	! grep -q 'pcache shell on' <<<"$output" || die "a banner in -c mode"
}

@test "-c: cache_info, ctrl and seg show the replicas the kernel picks" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache shell -c 'cache_info; ctrl; seg 1' "$fx"
	assert_status 0
	assert_contains "$output" "cache_info replica 1 @12288 (picked; replica 0 empty: never written)"
	grep -qE '^  gc_percent 70$' <<<"$output" || die "gc_percent: $output"
	grep -qE '^flags +0x1183$' <<<"$output" || die "flags: $output"
	grep -qE '^key_tail +replica 0 @16384 +crc 0x[0-9a-f]{8} ok seq 1 cache_seg 0 seg_off 0 picked$' <<<"$output" ||
		die "key_tail: $output"
	assert_contains "$output" "cache segment 1: device segment 1 @16797696, data @$SEG1_DATA, gen 0"
	grep -qE '^seginfo +replica 0 @16797696 .* next_seg 2 picked$' <<<"$output" || die "seginfo: $output"
}

@test "-c: map 31920128 on the dirty fixture: cache_seg 1 seg_off 0, from key 0 of kset 0:0" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache shell -c 'map 31920128' "$fx"
	assert_status 0
	assert_contains "$output" "31920128: extent off 31920128 len 4096 cache_seg 1 seg_off 0 seg_gen 0 dirty (byte 0 of it @$SEG1_DATA)"
	assert_contains "$output" "from key 0 of kset 0:0: off 31920128 len 4096 cache_seg 1 seg_off 0"
	# the same answer pcache replay gives
	line=$(pcache replay "$fx" | awk '$1 == 31920128')
	[ "$(awk '{print $3, $4, $5}' <<<"$line")" = "1 0 dirty" ] || die "replay says: $line"
	run --separate-stderr pcache shell -c 'map 31920128K; map 4096' "$fx"
	assert_status 0
	assert_contains "$output" "4096: not cached (reads go to the backing device)"
}

@test "-c: kset 0:0 shows 128 keys and crc ok; key shows one" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache shell -c 'kset 0:0' "$fx"
	assert_status 0
	head=$(head -n 1 <<<"$output")
	[[ "$head" =~ ^kset\ 0:0\ @32768\ crc\ 0x[0-9a-f]{8}\ ok\ key_num\ 128\ flags\ 0x0\ size\ 5144\ at_key_tail\ at_dirty_tail$ ]] ||
		die "header: $head"
	[ "$(grep -c '^  key ' <<<"$output")" -eq 128 ] || die "not 128 key lines: $output"
	grep -qE '^  key +0 @32792 off 31920128 len 4096 flags 0x0 cache_seg 1 seg_off 0 seg_gen 0 data_crc 0x[0-9a-f]{8} valid$' <<<"$output" ||
		die "key 0: $output"
	run --separate-stderr pcache shell -c 'key 0:0 0; crc 0:0; kset key_tail' "$fx"
	assert_status 0
	grep -qE '^verdict +valid$' <<<"$output" || die "key verdict: $output"
	grep -qE "^data +@$SEG1_DATA$" <<<"$output" || die "key data offset: $output"
	grep -qE '^kset 0:0 @32768: crc (0x[0-9a-f]{8}), computed \1 over 5.02 KiB \(5140 bytes\): ok$' <<<"$output" ||
		die "crc: $output"
}

@test "-c: hex shows the cached bytes, xd the raw device bytes" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache shell -c 'hex 31920128 16' "$fx"
	assert_status 0
	assert_contains "$output" "31920128: cache_seg 1 seg_off 0 @$SEG1_DATA (dirty)"
	want=$(od_hex "$fx" "$SEG1_DATA" 16)
	[ "$(shell_hex)" = "$want" ] || die "hex shows '$(shell_hex)', the device holds '$want'"
	grep -qE '^0001e71000 ' <<<"$output" || die "not labelled with the logical offset: $output"
	# past the end of the 4 KiB extent: cut there
	run --separate-stderr pcache shell -c 'hex 31924000 1000' "$fx"
	assert_status 0
	assert_contains "$output" "the extent ends after 224 bytes"
	run --separate-stderr pcache shell -c 'xd 4096 24' "$fx"
	assert_status 0
	[ "$(shell_hex)" = "$(od_hex "$fx" 4096 24)" ] || die "xd: $output"
	run --separate-stderr pcache shell -c 'hex 4096 16' "$fx"
	assert_status 4
	assert_contains "$stderr" "pcache shell: hex: 4096: not cached"
}

@test "-c: walk goes on where it stopped and reports the end of the log" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache shell -c 'walk 2; walk 1; walk 100' "$fx"
	assert_status 0
	grep -q '^walking the log from key_tail 0:0$' <<<"$output" || die "start: $output"
	[ "$(grep -c '^kset ' <<<"$output")" -eq 16 ] || die "not 16 ksets: $output"
	grep -q '^kset 0:10288 ' <<<"$output" || die "third kset: $output"
	assert_contains "$output" "end of the log at 0:76784 @109552: empty kset (terminator) (16 ksets, 1910 keys walked)"
}

@test "standard input: commands without a prompt; the exit status says whether one failed" {
	fx=$(fixture "$FX_FRESH_NOCRC")
	run --separate-stderr bash -c 'printf "sb # the superblock\n\nctrl\n" | "$1" shell "$2"' _ "$PCACHE" "$fx"
	assert_status 0
	[ -z "$stderr" ] || die "stderr: $stderr"
	grep -qE '^seg_num +63$' <<<"$output" || die "sb: $output"
	grep -qE '^dirty_tail +replica 0 ' <<<"$output" || die "ctrl: $output"
	! grep -q 'pcache>' <<<"$output" || die "a prompt: $output"
	run --separate-stderr bash -c 'printf "seg 99\nsb\n" | "$1" shell "$2"' _ "$PCACHE" "$fx"
	assert_status 4
	assert_contains "$stderr" "pcache shell: seg: cache segment 99 out of range (n_segs 63)"
	grep -qE '^seg_num +63$' <<<"$output" || die "the shell did not go on: $output"
	# quit ends the script
	run --separate-stderr bash -c 'printf "quit\nbogus\n" | "$1" shell "$2"' _ "$PCACHE" "$fx"
	assert_status 0
}

@test "-c: a failing command prints 'pcache shell: ...', the others still run, exit 4" {
	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr pcache shell -c 'bogus; kset 0:24; key 0:0 128; sb' "$fx"
	assert_status 4
	assert_contains "$stderr" "pcache shell: bogus: not a command ('help' lists them)"
	assert_contains "$stderr" "pcache shell: kset: 0:24 @32792: not a kset (magic 0x"
	assert_contains "$stderr" "pcache shell: key: index: 128 is too large (at most 127)"
	[ "$(wc -l <<<"$stderr")" -eq 3 ] || die "stderr: $stderr"
	grep -qE '^seg_num +63$' <<<"$output" || die "sb did not run: $output"
	# the fresh cache's log is one terminator
	fx=$(fixture "$FX_FRESH_NOCRC")
	run --separate-stderr pcache shell -c 'kset 0:0; key 0:0 0' "$fx"
	assert_status 4
	assert_contains "$output" "kset 0:0 @32768: terminator (24 zero bytes): the log ends here"
	assert_contains "$stderr" "pcache shell: key: 0:0: a terminator: it has no keys"
	run --separate-stderr pcache shell -c 'help; help set' "$fx"
	assert_status 0
	assert_contains "$output" "cache_info   crc seq version res seg_id n_segs flags data_crc init_done cache_mode gc_percent reserved"
}

@test "read-only: set is refused and the device is not changed" {
	img=$(fixture_copy "$FX_FRESH_NOCRC")
	run --separate-stderr pcache shell -c 'set cache_info gc_percent 50' "$img"
	assert_status 4
	assert_contains "$stderr" "pcache shell: set: the device is open read-only: start the shell with -w to change it"
	[ "$(md5 "$img")" = "$MD5_FRESH_NOCRC" ] || die "the image changed"
	! compgen -G "$BATS_TEST_TMPDIR/*pcache-undo*" >/dev/null || die "an undo file was created"
}

@test "-w: set cache_info gc_percent 50: fsck is clean, info shows 50, the undo file restores the image" {
	img=$(fixture_copy "$FX_DIRTY")
	before=$(md5 "$img")
	undo="$BATS_TEST_TMPDIR/gc.undo"
	run --separate-stderr pcache shell -w --undo "$undo" -c 'set cache_info gc_percent 50; cache_info' "$img"
	assert_status 0
	# advance-then-write: replica 1 (seq 1) was picked, the change goes to replica 0 with seq 2
	assert_contains "$output" "cache_info replica 0 @8192: gc_percent 70 -> 50, seq 2, crc 0x"
	assert_contains "$output" "the kernel now reads replica 0"
	assert_contains "$output" "cache_info replica 0 @8192 (picked; replica 1 valid)"
	assert_contains "$stderr" "1 change saved in $undo; 'pcache undo $undo $img' puts it back"
	run --separate-stderr pcache fsck -n "$img"
	assert_status 0
	run --separate-stderr pcache info "$img"
	assert_status 0
	assert_field gc_percent 50
	assert_field cache_flags c83
	assert_field live_keys 1839
	run --separate-stderr pcache undo "$undo" "$img"
	assert_status 0
	[ "$(md5 "$img")" = "$before" ] || die "undo did not restore the image"
}

@test "-w: fsck reports what a change implies; several changes undo newest first" {
	img=$(fixture_copy "$FX_DIRTY")
	before=$(md5 "$img")
	undo="$BATS_TEST_TMPDIR/many.undo"
	run --separate-stderr pcache shell -w --undo "$undo" \
		-c 'set cache_info gc_percent 95; set key_tail seg_off 24; set sb pad 7; set gen 2 gen 3' "$img"
	assert_status 0
	assert_contains "$output" "sb @4096: pad 0 -> 7, crc 0x"
	assert_contains "$output" "key_tail replica 1 @16400: seg_off 0 -> 24, seq 2"
	run --separate-stderr pcache fsck -n "$img"
	assert_status 4
	for code in CI_GC_PERCENT SB_UNUSED_BITS LOG_START_INVALID; do
		assert_contains "$output" "$code"
	done
	run --separate-stderr pcache shell -c 'seg 2' "$img"
	assert_contains "$output" "gen 3"
	run --separate-stderr pcache undo "$undo" "$img"
	assert_status 0
	assert_contains "$output" "4 ranges restored"
	[ "$(md5 "$img")" = "$before" ] || die "undo did not restore the image"
}

@test "-w: set crc invalidates, replica R changes in place; the default undo file sits next to the image" {
	img=$(fixture_copy "$FX_FRESH_NOCRC")
	cd "$BATS_TEST_TMPDIR"
	run --separate-stderr pcache shell -w -c 'set sb crc 0x1234' "$img"
	assert_status 0
	undo=$(ls "$img".pcache-undo-* 2>/dev/null)
	[ -f "$undo" ] || die "no default undo file next to $img: $(ls)"
	[[ "$undo" =~ \.pcache-undo-[0-9]{8}-[0-9]{6}$ ]] || die "undo file name: $undo"
	run --separate-stderr pcache fsck -n "$img"
	assert_status 4
	assert_contains "$output" "SB_CRC_BAD"
	run --separate-stderr pcache undo "$undo" "$img"
	assert_status 0
	[ "$(md5 "$img")" = "$MD5_FRESH_NOCRC" ] || die "undo did not restore the image"
	# replica 0 of key_tail in place, seq kept: still picked
	run --separate-stderr pcache shell -w --undo "$BATS_TEST_TMPDIR/r.undo" -c 'set key_tail replica 0 seg_off 0x10' "$img"
	assert_status 0
	assert_contains "$output" "key_tail replica 0 @16384: seg_off 0 -> 16, seq 1"
	run --separate-stderr pcache undo "$BATS_TEST_TMPDIR/r.undo" "$img"
	assert_status 0
	[ "$(md5 "$img")" = "$MD5_FRESH_NOCRC" ] || die "undo did not restore the image"
}

@test "-w: bad set arguments change nothing" {
	img=$(fixture_copy "$FX_FRESH_NOCRC")
	run --separate-stderr pcache shell -w --undo "$BATS_TEST_TMPDIR/x.undo" \
		-c 'set cache_info gc_percent 128; set cache_info nosuch 1; set sb replica 1 pad 0; set seginfo 63 gen 1; set gen 1; set' "$img"
	assert_status 4
	assert_contains "$stderr" "gc_percent: 128 is too large (at most 127)"
	assert_contains "$stderr" "cache_info has no field 'nosuch' (fields: crc, seq,"
	assert_contains "$stderr" "sb has a single copy: no replica to choose"
	assert_contains "$stderr" "cache segment 63 out of range (n_segs 63)"
	[ "$(grep -c '^pcache shell: set: ' <<<"$stderr")" -eq 6 ] || die "stderr: $stderr"
	[ ! -e "$BATS_TEST_TMPDIR/x.undo" ] || die "an undo file was created"
	[ "$(md5 "$img")" = "$MD5_FRESH_NOCRC" ] || die "the image changed"
}

@test "-w on a locked device is refused (exit 8)" {
	command -v flock >/dev/null || skip "no flock(1)"
	img=$(fixture_copy "$FX_FRESH_NOCRC")
	run --separate-stderr flock -x "$img" "$PCACHE" shell -w -c sb "$img"
	assert_status 8
	assert_error_line shell "$img"
}

@test "a device without a cache: the shell starts, sb and xd work, log commands fail" {
	img=$(mkimg zero.img 1G)
	run --separate-stderr pcache shell -c 'sb; xd 4096 16; kset 0:0' "$img"
	assert_status 4
	grep -qE '^magic +0x0 \(unformatted\)$' <<<"$output" || die "sb: $output"
	assert_contains "$stderr" "warning: the cache does not open"
	assert_contains "$stderr" "pcache shell: kset: needs the cache, which does not open"
	run --separate-stderr pcache shell -q -c 'sb' "$img"
	assert_status 0
	[ -z "$stderr" ] || die "-q: stderr: $stderr"
}

@test "usage errors exit 16; a missing device exits 8" {
	run --separate-stderr pcache shell
	assert_status 16
	run --separate-stderr pcache shell --undo x "$BATS_TEST_TMPDIR/nope"
	assert_status 16
	assert_contains "$stderr" "--undo goes with -w"
	run --separate-stderr pcache shell -c sb "$BATS_TEST_TMPDIR/nope"
	assert_status 8
	assert_error_line shell "$BATS_TEST_TMPDIR/nope"
	run --separate-stderr pcache shell --help
	assert_status 0
	assert_contains "$output" "usage: pcache shell"
}

@test "SIGINT while reading standard input: exit 32" {
	fx=$(fixture "$FX_FRESH_NOCRC")
	fifo="$BATS_TEST_TMPDIR/in"
	out="$BATS_TEST_TMPDIR/out"
	mkfifo "$fifo"
	# (bats owns fd 3: the background shell must not hold it)
	"$PCACHE" shell "$fx" <"$fifo" >"$out" 2>&1 3>&- &
	pid=$!
	exec 7>"$fifo"
	echo sb >&7
	for ((i = 0; i < 100; i++)); do
		grep -q '^seg_num' "$out" && break
		sleep 0.1
	done
	grep -q '^seg_num' "$out" || die "no answer to sb: $(cat "$out")"
	kill -INT "$pid"
	rc=0
	wait "$pid" || rc=$?
	exec 7>&-
	[ "$rc" -eq 32 ] || die "exit status $rc, expected 32: $(cat "$out")"
}
