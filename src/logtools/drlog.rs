//! drlog: append lines to `DIR/current` and rotate it by size and age.
//!
//! Rotation happens only between lines: a batch is cut at the last newline that
//! still fits, `current` is synced (even with `-b`), renamed to
//! `log-YYYY-mm-dd-HH:MM:SS` (UTC) without ever replacing a file, a new `current`
//! is opened, the directory is synced, and the oldest rotated files beyond `-m`
//! are removed. A line is thus in exactly one file. A file holds at most `-s`
//! bytes unless a single line is longer, in which case that line gets a file of its
//! own rather than being cut.
//!
//! Names sort by time and never collide: when a name for the current second is
//! taken (or the clock went back), the next one after the newest rotated name is
//! used, with a six-digit suffix (`log-2024-05-01-12:00:00.000001`, `.000002`, …),
//! which still sorts after it (suffixes compare as numbers). Only drlog's own
//! rotated files count: regular files of its user under such a name. The user
//! who may write the directory can plant `log-2099-01-01-00:00:00.999999`; it is
//! neither counted against `-m`, nor pruned, nor taken as the newest name.
//!
//! The time `current` was started is kept in `DIR/.timestamp` (seconds since the
//! epoch), as DMon did, so `-T` counts across restarts.
//!
//! drlog often runs as root in a directory its service's user can write to, so
//! every file is opened, replaced and renamed through [`crate::planted::Dir`]: by
//! name relative to the directory, never through a link, and `.timestamp` through
//! a new file and a rename.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use super::args;
use super::format::Format;
use super::pump::{self, Batch, Control, Sink};
use super::sys;
use crate::clock::Civil;
use crate::planted::Dir;
use crate::units;

