# SPDX-License-Identifier: GPL-2.0-or-later
# Common setup for the pcache CLI tests.  Load with `load helpers` at the top of a .bats file.
#
# Environment (tests/run-tests.sh sets all three):
#   PCACHE           the pcache binary            (default: build/pcache)
#   PCACHE_BUILD     the build directory          (default: build)
#   PCACHE_FIXTURES  decompressed kernel fixtures (default: $PCACHE_BUILD/fixtures)

bats_require_minimum_version 1.5.0

REPO_ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
: "${PCACHE_BUILD:=$REPO_ROOT/build}"
: "${PCACHE:=$PCACHE_BUILD/pcache}"
: "${PCACHE_FIXTURES:=$PCACHE_BUILD/fixtures}"

# The kernel fixtures (tests/fixtures/README.md) and what is known about them:
# MD5_* are the md5 of the decompressed images (tests/fixtures/MD5SUMS), MD5_DIRTY_LOGICAL
# the md5 of the logical device the dirty image serves (tests/fixtures/LOGICAL.md5).
KERNEL_DEV_SIZE=1071644672
FX_FRESH_NOCRC=kernel-fresh-1071644672-nocrc.pmem
FX_FRESH_CRC=kernel-fresh-1071644672-crc.pmem
FX_DIRTY=kernel-dirty-300w.pmem
fx_sum() {
	awk -v n="$2" '$2 == n { print $1 }' "$REPO_ROOT/tests/fixtures/$1"
}
MD5_FRESH_NOCRC=$(fx_sum MD5SUMS "$FX_FRESH_NOCRC")
MD5_FRESH_CRC=$(fx_sum MD5SUMS "$FX_FRESH_CRC")
MD5_DIRTY_LOGICAL=$(fx_sum LOGICAL.md5 "$FX_DIRTY")

# `run pcache ...` reads like the command line it tests.
pcache() {
	"$PCACHE" "$@"
}

# Fails the test with a message on stderr (bats prints it under the failing test).
die() {
	echo "FAIL: $*" >&2
	return 1
}

# mkimg NAME SIZE: a sparse all-zero file in the test's temp dir; prints its path.
mkimg() {
	local path="$BATS_TEST_TMPDIR/$1"
	rm -f "$path"
	truncate -s "$2" "$path" || return 1
	echo "$path"
}

# fixture NAME: path of a decompressed kernel fixture; fails loudly when it is missing.
fixture() {
	local path="$PCACHE_FIXTURES/$1"
	if [ ! -f "$path" ]; then
		die "kernel fixture $path is missing (tests/run-tests.sh decompresses them from tests/fixtures)"
		return 1
	fi
	echo "$path"
}

# fixture_copy NAME [DEST]: a writable sparse copy of a fixture in the temp dir; prints its path.
fixture_copy() {
	local src dst="$BATS_TEST_TMPDIR/${2:-$1}"
	src=$(fixture "$1") || return 1
	cp --sparse=always "$src" "$dst" || return 1
	chmod u+w "$dst"
	echo "$dst"
}

md5() {
	md5sum "$1" | cut -d' ' -f1
}

# is_all_zero FILE: every byte of FILE is zero.
is_all_zero() {
	cmp -s -n "$(stat -c %s "$1")" "$1" /dev/zero
}

# Checks on the result of the last `run` (use `run --separate-stderr`).
assert_status() {
	[ "$status" -eq "$1" ] ||
		die "exit status $status, expected $1; stdout: '$output'; stderr: '${stderr:-}'"
}

assert_no_stdout() {
	[ -z "$output" ] || die "expected nothing on stdout, got: '$output'"
}

# assert_error_line CMD DEV: the first stderr line is `pcache CMD: DEV: what: why`.
assert_error_line() {
	local first=${stderr%%$'\n'*}
	[[ "$first" == "pcache $1: $2: "?* ]] ||
		die "first stderr line '$first' is not 'pcache $1: $2: ...'"
}

# assert_contains HAYSTACK NEEDLE
assert_contains() {
	[[ "$1" == *"$2"* ]] || die "'$2' not found in: '$1'"
}

# field NAME: the value of `NAME:` in the text output of the last `run` (pcache info).
field() {
	local line
	while IFS= read -r line; do
		if [[ "$line" == "$1:"* ]]; then
			line=${line#"$1":}
			echo "${line#"${line%%[! ]*}"}"
			return 0
		fi
	done <<<"$output"
	die "no '$1:' line in: '$output'"
}

# assert_field NAME VALUE
assert_field() {
	local got
	got=$(field "$1") || return 1
	[ "$got" = "$2" ] || die "$1 is '$got', expected '$2'"
}

# pyjson FILE 'python code': runs the code with `d` bound to the parsed JSON of FILE.
pyjson() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[2])
' "$1" "$2"
}

# imgsum FILE: an md5 of FILE's size and of every non-zero 4 KiB block with its offset,
# read through SEEK_DATA: equal for two files exactly when their bytes are, and fast on
# a sparse 1 GiB image (md5sum reads all of it).
imgsum() {
	python3 - "$1" <<'EOF'
import hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
h = hashlib.md5(b"%d\n" % size)
off, B = 0, 4096
while off < size:
    try:
        off = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, off, os.SEEK_HOLE)
    off -= off % B
    while off < end:
        b = os.pread(fd, B, off)
        if b.strip(b"\0"):
            h.update(b"%d:" % off)
            h.update(b)
        off += B
print(h.hexdigest())
EOF
}

# damaged NAME CASE...: a copy of the dirty kernel fixture with each corruption applied.
damaged() {
	local img c
	img=$(fixture_copy "$FX_DIRTY" "$1") || return 1
	shift
	for c in "$@"; do
		"$PCACHE_BUILD/tests/corrupt" "$img" "$c" >/dev/null || { die "corrupt $img $c failed"; return 1; }
	done
	echo "$img"
}

# flock_hold FILE: `flock -x FILE sleep 60` in the background; $holder is flock's pid
# (what /proc/locks, and so the tools' messages, name) once the lock is held.
flock_hold() {
	command -v flock >/dev/null || skip "flock(1) is not installed"
	flock -x "$1" sleep 60 </dev/null >/dev/null 2>&1 &
	holder=$!
	for _ in $(seq 100); do
		grep -q "FLOCK .* $holder " /proc/locks 2>/dev/null && return 0
		sleep 0.05
	done
	die "flock did not take $1"
}

# flock_release: ends flock and the sleep it runs, which inherited the locked file
# (killing flock alone leaves that sleep holding the lock).
flock_release() {
	local child
	[ -n "${holder:-}" ] || return 0
	child=$(pgrep -P "$holder" || true)
	kill "$holder" $child 2>/dev/null || true
	wait "$holder" 2>/dev/null || true
}

setup_file() {
	[ -x "$PCACHE" ] || die "$PCACHE is not built (run make, or set PCACHE)"
}
