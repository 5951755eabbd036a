//! Signals that reach only the process meant, never a recycled pid.
//!
//! A pid names a process only while that process exists: once it exits and is
//! reaped, the kernel may give the number to any new process. A pidfd
//! (`pidfd_open`, Linux 5.3) refers to one process for good: a signal sent
//! through it (`pidfd_send_signal`) fails with ESRCH once that process is gone,
//! whoever has its pid now. Since Linux 6.9 a pidfd's inode number is unique to
//! its process for the life of the system, so a member seen earlier can be
//! recognised again by it (the start time in `/proc/PID/stat` does the same,
//! to the clock tick, on older kernels).
//!
//! A pidfd opened by number refers to whoever has that number at that moment:
//! the callers check, after opening it, that the process still is the one they
//! saw, and a signal through it that succeeds proves it was alive (so still had
//! that pid) when they checked.
//!
//! nix 0.31 has no wrapper for these system calls; libc has their numbers.
//!
//! Where they are refused (ENOSYS before Linux 5.3 and under gVisor, EPERM under
//! the seccomp profiles of container runtimes that predate them), found once by
//! [`method`], a [`Pidfd`] is the pid and the start time (field 22 of
//! `/proc/PID/stat`, clock ticks since boot) read when it was opened, and a
//! signal through it is a `kill()` made only once the start time, read again
//! just before, is still the same. What that leaves: the process exits and its
//! pid is reused between that read and the `kill()`. A pid is free again only
//! once the process is reaped (dmon itself reaps its commands and every orphan
//! re-parented to it, never while it signals), and the kernel hands out
//! pids in turn, so the reuse needs the whole pid range to come round within
//! those microseconds.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::sys::signal::Signal;

/// `pidfd_send_signal` flag: the process group of the pidfd's process
/// (linux/pidfd.h, Linux 6.9).
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// How dmon signals the processes it knows by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Through pidfds.
    Pidfd,
    /// With `kill()`, after checking the start time (pidfds refused).
    Kill,
}

impl Method {
    /// The word of the status file's `tree` record (docs/status.md).
    pub fn name(self) -> &'static str {
        match self {
            Method::Pidfd => "pidfd",
            Method::Kill => "kill",
        }
    }
}

/// The method, found once: `pidfd_open` of dmon itself, then a null signal
/// through that pidfd. Either refused (ENOSYS, EPERM or any other error, where
/// nothing can be wrong but the call itself): [`Method::Kill`], with the errno.
pub fn method() -> (Method, Option<Errno>) {
    static METHOD: OnceLock<(Method, Option<Errno>)> = OnceLock::new();
    *METHOD.get_or_init(|| {
        // SAFETY: as in `Pidfd::open`.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
        if fd < 0 {
            return (Method::Kill, Some(Errno::last()));
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = Pidfd(Handle::Fd(File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) })));
        match fd.send(None) {
            Ok(()) => (Method::Pidfd, None),
            Err(e) => (Method::Kill, Some(e)),
        }
    })
}

/// The start time of `pid` now (field 22 of `/proc/PID/stat`), None once it is
/// gone.
pub fn start_time(pid: i32) -> Option<u64> {
    state_and_start(pid).map(|(_, start)| start)
}

/// Whether the process that had `pid` at the start time `start` has ended: a
/// zombie, reaped, or its pid taken by another. (A task leaves its cgroup's
/// `cgroup.procs` in the kernel's `cgroup_exit`, a moment before `exit_notify`
/// makes it a zombie and tells its parent.)
pub fn ended(pid: i32, start: u64) -> bool {
    state_and_start(pid).is_none_or(|(state, now)| now != start || state == 'Z')
}

/// The state (field 3 of `/proc/PID/stat`) and start time of `pid` now.
fn state_and_start(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) is in parentheses and may hold any character.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(22 - 4)?.parse().ok()?))
}

pub struct Pidfd(Handle);

enum Handle {
    Fd(File),
    /// Without pidfds: the pid and its start time when opened.
    Pid {
        pid: i32,
        start: u64,
    },
}

impl Pidfd {
    /// A pidfd for whichever process has `pid` now (close-on-exec).
    pub fn open(pid: i32) -> Result<Pidfd, Errno> {
        if method().0 == Method::Kill {
            return match start_time(pid) {
                Some(start) if pid > 0 => Ok(Pidfd(Handle::Pid { pid, start })),
                _ => Err(Errno::ESRCH),
            };
        }
        // SAFETY: pidfd_open takes a pid and flags, no memory; it returns a new
        // descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(Pidfd(Handle::Fd(File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) }))))
    }

