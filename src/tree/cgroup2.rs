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
use super::leaf::{self, CgroupTree, Leaf, Version};

/// What v2 adds to the leaf: its `cgroup.events`, in the loop's poll set.
pub struct V2 {
    events: File,
}

pub fn new(home: Arc<Home>, name: &str) -> io::Result<CgroupTree<V2>> {
    let leaf = Leaf::new(home, name, &leaf::V2)?;
    let events = files::open(&leaf.dir().join("cgroup.events"), Access::Read)?;
    Ok(CgroupTree { leaf, version: V2 { events } })
}

impl V2 {
    fn events(&mut self, leaf: &mut Leaf) -> TreeEvents {
        let events = match files::read_fd(&self.events) {
            Ok(text) => TreeEvents {
                populated: crate::keyed::number(&text, "populated") != Some(0),
                frozen: crate::keyed::number(&text, "frozen") == Some(1),
            },
            Err(_) => TreeEvents { populated: true, frozen: false },
        };
        if events.frozen || !events.populated {
            leaf.freeze_done();
        }
        events
    }
}

impl Version for V2 {
    /// `cgroup.kill`, whatever the freezer's state (frozen processes die too);
    /// before Linux 5.14, KILL to every listed process.
    fn kill(&mut self, leaf: &mut Leaf) -> io::Result<()> {
        leaf.killed();
        match files::write(&leaf.dir().join("cgroup.kill"), "1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                leaf.signal(Signal::SIGKILL);
                Ok(())
            }
            other => other,
        }
    }

    fn is_empty(&mut self, leaf: &mut Leaf) -> bool {
        !self.events(leaf).populated
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.events.as_fd())
    }

    fn acknowledge(&mut self, leaf: &mut Leaf) -> Option<TreeEvents> {
        Some(self.events(leaf))
    }

    /// A freeze that has not completed in [`leaf::FREEZE_WAIT`] is reported (once).
    fn on_tick(&mut self, leaf: &mut Leaf) -> io::Result<()> {
        let events = self.events(leaf);
        leaf.check_freeze(|_| events.populated && !events.frozen);
        Ok(())
    }
}
