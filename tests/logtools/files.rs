//! The files the log tools open and make: a FIFO planted as drlog's
//! `.timestamp`, planted rotated names, the mode of a new log, options from the
//! environment that name a file, and the memory a line longer than any buffer
//! costs.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::*;
use crate::support::*;
use crate::{NOBODY, as_nobody, chown_nobody, mkfifo};

/// The default longest line (`--max-line`): longer ones are cut into pieces of
/// this many bytes.
const MAX_LINE: usize = 1 << 20;
/// What starts every piece of a line after its first.
const MARK: &[u8] = b"+ ";

/// The exit code and stderr of `child`, which must end within a bound.
fn output_of(mut child: Child) -> (i32, String) {
    let err = collect(child.stderr.take().unwrap());
    let code = finish(child, Duration::from_secs(30)).code().unwrap_or(-1);
    (code, err.join().unwrap())
}

#[test]
fn drlog_refuses_a_fifo_as_its_timestamp_file() {
    let dir = Dir::new("fifo-stamp");
    mkfifo(&dir.path(".timestamp"));
    let child = tool("drlog").arg(&dir.0).stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (code, err) = output_of(child);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(".timestamp") && err.contains("FIFO"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A file named like a rotated one far in the future, planted by the user who
/// can write the log directory, neither stops pruning nor counts as one of
/// drlog's: at most `-m` of drlog's own files are kept, and the plant is left.
#[test]
fn drlog_keeps_max_files_whatever_names_are_planted() {
    if !is_root() {
        return skip("planting as another user needs root");
    }
    let dir = Dir::new("planted-names");
    chown_nobody(&dir.0);
    let planted = dir.path("log-2099-01-01-00:00:00.999999");
    let out = as_nobody("touch").arg(&planted).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let input: String = (0..4000).map(|n| format!("{}\n", numbered(n))).collect();
    let mut child = tool("drlog")
        .args(["-s", "1k", "-m", "3"])
        .arg(&dir.0)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let (code, err) = output_of(child);
    assert_eq!(code, 0, "{err}");
    let rotated: Vec<String> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("log-") && dir.path(n) != planted)
        .collect();
    assert!(rotated.len() <= 3, "{} rotated files kept with -m 3: {rotated:?}", rotated.len());
    assert!(planted.exists(), "the planted file was removed");
    assert_eq!(fs::metadata(&planted).unwrap().uid(), NOBODY);
}

/// With umask 000 a new log is still 0640.
#[test]
fn new_logs_have_a_fixed_mode_whatever_the_umask() {
    let dir = Dir::new("umask");
    let file = dir.path("out.log");
    let logs = dir.path("logs");
    fs::create_dir(&logs).unwrap();
    for (tool_name, target) in [("dlog", &file), ("drlog", &logs)] {
        let mut cmd = tool(tool_name);
        cmd.args(["-s", "100"].iter().filter(|_| tool_name == "drlog")).arg(target);
        // SAFETY: umask is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        let mut child = cmd.stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let lines: String = (0..20).map(|n| format!("{}\n", numbered(n))).collect();
        child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        let (code, err) = output_of(child);
        assert_eq!(code, 0, "{err}");
    }
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&file), 0o640, "dlog's file");
    for entry in fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        let expected = if path.ends_with(".timestamp") { 0o644 } else { 0o640 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
}

/// FILE and DIR come from the command line only: a word in DLOG_OPTIONS or
/// DRLOG_OPTIONS that is no option is refused, and nothing is written.
#[test]
fn the_environment_names_no_file() {
    let dir = Dir::new("env-file");
    let target = dir.path("from-env");
    for (name, var, extra) in [
        ("dlog", "DLOG_OPTIONS", None),
        ("drlog", "DRLOG_OPTIONS", Some(dir.path("d"))),
        ("dslog", "DSLOG_OPTIONS", None),
    ] {
        let mut cmd = tool(name);
        cmd.env(var, format!("-e {}", target.display()));
        if let Some(extra) = extra {
            fs::create_dir_all(&extra).unwrap();
            cmd.arg(extra);
        }
        if name == "dslog" {
            cmd.arg("tag");
        }
        let child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let (code, err) = output_of(child);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.starts_with(&format!("{name}: {var}: '{}' is not an option", target.display())), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!target.exists(), "{name} wrote to the file DLOG_OPTIONS named");
    }
}

