//! Trust at the edges: the log pipe at the very end, errors after detaching, a
//! command that cannot be started, limits that cannot be applied, the terminal,
//! and many dmons starting at once. Each test drives the built binary with real
//! processes and files, and is named after the behaviour it pins.

mod common;

#[path = "reliability/support.rs"]
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::skip;
use support::*;

/// `1..=n`, one number a line.
fn numbers(n: usize) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

/// Fails with the first difference when `path` does not hold exactly `1..=n`.
fn assert_numbers(path: &Path, n: usize) {
    let got = read(path);
    if got != numbers(n) {
        let lines: Vec<&str> = got.lines().collect();
        let first_bad = lines.iter().enumerate().find(|(i, l)| **l != (i + 1).to_string()).map(|(i, _)| i + 1);
        panic!("{} lines arrived, expected {n}; first difference at line {first_bad:?}", lines.len());
    }
}

fn script(dir: &Dir, name: &str, text: &str) -> String {
    let path = dir.path(name);
    fs::write(&path, format!("#!/bin/sh\n{text}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_string()
}

/// Kills the current logger `times` times, each once it has been started again,
/// so that it ends up waiting out a long restart back-off. Returns its last pid.
fn kill_logger_into_backoff(status: &Path, times: usize) -> i32 {
    let mut last = 0;
    for _ in 0..times {
        assert!(
            wait_until(Duration::from_secs(30), || started(status, "log").last().is_some_and(|p| *p != last)),
            "the logger was not started again"
        );
        last = *started(status, "log").last().unwrap();
        signal(last, libc::SIGKILL);
        assert!(wait_until(Duration::from_secs(10), || lines(status)
            .iter()
            .any(|l| l.starts_with(&format!("log exit {last} ")))));
    }
    last
}

/// The command writes 90,000 lines, the logger is killed until it waits seconds
/// for its next start, and the command writes its last 10,000 lines (a pipe's
/// worth) and exits under -1 while the logger waits: the logger is started to
/// read them, and every line arrives once, in order.
#[test]
fn a_logger_in_backoff_when_the_command_ends_still_gets_the_rest() {
    let dir = Dir::new("backoff-end");
    let (status, out, go) = (dir.path("status"), dir.path("out"), dir.path("GO"));
    let writer = format!("seq 1 90000; while [ ! -e {go} ]; do sleep 0.02; done; seq 90001 100000", go = go.display());
    let stderr = fs::File::create(dir.path("stderr")).unwrap();
    let child = dmon_cmd()
        .args(["-n", "-1", "--backoff-max", "8", "-I"])
        .arg(&status)
        .args(["sh", "-c", &writer, "--", support::DLOG, "-b"])
        .arg(&out)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let _stopper = Stopper::of(&child);
    assert!(
        wait_until(Duration::from_secs(30), || read(&out).ends_with("\n90000\n")),
        "the first lines did not arrive"
    );
    // 0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2 s: the seventh kill leaves a 3.2 s wait.
    let last = kill_logger_into_backoff(&status, 7);
    fs::write(&go, "").unwrap();
    let code = finish(child, Duration::from_secs(60));
    let stderr = read(&dir.path("stderr"));
    assert_eq!(code.code(), Some(0), "{stderr}");
    let events = lines(&status);
    let cmd_exit = events.iter().position(|l| l.starts_with("cmd exit")).expect("cmd exit");
    let last_exit = events.iter().position(|l| l.starts_with(&format!("log exit {last} "))).unwrap();
    let next_start = events.iter().skip(last_exit).position(|l| l.starts_with("log start")).map(|i| i + last_exit);
    assert!(
        next_start.is_some_and(|start| start > cmd_exit),
        "the command did not end while the logger waited to restart: {events:?}"
    );
    assert_numbers(&out, 100_000);
}

/// A logger that fails its first starts (its configuration not there yet) and
/// waits out its back-off when the command exits: dmon keeps trying within the
/// grace period, and once the logger can run, it logs everything.
#[test]
fn a_logger_that_fails_its_first_starts_still_gets_the_output() {
    let dir = Dir::new("failing-logger");
    let (status, out, fail, go) = (dir.path("status"), dir.path("out"), dir.path("FAIL"), dir.path("GO"));
    fs::write(&fail, "").unwrap();
    let logger =
        script(&dir, "logger", &format!("[ -e {} ] && exit 1\nexec {} -b {}", fail.display(), DLOG, out.display()));
    let writer = format!("seq 1 10000; while [ ! -e {} ]; do sleep 0.01; done", go.display());
    let stderr = fs::File::create(dir.path("stderr")).unwrap();
    let child = dmon_cmd()
        .args(["-n", "-1", "--grace", "5", "--backoff-max", "8", "-I"])
        .arg(&status)
        .args(["sh", "-c", &writer, "--", &logger])
        .stderr(stderr)
        .spawn()
        .unwrap();
    let _stopper = Stopper::of(&child);
    // Five failures: the next start is 0.8 s away when the command exits.
    let failures = || lines(&status).iter().filter(|l| l.starts_with("log exit")).count();
    assert!(wait_until(Duration::from_secs(30), || failures() >= 5), "the logger did not fail as planned");
    fs::write(&go, "").unwrap();
    assert!(wait_until(Duration::from_secs(30), || lines(&status).iter().any(|l| l.starts_with("cmd exit"))));
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(child.id() as i32), "dmon ended with the output still in the pipe");
    fs::remove_file(&fail).unwrap();
    let code = finish(child, Duration::from_secs(30));
    assert_eq!(code.code(), Some(0), "{}", read(&dir.path("stderr")));
    assert_numbers(&out, 10_000);
}

/// A logger that can never start: dmon gives up after the grace period and says
/// how much output was left unlogged, instead of hanging.
#[test]
fn a_logger_that_never_starts_is_given_up_with_a_warning() {
    let dir = Dir::new("dead-logger");
    let logger = script(&dir, "logger", "exit 1");
    let out = dmon_cmd()
        .args(["-n", "-1", "--grace", "1", "seq", "1", "1000", "--", &logger])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish_output(out, Duration::from_secs(30));
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "3893 bytes of the command's output were left unlogged: the log command made no progress for 1 s"
        ),
        "{stderr}"
    );
}

