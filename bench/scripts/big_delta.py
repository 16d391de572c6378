#!/usr/bin/env python3
"""M2.1's delta of a big value: one MiB-sized string built by APPEND of
incompressible MiBs, BGSAVE (a full snapshot), then SETRANGE of a few
single bytes at random offsets, BGSAVE again (a delta), and the size of
that delta: INFO's rdb_last_snapshot_bytes and its files on disk. Then a
restart on the chain alone (log off) checks the value (its sha256).

Prints one line per run: MiB, writes, full bytes, delta bytes, delta files
on disk, intact.

Usage: bench/scripts/big_delta.py BINARY PORT [MiB [writes [server flags...]]]
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

binary, port = sys.argv[1], int(sys.argv[2])
mib = int(sys.argv[3]) if len(sys.argv) > 3 else 192
writes = int(sys.argv[4]) if len(sys.argv) > 4 else 2
extra = sys.argv[5:]
d = tempfile.mkdtemp(prefix="bigdelta-")
signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))


def pattern(i):
    return hashlib.shake_256(b"big%d" % i).digest(1 << 20)


def bgsave(c):
    c.cmd("BGSAVE")
    while c.info_field("persistence", "rdb_bgsave_in_progress") != "0":
        time.sleep(0.01)
    return int(c.info_field("persistence", "rdb_last_snapshot_bytes"))


def files(suffix):
    sd = os.path.join(d, "snapshotdir")
    return sum(os.path.getsize(os.path.join(sd, n)) for n in os.listdir(sd) if suffix in n)


p, c = start(binary, port, d, extra)
try:
    value = bytearray()
    for i in range(mib):
        c.cmd("APPEND", "big", pattern(i))
        value += pattern(i)
    full = bgsave(c)
    rng = random.Random(7)
    for _ in range(writes):
        at = rng.randrange(len(value))
        c.cmd("SETRANGE", "big", at, b"!")
        value[at:at + 1] = b"!"
    delta = bgsave(c)
    kind = c.info_field("persistence", "rdb_last_snapshot_kind")
    on_disk = files(".delta.")
    p.kill()
    p.wait()
    p, c = start(binary, port, d, extra)
    intact = hashlib.sha256(c.cmd("GET", "big")).digest() == hashlib.sha256(value).digest()
    print(f"{mib} MiB, {writes} SETRANGEs: full {full} bytes, {kind} {delta} bytes "
          f"({on_disk} bytes of files), intact after restart: {'yes' if intact else 'NO'}")
finally:
    p.kill()
    p.wait()
    shutil.rmtree(d, ignore_errors=True)
