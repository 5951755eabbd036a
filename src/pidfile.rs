//! The pid file (`-p`): held open and locked for dmon's whole life.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::planted::{check_opened, open_error};

/// The pid file, held open and locked (flock) for dmon's whole life: a second
/// dmon given the same file finds the lock taken and refuses to start, instead of
/// guessing from the pid written in it.
///
/// Pid files often live in shared directories, and root writes them, so the open
/// follows the rule of [`crate::planted`]: never through a symbolic link, and only
/// a regular file with no other hard link that belongs to dmon's user or the
/// directory's owner. Otherwise dmon refuses, in one line, rather than write
/// through a link planted by someone else.
///
/// Why not create a temporary file and rename it over PATH, which also never
/// follows a link: the lock must stay on the one inode that PATH names. A rename
/// replaces the inode a running dmon holds locked, so a second dmon would lock
/// its own new file and both would run. Opening in place and checking what was
/// opened (fstat, after the open, so nothing can be swapped in between) keeps the
/// lock meaningful and gives the same protection.
pub struct PidFile {
    file: Flock<File>,
    path: PathBuf,
}

impl PidFile {
    /// Opens and locks PATH.
    pub fn lock(path: &Path) -> Result<PidFile, String> {
        let shown = path.display();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .and_then(|file| check_opened(&file, path, false).map(|()| file))
            .map_err(|e| format!("-p/--pid-file: cannot open '{shown}': {}", crate::io_reason(&open_error(path, e))))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // Absolute, for the removal after a daemon's change to `/`.
            Ok(file) => Ok(PidFile { file, path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()) }),
            Err((mut file, _)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Err(format!("-p/--pid-file: '{shown}' is locked by a running dmon (pid {})", text.trim()))
            }
        }
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
}

impl Drop for PidFile {
    /// A pid file exists while its dmon runs: it is removed on every way out that
    /// runs destructors, but only while PATH still names the file dmon locked.
    fn drop(&mut self) {
        let ours = match (std::fs::symlink_metadata(&self.path), self.file.metadata()) {
            (Ok(at_path), Ok(locked)) => at_path.dev() == locked.dev() && at_path.ino() == locked.ino(),
            _ => false,
        };
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
