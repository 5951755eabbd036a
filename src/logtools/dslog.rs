//! dslog (also installed as dsyslog): send each input line to the system log.
//!
//! Messages go to the syslog socket (`/dev/log` unless `--socket` names another)
//! in the form local syslog daemons expect from `syslog(3)`:
//! `<PRI>Mmm dd HH:MM:SS NAME: LINE`, as one datagram each (a stream socket gets
//! each message followed by a NUL byte, as glibc does). When the daemon cannot be
//! reached the message is retried on a fresh connection; with `-c` it goes to the
//! console instead, otherwise dslog waits and retries, so the input backs up rather
//! than a line being dropped.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;

use clap::Parser;

use super::args;
use super::pump::{self, Batch, Control, Sink};
use crate::clock;

#[derive(Parser, Debug)]
#[command(
    name = "dslog",
    version,
    about = "Send each line of the input to the system log as NAME.",
    after_help = "Signals: INT and TERM finish the line in hand and exit.\n\
                  Options in DSLOG_OPTIONS come before the command line.",
    args_override_self = true
)]
pub struct Args {
    /// Priority: emerg, alert, crit, err, warning, notice, info, debug (any case)
    #[arg(short = 'p', long, value_name = "PRIORITY", default_value = "warning", value_parser = parse_priority)]
    pub priority: u8,
    /// Facility: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0..local7
    #[arg(short = 'f', long, value_name = "FACILITY", default_value = "daemon", value_parser = parse_facility)]
    pub facility: u8,
    #[command(flatten)]
    pub input: args::InputArgs,
    /// Write to the console when the system log cannot be reached
    #[arg(short = 'c', long)]
    pub console: bool,
    /// Skip empty lines
    #[arg(short = 'e', long = "skip-empty")]
    pub skip_empty: bool,
    /// The system log socket
    #[arg(long, value_name = "PATH", default_value = "/dev/log")]
    pub socket: PathBuf,
    /// The console device for -c
    #[arg(long = "console-device", value_name = "PATH", default_value = "/dev/console")]
    pub console_device: PathBuf,
    /// Send a longer line as consecutive messages of at most SIZE bytes
    #[arg(long = "max-message", value_name = "SIZE", default_value = "8k", value_parser = parse_piece)]
    pub max_message: u64,
    /// The name messages are logged under
    #[arg(value_name = "NAME")]
    pub name: OsString,
}

