#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""NBD client for the serve tests and the NBD benchmark (python3-libnbd).

Writes pseudo-random data through an NBD export and keeps a model of what the
export must hold (a plain file of the export's size), then checks the export
against it.

  nbdmodel.py write URI MODEL [--seed S] [--count N] [--region OFF:LEN]
              [--min-len B] [--max-len B] [--flush-every K] [--fua-pct P]
              [--no-final-flush] [--disjoint] [--depth D]
  nbdmodel.py verify URI MODEL [--region OFF:LEN]
  nbdmodel.py crashcheck URI BEFORE AFTER
  nbdmodel.py concurrent URI MODEL --conns K [--seed S] [--count N] [--depth D]
  nbdmodel.py unaligned URI MODEL [--seed S] [--count N]

write: N writes (sector-aligned, MIN..MAX bytes, inside the region), each
applied to MODEL once the server acknowledged it; a FLUSH every K writes and
at the end.  --disjoint: no two writes touch the same sector (crash tests).
--depth D: up to D requests in flight on the connection (never two
overlapping ones).  verify: the export equals MODEL (exit 1 and the first
differing offset otherwise).  crashcheck: every 512-byte sector of the export
equals BEFORE (what was flushed) or AFTER (BEFORE plus the unflushed writes).
concurrent: K processes, each its own connection, write disjoint slices of
the export at once (the model is written by each for its own slice).
unaligned: writes at byte offsets and lengths (the client's strict alignment
checks off): the server must read-modify-write the sectors around them.
Exit: 0 ok, 1 mismatch or NBD error, 2 usage.
"""

import argparse
import multiprocessing
import os
import random
import sys

import nbd

SECTOR = 512
POOL_SIZE = 8 << 20


def pool(seed):
    """8 MiB of pseudo-random bytes; writes take slices of it at random offsets."""
    return random.Random(seed ^ 0x5EED).randbytes(POOL_SIZE)


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def parse_size(s):
    """12345, 0x1000, 64K, 32M, 1G."""
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:].upper(), 1)
    return int(s[:-1] if mult > 1 else s, 0) * mult


def region(arg, size):
    if not arg:
        return 0, size
    off, length = (parse_size(x) for x in arg.split(":"))
    if off % SECTOR or length % SECTOR or off + length > size:
        sys.exit("nbdmodel: bad region %s for an export of %d bytes" % (arg, size))
    return off, length


class Writer:
    """Writes on one handle with up to depth requests in flight, never overlapping."""

    def __init__(self, h, model, depth):
        self.h, self.model, self.depth = h, model, depth
        self.inflight = {}   # cookie -> (off, data)

    def _reap(self, block):
        while True:
            for cookie in list(self.inflight):
                if self.h.aio_command_completed(cookie):
                    off, data, _ = self.inflight.pop(cookie)
                    self.model.seek(off)
                    self.model.write(data)
            if not block or len(self.inflight) < self.depth:
                return
            self.h.poll(-1)

    def _overlaps(self, off, n):
        return any(off < o + len(d) and o < off + n for o, d, _ in self.inflight.values())

    def write(self, off, data, fua):
        if self.depth <= 1:
            self.h.pwrite(data, off, nbd.CMD_FLAG_FUA if fua else 0)
            self.model.seek(off)
            self.model.write(data)
            return
        while self._overlaps(off, len(data)) or len(self.inflight) >= self.depth:
            self.h.poll(-1)
            self._reap(False)
        buf = nbd.Buffer.from_bytearray(bytearray(data))
        cookie = self.h.aio_pwrite(buf, off, flags=nbd.CMD_FLAG_FUA if fua else 0)
        self.inflight[cookie] = (off, data, buf)

    def drain(self):
        while self.inflight:
            self.h.poll(-1)
            self._reap(False)

    def flush(self):
        self.drain()
        self.h.flush()


def do_writes(uri, model_path, seed, count, reg, min_len, max_len, flush_every, fua_pct,
              final_flush, disjoint, depth):
    rng = random.Random(seed)
    data_pool = pool(seed)
    h = connect(uri)
    off0, length = reg
    used = set()   # sectors written (disjoint mode)
    with open(model_path, "r+b") as model:
        w = Writer(h, model, depth)
        for i in range(count):
            n = rng.randrange(min_len // SECTOR, max_len // SECTOR + 1) * SECTOR
            n = min(n, length)
            for _ in range(1000):
                off = off0 + rng.randrange(0, (length - n) // SECTOR + 1) * SECTOR
                secs = range(off // SECTOR, (off + n) // SECTOR)
                if not disjoint or not any(s in used for s in secs):
                    break
            else:
                sys.exit("nbdmodel: no room left for disjoint writes")
            if disjoint:
                used.update(secs)
            p = rng.randrange(0, POOL_SIZE - n + 1)
            w.write(off, data_pool[p:p + n], rng.randrange(100) < fua_pct)
            if flush_every and (i + 1) % flush_every == 0:
                w.flush()
        if final_flush:
            w.flush()
        else:
            w.drain()
    h.shutdown()


def cmd_write(a):
    h = connect(a.uri)
    size = h.get_size()
    h.shutdown()
    do_writes(a.uri, a.model, a.seed, a.count, region(a.region, size), a.min_len, a.max_len,
              a.flush_every, a.fua_pct, not a.no_final_flush, a.disjoint, a.depth)
    return 0


def cmd_verify(a):
    h = connect(a.uri)
    size = h.get_size()
    off, length = region(a.region, size)
    chunk = 4 << 20
    with open(a.model, "rb") as model:
        pos = off
        while pos < off + length:
            n = min(chunk, off + length - pos)
            got = h.pread(n, pos)
            model.seek(pos)
            want = model.read(n)
            want += bytes(n - len(want))
            if got != want:
                i = next(k for k in range(n) if got[k] != want[k])
                print("nbdmodel: mismatch at offset %d" % (pos + i), file=sys.stderr)
                return 1
            pos += n
    h.shutdown()
    return 0


def cmd_crashcheck(a):
    h = connect(a.uri)
    size = h.get_size()
    chunk = 4 << 20
    new = 0
    with open(a.before, "rb") as before, open(a.after, "rb") as after:
        for pos in range(0, size, chunk):
            n = min(chunk, size - pos)
            got = h.pread(n, pos)
            b = before.read(n)
            b += bytes(n - len(b))
            c = after.read(n)
            c += bytes(n - len(c))
            if got == b:
                continue
            for s in range(0, n, SECTOR):
                g = got[s:s + SECTOR]
                if g == b[s:s + SECTOR]:
                    continue
                if g == c[s:s + SECTOR]:
                    new += 1
                    continue
                print("nbdmodel: sector at offset %d is neither the flushed data nor an "
                      "unflushed write" % (pos + s), file=sys.stderr)
                return 1
    h.shutdown()
    print("%d sectors of unflushed writes survived" % new)
    return 0


def worker(args):
    uri, model, seed, count, reg, depth = args
    do_writes(uri, model, seed, count, reg, SECTOR, 128 << 10, 16, 10, True, False, depth)


def cmd_concurrent(a):
    h = connect(a.uri)
    size = h.get_size()
    h.shutdown()
    slice_len = size // a.conns // SECTOR * SECTOR
    jobs = [(a.uri, a.model, a.seed + i, a.count, (i * slice_len, slice_len), a.depth)
            for i in range(a.conns)]
    with multiprocessing.Pool(a.conns) as p:
        p.map(worker, jobs)
    return 0


def cmd_unaligned(a):
    rng = random.Random(a.seed)
    data_pool = pool(a.seed)
    h = nbd.NBD()
    h.set_strict_mode(0)
    h.connect_uri(a.uri)
    size = h.get_size()
    with open(a.model, "r+b") as model:
        for _ in range(a.count):
            n = rng.randrange(1, 3 * SECTOR)
            off = rng.randrange(0, min(size, 1 << 20) - n)
            p = rng.randrange(0, POOL_SIZE - n)
            data = data_pool[p:p + n]
            h.pwrite(data, off)
            model.seek(off)
            model.write(data)
            if h.pread(n, off) != data:
                print("nbdmodel: unaligned write at %d+%d not read back" % (off, n),
                      file=sys.stderr)
                return 1
    h.flush()
    h.shutdown()
    return 0


def main():
    ap = argparse.ArgumentParser(prog="nbdmodel.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("uri")
    w.add_argument("model")
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--count", type=int, default=200)
    w.add_argument("--region")
    w.add_argument("--min-len", type=int, default=SECTOR)
    w.add_argument("--max-len", type=int, default=256 << 10)
    w.add_argument("--flush-every", type=int, default=0)
    w.add_argument("--fua-pct", type=int, default=0)
    w.add_argument("--no-final-flush", action="store_true")
    w.add_argument("--disjoint", action="store_true")
    w.add_argument("--depth", type=int, default=1)
    v = sub.add_parser("verify")
    v.add_argument("uri")
    v.add_argument("model")
    v.add_argument("--region")
    c = sub.add_parser("crashcheck")
    c.add_argument("uri")
    c.add_argument("before")
    c.add_argument("after")
    k = sub.add_parser("concurrent")
    k.add_argument("uri")
    k.add_argument("model")
    k.add_argument("--conns", type=int, default=4)
    k.add_argument("--seed", type=int, default=1)
    k.add_argument("--count", type=int, default=200)
    k.add_argument("--depth", type=int, default=8)
    u = sub.add_parser("unaligned")
    u.add_argument("uri")
    u.add_argument("model")
    u.add_argument("--seed", type=int, default=1)
    u.add_argument("--count", type=int, default=100)
    a = ap.parse_args()
    try:
        return {"write": cmd_write, "verify": cmd_verify, "crashcheck": cmd_crashcheck,
                "concurrent": cmd_concurrent, "unaligned": cmd_unaligned}[a.cmd](a)
    except nbd.Error as e:
        print("nbdmodel: %s: %s" % (a.cmd, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
