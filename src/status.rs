//! `-I PATH`: one status record per event, each written with a single `write` as
//! it happens. Two formats, chosen with `--status-format`:
//! - `text` (the default): DMon's lines, `cmd start 1234`, `log exit 1240 256`,
//!   plus dmon's `tree` line;
//! - `json`: the same events as JSON Lines, one object per line, with a time
//!   stamp and named fields (docs/status.md gives the schema).
//!
//! PATH may be a FIFO. It is opened read-write and non-blocking, so dmon neither
//! waits for a reader to appear nor blocks when nobody reads: the kernel keeps
//! what fits in the pipe (64 KiB) for the next reader, and a record that does not
//! fit is dropped with a warning rather than stalling supervision. A record is
//! written whole or not at all: a pipe write of at most PIPE_BUF (4096) bytes is
//! atomic (pipe(7)), and every record is far shorter except a `tree` record with
//! an unusually long cgroup path.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;

use crate::clock::Civil;
use crate::task::{Cause, Status};
use crate::usage::Usage;

/// `--status-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// DMon's lines (cmd start 1234, cmd exit 1234 256)
    #[default]
    Text,
    /// JSON Lines: one object per event, with a time stamp (see docs/status.md)
    Json,
}

/// One event, as both formats see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Record<'a> {
    /// A task's event (`process` is `cmd` or `log`); an `exit` carries the
    /// run's usage.
    Task { process: &'a str, status: Status, usage: Option<&'a Usage> },
    /// A signal forwarded with `-s`/`-S`.
    Signal { process: &'a str, pid: i32, signal: i32 },
    /// The kernel killed a process of the run for want of memory; the run ends
    /// (its `exit` follows, with the reason `oom`). `pid` is the run's leader.
    Oom { process: &'a str, pid: i32 },
    /// How the command trees are controlled, written once at start: the backend,
    /// dmon's cgroup when it has one, how processes known by pid are signalled
    /// (`pidfd`, or `kill` where pidfds are refused), and why the backend was
    /// chosen.
    Tree { backend: &'a str, cgroup: Option<&'a Path>, signals: &'a str, reason: &'a str },
    /// A command letter read from the control FIFO of `process` (`--control`).
    /// JSON only: DMon's text lines have none.
    Control { process: &'a str, command: char },
}

pub struct StatusFile {
    file: File,
    /// A socket shared with others (`-I /dev/stderr` under a service manager):
    /// written with `send(MSG_DONTWAIT)`, which does not wait without making
    /// the shared descriptor non-blocking.
    socket: bool,
    format: Format,
    warned: bool,
}

impl StatusFile {
    /// Opens (creating if needed) PATH for appending, walked by the rule of
    /// [`crate::planted`]: a symbolic link is followed only where nobody else
    /// could have made it, so a link planted in a shared directory cannot
    /// redirect root's writes. `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` and
    /// `/proc/self/fd/N` are the descriptors they name ([`open_descriptor`]).
    pub fn open(path: &Path, format: Format) -> io::Result<StatusFile> {
        if let Some(fd) = crate::planted::descriptor(path) {
            let file = open_descriptor(fd)?;
            let socket = file.metadata()?.file_type().is_socket();
            return Ok(StatusFile { file, socket, format, warned: false });
        }
        let walk = crate::planted::walk(path, "dmon")?;
        let kind = walk.kind;
        if kind == Some(SFlag::S_IFCHR) {
            // A terminal or another device of /dev: written as it is.
            let file = walk.open(OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_NONBLOCK, 0)?;
            if !file.metadata()?.file_type().is_char_device() {
                return Err(io::Error::other("it is no longer a device (replaced while being opened)"));
            }
            return Ok(StatusFile { file, socket: false, format, warned: false });
        }
        let is_fifo = kind == Some(SFlag::S_IFIFO);
        // O_NONBLOCK: a FIFO planted after the look fails (ENXIO) instead of
        // blocking; a FIFO asked for is opened read-write, so it needs no reader.
        let flags = if is_fifo {
            OFlag::O_RDWR | OFlag::O_NONBLOCK
        } else {
            OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_NONBLOCK
        };
        let file = walk.open(flags, 0o644)?;
        // What was opened, not what was there before: a regular file with no
        // other link, or the FIFO that was seen; not someone else's in a shared
        // directory.
        crate::planted::check(&file.metadata()?, Some(walk.dir_meta()), "dmon", is_fifo)?;
        Ok(StatusFile { file, socket: false, format, warned: false })
    }

    /// Writes the record of one event, in the file's format.
    pub fn record(&mut self, record: Record) {
        let line = match self.format {
            Format::Text if matches!(record, Record::Control { .. }) => return,
            Format::Text => text(&record),
            Format::Json => json(&record, &Civil::now()),
        };
        self.line(&line);
    }

    /// A task's event: `cmd start 1234`; `usage` for an `exit`.
    pub fn report(&mut self, process: &str, status: Status, usage: Option<&Usage>) {
        self.record(Record::Task { process, status, usage });
    }

    /// Writes one line (a newline is added).
    fn line(&mut self, text: &str) {
        let mut buffer = Vec::with_capacity(text.len() + 1);
        buffer.extend_from_slice(text.as_bytes());
        buffer.push(b'\n');
        match self.write(&buffer) {
            Ok(n) if n == buffer.len() => self.warned = false,
            Ok(n) => {
                // A full disk takes part of a line. Asking for the rest gets the
                // reason; then the part is cut off again, so that every line in
                // the file stays whole and the next one starts on its own line.
                let e = match self.write(&buffer[n..]) {
                    Ok(m) if n + m == buffer.len() => return self.warned = false,
                    Ok(m) => {
                        self.cut(n + m);
                        io::Error::new(io::ErrorKind::WriteZero, "short write")
                    }
                    Err(e) => {
                        self.cut(n);
                        e
                    }
                };
                self.warn(e)
            }
            Err(e) => self.warn(e),
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.socket {
            return self.file.write(data);
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        // SAFETY: `data` is valid for reads of its length during the call.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// Removes the last `written` bytes of a regular file (a cut-off line).
    fn cut(&mut self, written: usize) {
        if let Ok(meta) = self.file.metadata() {
            if meta.is_file() {
                let _ = self.file.set_len(meta.len().saturating_sub(written as u64));
            }
        }
    }

    fn warn(&mut self, e: io::Error) {
        if !self.warned {
            tracing::warn!("cannot write to the status file: {}; status lines are being dropped", crate::io_reason(&e));
            self.warned = true;
        }
    }
}

/// The status stream on this process's descriptor `fd`. A regular file is
/// shared as it is (`dup`), so the records and the command's own output that
/// go to the same file keep one offset and never overwrite each other. A pipe,
/// FIFO or terminal is opened anew through /proc/self/fd, non-blocking, so a
/// stalled reader drops records rather than stalling dmon, without making the
/// descriptor the command inherits non-blocking too. Where that open is not
/// possible (a socket, no /proc), the descriptor is shared as it is; a socket
/// is then written with `send(MSG_DONTWAIT)` ([`StatusFile`]).
pub fn open_descriptor(fd: RawFd) -> io::Result<File> {
    // SAFETY: F_GETFL only reads the descriptor's flags; -1 when it is closed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::other(format!("descriptor {fd} is not open")));
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(io::Error::other(format!("descriptor {fd} is open for reading only")));
    }
    // SAFETY: fd was just seen open; borrowed for this call only.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let shared = || borrowed.try_clone_to_owned().map(File::from);
    let kind = shared()?.metadata()?.file_type();
    if kind.is_file() {
        return shared();
    }
    let again = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{fd}"));
    match again {
        Ok(file) if !file.metadata()?.file_type().is_file() => Ok(file),
        _ => shared(),
    }
}

/// A task's event without the task's name: `start 4711`, `exit 4711 256`.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Status::Exit(pid, code, _) => write!(f, "exit {pid} {code}"),
            // DMon's line for a pause by the load; any other cause is said
            // after it, as the usage line's fields are.
            Status::Pause(pid, cause) | Status::Resume(pid, cause) if cause != Cause::Load => {
                write!(f, "{} {pid} reason={}", event_name(*self), cause.name())
            }
            status => write!(f, "{} {}", event_name(status), status_pid(status)),
        }
    }
}

/// The name of a task event in both formats.
fn event_name(status: Status) -> &'static str {
    match status {
        Status::Start(_) => "start",
        Status::Exit(..) => "exit",
        Status::Stop(_) => "stop",
        Status::Timeout(_) => "timeout",
        Status::Pause(..) => "pause",
        Status::Resume(..) => "resume",
    }
}

