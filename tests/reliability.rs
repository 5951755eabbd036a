//! Reliability: what dmon does on the bad day. Each test drives the built binary
//! with real processes, signals, files and mounts, and fails when dmon loses data,
//! leaks, hangs, panics or lets something escape. docs/reliability.md lists each
//! case, what it proves and its latest figures.
//!
//! The soak cases run short by default (CI); `DMON_SOAK=1` runs their long form.
//! Conditions are polled with generous bounds; nothing asserts a duration.

mod common;

#[path = "reliability/support.rs"]
mod support;

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// Case 9: bad input. Every row must give one short line on stderr that starts
/// with `dmon: ` and names what was wrong, exit 2, never a panic, and start
/// nothing.
#[test]
fn bad_input_gets_one_clear_line_and_exit_2() {
    let dir = Dir::new("bad");
    let marker = dir.s("started");
    let huge = "9".repeat(400);
    let ten_mb = "a".repeat(10 << 20);
    // The kernel's limit for one argument is 128 KiB (MAX_ARG_STRLEN).
    let long_arg = "a".repeat(120_000);

    // (arguments before the command, what the message must contain)
    let mut rows: Vec<(Vec<OsString>, String)> = Vec::new();
    let mut row = |args: &[&str], expected: &str| {
        rows.push((args.iter().map(OsString::from).collect(), expected.to_string()));
    };
    let times = ["-i/--interval", "-t/--timeout", "--grace", "--backoff-max"];
    for name in times {
        let flag = name.split('/').next_back().unwrap();
        for value in [
            "", "x", "-1", "NaN", "nan", "inf", "-inf", "1e3", "0x10", "1.5.5", "5q", " 5", "+5", "5 ", "1,5",
            "\u{661}",
        ] {
            row(&[flag, value], &format!("{name}: '{value}' is not a time"));
        }
        for value in ["99999999999999999999", "1000000000000000", "10000000w", "1000000000d", &huge] {
            row(&[flag, value], &format!("{name}: "));
        }
    }
    row(&["-t", "0"], "-t/--timeout: '0' is too short");
    row(&["-t", "0.0000000000000000000001"], "-t/--timeout: ");
    for value in ["", "x", "-1", "NaN", "1.5", "1e3", "18446744073709551616"] {
        row(&["-m", value], &format!("-m/--max-respawns: '{value}' is not a whole number"));
    }
    row(&["-m", &huge], "-m/--max-respawns: '999");
    for value in ["", "x", "-1", "NaN", "inf", "1e999", "3,5", &huge] {
        row(&["-L", value], "-L/--load-high: ");
        row(&["-L", "4", "-l", value], "-l/--load-low: ");
    }
    row(&["-L", "0"], "-L/--load-high: '0' must be above zero");
    row(&["-L", "2", "-l", "3"], "-l/--load-low: '3' is above -L/--load-high '2'");
    row(&["-L", "2", "-l", "999999999999999"], "-l/--load-low: '999999999999999' is above");
    row(&["-l", "1"], "-l/--load-low needs -L/--load-high");
    for value in [
        "",
        "x",
        "=",
        "files=",
        "files=-1",
        "files=NaN",
        "files=1.5",
        "files=99999999999999999999",
        "vmem=18446744073709551615k",
        "vmem=-1k",
        "core=1e9",
        "cpu=1e9",
        "cpu=10000000w",
        "cpu=-5",
        "rttime=1s",
        "bogus=1",
        "files=1=2",
    ] {
        row(&["-r", value], "-r/--limit: ");
    }
    for value in ["", "=x", "="] {
        row(&["-E", value], "-E/--environ: ");
    }
    for value in ["", ":", "root:", ":root", "root::x", "no-such-user-xyz"] {
        row(&["-u", value], "-u/--cmd-user: ");
        row(&["-U", value], "-U/--log-user: ");
    }
    row(&["-g", "root"], "-g/--cmd-group needs -u/--cmd-user");
    row(&["-G", ""], "-G/--log-group needs -U/--log-user");
    row(&["-u", "root", "-g", ""], "-u/--cmd-user: ");
    row(&["-u", "root", "-g", "no-such-group-xyz"], "-u/--cmd-user: ");
    for value in ["", "bogus", "CAP_BOGUS", "cap_", "99"] {
        row(&["--cap", value], "--cap: ");
    }
    for value in ["", "bogus", "CGROUP2"] {
        row(&["--tree", value], "--tree");
    }
    row(&["-C", "/dev/null"], "-C/--config must be the first option");
    row(&["-I", ""], "a value is required for '--write-info <PATH>'");
    row(&["-I", "/"], "-I/--write-info: cannot open '/'");
    row(&["-p", ""], "a value is required for '--pid-file <PATH>'");
    row(&["-p", "/"], "-p/--pid-file: ");
    row(&["-W", ""], "a value is required for '--work-dir <DIR>'");
    row(&["-W", "/etc/passwd"], "-W/--work-dir: '/etc/passwd' is not a directory");
    row(&["--bogus"], "unexpected argument '--bogus'");
    row(&["-n", "-C", "/dev/null"], "-C/--config must be the first option");
    // Huge values: the message stays short.
    row(&["-t", &long_arg], "-t/--timeout: ");
    row(&["-r", &long_arg], "-r/--limit: ");
    row(&["-u", &long_arg], "-u/--cmd-user: ");
    row(&["-p", &format!("/{long_arg}")], "-p/--pid-file: ");
    // Values with line breaks and control characters stay on one line.
    row(&["-t", "5\nx"], "-t/--timeout: ");
    row(&["-r", "files=1\r\n2"], "-r/--limit: ");
    row(&["-u", "a\nb"], "-u/--cmd-user: ");
    // Not UTF-8.
    rows.push((vec!["-t".into(), OsString::from_vec(vec![b'5', 0xff])], "invalid UTF-8".into()));
    rows.push((
        vec!["-I".into(), OsString::from_vec(vec![b'/', b'n', b'o', 0xff, b'/', b'x'])],
        "-I/--write-info".into(),
    ));

    // Config files.
    let mut files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("unterminated quote", b"pid-file \"/tmp/x\n".to_vec(), ":1:10: unterminated quoted string"),
        ("quote at the end", b"no-daemon \"".to_vec(), ":1:11: unterminated quoted string"),
        ("backslash at the end", b"environ \"A=\\".to_vec(), ":1:9: unterminated quoted string"),
        ("unknown escape", b"environ \"A=\\q\"".to_vec(), ":1:12: unknown escape \\q"),
        ("short hex escape", b"environ \"A=\\x4\"".to_vec(), ":1:12: \\x must be followed by two hexadecimal digits"),
        ("bad hex escape", b"environ \"A=\\xZZ\"".to_vec(), ":1:12: \\x must be followed by two hexadecimal digits"),
        ("escape of a control byte", b"environ \"A=\\\x01\"".to_vec(), ":1:12: unknown escape"),
        ("unknown option", b"no-daemon\n  bogus-option 3\n".to_vec(), ":2:3: unknown option 'bogus-option'"),
        ("config inside config", b"config /etc/x".to_vec(), ":1:1: unknown option 'config'"),
        ("missing value", b"no-daemon pid-file".to_vec(), ":1:11: option 'pid-file' needs a value"),
        ("bad value", b"timeout \"5\\n6\"".to_vec(), "-t/--timeout: "),
        ("binary junk", b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\x00\x00".to_vec(), ": word is not valid UTF-8"),
        ("NUL in a word", b"environ \"A=\\0\"".to_vec(), "-E/--environ: "),
        ("10 MB word", ten_mb.as_bytes().to_vec(), ":1:1: unknown option 'aaaa"),
        ("10 MB quoted", format!("environ \"{ten_mb}").into_bytes(), ":1:9: unterminated quoted string"),
        ("10 MB value", format!("timeout {ten_mb}").into_bytes(), "-t/--timeout: "),
    ];
    let mut junk = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..100_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        junk.push(seed as u8);
    }
    files.push(("100 kB of random bytes", junk, ": "));

    let mut checked = 0;
    let mut failures = Vec::new();
    let mut check = |what: &str, command: &mut Command, expected: &str| {
        let out = run(command.current_dir(&dir.0));
        let err = stderr_of(&out);
        let shown: String = format!("{what}: {:?}", err.chars().take(300).collect::<String>());
        checked += 1;
        let problem = if panicked(&out) {
            "dmon panicked".to_string()
        } else if out.status.code() != Some(2) {
            format!("exit status {:?}", out.status.code())
        } else if !err.starts_with("dmon: ") || !err.contains(expected) {
            format!("expected {expected:?}")
        } else if err.matches('\n').count() != 1 {
            "not exactly one line".to_string()
        } else if err.len() > 400 {
            format!("{} bytes is not a clear line", err.len())
        } else if Path::new(&marker).exists() {
            "started the command".to_string()
        } else {
            return;
        };
        failures.push(format!("{shown}: {problem}"));
    };
    let touch = ["sh", "-c", &format!("touch {marker}")];
    for (value, expected) in [
        ("", "-C/--config: cannot read ''"),
        ("/nonexistent/dmon.conf", "-C/--config: cannot read '/nonexistent/dmon.conf': No such file"),
        ("/", "-C/--config: cannot read '/': Is a directory"),
    ] {
        check(&format!("-C {value:?}"), dmon_cmd().args(["-C", value, "-n"]).args(touch), expected);
    }
    for (args, expected) in &rows {
        let what = format!(
            "{:?}",
            args.iter().map(|a| a.to_string_lossy().chars().take(40).collect()).collect::<Vec<String>>()
        );
        check(&what, dmon_cmd().arg("-n").args(args).args(touch), expected);
    }
    for (what, text, expected) in &files {
        let conf = dir.path("dmon.conf");
        fs::write(&conf, text).unwrap();
        check(what, dmon_cmd().arg("-C").arg(&conf).arg("-n").args(touch), expected);
    }
    // DMON_OPTIONS gets the same words.
    for (text, expected) in [
        ("-t x", "-t/--timeout: 'x' is not a time"),
        ("-t \"5", "DMON_OPTIONS: column 4: unterminated quoted string"),
        ("-n sleep", "DMON_OPTIONS: 'sleep' is not an option"),
        ("--bogus", "unexpected argument '--bogus'"),
    ] {
        check(text, dmon_cmd().env("DMON_OPTIONS", text).arg("-n").args(touch), expected);
    }
    let junk = OsString::from_vec(b"-t \xff\xfe\x01".to_vec());
    check("DMON_OPTIONS junk", dmon_cmd().env("DMON_OPTIONS", junk).arg("-n").args(touch), "DMON_OPTIONS: ");
    assert!(failures.is_empty(), "{} of {checked} cases failed:\n{}", failures.len(), failures.join("\n"));
    println!("bad input: {checked} cases, each one line and exit 2");
}

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
    for line in lines {
        let words: Vec<&str> = line.split(' ').collect();
        match (&open, words.as_slice()) {
            (None, ["cmd", "start", pid]) if pid.parse::<i32>().is_ok() => open = Some(pid.to_string()),
            (Some(p), ["cmd", "stop", pid]) if p == pid => {}
            (Some(p), ["cmd", "exit", pid, code]) if p == pid && code.parse::<i32>().is_ok() => {
                open = None;
                runs += 1;
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
    let child = dmon_cmd()
        .args(["-n", "--backoff-max", "0.0001", "-I"])
        .arg(&status)
        .args(["sh", "-c", &script])
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let _stopper = Stopper(pid);
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

/// Whether a process is blocked writing into a full pipe.
fn blocked_on_pipe(pid: i32) -> bool {
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    state(pid) == Some('S') && wchan.contains("pipe_write")
}

/// Case 3: the log command killed (KILL, TERM), unable to start (its binary
/// gone) and stopped, each while the command writes: dmon keeps supervising, the
/// command blocks on the full pipe instead of losing output, and every line
/// arrives once the logger is back, in order, exactly once.
///
/// The logger reads one byte at a time (the shell's `read` does on a pipe) and
/// stops itself after a whole line when STOPNOW exists, so when it is killed it
/// holds nothing it has read but not written: whatever is lost would be dmon's.
#[test]
fn logger_faults_lose_no_line() {
    let lines_total = 100_000;
    let dir = Dir::new("logger");
    let status = dir.path("status");
    let out = dir.path("out");
    let stopnow = dir.path("STOPNOW");
    let logger = dir.path("logger");
    let script = format!(
        "#!/bin/sh\nexec >> {}\nwhile IFS= read -r line; do\n  printf '%s\\n' \"$line\"\n  [ -e {} ] && kill -STOP $$\ndone\n",
        out.display(),
        stopnow.display()
    );
    fs::write(&logger, script).unwrap();
    fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let writer = format!("i=0; while [ $i -lt {lines_total} ]; do i=$((i+1)); echo $i; done");
    let stderr = fs::File::create(dir.path("stderr")).unwrap();
    let child = dmon_cmd()
        .args(["-n", "-1", "--grace", "5", "--backoff-max", "0.1", "-I"])
        .arg(&status)
        .args(["sh", "-c", &writer, "--"])
        .arg(&logger)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let dmon = child.id() as i32;
    let _stopper = Stopper(dmon);
    assert!(wait_until(Duration::from_secs(10), || !started(&status, "cmd").is_empty()));
    let cmd = started(&status, "cmd")[0];

    // Stops the logger at a line boundary with the pipe full behind it.
    let stop_logger = || -> i32 {
        let logger = *started(&status, "log").last().unwrap();
        fs::write(&stopnow, "").unwrap();
        assert!(wait_until(Duration::from_secs(30), || state(logger) == Some('T')), "the logger did not stop");
        fs::remove_file(&stopnow).unwrap();
        assert!(
            wait_until(Duration::from_secs(30), || blocked_on_pipe(cmd)),
            "the command is not blocked on the full pipe (state {:?})",
            state(cmd)
        );
        logger
    };
    let restarted = |old: i32| {
        assert!(
            wait_until(Duration::from_secs(30), || started(&status, "log").last() != Some(&old)),
            "the logger was not restarted"
        );
    };

    // KILL.
    let logger_pid = stop_logger();
    signal(logger_pid, libc::SIGKILL);
    restarted(logger_pid);
    assert!(lines(&status).contains(&format!("log exit {logger_pid} {}", libc::SIGKILL)));
    // TERM (delivered once it is continued).
    let logger_pid = stop_logger();
    signal(logger_pid, libc::SIGTERM);
    signal(logger_pid, libc::SIGCONT);
    restarted(logger_pid);
    assert!(lines(&status).contains(&format!("log exit {logger_pid} {}", libc::SIGTERM)));
    // Stopped from outside for a while, then continued: the same logger goes on.
    let logger_pid = stop_logger();
    signal(logger_pid, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(dmon) && blocked_on_pipe(cmd));
    signal(logger_pid, libc::SIGCONT);
    // The binary gone: dmon retries, reports it once, and keeps the command.
    let logger_pid = stop_logger();
    let away = dir.path("logger.away");
    fs::rename(&logger, &away).unwrap();
    signal(logger_pid, libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(30), || read(&dir.path("stderr")).contains("cannot execute")),
        "no message about the missing logger"
    );
    assert!(alive(dmon) && blocked_on_pipe(cmd), "dmon or the command gave up while the logger was missing");
    fs::rename(&away, &logger).unwrap();
    restarted(logger_pid);

    let code = finish(child, Duration::from_secs(300));
    let stderr = read(&dir.path("stderr"));
    assert_eq!(code.code(), Some(0), "{stderr}");
    assert_eq!(stderr.matches("cannot execute").count(), 1, "{stderr}");
    let got = read(&out);
    let expected: String = (1..=lines_total).map(|i| format!("{i}\n")).collect();
    if got != expected {
        let got: Vec<&str> = got.lines().collect();
        let first_bad = got.iter().enumerate().find(|(i, l)| **l != (i + 1).to_string()).map(|(i, _)| i);
        panic!("{} lines arrived, expected {lines_total}; first difference at line {first_bad:?}", got.len());
    }
    println!(
        "logger faults: {lines_total} lines through KILL, TERM, STOP and a missing logger, {} logger starts, none lost",
        started(&status, "log").len()
    );
}

/// Case 7: 10,000 HUP, USR1 and USR2 sent to dmon with `-s` as fast as one thread
/// can: dmon neither dies nor hangs, forwards them to the command (coalesced, as
/// the kernel coalesces pending signals), still forwards each one afterwards,
/// keeps its descriptors, and stops cleanly.
#[test]
fn signal_storm_is_forwarded_without_crash_or_hang() {
    let dir = Dir::new("storm");
    let status = dir.path("status");
    let got = dir.path("got");
    let ready = dir.path("ready");
    let script = format!(
        "for s in HUP USR1 USR2; do trap \"echo $s >> {got}\" $s; done; touch {ready}; while :; do sleep 0.01; done",
        got = got.display(),
        ready = ready.display()
    );
    let child = dmon_cmd().args(["-n", "-s", "-I"]).arg(&status).args(["sh", "-c", &script]).spawn().unwrap();
    let dmon = child.id() as i32;
    let _stopper = Stopper(dmon);
    assert!(wait_until(Duration::from_secs(10), || ready.exists()));
    let cmd = started(&status, "cmd")[0];
    let fds_before = fds(dmon);

    let signals = [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];
    let start = Instant::now();
    for i in 0..10_000 {
        signal(dmon, signals[i % 3]);
    }
    let storm = start.elapsed();
    for name in ["HUP", "USR1", "USR2"] {
        assert!(
            wait_until(Duration::from_secs(30), || read(&got).lines().any(|l| l == name)),
            "the command never got {name}"
        );
    }
    assert!(alive(dmon) && alive(cmd), "dmon or the command died in the storm");
    let received = read(&got).lines().count();
    let forwarded = lines(&status).iter().filter(|l| l.starts_with(&format!("cmd signal {cmd} "))).count();

    // Afterwards each signal is still forwarded.
    fs::write(&got, "").unwrap();
    for (signo, name) in signals.iter().zip(["HUP", "USR1", "USR2"]) {
        signal(dmon, *signo);
        assert!(
            wait_until(Duration::from_secs(30), || read(&got).lines().any(|l| l == name)),
            "{name} is no longer forwarded after the storm"
        );
    }
    assert_eq!(fds(dmon), fds_before, "dmon's descriptors changed in the storm");
    signal(dmon, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(30)).success());
    assert!(!alive(cmd));
    for line in lines(&status) {
        let words: Vec<&str> = line.split(' ').collect();
        let whole = match words.as_slice() {
            ["tree", ..] => true,
            ["cmd", "signal", pid, signo] => pid.parse::<i32>().is_ok() && signo.parse::<i32>().is_ok(),
            ["cmd", "start" | "stop", pid] => pid.parse::<i32>().is_ok(),
            ["cmd", "exit", pid, code] => pid.parse::<i32>().is_ok() && code.parse::<i32>().is_ok(),
            _ => false,
        };
        assert!(whole, "status line {line:?} is not whole");
    }
    println!(
        "signal storm: 10000 signals sent in {:.0} ms; dmon forwarded {forwarded}, the command ran its traps {received} times",
        storm.as_secs_f64() * 1000.0
    );
}

/// Case 8: the pid file and the status file in a world-writable sticky directory
/// where someone else planted a symbolic link, a FIFO, a hard link or a file of
/// their own. dmon refuses each in one line naming the path and the reason,
/// starts nothing, and the file the plant points at is left untouched.
#[test]
fn hostile_paths_are_refused_and_nothing_is_clobbered() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = Dir::new("hostile");
    let shared = dir.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.path("victim");
    fs::write(&victim, "precious\n").unwrap();
    let marker = dir.path("started");
    let touch = ["sh", "-c", &format!("touch {}", marker.display())];
    let nobody = 65534;

    let plant = |name: &str, kind: &str| -> std::path::PathBuf {
        let path = shared.join(name);
        let _ = fs::remove_file(&path);
        match kind {
            "symlink" => std::os::unix::fs::symlink(&victim, &path).unwrap(),
            "dangling symlink" => std::os::unix::fs::symlink(dir.path("new-file"), &path).unwrap(),
            "hard link" => fs::hard_link(&victim, &path).unwrap(),
            "fifo" | "foreign fifo" => {
                let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
                // SAFETY: mkfifo with a valid C string.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
            }
            "foreign file" => fs::write(&path, "").unwrap(),
            _ => unreachable!(),
        }
        if kind.starts_with("foreign") {
            std::os::unix::fs::lchown(&path, Some(nobody), Some(nobody)).unwrap();
        }
        path
    };
    let cases = [
        ("-p", "symlink", "is a symbolic link, which dmon does not follow"),
        ("-p", "dangling symlink", "is a symbolic link, which dmon does not follow"),
        ("-p", "fifo", "is a FIFO, not a regular file"),
        ("-p", "hard link", "has 2 hard links"),
        ("-p", "foreign file", "belongs to uid 65534 in a directory others can write to"),
        ("-I", "symlink", "is a symbolic link, which dmon does not follow"),
        ("-I", "dangling symlink", "is a symbolic link, which dmon does not follow"),
        ("-I", "hard link", "has 2 hard links"),
        ("-I", "foreign file", "belongs to uid 65534 in a directory others can write to"),
        ("-I", "foreign fifo", "belongs to uid 65534 in a directory others can write to"),
    ];
    let victim_before = fs::metadata(&victim).unwrap();
    for (option, kind, expected) in cases {
        let path = plant("target", kind);
        let child = dmon_cmd()
            .args(["-n", "-1", option])
            .arg(&path)
            .args(touch)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = finish_output(child, Duration::from_secs(30));
        let err = stderr_of(&status);
        let what = format!("{option} on a {kind}: {err:?}");
        assert_eq!(status.status.code(), Some(2), "{what}");
        let name = if option == "-p" { "-p/--pid-file" } else { "-I/--write-info" };
        assert!(err.starts_with(&format!("dmon: {name}: cannot open '{}': it ", path.display())), "{what}");
        assert!(err.contains(expected), "{what}");
        assert_eq!(err.lines().count(), 1, "{what}");
        assert!(!marker.exists(), "{what}: the command was started");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n", "{what}: the victim was written");
        assert!(!dir.path("new-file").exists(), "{what}: the link's target was created");
        let kept = fs::symlink_metadata(&path).unwrap();
        assert!(kind.contains("symlink") == kept.file_type().is_symlink(), "{what}: the plant was replaced");
    }
    let victim_after = fs::metadata(&victim).unwrap();
    assert_eq!((victim_after.mtime(), victim_after.mtime_nsec()), (victim_before.mtime(), victim_before.mtime_nsec()));

    // What dmon made or owns itself is used: a stale pid file of its user, a
    // FIFO of its own as the status file.
    let pid_file = shared.join("dmon.pid");
    fs::write(&pid_file, "999999\n").unwrap();
    let fifo = plant("status.fifo", "fifo");
    let out = run(dmon_cmd().args(["-n", "-1", "-p"]).arg(&pid_file).arg("-I").arg(&fifo).args(touch));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(marker.exists());
    assert!(!pid_file.exists(), "the pid file was not removed at exit");
    println!("hostile paths: {} plants refused, the victim untouched", cases.len());
}

