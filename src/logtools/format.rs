//! How dlog and drlog dress a line: an optional timestamp, an optional prefix, the
//! line's bytes untouched (UTF-8 or not), a newline. Empty lines are kept unless
//! asked otherwise.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::builder::{OsStringValueParser, TypedValueParser};

use super::pump::Batch;
use crate::clock::Civil;

/// The line-format options of dlog and drlog (in [`super::args::FileArgs`]).
#[derive(clap::Args, Debug, Clone)]
pub struct FormatArgs {
    /// Put a UTC timestamp YYYY-mm-dd/HH:MM:SS in front of each line
    #[arg(short = 't', long)]
    pub timestamp: bool,
    /// Put an RFC 3339 UTC timestamp with microseconds in front of each line
    #[arg(short = 'R', long)]
    pub rfc3339: bool,
    /// Put PREFIX and a space in front of each line (after the timestamp)
    #[arg(short = 'p', long, value_name = "PREFIX", value_parser = OsStringValueParser::new().try_map(one_line_prefix))]
    pub prefix: Option<OsString>,
    /// Skip empty lines
    #[arg(short = 'e', long = "skip-empty")]
    pub skip_empty: bool,
}

/// `-p`: a prefix that keeps each line one line.
fn one_line_prefix(prefix: OsString) -> Result<OsString, String> {
    if prefix.as_encoded_bytes().contains(&b'\n') {
        return Err(format!("'{}' contains a newline, which would split every line", prefix.to_string_lossy()));
    }
    Ok(prefix)
}

impl From<FormatArgs> for Format {
    /// `-R` wins over `-t`.
    fn from(args: FormatArgs) -> Format {
        let stamp = match (args.rfc3339, args.timestamp) {
            (true, _) => Stamp::Rfc3339,
            (false, true) => Stamp::Dmon,
            (false, false) => Stamp::None,
        };
        Format { stamp, prefix: args.prefix.map(OsString::into_vec), skip_empty: args.skip_empty }
    }
}

/// Which timestamp goes in front of each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stamp {
    #[default]
    None,
    /// `YYYY-mm-dd/HH:MM:SS`, UTC, DMon's format.
    Dmon,
    /// `YYYY-mm-ddTHH:MM:SS.ffffffZ`, UTC, RFC 3339 with microseconds.
    Rfc3339,
}

#[derive(Debug, Clone, Default)]
pub struct Format {
    pub stamp: Stamp,
    pub prefix: Option<Vec<u8>>,
    pub skip_empty: bool,
}

impl Format {
    /// Whether lines are written exactly as read, so a batch can go out without a copy.
    pub fn is_plain(&self) -> bool {
        self.stamp == Stamp::None && self.prefix.is_none() && !self.skip_empty
    }

    /// Appends every line of `batch`, dressed, to `out`. One timestamp serves the
    /// whole batch: its lines were all taken from the input by the same read.
    pub fn render(&self, batch: &Batch<'_>, out: &mut Vec<u8>) {
        let stamp = match self.stamp {
            Stamp::None => String::new(),
            Stamp::Dmon => Civil::now().dmon(),
            Stamp::Rfc3339 => Civil::now().rfc3339(),
        };
        for line in batch.lines() {
            if self.skip_empty && line.is_empty() {
                continue;
            }
            if !stamp.is_empty() {
                out.extend_from_slice(stamp.as_bytes());
                out.push(b' ');
            }
            if let Some(prefix) = &self.prefix {
                out.extend_from_slice(prefix);
                out.push(b' ');
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
}
