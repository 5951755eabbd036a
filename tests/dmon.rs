//! dmon's command line and supervision, run as the built binary on real commands.
//!
//! Timing is asserted loosely (lower bounds that follow from the design, generous
//! upper bounds for waiting); nothing here depends on the machine being fast.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn man_page_examples() {
    let dir = Dir::new("example");
    // The foreground example, with dlog writing the log file.
    let child = shell(&dir, "exec dmon -n sh -c 'while echo \"Hello World\" ; do sleep 5 ; done' -- dlog logfile")
        .spawn()
        .unwrap();
    let _stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || !lines(&dir.path("logfile")).is_empty()));
    signal(child.id() as i32, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(15)).success());
    assert_eq!(lines(&dir.path("logfile")), ["Hello World"]);

    // The same as a daemon with a pid file, ended with kill $(cat example.pid).
    // A daemon runs its commands in / unless -W says otherwise: -W . keeps
    // DMon's directory, where dlog's relative logfile is.
    let out =
        shell(&dir, "dmon -W . -p example.pid sh -c 'while echo \"Hello dmon\" ; do sleep 5 ; done' -- dlog logfile")
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(wait_until(Duration::from_secs(10), || lines(&dir.path("logfile")).len() == 2));
    let pid: i32 = read(&dir.path("example.pid")).trim().parse().unwrap();
    let _daemon_stopper = Stopper::new(pid);
    assert!(shell(&dir, "kill $(cat example.pid)").status().unwrap().success());
    assert!(wait_until(Duration::from_secs(15), || !alive(pid) && !dir.path("example.pid").exists()));
    assert_eq!(lines(&dir.path("logfile")), ["Hello World", "Hello dmon"]);

    // The backup example: -1 -n with load marks; the job runs once and succeeds.
    // (The load is read from a file here: the real one depends on whatever else
    // the machine runs, and would pause the job.)
    fs::write(dir.path("loadavg"), "0.20 0.20 0.20 1/100 1\n").unwrap();
    let out = shell(&dir, "dmon -1 -n -l 1 -L 3.5 sh -c 'echo backed up > backup'")
        .env("DMON_LOADAVG_FILE", dir.path("loadavg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(read(&dir.path("backup")), "backed up\n");
}

#[test]
fn once_stops_after_success_and_returns_the_status() {
    let out = run(dmon().args(["-n", "-1", "sh", "-c", "exit 0"]));
    assert_eq!(out.status.code(), Some(0));
    // A failing command is restarted until -m's respawns are used up.
    let dir = Dir::new("status");
    let out = run(dmon().args(["-n", "-m", "2", "-I", &dir.s("st"), "--backoff-max", "0.05", "sh", "-c", "exit 3"]));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(started(&dir.path("st"), "cmd").len(), 3);
    // Killed by a signal: 128 + N.
    let out = run(dmon().args(["-n", "-m", "0", "sh", "-c", "kill -9 $$"]));
    assert_eq!(out.status.code(), Some(137));
}

#[test]
fn once_restarts_a_failing_command_until_it_succeeds() {
    let dir = Dir::new("once");
    let counter = dir.s("count");
    let script = format!("echo x >> {counter}; [ $(wc -l < {counter}) -ge 3 ]");
    let out = run(dmon().args(["-n", "-1", "--backoff-max", "0.05", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(lines(&dir.path("count")).len(), 3);
}

#[test]
fn status_lines_for_start_exit_and_stop() {
    let dir = Dir::new("lines");
    let st = dir.path("st");
    let out = run(dmon().args(["-n", "-m", "1", "-I", st.to_str().unwrap(), "sh", "-c", "exit 1", "--", "cat"]));
    assert_eq!(out.status.code(), Some(1));
    let text = lines(&st);
    // DMon's lines; dmon's `cmd usage` line after each exit is tested in tests/status.rs.
    let cmd: Vec<&String> = text.iter().filter(|l| l.starts_with("cmd ") && !l.starts_with("cmd usage ")).collect();
    assert_eq!(cmd.len(), 4, "{text:?}");
    let pid = cmd[0].split(' ').nth(2).unwrap();
    assert_eq!(cmd[1], &format!("cmd exit {pid} 256"));
    // The log command ended by itself at the end of its input.
    let log_pid = started(&st, "log")[0];
    assert!(text.contains(&format!("log exit {log_pid} 0")), "{text:?}");

    // TERM to dmon: `cmd stop PID`, then the command's exit.
    let child = dmon().args(["-n", "-I", st.to_str().unwrap(), "sleep", "60"]).spawn().unwrap();
    let _stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || started(&st, "cmd").len() == 3));
    let pid = started(&st, "cmd")[2];
    signal(child.id() as i32, libc::SIGTERM);
    assert_eq!(finish(child, Duration::from_secs(15)).code(), Some(0));
    let text = lines(&st);
    assert!(text.contains(&format!("cmd stop {pid}")), "{text:?}");
    assert!(text.contains(&format!("cmd exit {pid} {}", libc::SIGTERM)), "{text:?}");
    assert!(!alive(pid));
}

#[test]
fn quick_failures_back_off_but_a_first_failure_restarts_at_once() {
    let dir = Dir::new("backoff");
    // Delays 0, 0.1, 0.2, 0.4 s: at least 0.7 s for five runs.
    let start = Instant::now();
    let out = run(dmon().args(["-n", "-m", "4", "-I", &dir.s("st"), "sh", "-c", "exit 1"]));
    let elapsed = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(started(&dir.path("st"), "cmd").len(), 5);
    assert!(elapsed >= Duration::from_millis(700), "no backoff: {elapsed:?}");
    // --backoff-max caps it (0, 0.05, 0.05, 0.05 s); the cap itself is covered by
    // the task machine's unit tests, here only that it still backs off.
    let start = Instant::now();
    run(dmon().args(["-n", "-m", "4", "--backoff-max", "0.05", "sh", "-c", "exit 1"]));
    assert!(start.elapsed() >= Duration::from_millis(150), "no backoff under the cap");
}

#[test]
fn a_command_that_cannot_be_executed_is_reported_once_and_backs_off() {
    let out = run(dmon().args(["-n", "-m", "3", "/nonexistent/command"]));
    assert_eq!(out.status.code(), Some(127));
    let err = stderr_of(&out);
    assert_eq!(err.matches("cannot execute '/nonexistent/command': No such file or directory").count(), 1, "{err}");
    let dir = Dir::new("noexec");
    fs::write(dir.path("script"), "#!/bin/sh\n").unwrap();
    let out = run(dmon().args(["-n", "-m", "0", &dir.s("script")]));
    assert_eq!(out.status.code(), Some(126));
    assert!(stderr_of(&out).contains("Permission denied"));
}

#[test]
fn interval_waits_after_a_successful_run() {
    let dir = Dir::new("interval");
    let start = Instant::now();
    let out = run(dmon().args(["-n", "-m", "2", "-i", "0.5", "-I", &dir.s("st"), "true"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(started(&dir.path("st"), "cmd").len(), 3);
    assert!(start.elapsed() >= Duration::from_secs(1), "{:?}", start.elapsed());
}

#[test]
fn timeout_stops_the_run_and_starts_again() {
    let dir = Dir::new("timeout");
    let st = dir.path("st");
    let out =
        run(dmon().args(["-n", "-m", "1", "-t", "0.3", "--grace", "0.2", "-I", st.to_str().unwrap(), "sleep", "60"]));
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM));
    let pids = started(&st, "cmd");
    assert_eq!(pids.len(), 2);
    let text = lines(&st);
    for pid in pids {
        assert!(text.contains(&format!("cmd timeout {pid}")), "{text:?}");
        assert!(!alive(pid));
    }
}

#[test]
fn timeout_kills_a_command_that_ignores_term_after_the_grace_period() {
    let dir = Dir::new("grace");
    let st = dir.path("st");
    let out = run(dmon().args(["-n", "-m", "0", "-t", "0.2", "--grace", "0.3", "-I", st.to_str().unwrap()]).args([
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.05; done",
    ]));
    assert_eq!(out.status.code(), Some(128 + libc::SIGKILL), "{}", stderr_of(&out));
}

#[test]
fn forwarded_signals_reach_the_command_only_with_s() {
    let dir = Dir::new("forward");
    let st = dir.path("st");
    let got = dir.s("got");
    let script = format!("trap 'echo usr1 >> {got}' USR1; echo ready > {got}.ready; while :; do sleep 0.05; done");
    let child = dmon().args(["-n", "-s", "-I", st.to_str().unwrap(), "sh", "-c", &script]).spawn().unwrap();
    let _stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || dir.path("got.ready").exists() && !started(&st, "cmd").is_empty()));
    let pid = started(&st, "cmd")[0];
    signal(child.id() as i32, libc::SIGUSR1);
    assert!(wait_until(Duration::from_secs(10), || read(&dir.path("got")).contains("usr1")));
    assert!(lines(&st).contains(&format!("cmd signal {pid} {}", libc::SIGUSR1)));
    signal(child.id() as i32, libc::SIGTERM);
    finish(child, Duration::from_secs(15));

    // Without -s the signal is ignored: neither dmon nor the command reacts.
    let _ = fs::remove_file(dir.path("got.ready"));
    let mut child = dmon().args(["-n", "sh", "-c", &script]).spawn().unwrap();
    let _stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || dir.path("got.ready").exists()));
    let before = read(&dir.path("got"));
    signal(child.id() as i32, libc::SIGUSR1);
    signal(child.id() as i32, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "dmon died of an ignored signal");
    assert_eq!(read(&dir.path("got")), before);
    signal(child.id() as i32, libc::SIGTERM);
    finish(child, Duration::from_secs(15));
}

