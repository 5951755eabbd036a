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
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::home::Home;
use super::leaf::{self, Leaf};
use super::{ChildSetup, Control, TreeEvents, files};

pub struct Cgroup2Tree {
    leaf: Leaf,
    /// `cgroup.events`, in the loop's poll set.
    events: File,
}

impl Cgroup2Tree {
    pub fn new(home: Arc<Home>, name: &str) -> io::Result<Cgroup2Tree> {
        let leaf = Leaf::new(home, name, &leaf::V2)?;
        let events = files::open(&leaf.dir().join("cgroup.events"), true, false)?;
        Ok(Cgroup2Tree { leaf, events })
    }

    fn events(&mut self) -> TreeEvents {
        let events = match files::read_fd(&self.events) {
            Ok(text) => TreeEvents {
                populated: files::keyed(&text, "populated") != Some(0),
                frozen: files::keyed(&text, "frozen") == Some(1),
            },
            Err(_) => TreeEvents { populated: true, frozen: false },
        };
        if events.frozen || !events.populated {
            self.leaf.freeze_done();
        }
        events
    }
}

impl Control for Cgroup2Tree {
    fn cgroup(&self) -> Option<&Path> {
        Some(self.leaf.dir())
    }

    fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup> {
        self.leaf.child_setup(frozen)
    }

    fn started(&mut self, _pid: i32) {
        self.leaf.started();
    }

    fn signal(&mut self, signal: Signal) -> io::Result<()> {
        self.leaf.signal(signal);
        Ok(())
    }

    fn freeze(&mut self) -> io::Result<()> {
        self.leaf.freeze()
    }

    fn thaw(&mut self) -> io::Result<()> {
        self.leaf.thaw()
    }

    fn terminate(&mut self) -> io::Result<()> {
        self.leaf.terminate()
    }

    /// `cgroup.kill`, whatever the freezer's state (frozen processes die too);
    /// before Linux 5.14, KILL to every listed process.
    fn kill(&mut self) -> io::Result<()> {
        match files::write(&self.leaf.dir().join("cgroup.kill"), "1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.signal(Signal::SIGKILL),
            other => other,
        }
    }

    fn is_empty(&mut self) -> bool {
        !self.events().populated
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.events.as_fd())
    }

    fn acknowledge(&mut self) -> Option<TreeEvents> {
        Some(self.events())
    }

    fn deadline(&self) -> Option<Instant> {
        self.leaf.freeze_check()
    }

    /// A freeze that has not completed in [`leaf::FREEZE_WAIT`] is reported (once).
    fn on_tick(&mut self) -> io::Result<()> {
        let events = self.events();
        self.leaf.check_freeze(|_| events.populated && !events.frozen);
        Ok(())
    }

    fn remove(&mut self) -> io::Result<()> {
        self.leaf.remove()
    }
}
