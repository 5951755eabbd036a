//! The log tools and denv, run as built binaries against the real kernel: real
//! pipes, signals, files, a tmpfs that fills up, and a syslog socket the test
//! listens on.

mod common;

#[path = "logtools/support.rs"]
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
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

// ---------------------------------------------------------------- dlog

#[test]
fn dlog_appends_each_line_to_the_file() {
    let dir = Dir::new("append");
    let file = dir.path("out.log");
    std::fs::write(&file, "before\n").unwrap();
    let (code, _, err) = run_with(tool("dlog").arg(&file), b"one\ntwo\n");
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, _, _) = run_with(tool("dlog").arg(&file), b"three\n");
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "before\none\ntwo\nthree\n");
}

/// A file that stops inside a line (a write a KILL cut short) gets a newline
/// before new lines, so they stay whole; drlog does the same with `current`.
#[test]
fn dlog_and_drlog_end_a_torn_last_line_first() {
    let dir = Dir::new("torn");
    let file = dir.path("out.log");
    std::fs::write(&file, "whole\ntor").unwrap();
    let (code, _, err) = run_with(tool("dlog").arg(&file), b"next\n");
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "whole\ntor\nnext\n");
    std::fs::write(dir.path("current"), "tor").unwrap();
    let (code, _, err) = run_with(tool("drlog").arg(&dir.0), b"next\n");
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(std::fs::read_to_string(dir.path("current")).unwrap(), "tor\nnext\n");
}

#[test]
fn dlog_writes_standard_output_without_a_file() {
    let (code, out, _) = run_with(&mut tool("dlog"), b"a\nb\n");
    assert_eq!(code, 0);
    assert_eq!(out, b"a\nb\n");
}

#[test]
fn dlog_keeps_empty_lines_unless_told_to_skip_them() {
    let (_, out, _) = run_with(&mut tool("dlog"), b"a\n\nb\n\n");
    assert_eq!(out, b"a\n\nb\n\n");
    let (_, out, _) = run_with(tool("dlog").arg("-e"), b"a\n\nb\n\n");
    assert_eq!(out, b"a\nb\n");
}

#[test]
fn dlog_timestamp_then_prefix() {
    let (code, out, _) = run_with(tool("dlog").args(["-t", "-p", "cron:"]), b"hello world\n\n");
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    let (stamp, rest) = lines[0].split_once(' ').unwrap();
    assert!(is_dmon_stamp(stamp), "{stamp:?}");
    assert_eq!(rest, "cron: hello world");
    assert!(lines[1].ends_with(" cron: "), "{:?}", lines[1]);
}

#[test]
fn dlog_rfc3339_timestamp_with_microseconds() {
    let (_, out, _) = run_with(tool("dlog").arg("-R"), b"x\n");
    let text = String::from_utf8(out).unwrap();
    let (stamp, rest) = text.trim_end().split_once(' ').unwrap();
    assert!(is_rfc3339_micros(stamp), "{stamp:?}");
    assert_eq!(rest, "x");
}

#[test]
fn dlog_prefix_alone() {
    let (_, out, _) = run_with(tool("dlog").args(["-p", "[svc]"]), b"a\nb\n");
    assert_eq!(out, b"[svc] a\n[svc] b\n");
}

#[test]
fn dlog_reads_another_descriptor() {
    let dir = Dir::new("fd");
    let file = dir.path("out.log");
    let (r, mut w) = pipe();
    let mut cmd = tool("dlog");
    cmd.args(["-i", "5"]).arg(&file).stdin(Stdio::null());
    give_fd(&mut cmd, raw(&r), 5);
    let mut child = cmd.spawn().unwrap();
    drop(r);
    w.write_all(b"from five\n").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "from five\n");
}

#[test]
fn dlog_takes_options_from_dlog_options_first() {
    let (_, out, _) = run_with(tool("dlog").env("DLOG_OPTIONS", "-p env -e"), b"a\n\n");
    assert_eq!(out, b"env a\n");
    // The command line comes after, so it wins.
    let (_, out, _) = run_with(tool("dlog").env("DLOG_OPTIONS", "-p env").args(["-p", "cli"]), b"a\n");
    assert_eq!(out, b"cli a\n");
}

