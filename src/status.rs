//! `-I PATH`: DMon's status lines, one per event, each written with a single
//! `write` as it happens: `cmd start 1234`, `log exit 1240 256`, ...
//!
//! PATH may be a FIFO. It is opened read-write and non-blocking, so dmon neither
//! waits for a reader to appear nor blocks when nobody reads: the kernel keeps
//! what fits in the pipe (64 KiB) for the next reader, and a line that does not
//! fit is dropped with a warning rather than stalling supervision.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::task::Status;

pub struct StatusFile {
    file: File,
    warned: bool,
}

impl StatusFile {
    /// Opens (creating if needed) PATH for appending. Symlinks are not followed,
    /// so a link planted in a shared directory cannot redirect root's writes.
    pub fn open(path: &Path) -> io::Result<StatusFile> {
        let is_fifo = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo());
        let mut options = OpenOptions::new();
        if is_fifo {
            options.read(true).write(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
        } else {
            options.append(true).create(true).mode(0o644).custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(path)?;
        Ok(StatusFile { file, warned: false })
    }

    /// Writes one line (a newline is added).
    pub fn line(&mut self, text: &str) {
        let mut buffer = Vec::with_capacity(text.len() + 1);
        buffer.extend_from_slice(text.as_bytes());
        buffer.push(b'\n');
        match self.file.write(&buffer) {
            Ok(n) if n == buffer.len() => self.warned = false,
            Ok(_) => self.warn(io::Error::new(io::ErrorKind::WriteZero, "short write")),
            Err(e) => self.warn(e),
        }
    }

    fn warn(&mut self, e: io::Error) {
        if !self.warned {
            tracing::warn!("cannot write to the status file: {}; status lines are being dropped", crate::io_reason(&e));
            self.warned = true;
        }
    }
}

/// The line for one event of the process named `who` (`cmd` or `log`).
pub fn format(who: &str, status: Status) -> String {
    match status {
        Status::Start(pid) => format!("{who} start {pid}"),
        Status::Exit(pid, code) => format!("{who} exit {pid} {code}"),
        Status::Stop(pid) => format!("{who} stop {pid}"),
        Status::Timeout(pid) => format!("{who} timeout {pid}"),
        Status::Pause(pid) => format!("{who} pause {pid}"),
        Status::Resume(pid) => format!("{who} resume {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_dmon_format() {
        assert_eq!(format("cmd", Status::Start(12)), "cmd start 12");
        assert_eq!(format("log", Status::Exit(12, 256)), "log exit 12 256");
        assert_eq!(format("cmd", Status::Pause(3)), "cmd pause 3");
    }
}