#[derive(Parser, Debug)]
#[command(
    name = "drlog",
    version,
    about = "Append each line of the input to DIR/current, rotating it by size and age.",
    after_help = "Signals: HUP reopens DIR/current; INT and TERM finish the line in hand and exit.\n\
                  Options in DRLOG_OPTIONS come before the command line.",
    args_override_self = true
)]
pub struct Args {
    /// Keep at most N rotated files (0: keep all)
    #[arg(short = 'm', long = "max-files", value_name = "N", default_value = "10")]
    #[arg(value_parser = units::parse_count)]
    pub max_files: u64,
    /// Rotate once current has been in use for TIME (0: never by age)
    #[arg(short = 'T', long = "max-time", value_name = "TIME", default_value = "5d", value_parser = units::parse_time)]
    pub max_time: Duration,
    /// Rotate before current would grow over SIZE (0: never by size)
    #[arg(short = 's', long = "max-size", value_name = "SIZE", default_value = "150k", value_parser = units::parse_size)]
    pub max_size: u64,
    #[command(flatten)]
    pub common: args::FileArgs,
    /// The log directory; it must exist
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

const CURRENT: &str = "current";
const STARTED: &str = ".timestamp";
const PREFIX: &str = "log-";

/// Whether `name` is a rotated file's name: `log-YYYY-mm-dd-HH:MM:SS` with an
/// optional `.NNNNNN` (six digits or more).
pub fn is_rotated_name(name: &str) -> bool {
    let Some(stamp) = name.strip_prefix(PREFIX) else { return false };
    let (stamp, suffix) = match stamp.split_once('.') {
        Some((s, n)) => (s, Some(n)),
        None => (stamp, None),
    };
    let pattern = b"dddd-dd-dd-dd:dd:dd";
    let stamp_ok = stamp.len() == pattern.len()
        && stamp.bytes().zip(pattern).all(|(c, &p)| if p == b'd' { c.is_ascii_digit() } else { c == p });
    stamp_ok && suffix.is_none_or(|n| n.len() >= 6 && n.len() <= 18 && n.bytes().all(|c| c.is_ascii_digit()))
}

/// The order of rotated names: by time, then by suffix as a number (`.1000000`
/// after `.999999`).
fn rotated_key(name: &str) -> (&str, u64) {
    match name.split_once('.') {
        Some((base, n)) => (base, n.parse().unwrap_or(u64::MAX)),
        None => (name, 0),
    }
}

/// The name for a file rotated now: `candidate` unless it does not sort after
/// `newest`, else the one right after `newest`.
pub fn next_name(candidate: &str, newest: Option<&str>) -> String {
    let Some(newest) = newest.filter(|n| rotated_key(candidate) <= rotated_key(n)) else {
        return candidate.to_string();
    };
    match newest.split_once('.') {
        Some((base, n)) => {
            let next = n.parse::<u64>().unwrap_or(0) + 1;
            format!("{base}.{next:06}")
        }
        None => format!("{newest}.000001"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

struct RotatingSink {
    dir: Dir,
    current: File,
    size: u64,
    /// When `current` was started, in seconds since the epoch.
    started: u64,
    newest: Option<String>,
    max_files: u64,
    max_time: Duration,
    max_size: u64,
    durable: bool,
    format: Format,
    buf: Vec<u8>,
}

impl RotatingSink {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Opens `current`, never through a link (see [`crate::planted`]).
    fn open_current(dir: &Dir) -> io::Result<(File, u64)> {
        let file = dir.open_append(CURRENT, super::dlog::MODE)?;
        pump::end_torn_line(&file)?;
        let size = file.metadata()?.len();
        Ok((file, size))
    }

    /// Replaces `.timestamp` through a new file and a rename.
    fn write_started(&self) {
        let text = format!("{}\n", self.started);
        if let Err(e) = self.dir.replace(STARTED, text.as_bytes(), 0o644) {
            eprintln!("{}: writing {}: {}", pump::program(), self.path(STARTED).display(), crate::io_reason(&e));
        }
    }

    /// The time in `.timestamp`; `None` when it is missing or holds no number.
    fn read_started(dir: &Dir) -> io::Result<Option<u64>> {
        let Some(mut file) = dir.open_read(STARTED)? else { return Ok(None) };
        let mut text = String::new();
        Ok(io::Read::read_to_string(&mut file, &mut text).ok().and_then(|_| text.trim().parse().ok()))
    }

    /// The rotated files drlog made, oldest first: named so, regular files, and
    /// drlog's user's own. A file named so by the user who may write the log
    /// directory is not counted, not pruned and not taken as the newest, so it
    /// can neither make drlog keep more than `-m` files nor push the names of
    /// the next ones out of the pattern.
    fn rotated_names(dir: &Dir) -> io::Result<Vec<String>> {
        let me = nix::unistd::geteuid().as_raw();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_rotated_name(n))
            .filter(|n| dir.stat(n).is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_uid == me))
            .collect();
        names.sort_by(|a, b| rotated_key(a).cmp(&rotated_key(b)));
        Ok(names)
    }

    fn age_expired(&self) -> bool {
        !self.max_time.is_zero() && unix_now() >= self.started.saturating_add(self.max_time.as_secs().max(1))
    }

    fn rotate(&mut self, control: &mut Control) {
        let current = self.path(CURRENT);
        pump::sync(control, &|| format!("syncing {}", current.display()), &self.current);
        let mut name = next_name(&format!("{PREFIX}{}", Civil::now().file_stamp()), self.newest.as_deref());
        let target = name.clone();
        control.retry(
            || format!("renaming {} to {target}", current.display()),
            || loop {
                match self.dir.rename(CURRENT, &name, true) {
                    // Someone else made that name: take the next one.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => name = next_name(&name, Some(&name)),
                    other => return other,
                }
            },
        );
        self.newest = Some(name);
        let (file, size) = control.retry(|| format!("opening {}", current.display()), || Self::open_current(&self.dir));
        self.current = file;
        self.size = size;
        self.started = unix_now();
        self.write_started();
        let dir = &self.dir;
        control.retry(|| format!("syncing {}", dir.path().display()), || dir.sync());
        self.prune();
    }

    /// Removes the oldest rotated files beyond `-m`. A failure is reported and left
    /// for the next rotation: it never costs a line.
    fn prune(&self) {
        if self.max_files == 0 {
            return;
        }
        let names = match Self::rotated_names(&self.dir) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("{}: listing {}: {e}", pump::program(), self.dir.path().display());
                return;
            }
        };
        let excess = names.len().saturating_sub(self.max_files as usize);
        for name in &names[..excess] {
            if let Err(e) = self.dir.remove(name) {
                eprintln!("{}: removing {}: {e}", pump::program(), self.path(name).display());
            }
        }
    }

    /// Writes whole lines, rotating between lines as the size limit requires.
    fn put(&mut self, mut data: &[u8], control: &mut Control) {
        let what = format!("writing {}", self.path(CURRENT).display());
        while !data.is_empty() {
            let room = if self.max_size == 0 { u64::MAX } else { self.max_size.saturating_sub(self.size) };
            let take = if data.len() as u64 <= room {
                data.len()
            } else if let Some(end) = sys::memrchr(b'\n', &data[..room as usize]) {
                end + 1
            } else if self.size == 0 {
                // One line longer than the limit: alone in its file, whole.
                sys::memchr(b'\n', data).map_or(data.len(), |end| end + 1)
            } else {
                0
            };
            if take > 0 {
                pump::write_all(control, &|| what.clone(), &self.current, &[&data[..take]]);
                self.size += take as u64;
                data = &data[take..];
            }
            if !data.is_empty() {
                self.rotate(control);
            }
        }
    }
}

impl Sink for RotatingSink {
    fn write(&mut self, batch: &Batch<'_>, control: &mut Control) {
        if self.size > 0 && self.age_expired() {
            self.rotate(control);
        }
        if self.format.is_plain() {
            for part in batch.parts {
                self.put(part, control);
            }
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            self.format.render(batch, &mut buf);
            self.put(&buf, control);
            self.buf = buf;
        }
        if self.durable {
            let current = self.path(CURRENT);
            pump::sync(control, &|| format!("syncing {}", current.display()), &self.current);
        }
    }