/// The peak resident memory of a process, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Checks that `lines` are the pieces of one line of `len` bytes of `byte`
/// followed by `after`: every piece but the last of exactly [`MAX_LINE`] bytes
/// of the line, each after the first starting with [`MARK`].
fn check_pieces(mut lines: impl BufRead, len: usize, byte: u8, after: &[u8], piece_len: usize) {
    let mut total = 0;
    let mut piece = Vec::new();
    let mut count = 0;
    while total < len {
        piece.clear();
        assert!(lines.read_until(b'\n', &mut piece).unwrap() > 0, "ended after {total} of {len} bytes");
        assert_eq!(piece.pop(), Some(b'\n'));
        let body = if count == 0 { &piece[..] } else { piece.strip_prefix(MARK).expect("a marked piece") };
        assert!(body.iter().all(|&b| b == byte), "piece {count} holds another byte");
        total += body.len();
        if total < len {
            assert_eq!(body.len(), piece_len, "piece {count}");
        }
        count += 1;
    }
    assert_eq!(total, len);
    let mut rest = Vec::new();
    lines.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, after);
}

/// Sends `len` bytes of `x` and then "\nafter\n" to `child` (reading a pipe),
/// waits until `stored` says all of it is stored, and returns the child's peak
/// memory, taken before its input ends.
fn feed_long_line(child: &mut Child, len: usize, stored: impl Fn() -> bool) -> u64 {
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let block = vec![b'x'; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len());
            input.write_all(&block[..n]).unwrap();
            left -= n;
        }
        input.write_all(b"\nafter\n").unwrap();
        input
    });
    let input = writer.join().unwrap();
    wait_for("the long line to be stored", &stored);
    let peak = peak_kib(child.id());
    drop(input);
    peak
}

/// Each logger holds at most one piece of a long line: a 64 MiB line costs
/// each of them a few MiB, and its pieces put together are the line.
#[test]
fn a_line_longer_than_any_buffer_is_cut_and_costs_little_memory() {
    let len = 64 << 20;
    let dir = Dir::new("long-line");
    let file = dir.path("out.log");
    let mut dlog = tool("dlog").arg(&file).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let full = |p: &Path| fs::read(p).is_ok_and(|t| t.ends_with(b"\nafter\n"));
    let peak = feed_long_line(&mut dlog, len, || full(&file));
    let (code, err) = output_of(dlog);
    assert_eq!(code, 0, "{err}");
    println!("dlog: a {} MiB line, peak RSS {peak} KiB", len >> 20);
    assert!(peak < 16 << 10, "dlog's peak RSS was {peak} KiB for a {} MiB line", len >> 20);
    check_pieces(BufReader::new(fs::File::open(&file).unwrap()), len, b'x', b"after\n", MAX_LINE);

    let logs = dir.path("logs");
    fs::create_dir(&logs).unwrap();
    let mut drlog =
        tool("drlog").args(["-s", "0"]).arg(&logs).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let peak = feed_long_line(&mut drlog, len, || full(&logs.join("current")));
    let (code, err) = output_of(drlog);
    assert_eq!(code, 0, "{err}");
    println!("drlog: a {} MiB line, peak RSS {peak} KiB", len >> 20);
    assert!(peak < 16 << 10, "drlog's peak RSS was {peak} KiB for a {} MiB line", len >> 20);
    check_pieces(BufReader::new(fs::File::open(logs.join("current")).unwrap()), len, b'x', b"after\n", MAX_LINE);

    // dslog: each piece one message (--max-message no shorter than a piece and
    // its mark); pieces of 64 KiB, as a datagram of 1 MiB is over the socket's
    // default buffer.
    let socket = dir.path("log.sock");
    let server = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = received.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 2 << 20];
        while let Ok(n) = server.recv(&mut buf) {
            let text = &buf[..n];
            let body = &text[text.windows(5).position(|w| w == b"tag: ").unwrap() + 5..];
            let mut all = sink.lock().unwrap();
            all.extend_from_slice(body);
            all.push(b'\n');
            if body == b"after" {
                break;
            }
        }
    });
    let mut dslog = tool("dslog")
        .args(["--max-line", "64k", "--max-message", "128k", "--socket"])
        .arg(&socket)
        .arg("tag")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let peak = feed_long_line(&mut dslog, len, || received.lock().unwrap().ends_with(b"\nafter\n"));
    let (code, err) = output_of(dslog);
    assert_eq!(code, 0, "{err}");
    reader.join().unwrap();
    println!("dslog: a {} MiB line, peak RSS {peak} KiB", len >> 20);
    assert!(peak < 16 << 10, "dslog's peak RSS was {peak} KiB for a {} MiB line", len >> 20);
    let all = received.lock().unwrap().clone();
    check_pieces(&all[..], len, b'x', b"after\n", 64 << 10);
}