#[test]
fn load_above_the_mark_pauses_and_below_resumes() {
    let dir = Dir::new("load");
    let st = dir.path("st");
    let load = dir.path("loadavg");
    fs::write(&load, "0.10 0.10 0.10 1/100 1\n").unwrap();
    let counter = dir.s("ticks");
    let script = format!("while :; do echo t >> {counter}; sleep 0.05; done");
    let child = dmon()
        .env("DMON_LOADAVG_FILE", &load)
        .args(["-n", "-L", "2", "-l", "1", "-I", st.to_str().unwrap(), "sh", "-c", &script])
        .spawn()
        .unwrap();
    let _stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || !started(&st, "cmd").is_empty()));
    let pid = started(&st, "cmd")[0];
    fs::write(&load, "5.00 1.00 1.00 1/100 1\n").unwrap();
    assert!(wait_until(Duration::from_secs(10), || lines(&st).contains(&format!("cmd pause {pid}"))));
    std::thread::sleep(Duration::from_millis(300));
    let paused = lines(&dir.path("ticks")).len();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(lines(&dir.path("ticks")).len(), paused, "the command ran while paused");
    // Between the marks nothing changes; below -l it resumes.
    fs::write(&load, "1.50 1.00 1.00 1/100 1\n").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert!(!lines(&st).contains(&format!("cmd resume {pid}")));
    fs::write(&load, "0.50 1.00 1.00 1/100 1\n").unwrap();
    assert!(wait_until(Duration::from_secs(10), || lines(&st).contains(&format!("cmd resume {pid}"))));
    assert!(wait_until(Duration::from_secs(10), || lines(&dir.path("ticks")).len() > paused + 2));
    // A second after a resume dmon unmaps the code it ran; the next cycle runs it again.
    std::thread::sleep(Duration::from_millis(1500));
    fs::write(&load, "5.00 1.00 1.00 1/100 1\n").unwrap();
    let pauses = || lines(&st).iter().filter(|l| **l == format!("cmd pause {pid}")).count();
    assert!(wait_until(Duration::from_secs(10), || pauses() == 2), "{:?}", lines(&st));
    fs::write(&load, "0.50 1.00 1.00 1/100 1\n").unwrap();
    let resumes = || lines(&st).iter().filter(|l| **l == format!("cmd resume {pid}")).count();
    assert!(wait_until(Duration::from_secs(10), || resumes() == 2), "{:?}", lines(&st));
    let resumed = lines(&dir.path("ticks")).len();
    assert!(wait_until(Duration::from_secs(10), || lines(&dir.path("ticks")).len() > resumed + 2));
    signal(child.id() as i32, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(15)).success());
}

