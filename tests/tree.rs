//! Whole-tree control, run as the built binary on real process trees, in every
//! cgroup layout this machine can show (see docs/tree.md):
//! hybrid (as the machine is), pure v2 and v1 freezer only and no cgroups (each in
//! a private mount namespace), an unprivileged user, a delegated subtree, and dmon
//! as PID 1 of a new pid namespace. Plus `-n` with a terminal (tmux) in each backend.
//!
//! The tree: 7 busy processes, two of them double-forked and `setsid`'d, all
//! recognisable by the test directory in their command line. CPU time is read
//! from `/proc/PID/stat`. Conditions are polled with generous bounds; the only
//! fixed waits are the measurement windows ("gains no CPU time for 2 s").
//!
//! These tests need root (cgroups, namespaces, setpriv); as another user they are
//! skipped with a message. They run one at a time: each keeps both cores busy.

mod common;

#[path = "tree/support.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

const PAUSED_WINDOW: Duration = Duration::from_secs(2);

/// Pause, resume, a respawn while paused, and shutdown, in one layout.
fn pause_resume_respawn_shutdown(layout: Layout) {
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "pause");
    t.write("load", "0.1\n");
    let mut dmon = t.start(&["-i", "3", "-L", "5", "-l", "1"]);
    let run1 = dmon.wait_line("cmd start ", 1);
    let first = t.wait_members(7);
    t.wait_all_gain_cpu(&first);

    // Above the high mark: the whole tree stops.
    t.write("load", "9\n");
    dmon.wait_line(&format!("cmd pause {run1}"), 1);
    dmon.wait_frozen();
    t.assert_no_cpu_gained(&first, PAUSED_WINDOW);

    // Below the low mark: every process runs again.
    t.write("load", "0.2\n");
    dmon.wait_line(&format!("cmd resume {run1}"), 1);
    t.wait_all_gain_cpu(&first);

    // The leader exits (with -i 3, a zero exit waits 3 s); paused meanwhile, the
    // next run starts frozen.
    t.write("exit-now", "");
    dmon.wait_line(&format!("cmd exit {run1}"), 1);
    t.write("load", "9\n");
    let run2 = dmon.wait_line("cmd start ", 2);
    dmon.wait_line(&format!("cmd pause {run2}"), 1);
    dmon.wait_frozen();
    t.assert_gone(&first);
    let frozen = t.members();
    assert!(!frozen.is_empty(), "{layout:?}: the second run has no process");
    t.assert_no_cpu_gained(&frozen, PAUSED_WINDOW);
    assert!(t.members().len() <= frozen.len(), "{layout:?}: the frozen run forked");

    t.write("load", "0.2\n");
    dmon.wait_line(&format!("cmd resume {run2}"), 1);
    let second = t.wait_members(7);
    t.wait_all_gain_cpu(&second);

    // Shutdown: nothing of the tree outlives dmon, no cgroup is left.
    dmon.terminate_and_wait();
    t.assert_gone(&second);
    t.assert_no_members();
    dmon.assert_cgroups_removed();
}

/// `-t`: the whole tree is stopped (TERM, then KILL for the two that ignore it),
/// and the next run starts only once nothing of the old one is left.
fn timeout(layout: Layout) {
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "timeout");
    let mut dmon = t.start(&["-t", "3", "--grace", "1"]);
    let run1 = dmon.wait_line("cmd start ", 1);
    let first = t.wait_members(7);
    dmon.wait_line(&format!("cmd timeout {run1}"), 1);
    let run2 = dmon.wait_line("cmd start ", 2);
    // The new run looked for survivors before it started anything.
    let seen = t.wait_file(&format!("survivors.{run2}"));
    assert_eq!(seen.trim(), "", "{layout:?}: processes of the timed-out run were alive when the next one started");
    t.assert_gone(&first);
    t.wait_members(7);
    dmon.terminate_and_wait();
    t.assert_no_members();
    dmon.assert_cgroups_removed();
}

