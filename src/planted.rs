//! Opening files that someone else may have planted.
//!
//! dmon and its loggers often run as root and write into directories that other
//! users can write to (a pid file in /run or /tmp, a log directory that belongs to
//! the service's user). Whoever can write to the directory can put a symbolic
//! link or a hard link there, pointing at a file of value, and wait for root to
//! append to it or cut it. So the last component of such a path is opened with
//! O_NOFOLLOW (a link there is followed only by the rule of [`walk`] below), and
//! what was opened is checked afterwards with `fstat`, so nothing
//! can be swapped in between: it must be a regular file (or the FIFO asked for)
//! with no other hard link, and in a directory others can write to, it must
//! belong to the opener's user or to the directory's owner (the rule of the
//! kernel's `fs.protected_regular=2`, which is often off).
//!
//! [`Dir`] does the loggers' part: every open, rename and replacement goes
//! through a descriptor of the log directory (`openat(2)`, `renameat2(2)`), and
//! the directory is synced after a file in it is created or renamed, so the new
//! name survives a crash.
//!
//! The directories on the way there are walked the same way ([`walk`]): one
//! component at a time, each opened with O_NOFOLLOW from the one before. A
//! symbolic link on the way is followed only where nobody else could have made
//! it: the link and every directory above it belong to root or to this process's
//! user, and none of those directories can be written by anyone else (the rule
//! sudo applies to its files; a sticky bit does not help: anyone may add a link
//! to /tmp). So `/var/run` (root's link to `/run`) is followed, and a link in
//! /tmp or in a directory of another user is not. The standard
//! streams, named as `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` or
//! `/proc/self/fd/N`, are not walked at all: [`descriptor`] takes them as the
//! descriptors they name.
//!
//! What dmon reads its options from ([`read_trusted`]) follows a stricter rule,
//! that of sshd's StrictModes and cron: the file and every directory above it
//! belong to root or to dmon's user and nobody else can write to them. A
//! directory others can write to is accepted only with the sticky bit (/tmp) and
//! only where what is in it on the way belongs to root or dmon's user: the sticky
//! bit keeps everyone else from renaming or removing that entry (sshd refuses
//! such a directory outright; dmon's own test directories live in /tmp).

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

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

/// Whether `uid` is root's or this process's own.
fn ours(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Whether a directory can be changed by nobody but root and this process's user.
fn closed(dir: &Metadata) -> bool {
    ours(dir.uid()) && dir.mode() & 0o022 == 0
}

/// The most symbolic links one walk follows (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// One directory on a walked path: its path as walked (links resolved) and what
/// `fstat` said of it once opened.
pub struct Step {
    pub path: PathBuf,
    pub meta: Metadata,
}

/// A path walked up to its last component, which is left to the caller to
/// open (through [`Walk::open`], never through a link).
pub struct Walk {
    /// The directory that holds the last component, open as O_PATH.
    pub dir: File,
    /// The last component; `.` when the path names a directory by `/` or `..`.
    pub name: OsString,
    /// The directories from `/` down to `dir`, as walked.
    pub chain: Vec<Step>,
    /// What the last component is, when it exists (not followed if a link).
    pub kind: Option<nix::sys::stat::SFlag>,
    who: String,
}

fn components(path: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name.to_owned()),
            Component::ParentDir => out.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Opens the directory `name` (in `at`, or from the root) without following a
/// link. With `path`, as O_PATH: search permission is all a walk needs (a home
/// directory of mode 0711 is walked through), and such a descriptor serves
/// `openat`, `fstatat`, `readlinkat` and `unlinkat`; `fsync` and listing need a
/// readable one.
fn open_dir(at: Option<BorrowedFd>, name: &OsStr, path: bool) -> Result<File, Errno> {
    let access = if path { OFlag::O_PATH } else { OFlag::O_RDONLY };
    let flags = access | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = match at {
        Some(at) => nix::fcntl::openat(at, name, flags, Mode::empty())?,
        None => nix::fcntl::open(name, flags, Mode::empty())?,
    };
    Ok(File::from(fd))
}

/// Walks `path` (a relative one from the working directory) one component at a
/// time, each opened with O_NOFOLLOW from the one before, following a symbolic
/// link only where nobody but root or this process's user could have made it:
/// the link is theirs and so is every directory above it, which nobody else can
/// write to. A last component that is such a link is followed too; any other
/// link there is left for the open, which refuses it ([`link_error`]).
pub fn walk(path: &Path, who: &str) -> io::Result<Walk> {
    if path.as_os_str().is_empty() {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    let absolute = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) };
    let root = open_dir(None, OsStr::new("/"), true)?;
    let root_step = Step { path: PathBuf::from("/"), meta: root.metadata()? };
    let mut stack: Vec<(File, Step)> = vec![(root, root_step)];
    let mut todo: Vec<OsString> = components(&absolute);
    todo.reverse();
    let mut links = 0;
    let finish = |mut stack: Vec<(File, Step)>, name: OsString, kind| {
        let (dir, last) = stack.pop().expect("the root stays");
        let mut chain: Vec<Step> = stack.into_iter().map(|(_, step)| step).collect();
        chain.push(last);
        Ok(Walk { dir, name, chain, kind, who: who.to_string() })
    };
    while let Some(name) = todo.pop() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let last = todo.is_empty();
        let (dir, step) = stack.last().expect("the root stays");
        let entry = match nix::sys::stat::fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(entry) => entry,
            Err(Errno::ENOENT) if last => return finish(stack, name, None),
            Err(e) => return Err(e.into()),
        };
        let kind = nix::sys::stat::SFlag::from_bits_truncate(entry.st_mode & libc::S_IFMT);
        if kind == nix::sys::stat::SFlag::S_IFLNK {
            let trusted = ours(entry.st_uid) && stack.iter().all(|(_, step)| closed(&step.meta));
            if !trusted && last {
                return finish(stack, name, Some(kind));
            }
            if !trusted {
                return Err(io::Error::other(format!(
                    "'{}' is a symbolic link that someone else could have made, which {who} does not follow",
                    step.path.join(&name).display()
                )));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::ELOOP.into());
            }
            let target = nix::fcntl::readlinkat(dir, name.as_os_str())?;
            let target = Path::new(&target);
            if target.is_absolute() {
                stack.truncate(1);
            }
            let mut more = components(target);
            more.reverse();
            todo.extend(more);
            continue;
        }
        if last {
            return finish(stack, name, Some(kind));
        }
        let file = match open_dir(Some(dir.as_fd()), &name, true) {
            Ok(file) => file,
            // Swapped for a link since the fstatat (O_PATH|O_DIRECTORY then
            // says ENOTDIR rather than ELOOP).
            Err(Errno::ELOOP | Errno::ENOTDIR)
                if nix::sys::stat::fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK) =>
            {
                return Err(link_error(who));
            }
            Err(e) => return Err(e.into()),
        };
        let next = Step { path: step.path.join(&name), meta: file.metadata()? };
        stack.push((file, next));
    }
    finish(stack, ".".into(), Some(nix::sys::stat::SFlag::S_IFDIR))
}