#[test]
fn environ_work_dir_and_limits_reach_the_command() {
    let dir = Dir::new("env");
    let script = "echo \"$FOO|${DMON_TEST_GONE-unset}|$(pwd)|$(ulimit -n)\"";
    let out = run(dmon()
        .env("DMON_TEST_GONE", "here")
        .args(["-n", "-1", "-E", "FOO=bar baz", "-E", "DMON_TEST_GONE", "-W", &dir.s(""), "-r", "files=64"])
        .args(["sh", "-c", script]));
    let text = String::from_utf8_lossy(&out.stdout);
    let cwd = fs::canonicalize(&dir.0).unwrap();
    assert_eq!(text.trim(), format!("bar baz|unset|{}|64", cwd.display()));
}

#[test]
fn stderr_goes_to_the_log_only_with_e() {
    let dir = Dir::new("stderr");
    let log = format!("exec cat > {}", dir.s("log"));
    let out = run(dmon().args(["-n", "-1", "sh", "-c", "echo out; echo err >&2", "--", "sh", "-c", &log]));
    assert_eq!(read(&dir.path("log")), "out\n");
    assert_eq!(stderr_of(&out), "err\n");
    let log = format!("exec cat > {}", dir.s("log2"));
    let out = run(dmon().args(["-n", "-1", "-e", "sh", "-c", "echo out; echo err >&2", "--", "sh", "-c", &log]));
    assert_eq!(read(&dir.path("log2")), "out\nerr\n");
    assert_eq!(stderr_of(&out), "");
}

