#!/usr/bin/env bash
# FLUSHALL SYNC vs ASYNC on a keyspace of N keys, kv-server and
# redis-server alternating, persistence off for both. For each run: the
# time FLUSHALL took to answer (measured in this shell, one connection,
# $EPOCHREALTIME around the round trip) and, for ASYNC, how long until
# INFO's lazyfree_pending_objects was back to 0 (polled every 5 ms).
#
#   bash bench/scripts/flushall-lazy.sh [runs] [keys] [kv-server threads]
#
# Needs redis-server and redis-cli (Debian: redis-server, redis-tools) and
# a release build (cargo build --release -p server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

runs=${1:-3}
keys=${2:-1000000}
threads=${3:-2}
bin=${KV_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/kv-server}
[ -x "$bin" ] || { echo "build first: cargo build --release -p server" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "apt-get install redis-tools redis-server" >&2; exit 1; }

scratch=$(mktemp -d)
ours_port=${OURS_PORT:-7421}
redis_port=${REDIS_PORT:-7422}
"$bin" --port $ours_port --dir "$scratch/kv" --threads "$threads" --appendonly no --save "" \
    >"$scratch/kv.log" 2>&1 &
ours_pid=$!
redis-server --port $redis_port --save "" --appendonly no --dir "$scratch" \
    >"$scratch/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $ours_pid $redis_pid 2>/dev/null; wait $ours_pid $redis_pid 2>/dev/null; rm -rf "$scratch"' EXIT
for p in $ours_port $redis_port; do
    for _ in $(seq 100); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.05; done
done

# SET key:<i> v, as RESP, for redis-cli --pipe.
awk -v n="$keys" 'BEGIN { for (i = 0; i < n; i++) { k = "key:" i;
    printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n", length(k), k } }' >"$scratch/fill.resp"

now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }

# One FLUSHALL <mode> on port $1 after a fill; prints the reply time and,
# for ASYNC, the time until nothing is pending.
one() {
    local port=$1 mode=$2 name=$3
    redis-cli -p "$port" --pipe <"$scratch/fill.resp" >/dev/null
    local n
    n=$(redis-cli -p "$port" dbsize)
    [ "$n" = "$keys" ] || { echo "$name: DBSIZE $n after the fill" >&2; exit 1; }
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    local t0 t1 reply
    t0=$(now_us)
    printf 'FLUSHALL %s\r\n' "$mode" >&3
    read -r reply <&3
    t1=$(now_us)
    exec 3<&-
    local line="$name FLUSHALL $mode: reply ${reply%$'\r'} after $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) ms"
    if [ "$mode" = ASYNC ]; then
        while [ "$(redis-cli -p "$port" info memory | tr -d '\r' | sed -n 's/^lazyfree_pending_objects://p')" != 0 ]; do
            sleep 0.005
        done
        local t2
        t2=$(now_us)
        line+=", freed in the background after $(( (t2 - t0) / 1000 )) ms"
    fi
    echo "$line"
}

for run in $(seq "$runs"); do
    for mode in SYNC ASYNC; do
        one $ours_port $mode "run $run kv-server"
        one $redis_port $mode "run $run redis-server"
    done
done
