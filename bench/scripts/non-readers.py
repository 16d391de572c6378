#!/usr/bin/env python3
"""M2.0's hostile-client scenario: N clients on loopback pipeline GET of a
1 MB value for 8 s and never read. Starts the server itself (log and
snapshots off, a temporary data directory) and prints its peak VmRSS while
they are connected and its VmRSS 3 s after they disconnect.

Usage: bench/scripts/non-readers.py KV_SERVER_BIN N PORT [server flags...]"""
import socket, subprocess, sys, time, os, tempfile

binary, nclients, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
extra = sys.argv[4:]
d = tempfile.mkdtemp(prefix="obuf-")
p = subprocess.Popen([binary, "--port", str(port), "--dir", d, "--appendonly", "no", "--save", ""] + extra,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def rss():
    with open(f"/proc/{p.pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1]) * 1024
def connect():
    for _ in range(100):
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")
def cmd(s, *args):
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    s.sendall(out)
try:
    c = connect()
    cmd(c, b"SET", b"big", b"x" * (1 << 20))
    c.recv(100)
    time.sleep(0.3)
    base = rss()
    hostile = []
    one = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"
    for _ in range(nclients):
        s = connect()
        s.setblocking(False)
        hostile.append(s)
    peak = base
    t0 = time.time()
    sent = [0] * nclients
    while time.time() - t0 < 8:
        for i, s in enumerate(hostile):
            try:
                sent[i] += s.send(one * 1000)
            except (BlockingIOError, OSError):
                pass
        peak = max(peak, rss())
        time.sleep(0.05)
    alive = 0
    for s in hostile:
        try:
            s.send(one)
            alive += 1
        except OSError:
            pass
    for s in hostile:
        s.close()
    time.sleep(3)
    after = rss()
    print(f"clients={nclients} base={base/2**20:.0f}MiB peak={peak/2**20:.0f}MiB after_close={after/2**20:.0f}MiB "
          f"still_open_at_end={alive} cmds_sent_per_client={[x//len(one) for x in sent]}")
finally:
    p.terminate(); p.wait()