    fn reopen(&mut self, control: &mut Control) {
        let current = self.path(CURRENT);
        pump::sync(control, &|| format!("syncing {}", current.display()), &self.current);
        let (file, size) =
            control.retry(|| format!("reopening {}", current.display()), || Self::open_current(&self.dir));
        self.current = file;
        self.size = size;
    }

    fn deadline(&self) -> Option<Instant> {
        if self.max_time.is_zero() {
            return None;
        }
        let due = self.started.saturating_add(self.max_time.as_secs().max(1));
        Some(Instant::now() + Duration::from_secs(due.saturating_sub(unix_now())))
    }

    fn tick(&mut self, control: &mut Control) {
        if !self.age_expired() {
            return;
        }
        if self.size > 0 {
            self.rotate(control);
        } else {
            // Nothing to rotate: an empty file's age starts over.
            self.started = unix_now();
            self.write_started();
        }
    }

    fn finish(&mut self, control: &mut Control) {
        let current = self.path(CURRENT);
        pump::sync(control, &|| format!("syncing {}", current.display()), &self.current);
    }
}

/// Runs drlog with parsed arguments; returns the exit status.
pub fn run(args: Args) -> i32 {
    let program = pump::program();
    let dir = args.dir;
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return pump::fail(format!("{}: not a directory", dir.display())),
        Err(e) => return pump::fail(format!("log directory {}: {e}", dir.display())),
    }
    let dir = match Dir::open(&dir, program) {
        Ok(d) => d,
        Err(e) => return pump::fail(format!("opening {}: {}", dir.display(), crate::io_reason(&e))),
    };
    let newest = match RotatingSink::rotated_names(&dir) {
        Ok(names) => names.last().cloned(),
        Err(e) => return pump::fail(format!("listing {}: {e}", dir.path().display())),
    };
    let cannot_open = |name: &str, e: io::Error| {
        pump::fail(format!("cannot open {}: {}", dir.join(name).display(), crate::io_reason(&e)))
    };
    let known = match RotatingSink::read_started(&dir) {
        Ok(known) => known,
        Err(e) => return cannot_open(STARTED, e),
    };
    let (current, size) = match RotatingSink::open_current(&dir) {
        Ok(c) => c,
        Err(e) => return cannot_open(CURRENT, e),
    };
    let known = known.filter(|_| size > 0);
    let mut control = match Control::new(args.common.input.max_line) {
        Ok(c) => c,
        Err(e) => return pump::fail(e),
    };
    let mut sink = RotatingSink {
        dir,
        current,
        size,
        started: known.unwrap_or_else(unix_now),
        newest,
        max_files: args.max_files,
        max_time: args.max_time,
        max_size: args.max_size,
        durable: !args.common.buffered,
        format: args.common.format.into(),
        buf: Vec::new(),
    };
    if known.is_none() {
        sink.write_started();
    }
    pump::run_to_status(args.common.input.fd, &mut sink, &mut control)
}

/// The `drlog` program.
pub fn main() -> i32 {
    args::main("drlog", "DRLOG_OPTIONS", run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names() {
        assert!(is_rotated_name("log-2024-05-01-12:00:00"));
        assert!(is_rotated_name("log-2024-05-01-12:00:00.000001"));
        for bad in [
            "current",
            "log-2024-05-01",
            "log-2024-05-01-12:00:00.1",
            "log-2024-05-01-12-00-00",
            "xlog-2024-05-01-12:00:00",
        ] {
            assert!(!is_rotated_name(bad), "{bad}");
        }
    }

    #[test]
    fn names_sort_after_the_newest() {
        let a = "log-2024-05-01-12:00:00";
        assert_eq!(next_name(a, None), a);
        assert_eq!(next_name("log-2024-05-01-12:00:01", Some(a)), "log-2024-05-01-12:00:01");
        assert_eq!(next_name(a, Some(a)), "log-2024-05-01-12:00:00.000001");
        assert_eq!(next_name(a, Some("log-2024-05-01-12:00:00.000009")), "log-2024-05-01-12:00:00.000010");
        // The clock went back: still after the newest.
        assert_eq!(next_name("log-2024-04-01-00:00:00", Some(a)), "log-2024-05-01-12:00:00.000001");
        // Past six digits the suffix grows, and still sorts as a number.
        let last = "log-2024-05-01-12:00:00.999999";
        assert_eq!(next_name(a, Some(last)), "log-2024-05-01-12:00:00.1000000");
        assert!(is_rotated_name("log-2024-05-01-12:00:00.1000000"));
        assert!(rotated_key("log-2024-05-01-12:00:00.1000000") > rotated_key(last));
        let mut names = vec![a.to_string()];
        for _ in 0..20 {
            let next = next_name(a, names.last().map(String::as_str));
            assert!(next > *names.last().unwrap());
            names.push(next);
        }
    }
}
