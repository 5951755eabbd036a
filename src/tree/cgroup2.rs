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
//!   written from a short-lived thread and the loop goes on;
//! - signals sent to frozen processes wait for the thaw (a fatal one without a
//!   handler ends the process at once). So `terminate` freezes first (one
//!   write), sends TERM and CONT while nothing of the tree competes for the CPU,
//!   then thaws: every process acts on its TERM at once, none spins on while
//!   the others are signalled one by one.
//!
//! Nothing here waits for the kernel: a freeze is complete when `cgroup.events`
//! says `frozen 1`, which the loop sees in its poll set; once [`FREEZE_WAIT`] has
//! passed without it (a process in uninterruptible sleep), dmon says so.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::files;
use super::home::Home;
use super::pidfd::Refused;
use super::{ChildSetup, TreeEvents};

/// How long after a freeze dmon says that `frozen 1` is still missing (the
/// kernel goes on freezing; measured: 1000 processes in 3–17 ms).
pub const FREEZE_WAIT: Duration = Duration::from_millis(500);

pub struct Cgroup2Tree {
    _home: Arc<Home>,
    dir: PathBuf,
    /// `cgroup.procs`, open before any fork: the child writes "0" into it.
    procs: File,
    /// `cgroup.events`, polled by the loop and by `freeze`.
    events: File,
    /// `cgroup.freeze`, written in order, a thaw from a thread.
    freeze: files::OrderedWrites,
    start_frozen: bool,
    /// When to look whether a freeze asked for has completed.
    freeze_check: Option<Instant>,
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
            freeze: files::OrderedWrites::new(open("cgroup.freeze", true)?, dir.join("cgroup.freeze")),
            _home: home,
            dir,
            start_frozen: false,
            freeze_check: None,
            refused: Refused::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup> {
        // The leaf is empty here: a thaw still being written ends at once.
        self.freeze.settle();
        self.freeze_check = None;
        // A child joining a frozen leaf would freeze before its exec and block
        // `spawn`: the leaf is empty here, so thawing it is immediate.
        if files::read_fd(&self.freeze_state()?)?.trim() == "1" {
            self.freeze.write("0")?;
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

    /// Freezes the leaf and returns: the freeze is complete when `cgroup.events`
    /// says `frozen 1`.
    pub fn freeze(&mut self) -> io::Result<()> {
        self.freeze.write("1")?;
        self.freeze_check = Some(Instant::now() + FREEZE_WAIT);
        Ok(())
    }

    /// Thaws the leaf without waiting for the write to return.
    pub fn thaw(&mut self) -> io::Result<()> {
        self.freeze_check = None;
        self.freeze.background("0")
    }

    /// Freeze, TERM and CONT to every process, thaw (see the module's text).
    /// The freeze is not waited for: a signal reaches a process whether or not
    /// it is frozen yet, and the tree ends thawed in either case.
    pub fn terminate(&mut self) -> io::Result<()> {
        self.freeze.write("1")?;
        files::signal_all(&self.dir, Signal::SIGTERM, &mut self.refused);
        files::signal_all(&self.dir, Signal::SIGCONT, &mut self.refused);
        self.thaw()
    }

    /// `cgroup.kill`, whatever the freezer's state (frozen processes die too);
    /// before Linux 5.14, KILL to every listed process.
    pub fn kill(&mut self) -> io::Result<()> {
        let path = self.dir.join("cgroup.kill");
        match files::write(&path, "1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.signal(Signal::SIGKILL),
            other => other,
        }
    }

    /// When to look whether the freeze completed.
    pub fn deadline(&self) -> Option<Instant> {
        self.freeze_check
    }

    /// A freeze that has not completed in [`FREEZE_WAIT`] is reported (once).
    pub fn on_tick(&mut self) {
        if self.freeze_check.take().is_some() {
            let events = self.events();
            if events.populated && !events.frozen {
                tracing::warn!("{}: not frozen after {FREEZE_WAIT:?}; the kernel goes on freezing", self.dir.display());
            }
        }
    }

    pub fn events(&mut self) -> TreeEvents {
        let events = match files::read_fd(&self.events) {
            Ok(text) => TreeEvents {
                populated: files::keyed(&text, "populated") != Some(0),
                frozen: files::keyed(&text, "frozen") == Some(1),
            },
            Err(_) => TreeEvents { populated: true, frozen: false },
        };
        if events.frozen || !events.populated {
            self.freeze_check = None;
        }
        events
    }

    pub fn is_empty(&mut self) -> bool {
        !self.events().populated
    }

    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.events.as_fd())
    }

    pub fn remove(&mut self) -> io::Result<()> {
        self.freeze.settle();
        files::remove_tree(&self.dir)
    }
}
