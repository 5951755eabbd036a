//! `-r NAME=VALUE`: resource limits for the command and the log command.
//!
//! The names are DMon's. Each limit sets both the soft and the hard value, as DMon
//! does; `unlimited` lifts it. Values of byte limits take size suffixes (k, m, g),
//! of time limits time suffixes (cpu in seconds, rttime in microseconds as the
//! kernel counts it).

use nix::libc;

/// How a limit's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Bytes,
    Seconds,
    Micros,
    Count,
}

const TABLE: &[(&str, libc::__rlimit_resource_t, Unit, &str)] = &[
    ("vmem", libc::RLIMIT_AS, Unit::Bytes, "address space size"),
    ("core", libc::RLIMIT_CORE, Unit::Bytes, "core file size"),
    ("cpu", libc::RLIMIT_CPU, Unit::Seconds, "CPU time"),
    ("data", libc::RLIMIT_DATA, Unit::Bytes, "data segment size"),
    ("fsize", libc::RLIMIT_FSIZE, Unit::Bytes, "file size"),
    ("locks", libc::RLIMIT_LOCKS, Unit::Count, "file locks"),
    ("mlock", libc::RLIMIT_MEMLOCK, Unit::Bytes, "locked memory"),
    ("msgq", libc::RLIMIT_MSGQUEUE, Unit::Bytes, "POSIX message queue bytes"),
    ("nice", libc::RLIMIT_NICE, Unit::Count, "ceiling of the nice value (20 - nice)"),
    ("files", libc::RLIMIT_NOFILE, Unit::Count, "open files"),
    ("nproc", libc::RLIMIT_NPROC, Unit::Count, "processes of the user"),
    ("rss", libc::RLIMIT_RSS, Unit::Bytes, "resident set size"),
    ("rtprio", libc::RLIMIT_RTPRIO, Unit::Count, "real-time priority"),
    ("rttime", libc::RLIMIT_RTTIME, Unit::Micros, "real-time CPU time without blocking"),
    ("sigpending", libc::RLIMIT_SIGPENDING, Unit::Count, "queued signals"),
    ("stack", libc::RLIMIT_STACK, Unit::Bytes, "stack size"),
];

/// One parsed `-r` limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub resource: libc::__rlimit_resource_t,
    pub value: libc::rlim_t,
}

impl Limit {
    pub fn parse(text: &str) -> Result<Limit, String> {
        let Some((name, value)) = text.split_once('=') else {
            return Err(format!("'{text}' is not NAME=VALUE (-r help lists the names)"));
        };
        let Some(&(_, resource, unit, _)) = TABLE.iter().find(|row| row.0 == name) else {
            return Err(format!("unknown limit '{name}' (-r help lists the names)"));
        };
        let value = if value == "unlimited" || value == "infinity" {
            libc::RLIM_INFINITY
        } else {
            let parsed = match unit {
                Unit::Bytes => crate::units::parse_size(value),
                Unit::Count => crate::units::parse_count(value),
                Unit::Seconds => crate::units::parse_time(value).and_then(|d| match d.subsec_nanos() {
                    0 => Ok(d.as_secs()),
                    _ => Err(format!("'{value}' is not a whole number of seconds")),
                }),
                Unit::Micros => crate::units::parse_count(value),
            };
            parsed.map_err(|e| format!("{name}: {e}"))?
        };
        Ok(Limit { resource, value })
    }

    /// Whether the limit can be applied, checked before anything starts: a value
    /// above the hard limit needs CAP_SYS_RESOURCE, and open files cannot go above
    /// the kernel's `fs.nr_open` for anyone.
    pub fn check(&self) -> Result<(), LimitError> {
        let name = TABLE.iter().find(|row| row.1 == self.resource).map_or("?", |row| row.0);
        let mut now = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one struct.
        if unsafe { libc::getrlimit(self.resource, &mut now) } != 0 {
            return Ok(());
        }
        if self.resource == libc::RLIMIT_NOFILE {
            let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|t| t.trim().parse().ok());
            if let Some(max) = nr_open.filter(|max: &libc::rlim_t| self.value > *max) {
                return Err(LimitError::AboveNrOpen { name, value: self.value, max });
            }
        }
        let may_raise =
            caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_RESOURCE).unwrap_or(false);
        if self.value > now.rlim_max && !may_raise {
            return Err(LimitError::AboveHard { name, value: self.value, hard: now.rlim_max });
        }
        Ok(())
    }

    /// Applies the limit. Called in the child between fork and exec: a single raw
    /// system call, no allocation.
    pub fn apply(&self) -> std::io::Result<()> {
        let limit = libc::rlimit { rlim_cur: self.value, rlim_max: self.value };
        // SAFETY: setrlimit reads a valid struct and has no other effect on memory.
        if unsafe { libc::setrlimit(self.resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A limit that cannot be applied (`-r`): nothing was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    AboveNrOpen { name: &'static str, value: libc::rlim_t, max: libc::rlim_t },
    AboveHard { name: &'static str, value: libc::rlim_t, hard: libc::rlim_t },
}

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match *self {
            LimitError::AboveNrOpen { name, value, max } => {
                write!(f, "{name}={} is above the kernel's maximum fs.nr_open = {max}", shown(value))
            }
            LimitError::AboveHard { name, value, hard } => write!(
                f,
                "{name}={} is above the hard limit {}, which only CAP_SYS_RESOURCE may raise",
                shown(value),
                shown(hard)
            ),
        }
    }
}

impl std::error::Error for LimitError {}

fn shown(value: libc::rlim_t) -> String {
    if value == libc::RLIM_INFINITY { "unlimited".into() } else { value.to_string() }
}

/// The text of `-r help`.
pub fn help() -> String {
    let mut out = String::from("Limits for -r NAME=VALUE (VALUE may be 'unlimited'):\n");
    for (name, _, unit, what) in TABLE {
        let unit = match unit {
            Unit::Bytes => "bytes; k, m, g",
            Unit::Seconds => "seconds; m, h, d, w",
            Unit::Micros => "microseconds",
            Unit::Count => "number",
        };
        out.push_str(&format!("  {name:<11} {what} ({unit})\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(Limit::parse("files=64"), Ok(Limit { resource: libc::RLIMIT_NOFILE, value: 64 }));
        assert_eq!(Limit::parse("core=1m").unwrap().value, 1 << 20);
        assert_eq!(Limit::parse("cpu=2m").unwrap().value, 120);
        assert_eq!(Limit::parse("stack=unlimited").unwrap().value, libc::RLIM_INFINITY);
        assert!(Limit::parse("files").unwrap_err().contains("NAME=VALUE"));
        assert!(Limit::parse("nofile=3").unwrap_err().contains("unknown limit 'nofile'"));
        assert!(Limit::parse("files=-1").unwrap_err().starts_with("files: '-1'"));
        assert!(Limit::parse("cpu=0.9").unwrap_err().contains("not a whole number of seconds"));
        assert_eq!(Limit::parse("cpu=1.5m").unwrap().value, 90);
    }

    #[test]
    fn help_lists_every_name() {
        let text = help();
        for (name, ..) in TABLE {
            assert!(text.contains(name));
        }
    }
}