/// 200 busy processes (two of them setsid'd) that end on TERM, writing a file
/// first; they start spinning once `go` exists (looking every second: 200
/// processes forking `sleep` more often slow everything down), after the leader
/// wrote `ready`.
const BUSY_TRAPPING_200: &str = r#"dir=${0%/tree.sh}
member='trap "echo > $0.term; exit 0" TERM; while [ ! -e "$1/go" ]; do sleep 1; done; while :; do :; done'
i=0
while [ $i -lt 198 ]; do sh -c "$member" "$dir/orphan-$i" "$dir" & i=$((i+1)); done
( setsid sh -c "$member" "$dir/orphan-198" "$dir" & )
( setsid sh -c "$member" "$dir/orphan-199" "$dir" & )
echo > "$dir/ready"
while :; do :; done
"#;

/// A timeout of 200 busy processes: the tree is frozen, TERM sent, thawed; every
/// member acts on its TERM (none needs the KILL after the grace), and nothing of
/// the tree is left. With `-m 0` dmon then exits.
fn timeout_of_a_large_busy_tree(layout: Layout) {
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "busy-term");
    t.write("tree.sh", BUSY_TRAPPING_200);
    // The timeout leaves time to fork 200 processes and see them all on a busy machine.
    let mut dmon = t.start(&["-t", "20", "--grace", "60", "-m", "0"]);
    let run = dmon.wait_line("cmd start ", 1);
    t.wait_file("ready");
    t.write("go", "");
    let all = t.wait_members(201);
    // dmon runs 5 nice levels above the test (it is root); the command does not.
    let ours = nice(std::process::id() as i32).unwrap();
    assert_eq!(nice(Dmon::pid(&run)), Some(ours), "{layout:?}: the command's nice value");
    if layout == Layout::Hybrid {
        let raised = (ours - 5).max(-20);
        assert_eq!(nice(dmon.dmon_pid().unwrap()), Some(raised), "dmon's nice value");
    }
    dmon.wait_line(&format!("cmd timeout {run}"), 1);
    assert!(dmon.wait_exit(Duration::from_secs(90)), "{layout:?}: dmon did not exit; it said:\n{}", t.read("dmon.err"));
    t.assert_gone(&all);
    t.assert_no_members();
    let missing: Vec<i32> = (0..200).filter(|i| !t.path(&format!("orphan-{i}.term")).exists()).collect();
    assert!(
        missing.is_empty(),
        "{layout:?}: members {missing:?} never acted on TERM; dmon said:\n{}",
        t.read("dmon.err")
    );
    let said = t.read("dmon.err");
    assert!(!said.contains("kill the tree"), "{layout:?}: the tree needed KILL; dmon said:\n{said}");
    dmon.assert_cgroups_removed();
}

#[test]
fn timeout_of_a_large_busy_tree_cgroup2() {
    timeout_of_a_large_busy_tree(Layout::Hybrid)
}

#[test]
fn timeout_of_a_large_busy_tree_pure_v2() {
    timeout_of_a_large_busy_tree(Layout::PureV2)
}

#[test]
fn timeout_of_a_large_busy_tree_freezer() {
    timeout_of_a_large_busy_tree(Layout::FreezerOnly)
}

/// 200 busy processes that TERM ends, under a leader that ignores TERM and
/// writes a numbered line every 50 ms. The busy loops wait before they spin,
/// so that the leader forks them all within the run's `-t` under load, and
/// they wait without polling (200 pollers fork as fast as the leader does):
/// each one reads an inherited FIFO, and the leader closes the only writer
/// once all are forked.
const BUSY_200_AND_A_WRITER: &str = r#"dir=${0%/tree.sh}
mkfifo "$dir/go"
exec 4<>"$dir/go" 3<"$dir/go"
i=0
while [ $i -lt 200 ]; do
    sh -c 'read _ <&3; exec 3<&-; while :; do :; done' "$dir/orphan-$i" 4>&- &
    i=$((i+1))
done
exec 3<&- 4>&-
trap '' TERM
n=0
while :; do n=$((n+1)); echo "line $n"; sleep 0.05; done
"#;

