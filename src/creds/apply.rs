//! The child's side: [`Credentials::apply`] carries out what was looked up,
//! with raw system calls on prepared values only (no allocation, no locks), in
//! the order the module doc of [`crate::creds`] gives.

use std::io;

use super::Credentials;

impl Credentials {
    /// Carries the change out in the calling process (see the module doc for the
    /// order). Runs in the child between fork and exec: raw system calls on
    /// prepared data only, no allocation, no locks.
    pub fn apply(&self) -> io::Result<()> {
        if let Some(mask) = self.umask {
            // SAFETY: umask takes an integer and cannot fail.
            unsafe { libc::umask(mask as libc::mode_t) };
        }
        if let Some(keep) = self.keep {
            narrow_bounding_set(keep.mask)?;
        }
        if let Some(ids) = &self.ids {
            if self.keep.is_some() {
                nix::sys::prctl::set_keepcaps(true)?;
            }
            // Raw system calls: glibc's wrappers would broadcast the change to
            // other threads (there are none after fork) under a lock.
            // SAFETY: the pointer and length describe a live slice of gid_t.
            unsafe {
                syscall(libc::syscall(libc::SYS_setgroups, ids.groups.len(), ids.groups.as_ptr()))?;
                syscall(libc::syscall(libc::SYS_setresgid, ids.gid, ids.gid, ids.gid))?;
                syscall(libc::syscall(libc::SYS_setresuid, ids.uid, ids.uid, ids.uid))?;
            }
        }
        match (self.keep, &self.ids) {
            (Some(keep), ids) => {
                capset(keep.mask)?;
                prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0)?;
                for cap in 0..64 {
                    if keep.mask & (1 << cap) != 0 {
                        prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong, cap)?;
                    }
                }
                if ids.is_some() {
                    nix::sys::prctl::set_keepcaps(false)?;
                }
            }
            (None, Some(ids)) if ids.uid != 0 => capset(0)?,
            (None, _) => {}
        }
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs()?;
        }
        Ok(())
    }
}

fn syscall(r: libc::c_long) -> io::Result<()> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only, for options that take no
    // pointer (the ambient set and the bounding set).
    syscall(unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) } as libc::c_long)
}

/// Drops every capability outside `keep` from the bounding set. Capability
/// numbers past the kernel's last one fail with EINVAL, which ends the walk; the
/// walk covers numbers the caps crate does not know yet.
fn narrow_bounding_set(keep: u64) -> io::Result<()> {
    for cap in 0..64 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        if let Err(e) = prctl(libc::PR_CAPBSET_DROP, cap, 0) {
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` (linux/capability.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets the permitted, effective and inheritable sets of the calling thread to
/// `mask` (capset(2) as a raw system call; the caps crate allocates).
fn capset(mask: u64) -> io::Result<()> {
    let half = |shift: u32| {
        let bits = (mask >> shift) as u32;
        CapData { effective: bits, permitted: bits, inheritable: bits }
    };
    let header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let data = [half(0), half(32)];
    // SAFETY: capset reads one header and two data structs, laid out as the
    // kernel's.
    syscall(unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) })
}
