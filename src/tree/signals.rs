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

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One row of the process table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub zombie: bool,
}

/// Reads the process table.
pub fn process_table() -> Vec<Row> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.filter_map(|p| p.ok()?.stat().ok())
        .map(|s| Row { pid: s.pid, ppid: s.ppid, pgrp: s.pgrp, zombie: s.state == 'Z' || s.state == 'X' })
        .collect()
}

/// The members of a tree in `table`: `known` pids, processes in group `pgrp`,
/// orphans re-parented to `me` (when `claim_orphans`, except `foreign` ones), and
/// every descendant of those. Returned parents before children. Pure, for tests.
pub fn members(
    table: &[Row],
    known: &BTreeSet<i32>,
    pgrp: Option<i32>,
    me: i32,
    claim_orphans: bool,
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
            || (claim_orphans && row.ppid == me && !foreign.contains(&row.pid) && !foreign.contains(&row.pgrp))
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

pub struct SignalTree {
    me: i32,
    /// The command's process group (its leader's pid).
    pgrp: Option<i32>,
    known: BTreeSet<i32>,
    /// Whether orphans re-parented to dmon belong to this tree (the command's);
    /// the log command's tree does not claim them.
    claim_orphans: bool,
    /// The other tree's leader and process group, never claimed.
    pub foreign: Vec<i32>,
    /// The next child must start stopped.
    start_frozen: bool,
}

impl SignalTree {
    pub fn new(claim_orphans: bool) -> SignalTree {
        SignalTree {
            me: std::process::id() as i32,
            pgrp: None,
            known: BTreeSet::new(),
            claim_orphans,
            foreign: Vec::new(),
            start_frozen: false,
        }
    }

    /// A child that stopped itself before exec would block std's `spawn`, which
    /// waits for the exec; so a command started while paused is stopped as soon
    /// as `spawn` returns.
    pub fn child_setup(&mut self, frozen: bool) -> super::ChildSetup {
        self.start_frozen = frozen;
        super::ChildSetup { procs_fd: None, stop_self: false }
    }

    /// Takes `pids` as members (a cgroup tree falling back to signals).
    pub fn adopt(&mut self, pids: &[i32]) {
        self.known.extend(pids);
    }

    pub fn started(&mut self, pid: i32) {
        self.pgrp = Some(pid);
        self.known.clear();
        self.known.insert(pid);
        if std::mem::take(&mut self.start_frozen) {
            if let Err(e) = self.signal(Signal::SIGSTOP) {
                tracing::warn!("cannot start the tree stopped: {}", crate::io_reason(&e));
            }
        }
    }

    fn walk(&mut self) -> Vec<i32> {
        let order = members(&process_table(), &self.known, self.pgrp, self.me, self.claim_orphans, &self.foreign);
        self.known = order.iter().copied().collect();
        order
    }

    /// Signals every member, top-down, repeating the walk until a round finds no
    /// process it had not signalled yet.
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        let mut signalled = BTreeSet::new();
        for _round in 0..64 {
            let order = self.walk();
            let fresh: Vec<i32> = order.into_iter().filter(|pid| !signalled.contains(pid)).collect();
            if fresh.is_empty() {
                return Ok(());
            }
            for pid in fresh {
                match kill(Pid::from_raw(pid), signal) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(e.into()),
                }
                signalled.insert(pid);
            }
        }
        Ok(())
    }

    pub fn is_empty(&mut self) -> bool {
        self.walk().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: i32, ppid: i32, pgrp: i32) -> Row {
        Row { pid, ppid, pgrp, zombie: false }
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
        let got = members(&table, &known, Some(10), me, true, &[20]);
        // 11 is a root too (group 10); every parent comes before its children.
        assert_eq!(got, [10, 11, 30, 40, 12, 31]);
        // The log tree does not claim orphans.
        let log = members(&table, &BTreeSet::from([20]), Some(20), me, false, &[]);
        assert_eq!(log, [20]);
    }

    #[test]
    fn zombies_are_not_members_but_their_children_are() {
        let mut table = vec![row(1, 0, 1), row(10, 1, 10), row(11, 10, 11)];
        table[1].zombie = true;
        assert_eq!(members(&table, &BTreeSet::from([10]), Some(10), 1, true, &[]), [11]);
    }
}