#[test]
fn dlog_bad_options_are_one_line_naming_the_option() {
    let (code, _, err) = run_with(tool("dlog").args(["-i", "x"]), b"");
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--input-fd") && err.contains("'x'"), "{err}");
    let (code, _, err) = run_with(tool("dlog").args(["-i", "42"]), b"");
    assert_eq!(code, 1);
    assert!(err.contains("42"), "{err}");
    let (code, _, err) = run_with(tool("dlog").arg("/nonexistent/dir/log"), b"");
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/dir/log"), "{err}");
}

#[test]
fn dlog_passes_bytes_that_are_not_utf8_through() {
    let input = b"caf\xe9 \xff\xfe\x00 end\n\xc3\x28\n";
    let (_, out, _) = run_with(&mut tool("dlog"), input);
    assert_eq!(out, input);
    let (_, out, _) = run_with(tool("dlog").args(["-p", "p"]), input);
    assert_eq!(out, b"p caf\xe9 \xff\xfe\x00 end\np \xc3\x28\n");
}

#[test]
fn dlog_writes_a_final_line_without_newline() {
    let (_, out, _) = run_with(&mut tool("dlog"), b"a\nlast");
    assert_eq!(out, b"a\nlast\n");
}

#[test]
fn dlog_writes_a_one_mebibyte_line_whole() {
    let dir = Dir::new("long");
    let file = dir.path("out.log");
    let long: Vec<u8> = (0..(1 << 20)).map(|i| b'a' + (i % 26) as u8).collect();
    let mut input = b"before\n".to_vec();
    input.extend_from_slice(&long);
    input.extend_from_slice(b"\nafter\n");
    let (code, _, _) = run_with(tool("dlog").arg(&file), &input);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(&file).unwrap(), input);
}

#[test]
fn dlog_hup_reopens_the_file() {
    let dir = Dir::new("hup");
    let file = dir.path("out.log");
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("dlog").arg(&file), &r);
    drop(r);
    w.write_all(b"first\n").unwrap();
    wait_for("the first line", || count_lines(&file) == 1);
    std::fs::rename(&file, dir.path("out.log.1")).unwrap();
    // Written after the rename and before HUP: still the old file.
    w.write_all(b"second\n").unwrap();
    wait_for("the second line", || count_lines(&dir.path("out.log.1")) == 2);
    signal(&child, libc::SIGHUP);
    w.write_all(b"third\n").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(dir.path("out.log.1")).unwrap(), "first\nsecond\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "third\n");
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

#[test]
fn dlog_term_mid_stream_leaves_the_rest_in_the_pipe() {
    let dir = Dir::new("term");
    let file = dir.path("out.log");
    let path = file.to_str().unwrap().to_string();
    term_mid_stream("dlog", &[&path], || read_lines(&file));
}

/// From a pipe dlog takes only whole lines: the start of an unfinished one stays
/// in the pipe, and INT leaves it there for the next reader.
#[test]
fn dlog_int_is_like_term() {
    let dir = Dir::new("int");
    let file = dir.path("out.log");
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("dlog").arg(&file), &r);
    w.write_all(b"whole\npart").unwrap();
    wait_for("the whole line", || count_lines(&file) == 1);
    signal(&child, libc::SIGINT);
    assert!(child.wait().unwrap().success());
    w.write_all(b"ial\nnext line\n").unwrap();
    drop(w);
    let mut rest = String::new();
    let mut r = r;
    r.read_to_string(&mut rest).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "whole\n");
    assert_eq!(rest, "partial\nnext line\n");
}

/// From input that is not a pipe (a socket here) a read takes the start of a
/// line too: INT then reads the rest of that line, and not a byte further.
#[test]
fn dlog_int_finishes_the_line_in_hand_when_the_input_is_no_pipe() {
    let dir = Dir::new("intsock");
    let file = dir.path("out.log");
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut child = tool("dlog")
        .arg(&file)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs.try_clone().unwrap())))
        .spawn()
        .unwrap();
    ours.write_all(b"whole\npart").unwrap();
    wait_for("the whole line", || count_lines(&file) == 1);
    signal(&child, libc::SIGINT);
    // dlog is now finishing the line in hand: it reads up to its newline only.
    ours.write_all(b"ial\nnext line\n").unwrap();
    assert!(child.wait().unwrap().success());
    drop(ours);
    let mut rest = String::new();
    let mut theirs = theirs;
    theirs.read_to_string(&mut rest).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "whole\npartial\n");
    assert_eq!(rest, "next line\n");
}