/// The fewest descriptors dmon had over a burst of samples: the steady set,
/// without the ones a spawn holds for a moment.
fn steady_fds(pid: i32) -> std::collections::BTreeMap<i32, String> {
    (0..40)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(2));
            fds(pid)
        })
        .filter(|f| !f.is_empty())
        .min_by_key(|f| f.len())
        .unwrap_or_default()
}

/// The cgroup directories below `dir`.
fn subdirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into()).collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Case 2: a command tree (a leader and a background child) stopped by `-t`
/// hundreds of times (1,000 with DMON_SOAK=1) in each backend: dmon's steady
/// descriptors and its cgroup directories do not grow, no process of any run is
/// left, and dmon's cgroup is gone at exit.
#[test]
fn repeated_timeouts_leave_nothing_behind() {
    let runs = if soak() { 1_000 } else { 300 };
    for backend in ["cgroup2", "freezer", "signals"] {
        if let Err(why) = backend_available(backend) {
            common::skip(&format!("timeouts: --tree {backend}: {why}"));
            continue;
        }
        let dir = Dir::new(&format!("timeouts-{backend}"));
        let status = dir.path("status");
        let marker = format!("{}.{}", 1000 + std::process::id() % 1000, runs);
        let script = format!("sleep {marker}1 & exec sleep {marker}2");
        let child = dmon_cmd()
            .args(["-n", "--tree", backend, "-m", &runs.to_string(), "-t", "0.02", "--grace", "1"])
            .args(["--backoff-max", "0.001", "-I"])
            .arg(&status)
            .args(["sh", "-c", &script])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let _stopper = Stopper(pid);
        let start = Instant::now();
        assert!(wait_until(Duration::from_secs(30), || started(&status, "cmd").len() >= 20));
        let home = home_of(&status);
        let early_fds = steady_fds(pid);
        let early_dirs = home.as_deref().map(subdirs);
        assert!(wait_until(Duration::from_secs(300), || started(&status, "cmd").len() >= runs - 10));
        let late_fds = steady_fds(pid);
        let late_dirs = home.as_deref().map(subdirs);
        let code = finish(child, Duration::from_secs(120));
        let elapsed = start.elapsed();
        assert_eq!(code.code(), Some(128 + libc::SIGTERM), "--tree {backend}");
        let timeouts = lines(&status).iter().filter(|l| l.starts_with("cmd timeout ")).count();
        assert_eq!(timeouts, runs + 1, "--tree {backend}");
        assert_eq!(
            early_fds.len(),
            late_fds.len(),
            "--tree {backend}: dmon's descriptors grew:\n{early_fds:?}\n{late_fds:?}"
        );
        assert_eq!(early_dirs, late_dirs, "--tree {backend}: cgroup directories changed");
        let left = with_marker(&marker);
        assert!(left.is_empty(), "--tree {backend}: processes left over: {left:?}");
        if let Some(home) = &home {
            assert!(!home.exists(), "--tree {backend}: {} is left over", home.display());
        }
        println!(
            "timeouts: --tree {backend}: {} runs stopped by -t in {:.1} s; {} steady fds before and after; no process or cgroup left",
            runs + 1,
            elapsed.as_secs_f64(),
            late_fds.len()
        );
    }
}

