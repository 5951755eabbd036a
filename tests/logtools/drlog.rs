//! drlog: rotation by size and by age, at most `-m` files, timestamps and
//! prefixes, HUP, TERM mid-stream, and options from DRLOG_OPTIONS.

use super::*;

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