fn status_pid(status: Status) -> i32 {
    match status {
        Status::Start(pid)
        | Status::Exit(pid, ..)
        | Status::Stop(pid)
        | Status::Timeout(pid)
        | Status::Pause(pid, _)
        | Status::Resume(pid, _) => pid,
    }
}

/// The usage fields of a run that the layout gives, in the order both formats
/// write them: whole milliseconds (rounded down), counts and bytes.
fn usage_fields(usage: &Usage) -> impl Iterator<Item = (&'static str, u64)> {
    let ms = |d: std::time::Duration| Some(d.as_millis() as u64);
    [
        ("wall_ms", ms(usage.wall)),
        ("cpu_user_ms", ms(usage.cpu_user)),
        ("cpu_system_ms", ms(usage.cpu_system)),
        ("paused_ms", ms(usage.paused)),
        ("tasks_peak", usage.tasks_peak),
        ("memory_peak_bytes", usage.memory_peak),
        ("io_read_bytes", usage.io_read),
        ("io_write_bytes", usage.io_write),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key, value?)))
}

/// DMon's text line: `cmd exit 1234 256`, `log signal 1240 10`, `tree cgroup2 /sys/...`.
/// An `exit` with usage is followed by dmon's usage line:
/// `cmd usage 1234 reason=exit wall_ms=5012 cpu_user_ms=480 ...`.
pub fn text(record: &Record) -> String {
    match *record {
        Record::Task { process, status: status @ Status::Exit(pid, _, reason), usage: Some(usage) } => {
            let mut line = format!("{process} {status}\n{process} usage {pid} reason={}", reason.name());
            for (key, value) in usage_fields(usage) {
                let _ = write!(line, " {key}={value}");
            }
            line
        }
        Record::Task { process, status, .. } => format!("{process} {status}"),
        Record::Signal { process, pid, signal } => format!("{process} signal {pid} {signal}"),
        Record::Oom { process, pid } => format!("{process} oom {pid}"),
        Record::Control { process, command } => format!("{process} control {command}"),
        Record::Tree { backend, cgroup, signals, .. } => {
            let dir = cgroup.map(|dir| format!(" {}", dir.display())).unwrap_or_default();
            // Only the fallback is named: DMon's readers and dmon's earlier
            // ones see the line they know wherever pidfds work.
            let how = if signals == "pidfd" { String::new() } else { format!(" signals={signals}") };
            format!("tree {backend}{dir}{how}")
        }
    }
}

