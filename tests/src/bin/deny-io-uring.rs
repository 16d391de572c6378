//! `deny-io-uring PROGRAM [ARGS...]`: runs PROGRAM under a seccomp filter
//! that makes io_uring_setup, io_uring_enter and io_uring_register fail
//! with EPERM, as Docker's default profile (since Docker 25) does. The
//! tests start kv-server through it (tests/backend.rs); it works by hand
//! too: `deny-io-uring target/debug/kv-server --port 6380`.

use std::os::unix::process::CommandExt;

// Classic BPF, as in <linux/filter.h> and <linux/seccomp.h>.
const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const JEQ_K: u16 = 0x15; // BPF_JMP (5) | BPF_JEQ (0x10) | BPF_K (0)
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: deny-io-uring PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let nr = |n: libc::c_long| u32::try_from(n).unwrap_or(u32::MAX);
    let mut filter = [
        insn(LD_W_ABS, 0, 0, ARCH),
        // Another architecture's calls: allowed (6).
        insn(JEQ_K, 0, 4, AUDIT_ARCH),
        insn(LD_W_ABS, 0, 0, NR),
        insn(JEQ_K, 3, 0, nr(libc::SYS_io_uring_setup)),
        insn(JEQ_K, 2, 0, nr(libc::SYS_io_uring_enter)),
        insn(JEQ_K, 1, 0, nr(libc::SYS_io_uring_register)),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `prog` and the filter it points to live
    // across the call (the kernel copies them).
    let r = unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            -1
        } else {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            )
        }
    };
    if r != 0 {
        eprintln!(
            "deny-io-uring: can't install the seccomp filter: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }
    let e = std::process::Command::new(program).args(rest).exec();
    eprintln!(
        "deny-io-uring: can't run {}: {e}",
        program.to_string_lossy()
    );
    std::process::exit(2);
}