/// The same as a daemon stopped by TERM: the logger waits out its back-off when
/// dmon is told to stop; dmon still starts it to drain the pipe before exiting.
#[test]
fn a_daemon_stopped_while_its_logger_is_in_backoff_logs_everything() {
    let dir = Dir::new("backoff-daemon");
    let (status, out, go, wrote, pid_file) =
        (dir.path("status"), dir.path("out"), dir.path("GO"), dir.path("WROTE"), dir.path("pid"));
    let writer = format!(
        "seq 1 90000; while [ ! -e {go} ]; do sleep 0.02; done; seq 90001 100000; touch {wrote}; exec sleep 600",
        go = go.display(),
        wrote = wrote.display()
    );
    let started_ok = run(dmon_cmd()
        .args(["--backoff-max", "8", "-p"])
        .arg(&pid_file)
        .arg("-I")
        .arg(&status)
        .args(["sh", "-c", &writer, "--", support::DLOG, "-b"])
        .arg(&out));
    assert!(started_ok.status.success(), "{}", stderr_of(&started_ok));
    let dmon: i32 = read(&pid_file).trim().parse().unwrap();
    let _stopper = Stopper::new(dmon);
    assert!(
        wait_until(Duration::from_secs(30), || read(&out).ends_with("\n90000\n")),
        "the first lines did not arrive"
    );
    let last = kill_logger_into_backoff(&status, 7);
    fs::write(&go, "").unwrap();
    assert!(wait_until(Duration::from_secs(10), || wrote.exists()));
    signal(dmon, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(60), || !alive(dmon)), "dmon did not stop");
    let events = lines(&status);
    let last_exit = events.iter().position(|l| l.starts_with(&format!("log exit {last} "))).unwrap();
    let stop = events.iter().position(|l| l.starts_with("cmd stop")).expect("cmd stop");
    assert!(
        !events[last_exit..stop].iter().any(|l| l.starts_with("log start")),
        "the stop did not come while the logger waited: {events:?}"
    );
    assert_numbers(&out, 100_000);
}

