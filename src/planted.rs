//! Opening files that someone else may have planted.
//!
//! dmon and its loggers often run as root and write into directories that other
//! users can write to (a pid file in /run or /tmp, a log directory that belongs to
//! the service's user). Whoever can write to the directory can put a symbolic
//! link or a hard link there, pointing at a file of value, and wait for root to
//! append to it or cut it. So the last component of such a path is never followed
//! (O_NOFOLLOW), and what was opened is checked afterwards with `fstat`, so nothing
//! can be swapped in between: it must be a regular file (or the FIFO asked for)
//! with no other hard link, and in a directory others can write to, it must
//! belong to the opener's user or to the directory's owner (the rule of the
//! kernel's `fs.protected_regular=2`, which is often off).
//!
//! [`Dir`] does the loggers' part: every open, rename and replacement goes
//! through a descriptor of the log directory (`openat(2)`, `renameat2(2)`), and
//! the directory is synced after a file in it is created or renamed, so the new
//! name survives a crash.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

/// The error of an open with O_NOFOLLOW that met a symbolic link, for a message
/// after "cannot open 'PATH': " (the kernel's own words, "Too many levels of
/// symbolic links", do not say what to do). `who` is the program's name.
pub fn link_error(who: &str) -> io::Error {
    io::Error::other(format!("it is a symbolic link, which {who} does not follow (remove it, or name its target)"))
}

/// Checks `file` as opened: a FIFO when `fifo`, else a regular file with no other
/// hard link; and when `dir` (its directory) can be written to by others, it must
/// belong to this process's user or to the directory's owner. The error reads
/// after "cannot open 'PATH': ".
pub fn check(file: &Metadata, dir: Option<&Metadata>, who: &str, fifo: bool) -> io::Result<()> {
    let kind = file.file_type();
    if fifo && !kind.is_fifo() {
        return Err(io::Error::other("it is no longer a FIFO (replaced while being opened)"));
    }
    if !fifo && kind.is_fifo() {
        return Err(io::Error::other("it is a FIFO, not a regular file"));
    }
    if !fifo && !kind.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    if kind.is_file() && file.nlink() > 1 {
        return Err(io::Error::other(format!(
            "it has {} hard links, and {who} does not write through a link",
            file.nlink()
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    let others_write = dir.is_some_and(|dir| dir.mode() & 0o022 != 0 && file.uid() != dir.uid());
    if file.uid() != me && others_write {
        return Err(io::Error::other(format!(
            "it belongs to uid {} in a directory others can write to, and {who} does not write to it",
            file.uid()
        )));
    }
    Ok(())
}

/// An error of dmon's opening PATH (its pid file, its status file) without
/// following links, for a message after "cannot open 'PATH': ". A symbolic link
/// is named as such: O_NOFOLLOW reports it as "Too many levels of symbolic links".
pub fn open_error(path: &Path, e: io::Error) -> io::Error {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if e.raw_os_error() == Some(libc::ELOOP) && is_link { link_error("dmon") } else { e }
}

/// Checks what dmon's open of PATH (without following links) found, by the rule
/// of [`check`], against the directory PATH is in.
pub fn check_opened(file: &File, path: &Path, fifo: bool) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    check(&file.metadata()?, std::fs::metadata(dir).ok().as_ref(), "dmon", fifo)
}

/// A directory, held open, in which files are opened, replaced and renamed by
/// name only, never through a link. `who` names the program in errors.
pub struct Dir {
    file: File,
    path: PathBuf,
    who: String,
}

impl Dir {
    /// Opens the directory `path` (following links in `path` itself: only the
    /// files in it are guarded).
    pub fn open(path: &Path, who: &str) -> io::Result<Dir> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let file = File::from(nix::fcntl::open(path, flags, Mode::empty())?);
        Ok(Dir { file, path: path.to_path_buf(), who: who.to_string() })
    }

    /// The directory's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory, for messages.
    pub fn join(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path.join(name.as_ref())
    }

    /// Makes the names in the directory durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn openat(&self, name: &OsStr, flags: OFlag, mode: libc::mode_t) -> io::Result<File> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        match nix::fcntl::openat(&self.file, name, flags, Mode::from_bits_truncate(mode)) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::ELOOP) => Err(link_error(&self.who)),
            Err(e) => Err(e.into()),
        }
    }

    fn checked(&self, file: File) -> io::Result<File> {
        check(&file.metadata()?, Some(&self.file.metadata()?), &self.who, false)?;
        Ok(file)
    }

    /// Opens `name` for reading and appending, creating it with `mode` (less the
    /// umask) when missing; a creation syncs the directory.
    pub fn open_append(&self, name: impl AsRef<OsStr>, mode: libc::mode_t) -> io::Result<File> {
        let name = name.as_ref();
        let flags = OFlag::O_RDWR | OFlag::O_APPEND;
        loop {
            match self.openat(name, flags, 0) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => return self.checked(other?),
            }
            match self.openat(name, flags | OFlag::O_CREAT | OFlag::O_EXCL, mode) {
                // Made by someone else meanwhile: open what is there, and check it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => {
                    let file = other?;
                    self.sync()?;
                    return Ok(file);
                }
            }
        }
    }

    /// Opens `name` for reading; `None` when there is no such file.
    pub fn open_read(&self, name: impl AsRef<OsStr>) -> io::Result<Option<File>> {
        match self.openat(name.as_ref(), OFlag::O_RDONLY, 0) {
            Ok(file) => self.checked(file).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `name` with a file holding `data`: written to `name.new`, synced,
    /// renamed over `name` (which replaces a link rather than following it), and
    /// the directory synced.
    pub fn replace(&self, name: impl AsRef<OsStr>, data: &[u8], mode: libc::mode_t) -> io::Result<()> {
        let mut temp = OsString::from(name.as_ref());
        temp.push(".new");
        // A leftover of an earlier attempt, or a plant: unlink removes a link itself.
        let _ = nix::unistd::unlinkat(&self.file, temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        let mut file = self.openat(&temp, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, mode)?;
        file.write_all(data)?;
        file.sync_data()?;
        self.rename(&temp, name, false)?;
        self.sync()
    }

    /// Renames `from` to `to` in this directory; with `keep`, never over an
    /// existing `to` (AlreadyExists then).
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>, keep: bool) -> io::Result<()> {
        let (from, to, dir) = (from.as_ref(), to.as_ref(), &self.file);
        let flags = if keep { RenameFlags::RENAME_NOREPLACE } else { RenameFlags::empty() };
        match nix::fcntl::renameat2(dir, from, dir, to, flags) {
            // A file system without RENAME_NOREPLACE: a hard link also refuses to replace.
            Err(Errno::EINVAL) if keep => {
                nix::unistd::linkat(dir, from, dir, to, AtFlags::empty())?;
                nix::unistd::unlinkat(dir, from, UnlinkatFlags::NoRemoveDir)?;
                Ok(())
            }
            other => Ok(other?),
        }
    }
}
