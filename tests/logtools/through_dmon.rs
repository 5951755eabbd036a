//! The loggers behind dmon, stopped or killed again and again while a writer
//! streams numbered lines: no line is lost.

use super::*;

/// `dmon -n -1 WRITER -- dlog FILE`, with dlog stopped (TERM) again and again
/// while the writer streams numbered lines: dmon starts a new dlog on the same
/// pipe each time, and every line arrives once, whole and in order.
#[test]
fn through_dmon_no_line_is_lost_when_dlog_is_stopped_fifty_times() {
    const TOTAL: usize = 100_000;
    const KILLS: usize = 50;
    let dir = Dir::new("dmon");
    let out = dir.path("out.log");
    let status = dir.path("status");
    // The writer paces itself a little so that dlog is stopped mid-stream.
    let writer = format!("i=1; while [ $i -le {TOTAL} ]; do seq $i $((i+999)); i=$((i+1000)); sleep 0.02; done");
    let mut child = common::dmon()
        .args(["-n", "-1", "--backoff-max", "0.01", "-I"])
        .arg(&status)
        .args(["sh", "-c", &writer, "--"])
        .arg(bin("dlog"))
        .arg(&out)
        .env_remove("DLOG_OPTIONS")
        .spawn()
        .unwrap();
    let _stopper = common::Stopper::of(&child);
    let loggers = || -> Vec<i32> {
        read_lines(&status).iter().filter_map(|l| l.strip_prefix("log start ").and_then(|p| p.parse().ok())).collect()
    };
    let mut stopped = 0;
    let mut seen = 0;
    while stopped < KILLS {
        let pids = loggers();
        if pids.len() > seen {
            seen = pids.len();
            let pid = *pids.last().unwrap();
            // Let this dlog take some lines first (or the writer finish).
            let before = count_lines(&out);
            wait_for("dlog to take lines", || count_lines(&out) > before || child.try_wait().unwrap().is_some());
            // SAFETY: kill with plain integers; dmon reaps its own children.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            stopped += 1;
        } else if child.try_wait().unwrap().is_some() {
            break;
        } else {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    assert!(stopped >= KILLS / 2, "the writer finished too early: dlog stopped only {stopped} times");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            panic!("dmon did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    let got = read_lines(&out);
    let expected: Vec<String> = (1..=TOTAL).map(|i| i.to_string()).collect();
    if let Some(at) = got.iter().zip(&expected).position(|(g, e)| g != e) {
        panic!("line {} is {:?}, expected {:?} ({} lines logged)", at + 1, got[at], expected[at], got.len());
    }
    assert_eq!(got.len(), TOTAL, "lines missing at the end (dlog stopped {stopped} times)");
}

/// What one run of [`signalled_every_100ms`] found in the log.
#[derive(Debug)]
struct Figures {
    signals: usize,
    lost: usize,
    repeated: usize,
    /// Runs of lines logged again (each starts where a line number goes back).
    repeats: usize,
    /// The longest such run, in bytes.
    longest_repeat: usize,
    /// Lines cut short (the start of the line after them), where a KILL stopped
    /// a write between two pages.
    torn: usize,
}

/// `dmon -n -1 PRODUCER -- LOGGER`, with the current logger (found through its
/// `log start PID` status line) sent `sig` every 100 ms from outside while the
/// producer writes 100,000 numbered lines, paced over a few seconds so that the
/// logger dies mid-stream again and again. `logged` reads back what was stored.
fn signalled_every_100ms(sig: i32, logger: &[&std::ffi::OsStr], logged: impl Fn() -> Vec<String>) -> Figures {
    const TOTAL: usize = 100_000;
    let dir = Dir::new("every100ms");
    let status = dir.path("status");
    let producer = format!("i=1; while [ $i -le {TOTAL} ]; do seq $i $((i+999)); i=$((i+1000)); sleep 0.03; done");
    let mut child = Command::new(bin("dmon"))
        .args(["-n", "-1", "--backoff-max", "0.01", "-I"])
        .arg(&status)
        .args(["sh", "-c", &producer, "--"])
        .args(logger)
        .env_remove("DLOG_OPTIONS")
        .env_remove("DRLOG_OPTIONS")
        .spawn()
        .unwrap();
    let mut signals = 0;
    let start = std::time::Instant::now();
    let exit = loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(120), "dmon did not finish");
        let lines = read_lines(&status);
        // Once the producer is done, the last logger drains the pipe in peace.
        if lines.iter().any(|l| l.starts_with("cmd exit ")) {
            continue;
        }
        let logger = lines.iter().rev().find_map(|l| l.strip_prefix("log start ")?.parse::<i32>().ok());
        // SAFETY: kill with plain integers; a logger already gone gives ESRCH.
        if logger.is_some_and(|pid| unsafe { libc::kill(pid, sig) } == 0) {
            signals += 1;
        }
    };
    assert!(exit.success(), "{exit:?}");
    assert!(signals >= 20, "the producer finished too early: only {signals} signals");
    let mut seen = vec![false; TOTAL + 1];
    let (mut newest, mut repeated, mut repeats, mut run, mut longest_repeat, mut torn) = (0, 0, 0, 0, 0, 0);
    let lines = logged();
    for (i, line) in lines.iter().enumerate() {
        // In this stream a line starts with the line before it only when that one
        // is its start, cut off.
        if lines.get(i + 1).is_some_and(|next| next.len() > line.len() && next.starts_with(line.as_str())) {
            torn += 1;
            continue;
        }
        let n: usize = line.parse().ok().filter(|n| (1..=TOTAL).contains(n)).unwrap_or_else(|| {
            panic!("a damaged line: {line:?}");
        });
        if n <= newest {
            assert!(seen[n], "line {n} arrived after {newest}");
            repeated += 1;
            if run == 0 {
                repeats += 1;
            }
            run += line.len() + 1;
            longest_repeat = longest_repeat.max(run);
        } else {
            run = 0;
            newest = n;
        }
        seen[n] = true;
    }
    let lost = seen[1..].iter().filter(|&&s| !s).count();
    Figures { signals, lost, repeated, repeats, longest_repeat, torn }
}

#[test]
fn through_dmon_dlog_killed_every_100ms_loses_nothing() {
    let dir = Dir::new("kill100");
    let out = dir.path("out.log");
    let f = signalled_every_100ms(libc::SIGKILL, &[bin("dlog").as_os_str(), out.as_os_str()], || read_lines(&out));
    eprintln!("dlog, KILL every 100 ms: {f:?}");
    assert_eq!(f.lost, 0, "{f:?}");
    // At most the one batch written but not yet taken from the pipe, per KILL.
    assert!(f.repeats <= f.signals && f.longest_repeat <= 1 << 20 && f.torn <= f.signals, "{f:?}");
}

#[test]
fn through_dmon_dlog_stopped_every_100ms_loses_and_repeats_nothing() {
    let dir = Dir::new("term100");
    let out = dir.path("out.log");
    let f = signalled_every_100ms(libc::SIGTERM, &[bin("dlog").as_os_str(), out.as_os_str()], || read_lines(&out));
    eprintln!("dlog, TERM every 100 ms: {f:?}");
    assert_eq!((f.lost, f.repeated, f.torn), (0, 0, 0), "{f:?}");
}

#[test]
fn through_dmon_drlog_killed_every_100ms_loses_nothing() {
    let dir = Dir::new("drkill100");
    let logger =
        [bin("drlog").into_os_string(), "-s".into(), "64k".into(), "-m".into(), "0".into(), dir.0.clone().into()];
    let logger: Vec<&std::ffi::OsStr> = logger.iter().map(|a| a.as_os_str()).collect();
    let f = signalled_every_100ms(libc::SIGKILL, &logger, || all_logged(&dir.0));
    eprintln!("drlog, KILL every 100 ms: {f:?}");
    assert_eq!(f.lost, 0, "{f:?}");
    assert!(f.repeats <= f.signals && f.longest_repeat <= 1 << 20 && f.torn <= f.signals, "{f:?}");
}
