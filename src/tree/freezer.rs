//! The cgroup v1 freezer backend, for hosts without any cgroup2 mount.
//!
//! Kernel facts (Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst):
//! - `freezer.state` takes FROZEN or THAWED and reads FREEZING until every task
//!   is frozen (measured: 1000 tasks frozen in 7–15 ms). There is no
//!   notification: a pause writes FROZEN and returns, and the state is read once
//!   more, [`leaf::FREEZE_WAIT`] later, to warn when it still reads FREEZING;
//! - a frozen task does not act on SIGKILL until it is thawed, and there is no
//!   `cgroup.kill`. Killing is therefore a cycle: freeze (nobody can fork any
//!   more), KILL every listed process, thaw (they die), until the list is empty;
//! - nothing here waits for the kernel: a freeze returns after its write, and
//!   the kill cycle goes a step further on each tick of the tree's deadline
//!   (every millisecond while it waits for FROZEN, at most 100 ms a round);
//! - v1 has no "populated" notification: the loop learns that the tree is empty
//!   from SIGCHLD (dmon is a child subreaper, so the last process of the tree
//!   always dies as dmon's child) and from the task's KILL repeat. A task
//!   leaves `cgroup.procs` a moment before it becomes a zombie, so a tree whose
//!   list is empty is empty only once what the kill cycle killed has ended:
//!   else the run would end before dmon reaped (and counted) its last process.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::files;
use super::home::Home;
use super::leaf::{self, Leaf};
use super::pidfd;

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

/// A tree in a cgroup v1 freezer leaf: the leaf, and the kill cycle while it
/// runs, with when its next step is due.
pub struct V1 {
    pub leaf: Leaf,
    kill: Option<(Kill, Instant)>,
    /// The processes the kill cycle killed (pid and start time): the tree is
    /// empty once each has ended, not only left `cgroup.procs`, so that dmon
    /// reaps them, and counts what they used, before the run's end.
    killed: Vec<(i32, u64)>,
}

impl V1 {
    pub fn new(home: Arc<Home>, name: &str) -> io::Result<V1> {
        Ok(V1 { leaf: Leaf::new(home, name, &leaf::V1)?, kill: None, killed: Vec::new() })
    }

    /// A new child is about to start: the last run's kill cycle ends.
    pub fn child_setup(&mut self, frozen: bool) -> io::Result<super::ChildSetup> {
        self.kill = None;
        self.killed.clear();
        self.leaf.child_setup(frozen)
    }

    /// Starts the kill cycle (or starts it again): freeze, KILL all, thaw,
    /// until no process is listed (or `KILL_ROUNDS`), one step per tick.
    /// While the state reads FROZEN no listed process can exit (it would have
    /// to run), so none of their pids can be reused before the thaw; when the
    /// freeze did not complete in its bound some may, so the KILL goes through
    /// pidfds checked against the list (see [`files::with_pidfds`]) either way.
    pub fn kill(&mut self) -> io::Result<()> {
        self.kill = Some((Kill::Freeze { round: 0 }, Instant::now()));
        self.step()
    }

    /// One step of the kill cycle; never waits.
    fn step(&mut self) -> io::Result<()> {
        let Some((kill, _)) = self.kill else { return Ok(()) };
        let now = Instant::now();
        let leaf = &mut self.leaf;
        let dir = leaf.dir().to_path_buf();
        let next = match kill {
            // The thaw is still being written.
            Kill::Thawed { .. } if leaf.busy() => Some((kill, now + KILL_STEP)),
            Kill::Thawed { .. } if files::pids(&dir).is_empty() => None,
            Kill::Thawed { round } if round + 1 >= KILL_ROUNDS => None,
            Kill::Thawed { round } => Some((Kill::Freeze { round: round + 1 }, now)),
            Kill::Freeze { round } => {
                leaf.freeze()?;
                Some((Kill::Frozen { round, until: now + KILL_FREEZE_WAIT }, now))
            }
            Kill::Frozen { round, until } if now < until && !leaf.is_frozen_state(&leaf.state()?) => {
                Some((Kill::Frozen { round, until }, now + KILL_STEP))
            }
            Kill::Frozen { round, .. } => {
                let refused = &mut leaf.refused;
                let killed = &mut self.killed;
                let mut left = 0;
                files::with_pidfds(&dir, &files::pids(&dir), |pid, fd| {
                    if fd.send(Some(Signal::SIGKILL)) == Err(Errno::EPERM) {
                        refused.note(pid, fd.ino());
                    } else {
                        left += 1;
                        // Frozen, it is still the process that had the pid.
                        killed.extend(pidfd::start_time(pid).map(|start| (pid, start)));
                    }
                });
                // The killed processes die as they are thawed.
                leaf.thaw()?;
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

    /// No process is listed but those dmon may not signal (not waited for),
    /// and every process the kill cycle killed has ended.
    pub fn is_empty(&mut self) -> bool {
        self.killed.retain(|&(pid, start)| !pidfd::ended(pid, start));
        if !self.killed.is_empty() {
            // One is between leaving the list and its end: the SIGCHLD of the
            // tree's last end, which dmon always gets, comes after it.
            return false;
        }
        let leaf = &self.leaf;
        let pids = files::pids(leaf.dir());
        if leaf.refused.is_empty() || pids.is_empty() {
            return pids.is_empty();
        }
        let mut others = 0;
        files::with_pidfds(leaf.dir(), &pids, |pid, fd| {
            if !leaf.refused.contains(pid, fd.ino()) {
                others += 1;
            }
        });
        others == 0
    }

    /// When the next step of the kill cycle, or the look at a freeze, is due.
    pub fn deadline(&self) -> Option<Instant> {
        [self.kill.map(|(_, at)| at), self.leaf.freeze_check()].into_iter().flatten().min()
    }

    pub fn on_tick(&mut self) -> io::Result<()> {
        self.leaf.check_freeze(|leaf| leaf.state().is_ok_and(|state| state == "FREEZING"));
        if self.kill.is_some_and(|(_, at)| at <= Instant::now()) { self.step() } else { Ok(()) }
    }
}
