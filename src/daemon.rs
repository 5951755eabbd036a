//! Detaching from the terminal, the pid file, and where dmon's own messages go.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{Flock, FlockArg};

/// The pid file, held open and locked (flock) for dmon's whole life: a second
/// dmon given the same file finds the lock taken and refuses to start, instead of
/// guessing from the pid written in it.
pub struct PidFile {
    file: Flock<File>,
    path: PathBuf,
}

impl PidFile {
    /// Opens and locks PATH. Symlinks are not followed and only regular files are
    /// accepted.
    pub fn lock(path: &Path) -> Result<PidFile, String> {
        let shown = path.display();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| format!("-p/--pid-file: cannot open '{shown}': {}", crate::io_reason(&e)))?;
        if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(format!("-p/--pid-file: '{shown}' is not a regular file"));
        }
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(PidFile { file, path: path.to_path_buf() }),
            Err((mut file, _)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Err(format!("-p/--pid-file: '{shown}' is locked by a running dmon (pid {})", text.trim()))
            }
        }
    }

    /// Replaces the content with `pid`.
    pub fn write(&mut self, pid: u32) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(format!("{pid}\n").as_bytes())
    }

    /// Removes the file (on a clean exit). The lock goes with the descriptor.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Forks; the parent writes the child's pid into `pid_file` and exits 0 at once,
/// giving the shell its prompt back; the child starts a new session with its
/// standard streams on /dev/null, and goes on as the daemon.
pub fn detach(pid_file: Option<&mut PidFile>) -> Result<(), String> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null: {e}"))?;
    // SAFETY: dmon is single-threaded here; the child only continues Rust code
    // that a fork of a single-threaded process may run.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("cannot fork: {}", e.desc()))? {
        nix::unistd::ForkResult::Parent { child } => {
            if let Some(pid_file) = pid_file {
                if let Err(e) = pid_file.write(child.as_raw() as u32) {
                    eprintln!("dmon: cannot write the pid file: {}", crate::io_reason(&e));
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    std::process::exit(1);
                }
            }
            std::process::exit(0);
        }
        nix::unistd::ForkResult::Child => {
            nix::unistd::setsid().map_err(|e| format!("setsid: {}", e.desc()))?;
            for fd in 0..3 {
                // SAFETY: dup2 onto the standard descriptors.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
            DETACHED.store(true, Ordering::Relaxed);
            Ok(())
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

/// Sets up tracing: warnings by default, more with `-v` or `DMON_LOG`.
pub fn init_logging(verbose: u8) {
    // SAFETY: openlog with a static identifier string.
    unsafe { libc::openlog(c"dmon".as_ptr(), libc::LOG_PID | libc::LOG_NDELAY, libc::LOG_DAEMON) };
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DMON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(|| LogWriter { buffer: Vec::new() })
        .try_init();
}
