//! What the log tool tests share: the built binaries, temporary directories,
//! real pipes, signals, and bounded waits (a guard against hanging, never a timing
//! assertion).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// A fresh directory, removed (with whatever is in it) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("dmon-logtools-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fresh descriptors, owned at once.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
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

/// Waits for `cond`, panicking with `what` after a generous bound.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
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
