#!/bin/bash
# Throughput with transparent huge pages off and on: kv-server with
# `--disable-thp yes` and `no`, alternating, ROUNDS rounds.
# Usage: bench/scripts/thp-ab.sh KV_SERVER_BIN [ROUNDS] [PORT]
# Needs redis-benchmark. Uses a scratch data directory under /tmp.
set -u
bin=${1:?usage: thp-ab.sh KV_SERVER_BIN [ROUNDS] [PORT]}
rounds=${2:-2}
port=${3:-7398}
rps() { tr '\r' '\n' | grep "requests per second" | grep -v "rps="; }
for round in $(seq 1 "$rounds"); do
  for mode in yes no; do
    dir=$(mktemp -d /tmp/thp-ab.XXXXXX)
    "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" \
      --appendonly no --disable-thp "$mode" > "$dir/server.log" 2>&1 &
    pid=$!
    until redis-cli -p "$port" ping > /dev/null 2>&1; do sleep 0.05; done
    echo "== round $round, disable-thp $mode"
    redis-benchmark -p "$port" -c 50 -d 64 -n 300000 -r 1000000 -t set,get -q 2>&1 | rps
    redis-benchmark -p "$port" -c 50 -d 64 -n 2000000 -r 1000000 -t set,get -P 16 -q 2>&1 | rps
    redis-benchmark -p "$port" -c 50 -d 1000 -n 3000000 -r 3000000 -t set -P 16 -q 2>&1 | rps | sed 's/^/fill, 1000-byte values: /'
    grep -E "^(Rss|AnonHugePages)" "/proc/$pid/smaps_rollup" | tr -s ' ' | tr '\n' ' '; echo
    redis-benchmark -p "$port" -c 50 -n 3000000 -r 3000000 -t get -P 16 -q 2>&1 | rps | sed 's/^/big heap: /'
    kill "$pid"; wait "$pid" 2>/dev/null
    rm -rf "$dir"
  done
done
