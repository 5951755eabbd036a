//! dlog: lines to a file or standard output, timestamps and prefixes, another
//! descriptor, options from DLOG_OPTIONS, HUP, TERM and INT mid-stream, and a full disk.

use super::*;

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
