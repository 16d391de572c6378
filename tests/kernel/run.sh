#!/usr/bin/env bash
# The kernel test: boots Debian's stock kernels under QEMU (software
# emulation) and runs the server's smoke workload inside each (tests/kernel/
# init.sh: SET/GET, 10,000 SETs, BGSAVE, SIGKILL, restart, keys back) with
# the data dir on an ext4 virtio disk, since O_DIRECT needs a real
# filesystem.
#
#   tests/kernel/run.sh [KERNEL...]     KERNEL: 5.10 (Debian 11) | 6.1 (Debian 12)
#
# With no argument it runs every kernel listed in tests/kernel/kernels.
# Prints one line per kernel (PASS, FAIL, XFAIL, XPASS) and exits 1 if any
# kernel FAILed or XPASSed. A kernel named in tests/kernel/xfail is expected
# to fail (with the text given there in the reason): that failure is XFAIL
# (exit 0), any other failure FAIL, a pass XPASS (exit 1, so the line gets
# removed once the fix lands).
#
# Environment:
#   KV_SERVER_BIN         the binary to test (default target/debug/kv-server)
#   KV_KERNEL_CACHE       downloads and built images (default target/kernel-test)
#   KV_KERNEL_TIMEOUT     seconds one VM may run (default 300)
#   KV_KERNEL_XFAIL       overrides tests/kernel/xfail: the kernels expected
#                         to fail (space-separated, any reason); "" = none
#
# Needs: qemu-system-x86, busybox-static, e2fsprogs, cpio, kmod (modinfo),
# redis-tools (redis-cli goes into the VM as the client), apt-get. The
# kernel .debs are fetched once with a private apt configuration (nothing
# is installed) and kept in the cache directory.
set -euo pipefail
shopt -s inherit_errexit

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${KV_SERVER_BIN:-$root/target/debug/kv-server}"
cache="${KV_KERNEL_CACHE:-$root/target/kernel-test}"
vm_timeout="${KV_KERNEL_TIMEOUT:-300}"

die() {
    echo "tests/kernel/run.sh: $*" >&2
    exit 2
}

for tool in qemu-system-x86_64 busybox mkfs.ext4 cpio modinfo redis-cli \
    apt-get dpkg-deb ldd objcopy timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done
[ -x "$bin" ] || die "no server binary at $bin (cargo build -p server, or set KV_SERVER_BIN)"
busybox_bin="$(command -v busybox)"
ldd "$busybox_bin" >/dev/null 2>&1 && die "$busybox_bin is not static (install busybox-static)"

# xfail[KERNEL]=TEXT: KERNEL is expected to fail, with TEXT in the reason
# (any reason when TEXT is empty). From tests/kernel/xfail, lines
# "KERNEL [TEXT]", or KV_KERNEL_XFAIL="KERNEL..." which overrides the file.
declare -A xfail=()
if [ -n "${KV_KERNEL_XFAIL+set}" ]; then
    for k in $KV_KERNEL_XFAIL; do
        xfail[$k]=""
    done
elif [ -f "$here/xfail" ]; then
    while read -r k text; do
        [ -n "$k" ] && xfail[$k]="$text"
    done < <(sed 's/#.*//' "$here/xfail")
fi

# suite_of KERNEL: the Debian release whose stock kernel it is.
suite_of() {
    case "$1" in
    5.10) echo bullseye ;;
    6.1) echo bookworm ;;
    *) die "unknown kernel '$1' (known: 5.10, 6.1)" ;;
    esac
}

