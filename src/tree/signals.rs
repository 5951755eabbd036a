//! The signal fallback: no cgroup, so the tree is found by walking the process
//! table.
//!
//! Three mechanisms together make signals as strong as they can be:
//! - the command runs in its own process group, so members that never called
//!   `setsid` are found by group even when their parent is gone;
//! - dmon is a child subreaper (PR_SET_CHILD_SUBREAPER, Linux 3.4), so a
//!   double-forked or `setsid`'d orphan is re-parented to dmon instead of init and
//!   can still be found (and reaped);
//! - a walk of `/proc` by parent pid finds every descendant of a known member.
//!
//! Signals are sent top-down (parents first, so a stopped parent cannot fork a
//! child the walk has not seen), and the walk is repeated until a round finds no
//! new process. What remains possible: a process forked and detached between two
//! walks while its parent is not yet stopped. cgroups have no such window.
//!
//! A pid read from `/proc` names a member only until the member exits: every
//! signal goes through a pidfd checked to be the process the walk saw (where
//! pidfds are refused, a `kill()` after the start time was read again), members
//! are remembered by start time and pidfd inode and forgotten once gone, and the
//! process group counts only while the group the command made exists (see
//! [`super::pidfd`]). A member dmon may not signal (EPERM) is reported once and
//! not waited for; it does not stop the others from being signalled.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::pidfd::{Pidfd, Refused};

/// One row of the process table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub zombie: bool,
    /// Start time, in clock ticks since boot.
    pub start: u64,
}

/// Reads the process table.
pub fn process_table() -> Vec<Row> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.filter_map(|p| p.ok()?.stat().ok())
        .map(|s| Row {
            pid: s.pid,
            ppid: s.ppid,
            pgrp: s.pgrp,
            zombie: s.state == 'Z' || s.state == 'X',
            start: s.starttime,
        })
        .collect()
}

/// The members of a tree in `table`: `known` pids, processes in group `pgrp`,
/// orphans re-parented to `me` (with [`Orphans::Claim`], except `foreign` ones), and
/// every descendant of those. Returned parents before children. Pure, for tests.
pub fn members(
    table: &[Row],
    known: &BTreeSet<i32>,
    pgrp: Option<i32>,
    me: i32,
    orphans: Orphans,
    foreign: &[i32],
) -> Vec<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for row in table {
        children.entry(row.ppid).or_default().push(row.pid);
    }
    let alive: BTreeMap<i32, &Row> = table.iter().filter(|r| !r.zombie).map(|r| (r.pid, r)).collect();
    let is_root = |row: &Row| {
        known.contains(&row.pid)
            || Some(row.pgrp) == pgrp
            || (orphans == Orphans::Claim
                && row.ppid == me
                && !foreign.contains(&row.pid)
                && !foreign.contains(&row.pgrp))
    };
    // Breadth-first from the roots whose parent is not itself a member, so that
    // the order is parents before children.
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    let roots: Vec<i32> = table.iter().filter(|r| r.pid != me && is_root(r)).map(|r| r.pid).collect();
    let mut queue: std::collections::VecDeque<i32> = roots.into_iter().collect();
    while let Some(pid) = queue.pop_front() {
        if !seen.insert(pid) {
            continue;
        }
        if alive.contains_key(&pid) {
            order.push(pid);
        }
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            queue.push_back(child);
        }
    }
    order
}

/// A member as dmon saw it: its start time (clock ticks since boot) and the
/// inode number of its pidfd, which together tell it from a later process that
/// got the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    start: u64,
    ino: u64,
}

/// Whether the processes re-parented to dmon (orphans of a tree, dmon being a
/// child subreaper) belong to a tree: the command's tree claims them, the log
/// command's leaves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphans {
    Claim,
    Leave,
}

pub struct SignalTree {
    me: i32,
    /// The command's process group (its leader's pid), while the group the
    /// command made exists.
    pgrp: Option<i32>,
    /// The leader's pidfd: tells whether its process group still exists.
    leader: Option<Pidfd>,
    /// Members seen alive, by pid; forgotten once gone.
    known: BTreeMap<i32, Member>,
    /// Members dmon may not signal.
    refused: Refused,
    orphans: Orphans,
    /// The other tree's leader and process group, never claimed.
    foreign: Vec<i32>,
    /// The next child must start stopped.
    start_frozen: bool,
}

