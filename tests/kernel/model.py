#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Host-side data models for the kernel interop suite (tests/kernel).

Subcommands:
  genwrites  deterministic random writes: a list of `off len src` lines and a blob
             of random bytes the guest copies from (src is an offset in the blob)
  model      the logical content after applying a write list over a base
  logical    the logical content our tools compute: a backing file with the extents
             of `pcache replay --json` applied from the cache image (--clean-only:
             only the CLEAN ones, which a real backing device holds too)
  cmp        byte comparison with a readable verdict
  diff       byte ranges where two files differ
  sdiff      512-byte sector ranges where two sparse files differ (holes skipped)
  mibs       the MiB runs where sparse files may hold data
  ranges     the byte ranges a read-back must cover: where sparse files may hold data
             and every key of every kset-shaped record of cache images (read
             without trusting anything: where any kernel could find a key)
  json-get   one value out of a JSON document (PATH like 0.status_line)
  status-cmp compare a kernel status line with the one pcache info computed
  cutcheck   is what a power cut left consistent with what was acknowledged?
  cutprefix  after a power cut during a stream of writes whose keys reach the log
             in the order they were made: the image holds exactly the first K
             sectors of the stream and nothing of the rest
  sparsewrites  writes that leave every other sector alone (dd conv=sparse skips
             the all-zero sectors of the guest's blob): a list of `off len src`
             lines that do not overlap, the guest's blob, and a model blob whose
             skipped sectors hold what the base has under them, for model/cutcheck
"""
import argparse
import errno
import json
import os
import random
import sys

SEG_SIZE = 16 * 1024 * 1024
SEGMENTS_OFF = 20480
DATA_OFF = 12288
WINDOW = 4 * 1024 * 1024


def read_range(path, length):
    """First `length` bytes of path (zero-padded when the file is shorter)."""
    buf = bytearray(length)
    if path:
        with open(path, "rb") as f:
            data = f.read(length)
        buf[: len(data)] = data
    return buf


def cmd_genwrites(a):
    rng = random.Random(a.seed)
    blob = rng.randbytes(a.blob_size)
    with open(a.blob, "wb") as f:
        f.write(blob)
    lines = []
    for _ in range(a.count):
        n_units = rng.randint(a.min // a.align, a.max // a.align)
        length = n_units * a.align
        if a.hot_range and rng.randint(1, 100) <= a.hot_pct:
            span = a.hot_range
        else:
            span = a.range
        off = rng.randrange(0, (span - length) // a.align + 1) * a.align
        src = rng.randrange(0, (a.blob_size - length) // 512 + 1) * 512
        lines.append("%d %d %d" % (off, length, src))
    with open(a.list, "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


def apply_list(buf, list_path, blob_path):
    with open(blob_path, "rb") as f:
        blob = f.read()
    n = 0
    with open(list_path) as f:
        for line in f:
            p = line.split()
            if len(p) != 3:
                continue
            off, length, src = (int(x) for x in p)
            if off + length > len(buf):
                raise SystemExit("model: write %d+%d past the range %d" % (off, length, len(buf)))
            buf[off : off + length] = blob[src : src + length]
            n += 1
    return n


def cmd_model(a):
    buf = read_range(a.base, a.range)
    for lst, blob in zip(a.list, a.blob):
        apply_list(buf, lst, blob)
    with open(a.out, "wb") as f:
        f.write(buf)
    return 0


def load_json(path):
    with open(path) if path != "-" else sys.stdin as f:
        return json.load(f)


def chain_map(dump):
    """cache segment -> device segment, from `pcache dump --json --what segments`."""
    m = {}
    for r in dump:
        if r.get("type") == "segment_info" and r.get("picked", True) and "cache_seg" in r:
            m[r["cache_seg"]] = r["dev_seg"]
    return m


def data_spans(f, start, end):
    """The [s, e) spans of f inside [start, end) that may hold data (SEEK_DATA /
    SEEK_HOLE; the whole window where the file system cannot say)."""
    spans = []
    fd = f.fileno()
    pos = start
    try:
        while pos < end:
            s = os.lseek(fd, pos, os.SEEK_DATA)
            if s >= end:
                break
            e = min(os.lseek(fd, s, os.SEEK_HOLE), end)
            spans.append((s, e))
            pos = e
    except OSError as ex:
        if ex.errno != errno.ENXIO:  # ENXIO: no data after pos
            return [(start, end)]
    return spans


def sparse_copy(src, out, length):
    """out = the first `length` bytes of src (zero past its end), holes kept."""
    with open(out, "wb") as fo:
        fo.truncate(length)
        if not src:
            return
        with open(src, "rb") as fi:
            size = os.fstat(fi.fileno()).st_size
            for s, e in data_spans(fi, 0, min(size, length)):
                fi.seek(s)
                fo.seek(s)
                while s < e:
                    buf = fi.read(min(e - s, 1 << 20))
                    if not buf:
                        break
                    if buf.count(0) != len(buf):
                        fo.write(buf)
                    else:
                        fo.seek(len(buf), 1)
                    s += len(buf)


def cmd_logical(a):
    # The output starts as a sparse copy of the backing file: a whole device of
    # GiBs costs only what is cached in it.
    sparse_copy(a.backing, a.out, a.range)
    replay = load_json(a.replay)
    cmap = chain_map(load_json(a.dump)) if a.dump else {}
    outside = 0
    with open(a.pmem, "rb") as pm, open(a.out, "r+b") as fo:
        for r in replay:
            if r.get("type") != "extent" or (a.clean_only and r.get("dirty", True)):
                continue
            off, length = r["offset"], r["length"]
            dseg = cmap.get(r["cache_seg"], r["cache_seg"])
            dev = SEGMENTS_OFF + dseg * SEG_SIZE + DATA_OFF + r["seg_off"]
            if off >= a.range:
                outside += 1
                continue
            end = min(off + length, a.range)
            if end < off + length:
                outside += 1
            # reads see a key that crosses a 4 MiB window only as far as the end of
            # its first window (doc/format.md §12.11); writeback writes all of it
            end = min(end, (off // WINDOW + 1) * WINDOW)
            pm.seek(dev)
            fo.seek(off)
            fo.write(pm.read(end - off))
    if outside:
        print("logical: %d extents reach past the compared range %d" % (outside, a.range))
        return 1 if a.strict else 0
    return 0


def cmd_cmp(a):
    x = read_range(a.a, a.len) if a.len else open(a.a, "rb").read()
    y = read_range(a.b, a.len) if a.len else open(a.b, "rb").read()
    if x == y:
        return 0
    if len(x) != len(y):
        print("cmp: %s is %d bytes, %s is %d bytes" % (a.a, len(x), a.b, len(y)))
    n = min(len(x), len(y))
    mx, my = memoryview(x), memoryview(y)
    bad = [i for i in range(0, n, 4096) if mx[i : i + 4096] != my[i : i + 4096]]
    if bad:
        b = bad[0]
        first = b + next(i for i in range(4096) if x[b + i] != y[b + i])
        print(
            "cmp: %s and %s differ: first at byte %d (0x%x), %d of %d 4 KiB blocks differ (first blocks at %s)"
            % (a.a, a.b, first, first, len(bad), (n + 4095) // 4096, ", ".join(str(i) for i in bad[:5]))
        )
    return 1


def cmd_diff(a):
    """Byte ranges where two equally long files differ, as `start-end` (half-open)."""
    ranges = []
    chunk = 1 << 20
    with open(a.a, "rb") as fa, open(a.b, "rb") as fb:
        pos = 0
        while True:
            x = fa.read(chunk)
            y = fb.read(chunk)
            if not x and not y:
                break
            if x != y:
                n = max(len(x), len(y))
                x = x.ljust(n, b"\0")
                y = y.ljust(n, b"\0")
                for i in range(n):
                    if x[i] != y[i]:
                        o = pos + i
                        if ranges and o <= ranges[-1][1] + a.gap:
                            ranges[-1][1] = o + 1
                        else:
                            ranges.append([o, o + 1])
            pos += max(len(x), len(y))
    print(" ".join("%d-%d" % (s, e) for s, e in ranges))
    return 0


def sector_diff(a_path, a_off, b_path, b_off, length):
    """[s, e) byte ranges (512-byte sectors, adjacent ones merged) where
    a[a_off:a_off+length] and b[b_off:b_off+length] differ.  Only spans where one
    of them may hold data are read: GiB-sized sparse devices compare in moments."""
    ranges = []
    with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
        spans = [(s - a_off, e - a_off) for s, e in data_spans(fa, a_off, a_off + length)]
        spans += [(s - b_off, e - b_off) for s, e in data_spans(fb, b_off, b_off + length)]
        spans.sort()
        merged = []
        for s, e in spans:
            s -= s % 512
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        for s, e in merged:
            pos = s
            while pos < e:
                n = min(e - pos, 1 << 20)
                fa.seek(a_off + pos)
                fb.seek(b_off + pos)
                x = fa.read(n).ljust(n, b"\0")
                y = fb.read(n).ljust(n, b"\0")
                if x != y:
                    mx, my = memoryview(x), memoryview(y)
                    for i in range(0, n, 512):
                        if mx[i : i + 512] != my[i : i + 512]:
                            o = pos + i
                            if ranges and ranges[-1][1] == o:
                                ranges[-1][1] = o + 512
                            else:
                                ranges.append([o, o + 512])
                pos += n
    return ranges


def cmd_mibs(a):
    """The MiBs of [0, len) where any of the files may hold data, as merged
    `FIRST:COUNT` runs (in MiB); --nonzero: only MiBs that are not all zero."""
    mib = 1 << 20
    used = set()
    for path in a.files:
        with open(path, "rb") as f:
            for s, e in data_spans(f, 0, a.len):
                for m in range(s // mib, (e + mib - 1) // mib):
                    if a.nonzero and m not in used:
                        f.seek(m * mib)
                        buf = f.read(mib)
                        if buf.count(0) == len(buf):
                            continue
                    used.add(m)
    runs = []
    for m in sorted(used):
        if runs and runs[-1][0] + runs[-1][1] == m:
            runs[-1][1] += 1
        else:
            runs.append([m, 1])
    print(" ".join("%d:%d" % (f, n) for f, n in runs))
    return 0


KSET_MAGIC = (0x676894A64E164F1A).to_bytes(8, "little")


def raw_key_spans(path, length):
    """[off, off + len) of every key of every record carrying the kset magic in the
    image, CRC, flags and place not checked: no kernel can index a key outside them."""
    import mmap
    spans = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = data_spans(f, 0, size)
        if not data or size == 0:
            return spans
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
            for s, e in data:
                pos = m.find(KSET_MAGIC, s, e)
                while pos >= 0:
                    start = pos - 8
                    if start >= 0:
                        n = int.from_bytes(m[start + 4 : start + 8], "little")
                        flags = int.from_bytes(m[pos + 8 : pos + 16], "little")
                        n = 0 if flags & 1 else min(n, (e - start - 24) // 40, 4096)
                        for i in range(max(n, 0)):
                            k = start + 24 + 40 * i
                            off = int.from_bytes(m[k : k + 8], "little")
                            ln = int.from_bytes(m[k + 8 : k + 12], "little")
                            # a key longer than a segment cannot name its data
                            if 0 < ln <= SEG_SIZE and off < length:
                                spans.append((off, min(off + ln, length)))
                    pos = m.find(KSET_MAGIC, pos + 8, e)
    return spans


def merge_spans(spans, align, gap):
    """spans rounded out to align, sorted, merged where less than gap apart."""
    out = []
    for s, e in sorted((s - s % align, -(-e // align) * align) for s, e in spans):
        if out and s <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def read_only_ranges(path):
    if not path:
        return None
    with open(path) as f:
        return [tuple(int(x) for x in line.split()) for line in f if line.strip()]


def cmd_ranges(a):
    """`START LEN` lines (bytes, 4 KiB aligned, merged when closer than --gap) of
    [0, len): the data spans of the files and the raw keys of the --img images."""
    spans = []
    for path in a.files:
        with open(path, "rb") as f:
            spans += data_spans(f, 0, a.len)
    for path in a.img:
        spans += raw_key_spans(path, a.len)
    for s, e in merge_spans(spans, 4096, a.gap):
        print(s, min(e, a.len) - s)
    return 0


def cmd_sdiff(a):
    """Sector ranges where two (sparse) files differ, as `start-end` words; with
    --only RANGES (`START LEN` lines) only inside those."""
    only = read_only_ranges(a.only)
    if only is None:
        r = sector_diff(a.a, a.a_off, a.b, a.b_off, a.len)
    else:
        r = []
        for s, n in only:
            r += [[x + s, y + s] for x, y in sector_diff(a.a, a.a_off + s, a.b, a.b_off + s, n)]
    print(" ".join("%d-%d" % (s, e) for s, e in r))
    return 0


def cmd_json_get(a):
    v = load_json(a.file)
    for part in a.path.split("."):
        v = v[int(part)] if isinstance(v, list) else v[part]
    print(v if not isinstance(v, (dict, list)) else json.dumps(v))
    return 0


def read_lines(list_path):
    with open(list_path) as f:
        return [tuple(int(x) for x in line.split()) for line in f if len(line.split()) == 3]


def cmd_cutcheck(a):
    """After a power cut: writes [0, durable) were acknowledged by a FLUSH, writes
    [durable, issued) were in flight.  GOT (the logical device our replay of the cut
    image gives) must hold, in every sector, the acknowledged content or the content
    of one of the writes in flight that cover it.  Says which prefix of the list
    GOT equals, when it equals one."""
    writes = read_lines(a.list)[: a.issued]
    with open(a.blob, "rb") as f:
        blob = f.read()
    buf = read_range(a.base, a.range)
    for off, length, src in writes[: a.durable]:
        buf[off : off + length] = blob[src : src + length]
    got = read_range(a.got, a.range)
    prefix = a.durable if got == buf else None
    bad = {s for s in range(0, a.range, 512) if got[s : s + 512] != buf[s : s + 512]}
    for i in range(a.durable, len(writes)):
        off, length, src = writes[i]
        for s in range(off, off + length, 512):
            if s in bad and got[s : s + 512] == blob[src + s - off : src + s - off + 512]:
                bad.discard(s)
        buf[off : off + length] = blob[src : src + length]
        if prefix is None and got == buf:
            prefix = i + 1
    if bad:
        first = min(bad)
        print("cutcheck: %d sectors hold neither the acknowledged content nor an in-flight write (first at byte %d)"
              % (len(bad), first))
        return 1
    what = "the first %d writes" % prefix if prefix is not None else "no prefix of the list (sectors of several in-flight writes)"
    print("cutcheck: %d writes acknowledged, %d in flight; the image holds %s" % (a.durable, len(writes) - a.durable, what))
    return 0


def cmd_cutprefix(a):
    """The writes of LIST, sector by sector in list order, as the log received them
    (one open kset, 512-byte keys written one at a time): a cut keeps a prefix of
    that sequence.  Finds the longest prefix GOT holds and checks that GOT is BASE
    with exactly that prefix applied."""
    with open(a.blob, "rb") as f:
        blob = f.read()
    got = read_range(a.got, a.range)
    seq = []
    for off, length, src in read_lines(a.list):
        for s in range(0, length, 512):
            seq.append((off + s, src + s))
    k = 0
    while k < len(seq):
        off, src = seq[k]
        if got[off : off + 512] != blob[src : src + 512]:
            break
        k += 1
    want = read_range(a.base, a.range)
    for off, src in seq[:k]:
        want[off : off + 512] = blob[src : src + 512]
    if got != want:
        bad = [s for s in range(0, a.range, 512) if got[s : s + 512] != want[s : s + 512]]
        print("cutprefix: the image holds the first %d of %d sectors, and %d sectors besides (first at byte %d)"
              % (k, len(seq), len(bad), bad[0]))
        return 1
    print("cutprefix: the image holds exactly the first %d of %d sectors of the stream" % (k, len(seq)))
    return 0


def cmd_sparsewrites(a):
    """COUNT writes of LEN bytes, write k at k * STRIDE, data from k * LEN in the
    blob.  The guest's blob has every even 512-byte sector of a write zero (so the
    last sector of a write is data: dd does not write a trailing hole); in the model
    blob those sectors hold what BASE holds at the place they would go."""
    rng = random.Random(a.seed)
    if a.len % 1024 or a.stride < a.len or (a.count - 1) * a.stride + a.len > a.range:
        raise SystemExit("sparsewrites: bad geometry")
    guest = bytearray(rng.randbytes(a.count * a.len))
    base = read_range(a.base, a.range)
    model = bytearray(guest)
    lines = []
    for k in range(a.count):
        off, src = k * a.stride, k * a.len
        for s in range(0, a.len, 1024):
            guest[src + s : src + s + 512] = bytes(512)
            model[src + s : src + s + 512] = base[off + s : off + s + 512]
        lines.append("%d %d %d" % (off, a.len, src))
    with open(a.blob, "wb") as f:
        f.write(guest)
    with open(a.model_blob, "wb") as f:
        f.write(model)
    with open(a.list, "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


STATUS_FIELDS = "sb_flags seg_total cache_segs segs_used gc_percent cache_flags key_head dirty_tail key_tail".split()


def cmd_status_cmp(a):
    """Compare a kernel status line with the one pcache info computed for the image
    the kernel loaded.  --ignore FIELD,... may differ.  --gc: GC may have run between
    the load and the status read: key_tail may be later and, when it is, segs_used
    may be lower (GC freed segments)."""
    k = a.kernel.split()
    t = a.tools.split()
    if len(k) != 9 or len(t) != 9:
        print("status-cmp: malformed: kernel '%s' tools '%s'" % (a.kernel, a.tools))
        return 1
    ignore = set(a.ignore.split(",")) if a.ignore else set()
    kv = dict(zip(STATUS_FIELDS, k))
    tv = dict(zip(STATUS_FIELDS, t))
    if a.gc:
        ignore.add("key_tail")
        if kv["key_tail"] != tv["key_tail"] and int(kv["segs_used"]) <= int(tv["segs_used"]):
            ignore.add("segs_used")
    bad = []
    for f in STATUS_FIELDS:
        if kv[f] == tv[f]:
            continue
        if f in ignore:
            print("status-cmp: note: %s kernel %s tools %s (GC or writeback ran after the load)" % (f, kv[f], tv[f]))
        else:
            bad.append("%s kernel %s tools %s" % (f, kv[f], tv[f]))
    if bad:
        print("status-cmp: differ: " + "; ".join(bad))
        return 1
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("genwrites")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--range", type=int, required=True)
    g.add_argument("--hot-range", type=int, default=0)
    g.add_argument("--hot-pct", type=int, default=70)
    g.add_argument("--min", type=int, default=512)
    g.add_argument("--max", type=int, default=65536)
    g.add_argument("--align", type=int, default=512)
    g.add_argument("--blob-size", type=int, default=8 << 20)
    g.add_argument("--blob", required=True)
    g.add_argument("--list", required=True)
    m = sub.add_parser("model")
    m.add_argument("--range", type=int, required=True)
    m.add_argument("--base")
    m.add_argument("--list", action="append", default=[])
    m.add_argument("--blob", action="append", default=[])
    m.add_argument("--out", required=True)
    lg = sub.add_parser("logical")
    lg.add_argument("--pmem", required=True)
    lg.add_argument("--backing", required=True)
    lg.add_argument("--replay", required=True)
    lg.add_argument("--dump")
    lg.add_argument("--range", type=int, required=True)
    lg.add_argument("--strict", action="store_true")
    lg.add_argument("--clean-only", action="store_true")
    lg.add_argument("--out", required=True)
    c = sub.add_parser("cmp")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--len", type=int, default=0)
    df = sub.add_parser("diff")
    df.add_argument("a")
    df.add_argument("b")
    df.add_argument("--gap", type=int, default=0)
    mb = sub.add_parser("mibs")
    mb.add_argument("files", nargs="+")
    mb.add_argument("--len", type=int, required=True)
    mb.add_argument("--nonzero", action="store_true")
    sd = sub.add_parser("sdiff")
    sd.add_argument("a")
    sd.add_argument("b")
    sd.add_argument("--a-off", type=int, default=0)
    sd.add_argument("--b-off", type=int, default=0)
    sd.add_argument("--len", type=int, required=True)
    sd.add_argument("--only")
    rg = sub.add_parser("ranges")
    rg.add_argument("files", nargs="*")
    rg.add_argument("--img", action="append", default=[])
    rg.add_argument("--len", type=int, required=True)
    rg.add_argument("--gap", type=int, default=64 << 10)
    j = sub.add_parser("json-get")
    j.add_argument("file")
    j.add_argument("path")
    s = sub.add_parser("status-cmp")
    s.add_argument("kernel")
    s.add_argument("tools")
    s.add_argument("--ignore", default="")
    s.add_argument("--gc", action="store_true")
    cc = sub.add_parser("cutcheck")
    cc.add_argument("--range", type=int, required=True)
    cc.add_argument("--base")
    cc.add_argument("--list", required=True)
    cc.add_argument("--blob", required=True)
    cc.add_argument("--durable", type=int, required=True)
    cc.add_argument("--issued", type=int, required=True)
    cc.add_argument("--got", required=True)
    cp = sub.add_parser("cutprefix")
    cp.add_argument("--range", type=int, required=True)
    cp.add_argument("--base")
    cp.add_argument("--list", required=True)
    cp.add_argument("--blob", required=True)
    cp.add_argument("--got", required=True)
    sw = sub.add_parser("sparsewrites")
    sw.add_argument("--seed", type=int, default=1)
    sw.add_argument("--count", type=int, required=True)
    sw.add_argument("--len", type=int, required=True)
    sw.add_argument("--stride", type=int, required=True)
    sw.add_argument("--range", type=int, required=True)
    sw.add_argument("--base")
    sw.add_argument("--blob", required=True)
    sw.add_argument("--model-blob", required=True)
    sw.add_argument("--list", required=True)
    a = p.parse_args()
    return {
        "genwrites": cmd_genwrites,
        "model": cmd_model,
        "logical": cmd_logical,
        "cmp": cmd_cmp,
        "json-get": cmd_json_get,
        "diff": cmd_diff,
        "sdiff": cmd_sdiff,
        "mibs": cmd_mibs,
        "ranges": cmd_ranges,
        "status-cmp": cmd_status_cmp,
        "cutcheck": cmd_cutcheck,
        "cutprefix": cmd_cutprefix,
        "sparsewrites": cmd_sparsewrites,
    }[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
