"""Shared parts of the snapshot-under-writes scenarios (big_value.py,
big_collection.py): a server started on a temporary directory with the log
off, a blocking RESP connection, and the process memory readings (RSS, and
for a forking server its children's Private_Dirty)."""
import os
import socket
import subprocess
import threading
import time


class Conn:
    """A blocking RESP2 connection; error replies stop the script."""

    def __init__(self, s):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s, self.buf = s, bytearray()

    @staticmethod
    def to(port):
        return Conn(socket.create_connection(("127.0.0.1", port)))

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
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        return rest

    def cmd(self, *args):
        self.send(*args)
        return self.reply()

    def info_field(self, section, name):
        for line in self.cmd("INFO", section).decode().split("\r\n"):
            if line.startswith(name + ":"):
                return line.split(":", 1)[1]
        return None


def start(binary, port, directory, extra):
    """The server on `directory` with the log off and no save rules; its
    process and a connection once it answers."""
    p = subprocess.Popen(
        [binary, "--port", str(port), "--dir", directory, "--save", "", "--appendonly", "no"] + extra,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):
        try:
            c = Conn.to(port)
            while True:
                try:
                    c.cmd("PING")
                    return p, c
                except SystemExit:  # -LOADING
                    time.sleep(0.05)
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("server did not start")


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


class PeakMemory:
    """Samples a server every 5 ms until stopped: its peak RSS, and the peak
    Private_Dirty of its children (a fork's copies)."""

    def __init__(self, pid):
        self.pid, self.base = pid, rss(pid)
        self.parent, self.child = self.base, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.parent = max(self.parent, rss(self.pid))
            self.child = max(self.child, sum(private_dirty(k) for k in children(self.pid)))
            time.sleep(0.005)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def extra(self):
        """Bytes over the RSS before: the parent's growth plus the child's."""
        return self.parent - self.base + self.child


def is_redis(binary):
    return os.path.basename(binary).startswith(("redis", "valkey"))
