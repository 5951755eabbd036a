//! The cgroup v2 backend: one leaf per supervised command, frozen with
//! `cgroup.freeze`, killed with `cgroup.kill`, watched through `cgroup.events`.
//!
//! Kernel facts this relies on (Documentation/admin-guide/cgroup-v2.rst):
//! - freezing is asynchronous: it is complete when `cgroup.events` says
//!   `frozen 1`; a change of that file is announced by POLLPRI, and re-armed by
//!   reading the file again;
//! - a process that joins a frozen cgroup freezes at once, before it returns to
//!   user space. The child joins its leaf between fork and exec, and std's
//!   `spawn` waits for the exec; so a command started while paused joins a thawed
//!   leaf, and the leaf is frozen as soon as `spawn` returns;
//! - `cgroup.kill` (Linux 5.14) kills the whole subtree, including processes
//!   forked while it runs; frozen processes die too;
//! - thawing many busy processes makes the write return late (about 4 s for 1000
//!   spinning tasks on 2 cores, the woken tasks preempt the writer), so the thaw is
//!   written from a short-lived thread and the loop goes on.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::files;
use super::home::Home;
use super::pidfd::Refused;
use super::{ChildSetup, TreeEvents};

/// How long `freeze` waits for `frozen 1` before it returns anyway (the kernel
/// goes on freezing; measured: 1000 processes in 3–17 ms).
pub const FREEZE_WAIT: Duration = Duration::from_millis(500);

pub struct Cgroup2Tree {
    _home: Arc<Home>,
    dir: PathBuf,
    /// `cgroup.procs`, open before any fork: the child writes "0" into it.
    procs: File,
    /// `cgroup.events`, polled by the loop and by `freeze`.
    events: File,
    freeze: File,
    start_frozen: bool,
    /// A thaw still being written.
    thawing: Option<JoinHandle<io::Result<()>>>,
    /// Processes of the leaf that dmon may not signal (an unprivileged dmon).
    refused: Refused,
}

impl Cgroup2Tree {
    pub fn new(home: Arc<Home>, leaf: &str) -> io::Result<Cgroup2Tree> {
        let dir = home.leaf(leaf);
        let open = |name: &str, write: bool| {
            let path = dir.join(name);
            File::options().read(!write).write(write).open(&path).map_err(|e| files::context(e, "open", &path, ""))
        };
        // std opens files with O_CLOEXEC: the commands do not inherit them.
        Ok(Cgroup2Tree {
            procs: open("cgroup.procs", true)?,
            events: open("cgroup.events", false)?,
            freeze: open("cgroup.freeze", true)?,
            _home: home,
            dir,
            start_frozen: false,
            thawing: None,
            refused: Refused::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for a thaw still being written, so writes stay in order.
    fn settle(&mut self) {
        if let Some(handle) = self.thawing.take() {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("thaw failed: {}", crate::io_reason(&e)),
                Err(_) => tracing::warn!("thaw failed"),
            }
        }
    }

    pub fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup> {
        self.settle();
        // A child joining a frozen leaf would freeze before its exec and block
        // `spawn`: the leaf is empty here, so thawing it is immediate.
        if files::read_fd(&self.freeze_state()?)?.trim() == "1" {
            files::write_fd(&self.freeze, &self.dir.join("cgroup.freeze"), "0")?;
        }
        self.start_frozen = frozen;
        Ok(ChildSetup { procs_fd: Some(self.procs.as_raw_fd()), stop_self: false })
    }

    fn freeze_state(&self) -> io::Result<File> {
        let path = self.dir.join("cgroup.freeze");
        File::open(&path).map_err(|e| files::context(e, "open", &path, ""))
    }

    pub fn started(&mut self, _pid: i32) {
        if std::mem::take(&mut self.start_frozen) {
            if let Err(e) = self.freeze() {
                tracing::warn!("cannot start the tree frozen: {}", crate::io_reason(&e));
            }
        }
    }

    /// A process that may not be signalled is reported once, not an error: the
    /// cgroup works, and `cgroup.kill` ends that process too.
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        files::signal_all(&self.dir, signal, &mut self.refused);
        Ok(())
    }

    /// Freezes the leaf and waits (at most [`FREEZE_WAIT`]) for `frozen 1`.
    pub fn freeze(&mut self) -> io::Result<()> {
        self.settle();
        files::write_fd(&self.freeze, &self.dir.join("cgroup.freeze"), "1")?;
        let done = files::wait_for(&self.events, FREEZE_WAIT, |text| {
            files::keyed(text, "frozen") == Some(1) || files::keyed(text, "populated") == Some(0)
        })?;
        if !done {
            tracing::warn!("{}: not frozen after {FREEZE_WAIT:?}; the kernel goes on freezing", self.dir.display());
        }
        Ok(())
    }

    /// Thaws the leaf without waiting for the write to return.
    pub fn thaw(&mut self) -> io::Result<()> {
        self.settle();
        let file = self.freeze.try_clone()?;
        let path = self.dir.join("cgroup.freeze");
        self.thawing = Some(
            std::thread::Builder::new()
                .name("thaw".into())
                .spawn(move || files::write_fd(&file, &path, "0"))
                .map_err(|e| files::context(e, "start a thread to thaw", Path::new(""), ""))?,
        );
        Ok(())
    }

    /// `cgroup.kill`; before Linux 5.14, KILL to every listed process.
    pub fn kill(&mut self) -> io::Result<()> {
        self.settle();
        let path = self.dir.join("cgroup.kill");
        match files::write(&path, "1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.signal(Signal::SIGKILL),
            other => other,
        }
    }

    pub fn events(&mut self) -> TreeEvents {
        match files::read_fd(&self.events) {
            Ok(text) => TreeEvents {
                populated: files::keyed(&text, "populated") != Some(0),
                frozen: files::keyed(&text, "frozen") == Some(1),
            },
            Err(_) => TreeEvents { populated: true, frozen: false },
        }
    }

    pub fn is_empty(&mut self) -> bool {
        !self.events().populated
    }

    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.events.as_fd())
    }

    pub fn remove(&mut self) -> io::Result<()> {
        self.settle();
        files::remove_tree(&self.dir)
    }
}

impl Drop for Cgroup2Tree {
    fn drop(&mut self) {
        self.settle();
    }
}
