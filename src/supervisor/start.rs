//! Starting a process into its tree: its standard streams, its terminal, its
//! limits and its meter. What every start shares lives in [`Starter`].

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::limits::Limit;
use crate::task::{Event, Failure};
use crate::usage::{Begins, Meter};

use super::proc::{Proc, Which};
use super::relay;

/// Whether runs are measured for the usage record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Measured,
    /// `DMON_USAGE=0`: to measure what the record costs (integration/bench.py,
    /// case `record`).
    Unmeasured,
}

/// What the starts of both processes share.
pub struct Starter {
    pub limits: Vec<Limit>,
    pub environ: Vec<(String, Option<String>)>,
    pub stderr_redir: bool,
    /// The terminal shared with the command in `-n` mode (standard input).
    pub tty: Option<RawFd>,
    pub pipe_read: Option<OwnedFd>,
    pub pipe_write: Option<OwnedFd>,
    /// Whether runs are measured for the usage record.
    pub usage: bool,
    /// dmon's nice value before it raised its own priority (see
    /// [`crate::child::raise_priority`]): what every child is given back before exec.
    pub child_nice: Option<i32>,
    /// The real terminal in raw mode while what is typed goes to the
    /// command's pty ([`relay`]), and whether the terminal still gives input.
    pub raw_input: Option<relay::RawInput>,
    pub typing: bool,
}

/// A start that failed before the child could be made.
fn failed(what: &str, e: &io::Error) -> Event {
    tracing::error!("{what}: {}", crate::io_reason(e));
    Event::SpawnFailed { status: 1 << 8, kind: Failure::Other }
}

impl Starter {
    /// Starts the command or the log command into its tree: `Spawned`, or
    /// `SpawnFailed` with the reason left in `proc.start_error`.
    pub fn spawn(&mut self, which: Which, proc: &mut Proc, frozen: bool) -> Event {
        let foreground = if which == Which::Log { None } else { self.tty };
        let mut stdio = match self.stdio(which) {
            Ok(stdio) => stdio,
            Err(e) => return failed("cannot set up the standard streams", &e),
        };
        let (session, ctty) = match self.terminal_for(which, proc, &mut stdio) {
            Ok(terminal) => terminal,
            Err(e) => return failed(&format!("{}: cannot make its terminal", which.name()), &e),
        };
        let setup = match proc.tree.child_setup(frozen) {
            Ok(setup) => setup,
            Err(e) => return failed(&format!("{}: cannot prepare {}", proc.name, e.what()), e.error()),
        };
        // The last run's peak files are closed first, so that the new run's
        // take the same descriptor numbers: dmon's descriptors stay the same.
        proc.meter = Meter::start(None, &[], Begins::Running, Instant::now());
        // Before the start: the leaf's counters are read while it is empty.
        let measured = self.usage;
        let peaks = if measured { proc.tree.peak_dirs() } else { Vec::new() };
        let leaf = proc.tree.dir().filter(|_| measured);
        let begins = if frozen { Begins::Frozen } else { Begins::Running };
        let meter = Meter::start(leaf, &peaks, begins, Instant::now());
        let child = crate::child::Child {
            argv: &proc.argv,
            stdio,
            environ: &self.environ,
            creds: proc.creds.as_ref(),
            setup,
            tty: foreground,
            session,
            ctty,
            nice: self.child_nice,
            limits: &self.limits,
        };
        match child.start() {
            Ok(pid) => {
                proc.meter = meter;
                proc.start_failure_reported = false;
                proc.tree.started(pid);
                tracing::info!("{} started as pid {pid}", proc.name);
                Event::Spawned { pid }
            }
            Err(e) => {
                let kind = if e.is_exec() { Failure::Exec } else { Failure::Other };
                proc.start_error = Some(e.to_string());
                Event::SpawnFailed { status: e.exit_code() << 8, kind }
            }
        }
    }

    /// The child's standard input, output and error (None: dmon's own). The
    /// copies are numbered 3 and up, so that none is in the way of another.
    fn stdio(&self, which: Which) -> io::Result<[Option<OwnedFd>; 3]> {
        let dup = |fd: &OwnedFd| fd.try_clone().map(Some);
        if which == Which::Log {
            let read = self.pipe_read.as_ref().expect("a log command has a pipe");
            return Ok([dup(read)?, None, None]);
        }
        match &self.pipe_write {
            Some(write) => {
                let stderr = if self.stderr_redir { dup(write)? } else { None };
                Ok([None, dup(write)?, stderr])
            }
            None => Ok([None, None, None]),
        }
    }

    /// A child that runs as another user gets a session of its own (no
    /// controlling terminal of dmon's), and a pty of its own in place of each of
    /// its standard streams that would have been dmon's terminal ([`relay`]).
    /// Returns whether it gets its own session and the pty it takes as its
    /// controlling terminal.
    fn terminal_for(
        &mut self,
        which: Which,
        proc: &mut Proc,
        stdio: &mut [Option<OwnedFd>; 3],
    ) -> io::Result<(bool, Option<RawFd>)> {
        let own = nix::unistd::geteuid().as_raw();
        let ids = proc.ids().filter(|ids| ids.uid != own).map(|ids| (ids.uid, ids.gid));
        let Some(owner) = ids else { return Ok((false, None)) };
        let on_terminal: Vec<usize> =
            (0..3).filter(|&i| stdio[i].is_none() && relay::is_terminal(i as RawFd)).collect();
        let Some(like) = relay::terminal_of_dmon().filter(|_| !on_terminal.is_empty()) else {
            return Ok((true, None));
        };
        let typed = which == Which::Cmd && self.tty.is_some() && on_terminal.contains(&0);
        if proc.pty.is_none() {
            proc.pty = Some(relay::Pty::open(like, Some(owner))?);
        }
        let pty = proc.pty.as_ref().expect("opened above");
        for i in on_terminal {
            stdio[i] = Some(pty.slave().try_clone()?);
        }
        let ctty = pty.slave().as_raw_fd();
        if typed && self.raw_input.is_none() {
            self.raw_input = Some(relay::RawInput::enter(0)?);
            self.typing = true;
        }
        Ok((true, Some(ctty)))
    }
}