#[test]
fn dlog_on_a_full_disk_retries_and_loses_nothing() {
    // About 290 KiB of lines: more than the space left, less than the tmpfs.
    const COUNT: usize = 10_000;
    let mnt = match Tmpfs::mount("logtools-full", "1m") {
        Ok(mnt) => mnt,
        Err(why) => return common::skip(&why),
    };
    let file = mnt.path("out.log");
    let filler = mnt.path("filler");
    fill(&filler);
    let (r, w) = pipe();
    let mut child = spawn_reading(tool("dlog").arg(&file), &r);
    drop(r);
    let mut stderr = child.stderr.take().unwrap();
    let writer = write_numbered(w, COUNT);
    // Wait until dlog says the disk is full.
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("No space left on device") {
        assert_eq!(
            stderr.read(&mut byte).unwrap(),
            1,
            "dlog ended without reporting: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    assert!(child.try_wait().unwrap().is_none(), "dlog gave up on a full disk");
    std::fs::remove_file(&filler).unwrap();
    writer.join().unwrap();
    let rest = collect(stderr);
    assert!(child.wait().unwrap().success());
    let err = rest.join().unwrap();
    assert!(err.contains("succeeded after retrying"), "{err}");
    assert_numbered(&read_lines(&file), COUNT);
}

// ---------------------------------------------------------------- drlog

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

#[test]
fn drlog_rotates_a_stream_without_losing_splitting_or_duplicating_a_line() {
    const COUNT: usize = 12_000;
    let dir = Dir::new("rotate");
    let (r, w) = pipe();
    let mut child = spawn_reading(tool("drlog").args(["-s", "2k", "-m", "0"]).arg(&dir.0), &r);
    drop(r);
    write_numbered(w, COUNT).join().unwrap();
    assert!(child.wait().unwrap().success());
    let files = rotated(&dir.0);
    assert!(files.len() >= 100, "only {} rotations", files.len());
    for file in &files {
        let data = std::fs::read(file).unwrap();
        assert!(data.len() <= 2048, "{} has {} bytes", file.display(), data.len());
        assert!(data.ends_with(b"\n"), "{} ends inside a line", file.display());
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(name.len() == 23 || name.len() == 30, "{name}");
    }
    assert_numbered(&all_logged(&dir.0), COUNT);
}

#[test]
fn drlog_keeps_at_most_max_files() {
    let dir = Dir::new("maxfiles");
    let input: String = (0..3000).map(|n| format!("{}\n", numbered(n))).collect();
    let (code, _, err) = run_with(tool("drlog").args(["-s", "1k", "-m", "3"]).arg(&dir.0), input.as_bytes());
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(rotated(&dir.0).len(), 3);
    // What is left is the newest part of the stream, in order.
    let lines = all_logged(&dir.0);
    let first: usize = lines[0].split(' ').nth(1).unwrap().parse().unwrap();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line, &numbered(first + i));
    }
    assert_eq!(first + lines.len(), 3000);
}

#[test]
fn drlog_gives_a_line_longer_than_the_size_a_file_of_its_own() {
    let dir = Dir::new("longline");
    let long = "y".repeat(5000);
    let input = format!("short 1\n{long}\nshort 2\n");
    let (code, _, _) = run_with(tool("drlog").args(["-s", "1k", "-m", "0"]).arg(&dir.0), input.as_bytes());
    assert_eq!(code, 0);
    let files = rotated(&dir.0);
    assert_eq!(files.len(), 2);
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "short 1\n");
    assert_eq!(std::fs::read_to_string(&files[1]).unwrap(), format!("{long}\n"));
    assert_eq!(std::fs::read_to_string(dir.path("current")).unwrap(), "short 2\n");
}

#[test]
fn drlog_rotates_by_age() {
    let dir = Dir::new("age");
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("drlog").args(["-T", "1", "-s", "0"]).arg(&dir.0), &r);
    drop(r);
    w.write_all(b"old\n").unwrap();
    // No more input: the age alone rotates the file.
    wait_for("a rotation by age", || rotated(&dir.0).len() == 1);
    w.write_all(b"new\n").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    let files = rotated(&dir.0);
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "old\n");
    assert_eq!(std::fs::read_to_string(dir.path("current")).unwrap(), "new\n");
}

