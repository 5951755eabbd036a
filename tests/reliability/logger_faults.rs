//! Case 3: the log command killed, missing and stopped loses no line.

use std::fs;
use std::time::Duration;

use crate::common::*;
use crate::support::*;

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
    let child = dmon()
        .args(["-n", "-1", "--grace", "5", "--backoff-max", "0.1", "-I"])
        .arg(&status)
        .args(["sh", "-c", &writer, "--"])
        .arg(&logger)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let dmon = child.id() as i32;
    let _stopper = Stopper::new(dmon);
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
