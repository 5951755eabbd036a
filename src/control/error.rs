//! Why a `supervise/` directory cannot be had: each refusal keeps the path it
//! names and the system's error until it is printed.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

/// What failed on a path, as the message says it: `cannot make 'PATH': …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Make,
    Lock,
    LookAt,
    MakeFifo,
    ReplaceStaleFifo,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Op::Make => "make",
            Op::Lock => "lock",
            Op::LookAt => "look at",
            Op::MakeFifo => "make the FIFO",
            Op::ReplaceStaleFifo => "replace the stale FIFO",
        })
    }
}

/// Why a file of `supervise/` could not be opened by name.
#[derive(Debug)]
pub enum OpenError {
    /// A symbolic link, refused (O_NOFOLLOW).
    Link,
    /// `supervise` itself is a link or no directory.
    NotADirectory,
    /// A FIFO without a reader, opened for writing only.
    NoReader,
    Os(io::Error),
}

impl OpenError {
    /// The reason `openat` gave.
    pub fn of(e: Errno) -> OpenError {
        match e {
            Errno::ELOOP => OpenError::Link,
            Errno::ENXIO => OpenError::NoReader,
            e => OpenError::Os(e.into()),
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            OpenError::Link => f.write_str("it is a symbolic link, which dmon does not follow (remove it)"),
            OpenError::NotADirectory => f.write_str("not a directory (a link is not followed)"),
            OpenError::NoReader => f.write_str("no such device or address"),
            OpenError::Os(e) => f.write_str(&crate::io_reason(e)),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Os(e) => Some(e),
            _ => None,
        }
    }
}

/// Why `--control DIR` cannot be had.
#[derive(Debug)]
pub enum ControlError {
    /// `op` failed on `path`.
    Failed {
        op: Op,
        path: PathBuf,
        err: io::Error,
    },
    Open {
        path: PathBuf,
        err: OpenError,
    },
    /// An open file could not be looked at (said as the system says it).
    Stat(io::Error),
    /// `supervise/` is another user's.
    Owner {
        path: PathBuf,
        uid: u32,
        euid: u32,
    },
    /// `supervise/` can be written by every user.
    OpenToAll {
        path: PathBuf,
    },
    /// Another supervisor holds the lock (`holder`, from /proc/locks).
    Locked {
        path: PathBuf,
        holder: Option<u32>,
    },
    /// `lock` is not a regular file, or has other names.
    NotOwnFile {
        path: PathBuf,
    },
    Link {
        path: PathBuf,
    },
    NotRegular {
        path: PathBuf,
    },
    /// A FIFO of `uid`, not of dmon's user.
    ForeignFifo {
        path: PathBuf,
        uid: u32,
    },
    NotFifo {
        path: PathBuf,
    },
    /// A FIFO that was another file by the time it was opened.
    Replaced {
        path: PathBuf,
    },
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            ControlError::Failed { op, path, err } => {
                write!(f, "cannot {op} '{}': {}", path.display(), crate::io_reason(err))
            }
            ControlError::Open { path, err } => write!(f, "cannot open '{}': {err}", path.display()),
            ControlError::Stat(err) => err.fmt(f),
            ControlError::Owner { path, uid, euid } => {
                write!(f, "'{}' belongs to uid {uid}, not to dmon's user ({euid})", path.display())
            }
            ControlError::OpenToAll { path } => {
                write!(f, "'{}' can be written by anyone; make it 0700 (or 0770 for a group)", path.display())
            }
            ControlError::Locked { path, holder } => {
                write!(f, "'{}' is locked by another supervisor", path.display())?;
                holder.map_or(Ok(()), |pid| write!(f, " (pid {pid})"))
            }
            ControlError::NotOwnFile { path } => write!(f, "'{}' is not a regular file of its own", path.display()),
            ControlError::Link { path } => {
                write!(f, "'{}' is a symbolic link, which dmon does not follow (remove it)", path.display())
            }
            ControlError::NotRegular { path } => write!(f, "'{}' is not a regular file", path.display()),
            ControlError::ForeignFifo { path, uid } => {
                write!(f, "'{}' is a FIFO of uid {uid}, not of dmon's user (remove it)", path.display())
            }
            ControlError::NotFifo { path } => write!(f, "'{}' exists and is not a FIFO (remove it)", path.display()),
            ControlError::Replaced { path } => write!(f, "'{}' was replaced while being opened", path.display()),
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControlError::Failed { err, .. } | ControlError::Stat(err) => Some(err),
            ControlError::Open { err, .. } => Some(err),
            _ => None,
        }
    }
}