/// A draining logger that is slow (it works a second on each read, as on a slow
/// disk) is not stopped for want of progress: working is progress.
#[test]
fn a_slow_draining_logger_is_not_stopped() {
    let dir = Dir::new("slow-logger");
    let out = dir.path("out");
    let logger = format!(
        "import os, time\nout = open({:?}, 'ab')\nwhile True:\n    data = os.read(0, 65536)\n    if not data:\n        \
         break\n    out.write(data)\n    out.flush()\n    t = time.time()\n    while time.time() - t < 1.0:\n        pass\n",
        out.to_str().unwrap()
    );
    let child = dmon_cmd()
        .args(["-n", "-1", "--grace", "0.3", "seq", "1", "30000", "--", common::python(), "-c", &logger])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = finish_output(child, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_numbers(&out, 30_000);
}

/// Errors found after dmon has detached reach the shell that started it, with
/// the same line and exit code as in -n, and leave no pid file.
#[test]
fn errors_after_detaching_reach_the_caller() {
    if let Err(why) = backend_available("cgroup2") {
        return skip(&why);
    }
    let dir = Dir::new("detach-errors");
    let pid_file = dir.path("pid");
    let cases: [(&[&str], &str); 2] = [
        (&["--cgroup-parent", "/tmp"], "--cgroup-parent"),
        (&["--tree", "freezer", "--cgroup-parent", "/sys/fs/cgroup/unified"], "--tree freezer"),
    ];
    for (args, named) in cases {
        let mut daemon = dmon_cmd();
        daemon.arg("-p").arg(&pid_file).args(args).args(["sleep", "600"]);
        let out = finish_output(daemon.stderr(Stdio::piped()).spawn().unwrap(), Duration::from_secs(20));
        let mut foreground = dmon_cmd();
        foreground.arg("-n").args(args).args(["sleep", "600"]);
        let fg = finish_output(foreground.stderr(Stdio::piped()).spawn().unwrap(), Duration::from_secs(20));
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "daemon {args:?}: {stderr}");
        assert_eq!(fg.status.code(), Some(2), "-n {args:?}: {}", stderr_of(&fg));
        assert_eq!(stderr, stderr_of(&fg), "the daemon's message differs from -n's");
        assert!(stderr.starts_with("dmon: ") && stderr.contains(named) && stderr.lines().count() == 1, "{stderr}");
        assert!(!pid_file.exists(), "a pid file was left behind");
    }
}

/// `dmon -n /nonexistent/cmd`: a typo ends dmon at once with one line and 127
/// (126 for a file that is not executable), in -n and daemon mode, and with a
/// log command nothing is left running.
#[test]
fn a_command_that_cannot_be_executed_at_its_first_start_fails_at_once() {
    let dir = Dir::new("no-such-command");
    let plain = dir.path("plain");
    fs::write(&plain, "echo hi\n").unwrap();
    let marker = format!("no-such-command-{}", std::process::id());
    let logger = script(&dir, "logger", &format!("exec cat > /dev/null # {marker}"));
    for (command, code) in [("/nonexistent/cmd", 127), (plain.to_str().unwrap(), 126)] {
        for daemon in [false, true] {
            let mut dmon = dmon_cmd();
            if !daemon {
                dmon.arg("-n");
            }
            dmon.args([command, "--", &logger]).stderr(Stdio::piped());
            let out = finish_output(dmon.spawn().unwrap(), Duration::from_secs(20));
            let stderr = stderr_of(&out);
            assert_eq!(out.status.code(), Some(code), "{command} (daemon {daemon}): {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(&format!("cannot execute '{command}'")), "{stderr}");
        }
    }
    // A log command that cannot be executed is the same mistake.
    let out = run(dmon_cmd().args(["-n", "true", "--", "/nonexistent/logger"]));
    assert_eq!(out.status.code(), Some(127), "{}", stderr_of(&out));
    assert!(wait_until(Duration::from_secs(5), || with_marker(&marker).is_empty()), "a logger was left running");
}

/// A command that disappears after it ran once (an upgrade) is retried.
#[test]
fn a_command_that_disappears_later_is_retried() {
    let dir = Dir::new("vanishing-command");
    let status = dir.path("status");
    let bin = dir.path("job");
    let job = script(&dir, "job", "exit 1");
    let child = dmon_cmd().args(["-n", "-I"]).arg(&status).arg(&job).stderr(Stdio::piped()).spawn().unwrap();
    let dmon = child.id() as i32;
    let _stopper = Stopper::new(dmon);
    assert!(wait_until(Duration::from_secs(10), || !started(&status, "cmd").is_empty()));
    fs::remove_file(&bin).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(dmon), "dmon gave up on a command that ran before");
    script(&dir, "job", "exec sleep 600");
    let before = started(&status, "cmd").len();
    assert!(wait_until(Duration::from_secs(30), || started(&status, "cmd").len() > before), "not started again");
    signal(dmon, libc::SIGTERM);
    let out = finish_output(child, Duration::from_secs(20));
    let stderr = stderr_of(&out);
    assert_eq!(stderr.matches("cannot execute").count(), 1, "{stderr}");
}

