//! Case 1: a crash loop of thousands of starts leaks nothing.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::*;

/// What a crash-loop sample saw: dmon's descriptors and resident memory while the
/// command is held in a long run, with nothing else going on.
struct Sample {
    starts: usize,
    fds: std::collections::BTreeMap<i32, String>,
    rss_kib: u64,
}

/// Lets the crash loop run to `starts` starts, then holds the next run (the
/// command sleeps while HOLD exists) and samples dmon once only that run is left:
/// one child, no zombie. Releases the run again before returning.
fn hold_and_sample(dmon: i32, status: &Path, hold: &Path, starts: usize) -> Sample {
    assert!(
        wait_until(Duration::from_secs(300), || started(status, "cmd").len() >= starts),
        "the crash loop stalled at {} starts",
        started(status, "cmd").len()
    );
    fs::write(hold, "").unwrap();
    let mut held = 0;
    let settled = wait_until(Duration::from_secs(30), || {
        let Some(&last) = started(status, "cmd").last() else { return false };
        let is_sleep = fs::read_to_string(format!("/proc/{last}/comm")).is_ok_and(|c| c.trim() == "sleep");
        held = last;
        is_sleep && children(dmon) == [(last, 'S')]
    });
    assert!(settled, "dmon's children never settled to the held run: {:?}", children(dmon));
    let sample = Sample { starts: started(status, "cmd").len(), fds: fds(dmon), rss_kib: rss_kib(dmon) };
    fs::remove_file(hold).unwrap();
    signal(held, libc::SIGKILL);
    sample
}

/// Every status line is whole and in order: the tree line, then for each run
/// `cmd start PID` followed by `cmd exit PID STATUS` with the same pid.
fn check_status_lines(status: &Path) -> usize {
    let text = read(status);
    assert!(text.ends_with('\n'), "the last status line is cut short");
    let mut lines = text.lines();
    assert!(lines.next().is_some_and(|l| l.starts_with("tree ")), "no tree line first");
    let mut runs = 0;
    let mut open: Option<String> = None;
    // The run whose exit line came last: its usage line follows it.
    let mut ended: Option<String> = None;
    for line in lines {
        let words: Vec<&str> = line.split(' ').collect();
        match (&open, words.as_slice()) {
            (None, ["cmd", "start", pid]) if pid.parse::<i32>().is_ok() => open = Some(pid.to_string()),
            (Some(p), ["cmd", "stop", pid]) if p == pid => {}
            (Some(p), ["cmd", "exit", pid, code]) if p == pid && code.parse::<i32>().is_ok() => {
                ended = open.take();
                runs += 1;
            }
            (None, ["cmd", "usage", pid, reason, ..])
                if ended.as_deref() == Some(*pid) && reason.starts_with("reason=") =>
            {
                ended = None;
            }
            _ => panic!("status line {line:?} out of place (after run {runs})"),
        }
    }
    runs
}

/// Case 1: a command that exits at once, restarted thousands of times (10,000 with
/// DMON_SOAK=1): dmon's descriptors after the last start are exactly those after
/// the 100th, its memory has not grown, no zombie is left, and every status line
/// is whole.
#[test]
fn crash_loop_leaks_nothing() {
    let total = if soak() { 10_000 } else { 2_000 };
    let dir = Dir::new("crash");
    let status = dir.path("status");
    let hold = dir.path("HOLD");
    let script = format!("[ -e {} ] && exec sleep 1000; exit 1", hold.display());
    let child =
        dmon().args(["-n", "--backoff-max", "0.0001", "-I"]).arg(&status).args(["sh", "-c", &script]).spawn().unwrap();
    let pid = child.id() as i32;
    let _stopper = Stopper::new(pid);
    let start = Instant::now();
    let early = hold_and_sample(pid, &status, &hold, 100);
    let late = hold_and_sample(pid, &status, &hold, total);
    let elapsed = start.elapsed();
    signal(pid, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(30)).success());
    let runs = check_status_lines(&status);
    println!(
        "crash loop: {} starts in {:.1} s; fds {} -> {}; RSS {} KiB -> {} KiB; {runs} whole runs in the status file",
        late.starts,
        elapsed.as_secs_f64(),
        early.fds.len(),
        late.fds.len(),
        early.rss_kib,
        late.rss_kib
    );
    assert_eq!(early.fds, late.fds, "dmon's descriptors changed between start {} and {}", early.starts, late.starts);
    assert!(
        late.rss_kib <= early.rss_kib + 512,
        "dmon's memory grew from {} KiB to {} KiB",
        early.rss_kib,
        late.rss_kib
    );
    assert!(runs >= total);
}