# fetch_deb SUITE: prints the path of the suite's current linux-image .deb,
# downloading it (with a private apt state under the cache) the first time.
fetch_deb() {
    local suite="$1" dir="$cache/$1" apt="$cache/$1/apt"
    local deb
    deb="$(ls "$dir"/debs/linux-image-*.deb 2>/dev/null | head -n 1 || true)"
    if [ -n "$deb" ]; then
        echo "$deb"
        return
    fi
    mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial" "$dir/debs"
    : >"$apt/state/status"
    local keyring=/usr/share/keyrings/debian-archive-$suite-stable.gpg
    [ -f "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" \
        >"$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list"
        -o "Dir::Etc::SourceParts=/nonexistent"
        -o "Dir::State=$apt/state" -o "Dir::State::status=$apt/state/status"
        -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=1"
        -o "APT::Architecture=amd64" -o "APT::Sandbox::User=root")
    apt-get "${opts[@]}" -q update >&2 || die "apt-get update for $suite failed"
    local pkg
    pkg="$(apt-cache "${opts[@]}" depends linux-image-amd64 |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1)"
    [ -n "$pkg" ] || die "no linux-image package behind linux-image-amd64 in $suite"
    (cd "$dir/debs" && apt-get "${opts[@]}" -q download "$pkg" >&2) ||
        die "apt-get download $pkg failed"
    deb="$(ls "$dir"/debs/linux-image-*.deb | head -n 1)"
    rm -rf "$apt" # the package lists: only the .deb is kept
    echo "$deb"
}

# prepare_kernel SUITE: extracts vmlinuz and the modules the VM needs
# (virtio_pci, virtio_blk, ext4, crc32c for ext4's checksums, and what
# they depend on per `modinfo -F depends`) into $cache/SUITE/kernel, once.
prepare_kernel() {
    local suite="$1" out="$cache/$1/kernel"
    [ -f "$out/done" ] && return
    local deb tmp
    deb="$(fetch_deb "$suite")"
    tmp="$(mktemp -d "$cache/$suite/extract.XXXXXX")"
    dpkg-deb -x "$deb" "$tmp" || die "dpkg-deb -x $deb failed"
    rm -rf "$out"
    mkdir -p "$out/modules"
    cp "$tmp"/boot/vmlinuz-* "$out/vmlinuz"
    local moddir
    moddir="$(ls -d "$tmp"/lib/modules/* | head -n 1)"
    declare -A path=() seen=()
    local f name
    while IFS= read -r f; do
        name="$(basename "$f")"
        name="${name%%.ko*}"
        path["${name//-/_}"]="$f"
    done < <(find "$moddir" -name '*.ko*')
    local order=()
    visit() {
        local m="${1//-/_}" dep
        [ -n "${seen[$m]:-}" ] && return
        seen[$m]=1
        if [ -z "${path[$m]:-}" ]; then
            grep -q "/$1.ko\$\|/${m}.ko\$" "$moddir/modules.builtin" 2>/dev/null ||
                echo "tests/kernel/run.sh: $suite: module $m neither a file nor built in; trying without it" >&2
            return
        fi
        for dep in $(modinfo -F depends "${path[$m]}" | tr ',' ' '); do
            visit "$dep"
        done
        case "${path[$m]}" in
        *.ko) cp "${path[$m]}" "$out/modules/$m.ko" ;;
        *.ko.xz) xz -dc "${path[$m]}" >"$out/modules/$m.ko" ;;
        *.ko.zst) zstd -q -dc "${path[$m]}" >"$out/modules/$m.ko" ;;
        *.ko.gz) gzip -dc "${path[$m]}" >"$out/modules/$m.ko" ;;
        *) die "$suite: unknown module format ${path[$m]}" ;;
        esac
        order+=("$m")
    }
    for m in virtio_pci virtio_blk crc32c_generic ext4; do
        visit "$m"
    done
    printf '%s\n' "${order[@]}" >"$out/modules/order"
    basename "$moddir" >"$out/release"
    rm -rf "$tmp"
    touch "$out/done"
}

# copy_libs ROOT FILE: the shared libraries FILE loads (and the loader), at
# the same paths under ROOT.
copy_libs() {
    local dest="$1" file="$2" lib
    for lib in $(ldd "$file" | grep -o '/[^ ]*'); do
        mkdir -p "$dest$(dirname "$lib")"
        cp -L "$lib" "$dest$lib"
    done
}

