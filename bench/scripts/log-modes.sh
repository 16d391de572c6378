#!/usr/bin/env bash
# M2.3: SET/GET throughput with the log on, kv-server beside redis-server,
# as a new user runs it (redis-benchmark, both servers' defaults) and with
# each appendfsync mode. Rounds alternate between the servers; prints every
# run with the server's CPU per request (utime+stime from /proc/PID/stat)
# and the medians. For our servers each run's line also has INFO's
# aof_fsync_p99_usec and aof_records_per_commit (0,0 for Redis).
#
#   bash bench/scripts/log-modes.sh [rounds] [requests] [configs...]
#
# A config is NAME: ours-default ours-everysec ours-no ours-always
# ours-always-t1 ours-off redis-default redis-always redis-no redis-everysec,
# and before-default before-always before-always-t1 (the build BEFORE_BIN
# names).
# Each server is started fresh for each run, in a scratch dir under $TMPDIR
# (the log needs a filesystem with O_DIRECT). Needs redis-server,
# redis-benchmark and a release build (cargo build --release -p server).
#
# IOPS_LIMIT=N runs every server in a cgroup (v1 blkio) whose writes to the
# scratch dir's disk are throttled to N a second: a slow disk, as a cloud
# volume with an IOPS cap (needs root and /sys/fs/cgroup/blkio). The
# throttle counts the I/O a thread issues itself; a cache flush the kernel
# issues for an O_DSYNC write on io_uring is not counted (BENCHMARKS.md,
# M2.3 "always on a disk with an IOPS limit").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

rounds=${1:-3}
requests=${2:-200000}
shift 2 || true
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(redis-default ours-default)
tests=${TESTS:-set,get}
pipelines=${PIPELINES:-1}
bin=${KV_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/kv-server}
[ -x "$bin" ] || { echo "build first: cargo build --release -p server" >&2; exit 1; }
port=7431
scratch=$(mktemp -d)
pid=
cgroup=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$scratch"; [ -n "$cgroup" ] && rmdir "$cgroup"' EXIT
if [ -n "${IOPS_LIMIT:-}" ]; then
    majmin=$(stat -c '%Hd:%Ld' "$scratch")
    # A partition's writes are throttled at its disk.
    disk=$(basename "$(readlink -f "/sys/dev/block/$majmin")")
    [ -e "/sys/class/block/$disk/partition" ] &&
        majmin=$(cat "$(dirname "$(readlink -f "/sys/class/block/$disk")")/dev")
    cgroup=/sys/fs/cgroup/blkio/kv-log-modes-$$
    mkdir "$cgroup"
    echo "$majmin $IOPS_LIMIT" >"$cgroup/blkio.throttle.write_iops_device"
    echo "writes to $majmin limited to $IOPS_LIMIT IOPS" >&2
fi
hz=$(getconf CLK_TCK)

start() {
    rm -rf "$scratch/data"; mkdir -p "$scratch/data"
    local d="$scratch/data" cmd
    case $1 in
        ours-default) cmd=("$bin" --port $port --dir "$d") ;;
        ours-everysec) cmd=("$bin" --port $port --dir "$d" --appendonly yes --appendfsync everysec) ;;
        ours-no) cmd=("$bin" --port $port --dir "$d" --appendonly yes --appendfsync no) ;;
        ours-always) cmd=("$bin" --port $port --dir "$d" --appendonly yes --appendfsync always) ;;
        ours-always-t1) cmd=("$bin" --port $port --dir "$d" --threads 1 --appendonly yes --appendfsync always) ;;
        ours-off) cmd=("$bin" --port $port --dir "$d" --appendonly no) ;;
        # Another build beside this one (BEFORE_BIN=path), e.g. the commit
        # before a change, in the same rounds.
        before-default) cmd=("${BEFORE_BIN:?set BEFORE_BIN}" --port $port --dir "$d") ;;
        before-always) cmd=("${BEFORE_BIN:?set BEFORE_BIN}" --port $port --dir "$d" --appendonly yes --appendfsync always) ;;
        before-always-t1) cmd=("${BEFORE_BIN:?set BEFORE_BIN}" --port $port --dir "$d" --threads 1 --appendonly yes --appendfsync always) ;;
        # Debian's defaults: appendonly no and the RDB save rules (Redis 7's
        # built-in defaults are the same save rules).
        redis-default) cmd=(redis-server --port $port --dir "$d") ;;
        redis-always) cmd=(redis-server --port $port --dir "$d" --appendonly yes --appendfsync always) ;;
        redis-everysec) cmd=(redis-server --port $port --dir "$d" --appendonly yes --appendfsync everysec) ;;
        redis-no) cmd=(redis-server --port $port --dir "$d" --appendonly yes --appendfsync no) ;;
        *) echo "unknown config $1" >&2; exit 1 ;;
    esac
    if [ -n "$cgroup" ]; then
        { exec sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cgroup" "${cmd[@]}"; } >"$scratch/server.log" 2>&1 &
    else
        { exec "${cmd[@]}"; } >"$scratch/server.log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 200); do
        if redis-cli -p $port ping >/dev/null 2>&1; then
            # Under a limit, the start's own writes (a new log segment) use
            # the first second's budget.
            [ -z "$cgroup" ] || sleep 1
            return
        fi
        sleep 0.05
    done
    echo "server $1 did not start" >&2; exit 1
}
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
stop() { kill -9 $pid; wait $pid 2>/dev/null || true; pid=; }

results="$scratch/results.csv"
for round in $(seq "$rounds"); do
    for p in $(echo "$pipelines" | tr , ' '); do
        for c in "${configs[@]}"; do
            for t in $(echo "$tests" | tr , ' '); do
                start "$c"
                before=$(cpu)
                line=$(redis-benchmark -p $port -t "$t" -c 50 -n "$requests" -r 1000000 -d 64 \
                    -P "$p" --csv 2>/dev/null | tail -n 1 | tr -d '"')
                after=$(cpu)
                info=$(redis-cli -p $port info persistence 2>/dev/null | tr -d '\r')
                fp99=$(sed -n 's/^aof_fsync_p99_usec://p' <<<"$info"); fp99=${fp99:-0}
                rpc=$(sed -n 's/^aof_records_per_commit://p' <<<"$info"); rpc=${rpc:-0}
                stop
                IFS=, read -r test rps _ _ p50 _ p99 _ <<<"$line"
                us=$(python3 -c "print(f'{($after-$before)/$hz*1e6/$requests:.2f}')")
                echo "$round,$c,$test,$p,$rps,$p50,$p99,$us,$fp99,$rpc" | tee -a "$results"
            done
        done
    done
done
echo
echo "medians over $rounds rounds (requests/s, p50 ms, server CPU us/request):"
python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
keys = []
for r in rows:
    k = (r[1], r[2], r[3])
    if k not in keys:
        keys.append(k)
print("| config | test | pipeline | req/s | p50 ms | CPU us/req | fsync p99 us | records/commit |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for c, t, p in keys:
    sel = [r for r in rows if (r[1], r[2], r[3]) == (c, t, p)]
    m = lambda i: statistics.median(float(r[i]) for r in sel)
    print(f"| {c} | {t} | {p} | {m(4):,.0f} | {m(5):.3f} | {m(7):.2f} | {m(8):,.0f} | {m(9):.1f} |")
PY
