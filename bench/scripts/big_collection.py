#!/usr/bin/env python3
"""M2.2's big-collection scenario: one hash (or set) of N elements (3M by
default), BGSAVE, and HSET (or SADD) of new elements from one client at
pipeline 1 while the snapshot runs; then kill -9, restart on the same
directory and check the collection is the one at the snapshot's barrier
(log off: the snapshot is all there is). Each write is followed by
`SET seq i` (not timed), so the restarted `seq` says which writes the
snapshot holds (kv-server's barrier follows BGSAVE's reply; Redis's is
the fork inside it).

Prints, per run: the writes done during the snapshot, the slowest and the
99th percentile, the snapshot's duration, RSS before, the extra memory
(the peak RSS growth, plus a fork child's peak Private_Dirty), and whether
the restarted collection is intact (its size, 2,000 sampled original
elements, and the last write it should hold).

BIGCOLL_WRITES=0: no writes during the snapshot (its fixed memory cost).

Usage: [BIGCOLL_WRITES=0] bench/scripts/big_collection.py BINARY PORT hash|set [N [server flags...]]"""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Conn, PeakMemory, start  # noqa: E402

binary, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 3_000_000
extra = sys.argv[5:]
WRITE = os.environ.get("BIGCOLL_WRITES", "1") != "0"
if kind not in ("hash", "set"):
    raise SystemExit("the type is hash or set")
d = tempfile.mkdtemp(prefix="bigcoll-")
signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))

BATCH, PIPE = 500, 20


def element(i):
    return b"element:%09d" % i


def add_args(names):
    if kind == "hash":
        args = ["HSET", "big"]
        for name in names:
            args += [name, b"value-of-" + name]
        return args
    return ["SADD", "big"] + list(names)


def size(c):
    return c.cmd("HLEN" if kind == "hash" else "SCARD", "big")


def holds(c, name):
    if kind == "hash":
        return c.cmd("HGET", "big", name) == b"value-of-" + name
    return c.cmd("SISMEMBER", "big", name) == 1


p, c = start(binary, port, d, extra)
try:
    sent = 0
    for lo in range(0, n, BATCH * PIPE):
        k = 0
        for b in range(lo, min(n, lo + BATCH * PIPE), BATCH):
            c.send(*add_args(element(i) for i in range(b, min(n, b + BATCH))))
            k += 1
        for _ in range(k):
            c.reply()
    assert size(c) == n, size(c)
    encoding = c.cmd("OBJECT", "ENCODING", "big")
    time.sleep(1.0)
    mem = PeakMemory(p.pid)
    ctl = Conn.to(port)
    lat, written = [], 0
    t0 = time.perf_counter()
    c.cmd("BGSAVE")
    while not WRITE:
        time.sleep(0.005)
        if ctl.info_field("persistence", "rdb_bgsave_in_progress") == "0":
            lat = [0.0]
            break
    while WRITE:
        for _ in range(100):
            name = b"new:%09d" % written
            w0 = time.perf_counter()
            c.cmd(*add_args([name]))
            lat.append(time.perf_counter() - w0)
            c.cmd("SET", "seq", written)
            written += 1
        if ctl.info_field("persistence", "rdb_bgsave_in_progress") == "0":
            break
    took = time.perf_counter() - t0
    mem.stop()
    status = ctl.info_field("persistence", "rdb_last_bgsave_status")
    p.kill()
    p.wait()

    p, c = start(binary, port, d, extra)
    seq = c.cmd("GET", "seq")
    held = int(seq) + 1 if seq is not None else 0
    # The barrier may fall between a write and its SET seq.
    if held < written and holds(c, b"new:%09d" % held):
        held += 1
    got = size(c)
    rng = random.Random(5)
    missing = [i for i in (rng.randrange(n) for _ in range(2000)) if not holds(c, element(i))]
    last_ok = held == 0 or holds(c, b"new:%09d" % (held - 1))
    intact = got == n + held and not missing and last_ok
    if not intact:
        print(f"restarted: size={got} want={n + held} sampled elements missing={len(missing)} last write held={last_ok}")
    lat.sort()
    print(f"server={os.path.basename(binary)} type={kind} elements={n} encoding={encoding.decode()} "
          f"writes={len(lat)} max_ms={lat[-1] * 1e3:.2f} p99_ms={lat[int(len(lat) * 0.99)] * 1e3:.2f} "
          f"p50_ms={lat[len(lat) // 2] * 1e3:.3f} snapshot_s={took:.2f} status={status} "
          f"writes_in_snapshot={held} rss_before_MiB={mem.base / 2**20:.0f} "
          f"peak_parent_MiB={mem.parent / 2**20:.0f} child_private_dirty_MiB={mem.child / 2**20:.0f} "
          f"extra_MiB={mem.extra() / 2**20:.0f} extra_pct={100 * mem.extra() / mem.base:.0f} intact={intact}")
finally:
    p.kill()
    p.wait()
    subprocess.run(["rm", "-rf", d])