/// The row of `pid` read now, None once it is gone.
fn row_now(pid: i32) -> Option<Row> {
    let s = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    Some(Row { pid, ppid: s.ppid, pgrp: s.pgrp, zombie: s.state == 'Z' || s.state == 'X', start: s.starttime })
}

impl SignalTree {
    pub fn new(orphans: Orphans) -> SignalTree {
        SignalTree {
            me: std::process::id() as i32,
            pgrp: None,
            leader: None,
            known: BTreeMap::new(),
            refused: Refused::default(),
            orphans,
            foreign: Vec::new(),
            start_frozen: false,
        }
    }

    /// A child that stopped itself before exec would block
    /// [`crate::spawn::spawn`], which waits for the exec; so a command started
    /// while paused is stopped as soon as `spawn` returns.
    pub fn child_setup(&mut self, frozen: bool) -> super::ChildSetup {
        self.start_frozen = frozen;
        super::ChildSetup::default()
    }

    /// Takes the process of `fd` as a member (a cgroup tree falling back to
    /// signals; the pidfd was checked against the cgroup's list).
    pub fn adopt(&mut self, pid: i32, fd: &Pidfd) {
        // Read after the pidfd was opened, and the process alive after that: the
        // row is that process's.
        if let Some(row) = row_now(pid).filter(|_| fd.send(None) != Err(Errno::ESRCH)) {
            self.known.insert(pid, Member { start: row.start, ino: fd.ino() });
        }
    }

    pub fn started(&mut self, pid: i32) {
        // The leader is dmon's child, not yet reaped: its pid is still its own.
        self.pgrp = Some(pid);
        self.known.clear();
        self.leader = Pidfd::open(pid).ok();
        if let (Some(fd), Some(row)) = (&self.leader, row_now(pid)) {
            self.known.insert(pid, Member { start: row.start, ino: fd.ino() });
        }
        if std::mem::take(&mut self.start_frozen) {
            if let Err(e) = self.signal(Signal::SIGSTOP) {
                tracing::warn!("cannot start the tree stopped: {}", crate::io_reason(&e));
            }
        }
    }

    /// Whether `row` is a member dmon saw, not a process that got its pid since.
    fn is_known(&self, row: &Row) -> bool {
        self.known
            .get(&row.pid)
            .is_some_and(|m| m.start == row.start && Pidfd::open(row.pid).is_ok_and(|fd| fd.ino() == m.ino))
    }

    /// Reads the process table and returns it with the members, parents first.
    /// Members that are gone are forgotten first, so that a pid the kernel gave
    /// to another process is not taken for a member.
    fn walk(&mut self) -> (BTreeMap<i32, Row>, Vec<i32>) {
        let table = process_table();
        // After the table was read: a member still alive now had its pid all along.
        let live: BTreeSet<i32> = table.iter().filter(|r| self.is_known(r)).map(|r| r.pid).collect();
        self.known.retain(|pid, _| live.contains(pid));
        self.refused.retain(|pid, _| live.contains(&pid));
        // The group counts while the group the command made has a process: a
        // group of a new process that got the same number is not the command's.
        if let (Some(group), Some(leader)) = (self.pgrp, &self.leader) {
            let gone = match leader.send_group(None) {
                Err(Errno::ESRCH) => true,
                // Before Linux 6.9: the number, while any process has it as its group.
                Err(Errno::EINVAL) => !table.iter().any(|r| r.pgrp == group),
                _ => false,
            };
            if gone {
                self.pgrp = None;
                self.leader = None;
            }
        }
        let known: BTreeSet<i32> = self.known.keys().copied().collect();
        let order = members(&table, &known, self.pgrp, self.me, self.orphans, &self.foreign);
        (table.into_iter().map(|r| (r.pid, r)).collect(), order)
    }

