//! What the command starts with: the signal mask, the terminal, and dmon as
//! child subreaper behind it.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

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
        Ok(out) => return skip(&format!("strace cannot trace here: {}", stderr_of(&out).trim())),
        Err(e) => return skip(&format!("cannot run strace: {e}")),
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
    let (blocked, ignored) = masks(dmon().args(["-n", "-1"]));
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
    let pid_file = dir.path("dmon.pid");
    // Fields 5 and 8 of stat(5): the process group and the terminal's foreground group.
    let line = format!(
        "{DMON} -n -1 -p {} sh -c 'read -r _ _ _ _ pgrp _ _ tpgid _ < /proc/self/stat; echo $pgrp $tpgid > {}'",
        pid_file.display(),
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
        Err(e) => return skip(&format!("cannot run script: {e}")),
    };
    // dmon runs under script: it is known by its pid file.
    let mut dmon_pid = None;
    let written = wait_until(Duration::from_secs(10), || {
        dmon_pid = read(&pid_file).trim().parse().ok();
        dmon_pid.is_some() || out_file.exists()
    });
    let _stopper = dmon_pid.map(Stopper::new);
    assert!(written, "dmon did not start under script");
    assert!(finish(child, Duration::from_secs(20)).success(), "the command did not finish: stopped?");
    let text = read(&out_file);
    let groups: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(groups.len(), 2, "{text:?}");
    assert_eq!(groups[0], groups[1], "the command is not the terminal's foreground group");
}
