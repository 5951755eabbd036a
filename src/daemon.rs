//! Detaching from the terminal, the pid file, and where dmon's own messages go.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::fcntl::{Flock, FlockArg};
use tracing::level_filters::LevelFilter;

/// The pid file, held open and locked (flock) for dmon's whole life: a second
/// dmon given the same file finds the lock taken and refuses to start, instead of
/// guessing from the pid written in it.
///
/// Pid files often live in shared directories, and root writes them. The open
/// never follows a symbolic link (O_NOFOLLOW), and the opened file must be a
/// regular file with no other hard link, and in a directory others can write to,
/// belong to dmon's user or the directory's owner (the rule of the kernel's
/// `fs.protected_regular=2`, which is often off). Otherwise dmon refuses, in one
/// line, rather than write through a link planted by someone else.
///
/// Why not create a temporary file and rename it over PATH, which also never
/// follows a link: the lock must stay on the one inode that PATH names. A rename
/// replaces the inode a running dmon holds locked, so a second dmon would lock
/// its own new file and both would run. Opening in place and checking what was
/// opened (fstat, after the open, so nothing can be swapped in between) keeps the
/// lock meaningful and gives the same protection.
pub struct PidFile {
    file: Flock<File>,
    path: PathBuf,
}

impl PidFile {
    /// Opens and locks PATH.
    pub fn lock(path: &Path) -> Result<PidFile, String> {
        let shown = path.display();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .and_then(|file| check_opened(&file, path, false).map(|()| file))
            .map_err(|e| format!("-p/--pid-file: cannot open '{shown}': {}", crate::io_reason(&open_error(path, e))))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(PidFile { file, path: path.to_path_buf() }),
            Err((mut file, _)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Err(format!("-p/--pid-file: '{shown}' is locked by a running dmon (pid {})", text.trim()))
            }
        }
    }

    /// Replaces the content with `pid`. The new content is written over the old
    /// before the file is cut to its length, so a full disk leaves the old content
    /// whole rather than an empty file.
    pub fn write(&mut self, pid: u32) -> io::Result<()> {
        let text = format!("{pid}\n");
        self.file.write_all_at(text.as_bytes(), 0)?;
        self.file.set_len(text.len() as u64)
    }

    /// Removes the file (on a clean exit). The lock goes with the descriptor.
    pub fn remove(self) {
        drop(self);
    }
}

impl Drop for PidFile {
    /// A pid file exists while its dmon runs: it is removed on every way out that
    /// runs destructors, but only while PATH still names the file dmon locked.
    fn drop(&mut self) {
        let ours = match (std::fs::symlink_metadata(&self.path), self.file.metadata()) {
            (Ok(at_path), Ok(locked)) => at_path.dev() == locked.dev() && at_path.ino() == locked.ino(),
            _ => false,
        };
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// An error of opening PATH without following links, for a message after
/// "cannot open 'PATH': ". A symbolic link is named as such: O_NOFOLLOW reports it
/// as "Too many levels of symbolic links".
pub fn open_error(path: &Path, e: io::Error) -> io::Error {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if e.raw_os_error() == Some(libc::ELOOP) && is_link { crate::planted::link_error("dmon") } else { e }
}

/// Checks what an open of PATH (without following links) found, by the rule of
/// [`crate::planted::check`]: a FIFO when `fifo`, else a regular file with no
/// other hard link, and in a directory others can write to, one of dmon's user or
/// the directory's owner.
pub fn check_opened(file: &File, path: &Path, fifo: bool) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::planted::check(&file.metadata()?, std::fs::metadata(dir).ok().as_ref(), "dmon", fifo)
}

/// Forks; the child starts a new session with its standard streams on
/// /dev/null and goes on as the daemon. The parent waits, on a pipe, until the
/// daemon is [`ready`] (its pid file written, the command started) and exits 0,
/// or until it fails, and then prints the daemon's one-line message and exits
/// with its code, as `-n` would: nothing that fails after the fork is silent.
pub fn detach() -> Result<(), String> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null: {e}"))?;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {}", e.desc()))?;
    // SAFETY: dmon is single-threaded here; the child only continues Rust code
    // that a fork of a single-threaded process may run.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("cannot fork: {}", e.desc()))? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(write);
            let mut answer = String::new();
            let _ = File::from(read).read_to_string(&mut answer);
            // Destructors do not run: the pid file belongs to the daemon.
            std::process::exit(match answer.split_once(' ') {
                _ if answer == "0" => 0,
                Some((code, message)) => {
                    eprintln!("dmon: {message}");
                    code.parse().unwrap_or(1)
                }
                None => {
                    eprintln!("dmon: the daemon ended before it was ready (see the system log)");
                    1
                }
            });
        }
        nix::unistd::ForkResult::Child => {
            drop(read);
            nix::unistd::setsid().map_err(|e| format!("setsid: {}", e.desc()))?;
            for fd in 0..3 {
                // SAFETY: dup2 onto the standard descriptors.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
            DETACHED.store(true, Ordering::Relaxed);
            READY.store(write.into_raw_fd(), Ordering::Relaxed);
            Ok(())
        }
    }
}

