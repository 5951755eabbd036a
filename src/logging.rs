//! dmon's own messages: each one short line, `dmon: ` and the level's word on
//! stderr, or the system log once dmon has detached.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::level_filters::LevelFilter;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

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

/// Sets up tracing: warnings by default, more with `-v`, or the level named in
/// `DMON_LOG` (`error`, `warn`, `info`, `debug`, `trace`, `off`), which wins over
/// `-v`. A value that names no level is ignored.
pub fn init(verbose: u8) {
    // SAFETY: the identifier is a static C string, which openlog may keep.
    unsafe { libc::openlog(c"dmon".as_ptr(), libc::LOG_PID | libc::LOG_NDELAY, libc::LOG_DAEMON) };
    let level = std::env::var("DMON_LOG").ok().and_then(|name| log_level(&name)).unwrap_or(match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    });
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_level(false)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(Lines)
        .try_init();
}

/// The level `DMON_LOG` names, in any case (`debug`, `WARN`); none when empty.
fn log_level(name: &str) -> Option<LevelFilter> {
    Some(name.trim()).filter(|name| !name.is_empty())?.parse().ok()
}

/// Makes a [`Line`] for each event, knowing the event's level.
struct Lines;

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line { level: Level::INFO, text: Vec::new() }
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line { level: *meta.level(), text: Vec::new() }
    }
}

/// One event's text, gathered and written out whole when dropped.
struct Line {
    level: Level,
    text: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        let message = one_line(text.trim());
        if message.is_empty() {
            return;
        }
        if detached() {
            let line = std::ffi::CString::new(format!("{} {message}", self.level)).unwrap_or_default();
            // SAFETY: a constant format string that takes one C string, and a C
            // string without NUL bytes inside (one_line escapes them).
            unsafe { libc::syslog(libc::LOG_DAEMON | libc::LOG_NOTICE, c"%s".as_ptr(), line.as_ptr()) };
        } else {
            let word = match self.level {
                Level::ERROR => "error: ",
                Level::WARN => "warning: ",
                Level::DEBUG | Level::TRACE => "debug: ",
                _ => "",
            };
            let _ = writeln!(io::stderr(), "dmon: {word}{message}");
        }
    }
}

/// dmon has detached: its messages go to the system log from now on.
pub fn to_system_log() {
    DETACHED.store(true, Ordering::Relaxed);
}

/// Whether dmon detached: its messages then go to the system log.
pub fn detached() -> bool {
    DETACHED.load(Ordering::Relaxed)
}

static DETACHED: AtomicBool = AtomicBool::new(false);

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
