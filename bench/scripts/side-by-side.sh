#!/usr/bin/env bash
# Side-by-side redis-benchmark runs against kv-server and redis-server,
# alternating, persistence off for both. Prints every run and the median
# per (server, test, pipeline). Used for BENCHMARKS.md until the bench
# crate's scenarios (M1.2) replace it.
#
#   bash bench/scripts/side-by-side.sh [runs] [requests] [kv-server threads] [tests]
#
# tests: redis-benchmark -t names (default set,get); RANGE (default
# 1000000) and DATA (default 64) are its -r and -d.
#
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools)
# and a release build (cargo build --release -p server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

runs=${1:-3}
requests=${2:-1000000}
threads=${3:-0}
tests=${4:-set,get}
range=${RANGE:-1000000}
data=${DATA:-64}
bin=${KV_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/kv-server}
[ -x "$bin" ] || { echo "build first: cargo build --release -p server" >&2; exit 1; }
command -v redis-benchmark >/dev/null || { echo "apt-get install redis-tools redis-server" >&2; exit 1; }

scratch=$(mktemp -d)
ours_port=7411
redis_port=7412
"$bin" --port $ours_port --dir "$scratch/kv" --threads "$threads" --appendonly no --save "" \
    >"$scratch/kv.log" 2>&1 &
ours_pid=$!
redis-server --port $redis_port --save "" --appendonly no --dir "$scratch" >"$scratch/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $ours_pid $redis_pid 2>/dev/null; wait $ours_pid $redis_pid 2>/dev/null; rm -rf "$scratch"' EXIT
for p in $ours_port $redis_port; do
    for _ in $(seq 100); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.05; done
done

results="$scratch/results.csv"
for run in $(seq "$runs"); do
    for pipeline in 1 16; do
        for side in redis ours; do
            port=$redis_port
            [ $side = ours ] && port=$ours_port
            redis-benchmark -p $port -t "$tests" -c 50 -n "$requests" -r "$range" -d "$data" \
                -P $pipeline --csv 2>/dev/null | tail -n +2 | tr -d '"' |
                while IFS=, read -r test rps avg min p50 p95 p99 max; do
                    echo "$side,$test,$pipeline,$rps,$p50,$p99" | tee -a "$results"
                done
        done
    done
done
case ",$tests," in *,hset,*)
    echo "encodings: redis $(redis-cli -p $redis_port object encoding myhash) $(redis-cli -p $redis_port hlen myhash) fields;" \
        "ours $(redis-cli -p $ours_port hlen myhash) fields" ;;
esac

echo
echo "medians over $runs runs (requests/s, p50 ms, p99 ms):"
python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
def med(side, test, p, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == side and r[1] == test and r[2] == p)
print("| test | pipeline | redis req/s | ours req/s | ours/redis | redis p50/p99 ms | ours p50/p99 ms |")
print("| --- | --- | --- | --- | --- | --- | --- |")
tests = sorted({r[1] for r in rows})
for p in ("1", "16"):
    for t in tests:
        r, o = med("redis", t, p, 3), med("ours", t, p, 3)
        print(f"| {t} | {p} | {r:,.0f} | {o:,.0f} | {o/r:.2f} | {med('redis',t,p,4):.3f} / {med('redis',t,p,5):.3f} | {med('ours',t,p,4):.3f} / {med('ours',t,p,5):.3f} |")
PY
