//! "The process tree of one supervised command": start into it, signal all of it,
//! freeze, thaw, kill all of it, and tell when it is empty.
//!
//! One enum over the backends, dispatched by `match`:
//! - [`signals`]: no cgroup; the command's process group, dmon as child subreaper,
//!   and a walk of the process table by parent pid. Works everywhere, for any user,
//!   but a process could in principle slip out between two walks.
//!
//! The loop never needs to know which backend it has: it asks for the data the
//! child needs between fork and exec ([`ChildSetup`]), and carries out the task
//! machine's actions through [`Tree`].

pub mod signals;

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

use nix::sys::signal::Signal;

/// What a new child does between fork and exec for its tree. Prepared before the
/// fork: the child only makes raw system calls with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildSetup {
    /// An open `cgroup.procs` to write "0" into, joining the cgroup before exec.
    pub procs_fd: Option<RawFd>,
    /// Stop itself (SIGSTOP) before exec: the signal backend's "start frozen".
    pub stop_self: bool,
}

/// What a readable [`Tree::event_fd`] said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeEvents {
    pub populated: bool,
    pub frozen: bool,
}

pub enum Tree {
    Signals(signals::SignalTree),
}

impl Tree {
    /// A short name for diagnostics and the status file.
    pub fn backend(&self) -> &'static str {
        match self {
            Tree::Signals(_) => "signals",
        }
    }

    /// What the next child needs between fork and exec. `frozen`: the child must
    /// start paused.
    pub fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup> {
        match self {
            Tree::Signals(_) => Ok(ChildSetup { procs_fd: None, stop_self: frozen }),
        }
    }

    /// The child `pid` was started into the tree.
    pub fn started(&mut self, pid: i32) {
        match self {
            Tree::Signals(t) => t.started(pid),
        }
    }

    /// TERM and CONT to every process of the tree.
    pub fn terminate(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGTERM)?;
        self.signal(Signal::SIGCONT)
    }

    /// Sends `signal` to every process of the tree.
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        match self {
            Tree::Signals(t) => t.signal(signal),
        }
    }

    /// Pauses every process of the tree. May complete asynchronously.
    pub fn freeze(&mut self) -> io::Result<()> {
        match self {
            Tree::Signals(t) => t.signal(Signal::SIGSTOP),
        }
    }

    pub fn thaw(&mut self) -> io::Result<()> {
        match self {
            Tree::Signals(t) => t.signal(Signal::SIGCONT),
        }
    }

    /// KILL to every process of the tree.
    pub fn kill(&mut self) -> io::Result<()> {
        match self {
            Tree::Signals(t) => t.signal(Signal::SIGKILL),
        }
    }

    /// Whether no process of the tree is left (zombies not counted: the caller
    /// reaps its children before asking).
    pub fn is_empty(&mut self) -> bool {
        match self {
            Tree::Signals(t) => t.is_empty(),
        }
    }

    /// A descriptor that becomes readable (POLLPRI) when the tree's state changes.
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Tree::Signals(_) => None,
        }
    }

    /// Pids the tree must never claim as its own (the other tree's leader).
    pub fn set_foreign(&mut self, pids: &[i32]) {
        match self {
            Tree::Signals(t) => t.foreign = pids.to_vec(),
        }
    }

    /// Releases what the tree holds (cgroup directories); the tree must be empty.
    pub fn remove(&mut self) -> io::Result<()> {
        match self {
            Tree::Signals(_) => Ok(()),
        }
    }
}
