//! A seccomp filter that refuses `pidfd_open` and `pidfd_send_signal` with
//! EPERM, as the profiles of container runtimes from before those calls existed
//! do, for the tests of dmon without pidfds (tests/no_pidfd.rs).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The classic BPF program of a seccomp filter that refuses `pidfd_open` and
/// `pidfd_send_signal` with EPERM and allows everything else, as the seccomp
/// profiles of container runtimes from before those calls existed do. Its input
/// is `struct seccomp_data` (linux/seccomp.h): `nr` at offset 0, `arch` at 4.
const fn no_pidfd_filter() -> [libc::sock_filter; 7] {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
    const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }
    [
        op(LD_W_ABS, 0, 0, 4),
        // Another ABI's numbers mean other calls: allow them.
        op(JEQ_K, 0, 3, ARCH),
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 2, 0, libc::SYS_pidfd_open as u32),
        op(JEQ_K, 1, 0, libc::SYS_pidfd_send_signal as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ]
}

static NO_PIDFD: [libc::sock_filter; 7] = no_pidfd_filter();

/// Makes `command` (and all it starts) run under [`no_pidfd_filter`].
pub fn refuse_pidfds(command: &mut Command) {
    // SAFETY: between fork and exec only two prctl calls on a static program and
    // a stack value: no allocation, no lock.
    unsafe {
        command.pre_exec(|| {
            let prog = libc::sock_fprog { len: NO_PIDFD.len() as u16, filter: NO_PIDFD.as_ptr() as *mut _ };
            // A filter needs no_new_privs or CAP_SYS_ADMIN; the former also holds
            // for a child that drops root.
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