#[test]
fn drlog_timestamps_prefixes_and_skips_empty_lines() {
    let dir = Dir::new("drlogfmt");
    let (code, _, _) = run_with(tool("drlog").args(["-t", "-e", "-p", "P"]).arg(&dir.0), b"a\n\nb\n");
    assert_eq!(code, 0);
    let lines = read_lines(&dir.path("current"));
    assert_eq!(lines.len(), 2);
    for (line, text) in lines.iter().zip(["P a", "P b"]) {
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert!(is_dmon_stamp(stamp) && rest == text, "{line:?}");
    }
}

#[test]
fn drlog_missing_directory_is_an_error() {
    let dir = Dir::new("nodir");
    let missing = dir.path("missing");
    let (code, _, err) = run_with(tool("drlog").arg(&missing), b"x\n");
    assert_eq!(code, 1);
    assert!(err.contains(missing.to_str().unwrap()) && err.contains("No such file"), "{err}");
    assert!(!missing.exists());
    let (code, _, err) = run_with(tool("drlog").args(["-s", "5x"]).arg(&dir.0), b"");
    assert_eq!(code, 2);
    assert!(err.contains("--max-size") && err.contains("'5x'"), "{err}");
}

#[test]
fn drlog_hup_reopens_current() {
    let dir = Dir::new("drloghup");
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("drlog").arg(&dir.0), &r);
    drop(r);
    w.write_all(b"one\n").unwrap();
    wait_for("the first line", || count_lines(&dir.path("current")) == 1);
    std::fs::rename(dir.path("current"), dir.path("moved")).unwrap();
    signal(&child, libc::SIGHUP);
    w.write_all(b"two\n").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(dir.path("moved")).unwrap(), "one\n");
    assert_eq!(std::fs::read_to_string(dir.path("current")).unwrap(), "two\n");
}

#[test]
fn drlog_term_mid_stream_while_rotating() {
    let dir = Dir::new("drlogterm");
    let path = dir.0.to_str().unwrap().to_string();
    term_mid_stream("drlog", &["-s", "64k", "-m", "0", &path], || all_logged(&dir.0));
}

#[test]
fn drlog_takes_options_from_drlog_options() {
    let dir = Dir::new("drlogenv");
    let (code, _, _) = run_with(tool("drlog").env("DRLOG_OPTIONS", "-p from-env").arg(&dir.0), b"a\n");
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(dir.path("current")).unwrap(), "from-env a\n");
}

// ---------------------------------------------------------------- dslog

/// A syslog socket bound in `dir`, as a daemon would listen on /dev/log.
fn syslog_socket(dir: &Dir) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.path("log.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    (socket, path)
}

fn receive(socket: &UnixDatagram) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 17];
    let n = socket.recv(&mut buf).expect("a syslog message");
    buf.truncate(n);
    buf
}

/// Splits `<PRI>Mmm dd HH:MM:SS rest` into (PRI, rest), checking the header.
fn parse_syslog(message: &[u8]) -> (u32, Vec<u8>) {
    let text = message;
    assert_eq!(text[0], b'<', "{:?}", String::from_utf8_lossy(message));
    let close = text.iter().position(|&b| b == b'>').unwrap();
    let pri = std::str::from_utf8(&text[1..close]).unwrap().parse().unwrap();
    let stamp = std::str::from_utf8(&text[close + 1..close + 16]).unwrap();
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    assert!(months.contains(&&stamp[..3]), "{stamp:?}");
    assert_eq!(&stamp[6..7], " ");
    assert_eq!(text[close + 16], b' ');
    (pri, text[close + 17..].to_vec())
}

#[test]
fn dslog_sends_each_line_to_the_syslog_socket() {
    let dir = Dir::new("dslog");
    let (socket, path) = syslog_socket(&dir);
    let (code, _, err) = run_with(
        tool("dslog").args(["-p", "INFO", "-f", "local3", "--socket"]).arg(&path).arg("myservice"),
        b"hello\n\ncaf\xe9\n",
    );
    assert_eq!((code, err.as_str()), (0, ""));
    let expected: [&[u8]; 3] = [b"myservice: hello", b"myservice: ", b"myservice: caf\xe9"];
    for text in expected {
        let (pri, rest) = parse_syslog(&receive(&socket));
        assert_eq!(pri, 19 * 8 + 6);
        assert_eq!(rest, text);
    }
}

