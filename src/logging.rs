//! dmon's own messages: each one short line, `dmon: ` and the level's word on
//! stderr, or the system log once dmon has detached.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, span};

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
    let _ = tracing::subscriber::set_global_default(Messages { level });
}

/// The level `DMON_LOG` names, in any case (`debug`, `WARN`); none when empty.
fn log_level(name: &str) -> Option<LevelFilter> {
    Some(name.trim()).filter(|name| !name.is_empty())?.parse().ok()
}

/// dmon's subscriber: each event up to `level` becomes one line. dmon makes no
/// spans, so there is nothing to keep between events (a registry of spans is
/// tens of KiB that every idle dmon would hold).
struct Messages {
    level: LevelFilter,
}

impl tracing::Subscriber for Messages {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.level
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.level)
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        write(*event.metadata().level(), &text.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// An event's message, then its other fields as `name=value`.
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let gap = if self.0.is_empty() { "" } else { " " };
        let _ = match field.name() {
            "message" => write!(self.0, "{gap}{value:?}"),
            name => write!(self.0, "{gap}{name}={value:?}"),
        };
    }
}

/// Writes one message, as one line, to stderr or (detached) the system log.
fn write(level: Level, text: &str) {
    let message = one_line(text.trim());
    if message.is_empty() {
        return;
    }
    if detached() {
        let line = std::ffi::CString::new(format!("{level} {message}")).unwrap_or_default();
        // SAFETY: a constant format string that takes one C string, and a C
        // string without NUL bytes inside (one_line escapes them).
        unsafe { libc::syslog(libc::LOG_DAEMON | libc::LOG_NOTICE, c"%s".as_ptr(), line.as_ptr()) };
    } else {
        let word = match level {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::DEBUG | Level::TRACE => "debug: ",
            _ => "",
        };
        // One write, so that lines of processes sharing stderr never mix.
        let _ = io::stderr().write_all(format!("dmon: {word}{message}\n").as_bytes());
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