#[test]
fn status_lines_go_to_dmons_own_stdout_or_stderr_and_to_character_devices() {
    for (path, stdout) in [("/dev/stdout", true), ("/dev/stderr", false), ("/dev/fd/1", true)] {
        let out = run(dmon().args(["-n", "-1", "-I", path, "true"]));
        let written = String::from_utf8_lossy(if stdout { &out.stdout } else { &out.stderr }).into_owned();
        assert!(out.status.success(), "-I {path}: {}", stderr_of(&out));
        assert!(written.contains("cmd start ") && written.contains(" 0\n"), "-I {path}: {written:?}");
    }
    let out = run(dmon().args(["-n", "-1", "-I", "/dev/null", "true"]));
    assert!(out.status.success(), "-I /dev/null: {}", stderr_of(&out));
    // A link of one's own to a character device is followed too, where nobody
    // else could have made it (not below /tmp, which everyone can write to).
    let own = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("device-link-{}", std::process::id()));
    fs::create_dir_all(&own).unwrap();
    let _ = fs::remove_file(own.join("null"));
    std::os::unix::fs::symlink("/dev/null", own.join("null")).unwrap();
    let out = run(dmon().args(["-n", "-1", "-I"]).arg(own.join("null")).arg("true"));
    let _ = fs::remove_dir_all(&own);
    assert!(out.status.success(), "-I a link to /dev/null: {}", stderr_of(&out));
    let dir = Dir::new("device-link");
    // One that someone else planted in a directory others can write to is not.
    let shared = dir.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let planted = shared.join("status");
    std::os::unix::fs::symlink("/dev/null", &planted).unwrap();
    std::os::unix::fs::lchown(&planted, Some(65534), Some(65534)).unwrap();
    let out = run(dmon().args(["-n", "-1", "-I"]).arg(&planted).arg("true"));
    assert_eq!(out.status.code(), Some(2), "a planted link: {}", stderr_of(&out));
    assert!(stderr_of(&out).starts_with(&format!("dmon: -I/--write-info: cannot open '{}': ", planted.display())));
}

#[test]
fn debug_lines_are_words_not_rust_structures() {
    let out = run(dmon().args(["-n", "-1", "-vv", "true"]));
    let err = stderr_of(&out);
    let debug: Vec<&str> = err.lines().filter(|l| l.starts_with("dmon: debug: ")).collect();
    assert!(debug.contains(&"dmon: debug: cmd: start"), "{err}");
    assert!(debug.iter().any(|l| l.starts_with("dmon: debug: cmd: report exit ")), "{err}");
    for line in debug {
        assert!(!line.contains(['{', '(', '}']), "{line}");
    }
}

