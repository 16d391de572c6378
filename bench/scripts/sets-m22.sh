#!/usr/bin/env bash
# M2.2 sets: kv-server beside redis-server, persistence off for both.
#
#   bash bench/scripts/sets-m22.sh memory   # used_memory: 100k sets of 10
#                                           # integers, one set of 1M members
#   bash bench/scripts/sets-m22.sh bench    # redis-benchmark -t sadd,spop,
#                                           # -P 1 and 16, 3 alternating runs,
#                                           # without and with -r 1000000
#   bash bench/scripts/sets-m22.sh bgsave   # SADD round trips into a set of
#                                           # 3M members while BGSAVE runs
#
# Needs redis-server, redis-cli, redis-benchmark, python3 and a release
# build (cargo build --release -p server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin=${KV_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/kv-server}
[ -x "$bin" ] || { echo "build first: cargo build --release -p server" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=${PORT:-16500}

start() { # ours|redis
    rm -rf "$work/data"; mkdir -p "$work/data"
    if [ "$1" = ours ]; then
        "$bin" --port "$port" --dir "$work/data" --save "" --appendonly no >"$work/$1.log" 2>&1 &
    else
        redis-server --port "$port" --dir "$work/data" --save "" --appendonly no >"$work/$1.log" 2>&1 &
    fi
    pid=$!
    sleep 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
used() { redis-cli -p "$port" INFO memory | grep '^used_memory:' | cut -d: -f2 | tr -d '\r'; }

gen() { # file: RESP of SADD commands
    python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
def cmd(*a):
    out = [b"*%d\r\n" % len(a)]
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)
with open(d + "/small.resp", "wb") as f:
    for i in range(100000):
        f.write(cmd("SADD", "set:%d" % i, *[(i * 7 + j * 13) % 1000 for j in range(10)]))
with open(d + "/big.resp", "wb") as f:
    for b in range(1000):
        f.write(cmd("SADD", "bigset", *["member:%d" % (b * 1000 + j) for j in range(1000)]))
with open(d + "/big3m.resp", "wb") as f:
    for b in range(3000):
        f.write(cmd("SADD", "big3m", *["member:%d" % (b * 1000 + j) for j in range(1000)]))
PY
}

case "${1:-}" in
memory)
    gen
    for srv in ours redis; do
        start $srv
        b0=$(used); redis-cli -p "$port" --pipe <"$work/small.resp" >/dev/null; s1=$(used)
        redis-cli -p "$port" FLUSHALL >/dev/null; sleep 1
        b1=$(used); redis-cli -p "$port" --pipe <"$work/big.resp" >/dev/null; s2=$(used)
        echo "$srv: 100k sets of 10 ints: $((s1 - b0)) bytes ($s1 total); 1M-member set: $((s2 - b1)) bytes ($s2 total)"
        stop
    done
    ;;
bench)
    for r in "" "-r 1000000"; do
        for run in 1 2 3; do
            for srv in ours redis; do
                start $srv
                for pl in 1 16; do
                    n=$((pl == 1 ? 100000 : 400000))
                    # shellcheck disable=SC2086
                    out=$(redis-benchmark -p "$port" -t sadd,spop -n $n $r -P $pl -q 2>/dev/null \
                        | tr '\r' '\n' | grep 'requests per second' | tr '\n' ' ')
                    echo "${r:-no -r} run=$run $srv P=$pl $out"
                done
                stop
            done
        done
    done
    ;;
bgsave)
    gen
    for srv in ours redis; do
        start $srv
        redis-cli -p "$port" --pipe <"$work/big3m.resp" >/dev/null
        python3 - "$port" "$srv" <<'PY'
import socket, sys, time
port, srv = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def reply(sock):
    d = b""
    while True:
        d += sock.recv(1 << 16)
        if d.startswith(b"$"):
            n = int(d[1:d.index(b"\r\n")])
            if len(d) >= d.index(b"\r\n") + 2 + n + 2:
                return d
        elif d.endswith(b"\r\n"):
            return d
def info(sock, section):
    sock.sendall(b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(section), section))
    return reply(sock)
def used(sock):
    for l in info(sock, b"memory").split(b"\r\n"):
        if l.startswith(b"used_memory:"):
            return int(l.split(b":")[1])
m0 = used(s)
c = socket.create_connection(("127.0.0.1", port))
c.sendall(b"*1\r\n$6\r\nBGSAVE\r\n"); reply(c)
lat, peak, i = [], m0, 0
while True:
    m = b"new:%d" % i
    t = time.perf_counter()
    s.sendall(b"*3\r\n$4\r\nSADD\r\n$5\r\nbig3m\r\n$%d\r\n%s\r\n" % (len(m), m)); reply(s)
    lat.append(time.perf_counter() - t); i += 1
    if i % 200 == 0:
        peak = max(peak, used(s))
    if i % 500 == 0 and b"rdb_bgsave_in_progress:0" in info(c, b"persistence") and i > 1000:
        break
lat.sort()
print("%s: %d SADDs during BGSAVE of a 3M-member set: slowest %.1f ms, p99 %.2f ms; "
      "used_memory %d before, peak %d (+%.1f%%)"
      % (srv, len(lat), lat[-1] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, m0, peak, 100 * (peak - m0) / m0))
PY
        stop
    done
    ;;
*)
    echo "usage: $0 memory|bench|bgsave" >&2; exit 2 ;;
esac
