//! The signal backend and what falls back to it: a cgroup revoked while dmon
//! runs, recycled pids, members dmon may not signal, and a large busy tree
//! paused and ended with signals alone, and every member of a tree that acts
//! on TERM getting it, with signals and with cgroup2.

use std::time::Duration;

use crate::common;
use crate::support::*;

/// The delegation of dmon's cgroup is taken back while dmon runs (its files are
/// given back to root): dmon's next write fails, it says so, controls the tree
/// with signals from then on, and still leaves no process of the tree behind.
#[test]
fn a_revoked_cgroup_falls_back_to_signals() {
    let layout = Layout::Delegated;
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "revoked");
    let mut dmon = t.start(&["-t", "4"]);
    let run1 = dmon.wait_line("cmd start ", 1);
    let first = t.wait_members(7);
    let home = dmon.home().expect("a cgroup");
    let status = std::process::Command::new("chown").args(["-R", "root:root"]).arg(&home).status().unwrap();
    assert!(status.success());
    // The timeout's KILL cannot be written to cgroup.kill any more.
    dmon.wait_line(&format!("cmd timeout {run1}"), 1);
    dmon.wait_line("cmd start ", 2);
    t.assert_gone(&first);
    let said = t.read("dmon.err");
    assert!(said.contains("controlling this tree with signals from now on"), "dmon said:\n{said}");
    t.wait_members(7);
    dmon.terminate_and_wait();
    t.assert_no_members();
}

/// Sets `/proc/sys/kernel/ns_last_pid` so that the next process forked gets a
/// chosen pid, and puts the old value back when dropped.
struct LastPid(String);

impl LastPid {
    const PATH: &str = "/proc/sys/kernel/ns_last_pid";

    fn new() -> LastPid {
        LastPid(std::fs::read_to_string(Self::PATH).unwrap())
    }

    /// Starts `sleep 1000` with pid `pid` (other processes of the machine may
    /// take it first: a few tries).
    fn spawn_as(&self, pid: i32) -> Option<std::process::Child> {
        for _ in 0..50 {
            std::fs::write(Self::PATH, (pid - 1).to_string()).unwrap();
            let mut child = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
            if child.id() as i32 == pid {
                return Some(child);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        None
    }
}

impl Drop for LastPid {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, self.0.trim());
    }
}

/// A process that ends a child the test started, whatever happens.
struct Owned(std::process::Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A leader and one setsid'd orphan that exits when told to and writes its pid.
const SHORT_LIVED: &str = r#"dir=${0%/tree.sh}
( setsid sh -c 'echo $$ > "$0.tmp"; mv "$0.tmp" "$0.pid"; while [ ! -e "$0.exit" ]; do sleep 0.05; done' "$dir/orphan-short" & )
while :; do sleep 0.1; done
"#;

/// The signal backend saw a member, the member exited, and its pid went to an
/// unrelated process: the next pause and the shutdown must not touch that one.
#[test]
fn signals_never_reach_a_recycled_pid() {
    let layout = Layout::ForcedSignals;
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "recycled");
    t.write("tree.sh", SHORT_LIVED);
    let mut dmon = t.start(&["-L", "5", "-l", "1"]);
    let run = dmon.wait_line("cmd start ", 1);
    let short: i32 = t.wait_file("orphan-short.pid").trim().parse().unwrap();

    // A pause and a resume: dmon's walk sees the orphan.
    t.write("load", "9\n");
    dmon.wait_line(&format!("cmd pause {run}"), 1);
    assert!(wait_until(Duration::from_secs(10), || state(short) == Some('T')), "the orphan was not stopped");
    t.write("load", "0.2\n");
    dmon.wait_line(&format!("cmd resume {run}"), 1);
    assert!(wait_until(Duration::from_secs(10), || state(short) != Some('T')), "the orphan was not resumed");

    // The orphan exits (dmon, its subreaper, reaps it) and its pid is reused.
    t.write("orphan-short.exit", "");
    assert!(wait_until(Duration::from_secs(10), || state(short).is_none()), "the orphan did not end");
    let last_pid = LastPid::new();
    let Some(victim) = last_pid.spawn_as(short) else {
        return common::skip(&format!("pid {short} was always taken by another process first"));
    };
    drop(last_pid);
    let victim = Owned(victim);

    // Pause again: the leader stops, the unrelated process does not.
    t.write("load", "9\n");
    dmon.wait_line(&format!("cmd pause {run}"), 2);
    let leader = Dmon::pid(&run);
    assert!(wait_until(Duration::from_secs(10), || state(leader) == Some('T')), "the leader was not stopped");
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(state(short), Some('T'), "dmon stopped pid {short}, which is no longer its orphan's");
    t.write("load", "0.2\n");
    dmon.wait_line(&format!("cmd resume {run}"), 1);

    dmon.terminate_and_wait();
    t.assert_no_members();
    let mut victim = victim;
    assert!(victim.0.try_wait().unwrap().is_none(), "dmon's shutdown ended pid {short}, not its own");
    assert_ne!(state(short), Some('T'));
}

/// A tree with one member that starts late, after an intruder joined.
const WITH_LATE_MEMBER: &str = r#"dir=${0%/tree.sh}
sh -c 'trap "" TERM; while :; do sleep 0.1; done' "$dir/orphan-early" &
while [ ! -e "$dir/late" ]; do sleep 0.05; done
( setsid sh -c 'trap "" TERM; echo $$ > "$0.tmp"; mv "$0.tmp" "$0.pid"; while :; do sleep 0.1; done' "$dir/orphan-late" & )
while :; do sleep 0.1; done
"#;

