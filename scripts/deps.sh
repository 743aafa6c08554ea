#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Installs the Debian 12 packages pcache-tools needs to build, test and demo,
# and only those that are missing.  `scripts/deps.sh` alone installs; with
# arguments (`scripts/deps.sh make check`) it then runs them, so one command
# works on a machine that does not even have make yet.
set -eu

PACKAGES="build-essential pkg-config clang libclang-rt-14-dev libpmem2-dev libndctl-dev
libdaxctl-dev libjson-c-dev libreadline-dev libblkid-dev bats zstd python3 nbdkit nbdkit-plugin-dev
valgrind man-db tmux libnbd-bin python3-libnbd qemu-utils e2fsprogs procps fio git"

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*" ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: missing Debian packages:$missing" >&2
		echo "deps.sh: run as root, or: sudo apt-get install$missing" >&2
		exit 1
	fi
	echo "deps.sh: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	apt-get install -y -q --no-install-recommends $missing </dev/null >&2
fi

if [ $# -gt 0 ]; then
	exec "$@"
fi
