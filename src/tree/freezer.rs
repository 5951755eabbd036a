//! The cgroup v1 freezer backend, for hosts without any cgroup2 mount.
//!
//! Kernel facts (Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst):
//! - `freezer.state` takes FROZEN or THAWED and reads FREEZING until every task
//!   is frozen. There is no notification, so `freeze` re-reads it every
//!   millisecond (measured: 1000 tasks frozen in 7–15 ms);
//! - a frozen task does not act on SIGKILL until it is thawed, and there is no
//!   `cgroup.kill`. Killing is therefore a cycle: freeze (nobody can fork any
//!   more), KILL every listed process, thaw (they die), until the list is empty;
//! - v1 has no "populated" notification: the loop learns that the tree is empty
//!   from SIGCHLD (dmon is a child subreaper, so the last process of the tree
//!   always dies as dmon's child) and from the task's KILL repeat.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::ChildSetup;
use super::files;
use super::home::Home;
use super::pidfd::Refused;

/// How long `freeze` waits for FROZEN before it returns anyway.
pub const FREEZE_WAIT: Duration = Duration::from_millis(500);
/// How many freeze–kill–thaw cycles one `kill` runs at most; the task machine
/// repeats KILL every second while the tree is not empty.
const KILL_ROUNDS: u32 = 20;

pub struct FreezerTree {
    _home: Arc<Home>,
    dir: PathBuf,
    procs: File,
    state: File,
    start_frozen: bool,
    thawing: Option<JoinHandle<io::Result<()>>>,
    /// Processes of the leaf that dmon may not signal (an unprivileged dmon).
    refused: Refused,
}

impl FreezerTree {
    pub fn new(home: Arc<Home>, leaf: &str) -> io::Result<FreezerTree> {
        let dir = home.leaf(leaf);
        let open = |name: &str| {
            let path = dir.join(name);
            File::options().read(true).write(true).open(&path).map_err(|e| files::context(e, "open", &path, ""))
        };
        let procs = {
            let path = dir.join("cgroup.procs");
            File::options().write(true).open(&path).map_err(|e| files::context(e, "open", &path, ""))?
        };
        Ok(FreezerTree {
            state: open("freezer.state")?,
            procs,
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

    fn state_path(&self) -> PathBuf {
        self.dir.join("freezer.state")
    }

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
        // As in v2: a child joining a frozen cgroup would block `spawn`.
        if files::read_fd(&self.state)?.trim() != "THAWED" {
            files::write_fd(&self.state, &self.state_path(), "THAWED")?;
        }
        self.start_frozen = frozen;
        Ok(ChildSetup { procs_fd: Some(self.procs.as_raw_fd()), stop_self: false })
    }

    pub fn started(&mut self, _pid: i32) {
        if std::mem::take(&mut self.start_frozen) {
            if let Err(e) = self.freeze() {
                tracing::warn!("cannot start the tree frozen: {}", crate::io_reason(&e));
            }
        }
    }

    /// A process that may not be signalled is reported once, not an error.
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        files::signal_all(&self.dir, signal, &mut self.refused);
        Ok(())
    }

    /// Writes FROZEN and waits (at most [`FREEZE_WAIT`]) until the state reads FROZEN.
    pub fn freeze(&mut self) -> io::Result<()> {
        self.settle();
        if !self.freeze_and_wait(FREEZE_WAIT)? {
            tracing::warn!("{}: not frozen after {FREEZE_WAIT:?}; the kernel goes on freezing", self.dir.display());
        }
        Ok(())
    }

    fn freeze_and_wait(&mut self, bound: Duration) -> io::Result<bool> {
        files::write_fd(&self.state, &self.state_path(), "FROZEN")?;
        let end = Instant::now() + bound;
        loop {
            if files::read_fd(&self.state)?.trim() == "FROZEN" {
                return Ok(true);
            }
            if Instant::now() >= end {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn thaw(&mut self) -> io::Result<()> {
        self.settle();
        let file = self.state.try_clone()?;
        let path = self.state_path();
        self.thawing = Some(
            std::thread::Builder::new()
                .name("thaw".into())
                .spawn(move || files::write_fd(&file, &path, "THAWED"))
                .map_err(|e| files::context(e, "start a thread to thaw", Path::new(""), ""))?,
        );
        Ok(())
    }

    /// Freeze, KILL all, thaw, until no process is listed (or [`KILL_ROUNDS`]).
    /// While the state reads FROZEN no listed process can exit (it would have to
    /// run), so none of their pids can be reused before the thaw; when the freeze
    /// did not complete in its bound some may, so the KILL goes through pidfds
    /// checked against the list (see [`files::with_pidfds`]) either way.
    pub fn kill(&mut self) -> io::Result<()> {
        self.settle();
        let path = self.state_path();
        for _round in 0..KILL_ROUNDS {
            self.freeze_and_wait(Duration::from_millis(100))?;
            let pids = files::pids(&self.dir);
            let refused = &mut self.refused;
            let mut left = 0;
            files::with_pidfds(&self.dir, &pids, |pid, fd| {
                if fd.send(Some(Signal::SIGKILL)) == Err(Errno::EPERM) {
                    refused.note(pid, fd.ino());
                } else {
                    left += 1;
                }
            });
            files::write_fd(&self.state, &path, "THAWED")?;
            if left == 0 {
                break;
            }
            // Let the killed processes run to their end before looking again.
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// No process is listed but those dmon may not signal (not waited for).
    pub fn is_empty(&mut self) -> bool {
        let pids = files::pids(&self.dir);
        if self.refused.is_empty() || pids.is_empty() {
            return pids.is_empty();
        }
        let mut others = 0;
        files::with_pidfds(&self.dir, &pids, |pid, fd| {
            if !self.refused.contains(pid, fd.ino()) {
                others += 1;
            }
        });
        others == 0
    }

    pub fn remove(&mut self) -> io::Result<()> {
        self.settle();
        files::remove_tree(&self.dir)
    }
}

impl Drop for FreezerTree {
    fn drop(&mut self) {
        self.settle();
    }
}