    /// A pidfd for member `row`, when it still is the process the walk saw: the
    /// known member by its identity, a new one by its start time read again
    /// after the pidfd was opened (a signal through the pidfd that succeeds
    /// proves the process was alive, so still had the pid, when it was read).
    /// Not by parent or group: a member whose parent died in between has been
    /// re-parented to dmon, and is still a member.
    fn open(&mut self, row: &Row) -> Option<(Pidfd, Member)> {
        let fd = Pidfd::open(row.pid).ok()?;
        let now = row_now(row.pid)?;
        let member = Member { start: now.start, ino: fd.ino() };
        let same = match self.known.get(&row.pid) {
            Some(m) => *m == member,
            None => now.start == row.start,
        };
        if !same {
            self.known.remove(&row.pid);
            return None;
        }
        self.known.insert(row.pid, member);
        Some((fd, member))
    }

    /// Signals every member, top-down, repeating the walk until a round finds no
    /// process it had not signalled yet. Every signal goes through a pidfd of the
    /// process the walk saw. A member dmon may not signal is reported once and
    /// left alone; the others are signalled all the same.
    ///
    /// STOP, CONT and KILL (signals that mean the same when they arrive twice)
    /// go to the whole process group first, in one call through the leader's
    /// pidfd: a large busy group stops at once, instead of one process after
    /// another while the rest keep both CPUs from dmon. The walk then finds the
    /// rest and signals each process again; only that shows a refusal.
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        if matches!(signal, Signal::SIGSTOP | Signal::SIGCONT | Signal::SIGKILL) && self.pgrp.is_some() {
            if let Some(leader) = &self.leader {
                let _ = leader.send_group(Some(signal));
            }
        }
        super::until_no_new(|signalled| {
            let (table, order) = self.walk();
            let fresh: Vec<i32> = order.into_iter().filter(|pid| !signalled.contains(pid)).collect();
            for &pid in &fresh {
                let Some((fd, member)) = table.get(&pid).and_then(|row| self.open(row)) else { continue };
                match fd.send(Some(signal)) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(Errno::EPERM) => self.refused.note(pid, member.ino),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(fresh)
        })
    }

    /// TERM and CONT to every member, once all are stopped: a stopped tree cannot
    /// fork while it is terminated, and every process has its TERM before any
    /// runs again.
    pub fn terminate(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.signal(Signal::SIGTERM)?;
        self.signal(Signal::SIGCONT)
    }

    /// Whether no member is left but those dmon may not signal: nothing dmon
    /// does would end those, so they are not waited for.
    pub fn is_empty(&mut self) -> bool {
        let (_, order) = self.walk();
        order.iter().all(|pid| self.known.get(pid).is_some_and(|m| self.refused.contains(*pid, m.ino)))
    }

    /// Pids the tree must never claim as its own (the other tree's leader and group).
    pub fn set_foreign(&mut self, pids: &[i32]) {
        self.foreign = pids.to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: i32, ppid: i32, pgrp: i32) -> Row {
        Row { pid, ppid, pgrp, zombie: false, start: 0 }
    }

    #[test]
    fn finds_descendants_groups_and_orphans_top_down() {
        let me = 1;
        let table = [
            row(1, 0, 1),    // dmon
            row(10, 1, 10),  // the command, leader of group 10
            row(11, 10, 10), // its child
            row(12, 11, 12), // a grandchild that called setsid
            row(20, 1, 20),  // the log command
            row(30, 1, 30),  // a setsid'd orphan re-parented to dmon
            row(31, 30, 30), // its child
            row(40, 99, 10), // an unrelated parent, but in the command's group
            row(50, 77, 50), // unrelated
        ];
        let known = BTreeSet::from([10]);
        let got = members(&table, &known, Some(10), me, Orphans::Claim, &[20]);
        // 11 is a root too (group 10); every parent comes before its children.
        assert_eq!(got, [10, 11, 30, 40, 12, 31]);
        // The log tree does not claim orphans.
        let log = members(&table, &BTreeSet::from([20]), Some(20), me, Orphans::Leave, &[]);
        assert_eq!(log, [20]);
    }

    #[test]
    fn zombies_are_not_members_but_their_children_are() {
        let mut table = vec![row(1, 0, 1), row(10, 1, 10), row(11, 10, 11)];
        table[1].zombie = true;
        assert_eq!(members(&table, &BTreeSet::from([10]), Some(10), 1, Orphans::Claim, &[]), [11]);
    }
}