/// The case as it was met: a command under dmon that writes 400 MB without a
/// newline, logged by dlog as nobody. dlog's peak memory stays small and every
/// byte reaches the file, the unfinished end of the line too, which dlog holds
/// when dmon is told to stop.
#[test]
fn dlog_under_dmon_stores_a_400_mb_line_in_little_memory() {
    if !is_root() {
        return skip("the case runs the command and dlog as nobody");
    }
    let dir = Dir::new("400mb");
    chown_nobody(&dir.0);
    let file = dir.path("F");
    let status = dir.path("status");
    let len: usize = 400_000_000;
    // `written` appears once head has written the whole line: a TERM before
    // that would end head, and the rest of the line would never be written.
    let written = dir.path("written");
    let script = format!("head -c {len} /dev/zero && : > {}; exec sleep 100", written.display());
    let child = dmon()
        .args(["-n", "--memory-max", "32m", "-u", "nobody", "-U", "nobody", "-I"])
        .arg(&status)
        .args(["sh", "-c", &script, "--"])
        .arg(bin("dlog"))
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stopper = Stopper::of(&child);
    // 400 MB in pieces of 1 MiB, each after the first with its mark, each with a newline.
    let pieces = len.div_ceil(MAX_LINE);
    let expected = (len + pieces + (pieces - 1) * MARK.len()) as u64;
    // All but the last piece, which waits for its newline (or the end).
    let whole = (len / MAX_LINE * (MAX_LINE + 1 + MARK.len()) - MARK.len()) as u64;
    wait_until(Duration::from_secs(300), || written.exists() && fs::metadata(&file).is_ok_and(|m| m.len() >= whole));
    assert!(written.exists(), "head did not write the whole line");
    let running = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let log = started(&status, "log");
    let peak = log.last().map(|&pid| peak_kib(pid as u32)).unwrap_or(0);
    crate::common::signal(child.id() as i32, libc::SIGTERM);
    finish(child, Duration::from_secs(60));
    let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!("dlog under dmon: 400 MB without a newline, peak RSS {peak} KiB, file {size} bytes");
    assert!(running >= whole, "only {running} of {whole} bytes reached the file while the line went on");
    assert_eq!(size, expected, "bytes in the file after dmon stopped");
    assert!(peak > 0 && peak < 16 << 10, "dlog's peak RSS was {peak} KiB");
    // The last piece is ended at exit; the pieces put together are the line.
    check_pieces(BufReader::new(fs::File::open(&file).unwrap()), len, 0, b"", MAX_LINE);
}