# build_initramfs SUITE DIR: busybox, init.sh, the modules, kv-server and
# redis-cli with their libraries, as DIR/initrd.
build_initramfs() {
    local suite="$1" work="$2" fs="$2/root"
    mkdir -p "$fs"/{bin,dev,proc,sys,mnt,tmp,usr/bin}
    cp "$busybox_bin" "$fs/bin/busybox"
    cp "$here/init.sh" "$fs/init"
    chmod 755 "$fs/init"
    cp -r "$cache/$suite/kernel/modules" "$fs/modules"
    cp -L "$(command -v redis-cli)" "$fs/usr/bin/redis-cli"
    copy_libs "$fs" "$(command -v redis-cli)"
    # The server without its debug info: a smaller initramfs, same code.
    objcopy --strip-debug "$bin" "$fs/usr/bin/kv-server"
    copy_libs "$fs" "$bin"
    (cd "$fs" && find . | cpio -o -H newc --quiet) >"$work/initrd"
}

# run_kernel KERNEL: boots it and prints PASS or FAIL (with the reason).
run_kernel() {
    local kernel="$1" suite work log status
    suite="$(suite_of "$kernel")"
    prepare_kernel "$suite"
    work="$cache/run-$kernel"
    rm -rf "$work"
    mkdir -p "$work"
    build_initramfs "$suite" "$work"
    truncate -s 512M "$work/disk.img"
    mkfs.ext4 -q -F "$work/disk.img"
    log="$work/console.log"
    echo "==> kernel $kernel: $(cat "$cache/$suite/kernel/release") (Debian $suite), log $log" >&2
    local start=$SECONDS
    set +e
    timeout "$vm_timeout" qemu-system-x86_64 -accel tcg -m 1024 -smp 2 \
        -display none -monitor none -serial "file:$log" -no-reboot \
        -kernel "$cache/$suite/kernel/vmlinuz" -initrd "$work/initrd" \
        -append "console=ttyS0 panic=-1 oops=panic quiet" \
        -drive "file=$work/disk.img,if=virtio,format=raw" -nic none
    status=$?
    set -e
    local took=$((SECONDS - start))
    local result
    result="$(grep -a '^KV-SMOKE-RESULT: ' "$log" | tail -n 1 | tr -d '\r' || true)"
    if [ "$result" = "KV-SMOKE-RESULT: PASS" ]; then
        grep -a '^kv-smoke' "$log" | sed 's/^/    /' >&2 || true
        echo "PASS in $took s"
        return
    fi
    echo "    ---- the end of the console ($log):" >&2
    tail -n 60 "$log" | sed 's/^/    /' >&2
    if [ -n "$result" ]; then
        echo "FAIL in $took s: ${result#KV-SMOKE-RESULT: FAIL }"
    elif [ "$status" -eq 124 ]; then
        echo "FAIL in $took s: no result within $vm_timeout s"
    else
        echo "FAIL in $took s: the VM ended (status $status) without a result"
    fi
}

kernels=("$@")
if [ "${#kernels[@]}" -eq 0 ]; then
    read -r -a kernels <<<"$(sed 's/#.*//' "$here/kernels" | tr '\n' ' ')"
fi
mkdir -p "$cache"

bad=0
summary=()
for kernel in "${kernels[@]}"; do
    outcome="$(run_kernel "$kernel")" || die "kernel $kernel: could not set the VM up (see above)"
    reason="${outcome#FAIL in * s: }"
    if [ -z "${xfail[$kernel]+set}" ]; then
        case "$outcome" in
        PASS*) line="PASS  $kernel ${outcome#PASS }" ;;
        *)
            line="FAIL  $kernel ${outcome#FAIL }"
            bad=1
            ;;
        esac
    else
        case "$outcome" in
        PASS*)
            line="XPASS $kernel ${outcome#PASS }, but tests/kernel/xfail expects it to fail: remove it there"
            bad=1
            ;;
        *)
            if [[ "$reason" == *"${xfail[$kernel]}"* ]]; then
                line="XFAIL $kernel ${outcome#FAIL } (expected: tests/kernel/xfail)"
            else
                line="FAIL  $kernel ${outcome#FAIL } (tests/kernel/xfail expects a failure with '${xfail[$kernel]}')"
                bad=1
            fi
            ;;
        esac
    fi
    summary+=("$line")
    echo "$line"
done

echo
echo "kernel test summary:"
printf '  %s\n' "${summary[@]}"
exit "$bad"