/// Limits that cannot be applied are usage errors before anything starts.
#[test]
fn limits_that_cannot_be_applied_are_usage_errors() {
    let dir = Dir::new("bad-limits");
    let marker = dir.path("started");
    let touch = format!("touch {}", marker.display());
    for (limit, says) in
        [("files=99999999999", "files=99999999999 is above"), ("cpu=0.9", "not a whole number of seconds")]
    {
        let dmon = dmon_cmd().args(["-n", "-1", "-r", limit, "sh", "-c", &touch]).stderr(Stdio::piped()).spawn();
        let out = finish_output(dmon.unwrap(), Duration::from_secs(20));
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "-r {limit}: {stderr}");
        assert!(stderr.starts_with("dmon: -r") && stderr.contains(says) && stderr.lines().count() == 1, "{stderr}");
        assert!(!marker.exists(), "-r {limit}: the command was started");
    }
}

/// `dmon -n -1 cat < fifo`: standard input on a FIFO with no writer yet does not
/// keep dmon from starting the command.
#[test]
fn standard_input_on_a_fifo_does_not_block_the_start() {
    let dir = Dir::new("stdin-fifo");
    let (fifo, status) = (dir.path("fifo"), dir.path("status"));
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // Opened without blocking and without a writer: reading it would wait.
    let reader = fs::OpenOptions::new().read(true).custom_flags_nonblock().open(&fifo).unwrap();
    let child = Command::new(DMON)
        .args(["-n", "-1", "-I"])
        .arg(&status)
        .args(["true"])
        .stdin(reader)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dmon = child.id() as i32;
    let started_in_time = wait_until(Duration::from_secs(10), || !started(&status, "cmd").is_empty());
    if !started_in_time {
        signal(dmon, libc::SIGKILL);
    }
    let out = finish_output(child, Duration::from_secs(20));
    assert!(started_in_time, "the command was not started: {}", stderr_of(&out));
    assert_eq!(out.status.code(), Some(0));
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}

/// `dmon -n cmd &` in an interactive shell: the shell keeps its terminal.
#[test]
fn dmon_in_the_background_leaves_the_terminal_to_the_shell() {
    if Command::new("tmux").arg("-V").output().is_err() {
        return skip("tmux is not installed");
    }
    let dir = Dir::new("background");
    let pid_out = dir.path("shell-pid");
    let session = format!("dmon-bg-{}", std::process::id());
    let ok = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "80", "-y", "20", "bash", "--norc", "--noprofile", "-i"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "tmux did not start");
    let _session = TmuxSession(session.clone());
    let send = |text: &str| {
        Command::new("tmux").args(["send-keys", "-t", &session, "-l", text]).status().unwrap();
        Command::new("tmux").args(["send-keys", "-t", &session, "Enter"]).status().unwrap();
    };
    let status = dir.path("status");
    send(&format!("echo $$ > {}; {DMON} -n -I {} sleep 600 &", pid_out.display(), status.display()));
    assert!(wait_until(Duration::from_secs(10), || !started(&status, "cmd").is_empty()), "dmon did not start");
    let shell: i32 = read(&pid_out).trim().parse().unwrap();
    let cmd = started(&status, "cmd")[0];
    let dmon = ppid(cmd).unwrap();
    let _stopper = Stopper::new(dmon);
    // Field 8 of stat(5): the terminal's foreground process group.
    let tpgid = |pid: i32| -> i32 {
        let stat = read(Path::new(&format!("/proc/{pid}/stat")));
        stat.rsplit_once(')').unwrap().1.split_whitespace().nth(5).unwrap().parse().unwrap()
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tpgid(shell), shell, "the shell lost its terminal to the command");
    signal(dmon, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(20), || !alive(dmon)));
}