#[test]
fn daemon_mode_returns_at_once_with_a_valid_pid_file() {
    let dir = Dir::new("daemon");
    let pid_file = dir.path("dmon.pid");
    let st = dir.path("st");
    let out = run(dmon().args(["-p", pid_file.to_str().unwrap(), "-I", st.to_str().unwrap(), "sleep", "600"]));
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The shell got its prompt back while the command still runs.
    let pid: i32 = read(&pid_file).trim().parse().expect("a pid in the pid file");
    let _stopper = Stopper::new(pid);
    assert!(alive(pid));
    assert!(fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap().starts_with(DMON));
    assert!(wait_until(Duration::from_secs(10), || !started(&st, "cmd").is_empty()));
    let command = started(&st, "cmd")[0];
    assert!(alive(command));
    // A detached dmon has its own session and no terminal streams.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    assert_eq!(fields[3], pid.to_string(), "dmon is not a session leader");
    assert_eq!(fs::read_link(format!("/proc/{pid}/fd/1")).unwrap(), Path::new("/dev/null"));

    // A second dmon with the same pid file refuses to start.
    let out = run(dmon().args(["-n", "-p", pid_file.to_str().unwrap(), "true"]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_of(&out),
        format!("dmon: -p/--pid-file: '{}' is locked by a running dmon (pid {pid})\n", pid_file.display())
    );
    assert_eq!(read(&pid_file).trim(), pid.to_string());

    signal(pid, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(15), || !alive(pid) && !alive(command)));
    assert!(wait_until(Duration::from_secs(5), || !pid_file.exists()), "the pid file was not removed");
}

#[test]
fn shutdown_lets_the_log_command_read_everything_first() {
    let dir = Dir::new("drain");
    let log = dir.s("log");
    // The command writes 20000 lines at once and then waits; the log command is
    // slow to start reading. TERM arrives while most output is still in the pipe.
    let script = "seq 1 20000; echo done-writing >&2; sleep 600";
    let logger = format!("sleep 0.5; exec cat > {log}");
    let mut child =
        dmon().args(["-n", "sh", "-c", script, "--", "sh", "-c", &logger]).stderr(Stdio::piped()).spawn().unwrap();
    let _stopper = Stopper::of(&child);
    let mut err = child.stderr.take().unwrap();
    let mut buffer = [0u8; 64];
    let n = err.read(&mut buffer).unwrap();
    assert_eq!(&buffer[..n], b"done-writing\n");
    signal(child.id() as i32, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(20)).success());
    let got = lines(&dir.path("log"));
    assert_eq!(got.len(), 20000);
    assert_eq!(got.last().map(String::as_str), Some("20000"));
}

/// A logger that appends what it reads to a file and, on TERM, writes what it has
/// read before exiting: the pipe keeps the rest for the next one.
const LOGGER: &str = r#"
import os, signal, sys
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
out = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
while not stop:
    data = os.read(0, 65536)
    if not data:
        break
    while data:
        data = data[os.write(out, data):]
"#;