impl Walk {
    /// Opens the last component with `flags` (and O_NOFOLLOW, O_CLOEXEC,
    /// O_NOCTTY), creating it with `mode` (less the umask) under O_CREAT.
    pub fn open(&self, flags: OFlag, mode: libc::mode_t) -> io::Result<File> {
        self.open_name(&self.name, flags, mode)
    }

    /// Opens `name` in the directory of the last component, as [`Walk::open`].
    pub fn open_name(&self, name: &OsStr, flags: OFlag, mode: libc::mode_t) -> io::Result<File> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        match nix::fcntl::openat(&self.dir, name, flags, Mode::from_bits_truncate(mode)) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::ELOOP) => Err(link_error(&self.who)),
            Err(e) => Err(e.into()),
        }
    }

    /// The directory that holds the last component.
    pub fn dir_meta(&self) -> &Metadata {
        &self.chain.last().expect("a walk has a directory").meta
    }

    /// The path of the last component, as walked.
    pub fn shown(&self) -> PathBuf {
        self.chain.last().expect("a walk has a directory").path.join(&self.name)
    }
}

/// The descriptor that `path` names when it names one of this process's own:
/// `/dev/stdin`, `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`.
/// Those are taken as the descriptors, never walked: in a container /dev/stdout
/// leads through /proc to a pipe or a file of another mount namespace.
pub fn descriptor(path: &Path) -> Option<RawFd> {
    let bytes = path.as_os_str().as_bytes();
    match bytes {
        b"/dev/stdin" => return Some(0),
        b"/dev/stdout" => return Some(1),
        b"/dev/stderr" => return Some(2),
        _ => {}
    }
    let number = [&b"/dev/fd/"[..], b"/proc/self/fd/", b"/proc/thread-self/fd/"]
        .into_iter()
        .find_map(|prefix| bytes.strip_prefix(prefix))?;
    if number.is_empty() || !number.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

/// Reads the file at `path` to take options from it, refusing, in words that
/// follow "cannot read 'PATH': ", what someone other than root or this
/// process's user could have written: a file of another user, one that others
/// can write to, one in a directory others can write to (unless sticky, with
/// the entry on the way root's or this user's), and anything but a regular file
/// of at most `limit` bytes. The mode and owner shown are the refused one's.
pub fn read_trusted(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let reason = |e: io::Error| crate::io_reason(&e);
    let walk = walk(path, "dmon").map_err(reason)?;
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK;
    let file = walk.open(flags, 0).map_err(reason)?;
    let meta = file.metadata().map_err(reason)?;
    let owner = |m: &Metadata| format!("owner uid {}, mode {:04o}", m.uid(), m.mode() & 0o7777);
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(reason(Errno::EISDIR.into()));
    }
    if kind.is_fifo() {
        return Err(format!("it is a FIFO, not a regular file ({})", owner(&meta)));
    }
    if !kind.is_file() {
        return Err(format!("it is not a regular file ({})", owner(&meta)));
    }
    if !ours(meta.uid()) {
        return Err(format!("it belongs to another user ({})", owner(&meta)));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("others can write to it ({})", owner(&meta)));
    }
    for (i, dir) in walk.chain.iter().enumerate() {
        let below = walk.chain.get(i + 1).map_or(&meta, |step| &step.meta);
        let sticky = dir.meta.mode() & libc::S_ISVTX != 0;
        if !ours(dir.meta.uid()) {
            return Err(format!(
                "its directory '{}' belongs to another user ({})",
                dir.path.display(),
                owner(&dir.meta)
            ));
        }
        if dir.meta.mode() & 0o022 != 0 && !(sticky && ours(below.uid())) {
            return Err(format!(
                "its directory '{}' can be written by others ({})",
                dir.path.display(),
                owner(&dir.meta)
            ));
        }
    }
    let too_big = || format!("it is larger than {} MiB", limit >> 20);
    if meta.len() > limit {
        return Err(too_big());
    }
    let mut text = Vec::new();
    file.take(limit + 1).read_to_end(&mut text).map_err(reason)?;
    if text.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(text)
}

