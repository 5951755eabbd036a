//! Small helpers for cgroup files: errors that name the file and the value, pid
//! lists, signals to the processes they list, and removal of a cgroup subtree.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use std::collections::BTreeSet;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::pidfd::{Pidfd, Refused};

/// A failed operation on a cgroup file, with what was done, to which file,
/// with which value: "write 1 /sys/.../cgroup.kill: Permission denied".
#[derive(Debug)]
pub struct FileError {
    pub op: &'static str,
    pub path: PathBuf,
    /// What was written; empty for other operations.
    pub value: String,
    pub source: io::Error,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let value = if self.value.is_empty() { String::new() } else { format!(" {}", self.value) };
        write!(f, "{}{value} {}: {}", self.op, self.path.display(), crate::io_reason(&self.source))
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `e` as a [`FileError`], keeping its kind.
pub fn context(e: io::Error, op: &'static str, path: &Path, value: &str) -> io::Error {
    let kind = e.kind();
    io::Error::new(kind, FileError { op, path: path.to_path_buf(), value: value.to_string(), source: e })
}

/// How [`open`] opens a cgroup file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

/// Opens the cgroup file at `path`.
pub fn open(path: &Path, access: Access) -> io::Result<File> {
    let read = matches!(access, Access::Read | Access::ReadWrite);
    let write = matches!(access, Access::Write | Access::ReadWrite);
    File::options().read(read).write(write).open(path).map_err(|e| context(e, "open", path, ""))
}

/// Writes `value` to the cgroup file at `path` in one `write`.
pub fn write(path: &Path, value: &str) -> io::Result<()> {
    let file = open(path, Access::Write)?;
    file.write_at(value.as_bytes(), 0).map(drop).map_err(|e| context(e, "write", path, value))
}

/// Writes `value` to an open cgroup file in one `write`.
pub fn write_fd(file: &File, path: &Path, value: &str) -> io::Result<()> {
    file.write_at(value.as_bytes(), 0).map(drop).map_err(|e| context(e, "write", path, value))
}

/// Reads an open cgroup file from its start (which also re-arms its POLLPRI
/// notification: kernfs compares the event count with the one seen at the last read).
pub fn read_fd(file: &File) -> io::Result<String> {
    let mut buf = vec![0u8; 4096];
    let n = file.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Every pid in `cgroup.procs` of `dir` and of the cgroups below it, parents
/// first (a process found in a parent cgroup is signalled before its children's).
pub fn pids(dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    collect_pids(dir, &mut out, 0);
    out
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>, depth: u32) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if depth > 32 {
        return;
    }
    for sub in subdirs(dir) {
        collect_pids(&sub, out, depth + 1);
    }
}

fn subdirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect()
}

/// Removes the cgroup `dir` and every cgroup below it, deepest first. Fails with
/// EBUSY when one still holds a process.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    let mut first_error = None;
    for sub in subdirs(dir) {
        if let Err(e) = remove_tree(&sub) {
            first_error.get_or_insert(e);
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(first_error.unwrap_or_else(|| context(e, "rmdir", dir, ""))),
    }
}

/// How many pidfds [`with_pidfds`] holds at once (far below the usual limit
/// of 1024 descriptors).
const PIDFD_BATCH: usize = 256;

/// Calls `f` with a pidfd for each of `pids` (read from `cgroup.procs` below
/// `dir`) that is still listed there after its pidfd was opened. A pidfd opened
/// by number may refer to a process that took the pid after the list was read;
/// but if that process is alive when `f` signals it, it had the pid when the
/// list was read again, so it is listed, so it is in the cgroup. A pid that left
/// in between is skipped: no process outside the cgroup is ever signalled.
pub fn with_pidfds(dir: &Path, pids: &[i32], mut f: impl FnMut(i32, &Pidfd)) {
    for batch in pids.chunks(PIDFD_BATCH) {
        let opened: Vec<(i32, Pidfd)> = batch.iter().filter_map(|&pid| Some((pid, Pidfd::open(pid).ok()?))).collect();
        let listed: BTreeSet<i32> = self::pids(dir).into_iter().collect();
        for (pid, fd) in opened.iter().filter(|(pid, _)| listed.contains(pid)) {
            f(*pid, fd);
        }
    }
}

/// Sends `signal` to every process of the cgroup subtree at `dir`, re-reading the
/// lists until a round finds no process it had not signalled (a process forked
/// after the first read is caught by the next). Signals go through pidfds (see
/// [`with_pidfds`]); a process dmon may not signal is noted in `refused` (and
/// reported once), not an error: the others are signalled all the same.
pub fn signal_all(dir: &Path, signal: Signal, refused: &mut Refused) {
    // Reading a list never fails the round: an unreadable list is empty.
    let _ = super::until_no_new(|signalled| {
        let fresh: Vec<i32> = pids(dir).into_iter().filter(|p| !signalled.contains(p)).collect();
        with_pidfds(dir, &fresh, |pid, fd| {
            if fd.send(Some(signal)) == Err(Errno::EPERM) {
                refused.note(pid, fd.ino());
            }
        });
        Ok(fresh)
    });
}

/// The writes to one cgroup state file (`cgroup.freeze`, `freezer.state`), in
/// the order asked, without keeping the caller on a slow one. A write is made at
/// once when no earlier one is still running; otherwise, and when asked to run
/// in the background (a thaw: with many busy processes the write returns after
/// seconds, the woken processes preempting the writer), it is made by a
/// short-lived thread that first waits for the one before it.
pub struct OrderedWrites {
    file: File,
    path: PathBuf,
    pending: Option<JoinHandle<io::Result<()>>>,
}

impl OrderedWrites {
    pub fn new(file: File, path: PathBuf) -> OrderedWrites {
        OrderedWrites { file, path, pending: None }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Writes `value` at once, or after the write still running.
    pub fn write(&mut self, value: &'static str) -> io::Result<()> {
        if self.busy() {
            return self.background(value);
        }
        write_fd(&self.file, &self.path, value)
    }

    /// Writes `value` from a thread, after any earlier write. A thread that
    /// cannot be started: the write is made here, after the earlier one.
    pub fn background(&mut self, value: &'static str) -> io::Result<()> {
        let previous = self.pending.take();
        let file = self.file.try_clone()?;
        let path = self.path.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Option<JoinHandle<io::Result<()>>>>();
        let spawned = std::thread::Builder::new().name("cgroup-write".into()).spawn(move || {
            if let Ok(Some(previous)) = rx.recv() {
                report(previous.join());
            }
            write_fd(&file, &path, value)
        });
        match spawned {
            Ok(handle) => {
                let _ = tx.send(previous);
                self.pending = Some(handle);
                Ok(())
            }
            Err(_) => {
                if let Some(previous) = previous {
                    report(previous.join());
                }
                write_fd(&self.file, &self.path, value)
            }
        }
    }

    /// Whether a write is still running (one that has ended is reported now).
    pub fn busy(&mut self) -> bool {
        if self.pending.as_ref().is_some_and(|h| h.is_finished()) {
            report(self.pending.take().expect("checked").join());
        }
        self.pending.is_some()
    }

    /// Waits for the writes still running.
    pub fn settle(&mut self) {
        if let Some(handle) = self.pending.take() {
            report(handle.join());
        }
    }
}

impl Drop for OrderedWrites {
    fn drop(&mut self) {
        self.settle();
    }
}

fn report(result: std::thread::Result<io::Result<()>>) {
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("{}", crate::io_reason(&e)),
        Err(_) => tracing::warn!("a write to a cgroup failed"),
    }
}
