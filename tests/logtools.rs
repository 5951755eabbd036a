//! The log tools and denv, run as built binaries against the real kernel: real
//! pipes, signals, files, a tmpfs that fills up, and a syslog socket the test
//! listens on.

mod common;

#[path = "logtools/support.rs"]
mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use support::*;

/// Runs `cmd` with `input` on standard input; returns (status, stdout, stderr).
fn run_with(cmd: &mut Command, input: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn is_dmon_stamp(s: &str) -> bool {
    let pattern = b"dddd-dd-dd/dd:dd:dd";
    s.len() == pattern.len()
        && s.bytes().zip(pattern).all(|(c, &p)| if p == b'd' { c.is_ascii_digit() } else { c == p })
}

fn is_rfc3339_micros(s: &str) -> bool {
    let pattern = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    s.len() == pattern.len()
        && s.bytes().zip(pattern).all(|(c, &p)| if p == b'd' { c.is_ascii_digit() } else { c == p })
}

/// TERM in the middle of a stream: every line before it is in the log exactly
/// once and whole, the rest is still in the pipe, starting at a line boundary.
fn term_mid_stream(tool_name: &str, args: &[&str], logged: impl Fn() -> Vec<String>) {
    const COUNT: usize = 200_000;
    let (r, w) = pipe();
    let mut child = spawn_reading(tool(tool_name).args(args), &r);
    let writer = write_numbered(w, COUNT);
    wait_for("some lines logged", || logged().len() >= 1000);
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    let mut r = r;
    r.read_to_string(&mut rest).unwrap();
    writer.join().unwrap();
    let mut lines = logged();
    let taken = lines.len();
    assert!(taken < COUNT, "TERM came too late to leave anything in the pipe: choose a larger COUNT");
    lines.extend(rest.lines().map(str::to_string));
    assert_numbered(&lines, COUNT);
}

/// The rotated files of a drlog directory, oldest first.
fn rotated(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log-"))
        .collect();
    names.sort();
    names
}

/// Every line in the rotated files (oldest first) then `current`.
fn all_logged(dir: &std::path::Path) -> Vec<String> {
    let mut lines = Vec::new();
    for file in rotated(dir) {
        lines.extend(read_lines(&file));
    }
    lines.extend(read_lines(&dir.join("current")));
    lines
}

#[path = "logtools/denv.rs"]
mod denv;
#[path = "logtools/dlog.rs"]
mod dlog;
#[path = "logtools/drlog.rs"]
mod drlog;
#[path = "logtools/dslog.rs"]
mod dslog;
#[path = "logtools/planted.rs"]
mod planted;
#[path = "logtools/through_dmon.rs"]
mod through_dmon;

// ---------------------------------------------------------------- options

/// The tools' errors are one line as dmon's: clap's own end with where to look,
/// a bad value names the option as `-i/--input-fd`.
#[test]
fn the_tools_errors_read_as_dmons() {
    for name in ["dlog", "drlog", "dslog", "dsyslog"] {
        let (code, _, err) = run_with(tool(name).arg("--bogus"), b"");
        assert_eq!(code, 2, "{name}: {err}");
        assert_eq!(err, format!("{name}: unexpected argument '--bogus' found (see {name} --help)\n"));
    }
    let (code, _, err) = run_with(&mut tool("drlog"), b"");
    assert_eq!(code, 2);
    assert_eq!(err, "drlog: the following required arguments were not provided: <DIR> (see drlog --help)\n");
    let (code, _, err) = run_with(tool("dlog").args(["-i", "x"]), b"");
    assert_eq!(code, 2);
    assert_eq!(err, "dlog: -i/--input-fd: 'x' is not a whole number (expected 0, 1, 2, ...)\n");
    let (code, _, err) = run_with(tool("dlog").env("DLOG_OPTIONS", "-p \"x"), b"");
    assert_eq!(code, 2);
    assert_eq!(err, "dlog: DLOG_OPTIONS: column 4: unterminated quoted string\n");
}

/// dlog and drlog take the same line-format options, checked the same way.
#[test]
fn dlog_and_drlog_share_the_line_format_options() {
    let dir = Dir::new("sharedformat");
    let dlog = tool("dlog");
    let mut drlog = tool("drlog");
    drlog.arg(&dir.0);
    for (name, mut command) in [("dlog", dlog), ("drlog", drlog)] {
        let (code, _, err) = run_with(command.args(["-p", "a\nb"]), b"x\n");
        assert_eq!(code, 2, "{name}: {err}");
        assert_eq!(err, format!("{name}: -p/--prefix: 'a\\nb' contains a newline, which would split every line\n"));
    }
    // -R wins over -t in both.
    let (code, out, _) = run_with(tool("dlog").args(["-t", "-R", "-e", "-p", "P"]), b"x\n\n");
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    let (stamp, rest) = text.trim_end().split_once(' ').unwrap();
    assert!(is_rfc3339_micros(stamp) && rest == "P x", "{text:?}");
    let (code, _, _) = run_with(tool("drlog").args(["-t", "-R", "-e", "-p", "P"]).arg(&dir.0), b"x\n\n");
    assert_eq!(code, 0);
    let lines = read_lines(&dir.path("current"));
    let (stamp, rest) = lines[0].split_once(' ').unwrap();
    assert!(lines.len() == 1 && is_rfc3339_micros(stamp) && rest == "P x", "{lines:?}");
}
