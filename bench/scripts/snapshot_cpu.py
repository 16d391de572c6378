#!/usr/bin/env python3
"""CPU of each kv-server thread across its next snapshot (M2.1 the value
copy off the loop): run it beside a script that starts the server on PORT
(big_value.py, big_collection.py). It polls INFO persistence every 5 ms
and reads /proc/PID/task/*/schedstat (ns on a CPU) and stat (utime+stime,
10 ms ticks) when rdb_bgsave_in_progress turns 1 and for the last time it
is 1 (the script may kill the server as soon as it turns 0). Appends one
line to OUT: per thread name (numbers stripped) ns-based ms / tick-based
ms, LATENCY LATEST with latency-monitor-threshold 1, the peak pending
bytes, then each thread's ms.

Usage: bench/scripts/snapshot_cpu.py PORT OUT &
       bench/scripts/big_value.py BINARY PORT 192; wait"""
import os, re, socket, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Conn

port = int(sys.argv[1])
out = sys.argv[2]

def pid_of(port):
    r = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    m = re.search(r"pid=(\d+)", r)
    return int(m.group(1)) if m else None

def threads(pid):
    res = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            ns = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
            st = open(f"/proc/{pid}/task/{tid}/stat").read()
            f = st[st.rindex(")") + 2:].split()
            ticks = int(f[11]) + int(f[12])
            res[tid] = (comm, ns, ticks)
        except OSError:
            pass
    return res

while True:
    try:
        c = Conn.to(port)
        c.cmd("PING")
        break
    except (OSError, SystemExit):
        time.sleep(0.02)
pid = pid_of(port)
c.cmd("CONFIG", "SET", "latency-monitor-threshold", "1")
c.cmd("LATENCY", "RESET")
while c.info_field("persistence", "rdb_bgsave_in_progress") != "1":
    time.sleep(0.005)
t0 = time.perf_counter()
a = threads(pid)
b, wall = a, 0.0
while c.info_field("persistence", "rdb_bgsave_in_progress") == "1":
    # The latest whole sample (the script may kill the server as soon as
    # the snapshot is done).
    x = threads(pid)
    if len(x) >= len(a):
        b = x
        wall = time.perf_counter() - t0
    time.sleep(0.005)
x = threads(pid)
if len(x) >= len(a):
    b = x
    wall = time.perf_counter() - t0
try:
    lat = c.cmd("LATENCY", "LATEST")
    peak = c.info_field("persistence", "rdb_last_snapshot_peak_pending_bytes")
except (OSError, SystemExit):
    lat, peak = [], "?"
groups = {}
for tid, (comm, ns, ticks) in b.items():
    ns0, t0_ = (a[tid][1], a[tid][2]) if tid in a else (0, 0)
    g = re.sub(r"-?\d+$", "", comm)
    x = groups.setdefault(g, [0, 0])
    x[0] += ns - ns0
    x[1] += ticks - t0_
with open(out, "a") as f:
    parts = " ".join(f"{g}={v[0]/1e6:.0f}ms/{v[1]*10}ms" for g, v in sorted(groups.items()) if v[0] > 0)
    lats = ";".join(f"{e[0].decode()}:{e[2]}ms" for e in (lat or []))
    per = " ".join(f"{comm}={(ns - a[tid][1])/1e6:.0f}" for tid, (comm, ns, _) in sorted(b.items()) if tid in a and ns - a[tid][1] > 1e6)
    f.write(f"wall_s={wall:.2f} {parts} latency_max=[{lats}] peak_pending={peak} | {per}\n")
