#!/usr/bin/env bash
# redis-benchmark of hash commands against kv-server and redis-server,
# alternating, persistence off for both; prints every run and the median
# per (server, test, pipeline). For BENCHMARKS.md "M2.2".
#
#   bash bench/scripts/hash-side-by-side.sh [runs] [requests] [kv-server threads] [tests]
#
# tests: redis-benchmark -t names (default hset). `hset` is
# `HSET myhash element:__rand_int__ <3 bytes>`: with -r 100000 one hash of
# up to 100k fields (a hashtable). side-by-side.sh does the work.
set -euo pipefail
RANGE=100000 DATA=3 exec bash "$(dirname "${BASH_SOURCE[0]}")/side-by-side.sh" \
    "${1:-3}" "${2:-300000}" "${3:-0}" "${4:-hset}"