/// The daemon's end of the pipe to the waiting parent, -1 once answered.
static READY: AtomicI32 = AtomicI32::new(-1);

/// Sends the waiting parent (if any) `answer` and closes the pipe.
fn answer_parent(answer: &str) -> bool {
    let fd = READY.swap(-1, Ordering::Relaxed);
    if fd < 0 {
        return false;
    }
    // SAFETY: the descriptor was ours alone, taken out of READY above.
    let mut pipe = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    pipe.write_all(answer.as_bytes()).is_ok()
}

/// The daemon is up: the parent exits 0.
pub fn ready() {
    answer_parent("0");
}

/// Reports a failure: to the waiting parent, which prints it and exits with
/// `code`, when the daemon is not ready yet; otherwise on stderr or, detached,
/// in the system log.
pub fn fail(code: u8, message: &str) {
    let message = one_line(message);
    if !answer_parent(&format!("{code} {message}")) {
        if DETACHED.load(Ordering::Relaxed) {
            tracing::error!("{message}");
        } else {
            eprintln!("dmon: {message}");
        }
    }
}

static DETACHED: AtomicBool = AtomicBool::new(false);

/// The longest message dmon prints, in characters. Values quoted in messages come
/// from the user and may be megabytes long (a 10 MB line in a `-C` file).
const MESSAGE_MAX: usize = 300;

/// A message as one short line: control characters (a newline in a quoted value,
/// from an argument or a `\n` escape in a `-C` file) are escaped, and a message
/// longer than [`MESSAGE_MAX`] keeps its start and its end (where the reason is)
/// around an ellipsis.
pub fn one_line(text: &str) -> String {
    let escape = |part: &str| -> String {
        let mut out = String::with_capacity(part.len());
        for c in part.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        out
    };
    let count = text.chars().count();
    if count <= MESSAGE_MAX {
        return escape(text);
    }
    let head_end = text.char_indices().nth(MESSAGE_MAX / 2).map_or(text.len(), |(at, _)| at);
    let tail_start = text.char_indices().nth(count - MESSAGE_MAX / 2 + 10).map_or(text.len(), |(at, _)| at);
    format!("{} [...] {}", escape(&text[..head_end]), escape(&text[tail_start..]))
}

/// Where tracing's lines go: stderr, or syslog once detached.
pub struct LogWriter {
    buffer: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if DETACHED.load(Ordering::Relaxed) {
            let message = std::ffi::CString::new(one_line(text).replace('\0', " ")).unwrap_or_default();
            // SAFETY: a valid format string and C string.
            unsafe { libc::syslog(libc::LOG_DAEMON | libc::LOG_NOTICE, c"%s".as_ptr(), message.as_ptr()) };
        } else {
            let text = text.trim_start();
            let (level, message) = text.split_once(' ').unwrap_or(("", text));
            let level = match level {
                "ERROR" => "error: ",
                "WARN" => "warning: ",
                "DEBUG" | "TRACE" => "debug: ",
                _ => "",
            };
            let _ = writeln!(io::stderr(), "dmon: {level}{}", one_line(message.trim_start()));
        }
    }
}

/// Sets up tracing: warnings by default, more with `-v`, or the level named in
/// `DMON_LOG` (`error`, `warn`, `info`, `debug`, `trace`, `off`), which wins over
/// `-v`. A value that names no level is ignored.
pub fn init_logging(verbose: u8) {
    // SAFETY: openlog with a static identifier string.
    unsafe { libc::openlog(c"dmon".as_ptr(), libc::LOG_PID | libc::LOG_NDELAY, libc::LOG_DAEMON) };
    let level = std::env::var("DMON_LOG").ok().and_then(|name| log_level(&name)).unwrap_or(match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    });
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(|| LogWriter { buffer: Vec::new() })
        .try_init();
}

/// The level `DMON_LOG` names, in any case (`debug`, `WARN`); none when empty.
fn log_level(name: &str) -> Option<LevelFilter> {
    Some(name.trim()).filter(|name| !name.is_empty())?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmon_log_names_a_level() {
        assert_eq!(log_level("debug"), Some(LevelFilter::DEBUG));
        assert_eq!(log_level("WARN"), Some(LevelFilter::WARN));
        assert_eq!(log_level("off"), Some(LevelFilter::OFF));
        assert_eq!(log_level(""), None);
        assert_eq!(log_level("dmon=debug"), None);
    }
}
