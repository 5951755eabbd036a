//! One supervised process, the command or the log command: its task, its tree
//! and what the loop keeps of its current run.

use std::ffi::OsString;
use std::time::Instant;

use crate::creds::{Credentials, Ids};
use crate::task::{Policy, Task};
use crate::tree::Tree;
use crate::usage::{Begins, Meter};

use super::relay;

/// Which of the two supervised processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Cmd,
    Log,
}

impl Which {
    /// As in the status lines.
    pub fn name(self) -> &'static str {
        match self {
            Which::Cmd => "cmd",
            Which::Log => "log",
        }
    }
}

/// Whether dmon forwards the signals of `-s` / `-S` to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    Signals,
    Nothing,
}

/// One supervised process: the command or the log command.
pub struct Proc {
    /// `cmd` or `log`, as in the status lines.
    pub name: &'static str,
    pub argv: Vec<OsString>,
    pub task: Task,
    pub tree: Tree,
    pub creds: Option<Credentials>,
    /// `-s` / `-S`.
    pub forward: Forward,
    /// The usage of the current (or last) run.
    pub(crate) meter: Meter,
    /// Whether a failure to start was already reported (reported once until a
    /// start succeeds again).
    pub(crate) start_failure_reported: bool,
    /// Why the last start failed, until it is reported.
    pub(crate) start_error: Option<String>,
    /// The pty that stands in for dmon's terminal when the process runs as
    /// another user ([`relay`]).
    pub(crate) pty: Option<relay::Pty>,
}

impl Proc {
    pub fn new(
        name: &'static str,
        argv: Vec<OsString>,
        policy: Policy,
        tree: Tree,
        creds: Option<Credentials>,
        forward: Forward,
    ) -> Proc {
        Proc {
            name,
            argv,
            task: Task::new(policy),
            tree,
            creds,
            forward,
            meter: Meter::start(None, &[], Begins::Running, Instant::now()),
            start_failure_reported: false,
            start_error: None,
            pty: None,
        }
    }

    /// The ids the process is changed to, if any.
    pub(crate) fn ids(&self) -> Option<&Ids> {
        self.creds.as_ref().and_then(|c| c.ids.as_ref())
    }
}