#[test]
fn dsyslog_is_the_same_program_and_defaults_to_daemon_warning() {
    let dir = Dir::new("dsyslog");
    let (socket, path) = syslog_socket(&dir);
    let (code, _, _) = run_with(tool("dsyslog").args(["-e", "--socket"]).arg(&path).arg("svc"), b"\nx\n");
    assert_eq!(code, 0);
    let (pri, rest) = parse_syslog(&receive(&socket));
    assert_eq!((pri, rest.as_slice()), (3 * 8 + 4, &b"svc: x"[..]));
}

#[test]
fn dsyslog_version_names_dsyslog() {
    for name in ["dslog", "dsyslog"] {
        let out = tool(name).arg("--version").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text, format!("{name} {}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn dslog_takes_options_from_dslog_options() {
    let dir = Dir::new("dslogenv");
    let (socket, path) = syslog_socket(&dir);
    let options = format!("-p err -f LOG_MAIL --socket {}", path.display());
    let (code, _, _) = run_with(tool("dslog").env("DSLOG_OPTIONS", options).arg("n"), b"m\n");
    assert_eq!(code, 0);
    let (pri, _) = parse_syslog(&receive(&socket));
    assert_eq!(pri, 2 * 8 + 3);
}

#[test]
fn dslog_sends_a_long_line_in_consecutive_pieces() {
    let dir = Dir::new("dsloglong");
    let (socket, path) = syslog_socket(&dir);
    let long: Vec<u8> = (0..20_000).map(|i| b'a' + (i % 26) as u8).collect();
    let mut input = long.clone();
    input.push(b'\n');
    let (code, _, _) = run_with(tool("dslog").arg("--socket").arg(&path).arg("n"), &input);
    assert_eq!(code, 0);
    let mut joined = Vec::new();
    for size in [8192, 8192, 20_000 - 16_384] {
        let (_, rest) = parse_syslog(&receive(&socket));
        let text = rest.strip_prefix(b"n: ").unwrap();
        assert_eq!(text.len(), size);
        joined.extend_from_slice(text);
    }
    assert_eq!(joined, long);
}

#[test]
fn dslog_falls_back_to_the_console_with_c() {
    let dir = Dir::new("dslogcons");
    let console = dir.path("console");
    std::fs::write(&console, "").unwrap();
    let (code, _, _) = run_with(
        tool("dslog")
            .args(["-c", "--socket"])
            .arg(dir.path("nobody-listens"))
            .arg("--console-device")
            .arg(&console)
            .arg("svc"),
        b"lost?\n",
    );
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&console).unwrap(), "svc: lost?\r\n");
}

#[test]
fn dslog_waits_for_the_syslog_daemon_rather_than_dropping_lines() {
    let dir = Dir::new("dslogwait");
    let path = dir.path("log.sock");
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("dslog").arg("--socket").arg(&path).arg("svc"), &r);
    drop(r);
    w.write_all(b"early\n").unwrap();
    drop(w);
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\n") {
        assert_eq!(stderr.read(&mut byte).unwrap(), 1);
        seen.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("retrying"), "{:?}", String::from_utf8_lossy(&seen));
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    let (_, rest) = parse_syslog(&receive(&socket));
    assert_eq!(rest, b"svc: early");
    assert!(child.wait().unwrap().success());
}

#[test]
fn dslog_rejects_unknown_names() {
    let (code, _, err) = run_with(tool("dslog").args(["-p", "loud", "x"]), b"");
    assert_eq!(code, 2);
    assert!(err.contains("--priority") && err.contains("'loud'"), "{err}");
    let (code, _, err) = run_with(tool("dslog").args(["-f", "local9", "x"]), b"");
    assert_eq!(code, 2);
    assert!(err.contains("--facility") && err.contains("'local9'"), "{err}");
}

// ---------------------------------------------------------------- denv

