//! What goes into the task machine ([`Event`]) and what comes out of it
//! ([`Action`]), with the causes and reasons the records name.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Start the first run.
    Start,
    /// The loop started the process asked for by `Action::Spawn`.
    Spawned {
        pid: i32,
    },
    /// The process could not be started (`status` as a wait status, e.g. 127 << 8).
    SpawnFailed {
        status: i32,
        kind: Failure,
    },
    /// The leader was reaped (`status`, a wait status); `tree_empty` tells
    /// whether anything of its tree is left.
    Exited {
        status: i32,
        tree_empty: bool,
    },
    /// Nothing of the tree is left (after `Exited` with leftovers).
    TreeEmpty,
    /// The deadline given by [`super::Task::deadline`] has come.
    Tick,
    /// Stop the tree and finish (dmon is shutting down).
    Stop,
    /// The log command's input has ended: let it read the rest, then stop it.
    Drain,
    /// What the loop saw of the log command's input: whether the pipe still
    /// holds data, and whether the log command made progress since the last look
    /// (read from the pipe, or otherwise worked: CPU, I/O, a wait on the disk).
    /// Fed before the log command's `Tick` and `Drain`.
    Input {
        left: bool,
        progress: bool,
    },
    /// The load or pressure watchers ask for a pause (`Load` or `Pressure`: the
    /// source that rose), or let the tree go on.
    Pause(Cause),
    Resume,
    /// A pause asked for by hand (`p` on the control FIFO): held whatever the
    /// watchers say, until [`Event::Release`] (`c`).
    Hold,
    Release,
    /// `d`: stop the tree as a timeout does and start no new run.
    Down,
    /// `u`: start a fresh run if none is running, and restart as usual again.
    Up,
    /// `o`: start a run if none is running, but none after it.
    Once,
    /// dmon got SIGHUP.
    Hangup,
    /// The kernel killed a process of the run for want of memory (`--memory-max`).
    OutOfMemory,
}

/// Why a tree is paused, as the `pause` and `resume` records say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The load watcher (`-L`).
    Load,
    /// The pressure watchers (`--pressure` without `-L`).
    Pressure,
    /// The control FIFO (`p` and `c`).
    Manual,
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Load => "load",
            Cause::Pressure => "pressure",
            Cause::Manual => "manual",
        }
    }
}

/// Why a start failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The program could not be executed (not found, not executable: 127, 126).
    Exec,
    /// Anything else (the streams, the tree, the limits, fork).
    Other,
}

/// Why a run ended, as its `exit` record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It ended by itself.
    Exit,
    /// `-t` ran out and dmon stopped it.
    Timeout,
    /// dmon stopped it on TERM or INT, or at its own end (a drained log command).
    Shutdown,
    /// A signal from outside dmon killed the leader.
    Signal,
    /// The kernel killed a process of the run for want of memory under
    /// `--memory-max`, and the rest of the run with it.
    Oom,
    /// `d` on the control FIFO stopped it.
    Down,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Exit => "exit",
            Reason::Timeout => "timeout",
            Reason::Shutdown => "shutdown",
            Reason::Signal => "signal",
            Reason::Oom => "oom",
            Reason::Down => "down",
        }
    }
}

/// A status line of DMon's `-I` format, without the task's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Start(i32),
    /// The leader's pid and wait status, and why the run ended. Reported once
    /// the run's tree is empty, so that its usage is complete.
    Exit(i32, i32, Reason),
    Stop(i32),
    Timeout(i32),
    Pause(i32, Cause),
    Resume(i32, Cause),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start the process; `frozen` when it must start paused.
    Spawn {
        frozen: bool,
    },
    /// TERM and CONT to every process of the tree.
    Terminate,
    /// KILL to every process of the tree.
    Kill,
    Freeze,
    Thaw,
    Report(Status),
    /// The kernel killed a process of the run `pid` for want of memory: say so
    /// (the run is killed by the `Kill` that follows).
    ReportOom {
        pid: i32,
    },
    /// Say why the start failed (the loop says it once until a start succeeds).
    ReportStartFailure,
    /// The first start could not execute the command: a mistake on the command
    /// line, not something to retry. dmon shuts down and ends with `code`.
    EndDmon {
        code: i32,
    },
    /// Ctrl-C or a hangup on the terminal the command shares with dmon: dmon
    /// shuts down, as a foreground program does.
    Shutdown,
    /// A draining log command was given up with input left: say what of the
    /// command's output stays unlogged.
    Unlogged,
}

/// What `-vv` shows of an action: `start`, `freeze the tree`, `report exit 4711 256`.
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Spawn { frozen: false } => f.write_str("start"),
            Action::Spawn { frozen: true } => f.write_str("start frozen"),
            Action::Terminate => f.write_str("stop the tree (TERM)"),
            Action::Kill => f.write_str("kill the tree"),
            Action::Freeze => f.write_str("freeze the tree"),
            Action::Thaw => f.write_str("thaw the tree"),
            Action::Report(status) => write!(f, "report {status}"),
            Action::ReportOom { pid } => write!(f, "report oom {pid}"),
            Action::ReportStartFailure => f.write_str("report the start failure"),
            Action::EndDmon { code } => write!(f, "end dmon with {code}"),
            Action::Shutdown => f.write_str("shut dmon down"),
            Action::Unlogged => f.write_str("report the unlogged output"),
        }
    }
}