/// dmon runs as nobody; a root process joins its command's process group. dmon
/// may not signal that one: it stops everything else, says so once, and exits.
#[test]
fn a_process_dmon_may_not_signal_does_not_stop_the_shutdown() {
    use std::os::unix::process::CommandExt;
    let layout = Layout::Unprivileged;
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "intruder");
    t.write("tree.sh", WITH_LATE_MEMBER);
    let mut dmon = t.start(&[]);
    let leader = Dmon::pid(&dmon.wait_line("cmd start ", 1));
    t.wait_members(2);
    let intruder =
        Owned(std::process::Command::new("sleep").arg("1000").process_group(leader).spawn().expect("join the group"));
    let intruder_pid = intruder.0.id() as i32;
    t.write("late", "");
    let late: i32 = t.wait_file("orphan-late.pid").trim().parse().unwrap();
    assert!(late > intruder_pid, "the late member should come after the intruder");

    dmon.terminate_and_wait();
    t.assert_no_members();
    let mut intruder = intruder;
    assert!(intruder.0.try_wait().unwrap().is_none(), "the intruder was ended");
    assert_ne!(state(intruder_pid), Some('T'), "the intruder was stopped");
    let said = t.read("dmon.err");
    let reports = said.lines().filter(|l| l.contains("warning") && l.contains(&format!(" {intruder_pid} "))).count();
    assert_eq!(reports, 1, "the intruder {intruder_pid} should be reported once; dmon said:\n{said}");
}

/// dmon runs as nobody in a delegated cgroup; a root process is moved into the
/// command's leaf. dmon's TERM to it is refused: that is no failure of the
/// cgroup (no fallback to signals), it is reported once, and `cgroup.kill`,
/// which the kernel carries out without a permission check, ends the whole leaf.
#[test]
fn a_refused_signal_is_no_cgroup_failure() {
    let layout = Layout::Delegated;
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "intruder-cgroup");
    t.write("tree.sh", WITH_LATE_MEMBER);
    let mut dmon = t.start(&[]);
    dmon.wait_line("cmd start ", 1);
    t.wait_members(2);
    let home = dmon.home().expect("a cgroup");
    let intruder = Owned(std::process::Command::new("sleep").arg("1000").spawn().unwrap());
    let intruder_pid = intruder.0.id() as i32;
    std::fs::write(home.join("cmd/cgroup.procs"), intruder_pid.to_string()).unwrap();

    dmon.terminate_and_wait();
    t.assert_no_members();
    let said = t.read("dmon.err");
    assert!(!said.contains("controlling this tree with signals"), "a refused TERM made dmon fall back:\n{said}");
    let reports = said.lines().filter(|l| l.contains("warning") && l.contains(&format!(" {intruder_pid} "))).count();
    assert_eq!(reports, 1, "the intruder {intruder_pid} should be reported once; dmon said:\n{said}");
    dmon.assert_cgroups_removed();
}

/// 200 busy processes: 197 in the command's process group, two setsid'd.
const BUSY_200: &str = r#"dir=${0%/tree.sh}
i=0
while [ $i -lt 197 ]; do sh -c 'while :; do :; done' "$dir/orphan-$i" & i=$((i+1)); done
( setsid sh -c 'while :; do :; done' "$dir/orphan-s1" & )
( setsid sh -c 'while :; do :; done' "$dir/orphan-s2" & )
while :; do :; done
"#;

/// With signals, a pause of a large busy tree stops every process of it, and
/// the shutdown ends every one.
#[test]
fn signals_pause_a_large_busy_tree_completely() {
    let layout = Layout::ForcedSignals;
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "busy200");
    t.write("tree.sh", BUSY_200);
    let mut dmon = t.start(&["-L", "5", "-l", "1"]);
    let run = dmon.wait_line("cmd start ", 1);
    let all = t.wait_members(200);
    t.write("load", "9\n");
    dmon.wait_line(&format!("cmd pause {run}"), 1);
    let mut running = Vec::new();
    let stopped = wait_until(Duration::from_secs(20), || {
        running = all.iter().filter(|p| state(p.0) != Some('T')).map(|p| p.0).collect();
        running.is_empty()
    });
    assert!(stopped, "not stopped after the pause: {running:?}");
    t.assert_no_cpu_gained(&all, Duration::from_secs(1));
    t.write("load", "0.2\n");
    dmon.wait_line(&format!("cmd resume {run}"), 1);
    dmon.terminate_and_wait();
    t.assert_gone(&all);
    t.assert_no_members();
}

/// Five members that end cleanly on TERM, writing a file, under a leader that
/// TERM ends at once.
const CLEAN_ON_TERM: &str = r#"dir=${0%/tree.sh}
for i in 1 2 3 4 5; do
    sh -c 'trap "echo > $0.term; exit 0" TERM; while :; do sleep 0.05; done' "$dir/orphan-$i" &
done
while :; do sleep 0.05; done
"#;

/// Every member gets its TERM on shutdown, also those whose parent the same
/// TERM ended first (they are re-parented to dmon in between), so none has to
/// be killed.
fn every_member_gets_term(layout: Layout) {
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "term");
    t.write("tree.sh", CLEAN_ON_TERM);
    let mut dmon = t.start(&["--grace", "10"]);
    dmon.wait_line("cmd start ", 1);
    t.wait_members(6);
    dmon.terminate_and_wait();
    t.assert_no_members();
    let missing: Vec<i32> = (1..=5).filter(|i| !t.path(&format!("orphan-{i}.term")).exists()).collect();
    assert!(missing.is_empty(), "{layout:?}: members {missing:?} never got TERM; dmon said:\n{}", t.read("dmon.err"));
}

#[test]
fn every_member_gets_term_signals() {
    every_member_gets_term(Layout::ForcedSignals)
}

#[test]
fn every_member_gets_term_cgroup2() {
    every_member_gets_term(Layout::Hybrid)
}
