#!/usr/bin/env bash
# INFO memory (used_memory, used_memory_rss) of kv-server and redis-server
# after loading the same hashes, persistence off for both: 100k hashes of
# 10 short fields (listpacks), and one hash of 1M fields (a hashtable).
# For BENCHMARKS.md "M2.2 memory".
#
#   bash bench/scripts/hash-memory.sh [kv-server threads]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
threads=${1:-0}
bin=${KV_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/kv-server}
[ -x "$bin" ] || { echo "build first: cargo build --release -p server" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 - "$scratch" <<'PY'
import sys
def cmd(*a):
    out = [b"*%d\r\n" % len(a)]
    for x in a:
        x = str(x).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)
d = sys.argv[1]
with open(f"{d}/small.resp", "wb") as f:
    for i in range(100_000):
        args = ["HSET", f"h:{i}"]
        for j in range(10):
            args += [f"field:{j}", f"value:{i * 10 + j}"]
        f.write(cmd(*args))
with open(f"{d}/big.resp", "wb") as f:
    for b in range(1000):
        args = ["HSET", "big"]
        for i in range(b * 1000, (b + 1) * 1000):
            args += [f"field:{i}", f"value:{i}"]
        f.write(cmd(*args))
PY
mem() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1=="used_memory"{u=$2} $1=="used_memory_rss"{r=$2} END{print u, r}'; }
for data in small big; do
    rm -rf "$scratch/kv" "$scratch/r"; mkdir -p "$scratch/kv" "$scratch/r"
    redis-server --port 7441 --save "" --appendonly no --dir "$scratch/r" >/dev/null 2>&1 &
    rp=$!
    "$bin" --port 7442 --threads "$threads" --save "" --appendonly no --dir "$scratch/kv" >/dev/null 2>&1 &
    kp=$!
    for p in 7441 7442; do
        for _ in $(seq 100); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.05; done
    done
    read -r r0 rr0 < <(mem 7441); read -r k0 kr0 < <(mem 7442)
    redis-cli -p 7441 --pipe < "$scratch/$data.resp" >/dev/null
    redis-cli -p 7442 --pipe < "$scratch/$data.resp" >/dev/null
    sleep 1
    read -r r1 rr1 < <(mem 7441); read -r k1 kr1 < <(mem 7442)
    echo "$data: redis used_memory $r1 (empty $r0) rss $rr1 (empty $rr0) | ours used_memory $k1 (empty $k0) rss $kr1 (empty $kr0)"
    kill $rp $kp; wait $rp $kp 2>/dev/null || true
done
