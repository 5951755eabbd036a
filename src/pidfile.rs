//! The pid file (`-p`): written once dmon runs, removed when it ends, with a
//! lock beside it held for dmon's whole life.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag};
use nix::unistd::UnlinkatFlags;

use crate::creds::Ids;
use crate::planted::{Walk, check};

/// The pid file, and the lock that says a dmon runs with it: a second dmon
/// given the same file finds the lock taken and refuses to start, instead of
/// guessing from the pid written in it.
///
/// The lock is not taken on the pid file itself but on `PATH.lock`, a file of
/// mode 0600 beside it: `flock(2)` needs only a descriptor, and anyone who may
/// read the pid file could open it and hold a shared lock after an unclean
/// exit, so that the next dmon would refuse to start for a lock no dmon holds.
/// Only dmon's user can open the lock file. After taking the lock, dmon checks
/// that PATH.lock still names the file it locked: the dmon before it removes
/// it on its way out, and a lock on a removed file locks nothing.
///
/// Pid files often live in shared directories, and root writes them, so the
/// path is walked by the rule of [`crate::planted`] (a link on the way only
/// where nobody else could have made it) and both files are opened without
/// following a link, and checked once open: a regular file with no other hard
/// link that belongs to dmon's user or the directory's owner. A directory on
/// the way that the command's or the log command's user can write to (and that
/// is not sticky) is refused: that user could put another pid in the file, and
/// the documented `kill $(cat PIDFILE)` would kill a stranger.
///
/// The pid file is written in place rather than renamed over PATH: a rename
/// would replace whatever PATH names, a file of another dmon's included.
pub struct PidFile {
    dir: File,
    name: OsString,
    lock_name: OsString,
    file: File,
    lock: Flock<File>,
}

/// Why the pid file cannot be had (`-p`): nothing was started.
#[derive(Debug)]
pub enum PidFileError {
    /// The pid file or its lock file (`path`) cannot be opened.
    Open { path: PathBuf, err: io::Error },
    /// The user of `option` (`uid`) can write to `dir`, on the way to `path`.
    Writable { path: PathBuf, dir: PathBuf, option: String, uid: u32 },
    /// Another dmon holds the lock; `pid` is what the pid file says.
    Locked { path: PathBuf, pid: String },
}

impl fmt::Display for PidFileError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            PidFileError::Open { path, err } => {
                write!(f, "-p/--pid-file: cannot open '{}': {}", path.display(), crate::io_reason(err))
            }
            PidFileError::Writable { path, dir, option, uid } => write!(
                f,
                "-p/--pid-file: '{}' can be written by the user of {option} (uid {uid}), who could put another pid in '{}'",
                dir.display(),
                path.display()
            ),
            PidFileError::Locked { path, pid } => {
                write!(f, "-p/--pid-file: '{}' is locked by a running dmon (pid {pid})", path.display())
            }
        }
    }
}