/// While the command's tree is stopped (frozen, TERM, thawed, and KILL after
/// the grace), the log command is not: it goes on logging the lines the leader
/// still writes, and at the end it has every line up to the last. The stop is
/// asked for through `--control` (`d`, a stop as a timeout makes) once all 201
/// processes are seen, so that no deadline runs while a loaded machine forks them.
fn the_log_is_drained_while_the_tree_is_stopped(layout: Layout) {
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "log-drain");
    t.write("tree.sh", BUSY_200_AND_A_WRITER);
    let svc = t.path("svc");
    std::fs::create_dir(&svc).unwrap();
    let out = t.path("log.out").display().to_string();
    let logger = ["sh", "-c", r#"while IFS= read -r l; do echo "$l" >> "$0"; done"#, out.as_str()];
    let control = svc.display().to_string();
    let mut dmon = t.start_with_log(&["--control", &control, "--grace", "6"], &logger);
    dmon.wait_line("cmd start ", 1);
    t.wait_members(201);
    std::fs::write(svc.join("supervise/control"), "d").unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || t.read("dmon.err").contains("stop the tree (TERM)")),
        "{layout:?}: dmon did not stop the tree; it said:\n{}",
        t.read("dmon.err")
    );
    let lines = || t.read("log.out").lines().count();
    let at_stop = lines();
    assert!(
        wait_until(Duration::from_secs(4), || lines() > at_stop + 5),
        "{layout:?}: the log did not grow while the tree was stopped ({at_stop} lines); dmon said:\n{}",
        t.read("dmon.err")
    );
    std::fs::write(svc.join("supervise/control"), "x").unwrap();
    assert!(dmon.wait_exit(Duration::from_secs(60)), "{layout:?}: dmon did not exit; it said:\n{}", t.read("dmon.err"));
    assert!(t.read("dmon.err").contains("kill the tree"), "{layout:?}: the leader ignores TERM, yet no KILL came");
    t.assert_no_members();
    let logged = t.read("log.out");
    let numbers: Vec<u64> = logged.lines().filter_map(|l| l.strip_prefix("line ")?.parse().ok()).collect();
    let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "{layout:?}: lines lost or out of order");
    dmon.assert_cgroups_removed();
}

#[test]
fn the_log_is_drained_while_the_tree_is_stopped_cgroup2() {
    the_log_is_drained_while_the_tree_is_stopped(Layout::Hybrid)
}

#[test]
fn the_log_is_drained_while_the_tree_is_stopped_freezer() {
    the_log_is_drained_while_the_tree_is_stopped(Layout::FreezerOnly)
}

/// A member in uninterruptible sleep that a freezer cannot freeze: `stat` on
/// a FUSE mount whose server never answers (it waits, killable, for the
/// connection's start). The mount is in a mount namespace of the tree's own.
const STALLED_MEMBER: &str = r#"dir=${0%/tree.sh}
mkdir -p "$dir/mnt"
unshare --mount --propagation private sh -c '
    sh -c "mount -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 dmonstall $0/mnt && exec sleep 1000" 3<>/dev/fuse &
    while ! grep -q " $0/mnt " /proc/self/mountinfo; do sleep 0.05; done
    exec stat "$0/mnt/x"' "$dir" &
while :; do sleep 0.1; done
"#;

/// A freeze that cannot complete (a member in uninterruptible sleep) keeps
/// nothing waiting: dmon says so, and a TERM to dmon is acted on at once: its
/// `cmd stop` appears, the tree ends, dmon exits. cgroup2 only: the v1 freezer
/// freezes this wait.
fn term_during_a_freeze_that_does_not_complete(layout: Layout) {
    let Some(_serial) = serial(layout) else { return };
    if !Path::new("/dev/fuse").exists() {
        return common::skip("no /dev/fuse");
    }
    let t = TestDir::new(layout, "stalled");
    t.write("tree.sh", STALLED_MEMBER);
    let mut dmon = t.start(&["-L", "5", "-l", "1"]);
    let run = dmon.wait_line("cmd start ", 1);
    let stalled = t.path("mnt/x").display().to_string();
    let in_d = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let pid = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
            String::from_utf8_lossy(&cmdline).contains(&stalled) && pid.and_then(state) == Some('D')
        })
    };
    assert!(wait_until(Duration::from_secs(30), in_d), "{layout:?}: no member in uninterruptible sleep");
    t.write("load", "9\n");
    dmon.wait_line(&format!("cmd pause {run}"), 1);
    std::thread::sleep(Duration::from_secs(1));
    assert!(!dmon.is_frozen(), "{layout:?}: the freeze completed; the test needs one that does not");
    let started = std::time::Instant::now();
    dmon.terminate_and_wait();
    let took = started.elapsed();
    assert!(t.read("status").contains(&format!("cmd stop {run}")), "{layout:?}: no stop line:\n{}", t.read("status"));
    assert!(!in_d(), "{layout:?}: the stalled member survived");
    t.assert_no_members();
    dmon.assert_cgroups_removed();
    let said = t.read("dmon.err");
    assert!(said.contains("not frozen after"), "{layout:?}: dmon did not say the freeze was incomplete:\n{said}");
    eprintln!("{layout:?}: dmon exited {took:?} after TERM");
}

