//! The cgroup v1 freezer backend, for hosts without any cgroup2 mount.
//!
//! Kernel facts (Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst):
//! - `freezer.state` takes FROZEN or THAWED and reads FREEZING until every task
//!   is frozen. There is no notification, so `freeze` re-reads it every
//!   millisecond (measured: 1000 tasks frozen in 7–15 ms);
//! - a frozen task does not act on SIGKILL until it is thawed, and there is no
//!   `cgroup.kill`. Killing is therefore a cycle: freeze (nobody can fork any
//!   more), KILL every listed process, thaw (they die), until the list is empty;
//! - signals sent to frozen tasks wait for the thaw. So `terminate` freezes
//!   first, sends TERM and CONT while nothing of the tree competes for the CPU,
//!   then thaws, and every process acts on its TERM at once;
//! - nothing here waits for the kernel: a freeze returns after its write, the
//!   kill cycle goes a step further on each tick of [`FreezerTree::deadline`]
//!   (every millisecond while it waits for FROZEN, at most 100 ms a round), and
//!   a thaw is written from a short-lived thread (thawing many busy tasks makes
//!   the write return late);
//! - v1 has no "populated" notification: the loop learns that the tree is empty
//!   from SIGCHLD (dmon is a child subreaper, so the last process of the tree
//!   always dies as dmon's child) and from the task's KILL repeat.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::ChildSetup;
use super::files;
use super::home::Home;
use super::pidfd::Refused;

/// How long after a freeze dmon says that FROZEN is still missing.
pub const FREEZE_WAIT: Duration = Duration::from_millis(500);
/// How many freeze–kill–thaw cycles one `kill` runs at most; the task machine
/// repeats KILL every second while the tree is not empty.
const KILL_ROUNDS: u32 = 20;
/// How long a round of the kill cycle waits for FROZEN before it KILLs anyway.
const KILL_FREEZE_WAIT: Duration = Duration::from_millis(100);
/// How often the kill cycle looks at the state while it waits.
const KILL_STEP: Duration = Duration::from_millis(1);

/// Where the kill cycle is.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// FROZEN is to be written (after any write still running).
    Freeze { round: u32 },
    /// FROZEN was written: KILL once the state reads FROZEN, or at `until`.
    Frozen { round: u32, until: Instant },
    /// KILL was sent and the thaw asked for: look again once it has ended.
    Thawed { round: u32 },
}

pub struct FreezerTree {
    _home: Arc<Home>,
    dir: PathBuf,
    procs: File,
    /// `freezer.state`, written in order, a thaw from a thread.
    state: files::OrderedWrites,
    start_frozen: bool,
    /// The kill cycle, while it runs, and when its next step is due.
    kill: Option<(Kill, Instant)>,
    /// When to look whether a freeze asked for has completed.
    freeze_check: Option<Instant>,
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
            state: files::OrderedWrites::new(open("freezer.state")?, dir.join("freezer.state")),
            procs,
            _home: home,
            dir,
            start_frozen: false,
            kill: None,
            freeze_check: None,
            refused: Refused::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read_state(&self) -> io::Result<String> {
        Ok(files::read_fd(self.state.file())?.trim().to_string())
    }

    pub fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup> {
        // The cgroup is empty here: a thaw still being written ends at once.
        self.state.settle();
        self.kill = None;
        self.freeze_check = None;
        // As in v2: a child joining a frozen cgroup would block `spawn`.
        if self.read_state()? != "THAWED" {
            self.state.write("THAWED")?;
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

    /// Writes FROZEN and returns; the state reads FROZEN once it is complete.
    pub fn freeze(&mut self) -> io::Result<()> {
        self.state.write("FROZEN")?;
        self.freeze_check = Some(Instant::now() + FREEZE_WAIT);
        Ok(())
    }

    /// Thaws without waiting for the write to return.
    pub fn thaw(&mut self) -> io::Result<()> {
        self.freeze_check = None;
        self.state.background("THAWED")
    }

    /// Freeze, TERM and CONT to every listed process, thaw (see the module's
    /// text). Not waiting for FROZEN: the signals go through pidfds checked
    /// against the list, so a process that exits meanwhile is no risk.
    pub fn terminate(&mut self) -> io::Result<()> {
        self.state.write("FROZEN")?;
        files::signal_all(&self.dir, Signal::SIGTERM, &mut self.refused);
        files::signal_all(&self.dir, Signal::SIGCONT, &mut self.refused);
        self.thaw()
    }

    /// Starts the kill cycle (or starts it again): freeze, KILL all, thaw,
    /// until no process is listed (or [`KILL_ROUNDS`]), one step per tick.
    /// While the state reads FROZEN no listed process can exit (it would have
    /// to run), so none of their pids can be reused before the thaw; when the
    /// freeze did not complete in its bound some may, so the KILL goes through
    /// pidfds checked against the list (see [`files::with_pidfds`]) either way.
    pub fn kill(&mut self) -> io::Result<()> {
        self.kill = Some((Kill::Freeze { round: 0 }, Instant::now()));
        self.step()
    }

    /// When the next step of the kill cycle, or the look at a freeze, is due.
    pub fn deadline(&self) -> Option<Instant> {
        [self.kill.map(|(_, at)| at), self.freeze_check].into_iter().flatten().min()
    }

    pub fn on_tick(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if self.freeze_check.is_some_and(|at| at <= now) {
            self.freeze_check = None;
            if self.read_state().is_ok_and(|state| state == "FREEZING") {
                tracing::warn!("{}: not frozen after {FREEZE_WAIT:?}; the kernel goes on freezing", self.dir.display());
            }
        }
        if self.kill.is_some_and(|(_, at)| at <= now) { self.step() } else { Ok(()) }
    }

    /// One step of the kill cycle; never waits.
    fn step(&mut self) -> io::Result<()> {
        let Some((kill, _)) = self.kill else { return Ok(()) };
        let now = Instant::now();
        let next = match kill {
            // The thaw is still being written.
            Kill::Thawed { .. } if self.state.busy() => Some((kill, now + KILL_STEP)),
            Kill::Thawed { .. } if files::pids(&self.dir).is_empty() => None,
            Kill::Thawed { round } if round + 1 >= KILL_ROUNDS => None,
            Kill::Thawed { round } => Some((Kill::Freeze { round: round + 1 }, now)),
            Kill::Freeze { round } => {
                self.state.write("FROZEN")?;
                Some((Kill::Frozen { round, until: now + KILL_FREEZE_WAIT }, now))
            }
            Kill::Frozen { round, until } if now < until && self.read_state()? != "FROZEN" => {
                Some((Kill::Frozen { round, until }, now + KILL_STEP))
            }
            Kill::Frozen { round, .. } => {
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
                // The killed processes die as they are thawed.
                self.state.background("THAWED")?;
                (left > 0).then_some((Kill::Thawed { round }, now + KILL_STEP))
            }
        };
        self.kill = next;
        // A step due now is taken now.
        match next {
            Some((_, at)) if at <= now => self.step(),
            _ => Ok(()),
        }
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
        self.state.settle();
        files::remove_tree(&self.dir)
    }
}