/// A directory, held open, in which files are opened, replaced and renamed by
/// name only, never through a link. `who` names the program in errors.
pub struct Dir {
    file: File,
    path: PathBuf,
    who: String,
}

impl Dir {
    /// Opens the directory `path`, walked by the rule of [`walk`]: a link on the
    /// way, the last component included, only where nobody else could have made it.
    pub fn open(path: &Path, who: &str) -> io::Result<Dir> {
        let walk = walk(path, who)?;
        let file = match open_dir(Some(walk.dir.as_fd()), &walk.name, false) {
            Ok(file) => file,
            Err(Errno::ELOOP | Errno::ENOTDIR) if walk.kind == Some(nix::sys::stat::SFlag::S_IFLNK) => {
                return Err(link_error(who));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Dir { file, path: path.to_path_buf(), who: who.to_string() })
    }

    /// The directory that holds the last component of `walk`; `path` names it in messages.
    pub fn of_walk(walk: &Walk, path: &Path) -> io::Result<Dir> {
        let file = open_dir(Some(walk.dir.as_fd()), OsStr::new("."), false)?;
        Ok(Dir { file, path: path.to_path_buf(), who: walk.who.clone() })
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
    /// umask) when missing; a creation syncs the directory. A FIFO is refused.
    pub fn open_append(&self, name: impl AsRef<OsStr>, mode: libc::mode_t) -> io::Result<File> {
        let name = name.as_ref();
        // O_RDWR: an open of a FIFO does not wait for the other end (fifo(7)).
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

    /// Opens `name` for reading; `None` when there is no such file. The open
    /// does not block: a FIFO planted there is opened at once, and refused.
    pub fn open_read(&self, name: impl AsRef<OsStr>) -> io::Result<Option<File>> {
        match self.openat(name.as_ref(), OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
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

    /// What `name` in this directory is, not following a link; `None` when missing.
    pub fn stat(&self, name: impl AsRef<OsStr>) -> Option<nix::sys::stat::FileStat> {
        nix::sys::stat::fstatat(&self.file, name.as_ref(), AtFlags::AT_SYMLINK_NOFOLLOW).ok()
    }

    /// Removes `name` from this directory (a link itself, never its target).
    pub fn remove(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        Ok(nix::unistd::unlinkat(&self.file, name.as_ref(), UnlinkatFlags::NoRemoveDir)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_by_name() {
        for (path, fd) in [("/dev/stdout", Some(1)), ("/dev/stderr", Some(2)), ("/dev/fd/7", Some(7))] {
            assert_eq!(descriptor(Path::new(path)), fd, "{path}");
        }
        assert_eq!(descriptor(Path::new("/proc/self/fd/12")), Some(12));
        for path in ["/dev/fd/", "/dev/fd/1x", "/dev/stdout2", "dev/stdout", "/proc/1/fd/1"] {
            assert_eq!(descriptor(Path::new(path)), None, "{path}");
        }
    }

    #[test]
    fn walks_to_the_last_component() {
        let walk = walk(Path::new("/dev/null"), "test").unwrap();
        assert_eq!(walk.name, "null");
        assert_eq!(walk.chain.iter().map(|s| s.path.clone()).collect::<Vec<_>>(), [Path::new("/"), Path::new("/dev")]);
        assert_eq!(walk.kind, Some(nix::sys::stat::SFlag::S_IFCHR));
        let walk = walk_dots();
        assert_eq!((walk.name.as_os_str(), walk.chain.len()), (OsStr::new("."), 1));
    }

    fn walk_dots() -> Walk {
        walk(Path::new("/dev/../.."), "test").unwrap()
    }
}