/// One JSON object on one line, the fields in a fixed order: `time`, `event`,
/// then those of the event (docs/status.md).
pub fn json(record: &Record, time: &Civil) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("{\"time\":");
    json_string(&mut out, &time.rfc3339());
    let event = match record {
        Record::Task { status, .. } => event_name(*status),
        Record::Signal { .. } => "signal",
        Record::Oom { .. } => "oom",
        Record::Tree { .. } => "tree",
        Record::Control { .. } => "control",
    };
    out.push_str(",\"event\":");
    json_string(&mut out, event);
    match *record {
        Record::Task { process, status, usage } => {
            out.push_str(",\"process\":");
            json_string(&mut out, process);
            let _ = write!(out, ",\"pid\":{}", status_pid(status));
            if let Status::Pause(_, cause) | Status::Resume(_, cause) = status {
                let _ = write!(out, ",\"reason\":\"{}\"", cause.name());
            }
            if let Status::Exit(_, wait_status, reason) = status {
                let _ = write!(out, ",\"status\":{wait_status}");
                if libc::WIFSIGNALED(wait_status) {
                    let _ = write!(out, ",\"signal\":{}", libc::WTERMSIG(wait_status));
                } else {
                    let _ = write!(out, ",\"code\":{}", libc::WEXITSTATUS(wait_status));
                }
                let _ = write!(out, ",\"reason\":\"{}\"", reason.name());
                if let Some(usage) = usage {
                    let fields: Vec<String> = usage_fields(usage).map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    let _ = write!(out, ",\"usage\":{{{}}}", fields.join(","));
                }
            }
        }
        Record::Signal { process, pid, signal } => {
            out.push_str(",\"process\":");
            json_string(&mut out, process);
            let _ = write!(out, ",\"pid\":{pid},\"signal\":{signal}");
        }
        Record::Oom { process, pid } => {
            out.push_str(",\"process\":");
            json_string(&mut out, process);
            let _ = write!(out, ",\"pid\":{pid}");
        }
        Record::Control { process, command } => {
            out.push_str(",\"process\":");
            json_string(&mut out, process);
            out.push_str(",\"command\":");
            json_string(&mut out, command.encode_utf8(&mut [0; 4]));
        }
        Record::Tree { backend, cgroup, signals, reason } => {
            out.push_str(",\"backend\":");
            json_string(&mut out, backend);
            if let Some(dir) = cgroup {
                out.push_str(",\"cgroup\":");
                json_string(&mut out, &dir.to_string_lossy());
            }
            out.push_str(",\"signals\":");
            json_string(&mut out, signals);
            out.push_str(",\"reason\":");
            json_string(&mut out, reason);
        }
    }
    out.push('}');
    out
}