/// Fills a file system: one file of zeros up to ENOSPC.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = fs::File::create(path).unwrap();
    let block = [0u8; 4096];
    while file.write(&block).is_ok_and(|n| n > 0) {}
    // A last partial page.
    while file.write(&block[..1]).is_ok_and(|n| n > 0) {}
}

/// Case 6, status and pid files: on a full disk dmon keeps running, says once
/// that status lines are dropped, keeps every line already written whole, and
/// goes on when space is back; a pid file that cannot be written is reported and
/// not left behind, in the foreground and in daemon mode.
#[test]
fn full_disk_for_status_and_pid_files() {
    let disk = match Tmpfs::mount("full-status", "64k") {
        Ok(disk) => disk,
        Err(why) => return common::skip(&format!("disk full: {why}")),
    };
    let status = disk.path("status");
    let pid_file = disk.path("dmon.pid");
    let log = Dir::new("full-status-log");
    let stderr = fs::File::create(log.path("stderr")).unwrap();
    let child = dmon_cmd()
        .args(["-n", "-s", "-p"])
        .arg(&pid_file)
        .arg("-I")
        .arg(&status)
        .args([
            "sh",
            "-c",
            &format!("trap '' USR1; touch {}; while :; do sleep 0.05; done", log.path("ready").display()),
        ])
        .stderr(stderr)
        .spawn()
        .unwrap();
    let dmon = child.id() as i32;
    let _stopper = Stopper(dmon);
    assert!(wait_until(Duration::from_secs(10), || !started(&status, "cmd").is_empty()));
    // USR1 is forwarded: only once the command ignores it.
    assert!(wait_until(Duration::from_secs(10), || log.path("ready").exists()));
    let cmd = started(&status, "cmd")[0];
    fill(&disk.path("filler"));
    // Status lines until the last page of the status file is full too.
    assert!(
        wait_until(Duration::from_secs(60), || {
            signal(dmon, libc::SIGUSR1);
            std::thread::sleep(Duration::from_millis(1));
            read(&log.path("stderr")).contains("No space left on device")
        }),
        "no report of the full disk"
    );
    // More lines while it is full.
    for _ in 0..100 {
        signal(dmon, libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(alive(dmon) && alive(cmd));
    assert_eq!(read(&pid_file), format!("{dmon}\n"), "the pid file changed on the full disk");
    let written = lines(&status).len();
    fs::remove_file(disk.path("filler")).unwrap();
    signal(dmon, libc::SIGUSR1);
    assert!(
        wait_until(Duration::from_secs(30), || {
            signal(dmon, libc::SIGUSR1);
            lines(&status).len() > written + 1
        }),
        "status lines did not resume"
    );
    signal(dmon, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(30)).success());
    let text = read(&status);
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let whole = match words.as_slice() {
            ["tree", ..] => true,
            ["cmd", "signal", pid, "10"] => *pid == cmd.to_string(),
            ["cmd", "start" | "stop", pid] => *pid == cmd.to_string(),
            ["cmd", "exit", pid, _] => *pid == cmd.to_string(),
            _ => false,
        };
        assert!(whole, "status line {line:?} is not whole");
    }
    let err = read(&log.path("stderr"));
    assert_eq!(err.matches("cannot write to the status file").count(), 1, "{err}");
    println!(
        "disk full: status file: {} lines kept whole, {} after recovery; one warning",
        written,
        text.lines().count()
    );

    // A pid file that cannot be written: reported, not left behind.
    fill(&disk.path("filler"));
    for daemon in [false, true] {
        let path = disk.path(&format!("new-{daemon}.pid"));
        let mut command = dmon_cmd();
        if !daemon {
            command.arg("-n");
        }
        let out = run(command.arg("-p").arg(&path).args(["sleep", "600"]));
        let err = stderr_of(&out);
        assert!(!out.status.success(), "daemon {daemon}: {err}");
        assert!(!panicked(&out), "{err}");
        assert_eq!(err, "dmon: -p/--pid-file: cannot write: No space left on device\n", "daemon {daemon}");
        assert!(!path.exists(), "daemon {daemon}: an empty pid file was left behind");
    }
    let _ = fs::remove_file(disk.path("filler"));
}