#[test]
fn term_during_a_freeze_that_does_not_complete_cgroup2() {
    term_during_a_freeze_that_does_not_complete(Layout::Hybrid)
}

macro_rules! layouts {
    ($($name:ident: $layout:expr,)*) => {
        mod pause {
            use super::*;
            $(#[test] fn $name() { pause_resume_respawn_shutdown($layout) })*
        }
        mod timeout {
            use super::*;
            $(#[test] fn $name() { timeout($layout) })*
        }
    };
}

layouts! {
    hybrid: Layout::Hybrid,
    pure_v2: Layout::PureV2,
    freezer_only: Layout::FreezerOnly,
    no_cgroups: Layout::NoCgroups,
    unprivileged: Layout::Unprivileged,
    delegated: Layout::Delegated,
    pid1: Layout::Pid1,
    forced_signals: Layout::ForcedSignals,
}

/// `-n` on a terminal: the command reads a typed line, and Ctrl-C ends dmon and
/// the whole tree, setsid'd processes included.
fn interactive(layout: Layout) {
    let Some(_serial) = serial(layout) else { return };
    if !have("tmux") {
        return common::skip("tmux is not installed");
    }
    let t = TestDir::new(layout, "tty");
    let session = t.tmux_start();
    session.type_line("hello there");
    assert_eq!(t.wait_file("typed").trim(), "hello there");
    let members = t.wait_members(7);
    t.wait_all_gain_cpu(&members);
    session.ctrl_c();
    assert!(session.wait_dmon_exit(), "{layout:?}: dmon did not end on Ctrl-C");
    t.assert_gone(&members);
    t.assert_no_members();
    let status = t.read("status");
    let backend = status.lines().find_map(|l| l.strip_prefix("tree ")).unwrap_or("").to_string();
    assert!(backend.starts_with(layout.expected_backend()), "{layout:?}: {backend}");
    assert_cgroups_removed_for(&status, layout);
}

#[test]
fn interactive_cgroup2() {
    interactive(Layout::Hybrid)
}

#[test]
fn interactive_freezer() {
    interactive(Layout::ForcedFreezer)
}

#[test]
fn interactive_signals() {
    interactive(Layout::ForcedSignals)
}

/// A dmon killed with SIGKILL leaves its cgroups; once its tree is gone, the next
/// dmon under the same parent removes them.
#[test]
fn leftovers_of_a_killed_dmon_are_removed_by_the_next() {
    let layout = Layout::Hybrid;
    let Some(_serial) = serial(layout) else { return };
    let t = TestDir::new(layout, "leftover");
    let mut first = t.start(&[]);
    first.wait_line("cmd start ", 1);
    t.wait_members(7);
    let home = first.home().expect("a cgroup backend");
    first.kill_hard();
    assert!(home.is_dir());
    // What a person would do: kill the orphaned tree.
    std::fs::write(home.join("cmd/cgroup.kill"), "1").unwrap();
    t.wait_no_members();
    let mut second = t.start(&[]);
    second.wait_line("cmd start ", 1);
    assert!(wait_until(Duration::from_secs(10), || !home.exists()), "{} was not removed", home.display());
    second.terminate_and_wait();
    second.assert_cgroups_removed();
}

#[path = "tree/bench.rs"]
mod bench;

#[path = "tree/signals.rs"]
mod signals;

/// The benchmark's measurements (integration/bench-tree.sh runs it in release).
#[test]
#[ignore]
fn bench_backends() {
    if !common::is_root() {
        return common::skip("the benchmark needs root");
    }
    let _serial = serial(Layout::Hybrid);
    bench::run();
}
