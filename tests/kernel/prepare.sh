#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tests/kernel/prepare.sh: builds (or reuses from the cache) everything the kernel
# interop suite boots:
#   - a Debian sid chroot (debootstrap --variant=minbase), whose package lists tell
#     which kernel sid ships now (linux-headers-amd64 -> linux-headers-<KREL>);
#   - dm-pcache.ko, built out of tree from linux-source-<X.Y> against
#     linux-headers-<KREL> with the compiler the headers name;
#   - that kernel's vmlinuz and the modules the guest needs, decompressed;
#   - the base initramfs (busybox, dmsetup, ndctl and their libraries, the modules).
# Everything lands in $PCACHE_KERNEL_CACHE (default /var/cache/pcache-tools-kernel)
# under k/<KREL>_<package version>/ and is reused while sid ships the same kernel.
# The kernel named in tests/kernel/PINNED, once built, is always the one used
# (PCACHE_KERNEL_UNPINNED=1: whatever sid ships now); run.sh fails a run whose
# kernel or module sources differ from PINNED.
#
# Exit: 0 ready (prints the build directory on stdout, last line),
#       3 the registry offers no usable kernel (reason on stderr, starting "SKIP:"),
#       1 any other failure.
#
# Environment: PCACHE_KERNEL_CACHE, PCACHE_KERNEL_MIRROR (default: the host's
# Debian mirror), PCACHE_KERNEL_REFRESH_HOURS (how old sid's lists may be before
# they are fetched again; default 24), PCACHE_KERNEL_OFFLINE=1 (never fetch: use
# the newest cached build).
set -u
set -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${PCACHE_KERNEL_CACHE:-/var/cache/pcache-tools-kernel}
REFRESH_HOURS=${PCACHE_KERNEL_REFRESH_HOURS:-24}
CHROOT=$CACHE/chroot-sid
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root -q)

say() { echo "# prepare: $*" >&2; }
die() {
	echo "prepare: error: $*" >&2
	exit 1
}
skip() {
	echo "SKIP: $*" >&2
	exit 3
}

mkdir -p "$CACHE" || die "cannot create $CACHE"
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"