fn denv(args: &[&str]) -> (i32, String, String) {
    let out = tool("denv").args(args).env("DENV_TEST_A", "a").env("DENV_TEST_B", "b").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn env_lines(out: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    lines
}

#[test]
fn denv_starts_from_an_empty_environment() {
    let (code, out, _) = denv(&["env"]);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn denv_inherits_all_or_some_and_sets_or_removes_in_order() {
    let (_, out, _) = denv(&["-i", "DENV_TEST_A", "-i", "DENV_NOT_SET", "-E", "X=1", "-E", "EMPTY=", "env"]);
    assert_eq!(env_lines(&out), ["DENV_TEST_A=a", "EMPTY=", "X=1"]);
    let (_, out, _) = denv(&["-I", "-E", "DENV_TEST_A", "env"]);
    assert!(out.contains("DENV_TEST_B=b\n") && !out.contains("DENV_TEST_A"), "{out}");
    // Later options act on the result of earlier ones.
    let (_, out, _) = denv(&["-E", "DENV_TEST_A=mine", "-I", "env"]);
    assert!(out.contains("DENV_TEST_A=a\n"), "{out}");
}

#[test]
fn denv_reads_an_envdir() {
    let dir = Dir::new("envdir");
    let d = dir.path("env");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("FIRST_LINE"), "value \t \nsecond line\n").unwrap();
    std::fs::write(d.join("NO_NEWLINE"), "plain").unwrap();
    std::fs::write(d.join("BLANK_FIRST"), "\nignored\n").unwrap();
    std::fs::write(d.join("DENV_TEST_A"), "").unwrap();
    std::fs::write(d.join(".hidden"), "x").unwrap();
    std::fs::write(dir.path("target"), "through a link").unwrap();
    std::os::unix::fs::symlink(dir.path("target"), d.join("LINKED")).unwrap();
    std::fs::create_dir(d.join("SUBDIR")).unwrap();
    let (code, out, err) = denv(&["-I", "-d", d.to_str().unwrap(), "env"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\nFIRST_LINE=value\n"), "{out}");
    assert!(out.contains("\nNO_NEWLINE=plain\n"), "{out}");
    assert!(out.contains("\nBLANK_FIRST=\n"), "{out}");
    assert!(!out.contains("DENV_TEST_A="), "an empty file removes: {out}");
    for absent in ["LINKED", "SUBDIR", "hidden"] {
        assert!(!out.contains(absent), "{absent}: {out}");
    }
    assert!(out.contains("DENV_TEST_B=b"));
}

#[test]
fn denv_envdir_errors_exit_111() {
    let dir = Dir::new("envdirerr");
    let (code, _, err) = denv(&["-d", dir.path("missing").to_str().unwrap(), "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("missing"), "{err}");
    let d = dir.path("bad");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("A=B"), "x").unwrap();
    let (code, _, err) = denv(&["-d", d.to_str().unwrap(), "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("A=B"), "{err}");
    let d = dir.path("unreadable");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("NUL"), "a\0b\n").unwrap();
    let (code, _, err) = denv(&["-d", d.to_str().unwrap(), "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("NUL"), "{err}");
}

#[test]
fn denv_reads_environment_d_files() {
    let dir = Dir::new("envfile");
    let file = dir.path("vars.conf");
    std::fs::write(&file, "# a comment\n\n  SPACED = no  \nGOOD=yes please\nDENV_TEST_A=\n\tINDENT=1\n").unwrap();
    let (code, out, err) = denv(&["-I", "-f", file.to_str().unwrap(), "env"]);
    // "SPACED " is not a variable name: the line is an error, named with its number.
    assert_eq!(code, 111, "{out}");
    assert!(err.contains("vars.conf:3"), "{err}");
    std::fs::write(&file, "# a comment\n\nGOOD=yes please\nDENV_TEST_A=\n\tINDENT=1\nEQ=a=b\n").unwrap();
    let (code, out, err) = denv(&["-I", "-f", file.to_str().unwrap(), "env"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("GOOD=yes please\n") && out.contains("INDENT=1\n") && out.contains("EQ=a=b\n"), "{out}");
    assert!(!out.contains("DENV_TEST_A"), "NAME= removes: {out}");
    std::fs::write(&file, "no equals sign\n").unwrap();
    let (code, _, err) = denv(&["-f", file.to_str().unwrap(), "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("vars.conf:1"), "{err}");
}

#[test]
fn denv_exit_codes() {
    assert_eq!(denv(&["sh", "-c", "exit 7"]).0, 7, "the command's own status");
    let (code, _, err) = denv(&["no-such-command-here"]);
    assert_eq!(code, 111);
    assert!(err.contains("no-such-command-here"), "{err}");
    let dir = Dir::new("noexec");
    let script = dir.path("script");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    assert_eq!(denv(&[script.to_str().unwrap()]).0, 111, "not executable");
    assert_eq!(denv(&[]).0, 111, "no command");
    let (code, _, err) = denv(&["-E", "=x", "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("'=x'"), "{err}");
    // An unknown option is named as one, not run as the command.
    for bad in ["--bogus", "-x"] {
        let (code, _, err) = denv(&[bad, "true"]);
        assert_eq!(code, 111, "{bad}");
        assert!(err.contains(&format!("unexpected argument '{bad}'")), "{bad}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // The command's own options stay the command's; after -- a dash starts it.
    let (code, out, _) = denv(&["-I", "sh", "-c", "echo $DENV_TEST_A", "-i"]);
    assert_eq!((code, out.as_str()), (0, "a\n"));
    let (code, _, err) = denv(&["--", "-x"]);
    assert_eq!(code, 111);
    assert!(err.contains("cannot execute '-x'"), "{err}");
}

#[test]
fn denv_as_envdir() {
    let dir = Dir::new("asenvdir");
    let link = dir.path("envdir");
    std::os::unix::fs::symlink(bin("denv"), &link).unwrap();
    let d = dir.path("env");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("FROM_DIR"), "1\n").unwrap();
    std::fs::write(d.join("DENV_TEST_A"), "").unwrap();
    let out = Command::new(&link)
        .arg(&d)
        .args(["sh", "-c", "echo $FROM_DIR ${DENV_TEST_A-unset} $DENV_TEST_B"])
        .env("DENV_TEST_A", "a")
        .env("DENV_TEST_B", "b")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 unset b\n");
    let out = Command::new(&link).arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(111));
    let out = Command::new(&link).arg(dir.path("nope")).arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(111));
}

// ---------------------------------------------------------------- through dmon

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

// ---------------------------------------------------------------- planted files

/// A file of value, and a check that it is exactly as it was.
struct Victim(std::path::PathBuf);

impl Victim {
    const TEXT: &'static str = "precious\n";

    fn new(dir: &Dir) -> Victim {
        let path = dir.path("victim");
        std::fs::write(&path, Self::TEXT).unwrap();
        Victim(path)
    }

    fn assert_untouched(&self) {
        assert_eq!(std::fs::read_to_string(&self.0).unwrap(), Self::TEXT, "the victim was written to");
    }
}

/// Runs `cmd` on one line of input; asserts it fails at start with one line
/// naming `path` and saying `why`.
fn assert_refused(cmd: &mut Command, path: &std::path::Path, why: &str) {
    let (code, _, err) = run_with(cmd, b"written?\n");
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(path.to_str().unwrap()) && err.contains(why), "{err}");
}

/// A directory anyone may write to, as /tmp is.
fn world_writable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
}

fn chown_nobody(path: &std::path::Path) {
    std::os::unix::fs::lchown(path, Some(65534), Some(65534)).expect("chown needs root");
}

#[test]
fn dlog_refuses_a_planted_file() {
    let dir = Dir::new("plant");
    world_writable(&dir.0);
    let victim = Victim::new(&dir);
    let file = dir.path("out.log");
    std::os::unix::fs::symlink(&victim.0, &file).unwrap();
    assert_refused(tool("dlog").arg(&file), &file, "symbolic link");
    std::fs::remove_file(&file).unwrap();
    // A dangling link: its target is not created.
    std::os::unix::fs::symlink(dir.path("created?"), &file).unwrap();
    assert_refused(tool("dlog").arg(&file), &file, "symbolic link");
    assert!(!dir.path("created?").exists());
    std::fs::remove_file(&file).unwrap();
    std::fs::hard_link(&victim.0, &file).unwrap();
    assert_refused(tool("dlog").arg(&file), &file, "2 hard links");
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "theirs\n").unwrap();
    chown_nobody(&file);
    assert_refused(tool("dlog").arg(&file), &file, "belongs to uid 65534");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "theirs\n");
    victim.assert_untouched();
}

/// On HUP dlog opens FILE again: a link planted there meanwhile is refused and
/// the open retried (the input waits), until the link is gone.
#[test]
fn dlog_reopen_never_writes_through_a_link() {
    let dir = Dir::new("plantreopen");
    let victim = Victim::new(&dir);
    let file = dir.path("out.log");
    let errors = dir.path("stderr");
    let (r, mut w) = pipe();
    let mut child = tool("dlog")
        .arg(&file)
        .stdin(std::os::fd::OwnedFd::from(r))
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .unwrap();
    w.write_all(b"first\n").unwrap();
    wait_for("the first line", || count_lines(&file) == 1);
    std::fs::rename(&file, dir.path("out.log.1")).unwrap();
    std::os::unix::fs::symlink(&victim.0, &file).unwrap();
    signal(&child, libc::SIGHUP);
    w.write_all(b"second\n").unwrap();
    let said = || std::fs::read_to_string(&errors).unwrap();
    wait_for("a message, or a write through the link", || {
        said().contains('\n') || std::fs::read_to_string(&victim.0).unwrap() != Victim::TEXT
    });
    victim.assert_untouched();
    let said = said();
    assert!(said.contains(file.to_str().unwrap()) && said.contains("symbolic link"), "{said}");
    victim.assert_untouched();
    std::fs::remove_file(&file).unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "second\n");
    victim.assert_untouched();
}

#[test]
fn drlog_refuses_planted_current_and_timestamp() {
    for name in ["current", ".timestamp"] {
        let dir = Dir::new("drplant");
        world_writable(&dir.0);
        let victim = Victim::new(&dir);
        let logs = dir.path("logs");
        std::fs::create_dir(&logs).unwrap();
        world_writable(&logs);
        let planted = logs.join(name);
        std::os::unix::fs::symlink(&victim.0, &planted).unwrap();
        assert_refused(tool("drlog").arg(&logs), &planted, "symbolic link");
        std::fs::remove_file(&planted).unwrap();
        std::fs::hard_link(&victim.0, &planted).unwrap();
        assert_refused(tool("drlog").arg(&logs), &planted, "2 hard links");
        std::fs::remove_file(&planted).unwrap();
        std::fs::write(&planted, "1\n").unwrap();
        chown_nobody(&planted);
        assert_refused(tool("drlog").arg(&logs), &planted, "belongs to uid 65534");
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "1\n");
        victim.assert_untouched();
    }
}

/// `.timestamp` is replaced through a new file and a rename, so a link planted
/// there while drlog runs is replaced, never written through.
#[test]
fn drlog_replaces_the_timestamp_file_rather_than_writing_through_it() {
    let dir = Dir::new("drstamp");
    let victim = Victim::new(&dir);
    let logs = dir.path("logs");
    std::fs::create_dir(&logs).unwrap();
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("drlog").args(["-s", "10", "-m", "0"]).arg(&logs), &r);
    drop(r);
    w.write_all(b"first line\n").unwrap();
    wait_for("the first line", || count_lines(&logs.join("current")) == 1);
    std::fs::remove_file(logs.join(".timestamp")).unwrap();
    std::os::unix::fs::symlink(&victim.0, logs.join(".timestamp")).unwrap();
    // Over 10 bytes: a rotation, which writes .timestamp.
    w.write_all(b"second line\n").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    victim.assert_untouched();
    let stamp = std::fs::symlink_metadata(logs.join(".timestamp")).unwrap();
    assert!(stamp.file_type().is_file(), "{stamp:?}");
    assert_eq!(rotated(&logs).len(), 1);
}

/// The start of a line left in the pipe keeps it readable; dlog looks at it again
/// for a moment, then takes it into memory and waits for input without waking.
#[test]
fn dlog_waits_for_a_newline_without_spinning() {
    let dir = Dir::new("nospin");
    let file = dir.path("out.log");
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("dlog").arg(&file), &r);
    drop(r);
    w.write_all(b"no newline yet").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    let before = common::context_switches(child.id() as i32);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after = common::context_switches(child.id() as i32);
    assert!(after - before <= 2, "dlog woke up {} times in 1 s", after - before);
    w.write_all(b", now\n").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "no newline yet, now\n");
}

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
