//! How dlog and drlog dress a line: an optional timestamp, an optional prefix, the
//! line's bytes untouched (UTF-8 or not), a newline. Empty lines are kept unless
//! asked otherwise.

use super::pump::Batch;
use crate::clock::Civil;

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
