#!/bin/busybox sh
# PID 1 of the kernel test's VM (tests/kernel/run.sh builds the initramfs
# around it). It loads the modules the virtio disk and ext4 need, mounts the
# disk, runs the smoke workload against kv-server and prints one line that
# the host parses:
#   KV-SMOKE-RESULT: PASS
#   KV-SMOKE-RESULT: FAIL <what failed>
# then powers the VM off. Nothing here may hang: every wait is bounded.

/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

PORT=6379
DATA=/mnt/data
SERVER_PID=

finish() {
    sync
    umount /mnt 2>/dev/null
    poweroff -f
    sleep 10
}

fail() {
    echo "KV-SMOKE-RESULT: FAIL $*"
    for log in /mnt/server-*.log; do
        [ -f "$log" ] || continue
        echo "---- last lines of $log"
        tail -n 30 "$log"
    done
    finish
}

cli() { redis-cli -p "$PORT" "$@"; }

echo "kv-smoke: kernel $(uname -r)"

for m in $(cat /modules/order); do
    insmod "/modules/$m.ko" || fail "insmod $m"
done

i=0
while [ ! -b /dev/vda ]; do
    i=$((i + 1))
    [ "$i" -gt 100 ] && fail "no /dev/vda after 10 s (virtio_blk not loaded?)"
    sleep 0.1
done
mount -t ext4 /dev/vda /mnt || fail "mount -t ext4 /dev/vda"
ip link set lo up || fail "ip link set lo up"
mkdir -p "$DATA"

# start_server N: start kv-server on the ext4 disk, wait for PONG (60 s).
start_server() {
    kv-server --port "$PORT" --dir "$DATA" --appendfsync always \
        >"/mnt/server-$1.log" 2>&1 &
    SERVER_PID=$!
    i=0
    while [ "$(cli ping 2>/dev/null)" != "PONG" ]; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID"
            fail "start $1: kv-server exited with status $? before answering PING"
        fi
        i=$((i + 1))
        [ "$i" -gt 300 ] && fail "start $1: no PONG after 60 s"
        sleep 0.2
    done
    echo "kv-smoke: start $1: kv-server (pid $SERVER_PID) answers PING"
}

# expect WHAT WANT GOT
expect() {
    [ "$3" = "$2" ] || fail "$1: want '$2', got '$3'"
}

start_server 1
expect "SET smoke" OK "$(cli set smoke hello)"
expect "GET smoke" hello "$(cli get smoke)"

out=$(awk 'BEGIN {
    for (i = 1; i <= 10000; i++) {
        k = "key:" i; v = "value:" i
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
    }
}' | cli --pipe 2>&1)
case "$out" in
*"errors: 0, replies: 10000"*) echo "kv-smoke: 10000 SETs through redis-cli --pipe" ;;
*) fail "10000 SETs: redis-cli --pipe said: $out" ;;
esac
expect "DBSIZE after the SETs" 10001 "$(cli dbsize)"
# The log's I/O path (O_DIRECT on ext4 is the point of the disk).
echo "kv-smoke: $(cli info persistence | tr -d '\r' | grep '^aof_io_path:')"

expect BGSAVE "Background saving started" "$(cli bgsave)"
i=0
while :; do
    info=$(cli info persistence | tr -d '\r')
    case "$info" in
    *"rdb_bgsave_in_progress:0"*"rdb_last_bgsave_status:ok"*"rdb_saves:"[1-9]*) break ;;
    *"rdb_last_bgsave_status:err"*) fail "BGSAVE failed: $info" ;;
    esac
    i=$((i + 1))
    [ "$i" -gt 300 ] && fail "BGSAVE not done after 60 s: $info"
    sleep 0.2
done
echo "kv-smoke: BGSAVE done"
# One write after the snapshot: it must come back from the log.
expect "SET after the snapshot" OK "$(cli set after:bgsave yes)"

kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
echo "kv-smoke: SIGKILLed kv-server"

start_server 2
expect "DBSIZE after the restart" 10002 "$(cli dbsize)"
expect "GET smoke after the restart" hello "$(cli get smoke)"
expect "GET key:1 after the restart" value:1 "$(cli get key:1)"
expect "GET key:10000 after the restart" value:10000 "$(cli get key:10000)"
expect "GET after:bgsave after the restart" yes "$(cli get after:bgsave)"
grep -i 'loaded\|read the append-only' /mnt/server-2.log | sed 's/^/kv-smoke: server: /'
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null

echo "KV-SMOKE-RESULT: PASS"
finish
