//! dlog: append each input line to a file (or standard output), durably.
//!
//! Durable by default: after each batch's lines are written, `fdatasync(2)` runs
//! before the pump takes them from the input, so a crash can lose nothing dlog has
//! taken (what is still in the pipe belongs to the next reader). That is one sync
//! per batch, not per line as DMon's C dlog did, which capped a chatty service at a
//! few hundred lines per second on a real disk.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use clap::Parser;

use super::args;
use super::format::Format;
use super::pump::{self, Batch, Control, Sink};
use super::sys;
use crate::planted::Dir;

#[derive(Parser, Debug)]
#[command(
    name = "dlog",
    version,
    about = "Append each line of the input to FILE (or standard output), synced to disk per batch of lines.",
    after_help = "Signals: HUP reopens FILE; INT and TERM finish the line in hand and exit.\n\
                  Options in DLOG_OPTIONS come before the command line.",
    args_override_self = true
)]
pub struct Args {
    #[command(flatten)]
    pub common: args::FileArgs,
    /// The file to append to (created when missing, never through a link); standard output without it
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// The mode of a new FILE (less the umask): logs often hold what only the
/// service's user and group should read.
pub const MODE: libc::mode_t = 0o640;

/// Opens FILE for appending, by name in its directory, walked by the rule of
/// [`crate::planted`]: through a link only where nobody else could have made it,
/// and only a regular file of dlog's user or the directory's owner.
/// `/dev/stdout`, `/dev/stderr` and `/dev/fd/N` are the descriptors they name.
/// A line that a KILL left torn at its end is ended first.
fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(fd) = crate::planted::descriptor(path) {
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: just seen open; borrowed for the duplication only.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        return Ok(File::from(fd.try_clone_to_owned()?));
    }
    let walk = crate::planted::walk(path, pump::program())?;
    if walk.name == "." {
        return Err(std::io::Error::other("not the name of a file"));
    }
    let file = Dir::of_walk(&walk, path)?.open_append(&walk.name, MODE)?;
    pump::end_torn_line(&file)?;
    Ok(file)
}

struct FileSink {
    file: File,
    path: Option<PathBuf>,
    syncable: bool,
    durable: bool,
    format: Format,
    buf: Vec<u8>,
}

impl FileSink {
    fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("writing {}", p.display()),
            None => "writing standard output".into(),
        }
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: &Batch<'_>, control: &mut Control) {
        let description = self.describe();
        let what = || description.clone();
        if self.format.is_plain() {
            pump::write_all(control, &what, &self.file, &batch.parts);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            self.format.render(batch, &mut buf);
            pump::write_all(control, &what, &self.file, &[&buf]);
            self.buf = buf;
        }
        if self.durable && self.syncable {
            pump::sync(control, &|| format!("syncing {}", self.describe()), &self.file);
        }
    }

    fn reopen(&mut self, control: &mut Control) {
        let Some(path) = self.path.clone() else { return };
        if self.syncable {
            pump::sync(control, &|| format!("syncing {}", path.display()), &self.file);
        }
        self.file = control.retry(|| format!("reopening {}", path.display()), || open_append(&path));
        self.syncable = sys::is_regular_file(std::os::fd::AsRawFd::as_raw_fd(&self.file));
    }

    fn finish(&mut self, control: &mut Control) {
        if self.syncable {
            pump::sync(control, &|| format!("syncing {}", self.describe()), &self.file);
        }
    }
}

/// Runs dlog with parsed arguments; returns the exit status.
pub fn run(args: Args) -> i32 {
    let file = match &args.file {
        Some(path) => {
            open_append(path).map_err(|e| format!("cannot open {}: {}", path.display(), crate::io_reason(&e)))
        }
        None => {
            std::io::stdout().as_fd().try_clone_to_owned().map(File::from).map_err(|e| format!("standard output: {e}"))
        }
    };
    let file = match file {
        Ok(f) => f,
        Err(e) => return pump::fail(e),
    };
    let mut control = match Control::new(args.common.input.max_line) {
        Ok(c) => c,
        Err(e) => return pump::fail(e),
    };
    let syncable = sys::is_regular_file(std::os::fd::AsRawFd::as_raw_fd(&file));
    let mut sink = FileSink {
        file,
        path: args.file,
        syncable,
        durable: !args.common.buffered,
        format: args.common.format.into(),
        buf: Vec::new(),
    };
    pump::run_to_status(args.common.input.fd, &mut sink, &mut control)
}

/// The `dlog` program.
pub fn main() -> i32 {
    args::main("dlog", "DLOG_OPTIONS", run)
}
