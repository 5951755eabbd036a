//! What the two cgroup backends share: a [`Leaf`] is a directory with its open
//! `cgroup.procs` (the child joins by writing "0" into it), the file that
//! freezes it (`cgroup.freeze` in v2, `freezer.state` in v1), starting a child
//! frozen, thawing without waiting, the freeze-first terminate, and the warning
//! when a freeze does not complete. Each version's backend holds a leaf and
//! adds only what is its own: [`super::cgroup2::V2`] its `cgroup.events` and
//! `cgroup.kill`, [`super::freezer::V1`] the kill cycle.
//!
//! Kernel facts both versions share:
//! - a process joining a frozen cgroup, or born in one (`CLONE_INTO_CGROUP`),
//!   freezes before it returns to user space. [`crate::spawn::spawn`] waits for
//!   the child's exec, so the leaf is thawed before a child is started, and
//!   frozen again as soon as `spawn` returns when the child must start paused;
//! - thawing many busy processes makes the write return late (about 4 s for
//!   1000 spinning tasks on 2 cores: the woken tasks preempt the writer), so a
//!   thaw is written from a short-lived thread ([`files::OrderedWrites`]);
//! - signals sent to frozen processes wait for the thaw. So `terminate` freezes
//!   first (one write), sends TERM and CONT while nothing of the tree competes
//!   for the CPU, then thaws: every process acts on its TERM at once, none spins
//!   on while the others are signalled one by one.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::ChildSetup;
use super::files::{self, Access};
use super::home::Home;
use super::pidfd::Refused;

/// How long after a freeze dmon says that it has not completed (the kernel
/// goes on freezing; measured: 1000 processes frozen in 3–17 ms).
pub const FREEZE_WAIT: Duration = Duration::from_millis(500);

/// The file that freezes a leaf and the values it takes.
pub struct Freezing {
    pub file: &'static str,
    pub frozen: &'static str,
    pub thawed: &'static str,
}

pub const V2: Freezing = Freezing { file: "cgroup.freeze", frozen: "1", thawed: "0" };
pub const V1: Freezing = Freezing { file: "freezer.state", frozen: "FROZEN", thawed: "THAWED" };

pub struct Leaf {
    _home: Arc<Home>,
    dir: PathBuf,
    how: &'static Freezing,
    /// `cgroup.procs`, open before any fork: the child writes "0" into it.
    procs: File,
    /// The directory, for a child started in it (v2 only), until the leaf is
    /// killed once (see [`Leaf::killed`]).
    dir_fd: Option<File>,
    /// The freezing file, written in order, a thaw from a thread.
    state: files::OrderedWrites,
    start_frozen: bool,
    /// When to look whether a freeze asked for has completed.
    freeze_check: Option<Instant>,
    /// Processes of the leaf that dmon may not signal (an unprivileged dmon).
    pub refused: Refused,
}

impl Leaf {
    pub fn new(home: Arc<Home>, leaf: &str, how: &'static Freezing) -> io::Result<Leaf> {
        let dir = home.leaf(leaf);
        // std opens files with O_CLOEXEC: the commands do not inherit them.
        let procs = files::open(&dir.join("cgroup.procs"), Access::Write)?;
        let path = dir.join(how.file);
        let state = files::OrderedWrites::new(files::open(&path, Access::ReadWrite)?, path);
        // clone3 starts a child in a v2 cgroup only.
        let dir_fd = if how.file == V2.file { Some(files::open(&dir, Access::Read)?) } else { None };
        Ok(Leaf {
            _home: home,
            dir,
            how,
            procs,
            dir_fd,
            state,
            start_frozen: false,
            freeze_check: None,
            refused: Refused::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The freezing file's value (`FREEZING` in v1 while a freeze is under way).
    pub fn state(&self) -> io::Result<String> {
        Ok(files::read_fd(self.state.file())?.trim().to_string())
    }

    pub fn is_frozen_state(&self, state: &str) -> bool {
        state == self.how.frozen
    }

    /// Thaws the empty leaf (a thaw still being written ends at once) and
    /// returns the descriptors the child is started in or joins through.
    pub fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup> {
        self.state.settle();
        self.freeze_check = None;
        if self.state()? != self.how.thawed {
            self.state.write(self.how.thawed)?;
        }
        self.start_frozen = frozen;
        Ok(ChildSetup {
            procs_fd: Some(self.procs.as_raw_fd()),
            cgroup_fd: self.dir_fd.as_ref().map(|f| f.as_raw_fd()),
            limit_fds: [None; 3],
        })
    }

    pub fn started(&mut self) {
        if std::mem::take(&mut self.start_frozen) {
            if let Err(e) = self.freeze() {
                tracing::warn!("cannot start the tree frozen: {}", crate::io_reason(&e));
            }
        }
    }

    /// A process that may not be signalled is reported once, not an error: the
    /// cgroup works, and its kill ends that process too.
    pub fn signal(&mut self, signal: Signal) {
        files::signal_all(&self.dir, signal, &mut self.refused);
    }

    /// Writes the frozen value and returns: the freeze completes asynchronously.
    pub fn freeze(&mut self) -> io::Result<()> {
        self.state.write(self.how.frozen)?;
        self.freeze_check = Some(Instant::now() + FREEZE_WAIT);
        Ok(())
    }

    /// Thaws without waiting for the write to return.
    pub fn thaw(&mut self) -> io::Result<()> {
        self.freeze_check = None;
        self.state.background(self.how.thawed)
    }

    /// `cgroup.kill` was written. From then on children join the leaf by
    /// themselves rather than being started in it: the kernel (seen on Linux
    /// 6.18) kills, before it runs, every child started with CLONE_INTO_CGROUP
    /// in a leaf that was ever killed.
    pub fn killed(&mut self) {
        self.dir_fd = None;
    }

    /// Whether a thaw is still being written.
    pub fn busy(&mut self) -> bool {
        self.state.busy()
    }

    /// Freeze, TERM and CONT to every process, thaw (see the module's text).
    /// The freeze is not waited for: the signals go through pidfds checked
    /// against the list, a signal reaches a process whether or not it is frozen
    /// yet, and the tree ends thawed in either case.
    pub fn terminate(&mut self) -> io::Result<()> {
        self.state.write(self.how.frozen)?;
        self.signal(Signal::SIGTERM);
        self.signal(Signal::SIGCONT);
        self.thaw()
    }

    /// When to look whether the freeze completed.
    pub fn freeze_check(&self) -> Option<Instant> {
        self.freeze_check
    }

    /// The freeze completed, or the tree is gone: nothing to look at.
    pub fn freeze_done(&mut self) {
        self.freeze_check = None;
    }

    /// Once [`FREEZE_WAIT`] has passed: says so (once) when `incomplete` says
    /// the freeze has not completed.
    pub fn check_freeze(&mut self, incomplete: impl FnOnce(&Leaf) -> bool) {
        if self.freeze_check.is_some_and(|at| at <= Instant::now()) {
            self.freeze_check = None;
            if incomplete(self) {
                tracing::warn!("{}: not frozen after {FREEZE_WAIT:?}; the kernel goes on freezing", self.dir.display());
            }
        }
    }

    pub fn remove(&mut self) -> io::Result<()> {
        self.state.settle();
        files::remove_tree(&self.dir)
    }
}
