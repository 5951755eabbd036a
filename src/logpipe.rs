//! The pipe between the command and the log command, and what the loop sees of
//! the log command's progress on it: the pipe got shorter, or the log command
//! used CPU, read or wrote, or waits on the disk (a slow disk is not a stalled
//! logger). A draining log command that makes progress is not stopped.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::creds::Ids;

/// Builds the pipe between the command and the log command.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// Makes the pipe usable by name for the users the command (`writer`) and the
/// log command (`reader`) run as, when those are not dmon's own.
///
/// A pipe belongs to whoever made it, with mode 0600. The descriptors a child
/// inherits work whatever the mode, but opening the pipe again by name
/// (`/dev/stdout`, `/dev/stderr`, `/proc/self/fd/N`: nginx's
/// `access_log /dev/stdout;`) checks the mode against the opener like any open,
/// and a dropped child was refused with EACCES. The pipe is dmon's own, so it is
/// given to the one user that reopens it: owner that uid, group its gid. With
/// two other users the command's user owns it and the log command's group may
/// read and write it (0660); nothing else of the child's is changed, and a
/// process of a third user cannot reach the pipe anyway, since opening another
/// process's /proc/PID/fd needs the right to trace it.
pub fn share(pipe: &OwnedFd, writer: Option<&Ids>, reader: Option<&Ids>) -> io::Result<()> {
    let own = nix::unistd::geteuid().as_raw();
    let other = |ids: Option<&Ids>| ids.filter(|ids| ids.uid != own).map(|ids| (ids.uid, ids.gid));
    let (uid, gid, shared) = match (other(writer), other(reader)) {
        (None, None) => return Ok(()),
        (Some((uid, gid)), None) | (None, Some((uid, gid))) => (uid, gid, false),
        (Some((uid, gid)), Some((log_uid, _))) if uid == log_uid => (uid, gid, false),
        (Some((uid, _)), Some((_, log_gid))) => (uid, log_gid, true),
    };
    // SAFETY: fchown and fchmod take integers; both ends share the one inode.
    unsafe {
        if libc::fchown(pipe.as_raw_fd(), uid, gid) != 0 {
            return Err(io::Error::last_os_error());
        }
        if shared && libc::fchmod(pipe.as_raw_fd(), 0o660) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Bytes waiting in a pipe (FIONREAD).
pub fn bytes_in(fd: &OwnedFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) } != 0 {
        return 0;
    }
    n
}

/// The last look at the pipe and the log command.
pub struct Progress {
    bytes: i32,
    activity: Option<u64>,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress { bytes: i32::MAX, activity: None }
    }
}

impl Progress {
    /// Looks again: whether the pipe still holds data, and whether the log
    /// command `pid` made progress since the last look.
    pub fn look(&mut self, pipe: Option<&OwnedFd>, pid: Option<i32>) -> (bool, bool) {
        let bytes = pipe.map_or(0, bytes_in);
        let activity = pid.and_then(activity);
        let worked = match (activity, self.activity) {
            (Some(Activity::Disk), _) => true,
            (Some(Activity::Counted(now)), Some(before)) => now != before,
            _ => false,
        };
        self.activity = match activity {
            Some(Activity::Counted(n)) => Some(n),
            _ => None,
        };
        let progress = bytes < self.bytes || worked;
        self.bytes = bytes;
        (bytes > 0, progress)
    }

    /// A new log command (or the drain) starts: its first look counts any
    /// data in the pipe as progress to come, not as a stall.
    pub fn restart(&mut self) {
        *self = Progress::default();
    }

    /// The log command exited: its counts are gone with it.
    pub fn forget_process(&mut self) {
        self.activity = None;
    }
}

/// What a process is doing, from /proc: waiting on the disk (state D), or a
/// count that grows with any work (CPU ticks, bytes and calls of read and write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Disk,
    Counted(u64),
}

fn activity(pid: i32) -> Option<Activity> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"D") {
        return Some(Activity::Disk);
    }
    // utime and stime are fields 14 and 15 of stat(5), here 11 and 12 after the name.
    let cpu: u64 = fields.get(11..13)?.iter().filter_map(|f| f.parse::<u64>().ok()).sum();
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let counted: u64 = io.lines().filter_map(|l| l.split_once(": ")?.1.trim().parse::<u64>().ok()).sum();
    Some(Activity::Counted(cpu.wrapping_add(counted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(uid: u32, gid: u32) -> Ids {
        Ids { uid, gid, groups: vec![gid] }
    }

    /// (owner, group, mode) of a fresh pipe after `share`.
    fn shared(writer: Option<Ids>, reader: Option<Ids>) -> (u32, u32, u32) {
        let (r, _w) = pipe().unwrap();
        share(&r, writer.as_ref(), reader.as_ref()).unwrap();
        let stat = nix::sys::stat::fstat(&r).unwrap();
        (stat.st_uid, stat.st_gid, stat.st_mode & 0o777)
    }

    #[test]
    fn the_pipe_goes_to_the_users_that_reopen_it() {
        if !nix::unistd::geteuid().is_root() {
            return crate::skip("needs root to give a pipe away");
        }
        assert_eq!(shared(None, None), (0, 0, 0o600));
        assert_eq!(shared(Some(ids(0, 0)), None), (0, 0, 0o600));
        assert_eq!(shared(Some(ids(4321, 4322)), None), (4321, 4322, 0o600));
        assert_eq!(shared(None, Some(ids(4321, 4322))), (4321, 4322, 0o600));
        assert_eq!(shared(Some(ids(4321, 4322)), Some(ids(4321, 4323))), (4321, 4322, 0o600));
        assert_eq!(shared(Some(ids(4321, 4322)), Some(ids(5321, 5322))), (4321, 5322, 0o660));
    }
}