struct TmuxSession(String);

impl Drop for TmuxSession {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).stderr(Stdio::null()).status();
    }
}

/// Where no cgroup can be written, dmon says that it falls back to signals,
/// without -v.
#[test]
fn the_fall_back_to_signals_is_said_without_verbose() {
    let out = run(Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", DMON, "-n", "-1", "true"])
        .env_remove("DMON_OPTIONS")
        .env_remove("DMON_LOG")
        .current_dir("/"));
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("controlling the tree with signals"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A pid file that cannot be written (a full disk) fails the start before the
/// command is started, in daemon mode.
#[test]
fn a_pid_file_that_cannot_be_written_starts_nothing() {
    let disk = match Tmpfs::mount("full-pid", "64k") {
        Ok(disk) => disk,
        Err(why) => return skip(&why),
    };
    let pid_file = disk.path("dmon.pid");
    fs::write(&pid_file, "").unwrap();
    let filler = disk.path("filler");
    let _ =
        Command::new("dd").arg("if=/dev/zero").arg(format!("of={}", filler.display())).stderr(Stdio::null()).status();
    let marker = format!("pid-file-full-{}", std::process::id());
    for _ in 0..10 {
        let out = run(dmon_cmd().arg("-p").arg(&pid_file).args(["sh", "-c", &format!("exec sleep 600 # {marker}")]));
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("-p/--pid-file: cannot write"), "{stderr}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let left = with_marker(&marker);
    for pid in &left {
        signal(*pid, libc::SIGKILL);
    }
    assert!(left.is_empty(), "the command ran although the pid file could not be written: {left:?}");
}

/// In the foreground on a terminal, a command that dies of HUP ends dmon (the
/// terminal hung up) unless HUP is forwarded (`-s`): then HUP is the user's
/// signal to the command, and its death is a run that ended, restarted as any.
#[test]
fn a_command_dying_of_hup_ends_dmon_only_when_hup_is_not_forwarded() {
    let dir = Dir::new("hup-death");
    for (forward, starts) in [(false, 1), (true, 2)] {
        let status = dir.path(if forward { "forwarded" } else { "plain" });
        let mut line = format!("{} -n -m 1 --backoff-max 0 -I {}", common::DMON, status.display());
        if forward {
            line.push_str(" -s");
        }
        line.push_str(" sh -c 'kill -HUP $$'");
        // script(1) gives dmon a terminal whose foreground job it is.
        let out = Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
        let got = read(&status).lines().filter(|l| l.starts_with("cmd start ")).count();
        assert_eq!(got, starts, "forwarded {forward}: {}{}", read(&status), String::from_utf8_lossy(&out.stdout));
    }
}

/// Forty dmons started at once under one parent cgroup each get a cgroup of
/// their own: a starting dmon removes the `dmon.*` directories nobody holds
/// locked, and another's, made an instant before its lock, is one of them; the
/// one that loses its directory makes it again.
#[test]
fn dmons_started_at_once_each_get_their_cgroup() {
    if !common::is_root() || !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        return skip("needs root and the hybrid layout's cgroup2 at /sys/fs/cgroup/unified");
    }
    let parent = Path::new("/sys/fs/cgroup/unified").join(format!("dmon-test-at-once-{}", std::process::id()));
    fs::create_dir(&parent).unwrap();
    let children: Vec<_> = (0..40)
        .map(|_| {
            common::dmon()
                .args(["-n", "-m", "0", "--tree", "cgroup2", "--cgroup-parent"])
                .arg(&parent)
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let failed: Vec<String> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .filter(|out| !out.status.success() || !out.stderr.is_empty())
        .map(|out| format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)))
        .collect();
    let _ = fs::remove_dir(&parent);
    assert!(failed.is_empty(), "{} of 40 failed:\n{}", failed.len(), failed.join("\n"));
}
