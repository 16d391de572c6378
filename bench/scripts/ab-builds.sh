#!/usr/bin/env bash
# A/B of two kv-server builds, persistence off: redis-benchmark SET and
# GET, 50 clients, 200k requests, P1 and P16, alternating rounds, with the
# server CPU ticks (utime+stime, 1/100 s) each run took.
#
#   bash bench/scripts/ab-builds.sh BEFORE_BINARY AFTER_BINARY [rounds]
set -euo pipefail
before=$1; after=$2; rounds=${3:-3}
d=$(mktemp -d)
"$before" --port 7501 --dir "$d/b" --appendonly no --save "" >"$d/b.log" 2>&1 & pb=$!
"$after" --port 7502 --dir "$d/a" --appendonly no --save "" >"$d/a.log" 2>&1 & pa=$!
trap 'kill $pb $pa; wait $pb $pa 2>/dev/null; rm -rf "$d"' EXIT
sleep 1
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for r in $(seq $rounds); do
  for P in 1 16; do
    for side in before after; do
      if [ $side = before ]; then port=7501; pid=$pb; else port=7502; pid=$pa; fi
      c0=$(cpu $pid)
      out=$(redis-benchmark -p $port -t set,get -c 50 -n 200000 -r 1000000 -d 64 -P $P --csv 2>/dev/null | tail -n +2 | tr -d '"' | cut -d, -f1,2 | tr '\n' ' ')
      c1=$(cpu $pid)
      echo "round=$r P=$P $side $out cpu_ticks=$((c1-c0))"
    done
  done
done