# ---------------------------------------------------------------------------
# Host tools
host_deps() {
	local need=() c
	command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
	command -v debootstrap >/dev/null || need+=(debootstrap)
	command -v cpio >/dev/null || need+=(cpio)
	command -v xz >/dev/null || need+=(xz-utils)
	command -v zstd >/dev/null || need+=(zstd)
	command -v python3 >/dev/null || need+=(python3)
	for c in flock timeout; do command -v $c >/dev/null || need+=(util-linux coreutils); done
	[ ${#need[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing host packages: ${need[*]} (run as root)"
	say "installing host packages: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2 || true
	apt-get install -y -q --no-install-recommends "${need[@]}" </dev/null >&2 ||
		die "apt-get install ${need[*]} failed"
}

host_mirror() {
	local m
	if [ -n "${PCACHE_KERNEL_MIRROR:-}" ]; then
		echo "$PCACHE_KERNEL_MIRROR"
		return
	fi
	m=$(grep -hoE 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
		/etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security | head -n 1 | tr -d ' ')
	echo "${m:-http://deb.debian.org/debian}"
}

# Newest finished build in the cache, or nothing.
newest_build() {
	local d
	d=$(ls -1dt "$CACHE"/k/*/ok 2>/dev/null | head -n 1)
	[ -n "$d" ] && dirname "$d"
}

use_cached_or_skip() {
	local why=$1 d
	d=$(newest_build)
	if [ -n "$d" ]; then
		say "$why; using the cached build $(basename "$d")"
		echo "$d"
		exit 0
	fi
	skip "$why"
}

in_chroot() {
	chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"
}

# ---------------------------------------------------------------------------
# The sid chroot
make_chroot() {
	local mirror
	[ -f "$CHROOT/.pcache-ok" ] && return 0
	mirror=$(host_mirror)
	say "creating the sid chroot with debootstrap from $mirror (one time, about a minute)"
	rm -rf "$CHROOT.tmp" "$CHROOT"
	if ! debootstrap --variant=minbase sid "$CHROOT.tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
		tail -n 20 "$CACHE/debootstrap.log" >&2
		rm -rf "$CHROOT.tmp"
		use_cached_or_skip "debootstrap of Debian sid from $mirror failed (see $CACHE/debootstrap.log)"
	fi
	echo "deb $mirror sid main" >"$CHROOT.tmp/etc/apt/sources.list"
	touch "$CHROOT.tmp/.pcache-ok"
	mv "$CHROOT.tmp" "$CHROOT"
	rm -f "$CACHE/lists.stamp"
}

refresh_lists() {
	local stamp=$CACHE/lists.stamp
	if [ -f "$stamp" ] && [ -n "$(find "$stamp" -mmin -$((REFRESH_HOURS * 60)) 2>/dev/null)" ]; then
		return 0
	fi
	say "fetching sid's package lists"
	if in_chroot apt-get "${APT_OPTS[@]}" update >"$CACHE/apt-update.log" 2>&1; then
		touch "$stamp"
	else
		tail -n 5 "$CACHE/apt-update.log" >&2
		[ -n "$(newest_build)" ] && use_cached_or_skip "apt-get update in the sid chroot failed"
		say "apt-get update failed; trying the lists debootstrap left"
	fi
}

pkg_version() {
	in_chroot apt-cache show --no-all-versions "$1" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1
}

# Sets KREL (e.g. 7.2.13+deb14-amd64), KVER (package version), KMM (7.2), KPKG_IMAGE.
discover() {
	local hdr
	hdr=$(in_chroot apt-cache depends linux-headers-amd64 2>/dev/null |
		sed -n 's/^ *Depends: linux-headers-\(.*-amd64\)$/\1/p' | head -n 1)
	[ -n "$hdr" ] || use_cached_or_skip "sid's lists name no linux-headers-<version>-amd64 (linux-headers-amd64 has no such dependency)"
	KREL=$hdr
	KVER=$(pkg_version "linux-headers-$KREL")
	KMM=$(echo "$KREL" | sed -n 's/^\([0-9]*\.[0-9]*\)[.+-].*/\1/p')
	[ -n "$KVER" ] && [ -n "$KMM" ] || use_cached_or_skip "cannot read the version of linux-headers-$KREL"
	local v p
	for p in "linux-modules-$KREL" "linux-source-$KMM"; do
		v=$(pkg_version "$p")
		[ -n "$v" ] || use_cached_or_skip "sid has linux-headers-$KREL $KVER but no package $p"
		[ "$v" = "$KVER" ] || use_cached_or_skip "inconsistent kernel set in sid: linux-headers-$KREL is $KVER but $p is $v"
	done
	# The kernel image: linux-binary-* (newer layout) or linux-image-*-unsigned / linux-image-*.
	KPKG_IMAGE=""
	for p in "linux-binary-$KREL" "linux-image-$KREL-unsigned" "linux-image-$KREL"; do
		v=$(pkg_version "$p")
		if [ -n "$v" ]; then
			[ "$v" = "$KVER" ] || continue
			KPKG_IMAGE=$p
			break
		fi
	done
	[ -n "$KPKG_IMAGE" ] || use_cached_or_skip "no kernel image package for $KREL at version $KVER in sid"
}

# ---------------------------------------------------------------------------
# Building
build_module() {
	local out=$1 src tarball
	say "installing headers, source and tools for $KREL ($KVER) in the chroot"
	in_chroot apt-get "${APT_OPTS[@]}" install -y --no-install-recommends \
		make kmod dmsetup busybox-static ndctl daxctl libc6-dev xz-utils zstd \
		"linux-headers-$KREL" "linux-source-$KMM" </dev/null >"$CACHE/apt-install.log" 2>&1 || {
		tail -n 20 "$CACHE/apt-install.log" >&2
		use_cached_or_skip "apt-get install of linux-headers-$KREL / linux-source-$KMM in the sid chroot failed"
	}
	tarball=$(ls "$CHROOT"/usr/src/linux-source-"$KMM".tar.* 2>/dev/null | head -n 1)
	[ -n "$tarball" ] || use_cached_or_skip "linux-source-$KMM installed no /usr/src/linux-source-$KMM.tar.*"
	say "extracting drivers/md from $(basename "$tarball")"
	rm -rf "$CHROOT/build"
	mkdir -p "$CHROOT/build/src"
	tar -xf "$tarball" -C "$CHROOT/build/src" --wildcards "linux-source-$KMM/drivers/md/*" \
		"linux-source-$KMM/Documentation/admin-guide/device-mapper/dm-pcache.rst" 2>/dev/null ||
		tar -xf "$tarball" -C "$CHROOT/build/src" --wildcards "linux-source-$KMM/drivers/md/*" ||
		die "cannot extract drivers/md from $tarball"
	src=$CHROOT/build/src/linux-source-$KMM/drivers/md
	[ -d "$src/dm-pcache" ] || skip "linux-source-$KMM ($KVER) has no drivers/md/dm-pcache"
	# The module includes ../dm-core.h: keep the drivers/md headers one level up.
	mkdir -p "$CHROOT/build/md"
	cp "$src"/*.h "$CHROOT/build/md/"
	cp -r "$src/dm-pcache" "$CHROOT/build/md/"
	say "building dm-pcache.ko"
	mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc" || die "cannot mount /proc in the chroot"
	in_chroot make -C "/usr/src/linux-headers-$KREL" M=/build/md/dm-pcache CONFIG_DM_PCACHE=m \
		-j"$(nproc 2>/dev/null || echo 2)" modules >"$CACHE/module-build.log" 2>&1
	local rc=$?
	umount "$CHROOT/proc" 2>/dev/null
	if [ $rc -ne 0 ] || [ ! -f "$CHROOT/build/md/dm-pcache/dm-pcache.ko" ]; then
		tail -n 30 "$CACHE/module-build.log" >&2
		die "the dm-pcache module did not build (log: $CACHE/module-build.log)"
	fi
	local vm
	vm=$(in_chroot modinfo -F vermagic /build/md/dm-pcache/dm-pcache.ko | awk '{print $1}')
	[ "$vm" = "$KREL" ] || die "dm-pcache.ko vermagic '$vm' is not '$KREL'"
	mkdir -p "$out/modules"
	cp "$CHROOT/build/md/dm-pcache/dm-pcache.ko" "$out/modules/dm-pcache.ko"
	src_md5 "$src/dm-pcache" >"$out/dm-pcache-src.md5"
	cp "$CHROOT/build/src/linux-source-$KMM/Documentation/admin-guide/device-mapper/dm-pcache.rst" \
		"$out/" 2>/dev/null || true
	in_chroot sh -c "gcc --version 2>/dev/null | head -n 1; ls -l /usr/bin/gcc-[0-9]* 2>/dev/null" \
		>"$out/compiler.txt" 2>&1 || true
	grep -m1 'CONFIG_CC_VERSION_TEXT' "$CHROOT/usr/src/linux-headers-$KREL/.config" >>"$out/compiler.txt" 2>/dev/null || true
}

# src_md5 DIR: md5 of the module's sources, concatenated in C-locale name order
# (tests/kernel/PINNED).
src_md5() {
	(cd "$1" && cat $(ls -1 | LC_ALL=C sort)) | md5sum | cut -d' ' -f1
}

# Decompresses one module into $2.
take_module() {
	local f=$1 dst=$2
	case "$f" in
	*.ko.xz) xz -dc "$f" >"$dst" ;;
	*.ko.zst) zstd -qdc "$f" >"$dst" ;;
	*.ko.gz) gzip -dc "$f" >"$dst" ;;
	*.ko) cp "$f" "$dst" ;;
	*) return 1 ;;
	esac
}

# Bump when the initramfs contents change: cached builds then rebuild it only.
INITRAMFS_REV=3

# Module load order in the guest (the dependencies come first).
GUEST_MODULES="libnvdimm nfit nd_btt nd_pmem device_dax dax_pmem dm-mod dm-flakey virtio_blk"

# True when the build directory $1 has the kernel and every guest module.
have_kernel() {
	local m
	[ -f "$1/vmlinuz" ] && [ -f "$1/modules/order" ] || return 1
	for m in $GUEST_MODULES; do
		grep -qx "$m" "$1/modules/order" || return 1
	done
}

fetch_kernel() {
	local out=$1 dl=$CHROOT/dl x m f
	say "downloading $KPKG_IMAGE and linux-modules-$KREL"
	rm -rf "$dl"
	mkdir -p "$dl"
	(cd "$dl" && in_chroot sh -c "cd /dl && apt-get ${APT_OPTS[*]} download $KPKG_IMAGE linux-modules-$KREL") \
		>"$CACHE/apt-download.log" 2>&1 || {
		tail -n 10 "$CACHE/apt-download.log" >&2
		use_cached_or_skip "apt-get download $KPKG_IMAGE linux-modules-$KREL failed"
	}
	x=$CACHE/extract.tmp
	rm -rf "$x"
	mkdir -p "$x"
	for f in "$dl"/*.deb; do
		dpkg-deb -x "$f" "$x" || die "cannot unpack $f"
	done
	f=$(find "$x" \( -name "vmlinuz-$KREL" -o -name vmlinuz \) -type f | head -n 1)
	[ -n "$f" ] || die "no vmlinuz in $KPKG_IMAGE"
	cp "$f" "$out/vmlinuz"
	mkdir -p "$out/modules"
	rm -f "$out/modules/order.tmp"
	for m in $GUEST_MODULES; do
		f=$(find "$x" -path "*/modules/$KREL/*" -name "$m.ko*" | head -n 1)
		if [ -z "$f" ]; then
			# Built in? Then it is not a module and needs no loading.
			if grep -qE "/$m\.ko" "$x"/usr/lib/modules/"$KREL"/modules.builtin 2>/dev/null ||
				grep -qE "/$m\.ko" "$x"/lib/modules/"$KREL"/modules.builtin 2>/dev/null; then
				continue
			fi
			die "module $m not found in linux-modules-$KREL"
		fi
		take_module "$f" "$out/modules/$m.ko" || die "cannot decompress $f"
		echo "$m" >>"$out/modules/order.tmp"
	done
	echo dm-pcache >>"$out/modules/order.tmp"
	mv "$out/modules/order.tmp" "$out/modules/order"
	rm -rf "$x" "$dl"
}

# Copies a program of the chroot and the libraries it needs into the tree $1.
copy_prog() {
	local root=$1 prog=$2 lib
	mkdir -p "$root$(dirname "$prog")"
	cp -L "$CHROOT$prog" "$root$prog"
	for lib in $(in_chroot ldd "$prog" 2>/dev/null | grep -oE '/[^ ]+'); do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$CHROOT$lib" "$root$lib"
	done
}

make_initramfs() {
	local out=$1 root=$CACHE/initramfs.tmp a
	say "building the base initramfs"
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,usr/bin,usr/sbin,usr/lib,lib/modules}
	cp "$CHROOT/bin/busybox" "$root/bin/busybox" 2>/dev/null || cp "$CHROOT/usr/bin/busybox" "$root/bin/busybox"
	for a in $(in_chroot /usr/bin/busybox --list 2>/dev/null || in_chroot /bin/busybox --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	copy_prog "$root" /usr/sbin/dmsetup
	copy_prog "$root" /usr/bin/ndctl
	[ -e "$CHROOT/usr/bin/daxctl" ] && copy_prog "$root" /usr/bin/daxctl
	# GNU dd as gdd: busybox dd's oflag=direct does not reach the device as
	# O_DIRECT writes of the given size, and it has no oflag=dsync.
	copy_prog "$root" /usr/bin/dd
	mv "$root/usr/bin/dd" "$root/usr/bin/gdd"
	# Binaries ask for /lib64/ld-linux-x86-64.so.2 (ldd lists it; make sure).
	mkdir -p "$root/lib64"
	[ -e "$root/lib64/ld-linux-x86-64.so.2" ] || cp -L "$CHROOT/lib64/ld-linux-x86-64.so.2" "$root/lib64/"
	cp "$out"/modules/*.ko "$out/modules/order" "$root/lib/modules/"
	echo "$KREL $KVER" >"$root/etc/pcache-kernel"
	(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$out/base.cpio.gz" ||
		die "cannot pack the initramfs"
	rm -rf "$root"
}

# ---------------------------------------------------------------------------
# reuse OUT: brings a cached build up to date (initramfs layout, source md5), prints it.
reuse() {
	local out=$1 src
	if [ "$(cat "$out/initramfs.rev" 2>/dev/null)" != "$INITRAMFS_REV" ]; then
		say "rebuilding the base initramfs (layout revision $INITRAMFS_REV)"
		have_kernel "$out" || fetch_kernel "$out"
		make_initramfs "$out"
		echo "$INITRAMFS_REV" >"$out/initramfs.rev"
	fi
	src=$CHROOT/build/src/linux-source-$KMM/drivers/md/dm-pcache
	[ -s "$out/dm-pcache-src.md5" ] || [ ! -d "$src" ] || src_md5 "$src" >"$out/dm-pcache-src.md5"
	say "reusing the cached build for $KREL ($KVER)"
	echo "$out"
	exit 0
}

# The pinned kernel, when it was built before, is the one used: no network needed,
# and a newer kernel in sid does not change what CI judges with.
# shellcheck source=/dev/null
PIN_DIR=$CACHE/k/$(. "$HERE/PINNED" && echo "${KREL}_${KVER}")
if [ "${PCACHE_KERNEL_UNPINNED:-0}" != 1 ] && [ -f "$PIN_DIR/ok" ]; then
	# shellcheck source=/dev/null
	. "$PIN_DIR/kernel.env"
	host_deps
	reuse "$PIN_DIR"
fi
if [ "${PCACHE_KERNEL_OFFLINE:-0}" = 1 ]; then
	use_cached_or_skip "PCACHE_KERNEL_OFFLINE=1 and no kernel was built before in $CACHE"
fi
host_deps
make_chroot
refresh_lists
discover
ID="${KREL}_${KVER}"
OUT=$CACHE/k/$ID
[ -f "$OUT/ok" ] && reuse "$OUT"
say "sid ships $KREL ($KVER): building (one time per kernel version)"
rm -rf "$OUT"
mkdir -p "$OUT"
build_module "$OUT"
fetch_kernel "$OUT"
make_initramfs "$OUT"
echo "$INITRAMFS_REV" >"$OUT/initramfs.rev"
cat >"$OUT/kernel.env" <<EOF
KREL=$KREL
KVER=$KVER
KMM=$KMM
KPKG_IMAGE=$KPKG_IMAGE
BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
touch "$OUT/ok"
# Keep the two newest builds only.
ls -1dt "$CACHE"/k/*/ 2>/dev/null | tail -n +3 | while read -r d; do rm -rf "$d"; done
say "ready: $OUT"
echo "$OUT"