const PRIORITIES: &[(&str, u8)] = &[
    ("emerg", 0),
    ("emergency", 0),
    ("panic", 0),
    ("alert", 1),
    ("crit", 2),
    ("critical", 2),
    ("err", 3),
    ("error", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("kernel", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("security", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

fn lookup(table: &[(&str, u8)], text: &str, kind: &str) -> Result<u8, String> {
    let bare = text.strip_prefix("LOG_").or_else(|| text.strip_prefix("log_")).unwrap_or(text);
    table.iter().find(|(name, _)| name.eq_ignore_ascii_case(bare)).map(|&(_, code)| code).ok_or_else(|| {
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        format!("'{text}' is not a {kind} (expected one of {})", names.join(", "))
    })
}

/// clap value parser for `-p`: a priority name, without `LOG_`, any case.
pub fn parse_priority(text: &str) -> Result<u8, String> {
    lookup(PRIORITIES, text, "priority")
}

/// clap value parser for `-f`: a facility name, without `LOG_`, any case.
pub fn parse_facility(text: &str) -> Result<u8, String> {
    lookup(FACILITIES, text, "facility")
}

fn parse_piece(text: &str) -> Result<u64, String> {
    match crate::units::parse_size(text)? {
        0 => Err(format!("'{text}' is too small (at least 1 byte)")),
        n => Ok(n),
    }
}

enum Conn {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

struct SyslogSink {
    socket: PathBuf,
    conn: Option<Conn>,
    console: Option<PathBuf>,
    pri: u8,
    name: Vec<u8>,
    skip_empty: bool,
    max_piece: usize,
    message: Vec<u8>,
}

impl SyslogSink {
    fn connect(&self) -> io::Result<Conn> {
        let datagram = UnixDatagram::unbound()?;
        match datagram.connect(&self.socket) {
            Ok(()) => Ok(Conn::Datagram(datagram)),
            // A daemon listening on a stream socket (some syslog-ng setups).
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                Ok(Conn::Stream(UnixStream::connect(&self.socket)?))
            }
            Err(e) => Err(e),
        }
    }

    fn send_once(&mut self, message: &[u8]) -> io::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let sent = match self.conn.as_mut() {
            Some(Conn::Datagram(d)) => d.send(message).map(drop),
            Some(Conn::Stream(s)) => s.write_all(message).and_then(|()| s.write_all(b"\0")),
            None => unreachable!(),
        };
        if sent.is_err() {
            self.conn = None;
        }
        sent
    }

    /// Sends one message; on failure once more on a fresh connection (the daemon
    /// may have restarted), then to the console when `-c` asked for it.
    fn deliver(&mut self, message: &[u8], text_start: usize) -> io::Result<()> {
        let first = self.send_once(message);
        let Err(first) = first else { return Ok(()) };
        if self.send_once(message).is_ok() {
            return Ok(());
        }
        match &self.console {
            Some(device) => {
                // The message without its header: `NAME: LINE`.
                let mut line = message[text_start..].to_vec();
                line.extend_from_slice(b"\r\n");
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOCTTY)
                    .open(device)
                    .and_then(|mut c| c.write_all(&line))
                    .map_err(|e| io::Error::new(e.kind(), format!("{first}; console {}: {e}", device.display())))
            }
            None => Err(first),
        }
    }
}

impl Sink for SyslogSink {
    fn write(&mut self, batch: &Batch<'_>, control: &mut Control) {
        let header = format!("<{}>{} ", self.pri, clock::syslog_stamp());
        let mut message = std::mem::take(&mut self.message);
        for line in batch.lines() {
            if self.skip_empty && line.is_empty() {
                continue;
            }
            // An empty line is still one (empty) message.
            let pieces = line.chunks(self.max_piece).chain(line.is_empty().then_some(&line[..0]));
            for piece in pieces {
                message.clear();
                message.extend_from_slice(header.as_bytes());
                let text_start = message.len();
                message.extend_from_slice(&self.name);
                message.extend_from_slice(b": ");
                message.extend_from_slice(piece);
                let socket = self.socket.display().to_string();
                control.retry(|| format!("sending to {socket}"), || self.deliver(&message, text_start));
            }
        }
        self.message = message;
    }
}

/// Runs dslog with parsed arguments; returns the exit status.
pub fn run(args: Args) -> i32 {
    let program = pump::program();
    let name = args.name.as_bytes().to_vec();
    if name.is_empty() || name.iter().any(|&b| b == b'\n' || b == 0) {
        eprintln!("{program}: NAME: '{}' is not a usable name", args.name.to_string_lossy());
        return 2;
    }
    let mut control = match Control::new(args.input.max_line) {
        Ok(c) => c,
        Err(e) => return pump::fail(e),
    };
    let mut sink = SyslogSink {
        socket: args.socket,
        conn: None,
        console: args.console.then_some(args.console_device),
        pri: args.facility * 8 + args.priority,
        name,
        skip_empty: args.skip_empty,
        max_piece: usize::try_from(args.max_message).unwrap_or(usize::MAX),
        message: Vec::new(),
    };
    pump::run_to_status(args.input.fd, &mut sink, &mut control)
}

/// The `dslog` program, also installed as `dsyslog`.
pub fn main() -> i32 {
    args::main("dslog", "DSLOG_OPTIONS", run)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names give syslog.h's codes (a facility's code is shifted by 3 there).
    #[test]
    fn names() {
        let priorities = [
            ("emerg", libc::LOG_EMERG),
            ("LOG_ERR", libc::LOG_ERR),
            ("INFO", libc::LOG_INFO),
            ("log_debug", libc::LOG_DEBUG),
        ];
        for (name, code) in priorities {
            assert_eq!(parse_priority(name).map(i32::from), Ok(code), "{name}");
        }
        let facilities = [
            ("kern", libc::LOG_KERN),
            ("daemon", libc::LOG_DAEMON),
            ("LOG_AUTHPRIV", libc::LOG_AUTHPRIV),
            ("Local3", libc::LOG_LOCAL3),
            ("local7", libc::LOG_LOCAL7),
        ];
        for (name, code) in facilities {
            assert_eq!(parse_facility(name).map(|f| i32::from(f) << 3), Ok(code), "{name}");
        }
        assert!(parse_facility("nope").unwrap_err().contains("'nope' is not a facility"));
    }
}
