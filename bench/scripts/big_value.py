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
import hashlib, os, random, signal, socket, subprocess, sys, tempfile, threading, time

binary, port = sys.argv[1], int(sys.argv[2])
mib = int(sys.argv[3]) if len(sys.argv) > 3 else 192
extra = sys.argv[4:]
size = mib << 20
# BIGVAL_WRITES=0: no writes during the snapshot (its fixed memory cost).
WRITE = os.environ.get("BIGVAL_WRITES", "1") != "0"
is_redis = os.path.basename(binary).startswith("redis")
d = tempfile.mkdtemp(prefix="bigval-")
# A timeout's SIGTERM still stops the server and removes the directory.
signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))


def start():
    p = subprocess.Popen([binary, "--port", str(port), "--dir", d, "--save", "", "--appendonly", "no"] + extra,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return p, Conn(s)
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("server did not start")


class Conn:
    def __init__(self, s):
        self.s, self.buf = s, bytearray()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, (bytes, bytearray)) else str(a).encode()
            out.append(b"$%d\r\n" % len(a))
            out.append(a)
            out.append(b"\r\n")
        self.s.sendall(b"".join(out))

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill()

    def _fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise SystemExit("connection closed")
        self.buf += chunk

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"-":
            raise SystemExit("error reply: %r" % rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            v = bytes(self.buf[:n])
            del self.buf[:n + 2]
            return v
        if t == b":":
            return int(rest)
        return rest

    def cmd(self, *args):
        self.send(*args)
        return self.reply()


def pattern(i):
    """The i-th MiB of the value: deterministic, not compressible."""
    return hashlib.shake_256(b"big%d" % i).digest(1 << 20)


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def private_dirty(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def info_field(c, name):
    text = c.cmd("INFO", "persistence").decode()
    for line in text.split("\r\n"):
        if line.startswith(name + ":"):
            return line.split(":", 1)[1]
    return None


p, c = start()
try:
    for i in range(mib):
        c.cmd("APPEND", "big", pattern(i))
    assert c.cmd("STRLEN", "big") == size
    time.sleep(1.0)
    base = rss(p.pid)
    stop = threading.Event()
    peak = {"parent": base, "child": 0}

    def sample():
        while not stop.is_set():
            peak["parent"] = max(peak["parent"], rss(p.pid))
            child = sum(private_dirty(k) for k in children(p.pid))
            peak["child"] = max(peak["child"], child)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    ctl = Conn(socket.create_connection(("127.0.0.1", port)))
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
        if info_field(ctl, "rdb_bgsave_in_progress") == "0":
            break
    took = time.perf_counter() - t0
    stop.set()
    sampler.join()
    status = info_field(ctl, "rdb_last_bgsave_status")
    p.kill()
    p.wait()

    p, c = start()
    for _ in range(600):
        try:
            if c.cmd("STRLEN", "big") is not None:
                break
        except (OSError, SystemExit):
            time.sleep(0.1)
            try:
                c = Conn(socket.create_connection(("127.0.0.1", port)))
            except OSError:
                pass
            continue
        time.sleep(0.1)
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
    extra_bytes = peak["parent"] - base + peak["child"]
    print(f"server={os.path.basename(binary)} value={mib}MiB writes={len(lat)} "
          f"max_ms={lat[-1] * 1e3:.2f} p99_ms={lat[int(len(lat) * 0.99)] * 1e3:.2f} "
          f"p50_ms={lat[len(lat) // 2] * 1e3:.3f} snapshot_s={took:.2f} status={status} "
          f"writes_in_snapshot={len(held)} "
          f"rss_before_MiB={base / 2**20:.0f} peak_parent_MiB={peak['parent'] / 2**20:.0f} "
          f"child_private_dirty_MiB={peak['child'] / 2**20:.0f} "
          f"extra_MiB={extra_bytes / 2**20:.0f} extra_pct={100 * extra_bytes / base:.0f} intact={intact}")
finally:
    p.kill()
    p.wait()
    subprocess.run(["rm", "-rf", d])
