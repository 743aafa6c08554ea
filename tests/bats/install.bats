#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# make install into a temporary DESTDIR: the files, the library's soname and exported
# symbols, and a program built against the installed library with pkg-config.

load helpers

PREFIX=/usr

setup_file() {
	[ -x "$PCACHE" ] || die "$PCACHE is not built (run make, or set PCACHE)"
	export DEST="$BATS_FILE_TMPDIR/dest"
	# the build directory of the binary under test: make only installs what is built there
	make -C "$REPO_ROOT" --no-print-directory O="$PCACHE_BUILD" PREFIX="$PREFIX" \
		DESTDIR="$DEST" install >"$BATS_FILE_TMPDIR/install.log" 2>&1 ||
		die "make install failed: $(tail -n 30 "$BATS_FILE_TMPDIR/install.log")"
}

LIB() {
	echo "$DEST$PREFIX/lib"
}

@test "make install puts every file in DESTDIR/PREFIX" {
	[ -x "$DEST$PREFIX/bin/pcache" ] || die "no bin/pcache"
	lib=$(LIB)
	[ -f "$lib/libpcachemeta.so.0.1.0" ] || die "no libpcachemeta.so.0.1.0: $(ls -l "$lib")"
	[ "$(readlink "$lib/libpcachemeta.so.0")" = libpcachemeta.so.0.1.0 ] || die "libpcachemeta.so.0: $(ls -l "$lib")"
	[ "$(readlink "$lib/libpcachemeta.so")" = libpcachemeta.so.0 ] || die "libpcachemeta.so: $(ls -l "$lib")"
	[ -f "$lib/libpcachemeta.a" ] || die "no libpcachemeta.a"
	cmp -s "$DEST$PREFIX/include/pcachemeta.h" "$REPO_ROOT/libpcachemeta/include/pcachemeta.h" ||
		die "include/pcachemeta.h missing or not the public header"
	[ -f "$lib/pkgconfig/libpcachemeta.pc" ] || die "no pkgconfig/libpcachemeta.pc"
	grep -qx "prefix=$PREFIX" "$lib/pkgconfig/libpcachemeta.pc" || die "pc prefix: $(cat "$lib/pkgconfig/libpcachemeta.pc")"
	grep -qx 'Version: 0.1.0' "$lib/pkgconfig/libpcachemeta.pc" || die "pc version"
	n=0
	for page in "$REPO_ROOT"/doc/man/*.8; do
		n=$((n + 1))
		cmp -s "$page" "$DEST$PREFIX/share/man/man8/$(basename "$page")" || die "$(basename "$page") not installed"
	done
	[ "$n" -ge 8 ] || die "only $n man pages"
	[ -f "$DEST$PREFIX/share/man/man8/pcache-shell.8" ] || die "pcache-shell.8 not installed"
	cmp -s "$REPO_ROOT/completion/pcache.bash" "$DEST$PREFIX/share/bash-completion/completions/pcache" ||
		die "the completion is not installed as share/bash-completion/completions/pcache"
	# nothing outside PREFIX
	[ "$(ls -A "$DEST")" = "${PREFIX#/}" ] || die "DESTDIR holds: $(ls -A "$DEST")"
}

@test "the installed pcache runs, its man pages render, its completion loads" {
	run --separate-stderr "$DEST$PREFIX/bin/pcache" --version
	assert_status 0
	assert_contains "$output" "pcache 0.1.0"
	run --separate-stderr "$DEST$PREFIX/bin/pcache" shell -c sb "$(fixture "$FX_FRESH_NOCRC")"
	assert_status 0
	grep -qE '^seg_num +63$' <<<"$output" || die "shell: $output"
	if command -v man >/dev/null; then
		run --separate-stderr env MANPAGER=cat MANWIDTH=80 man -l "$DEST$PREFIX/share/man/man8/pcache-shell.8"
		assert_status 0
		assert_contains "$output" "pcache-shell"
	fi
	run --separate-stderr bash -c 'source "$1" && complete -p pcache' _ \
		"$DEST$PREFIX/share/bash-completion/completions/pcache"
	assert_status 0
	[ "$output" = "complete -F _pcache pcache" ] || die "complete -p: $output"
}

@test "libpcachemeta.so has the soname libpcachemeta.so.0 and exports only pcm_* symbols" {
	so="$(LIB)/libpcachemeta.so.0.1.0"
	run --separate-stderr readelf -d "$so"
	assert_status 0
	grep -qF 'Library soname: [libpcachemeta.so.0]' <<<"$output" || die "soname: $output"
	run --separate-stderr objdump -p "$so"
	assert_status 0
	grep -qE '^ +SONAME +libpcachemeta\.so\.0$' <<<"$output" || die "objdump soname: $output"
	run --separate-stderr nm -D --defined-only "$so"
	assert_status 0
	bad=$(awk '$NF != "PCACHEMETA_0" && $NF !~ /^pcm_/ { print $NF }' <<<"$output")
	[ -z "$bad" ] || die "exported symbols outside pcm_*: $bad"
	n=$(grep -c ' pcm_' <<<"$output")
	[ "$n" -ge 50 ] || die "only $n pcm_ symbols exported"
	for sym in pcm_dev_open pcm_cache_open pcm_replay_run pcm_check_run pcm_undo_apply; do
		grep -qE " T $sym(@@PCACHEMETA_0)?$" <<<"$output" || die "$sym not exported: $output"
	done
	# every exported function carries the version node of the version script
	run --separate-stderr nm -D --defined-only --with-symbol-versions "$so"
	if [ "$status" -eq 0 ]; then
		unversioned=$(awk '$NF ~ /^pcm_/ && $NF !~ /@@?PCACHEMETA_0$/ { print $NF }' <<<"$output")
		[ -z "$unversioned" ] || die "symbols without the PCACHEMETA_0 version: $unversioned"
	fi
	run --separate-stderr nm "$(LIB)/libpcachemeta.a"
	assert_status 0
	grep -qE ' T pcm_cache_open$' <<<"$output" || die "libpcachemeta.a lacks pcm_cache_open"
}

@test "a program builds against the installed library with pkg-config and runs" {
	pcdir="$(LIB)/pkgconfig"
	# pkg-config relocates the installed .pc to DESTDIR (its libdir/includedir are ${prefix}-relative)
	run --separate-stderr env PKG_CONFIG_PATH="$pcdir" pkg-config --define-prefix --cflags --libs libpcachemeta
	assert_status 0
	flags=$output
	assert_contains "$flags" "-I$DEST$PREFIX/include"
	assert_contains "$flags" "-L$DEST$PREFIX/lib"
	assert_contains "$flags" "-lpcachemeta"
	# the sysroot way gives the same paths
	run --separate-stderr env PKG_CONFIG_SYSROOT_DIR="$DEST" PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs libpcachemeta
	assert_status 0
	assert_contains "$output" "-I$DEST$PREFIX/include"
	assert_contains "$output" "-L$DEST$PREFIX/lib"
	run --separate-stderr env PKG_CONFIG_PATH="$pcdir" pkg-config --modversion libpcachemeta
	assert_status 0
	[ "$output" = 0.1.0 ] || die "modversion: $output"

	bin="$BATS_TEST_TMPDIR/uselib"
	# shellcheck disable=SC2086 # the flags are words
	run --separate-stderr ${CC:-cc} -std=c11 -Wall -Wextra -Werror -o "$bin" \
		"$REPO_ROOT/tests/install/uselib.c" $flags
	assert_status 0
	run --separate-stderr readelf -d "$bin"
	assert_status 0
	grep -qF 'Shared library: [libpcachemeta.so.0]' <<<"$output" || die "uselib does not need libpcachemeta.so.0: $output"

	fx=$(fixture "$FX_DIRTY")
	run --separate-stderr env LD_LIBRARY_PATH="$(LIB)" "$bin" "$fx"
	assert_status 0
	[ -z "$stderr" ] || die "stderr: $stderr"
	grep -qx 'seg_num 63' <<<"$output" || die "uselib: $output"
	grep -qx 'data_crc true' <<<"$output" || die "uselib: $output"
	# it really runs on the installed copy
	run --separate-stderr env LD_LIBRARY_PATH="$(LIB)" ldd "$bin"
	assert_status 0
	grep -qF "libpcachemeta.so.0 => $(LIB)/libpcachemeta.so.0" <<<"$output" || die "ldd: $output"
}

@test "a program links the installed static library" {
	bin="$BATS_TEST_TMPDIR/uselib-static"
	# libpcachemeta.a needs what Requires.private names (libpmem2)
	run --separate-stderr bash -c '${CC:-cc} -std=c11 -Wall -Werror -o "$1" "$2" -I"$3/include" "$3/lib/libpcachemeta.a" \
		$(PKG_CONFIG_PATH="$3/lib/pkgconfig" pkg-config --define-prefix --static --libs-only-other --libs-only-l libpcachemeta |
		  sed "s/-lpcachemeta//") -pthread' _ "$bin" "$REPO_ROOT/tests/install/uselib.c" "$DEST$PREFIX"
	assert_status 0
	run --separate-stderr readelf -d "$bin"
	! grep -qF 'libpcachemeta.so' <<<"$output" || die "linked the shared library: $output"
	run --separate-stderr "$bin" "$(fixture "$FX_FRESH_CRC")"
	assert_status 0
	grep -qx 'seg_num 63' <<<"$output" || die "uselib-static: $output"
}
