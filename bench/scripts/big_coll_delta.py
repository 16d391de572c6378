#!/usr/bin/env python3
"""M2.1's delta of a big hash or set: one hash (or set) of N elements (3M
by default), BGSAVE (a full snapshot), then a few writes (HSET of an
existing and of a new field and HDEL; or SADD and SREM), BGSAVE again (a
delta), and the size of that delta: INFO's rdb_last_snapshot_bytes and its
files on disk. Then a restart on the chain alone (log off) checks the
value: its size, the fields written, and a digest of all of it.

Prints one line per run: type, elements, writes, full bytes, delta bytes,
delta files on disk, intact.

Usage: bench/scripts/big_coll_delta.py BINARY PORT hash|set [N [writes [server flags...]]]
  BINARY: a kv-server (started with --port PORT --dir TMPDIR --save ""
  --appendonly no)."""
import hashlib
import os
import random
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import start  # noqa: E402

binary, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 3_000_000
writes = int(sys.argv[5]) if len(sys.argv) > 5 else 3
extra = sys.argv[6:]
if kind not in ("hash", "set"):
    raise SystemExit("the type is hash or set")
d = tempfile.mkdtemp(prefix="bigcolldelta-")
signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
BATCH, PIPE = 500, 20


def element(i):
    return b"element:%09d" % i


def bgsave(c):
    c.cmd("BGSAVE")
    while c.info_field("persistence", "rdb_bgsave_in_progress") != "0":
        time.sleep(0.01)
    return int(c.info_field("persistence", "rdb_last_snapshot_bytes"))


def files(suffix):
    sd = os.path.join(d, "snapshotdir")
    return sum(os.path.getsize(os.path.join(sd, f)) for f in os.listdir(sd) if suffix in f)


def digest(c):
    """A digest of the whole value, whatever its order (HSCAN/SSCAN)."""
    acc = 0
    cursor = b"0"
    count = 0
    while True:
        if kind == "hash":
            cursor, items = c.cmd("HSCAN", "big", cursor, "COUNT", 10000)
            pairs = zip(items[::2], items[1::2])
            for f, v in pairs:
                acc ^= int.from_bytes(hashlib.blake2b(f + b"\0" + v, digest_size=8).digest(), "little")
                count += 1
        else:
            cursor, items = c.cmd("SSCAN", "big", cursor, "COUNT", 10000)
            for m in items:
                acc ^= int.from_bytes(hashlib.blake2b(m, digest_size=8).digest(), "little")
                count += 1
        if cursor == b"0":
            return acc, count


p, c = start(binary, port, d, extra)
try:
    for lo in range(0, n, BATCH * PIPE):
        k = 0
        for b in range(lo, min(n, lo + BATCH * PIPE), BATCH):
            if kind == "hash":
                args = ["HSET", "big"]
                for i in range(b, min(n, b + BATCH)):
                    args += [element(i), b"value-of-" + element(i)]
            else:
                args = ["SADD", "big"] + [element(i) for i in range(b, min(n, b + BATCH))]
            c.send(*args)
            k += 1
        for _ in range(k):
            c.reply()
    full = bgsave(c)
    rng = random.Random(7)
    for w in range(writes):
        i = rng.randrange(n)
        if kind == "hash":
            if w % 3 == 0:
                c.cmd("HSET", "big", element(i), b"changed")
            elif w % 3 == 1:
                c.cmd("HSET", "big", b"new:%d" % w, b"new")
            else:
                c.cmd("HDEL", "big", element(i))
        else:
            if w % 2 == 0:
                c.cmd("SADD", "big", b"new:%d" % w)
            else:
                c.cmd("SREM", "big", element(i))
    delta = bgsave(c)
    kind_saved = c.info_field("persistence", "rdb_last_snapshot_kind")
    on_disk = files(".delta.")
    want = digest(c)
    p.kill()
    p.wait()
    p, c = start(binary, port, d, extra)
    intact = digest(c) == want
    print(f"{kind} of {n} elements, {writes} writes: full {full} bytes, {kind_saved} {delta} bytes "
          f"({on_disk} bytes of files), intact after restart: {'yes' if intact else 'NO'} "
          f"({want[1]} elements)")
finally:
    p.kill()
    p.wait()
    shutil.rmtree(d, ignore_errors=True)
