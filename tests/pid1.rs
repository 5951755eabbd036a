//! dmon as a container's first process: PID 1 of a new pid namespace
//! (`unshare --pid --fork --mount-proc`), started without `-n`. It must not
//! detach: the namespace ends with its PID 1, so a daemon forked off it would
//! die at once with everything it started. It stays in the foreground, as with
//! `-n`, says so once, runs until TERM, and exits with its documented status.
//!
//! These tests need root (a pid namespace); as another user they are skipped.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The host pid of the namespace's PID 1: `unshare --fork`'s only child.
fn init_of(unshare: &Child) -> Option<i32> {
    let pid = unshare.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Starts `dmon ARGS sh -c LOOP` as PID 1 of a new pid namespace, without `-n`;
/// the loop prints a line a second.
fn start(dir: &Dir, args: &[&str]) -> Child {
    let mut command = Command::new("unshare");
    command.args(["--pid", "--fork", "--mount-proc", DMON]).args(args);
    command.args(["-I", &dir.s("status"), "sh", "-c", "while :; do echo tick; sleep 1; done"]);
    command.env_remove("DMON_OPTIONS").env_remove("DMON_LOG").env_remove("NOTIFY_SOCKET");
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.spawn().expect("unshare runs")
}

/// Runs dmon as PID 1 with `args`, checks that it stays, TERMs it from outside
/// and returns the exit status, stdout and stderr.
fn run_until_term(dir: &Dir, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = start(dir, args);
    let stopper = init_of(&child).map(Stopper::new);
    // Today's detaching dmon made unshare return within milliseconds.
    assert!(wait_until(Duration::from_secs(10), || started(&dir.path("status"), "cmd").len() == 1));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the namespace ended: dmon detached as PID 1");
    let dmon = init_of(&child).expect("PID 1 runs");
    assert_eq!(std::fs::read_to_string(format!("/proc/{dmon}/comm")).unwrap().trim(), "dmon");
    signal(dmon, libc::SIGTERM);
    let status = finish_output(&mut child, Duration::from_secs(20));
    drop(stopper);
    let out = child.wait_with_output().unwrap();
    (status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Waits for `child` with a bound, its pipes left to read after.
fn finish_output(child: &mut Child, limit: Duration) -> Option<i32> {
    let mut status = None;
    if !wait_until(limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    }) {
        let _ = child.kill();
        panic!("the namespace did not end within {limit:?} of TERM");
    }
    status.unwrap().code()
}

fn root() -> bool {
    if !is_root() {
        skip("a pid namespace needs root");
        return false;
    }
    true
}

/// The notice is one line, once.
fn assert_one_notice(stderr: &str) {
    let notices: Vec<&str> = stderr.lines().filter(|l| l.contains("PID 1")).collect();
    assert_eq!(notices.len(), 1, "{stderr}");
    assert!(notices[0].contains("not detaching"), "{stderr}");
}

#[test]
fn as_pid_1_dmon_stays_in_the_foreground() {
    if !root() {
        return;
    }
    let dir = Dir::new("pid1");
    let (status, stdout, stderr) = run_until_term(&dir, &[]);
    // Without -1 and -m: 0 after a shutdown by TERM (dmon(8), EXIT STATUS).
    assert_eq!(status, Some(0), "{stderr}");
    assert_one_notice(&stderr);
    // The command's output reaches the runtime: dmon's stdout is the container's.
    assert!(stdout.lines().filter(|l| *l == "tick").count() >= 1, "{stdout:?}");
    let status_file = read(&dir.path("status"));
    assert!(status_file.lines().any(|l| l.starts_with("cmd exit ")), "{status_file}");
}

#[test]
fn as_pid_1_with_a_pid_file_and_run_once() {
    if !root() {
        return;
    }
    let dir = Dir::new("pid1-pidfile");
    let pid_file = dir.s("dmon.pid");
    let (status, _, stderr) = run_until_term(&dir, &["-p", &pid_file, "-1"]);
    // With -1: the command's last status, 128 + 15 for the TERM.
    assert_eq!(status, Some(143), "{stderr}");
    assert_one_notice(&stderr);
    // Written as dmon sees its pid, and removed at the end.
    assert!(!dir.path("dmon.pid").exists(), "the pid file stayed");
}

/// While it runs, the pid file holds 1.
#[test]
fn as_pid_1_the_pid_file_says_1() {
    if !root() {
        return;
    }
    let dir = Dir::new("pid1-says");
    let mut child = start(&dir, &["-p", &dir.s("dmon.pid")]);
    let stopper = init_of(&child).map(Stopper::new);
    let ok = wait_until(Duration::from_secs(10), || read(&dir.path("dmon.pid")).trim() == "1");
    let exited = child.try_wait().unwrap();
    if let Some(pid) = init_of(&child) {
        signal(pid, libc::SIGTERM);
    }
    drop(stopper);
    let _ = finish_output(&mut child, Duration::from_secs(20));
    assert!(ok, "pid file {:?}, unshare exited {exited:?}", read(&dir.path("dmon.pid")));
}
