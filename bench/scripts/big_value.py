#!/usr/bin/env python3
"""M2.1's big-value scenario: one 192 MiB string, BGSAVE, and SETRANGE of
single bytes at random offsets from one client at pipeline 1 while the
snapshot runs; then kill -9, restart on the same directory and check the
value is the one at the snapshot's barrier (log off: the snapshot is all
there is). Redis's barrier is the fork, inside BGSAVE; kv-server's follows
BGSAVE's reply, so each write is followed by `SET seq i` (not timed) and
the restarted `seq` says which writes the snapshot holds.

Prints, per run: the writes done during the snapshot, the slowest one and
the 99th percentile, the snapshot's duration, RSS before, the peak RSS
during the snapshot and the extra memory (peak minus before; for a forking
server, the parent's peak growth plus the child's peak Private_Dirty from
/proc/CHILD/smaps_rollup), and whether the restarted value is intact.

Usage: [BIGVAL_WRITES=0] bench/scripts/big_value.py BINARY PORT [MiB [server flags...]]
  BINARY: target/release/kv-server or redis-server (started with
  --port PORT --dir TMPDIR --save "" --appendonly no)."""
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Conn, PeakMemory, start  # noqa: E402

binary, port = sys.argv[1], int(sys.argv[2])
mib = int(sys.argv[3]) if len(sys.argv) > 3 else 192
extra = sys.argv[4:]
size = mib << 20
# BIGVAL_WRITES=0: no writes during the snapshot (its fixed memory cost).
WRITE = os.environ.get("BIGVAL_WRITES", "1") != "0"
d = tempfile.mkdtemp(prefix="bigval-")
# A timeout's SIGTERM still stops the server and removes the directory.
signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))


def pattern(i):
    """The i-th MiB of the value: deterministic, not compressible."""
    return hashlib.shake_256(b"big%d" % i).digest(1 << 20)



p, c = start(binary, port, d, extra)
try:
    for i in range(mib):
        c.cmd("APPEND", "big", pattern(i))
    assert c.cmd("STRLEN", "big") == size
    time.sleep(1.0)
    mem = PeakMemory(p.pid)
    ctl = Conn.to(port)
    rng = random.Random(7)
    lat, offsets = [], []
    t0 = time.perf_counter()
    c.cmd("BGSAVE")
    while True:
        for _ in range(100 if WRITE else 0):
            off = rng.randrange(size)
            w0 = time.perf_counter()
            c.cmd("SETRANGE", "big", off, b"!")
            lat.append(time.perf_counter() - w0)
            c.cmd("SET", "seq", len(offsets))
            offsets.append(off)
        if not WRITE:
            time.sleep(0.005)
        if ctl.info_field("persistence", "rdb_bgsave_in_progress") == "0":
            break
    took = time.perf_counter() - t0
    mem.stop()
    status = ctl.info_field("persistence", "rdb_last_bgsave_status")
    p.kill()
    p.wait()

    p, c = start(binary, port, d, extra)
    # The value at the barrier: the pattern with the writes up to `seq`,
    # and maybe the one after it (the barrier can fall between a SETRANGE
    # and its SET seq).
    seq = c.cmd("GET", "seq")
    n = int(seq) + 1 if seq is not None else 0
    if n < len(offsets):
        nxt = offsets[n]
        got = c.cmd("GETRANGE", "big", nxt, nxt)
        if got == b"!" and pattern(nxt >> 20)[nxt & ((1 << 20) - 1)] != ord("!"):
            n += 1
    held = offsets[:n]
    step = 1 << 20
    patches = {}
    for off in held:
        patches.setdefault(off // step, []).append(off % step)
    bad = []
    for i in range(mib):
        want = bytearray(pattern(i))
        for at in patches.get(i, []):
            want[at] = ord("!")
        if c.cmd("GETRANGE", "big", i * step, (i + 1) * step - 1) != want:
            bad.append(i)
    strlen = c.cmd("STRLEN", "big")
    intact = not bad and strlen == size
    if not intact:
        print(f"restarted: STRLEN={strlen} MiB pieces that differ: {len(bad)} first={bad[:5]}")
    lat = sorted(lat) or [0.0]
    extra_bytes = mem.extra()
    print(f"server={os.path.basename(binary)} value={mib}MiB writes={len(lat)} "
          f"max_ms={lat[-1] * 1e3:.2f} p99_ms={lat[int(len(lat) * 0.99)] * 1e3:.2f} "
          f"p50_ms={lat[len(lat) // 2] * 1e3:.3f} snapshot_s={took:.2f} status={status} "
          f"writes_in_snapshot={len(held)} "
          f"rss_before_MiB={mem.base / 2**20:.0f} peak_parent_MiB={mem.parent / 2**20:.0f} "
          f"child_private_dirty_MiB={mem.child / 2**20:.0f} "
          f"extra_MiB={extra_bytes / 2**20:.0f} extra_pct={100 * extra_bytes / mem.base:.0f} intact={intact}")
finally:
    p.kill()
    p.wait()
    subprocess.run(["rm", "-rf", d])