    /// What tells this process from a later one with the same pid: the inode
    /// number (unique per process since Linux 6.9, the same for every pidfd
    /// before), or without pidfds the start time.
    pub fn ino(&self) -> u64 {
        match &self.0 {
            Handle::Fd(file) => file.metadata().map(|m| m.ino()).unwrap_or(0),
            Handle::Pid { start, .. } => *start,
        }
    }

    /// `signal` (None: only check that the process exists) to the process.
    /// ESRCH once it is gone, also when its pid now names another process.
    pub fn send(&self, signal: Option<Signal>) -> Result<(), Errno> {
        match self.0 {
            Handle::Fd(_) => self.send_with(signal, 0),
            Handle::Pid { pid, start } => {
                if start_time(pid) != Some(start) {
                    return Err(Errno::ESRCH);
                }
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            }
        }
    }

    /// `signal` to every process of the process group the pidfd's process
    /// leads, identified by the kernel's object for it, not by its number: once
    /// every process of the group is gone this fails with ESRCH even when the
    /// number names a new group. EINVAL before Linux 6.9 and without pidfds (a
    /// group's number says nothing of whether it is still the same group).
    /// Succeeds when at least one process got the signal (EPERM only when none
    /// may be signalled).
    pub fn send_group(&self, signal: Option<Signal>) -> Result<(), Errno> {
        self.send_with(signal, PIDFD_SIGNAL_PROCESS_GROUP)
    }

    fn send_with(&self, signal: Option<Signal>, flags: libc::c_uint) -> Result<(), Errno> {
        let Handle::Fd(file) = &self.0 else { return Err(Errno::EINVAL) };
        let sig = signal.map_or(0, |s| s as libc::c_int);
        // SAFETY: a descriptor we own, a signal number, no siginfo (null: the
        // kernel fills it in as for kill), flags; no other memory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                file.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                flags,
            )
        };
        if r < 0 { Err(Errno::last()) } else { Ok(()) }
    }
}

/// Processes dmon may not signal (EPERM: another user's, or a setuid program's),
/// each reported once. They are left alone and not waited for: nothing dmon can
/// do would end them.
#[derive(Default)]
pub struct Refused(BTreeSet<(i32, u64)>);

impl Refused {
    /// Notes that process `pid` (pidfd inode `ino`) refused a signal; warns the
    /// first time.
    pub fn note(&mut self, pid: i32, ino: u64) {
        if self.0.insert((pid, ino)) {
            tracing::warn!(
                "cannot signal process {pid} ({}); leaving it alone and not waiting for it",
                Errno::EPERM.desc()
            );
        }
    }

    pub fn contains(&self, pid: i32, ino: u64) -> bool {
        self.0.contains(&(pid, ino))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets the processes that are gone.
    pub fn retain(&mut self, mut alive: impl FnMut(i32, u64) -> bool) {
        self.0.retain(|&(pid, ino)| alive(pid, ino));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process has ended once it is a zombie (before it is reaped), and when
    /// its pid names a process with another start time; not while it runs.
    #[test]
    fn a_process_has_ended_once_it_is_a_zombie() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid).unwrap();
        assert!(!ended(pid, start));
        assert!(ended(pid, start + 1));
        child.kill().unwrap();
        // SAFETY: waits (without reaping) for our own child; `info` is ours.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let waited = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        assert_eq!(waited, 0);
        assert_eq!(state_and_start(pid).map(|(state, _)| state), Some('Z'));
        assert!(ended(pid, start));
        child.wait().unwrap();
        assert!(ended(pid, start));
    }

    /// Without pidfds: a signal reaches the process seen, and none reaches a
    /// pid whose start time is another (a later process with that pid).
    #[test]
    fn kill_handles_check_the_start_time() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid).expect("the child's start time");
        let same = Pidfd(Handle::Pid { pid, start });
        let other = Pidfd(Handle::Pid { pid, start: start + 1 });
        assert_eq!(same.ino(), start);
        assert_eq!(other.send(Some(Signal::SIGKILL)), Err(Errno::ESRCH));
        assert_eq!(same.send(None), Ok(()));
        assert_eq!(same.send_group(None), Err(Errno::EINVAL));
        assert_eq!(same.send(Some(Signal::SIGKILL)), Ok(()));
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
        // Reaped: the pid names nothing, or someone else.
        assert_eq!(same.send(None), Err(Errno::ESRCH));
    }

    #[test]
    fn start_time_is_field_22() {
        let me = procfs::process::Process::myself().unwrap().stat().unwrap().starttime;
        assert_eq!(start_time(std::process::id() as i32), Some(me));
        assert_eq!(start_time(-1), None);
    }
}