/// Case 6, log output: dlog and drlog on a full disk report it, retry, and lose
/// nothing: the command blocks on the full pipe, and once space is back every
/// line arrives whole and in order.
#[test]
fn full_disk_for_dlog_and_drlog_output() {
    for tool in ["dlog", "drlog"] {
        let disk = match Tmpfs::mount(&format!("full-{tool}"), "4m") {
            Ok(disk) => disk,
            Err(why) => return common::skip(&format!("disk full: {why}")),
        };
        let dir = Dir::new(&format!("full-{tool}-st"));
        let status = dir.path("status");
        // More than the 1 MiB pipe dlog and drlog ask for.
        let total = 300_000;
        let writer = format!("i=0; while [ $i -lt {total} ]; do i=$((i+1)); echo $i; done");
        let (logger, output) = match tool {
            "dlog" => (vec![DLOG.to_string(), disk.dir.s("out")], disk.path("out")),
            _ => (vec![DRLOG.to_string(), "-s".into(), "1m".into(), disk.dir.s("logs")], disk.path("logs/current")),
        };
        fs::create_dir(disk.path("logs")).unwrap();
        let stderr = fs::File::create(dir.path("stderr")).unwrap();
        let child = dmon_cmd()
            .args(["-n", "-1", "--grace", "5", "-I"])
            .arg(&status)
            .args(["sh", "-c", &writer, "--"])
            .args(&logger)
            .stderr(stderr)
            .spawn()
            .unwrap();
        let _stopper = Stopper(child.id() as i32);
        assert!(wait_until(Duration::from_secs(10), || read(&output).lines().count() > 100));
        assert!(wait_until(Duration::from_secs(10), || !started(&status, "cmd").is_empty()));
        let cmd = started(&status, "cmd")[0];
        fill(&disk.path("filler"));
        assert!(
            wait_until(Duration::from_secs(30), || read(&dir.path("stderr")).contains("No space left on device")),
            "{tool} did not report the full disk"
        );
        assert!(
            wait_until(Duration::from_secs(30), || blocked_on_pipe(cmd)),
            "{tool}: the command is not blocked on the pipe"
        );
        let during = read(&output).lines().count();
        fs::remove_file(disk.path("filler")).unwrap();
        let code = finish(child, Duration::from_secs(120));
        let err = read(&dir.path("stderr"));
        assert_eq!(code.code(), Some(0), "{tool}: {err}");
        let mut got = String::new();
        if tool == "drlog" {
            let mut names: Vec<_> = fs::read_dir(disk.path("logs"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .collect();
            names.sort();
            for name in names.iter().filter(|n| n.starts_with("log-")).chain(names.iter().filter(|n| *n == "current")) {
                got.push_str(&read(&disk.path("logs").join(name)));
            }
        } else {
            got = read(&output);
        }
        let expected: String = (1..=total).map(|i| format!("{i}\n")).collect();
        assert!(got == expected, "{tool}: {} lines arrived of {total}", got.lines().count());
        println!(
            "disk full: {tool}: {total} lines, {during} written when the disk was full, all arrived after; {tool} said: {:?}",
            err.lines().find(|l| l.contains("No space")).unwrap_or("")
        );
    }
}

/// Case 4: dmon killed with SIGKILL, in each backend. It cannot clean up, so its
/// command tree keeps running (in its cgroup, or re-parented to init with the
/// signal backend), and its cgroup stays. A new dmon with the same pid file and
/// cgroup parent starts cleanly, leaves the orphaned tree alone (it never kills
/// what it did not start) and removes the old cgroup once it is empty.
#[test]
fn dmon_killed_leaves_its_tree_and_a_new_dmon_starts_cleanly() {
    for backend in ["cgroup2", "freezer", "signals"] {
        if let Err(why) = backend_available(backend) {
            common::skip(&format!("dmon killed: --tree {backend}: {why}"));
            continue;
        }
        let dir = Dir::new(&format!("killed-{backend}"));
        let pid_file = dir.path("dmon.pid");
        let marker = format!("{}.{}", 2000 + std::process::id() % 1000, backend.len());
        let start = |status: &Path| {
            dmon_cmd()
                .args(["-n", "--tree", backend, "-p"])
                .arg(&pid_file)
                .arg("-I")
                .arg(status)
                .args(["sh", "-c", &format!("sleep {marker}1 & exec sleep {marker}2")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let first_status = dir.path("status1");
        let mut first = start(&first_status);
        let _first_stopper = Stopper(first.id() as i32);
        assert!(wait_until(Duration::from_secs(10), || started(&first_status, "cmd").len() == 1));
        assert!(wait_until(Duration::from_secs(10), || with_marker(&marker).len() == 2));
        let orphans = with_marker(&marker);
        let old_home = home_of(&first_status);
        first.kill().unwrap();
        first.wait().unwrap();
        assert!(orphans.iter().all(|&p| alive(p)), "--tree {backend}: the tree died with dmon");

        let second_status = dir.path("status2");
        let second = start(&second_status);
        let _stopper = Stopper(second.id() as i32);
        assert!(
            wait_until(Duration::from_secs(10), || started(&second_status, "cmd").len() == 1),
            "--tree {backend}: a new dmon did not start"
        );
        assert_eq!(read(&pid_file), format!("{}\n", second.id()), "--tree {backend}");
        assert!(orphans.iter().all(|&p| alive(p)), "--tree {backend}: the new dmon killed the old tree");
        if let Some(home) = &old_home {
            assert!(home.exists(), "--tree {backend}: the old cgroup was removed while it held processes");
        }
        for &p in &orphans {
            signal(p, libc::SIGKILL);
        }
        assert!(wait_until(Duration::from_secs(10), || orphans.iter().all(|&p| !alive(p))));
        signal(second.id() as i32, libc::SIGTERM);
        let out = finish_output(second, Duration::from_secs(30));
        assert!(out.status.success(), "--tree {backend}: {}", stderr_of(&out));
        let warned = stderr_of(&out);

        // The next dmon under the same parent removes the empty leftover.
        let third = run(dmon_cmd().args(["-n", "-1", "--tree", backend, "-p"]).arg(&pid_file).arg("true"));
        assert!(third.status.success(), "--tree {backend}: {}", stderr_of(&third));
        if let Some(home) = &old_home {
            assert!(!home.exists(), "--tree {backend}: the empty leftover {} was not removed", home.display());
        }
        assert!(!pid_file.exists());
        println!(
            "dmon killed: --tree {backend}: {} processes of the old tree kept running and were left alone; {}",
            orphans.len(),
            match (old_home.is_some(), warned.contains("cannot be removed")) {
                (false, _) => "no cgroup to leave behind",
                (true, true) => "the busy leftover was named in a warning, and the next dmon removed it once empty",
                (true, false) => "the next dmon removed the leftover once empty",
            }
        );
    }
}

/// The signal fallback finds a setsid'd orphan only because dmon is the child
/// subreaper: when the kernel refuses PR_SET_CHILD_SUBREAPER (strace makes the
/// call fail here), dmon says so instead of going on blind.
#[test]
fn a_refused_subreaper_is_said() {
    let out = Command::new("strace")
        .args(["-o", "/dev/null", "-e", "trace=prctl", "-e", "inject=prctl:error=EINVAL", DMON, "-n", "-1", "true"])
        .env_remove("DMON_OPTIONS")
        .env_remove("DMON_LOG")
        .stdin(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(out) if !stderr_of(&out).starts_with("strace:") => out,
        Ok(out) => return common::skip(&format!("strace cannot trace here: {}", stderr_of(&out).trim())),
        Err(e) => return common::skip(&format!("cannot run strace: {e}")),
    };
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("dmon: warning: cannot become the child subreaper"), "{stderr}");
}

/// The command starts with no signal blocked and SIGPIPE at its default, though
/// dmon blocks the signals its signalfd reads and Rust ignores SIGPIPE. Other
/// ignored signals are the caller's, passed on as a shell would: the command
/// ignores what the same program started directly ignores.
#[test]
fn the_command_starts_with_no_signal_blocked_and_sigpipe_default() {
    let masks = |command: &mut Command| {
        let out = run(command.args(["grep", "^Sig[BI]", "/proc/self/status"]));
        assert_eq!(stderr_of(&out), "");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mask = |name: &str| {
            let hex = text.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("no {name} in {text}"));
            u64::from_str_radix(hex.trim(), 16).unwrap()
        };
        (mask("SigBlk:"), mask("SigIgn:"))
    };
    let (blocked, ignored) = masks(dmon_cmd().args(["-n", "-1"]));
    let (_, ignored_directly) = masks(Command::new("env").stdin(std::process::Stdio::null()));
    assert_eq!(blocked, 0, "blocked: {blocked:x}");
    assert_eq!(ignored & 1 << (libc::SIGPIPE - 1), 0, "SIGPIPE is ignored: {ignored:x}");
    assert_eq!(ignored, ignored_directly, "ignored: {ignored:x}, when started directly: {ignored_directly:x}");
}

/// In the foreground of a terminal the command becomes the terminal's foreground
/// process group (so Ctrl-C reaches it) without being stopped by SIGTTOU for
/// taking it from the background.
#[test]
fn the_command_gets_the_terminal_in_the_foreground() {
    let dir = Dir::new("tty");
    let out_file = dir.path("stat");
    // Fields 5 and 8 of stat(5): the process group and the terminal's foreground group.
    let line = format!(
        "{DMON} -n -1 sh -c 'read -r _ _ _ _ pgrp _ _ tpgid _ < /proc/self/stat; echo $pgrp $tpgid > {}'",
        out_file.display()
    );
    let child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("DMON_OPTIONS")
        .env_remove("DMON_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => return common::skip(&format!("cannot run script: {e}")),
    };
    assert!(finish(child, Duration::from_secs(20)).success(), "the command did not finish: stopped?");
    let text = read(&out_file);
    let groups: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(groups.len(), 2, "{text:?}");
    assert_eq!(groups[0], groups[1], "the command is not the terminal's foreground group");
}
