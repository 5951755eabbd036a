//! What the log tool tests share beyond tests/common: the built binaries, real
//! pipes, signals, and a bounded wait that fails the test (a guard against
//! hanging, never a timing assertion).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::wait_until;
pub use crate::common::{Dir, Tmpfs, fill};

pub fn bin(name: &str) -> PathBuf {
    PathBuf::from(match name {
        "dlog" => env!("CARGO_BIN_EXE_dlog"),
        "drlog" => env!("CARGO_BIN_EXE_drlog"),
        "dslog" => env!("CARGO_BIN_EXE_dslog"),
        "dsyslog" => env!("CARGO_BIN_EXE_dsyslog"),
        "denv" => env!("CARGO_BIN_EXE_denv"),
        "dmon" => env!("CARGO_BIN_EXE_dmon"),
        other => panic!("no binary {other}"),
    })
}

/// A command for one of the tools, with the option variables cleared so the
/// caller's environment cannot change a test.
pub fn tool(name: &str) -> Command {
    let mut c = Command::new(bin(name));
    for var in ["DLOG_OPTIONS", "DRLOG_OPTIONS", "DSLOG_OPTIONS"] {
        c.env_remove(var);
    }
    c
}

/// A pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> (File, File) {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    (File::from(read), File::from(write))
}

/// Makes `fd` the child's descriptor `target` (and not close-on-exec).
pub fn give_fd(cmd: &mut Command, fd: RawFd, target: RawFd) {
    // SAFETY: dup2 is async-signal-safe and uses only the two integers.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts `cmd` reading the given pipe end as standard input.
pub fn spawn_reading(cmd: &mut Command, input: &File) -> Child {
    let input: OwnedFd = input.try_clone().unwrap().into();
    cmd.stdin(Stdio::from(input)).stderr(Stdio::piped()).spawn().unwrap()
}

pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill takes plain integers; the child is ours and not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

/// Waits for `cond`, failing the test with `what` after a generous bound.
pub fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    assert!(wait_until(Duration::from_secs(60), cond), "gave up waiting for {what}");
}

/// The lines of a file (empty when it does not exist).
pub fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    String::from_utf8(text).unwrap().lines().map(str::to_string).collect()
}

pub fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map(|t| t.iter().filter(|&&b| b == b'\n').count()).unwrap_or(0)
}

/// The numbered line `n`, padded so lines are of different lengths.
pub fn numbered(n: usize) -> String {
    format!("line {n} {}", "x".repeat(n % 37))
}

/// Asserts that `lines` are exactly `numbered(0..count)`, in order.
pub fn assert_numbered(lines: &[String], count: usize) {
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line, &numbered(i), "line {i} of {}", lines.len());
    }
    assert_eq!(lines.len(), count, "line count");
}

/// Writes `numbered(0..count)` to `w`, each line in two writes so the reader often
/// holds part of a line; returns when done (the write end is closed on drop).
pub fn write_numbered(mut w: File, count: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write;
        for n in 0..count {
            let line = format!("{}\n", numbered(n));
            let (a, b) = line.as_bytes().split_at(line.len() / 2);
            if w.write_all(a).and_then(|()| w.write_all(b)).is_err() {
                return;
            }
        }
    })
}

/// Reads all of a child's stderr in a thread; the text is returned by join.
pub fn collect(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

pub fn raw(f: &File) -> RawFd {
    f.as_raw_fd()
}
