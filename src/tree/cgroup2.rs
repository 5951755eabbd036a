//! The cgroup v2 backend: one leaf per supervised command, frozen with
//! `cgroup.freeze`, killed with `cgroup.kill`, watched through `cgroup.events`.
//!
//! Kernel facts this relies on (Documentation/admin-guide/cgroup-v2.rst), beside
//! those of [`super::leaf`]:
//! - freezing is asynchronous: it is complete when `cgroup.events` says
//!   `frozen 1`; a change of that file is announced by POLLPRI, and re-armed by
//!   reading the file again. The loop has the file in its poll set, so nothing
//!   here waits for the kernel;
//! - `cgroup.kill` (Linux 5.14) kills the whole subtree, including processes
//!   forked while it runs; frozen processes die too.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use nix::sys::signal::Signal;

use super::TreeEvents;
use super::files::{self, Access};
use super::home::Home;
use super::leaf::{self, Leaf};

/// A tree in a cgroup v2 leaf: the leaf, and its `cgroup.events`, in the
/// loop's poll set.
pub struct V2 {
    pub leaf: Leaf,
    events: File,
}

impl V2 {
    pub fn new(home: Arc<Home>, name: &str) -> io::Result<V2> {
        let leaf = Leaf::new(home, name, &leaf::V2)?;
        let events = files::open(&leaf.dir().join("cgroup.events"), Access::Read)?;
        Ok(V2 { leaf, events })
    }

    /// Reads `cgroup.events` (which re-arms its POLLPRI).
    pub fn events(&mut self) -> TreeEvents {
        let events = match files::read_fd(&self.events) {
            Ok(text) => TreeEvents {
                populated: crate::keyed::number(&text, "populated") != Some(0),
                frozen: crate::keyed::number(&text, "frozen") == Some(1),
            },
            Err(_) => TreeEvents { populated: true, frozen: false },
        };
        if events.frozen || !events.populated {
            self.leaf.freeze_done();
        }
        events
    }

    /// `cgroup.kill`, whatever the freezer's state (frozen processes die too);
    /// before Linux 5.14, KILL to every listed process.
    pub fn kill(&mut self) -> io::Result<()> {
        self.leaf.killed();
        match files::write(&self.leaf.dir().join("cgroup.kill"), "1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.leaf.signal(Signal::SIGKILL);
                Ok(())
            }
            other => other,
        }
    }

    pub fn is_empty(&mut self) -> bool {
        !self.events().populated
    }

    pub fn event_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    /// A freeze that has not completed in [`leaf::FREEZE_WAIT`] is reported (once).
    pub fn on_tick(&mut self) {
        let events = self.events();
        self.leaf.check_freeze(|_| events.populated && !events.frozen);
    }
}