/// Appends `text` as a JSON string (RFC 8259, section 7): quotes, backslashes and
/// control characters escaped, everything else as it is.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Reason;
    use std::time::Duration;

    const EXIT_1: i32 = 1 << 8;
    const KILLED: i32 = 9;

    fn at() -> Civil {
        Civil::from_unix(1_714_566_896, 123_456)
    }

    /// The line for one event of the process named `who`, in DMon's text format.
    fn format(who: &str, status: Status) -> String {
        text(&Record::Task { process: who, status, usage: None })
    }

    #[test]
    fn lines_have_dmon_format() {
        assert_eq!(format("cmd", Status::Start(12)), "cmd start 12");
        assert_eq!(format("log", Status::Exit(12, 256, Reason::Exit)), "log exit 12 256");
        assert_eq!(format("cmd", Status::Pause(3, Cause::Load)), "cmd pause 3");
        assert_eq!(format("cmd", Status::Resume(3, Cause::Load)), "cmd resume 3");
        assert_eq!(format("cmd", Status::Pause(3, Cause::Manual)), "cmd pause 3 reason=manual");
        assert_eq!(format("cmd", Status::Resume(3, Cause::Pressure)), "cmd resume 3 reason=pressure");
        assert_eq!(text(&Record::Signal { process: "cmd", pid: 7, signal: 10 }), "cmd signal 7 10");
        let dir = Some(Path::new("/sys/fs/cgroup/dmon.4"));
        let tree = Record::Tree { backend: "cgroup2", cgroup: dir, signals: "pidfd", reason: "r" };
        assert_eq!(text(&tree), "tree cgroup2 /sys/fs/cgroup/dmon.4");
        let tree = Record::Tree { backend: "cgroup2", cgroup: dir, signals: "kill", reason: "r" };
        assert_eq!(text(&tree), "tree cgroup2 /sys/fs/cgroup/dmon.4 signals=kill");
        let tree = Record::Tree { backend: "signals", cgroup: None, signals: "pidfd", reason: "r" };
        assert_eq!(text(&tree), "tree signals");
        let tree = Record::Tree { backend: "signals", cgroup: None, signals: "kill", reason: "r" };
        assert_eq!(text(&tree), "tree signals signals=kill");
    }

    #[test]
    fn json_records() {
        let task = |status| json(&Record::Task { process: "cmd", status, usage: None }, &at());
        assert_eq!(
            task(Status::Start(12)),
            r#"{"time":"2024-05-01T12:34:56.123456Z","event":"start","process":"cmd","pid":12}"#
        );
        assert_eq!(
            task(Status::Exit(12, EXIT_1, Reason::Exit)),
            r#"{"time":"2024-05-01T12:34:56.123456Z","event":"exit","process":"cmd","pid":12,"status":256,"code":1,"reason":"exit"}"#
        );
        assert_eq!(
            task(Status::Exit(12, KILLED, Reason::Signal)),
            r#"{"time":"2024-05-01T12:34:56.123456Z","event":"exit","process":"cmd","pid":12,"status":9,"signal":9,"reason":"signal"}"#
        );
        for (status, name) in [(Status::Stop(1), "stop"), (Status::Timeout(1), "timeout")] {
            assert!(task(status).contains(&format!(r#""event":"{name}","process":"cmd","pid":1}}"#)));
        }
        for (status, tail) in [
            (Status::Pause(1, Cause::Load), r#""event":"pause","process":"cmd","pid":1,"reason":"load"}"#),
            (Status::Pause(1, Cause::Pressure), r#""event":"pause","process":"cmd","pid":1,"reason":"pressure"}"#),
            (Status::Resume(1, Cause::Manual), r#""event":"resume","process":"cmd","pid":1,"reason":"manual"}"#),
        ] {
            assert!(task(status).ends_with(tail), "{}", task(status));
        }
        let control = json(&Record::Control { process: "cmd", command: 'p' }, &at());
        assert!(control.ends_with(r#""event":"control","process":"cmd","command":"p"}"#), "{control}");
        let signal = json(&Record::Signal { process: "log", pid: 40, signal: 1 }, &at());
        assert!(signal.ends_with(r#""event":"signal","process":"log","pid":40,"signal":1}"#), "{signal}");
    }

    /// A run's usage: what every layout gives, and a field it may lack.
    fn usage() -> Usage {
        Usage {
            wall: Duration::from_micros(5_012_900),
            cpu_user: Duration::from_micros(480_999),
            cpu_system: Duration::from_millis(20),
            paused: Duration::from_millis(1500),
            memory_peak: Some(1 << 20),
            ..Usage::default()
        }
    }

    #[test]
    fn an_exit_carries_reason_and_usage_absent_fields_left_out() {
        let usage = usage();
        let record = Record::Task { process: "cmd", status: Status::Exit(12, 9, Reason::Timeout), usage: Some(&usage) };
        assert_eq!(
            text(&record),
            "cmd exit 12 9\ncmd usage 12 reason=timeout wall_ms=5012 cpu_user_ms=480 cpu_system_ms=20 \
             paused_ms=1500 memory_peak_bytes=1048576"
        );
        assert!(json(&record, &at()).ends_with(
            r#""status":9,"signal":9,"reason":"timeout","usage":{"wall_ms":5012,"cpu_user_ms":480,"cpu_system_ms":20,"paused_ms":1500,"memory_peak_bytes":1048576}}"#
        ));
    }

    #[test]
    fn json_tree_escapes_the_reason() {
        let record = Record::Tree {
            backend: "cgroup2",
            cgroup: Some(Path::new("/sys/fs/cgroup/a \"b\"")),
            signals: "pidfd",
            reason: "back\\slash\ttab\nnew\u{1}line é",
        };
        assert_eq!(
            json(&record, &at()),
            "{\"time\":\"2024-05-01T12:34:56.123456Z\",\"event\":\"tree\",\"backend\":\"cgroup2\",\
             \"cgroup\":\"/sys/fs/cgroup/a \\\"b\\\"\",\"signals\":\"pidfd\",\"reason\":\"back\\\\slash\\ttab\\nnew\\u0001line é\"}"
        );
        let record = Record::Tree { backend: "signals", cgroup: None, signals: "kill", reason: "none" };
        assert!(
            json(&record, &at()).ends_with(r#""event":"tree","backend":"signals","signals":"kill","reason":"none"}"#)
        );
    }

    #[test]
    fn records_go_to_the_file_in_its_format() {
        let dir = std::env::temp_dir().join(format!("dmon-status-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (format, expected) in [(Format::Text, "cmd start 5\n"), (Format::Json, "\"event\":\"start\"")] {
            let path = dir.join(format!("{format:?}"));
            let _ = std::fs::remove_file(&path);
            let mut file = StatusFile::open(&path, format).unwrap();
            file.report("cmd", Status::Start(5), None);
            let written = std::fs::read_to_string(&path).unwrap();
            assert!(written.contains(expected), "{format:?}: {written:?}");
            assert_eq!(written.lines().count(), 1);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