impl std::error::Error for PidFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PidFileError::Open { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// Whether the user `ids` may write to a directory with `meta` (by its mode;
/// ACLs are not read).
fn writable_by(meta: &Metadata, ids: &Ids) -> bool {
    let mode = meta.mode();
    if meta.uid() == ids.uid {
        mode & 0o200 != 0
    } else if meta.gid() == ids.gid || ids.groups.contains(&meta.gid()) {
        mode & 0o020 != 0
    } else {
        mode & 0o002 != 0
    }
}

fn same(a: &Metadata, b: &nix::sys::stat::FileStat) -> bool {
    a.dev() == b.st_dev && a.ino() == b.st_ino
}

impl PidFile {
    /// Opens PATH and locks PATH.lock. `users` are the users dmon's commands
    /// run as (`-u`, `-U`), each with the option that named it.
    pub fn lock(path: &Path, users: &[(&str, &Ids)]) -> Result<PidFile, PidFileError> {
        let fail = |err| PidFileError::Open { path: path.to_path_buf(), err };
        let walk = crate::planted::walk(path, "dmon").map_err(fail)?;
        let me = nix::unistd::geteuid().as_raw();
        for (option, ids) in users.iter().filter(|(_, ids)| ids.uid != 0 && ids.uid != me) {
            let sticky = |m: &Metadata| m.mode() & libc::S_ISVTX != 0;
            if let Some(step) = walk.chain.iter().find(|s| writable_by(&s.meta, ids) && !sticky(&s.meta)) {
                let (dir, option) = (step.path.clone(), option.to_string());
                return Err(PidFileError::Writable { path: path.to_path_buf(), dir, option, uid: ids.uid });
            }
        }
        let file = open_checked(&walk, &walk.name, 0o644, false).map_err(fail)?;
        let mut lock_name = walk.name.clone();
        lock_name.push(".lock");
        let lock_shown = walk.shown().with_file_name(&lock_name);
        let lock_fail = |err| PidFileError::Open { path: lock_shown.clone(), err };
        let lock = loop {
            let lock = open_checked(&walk, &lock_name, 0o600, true).map_err(lock_fail)?;
            let meta = lock.metadata().map_err(lock_fail)?;
            let lock = match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, _)) => {
                    let mut text = String::new();
                    let _ = (&file).read_to_string(&mut text);
                    let pid = text.trim().to_string();
                    return Err(PidFileError::Locked { path: path.to_path_buf(), pid });
                }
            };
            // The dmon that held it removed it on its way out: lock the new one.
            match nix::sys::stat::fstatat(&walk.dir, lock_name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(now) if same(&meta, &now) => break lock,
                _ => continue,
            }
        };
        Ok(PidFile { dir: walk.dir, name: walk.name, lock_name, file, lock })
    }

    /// Replaces the content with `pid`. The new content is written over the old
    /// before the file is cut to its length, so a full disk leaves the old content
    /// whole rather than an empty file.
    pub fn write(&mut self, pid: u32) -> io::Result<()> {
        let text = format!("{pid}\n");
        self.file.write_all_at(text.as_bytes(), 0)?;
        self.file.set_len(text.len() as u64)
    }

    /// Removes the file (on a clean exit). The lock goes with the descriptor.
    pub fn remove(self) {
        drop(self);
    }

    /// Removes `name` if it still names `file`.
    fn unlink_if_ours(&self, name: &OsStr, file: &File) {
        let (Ok(at_path), Ok(ours)) =
            (nix::sys::stat::fstatat(&self.dir, name, AtFlags::AT_SYMLINK_NOFOLLOW), file.metadata())
        else {
            return;
        };
        if same(&ours, &at_path) {
            let _ = nix::unistd::unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// Opens `name` of `walk` for reading and writing, creating it with `mode`,
/// and checks it by the rule of [`crate::planted::check`]; a lock file must
/// also be dmon's user's own and open to nobody else.
fn open_checked(walk: &Walk, name: &OsStr, mode: libc::mode_t, lock: bool) -> io::Result<File> {
    // O_NONBLOCK: a FIFO planted there is opened at once, and refused.
    let file = walk.open_name(name, OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NONBLOCK, mode)?;
    let meta = file.metadata()?;
    check(&meta, Some(walk.dir_meta()), "dmon", false)?;
    if lock {
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(io::Error::other(format!(
                "it belongs to uid {}, and dmon locks only a file of its own",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            nix::sys::stat::fchmod(&file, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        }
    }
    Ok(file)
}

impl Drop for PidFile {
    /// A pid file exists while its dmon runs: it is removed on every way out that
    /// runs destructors, but only while PATH still names the file dmon wrote,
    /// and the lock file after it, while still locked.
    fn drop(&mut self) {
        self.unlink_if_ours(&self.name.clone(), &self.file);
        let lock_name = self.lock_name.clone();
        self.unlink_if_ours(&lock_name, &self.lock);
    }
}