/// Runs a writer of `total` numbered lines through dmon into a logger (the one
/// above, or dlog with `dlog`) that is killed with `sig` `kills` times; returns
/// the lines that arrived.
fn numbered_lines_through_a_killed_logger(dlog: bool, sig: i32, total: usize, kills: usize) -> Vec<String> {
    let dir = Dir::new("lossless");
    let out = dir.s("out");
    let st = dir.path("st");
    fs::write(dir.path("logger.py"), LOGGER).unwrap();
    let logger = match dlog {
        true => vec![env!("CARGO_BIN_EXE_dlog").to_string(), out.clone()],
        false => vec![common::python().to_string(), dir.s("logger.py"), out.clone()],
    };
    // The writer paces itself a little so that the logger is killed mid-stream.
    let writer = format!("i=1; while [ $i -le {total} ]; do seq $i $((i+999)); i=$((i+1000)); sleep 0.02; done");
    let mut child = dmon()
        .args(["-n", "-1", "--backoff-max", "0.01", "-I", st.to_str().unwrap(), "sh", "-c", &writer, "--"])
        .args(&logger)
        .env_remove("DLOG_OPTIONS")
        .spawn()
        .unwrap();
    let _stopper = Stopper::of(&child);
    let mut killed = 0;
    let mut seen = 0;
    while killed < kills {
        let loggers = started(&st, "log");
        if loggers.len() > seen {
            let pid = *loggers.last().unwrap();
            seen = loggers.len();
            std::thread::sleep(Duration::from_millis(20));
            signal(pid, sig);
            killed += 1;
        } else if child.try_wait().unwrap().is_some() {
            break;
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(killed >= kills / 2, "the writer finished too early to kill the logger: {killed} kills");
    assert!(finish(child, Duration::from_secs(120)).success());
    lines(&dir.path("out"))
}

#[test]
fn no_line_is_lost_when_the_logger_is_stopped_fifty_times() {
    let total = 100_000;
    let got = numbered_lines_through_a_killed_logger(false, libc::SIGTERM, total, 50);
    let expected: Vec<String> = (1..=total).map(|i| i.to_string()).collect();
    assert_eq!(got.len(), total, "lines lost or repeated");
    assert!(got == expected, "lines out of order or mangled");
}

#[test]
fn a_killed_dlog_loses_no_line() {
    let total = 100_000;
    let got = numbered_lines_through_a_killed_logger(true, libc::SIGKILL, total, 50);
    // dlog takes from the pipe only what it has stored: a KILL leaves the rest in
    // dmon's pipe, so nothing is lost; what can repeat is the batch stored and not
    // yet taken, once per kill.
    // (A line the next one starts with is that line's start, where a KILL cut a
    // write short between two pages; the whole line follows.)
    let whole =
        got.iter().enumerate().filter(|(i, l)| got.get(i + 1).is_none_or(|n| n == *l || !n.starts_with(l.as_str())));
    let numbers: Vec<usize> = whole.map(|(_, l)| l.parse().unwrap()).collect();
    let mut seen = vec![false; total + 1];
    numbers.iter().for_each(|&n| seen[n] = true);
    let lost = seen[1..].iter().filter(|&&s| !s).count();
    let repeats = numbers.windows(2).filter(|w| w[1] <= w[0]).count();
    eprintln!(
        "SIGKILL x50: {lost} of {total} lines lost, {} repeated in {repeats} runs",
        numbers.len().saturating_sub(total)
    );
    assert_eq!(lost, 0, "lines lost");
    assert!(repeats <= 50, "{repeats} runs of repeated lines");
}

#[test]
fn an_idle_dmon_does_not_wake_up() {
    let dir = Dir::new("idle");
    let st = dir.path("st");
    let child = dmon().args(["-n", "-I", st.to_str().unwrap(), "sleep", "600", "--", "cat"]).spawn().unwrap();
    let _stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || !started(&st, "cmd").is_empty() && !started(&st, "log").is_empty()));
    let pid = child.id() as i32;
    std::thread::sleep(Duration::from_millis(300));
    let before = common::context_switches(pid);
    std::thread::sleep(Duration::from_secs(2));
    let after = common::context_switches(pid);
    assert_eq!(after, before, "dmon woke up {} times in 2 s with nothing to do", after - before);
    signal(pid, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(15)).success());
}

