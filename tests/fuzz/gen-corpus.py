#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""
tests/fuzz/gen-corpus.py OUTDIR [FIXTURES_DIR]

Writes the seed corpus of the fuzz targets (input layout: tests/fuzz/fuzz_common.h):
  - base-only inputs: every base image (zero, formatted, log with LAST hops, log
    with dirty_tail moved and a stale segment) at both sizes, with option mixes;
  - hostile images from the issue's list, on the log base with resealing on (the
    harness gives patched records and ksets valid CRCs): seg_num past the device,
    a LAST kset looping back, keys near 2^64, lengths that wrap, a kset claiming
    more keys than fit, positions past segment ends, tails out of range;
  - when FIXTURES_DIR (default ${PCACHE_FIXTURES:-build/fixtures}) holds them, the kernel's
    images: kernel-dirty-300w (metadata, every segment header, the first 80 KiB of
    the first 3 segments' data areas: the whole log and the start of the data) and
    kernel-fresh-*-crc (metadata and every segment header).
"""
import os
import struct
import sys

SMALL, FIXTURE = 536870912, 1071644672
SEG_SIZE, SEGS_OFF, DATA_OFF, DATA_SIZE = 16 << 20, 20480, 12288, 16764928
META_END = 20480
HEAD_WIN = DATA_OFF + (128 << 10)
TAIL_WIN = 16 << 10
KSET_MAGIC = 0x676894A64E164F1A
SB_MAGIC = 0x65B05EFA96C596EF
LAST = 1

RESEAL = 0x10
OPT_VERIFY, OPT_SAFE, OPT_TEXT, OPT_ALL, OPT_BACKING, OPT_KEEP, OPT_HUMAN, OPT_BB = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)


def nsegs(size):
    return (size - SEGS_OFF) // SEG_SIZE


def seg_base(d):
    return SEGS_OFF + d * SEG_SIZE


def header(size_bit, base, nomap=False, reseal=False, opts=0):
    b0 = size_bit | (base << 1) | (8 if nomap else 0) | (RESEAL if reseal else 0)
    return bytes([b0, opts])


def patch(region, off, data):
    assert len(data) < 65536 and off < (1 << 24)
    return bytes([region]) + struct.pack('<I', off)[:3] + struct.pack('<H', len(data)) + data


def meta(off, data):
    return patch(0, off, data)


def seg_head(dseg, off, data):
    """off from the segment start (header, ctrl, then the data area at DATA_OFF)."""
    return patch(1 + dseg, off, data)


def seg_tail(size, dseg, off_in_data, data):
    start = DATA_SIZE - TAIL_WIN
    assert off_in_data >= start
    return patch(1 + nsegs(size) + dseg, off_in_data - start, data)


def sb(seg_num, magic=SB_MAGIC, flags=0):
    return struct.pack('<IIQII', 0, flags, magic, seg_num, 0)


def pos_rec(seq, cseg, seg_off):
    return struct.pack('<IBBHII', 0, seq, 0, 0, cseg, seg_off)


def cache_info(seq, seg_id, n_segs, flags=0x1183):
    return struct.pack('<IBBHIIII', 0, seq, 0, 0, seg_id, n_segs, flags, 0)


def seg_info(seq, flags, next_seg):
    return struct.pack('<IBBHII', 0, seq, 0, 0, flags, next_seg)


def kset(keys, flags=0, key_num=None):
    n = len(keys) if key_num is None else key_num
    return struct.pack('<IIQQ', 0, n, KSET_MAGIC, flags) + b''.join(keys)


def last_kset(next_cseg):
    return struct.pack('<IIQQ', 0, next_cseg, KSET_MAGIC, LAST)


def key(off, length, cseg, seg_off, gen=0, flags=0, crc=0):
    return struct.pack('<QIIIIQII', off, length, flags, cseg, seg_off, gen, crc, 0)


def hostile():
    """(name, input) on the 512 MiB log base (key_head 28:496, chain dseg == cseg)."""
    h = header(0, 2, reseal=True, opts=OPT_VERIFY)
    hf = header(0, 1, reseal=True, opts=OPT_VERIFY)       # formatted, empty log
    n = nsegs(SMALL)
    log0 = DATA_OFF                                          # cseg 0 == dseg 0: log start
    out = [
        ('sb-seg-num-huge', hf + meta(4096, sb(0xFFFFFFFF))),
        ('sb-seg-num-past-device', hf + meta(4096, sb(n + 1))),
        ('sb-seg-num-max', hf + meta(4096, sb(1 << 20))),
        ('ci-n-segs-past-seg-num', hf + meta(12288, cache_info(9, 0, n + 5))),
        ('ci-seg-id-past-device', hf + meta(12288, cache_info(9, n + 3, n))),
        ('chain-loop', hf + seg_head(3, 0, seg_info(9, 0x3, 1)) +
         seg_head(3, 4096, seg_info(10, 0x3, 1))),
        ('chain-past-seg-num', hf + seg_head(5, 4096, seg_info(9, 0x3, 0xFFFFFFF0))),
        ('key-tail-past-segment', hf + meta(16384, pos_rec(9, 0, DATA_SIZE - 8))),
        ('key-tail-past-n-segs', hf + meta(16384, pos_rec(9, n + 7, 0))),
        ('dirty-tail-at-segment-end', hf + meta(16416, pos_rec(9, 0, DATA_SIZE - 24))),
        ('last-loops-to-itself', hf + seg_head(0, log0, last_kset(0))),
        ('last-ping-pong', hf + seg_head(0, log0, last_kset(1)) +
         seg_head(1, DATA_OFF, last_kset(0))),
        ('last-past-n-segs', hf + seg_head(0, log0, last_kset(n + 1))),
        ('key-off-near-2^64', hf + seg_head(0, log0, kset(
            [key(0xFFFFFFFFFFFFFE00, 512, 1, 0), key(0xFFFFFFFFFFFFF000, 8192, 1, 4096)]))),
        ('key-len-wraps', hf + seg_head(0, log0, kset(
            [key(1 << 40, 0xFFFFFE00, 1, 0), key(4096, 0xFFFFFFFF, 1, 512)]))),
        ('key-seg-off-past-area', hf + seg_head(0, log0, kset(
            [key(0, 4096, 1, DATA_SIZE - 512), key(8192, 512, 1, 0xFFFFFE00)]))),
        ('key-cseg-past-n-segs', hf + seg_head(0, log0, kset([key(0, 4096, n, 0)]))),
        ('key-empty-overlap', hf + seg_head(0, log0, kset(
            [key(0, 8192, 1, 0), key(4096, 4096, 1, 8192, flags=1)]))),
        ('kset-too-many-keys', hf + seg_head(0, log0, kset([key(0, 512, 1, 0)], key_num=129))),
        ('kset-more-keys-than-fit', hf + meta(16384, pos_rec(9, 2, DATA_SIZE - 64)) +
         meta(16416, pos_rec(9, 2, DATA_SIZE - 64)) +
         seg_tail(SMALL, 2, DATA_SIZE - 64, kset([key(0, 512, 1, 0)], key_num=128))),
        ('kset-no-room', hf + meta(16384, pos_rec(9, 2, DATA_SIZE - 64)) +
         meta(16416, pos_rec(9, 2, DATA_SIZE - 64)) +
         seg_tail(SMALL, 2, DATA_SIZE - 64, kset([key(0, 512, 1, 0)]))),
        ('log-corrupt-head', h + seg_head(28, DATA_OFF + 496, kset([key(0, 512, 5, 0)])[:40])),
        ('log-loop-at-head', h + seg_head(28, DATA_OFF + 496, last_kset(0))),
        ('log-hop-to-used', h + seg_head(28, DATA_OFF + 496, last_kset(30))),
        # bad blocks (the first two patches' ranges): zeros written where zeros already are
        ('badblock-sb-and-free-seg', header(0, 2, opts=OPT_VERIFY | OPT_BB) +
         meta(4096 + 64, bytes(64)) + seg_head(20, DATA_OFF, bytes(4096))),
        ('badblock-log-tail-and-ctrl', header(0, 2, opts=OPT_BB) +
         seg_head(28, DATA_OFF + 4096, bytes(512)) + meta(16384 + 64, bytes(64))),
        ('badblock-seg-header', header(1, 3, opts=OPT_SAFE | OPT_BB) +
         seg_head(7, 64, bytes(512)) + seg_head(30, DATA_OFF + 65536, bytes(4096))),
    ]
    return out


def nonzero_runs(buf, base_off, limit=60000):
    """(offset, bytes) runs of non-zero 8-byte words, split at limit."""
    runs, i, n = [], 0, len(buf)
    while i < n:
        while i < n and not any(buf[i:i + 8]):
            i += 8
        if i >= n:
            break
        j = i
        while j < n and j - i < limit and any(buf[j:j + 64]):
            j += 64
        j = min(j, n)
        runs.append((base_off + i, buf[i:j]))
        i = j
    return runs


def fixture_seed(path, segs, data_bytes, size_bit=1, base=0, opts=0):
    out = bytearray(header(size_bit, base, opts=opts))
    with open(path, 'rb') as f:
        f.seek(0)
        for off, data in nonzero_runs(f.read(META_END), 0):
            out += meta(off, data)
        for d in range(nsegs(FIXTURE if size_bit else SMALL)):
            f.seek(seg_base(d))
            buf = f.read(DATA_OFF + (data_bytes if d in segs else 0))
            for off, data in nonzero_runs(buf, 0):
                out += seg_head(d, off, data)
    return bytes(out)


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    outdir = sys.argv[1]
    fx = sys.argv[2] if len(sys.argv) > 2 else os.environ.get('PCACHE_FIXTURES', 'build/fixtures')
    os.makedirs(outdir, exist_ok=True)
    seeds = []
    for size_bit in (0, 1):
        for base in range(4):
            for opts in (0, OPT_VERIFY, OPT_VERIFY | OPT_KEEP | OPT_BACKING,
                         OPT_SAFE | OPT_TEXT | OPT_ALL, OPT_HUMAN | OPT_ALL):
                seeds.append(('base-s%d-b%d-o%02x' % (size_bit, base, opts),
                              header(size_bit, base, opts=opts)))
        seeds.append(('base-s%d-nomap' % size_bit, header(size_bit, 2, nomap=True, opts=1)))
    seeds += hostile()
    dirty = os.path.join(fx, 'kernel-dirty-300w.pmem')
    if os.path.exists(dirty):
        seeds.append(('kernel-dirty-300w-log', fixture_seed(dirty, (0, 1, 2), 80 << 10)))
        seeds.append(('kernel-dirty-300w-log-verify',
                      fixture_seed(dirty, (0, 1, 2), 80 << 10, opts=OPT_VERIFY | OPT_KEEP)))
    fresh = os.path.join(fx, 'kernel-fresh-1071644672-crc.pmem')
    if os.path.exists(fresh):
        seeds.append(('kernel-fresh-crc', fixture_seed(fresh, (), 0)))
    for name, data in seeds:
        with open(os.path.join(outdir, name), 'wb') as f:
            f.write(data)
    print('%d seeds in %s' % (len(seeds), outdir))
    return 0


if __name__ == '__main__':
    sys.exit(main())
