//! Signals where `pidfd_open` and `pidfd_send_signal` are refused, as under the
//! seccomp profiles of older container runtimes (EPERM) or gVisor (ENOSYS): dmon
//! signals with `kill()`, the start time of each pid checked just before, and
//! timeouts, shutdown and pauses still reach a whole tree, `setsid`'d members
//! included. dmon runs under a seccomp filter that refuses both calls with EPERM
//! (tests/common/seccomp.rs); the tree is the one of tests/tree.rs.
//!
//! These tests need root (cgroups, setpriv); as another user they are skipped.

mod common;

#[path = "tree/support.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use common::seccomp::refuse_pidfds;
use support::*;

/// The filter works: a process under it cannot open a pidfd.
#[test]
fn the_filter_refuses_pidfd_open() {
    let mut command = Command::new(common::python());
    command.args(["-c", "import os\ntry:\n os.pidfd_open(os.getpid())\nexcept OSError as e:\n print(e.errno)"]);
    refuse_pidfds(&mut command);
    let out = command.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), libc::EPERM.to_string(), "{out:?}");
}

/// The `tree` record and dmon's log say that signals go by `kill()`.
fn assert_says_kill(t: &TestDir) {
    let status = t.read("status");
    let tree = status.lines().find(|l| l.starts_with("tree ")).unwrap_or_default();
    assert!(tree.ends_with(" signals=kill"), "{:?}: tree record {tree:?}", t.layout);
    let said = t.read("dmon.err");
    assert!(said.contains("pidfd_open") && said.contains("kill()"), "{:?}: dmon said:\n{said}", t.layout);
}

/// `-t`: the timed-out run's whole tree is gone (TERM, then KILL for the two
/// `setsid`'d members that ignore TERM) before the next run starts; shutdown
/// then ends the second run's tree.
fn timeout_and_shutdown(layout: Layout) {
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "nopidfd-timeout");
    let mut dmon = t.start(&["-t", "3", "--grace", "1"]);
    let run1 = dmon.wait_line("cmd start ", 1);
    let first = t.wait_members(7);
    dmon.wait_line(&format!("cmd timeout {run1}"), 1);
    let run2 = dmon.wait_line("cmd start ", 2);
    let seen = t.wait_file(&format!("survivors.{run2}"));
    assert_eq!(seen.trim(), "", "{layout:?}: processes of the timed-out run were alive when the next one started");
    t.assert_gone(&first);
    let second = t.wait_members(7);
    dmon.terminate_and_wait();
    t.assert_gone(&second);
    t.assert_no_members();
    dmon.assert_cgroups_removed();
    assert_says_kill(&t);
}

#[test]
fn timeout_and_shutdown_signals() {
    timeout_and_shutdown(Layout::NoPidfdSignals)
}

#[test]
fn timeout_and_shutdown_unprivileged() {
    timeout_and_shutdown(Layout::NoPidfdUnprivileged)
}

#[test]
fn timeout_and_shutdown_cgroup2() {
    timeout_and_shutdown(Layout::NoPidfdCgroup2)
}

/// `-L`: every process of the tree stops and gains no CPU time, and runs again
/// on resume; shutdown ends all of them.
#[test]
fn pause_and_resume_signals() {
    let layout = Layout::NoPidfdSignals;
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "nopidfd-pause");
    let mut dmon = t.start(&["-L", "5", "-l", "1"]);
    let run = dmon.wait_line("cmd start ", 1);
    let all = t.wait_members(7);
    t.wait_all_gain_cpu(&all);
    t.write("load", "9\n");
    dmon.wait_line(&format!("cmd pause {run}"), 1);
    let mut running = Vec::new();
    let stopped = wait_until(Duration::from_secs(20), || {
        running = all.iter().filter(|p| state(p.0) != Some('T')).map(|p| p.0).collect();
        running.is_empty()
    });
    assert!(stopped, "not stopped after the pause: {running:?}; dmon said:\n{}", t.read("dmon.err"));
    t.assert_no_cpu_gained(&all, Duration::from_secs(2));
    t.write("load", "0.2\n");
    dmon.wait_line(&format!("cmd resume {run}"), 1);
    t.wait_all_gain_cpu(&all);
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
( setsid sh -c 'trap "echo > $0.term; exit 0" TERM; while :; do sleep 0.05; done' "$dir/orphan-6" & )
while :; do sleep 0.05; done
"#;

/// With a cgroup, TERM on shutdown still reaches every member (cgroup.kill
/// would end them all the same, but only after `--grace`, and uncleanly).
#[test]
fn every_member_gets_term_cgroup2() {
    let layout = Layout::NoPidfdCgroup2;
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "nopidfd-term");
    t.write("tree.sh", CLEAN_ON_TERM);
    let mut dmon = t.start(&["--grace", "10"]);
    dmon.wait_line("cmd start ", 1);
    t.wait_members(7);
    dmon.terminate_and_wait();
    t.assert_no_members();
    let missing: Vec<i32> = (1..=6).filter(|i| !t.path(&format!("orphan-{i}.term")).exists()).collect();
    assert!(missing.is_empty(), "members {missing:?} never got TERM; dmon said:\n{}", t.read("dmon.err"));
}

/// A member that leaves an orphan behind every 0.1 s, which dmon (their
/// subreaper) must reap.
const ORPHANS: &str = r#"dir=${0%/tree.sh}
sh -c 'while :; do ( sleep 0.02 & ); sleep 0.1; done' "$dir/orphan-spawner" &
while :; do sleep 0.2; done
"#;

/// Orphans re-parented to dmon are reaped as they exit: no zombies pile up.
#[test]
fn orphans_are_reaped_signals() {
    let layout = Layout::NoPidfdSignals;
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "nopidfd-orphans");
    t.write("tree.sh", ORPHANS);
    let mut dmon = t.start(&[]);
    dmon.wait_line("cmd start ", 1);
    t.wait_members(2);
    let me = dmon.dmon_pid().unwrap();
    let zombies = || {
        let all = std::fs::read_dir("/proc").unwrap().flatten();
        let pids = all.filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok());
        pids.filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map(|(_, r)| r.to_string()).unwrap_or_default();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() == Some(&"Z") && fields.get(1) == Some(&me.to_string().as_str())
        })
        .count()
    };
    let most = (0..20)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            zombies()
        })
        .max()
        .unwrap();
    assert!(most <= 2, "{most} zombies under dmon; dmon said:\n{}", t.read("dmon.err"));
    dmon.terminate_and_wait();
    t.assert_no_members();
}