#[test]
fn cpu_pressure_pauses_the_tree_and_calm_resumes_it() {
    if !Path::new("/proc/pressure/cpu").exists() {
        return common::skip("this kernel has no /proc/pressure/cpu (PSI)");
    }
    // The pressure is the whole machine's: wait for what else ran before (other
    // test binaries, benchmarks) to have calmed down.
    let avg10 = || {
        let text = read(Path::new("/proc/pressure/cpu"));
        text.split_whitespace().find_map(|f| f.strip_prefix("avg10=")?.parse::<f64>().ok()).unwrap_or(100.0)
    };
    assert!(wait_until(Duration::from_secs(180), || avg10() < 40.0), "the machine stays under CPU pressure");
    let dir = Dir::new("pressure");
    let st = dir.path("st");
    let child = dmon().args(["-n", "--pressure", "70:70", "-I", st.to_str().unwrap(), "sleep", "600"]).spawn().unwrap();
    let _stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || !started(&st, "cmd").is_empty()));
    let pid = started(&st, "cmd")[0];
    // Three busy processes per CPU make tasks wait for a CPU most of the time.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut hogs: Vec<Child> =
        (0..cpus * 3).map(|_| Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap()).collect();
    let paused =
        wait_until(Duration::from_secs(20), || lines(&st).contains(&format!("cmd pause {pid} reason=pressure")));
    for hog in &mut hogs {
        let _ = hog.kill();
        let _ = hog.wait();
    }
    assert!(paused, "no pause under CPU pressure: {:?}", lines(&st));
    // avg10 decays below 70% within seconds, and must stay there 6 s. (The marks
    // are high so that the other tests running meanwhile do not keep it paused.)
    assert!(
        wait_until(Duration::from_secs(180), || lines(&st).contains(&format!("cmd resume {pid} reason=pressure"))),
        "no resume once calm: {:?}",
        lines(&st)
    );
    signal(child.id() as i32, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(15)).success());
}

/// Started with its signals ignored (`nohup`, a shell's `trap '' TERM`), dmon
/// still ends on TERM and forwards HUP, and the command gets them too: an
/// ignored signal is dropped before any signalfd could read it, and survives
/// exec into the command.
#[test]
fn signals_ignored_by_whoever_started_dmon_still_work() {
    use std::os::unix::process::CommandExt;
    let dir = Dir::new("nohup");
    let st = dir.path("st");
    let got = dir.s("got");
    let script = format!("trap 'echo hup >> {got}' HUP; echo ready > {got}.ready; while :; do sleep 0.05; done");
    let mut command = dmon();
    command.args(["-n", "-s", "-I", st.to_str().unwrap(), "sh", "-c", &script]);
    // SAFETY: signal takes integers; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    let _stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || dir.path("got.ready").exists() && !started(&st, "cmd").is_empty()));
    signal(child.id() as i32, libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || read(&dir.path("got")).contains("hup")),
        "the command never got HUP"
    );
    signal(child.id() as i32, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(15)).success(), "dmon did not end on TERM");
}

/// The shared objects a process maps, by file name.
fn mapped_libraries(pid: u32) -> Vec<String> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut names: Vec<String> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.contains(".so"))
        .filter_map(|path| Some(Path::new(path).file_name()?.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A supervising dmon loads glibc and nothing else: the unwinder std calls for
/// backtraces is linked from gcc's static libgcc_eh (src/build.rs), so no
/// dmon holds libgcc_s's relocated pages (docs/benchmarks.md, "Memory per
/// service").
#[test]
fn a_supervising_dmon_maps_no_shared_library_but_glibc() {
    let child = dmon().args(["-n", "sleep", "1000"]).spawn().unwrap();
    let stopper = Stopper::of(&child);
    let pid = child.id();
    let children = format!("/proc/{pid}/task/{pid}/children");
    // Supervising: its command has started (and so every library dmon loads is in).
    let supervising = wait_until(Duration::from_secs(10), || {
        let children = fs::read_to_string(&children).unwrap_or_default();
        children
            .split_whitespace()
            .any(|child| fs::read_link(format!("/proc/{child}/exe")).is_ok_and(|exe| exe.ends_with("sleep")))
    });
    let libraries = mapped_libraries(pid);
    signal(pid as i32, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(15)).success());
    drop(stopper);
    assert!(supervising, "dmon did not start its command");
    assert!(libraries.iter().any(|name| name.starts_with("libc.so")), "{libraries:?}");
    let others: Vec<&String> =
        libraries.iter().filter(|name| !name.starts_with("libc.so") && !name.starts_with("ld-linux")).collect();
    assert!(others.is_empty(), "dmon maps {others:?} besides glibc");
}
