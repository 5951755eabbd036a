//! The life of one supervised process (the command, or the log command) as a pure
//! state machine: events in, actions out, no system calls. Every decision about a
//! run is made here: when to start, stop, kill and restart, why a run ended (an
//! OOM included), whether a failed first start or a death by Ctrl-C on the shared
//! terminal ends dmon, and when a draining log command is given up. The event loop
//! in `supervisor` turns kernel notifications into [`Event`]s and only carries out
//! the returned [`Action`]s.
//!
//! ```text
//!            Spawn                 leader exits, tree empty
//!   Idle ──────────▶ Running ───────────────────────────────▶ (next run)
//!                     │  │ timeout / stop / exit with leftovers
//!                     │  ▼
//!                     │ Stopping ── tree empty ──▶ (next run) or Done
//!                     │  (TERM+CONT sent; KILL at the deadline, repeated)
//!                     ▼
//!                  Draining (log command after the command is gone:
//!                  reads the pipe to its end, stopped after the grace period)
//!
//!   (next run) = Waiting until a backoff or -i deadline, then Spawn; or Done
//!   for -1 after a zero exit, or when -m's respawns are used up.
//! ```
//!
//! Pausing is orthogonal to the state: a paused task's tree is frozen while it
//! runs, its timeout clock is stopped, and a respawn while paused starts frozen.

use std::time::{Duration, Instant};

/// After a run this long, a failure counts as the first again (no backoff).
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);
/// A zero exit after a run this long is a job that did its work: the next run
/// starts at once. Shorter successful runs (`true` in a loop) back off like
/// failures, so nothing spins.
pub const FINISHED_RUN: Duration = Duration::from_secs(1);
/// The second quick failure in a row waits this long; each further one doubles it.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// While the tree will not die after KILL (it is still being walked, or the kernel
/// is slow), KILL is sent again this often.
pub const KILL_REPEAT: Duration = Duration::from_secs(1);

/// How a task is restarted.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `-1`: done after a zero exit.
    pub once: bool,
    /// `-m`: at most this many respawns.
    pub max_respawns: Option<u64>,
    /// `-i`: wait this long after a zero exit.
    pub interval: Option<Duration>,
    /// `-t`: stop runs that last longer (paused time does not count).
    pub timeout: Option<Duration>,
    /// Between TERM and KILL.
    pub grace: Duration,
    /// The longest backoff between quick failures.
    pub backoff_max: Duration,
    /// `-n` in the foreground: the command shares dmon's terminal.
    pub terminal: Option<Terminal>,
}

/// How the command shares dmon's terminal (`-n`, dmon in the foreground).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    /// `-s`: HUP is forwarded to the command, so its death by HUP may be the
    /// user's HUP rather than the terminal's hangup.
    pub hup_to_cmd: bool,
    /// HUP is forwarded to the command or the log command (`-s`/`-S`): a HUP to
    /// dmon is theirs, not the terminal's hangup that ends dmon.
    pub hup_forwarded: bool,
}

impl Policy {
    /// The log command's policy: restarted for as long as dmon runs.
    pub fn forever(grace: Duration, backoff_max: Duration) -> Policy {
        Policy { once: false, max_respawns: None, interval: None, timeout: None, grace, backoff_max, terminal: None }
    }
}

/// Why a tree is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The leader exited and left processes behind.
    Exited,
    /// `-t` ran out.
    Timeout,
    /// dmon is shutting down.
    Shutdown,
    /// `d` on the control FIFO: stopped, and not started again until `u` or `o`.
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Idle,
    Running {
        pid: i32,
        started: Instant,
    },
    /// TERM and CONT were sent to the tree; `leader` is the pid not yet reaped.
    Stopping {
        leader: Option<i32>,
        started: Instant,
        why: Why,
        kill_at: Instant,
    },
    /// The log command reads the rest of the pipe; stopped at `stop_at`.
    Draining {
        pid: i32,
        started: Instant,
        stop_at: Instant,
    },
    Waiting {
        until: Instant,
    },
    Done,
}

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
    /// The deadline given by [`Task::deadline`] has come.
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

    /// Why the run whose leader ended with the wait status `status` ended, given
    /// why dmon was stopping its tree at that moment (None: it was not).
    fn of(stopping: Option<Why>, status: i32) -> Reason {
        match stopping {
            Some(Why::Timeout) => Reason::Timeout,
            Some(Why::Shutdown) => Reason::Shutdown,
            Some(Why::Down) => Reason::Down,
            Some(Why::Exited) | None if libc::WIFSIGNALED(status) => Reason::Signal,
            Some(Why::Exited) | None => Reason::Exit,
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

#[derive(Debug, Clone)]
pub struct Task {
    policy: Policy,
    state: State,
    /// Paused by the watchers.
    paused: bool,
    /// Paused by hand: the tree stays frozen until released, whatever `paused` is.
    held: bool,
    /// `d` or `o` was asked for: no run is started after the current one.
    want_down: bool,
    /// What the watchers' pauses are reported as.
    watch_cause: Cause,
    /// While paused, what is left of the timeout; while running, its deadline.
    timeout_left: Option<Duration>,
    timeout_at: Option<Instant>,
    respawns: u64,
    quick_failures: u32,
    last_status: Option<i32>,
    /// The `exit` record of a leader that left processes behind: reported once
    /// they are gone.
    exit_report: Option<Status>,
    draining: bool,
    /// From the last [`Event::Input`]: whether the pipe still holds data.
    input_left: bool,
    /// From the last [`Event::Input`]: whether the log command made progress. A
    /// draining log command that makes progress is not stopped.
    input_progress: bool,
    /// While draining: when the log command last made progress. A log command
    /// that is restarted again and again without progress for the grace period
    /// is given up.
    progress_at: Option<Instant>,
    /// Whether a start ever succeeded: a first start that cannot execute is a
    /// mistake on the command line (a typo), not something to retry.
    ever_started: bool,
    /// The kernel killed a process of the current run for want of memory: its
    /// `exit` record says `oom`.
    out_of_memory: bool,
}

impl Task {
    pub fn new(policy: Policy) -> Task {
        Task {
            policy,
            state: State::Idle,
            paused: false,
            held: false,
            want_down: false,
            watch_cause: Cause::Load,
            timeout_left: None,
            timeout_at: None,
            respawns: 0,
            quick_failures: 0,
            last_status: None,
            exit_report: None,
            draining: false,
            input_left: false,
            input_progress: false,
            progress_at: None,
            ever_started: false,
            out_of_memory: false,
        }
    }

    fn on_input(&mut self, left: bool, progress: bool, now: Instant) {
        self.input_left = left;
        self.input_progress = progress;
        if progress && self.draining {
            self.progress_at = Some(now);
        }
    }

    /// Draining, and no progress for the grace period: the rest cannot be logged.
    fn stalled(&self, now: Instant) -> bool {
        self.draining && self.progress_at.is_some_and(|at| now >= at + self.policy.grace)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the tree is (or a new run would start) frozen, for any cause.
    pub fn frozen(&self) -> bool {
        self.paused || self.held
    }

    /// Whether a pause by hand is held.
    pub fn held(&self) -> bool {
        self.held
    }

    /// Whether runs are started (no `d` or `o` asked for since the last `u`).
    pub fn wants_up(&self) -> bool {
        !self.want_down
    }

    /// The cause a pause is reported with: by hand wins, as only `c` ends it.
    fn cause(&self) -> Cause {
        if self.held { Cause::Manual } else { self.watch_cause }
    }

    /// The grace period between TERM and KILL (and of a draining log command).
    pub fn grace(&self) -> Duration {
        self.policy.grace
    }

    /// The wait status of the last run, if any run ended.
    pub fn last_status(&self) -> Option<i32> {
        self.last_status
    }

    /// The pid of the running leader, if there is one.
    pub fn pid(&self) -> Option<i32> {
        match self.state {
            State::Running { pid, .. } | State::Draining { pid, .. } => Some(pid),
            State::Stopping { leader, .. } => leader,
            _ => None,
        }
    }

    /// When the loop must deliver `Event::Tick` next, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Running { .. } => self.timeout_at,
            State::Stopping { kill_at, .. } => Some(kill_at),
            State::Draining { stop_at, .. } => Some(stop_at),
            State::Waiting { until } => Some(until),
            State::Idle | State::Done => None,
        }
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start | Event::Spawned { .. } | Event::SpawnFailed { .. } => self.on_start(event, now, &mut out),
            Event::Exited { status, tree_empty } if self.interrupted(status) => {
                // dmon shuts down: the run ends as stopped by it.
                self.on_stop(now, &mut out);
                self.on_exit(Some(status), tree_empty, now, &mut out);
                out.push(Action::Shutdown);
            }
            Event::Exited { status, tree_empty } => self.on_exit(Some(status), tree_empty, now, &mut out),
            Event::TreeEmpty => self.on_exit(None, true, now, &mut out),
            Event::Tick => self.on_tick(now, &mut out),
            Event::Stop => self.on_stop(now, &mut out),
            Event::Drain => self.on_drain(now, &mut out),
            Event::Pause(cause) => {
                self.watch_cause = cause;
                self.on_pause(false, now, &mut out)
            }
            Event::Resume => self.on_resume(false, now, &mut out),
            Event::Hold => self.on_pause(true, now, &mut out),
            Event::Release => self.on_resume(true, now, &mut out),
            Event::Down => self.on_down(now, &mut out),
            Event::Up | Event::Once => self.on_up(event == Event::Once, &mut out),
            Event::Input { left, progress } => self.on_input(left, progress, now),
            Event::Hangup => self.on_hangup(&mut out),
            Event::OutOfMemory => self.on_out_of_memory(&mut out),
        }
        out
    }

    /// The terminal dmon shares in `-n` mode hung up: dmon ends, as a foreground
    /// program does, unless HUP is to be forwarded.
    fn on_hangup(&mut self, out: &mut Vec<Action>) {
        if self.policy.terminal.is_some_and(|t| !t.hup_forwarded) {
            out.push(Action::Shutdown);
        }
    }

    /// Said once per run; the rest of the run is killed (v1 kills one process;
    /// v2's `memory.oom.group` already took the whole leaf).
    fn on_out_of_memory(&mut self, out: &mut Vec<Action>) {
        if self.out_of_memory {
            return;
        }
        self.out_of_memory = true;
        out.push(Action::ReportOom { pid: self.pid().unwrap_or(0) });
        out.push(Action::Kill);
    }

    /// Whether the leader's death (`status`) is Ctrl-C, QUIT or a hangup on the
    /// terminal the command shares with dmon, which ends dmon too. A death by
    /// HUP is the terminal's hangup only while HUP is not forwarded; with -s it
    /// may be the user's HUP to the command.
    fn interrupted(&self, status: i32) -> bool {
        let Some(terminal) = self.policy.terminal else { return false };
        libc::WIFSIGNALED(status)
            && match libc::WTERMSIG(status) {
                libc::SIGINT | libc::SIGQUIT => true,
                libc::SIGHUP => !terminal.hup_to_cmd,
                _ => false,
            }
    }

    /// The task is over; a draining log command given up with input left says so.
    fn done(&mut self, out: &mut Vec<Action>) {
        self.state = State::Done;
        if self.draining && self.input_left {
            out.push(Action::Unlogged);
        }
    }

    /// The first start, a started process, or one that could not be started.
    fn on_start(&mut self, event: Event, now: Instant, out: &mut Vec<Action>) {
        match (&self.state, event) {
            (State::Idle, Event::Start) => out.push(Action::Spawn { frozen: self.frozen() }),
            (State::Idle | State::Waiting { .. }, Event::Spawned { pid }) => {
                self.ever_started = true;
                self.state = State::Running { pid, started: now };
                out.push(Action::Report(Status::Start(pid)));
                match (self.frozen(), self.policy.timeout) {
                    (true, timeout) => {
                        self.timeout_left = timeout;
                        self.timeout_at = None;
                        out.push(Action::Report(Status::Pause(pid, self.cause())));
                    }
                    (false, timeout) => self.timeout_at = timeout.map(|t| now + t),
                }
                if self.draining {
                    self.state = State::Draining { pid, started: now, stop_at: now + self.policy.grace };
                }
            }
            (State::Idle | State::Waiting { .. }, Event::SpawnFailed { status, kind }) => {
                self.last_status = Some(status);
                if kind == Failure::Exec && !self.ever_started {
                    // A typo on the command line: say so and end, rather than
                    // retry for ever something that never ran.
                    self.state = State::Done;
                    out.push(Action::EndDmon { code: exit_code(status) });
                } else {
                    out.push(Action::ReportStartFailure);
                    self.next_run(now, Duration::ZERO, out);
                }
            }
            _ => {}
        }
    }

    /// The leader was reaped (`status`), or the tree it left is empty (None).
    fn on_exit(&mut self, status: Option<i32>, tree_empty: bool, now: Instant, out: &mut Vec<Action>) {
        match (self.state.clone(), status) {
            (State::Running { pid, started } | State::Draining { pid, started, .. }, Some(status)) => {
                self.last_status = Some(status);
                self.exit_report = Some(Status::Exit(pid, status, Reason::of(None, status)));
                if tree_empty {
                    self.report_exit(out);
                    self.next_run(now, now - started, out);
                } else {
                    self.stop_tree(None, started, Why::Exited, now, out);
                }
            }
            (State::Stopping { leader: Some(pid), started, why, kill_at }, Some(status)) => {
                self.last_status = Some(status);
                self.exit_report = Some(Status::Exit(pid, status, Reason::of(Some(why), status)));
                if tree_empty {
                    self.report_exit(out);
                    self.finish_stop(why, now - started, now, out);
                } else {
                    self.state = State::Stopping { leader: None, started, why, kill_at };
                }
            }
            (State::Stopping { leader: None, started, why, .. }, None) => {
                self.report_exit(out);
                self.finish_stop(why, now - started, now, out);
            }
            _ => {}
        }
    }

    /// A deadline has come: a timeout, the KILL after the grace, the end of a
    /// drain, or the end of a wait before the next start.
    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state.clone() {
            State::Running { pid, started } if self.timeout_at.is_some_and(|t| t <= now) => {
                out.push(Action::Report(Status::Timeout(pid)));
                self.stop_tree(Some(pid), started, Why::Timeout, now, out);
            }
            State::Stopping { leader, started, why, kill_at } if kill_at <= now => {
                out.push(Action::Kill);
                self.state = State::Stopping { leader, started, why, kill_at: now + KILL_REPEAT };
            }
            State::Draining { pid, started, stop_at } if stop_at <= now && self.input_progress => {
                // Still reading what is left: another grace period.
                self.state = State::Draining { pid, started, stop_at: now + self.policy.grace };
            }
            State::Draining { pid, started, stop_at } if stop_at <= now => {
                out.push(Action::Report(Status::Stop(pid)));
                self.stop_tree(Some(pid), started, Why::Shutdown, now, out);
            }
            State::Waiting { until } if until <= now && self.stalled(now) => self.done(out),
            State::Waiting { until } if until <= now => {
                self.respawns += 1;
                out.push(Action::Spawn { frozen: self.frozen() });
            }
            _ => {}
        }
    }

    /// dmon shuts down: stop the tree and finish.
    fn on_stop(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state.clone() {
            State::Idle | State::Waiting { .. } => self.state = State::Done,
            State::Running { pid, started } | State::Draining { pid, started, .. } => {
                out.push(Action::Report(Status::Stop(pid)));
                self.stop_tree(Some(pid), started, Why::Shutdown, now, out);
            }
            State::Stopping { leader, started, kill_at, .. } => {
                self.state = State::Stopping { leader, started, why: Why::Shutdown, kill_at };
            }
            State::Done => {}
        }
    }

    /// The log command's input has ended: it reads the rest, then stops.
    fn on_drain(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state.clone() {
            // A log command waiting to be restarted when the input ends: what is
            // left in the pipe still needs a reader, so it is started now.
            State::Idle | State::Waiting { .. } if self.input_left => {
                self.draining = true;
                self.progress_at = Some(now);
                self.state = State::Idle;
                out.push(Action::Spawn { frozen: self.frozen() });
            }
            State::Idle | State::Waiting { .. } => self.done(out),
            State::Stopping { leader, started, kill_at, .. } => {
                self.state = State::Stopping { leader, started, why: Why::Shutdown, kill_at };
            }
            State::Running { pid, started } => {
                self.draining = true;
                self.progress_at = Some(now);
                self.state = State::Draining { pid, started, stop_at: now + self.policy.grace };
            }
            State::Draining { .. } | State::Done => {}
        }
    }

    /// A pause by the watchers or by hand. The tree is frozen by the first
    /// cause; a second one only adds itself, so that the tree thaws once both
    /// have let go.
    fn on_pause(&mut self, manual: bool, now: Instant, out: &mut Vec<Action>) {
        let was_frozen = self.frozen();
        match manual {
            false => self.paused = true,
            true => self.held = true,
        }
        let cause = self.cause();
        if was_frozen {
            return;
        }
        if let State::Running { pid, .. } = self.state {
            self.timeout_left = self.timeout_at.map(|t| t.saturating_duration_since(now));
            self.timeout_at = None;
            // The record says when dmon decided; the freeze completes later.
            out.push(Action::Report(Status::Pause(pid, cause)));
            out.push(Action::Freeze);
        }
    }

    fn on_resume(&mut self, manual: bool, now: Instant, out: &mut Vec<Action>) {
        let was_frozen = self.frozen();
        let cause = if manual { Cause::Manual } else { self.watch_cause };
        match manual {
            false => self.paused = false,
            true => self.held = false,
        }
        if !was_frozen || self.frozen() {
            return;
        }
        if let State::Running { pid, .. } = self.state {
            self.timeout_at = self.timeout_left.take().map(|left| now + left);
            out.push(Action::Report(Status::Resume(pid, cause)));
            out.push(Action::Thaw);
        }
    }

    /// `d`: the run is stopped as a timeout stops it, and no other follows.
    fn on_down(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.want_down = true;
        match self.state.clone() {
            State::Running { pid, started } | State::Draining { pid, started, .. } => {
                out.push(Action::Report(Status::Stop(pid)));
                self.stop_tree(Some(pid), started, Why::Down, now, out);
            }
            State::Waiting { .. } => self.state = State::Idle,
            State::Stopping { .. } | State::Idle | State::Done => {}
        }
    }

    /// `u` (`once`: `o`): a fresh run when none is running or being stopped.
    fn on_up(&mut self, once: bool, out: &mut Vec<Action>) {
        self.want_down = once;
        // A tree being stopped is followed by the next run once it is empty,
        // unless `want_down` is set again by then.
        if self.state == State::Idle {
            out.push(Action::Spawn { frozen: self.frozen() });
        }
    }

    /// The run's tree is empty: its `exit` record, held since the leader's exit.
    fn report_exit(&mut self, out: &mut Vec<Action>) {
        if let Some(mut status) = self.exit_report.take() {
            if let (Status::Exit(pid, wait_status, _), true) = (status, std::mem::take(&mut self.out_of_memory)) {
                status = Status::Exit(pid, wait_status, Reason::Oom);
            }
            out.push(Action::Report(status));
        }
    }

    fn stop_tree(&mut self, leader: Option<i32>, started: Instant, why: Why, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Terminate);
        if self.frozen() {
            // A frozen tree cannot act on TERM; it stays paused for the next run.
            out.push(Action::Thaw);
        }
        self.timeout_at = None;
        self.state = State::Stopping { leader, started, why, kill_at: now + self.policy.grace };
    }

    fn finish_stop(&mut self, why: Why, ran: Duration, now: Instant, out: &mut Vec<Action>) {
        if why == Why::Shutdown {
            self.done(out);
        } else {
            self.next_run(now, ran, out);
        }
    }

    /// After a run ended and its tree is empty: start again now, later, or never.
    fn next_run(&mut self, now: Instant, ran: Duration, out: &mut Vec<Action>) {
        let success = self.last_status == Some(0);
        let respawns_used = self.policy.max_respawns.is_some_and(|max| self.respawns >= max);
        let drained = self.draining && (!self.input_left || self.stalled(now));
        if (self.policy.once && success) || respawns_used || drained {
            self.done(out);
            return;
        }
        if self.want_down {
            // `d` or `o`: down until `u`.
            self.state = State::Idle;
            return;
        }
        if ran >= HEALTHY_RUN || (success && ran >= FINISHED_RUN) {
            self.quick_failures = 0;
        }
        self.quick_failures = self.quick_failures.saturating_add(1);
        let mut delay = match self.quick_failures {
            1 => Duration::ZERO,
            n => BACKOFF_START.saturating_mul(1 << (n - 2).min(20)).min(self.policy.backoff_max),
        };
        if let (true, Some(interval)) = (success, self.policy.interval) {
            delay = interval;
        }
        if self.draining {
            // Try again within the grace period, which ends the attempts.
            delay = delay.min(self.policy.grace);
        }
        if delay.is_zero() {
            self.respawns += 1;
            self.state = State::Idle;
            out.push(Action::Spawn { frozen: self.frozen() });
        } else {
            self.state = State::Waiting { until: now + delay };
        }
    }
}

/// dmon's exit code for a wait status: the exit code, or 128+N for signal N.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFSIGNALED(status) { 128 + libc::WTERMSIG(status) } else { libc::WEXITSTATUS(status) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXIT_0: i32 = 0;
    const EXIT_1: i32 = 1 << 8;

    fn policy() -> Policy {
        Policy {
            once: false,
            max_respawns: None,
            interval: None,
            timeout: None,
            grace: Duration::from_secs(5),
            backoff_max: Duration::from_secs(60),
            terminal: None,
        }
    }

    /// A task started and running as pid 100 at `t0`.
    fn running(policy: Policy, t0: Instant) -> Task {
        let mut task = Task::new(policy);
        assert_eq!(task.handle(Event::Start, t0), [Action::Spawn { frozen: false }]);
        assert_eq!(task.handle(Event::Spawned { pid: 100 }, t0), [Action::Report(Status::Start(100))]);
        task
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn restarts_at_once_after_a_long_run() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(60));
        assert_eq!(out, [Action::Report(Status::Exit(100, EXIT_1, Reason::Exit)), Action::Spawn { frozen: false }]);
        assert_eq!(task.last_status(), Some(EXIT_1));
    }

    #[test]
    fn quick_failures_back_off_growing_to_the_cap() {
        let t0 = Instant::now();
        let mut p = policy();
        p.backoff_max = Duration::from_millis(350);
        let mut task = running(p, t0);
        let mut now = t0;
        let mut delays = Vec::new();
        for pid in 101..107 {
            let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, now);
            match task.state() {
                State::Waiting { until } => {
                    delays.push(*until - now);
                    now = *until;
                    assert_eq!(task.handle(Event::Tick, now), [Action::Spawn { frozen: false }]);
                }
                State::Idle => {
                    delays.push(Duration::ZERO);
                    assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
                }
                other => panic!("unexpected {other:?}"),
            }
            task.handle(Event::Spawned { pid }, now);
        }
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 100, 200, 350, 350, 350]);
    }

    #[test]
    fn a_healthy_run_resets_the_backoff() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0);
        task.handle(Event::Spawned { pid: 101 }, t0);
        task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0);
        assert!(matches!(task.state(), State::Waiting { .. }));
        task.handle(Event::Tick, t0 + secs(1));
        task.handle(Event::Spawned { pid: 102 }, t0 + secs(1));
        let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
        assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
    }

    #[test]
    fn once_stops_after_success_only() {
        let t0 = Instant::now();
        let mut p = policy();
        p.once = true;
        let mut task = running(p, t0);
        task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(20));
        assert_eq!(task.state(), &State::Idle);
        task.handle(Event::Spawned { pid: 101 }, t0 + secs(20));
        task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, t0 + secs(40));
        assert!(task.is_done());
        assert_eq!(exit_code(task.last_status().unwrap()), 0);
    }

    #[test]
    fn max_respawns_counts_restarts() {
        let t0 = Instant::now();
        let mut p = policy();
        p.max_respawns = Some(2);
        let mut task = running(p, t0);
        let mut now = t0;
        for pid in 101..=102 {
            now += secs(30);
            task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, now);
            task.handle(Event::Spawned { pid }, now);
        }
        now += secs(30);
        task.handle(Event::Exited { status: 9, tree_empty: true }, now);
        assert!(task.is_done());
        assert_eq!(exit_code(task.last_status().unwrap()), 128 + 9);
    }

    #[test]
    fn interval_waits_after_success() {
        let t0 = Instant::now();
        let mut p = policy();
        p.interval = Some(secs(30));
        let mut task = running(p, t0);
        task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, t0 + secs(20));
        assert_eq!(task.deadline(), Some(t0 + secs(50)));
        assert_eq!(task.handle(Event::Tick, t0 + secs(49)), []);
        assert_eq!(task.handle(Event::Tick, t0 + secs(50)), [Action::Spawn { frozen: false }]);
    }

    #[test]
    fn spawn_failure_backs_off_like_a_quick_exit() {
        let t0 = Instant::now();
        let mut task = Task::new(policy());
        task.handle(Event::Start, t0);
        // A first start that fails otherwise than at exec is retried.
        let failed = Event::SpawnFailed { status: 1 << 8, kind: Failure::Other };
        assert_eq!(task.handle(failed, t0), [Action::ReportStartFailure, Action::Spawn { frozen: false }]);
        assert_eq!(task.handle(failed, t0), [Action::ReportStartFailure]);
        assert_eq!(task.deadline(), Some(t0 + BACKOFF_START));
        assert_eq!(exit_code(task.last_status().unwrap()), 1);
        // A command that ran once and can no longer be executed is retried too.
        let mut task = running(policy(), t0);
        task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(60));
        let failed = Event::SpawnFailed { status: 127 << 8, kind: Failure::Exec };
        assert_eq!(task.handle(failed, t0 + secs(60)), [Action::ReportStartFailure]);
        assert!(matches!(task.state(), State::Waiting { .. }));
        assert_eq!(exit_code(task.last_status().unwrap()), 127);
    }

    #[test]
    fn timeout_terminates_then_kills_then_waits_for_an_empty_tree() {
        let t0 = Instant::now();
        let mut p = policy();
        p.timeout = Some(secs(10));
        let mut task = running(p, t0);
        assert_eq!(task.deadline(), Some(t0 + secs(10)));
        let out = task.handle(Event::Tick, t0 + secs(10));
        assert_eq!(out, [Action::Report(Status::Timeout(100)), Action::Terminate]);
        assert_eq!(task.deadline(), Some(t0 + secs(15)));
        assert_eq!(task.handle(Event::Tick, t0 + secs(15)), [Action::Kill]);
        assert_eq!(task.deadline(), Some(t0 + secs(15) + KILL_REPEAT));
        assert_eq!(task.handle(Event::Exited { status: 9, tree_empty: false }, t0 + secs(15)), []);
        // The run ends, and the next starts, only once the tree is empty.
        assert_eq!(
            task.handle(Event::TreeEmpty, t0 + secs(16)),
            [Action::Report(Status::Exit(100, 9, Reason::Timeout)), Action::Spawn { frozen: false }]
        );
    }

    #[test]
    fn leftovers_of_an_exited_leader_are_stopped_before_the_next_run() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        let out = task.handle(Event::Exited { status: EXIT_0, tree_empty: false }, t0 + secs(30));
        assert_eq!(out, [Action::Terminate]);
        // A shutdown while the leftovers are stopped does not change why the run ended.
        assert_eq!(task.handle(Event::Stop, t0 + secs(30)), []);
        assert_eq!(
            task.handle(Event::TreeEmpty, t0 + secs(31)),
            [Action::Report(Status::Exit(100, EXIT_0, Reason::Exit))]
        );
        assert!(task.is_done());
    }

    #[test]
    fn stop_ends_in_done() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        assert_eq!(task.handle(Event::Stop, t0), [Action::Report(Status::Stop(100)), Action::Terminate]);
        assert_eq!(task.handle(Event::Exited { status: 15, tree_empty: true }, t0).len(), 1);
        assert!(task.is_done());
        let mut waiting = running(policy(), t0);
        waiting.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0);
        waiting.handle(Event::Spawned { pid: 101 }, t0);
        waiting.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0);
        assert_eq!(waiting.handle(Event::Stop, t0), []);
        assert!(waiting.is_done());
    }

    #[test]
    fn stop_during_a_timeout_becomes_a_shutdown() {
        let t0 = Instant::now();
        let mut p = policy();
        p.timeout = Some(secs(1));
        let mut task = running(p, t0);
        task.handle(Event::Tick, t0 + secs(1));
        task.handle(Event::Stop, t0 + secs(2));
        task.handle(Event::Exited { status: 15, tree_empty: true }, t0 + secs(2));
        assert!(task.is_done());
    }

    #[test]
    fn pause_freezes_and_stops_the_timeout_clock() {
        let t0 = Instant::now();
        let mut p = policy();
        p.timeout = Some(secs(10));
        let mut task = running(p, t0);
        assert_eq!(
            task.handle(Event::Pause(Cause::Load), t0 + secs(4)),
            [Action::Report(Status::Pause(100, Cause::Load)), Action::Freeze]
        );
        assert_eq!(task.handle(Event::Pause(Cause::Load), t0 + secs(5)), []);
        assert_eq!(task.deadline(), None);
        assert_eq!(
            task.handle(Event::Resume, t0 + secs(100)),
            [Action::Report(Status::Resume(100, Cause::Load)), Action::Thaw]
        );
        assert_eq!(task.deadline(), Some(t0 + secs(106)));
        assert_eq!(task.handle(Event::Resume, t0 + secs(101)), []);
    }

    #[test]
    fn a_respawn_while_paused_starts_frozen() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        task.handle(Event::Pause(Cause::Load), t0);
        let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
        assert_eq!(out.last(), Some(&Action::Spawn { frozen: true }));
        let out = task.handle(Event::Spawned { pid: 101 }, t0 + secs(30));
        assert_eq!(out, [Action::Report(Status::Start(101)), Action::Report(Status::Pause(101, Cause::Load))]);
        assert_eq!(
            task.handle(Event::Resume, t0 + secs(31)),
            [Action::Report(Status::Resume(101, Cause::Load)), Action::Thaw]
        );
    }

    #[test]
    fn stopping_a_paused_tree_thaws_it() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        task.handle(Event::Pause(Cause::Load), t0);
        assert_eq!(task.handle(Event::Stop, t0), [Action::Report(Status::Stop(100)), Action::Terminate, Action::Thaw]);
    }

    #[test]
    fn draining_log_reads_to_the_end_then_is_stopped() {
        let t0 = Instant::now();
        let mut task = running(Policy::forever(secs(5), secs(60)), t0);
        assert_eq!(task.handle(Event::Drain, t0), []);
        assert_eq!(task.deadline(), Some(t0 + secs(5)));
        // It ends by itself at end of input: done, nothing left unlogged.
        let out = task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, t0 + secs(1));
        assert_eq!(out, [Action::Report(Status::Exit(100, EXIT_0, Reason::Exit))]);
        assert!(task.is_done());

        let mut slow = running(Policy::forever(secs(5), secs(60)), t0);
        slow.handle(Event::Drain, t0);
        // While it keeps reading, it gets more time; once it stops reading, it is stopped.
        slow.handle(Event::Input { left: true, progress: true }, t0 + secs(5));
        assert_eq!(slow.handle(Event::Tick, t0 + secs(5)), []);
        assert_eq!(slow.deadline(), Some(t0 + secs(10)));
        slow.handle(Event::Input { left: true, progress: false }, t0 + secs(10));
        assert_eq!(slow.handle(Event::Tick, t0 + secs(10)), [Action::Report(Status::Stop(100)), Action::Terminate]);
        // Given up with input left: what stays unlogged is said.
        let out = slow.handle(Event::Exited { status: 15, tree_empty: true }, t0 + secs(10));
        assert_eq!(out, [Action::Report(Status::Exit(100, 15, Reason::Shutdown)), Action::Unlogged]);
        assert!(slow.is_done());
    }

    #[test]
    fn a_log_command_that_dies_while_input_is_left_is_restarted() {
        let t0 = Instant::now();
        let mut task = running(Policy::forever(secs(5), secs(60)), t0);
        task.handle(Event::Drain, t0);
        // It read part of the rest, then died.
        task.handle(Event::Input { left: true, progress: true }, t0 + secs(20));
        let out = task.handle(Event::Exited { status: 9, tree_empty: true }, t0 + secs(20));
        assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
    }

    #[test]
    fn a_first_start_that_cannot_exec_ends_dmon() {
        let t0 = Instant::now();
        let mut task = Task::new(policy());
        task.handle(Event::Start, t0);
        let failed = Event::SpawnFailed { status: 127 << 8, kind: Failure::Exec };
        assert_eq!(task.handle(failed, t0), [Action::EndDmon { code: 127 }]);
        assert!(task.is_done());
        assert_eq!(exit_code(task.last_status().unwrap()), 127);
    }

    /// The command's policy when it shares dmon's terminal.
    fn on_terminal(hup_to_cmd: bool, hup_forwarded: bool) -> Policy {
        Policy { terminal: Some(Terminal { hup_to_cmd, hup_forwarded }), ..policy() }
    }

    #[test]
    fn ctrl_c_on_the_shared_terminal_ends_dmon() {
        let t0 = Instant::now();
        for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP] {
            let mut task = running(on_terminal(false, false), t0);
            let out = task.handle(Event::Exited { status: signal, tree_empty: true }, t0 + secs(30));
            assert_eq!(
                out,
                [
                    Action::Report(Status::Stop(100)),
                    Action::Terminate,
                    Action::Report(Status::Exit(100, signal, Reason::Shutdown)),
                    Action::Shutdown
                ],
                "signal {signal}"
            );
            assert!(task.is_done());
        }
        // With -s, a death by HUP may be the user's HUP: the command is restarted.
        let mut task = running(on_terminal(true, true), t0);
        let out = task.handle(Event::Exited { status: libc::SIGHUP, tree_empty: true }, t0 + secs(30));
        assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
        let out = task.handle(Event::Exited { status: libc::SIGINT, tree_empty: true }, t0 + secs(30));
        assert_eq!(out.last(), Some(&Action::Shutdown));
        // Off the terminal, Ctrl-C is just a death by a signal.
        let mut task = running(policy(), t0);
        let out = task.handle(Event::Exited { status: libc::SIGINT, tree_empty: true }, t0 + secs(30));
        assert_eq!(
            out,
            [Action::Report(Status::Exit(100, libc::SIGINT, Reason::Signal)), Action::Spawn { frozen: false }]
        );
    }

    #[test]
    fn a_hangup_of_the_shared_terminal_ends_dmon_unless_hup_is_forwarded() {
        let t0 = Instant::now();
        assert_eq!(running(on_terminal(false, false), t0).handle(Event::Hangup, t0), [Action::Shutdown]);
        assert_eq!(running(on_terminal(false, true), t0).handle(Event::Hangup, t0), []);
        assert_eq!(running(policy(), t0).handle(Event::Hangup, t0), []);
    }

    #[test]
    fn out_of_memory_kills_the_run_and_its_exit_says_oom() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        assert_eq!(task.handle(Event::OutOfMemory, t0), [Action::ReportOom { pid: 100 }, Action::Kill]);
        // Said once per run.
        assert_eq!(task.handle(Event::OutOfMemory, t0), []);
        let out = task.handle(Event::Exited { status: 9, tree_empty: true }, t0 + secs(30));
        assert_eq!(out[0], Action::Report(Status::Exit(100, 9, Reason::Oom)));
        task.handle(Event::Spawned { pid: 101 }, t0 + secs(30));
        // The next run's exit is its own.
        let out = task.handle(Event::Exited { status: 9, tree_empty: true }, t0 + secs(60));
        assert_eq!(out[0], Action::Report(Status::Exit(101, 9, Reason::Signal)));
        // Leftovers: the record waits for the empty tree, and still says oom.
        task.handle(Event::Spawned { pid: 102 }, t0 + secs(60));
        task.handle(Event::Exited { status: 9, tree_empty: false }, t0 + secs(90));
        task.handle(Event::OutOfMemory, t0 + secs(90));
        let out = task.handle(Event::TreeEmpty, t0 + secs(90));
        assert_eq!(out[0], Action::Report(Status::Exit(102, 9, Reason::Oom)));
    }

    #[test]
    fn a_finished_run_restarts_at_once_but_true_in_a_loop_backs_off() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        let mut now = t0;
        for pid in 101..106 {
            now += Duration::from_millis(1500);
            let out = task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, now);
            assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }), "run {pid}");
            task.handle(Event::Spawned { pid }, now);
        }
        // Zero exits after a few milliseconds are not finished work.
        task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, now + Duration::from_millis(5));
        task.handle(Event::Spawned { pid: 200 }, now);
        task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, now + Duration::from_millis(10));
        assert!(matches!(task.state(), State::Waiting { .. }));
    }

    #[test]
    fn a_log_command_waiting_to_restart_is_started_to_drain_the_rest() {
        let t0 = Instant::now();
        let mut task = running(Policy::forever(secs(5), secs(60)), t0);
        task.handle(Event::Exited { status: 9, tree_empty: true }, t0);
        task.handle(Event::Spawned { pid: 101 }, t0);
        task.handle(Event::Exited { status: 9, tree_empty: true }, t0);
        assert!(matches!(task.state(), State::Waiting { .. }));
        task.handle(Event::Input { left: true, progress: false }, t0);
        assert_eq!(task.handle(Event::Drain, t0), [Action::Spawn { frozen: false }]);
        task.handle(Event::Spawned { pid: 102 }, t0);
        assert!(matches!(task.state(), State::Draining { pid: 102, .. }));

        // With nothing left in the pipe, a waiting log command is simply done.
        let mut idle = running(Policy::forever(secs(5), secs(60)), t0);
        idle.handle(Event::Exited { status: 9, tree_empty: true }, t0);
        idle.handle(Event::Spawned { pid: 101 }, t0);
        idle.handle(Event::Exited { status: 9, tree_empty: true }, t0);
        idle.handle(Event::Input { left: false, progress: false }, t0);
        assert_eq!(idle.handle(Event::Drain, t0), []);
        assert!(idle.is_done());
    }

    #[test]
    fn a_draining_log_command_that_keeps_failing_is_given_up_after_the_grace() {
        let t0 = Instant::now();
        let mut task = running(Policy::forever(secs(5), secs(60)), t0);
        task.handle(Event::Input { left: true, progress: false }, t0);
        task.handle(Event::Drain, t0);
        let mut now = t0;
        let mut starts = 0;
        let mut unlogged = 0;
        while !task.is_done() {
            assert!(now < t0 + secs(6), "never given up");
            task.handle(Event::Input { left: true, progress: false }, now);
            let out = match task.state() {
                State::Waiting { until } => {
                    now = *until;
                    task.handle(Event::Tick, now)
                }
                _ => task.handle(Event::Exited { status: 1 << 8, tree_empty: true }, now),
            };
            unlogged += out.iter().filter(|a| **a == Action::Unlogged).count();
            if out.contains(&Action::Spawn { frozen: false }) {
                starts += 1;
                task.handle(Event::Spawned { pid: 200 + starts }, now);
            }
        }
        assert!(starts > 1, "it was retried ({starts} starts)");
        assert_eq!(unlogged, 1, "the output left is said once");
        // Progress (the pipe got shorter, or the logger worked) gives it more time.
        let mut busy = running(Policy::forever(secs(5), secs(60)), t0);
        busy.handle(Event::Input { left: true, progress: false }, t0);
        busy.handle(Event::Drain, t0);
        busy.handle(Event::Input { left: true, progress: true }, t0 + secs(4));
        busy.handle(Event::Exited { status: 1 << 8, tree_empty: true }, t0 + secs(4));
        busy.handle(Event::Spawned { pid: 300 }, t0 + secs(4));
        busy.handle(Event::Input { left: true, progress: false }, t0 + secs(6));
        busy.handle(Event::Exited { status: 1 << 8, tree_empty: true }, t0 + secs(6));
        assert!(!busy.is_done());
    }

    #[test]
    fn the_exit_record_says_why_the_run_ended() {
        let t0 = Instant::now();
        let exit = |task: &mut Task, status| task.handle(Event::Exited { status, tree_empty: true }, t0)[0];
        let mut task = running(policy(), t0);
        assert_eq!(exit(&mut task, EXIT_1), Action::Report(Status::Exit(100, EXIT_1, Reason::Exit)));
        task.handle(Event::Spawned { pid: 101 }, t0);
        // Killed from outside: dmon sent nothing.
        assert_eq!(exit(&mut task, 9), Action::Report(Status::Exit(101, 9, Reason::Signal)));
        task.handle(Event::Tick, t0 + secs(1));
        task.handle(Event::Spawned { pid: 102 }, t0 + secs(1));
        task.handle(Event::Stop, t0 + secs(1));
        // Ended by the TERM of a shutdown, whatever its status.
        assert_eq!(exit(&mut task, EXIT_0), Action::Report(Status::Exit(102, EXIT_0, Reason::Shutdown)));

        // A log command stopped after draining was shut down; one that ends at
        // the end of its input ended by itself.
        let mut log = running(Policy::forever(secs(5), secs(60)), t0);
        log.handle(Event::Drain, t0);
        log.handle(Event::Tick, t0 + secs(5));
        assert_eq!(exit(&mut log, 15), Action::Report(Status::Exit(100, 15, Reason::Shutdown)));
        let mut log = running(Policy::forever(secs(5), secs(60)), t0);
        log.handle(Event::Drain, t0);
        assert_eq!(exit(&mut log, EXIT_0), Action::Report(Status::Exit(100, EXIT_0, Reason::Exit)));
    }

    #[test]
    fn a_manual_pause_holds_while_the_load_comes_and_goes() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        let hold = task.handle(Event::Hold, t0);
        assert_eq!(hold, [Action::Report(Status::Pause(100, Cause::Manual)), Action::Freeze]);
        // The load rises and falls: the tree stays frozen, nothing is said.
        assert_eq!(task.handle(Event::Pause(Cause::Load), t0 + secs(1)), []);
        assert_eq!(task.handle(Event::Resume, t0 + secs(2)), []);
        assert!(task.frozen());
        assert_eq!(
            task.handle(Event::Release, t0 + secs(3)),
            [Action::Report(Status::Resume(100, Cause::Manual)), Action::Thaw]
        );
        assert!(!task.frozen());
    }

    #[test]
    fn a_load_pause_held_by_hand_waits_for_the_release() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        assert_eq!(
            task.handle(Event::Pause(Cause::Load), t0),
            [Action::Report(Status::Pause(100, Cause::Load)), Action::Freeze]
        );
        assert_eq!(task.handle(Event::Hold, t0 + secs(1)), []);
        assert_eq!(task.handle(Event::Resume, t0 + secs(2)), []);
        assert!(task.frozen() && task.held());
        assert_eq!(
            task.handle(Event::Release, t0 + secs(3)),
            [Action::Report(Status::Resume(100, Cause::Manual)), Action::Thaw]
        );
        // Released while the load is still high: the load's pause goes on.
        let mut busy = running(policy(), t0);
        busy.handle(Event::Pause(Cause::Load), t0);
        busy.handle(Event::Hold, t0);
        assert_eq!(busy.handle(Event::Release, t0 + secs(1)), []);
        assert_eq!(
            busy.handle(Event::Resume, t0 + secs(2)),
            [Action::Report(Status::Resume(100, Cause::Load)), Action::Thaw]
        );
    }

    #[test]
    fn a_watchers_pause_and_its_resume_name_the_source_that_rose() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        assert_eq!(
            task.handle(Event::Pause(Cause::Pressure), t0)[0],
            Action::Report(Status::Pause(100, Cause::Pressure))
        );
        assert_eq!(task.handle(Event::Resume, t0)[0], Action::Report(Status::Resume(100, Cause::Pressure)));
        assert_eq!(task.handle(Event::Pause(Cause::Load), t0)[0], Action::Report(Status::Pause(100, Cause::Load)));
        assert_eq!(task.handle(Event::Resume, t0)[0], Action::Report(Status::Resume(100, Cause::Load)));
    }

    #[test]
    fn a_manual_pause_stops_the_timeout_clock_and_holds_across_runs() {
        let t0 = Instant::now();
        let mut p = policy();
        p.timeout = Some(secs(10));
        let mut task = running(p, t0);
        task.handle(Event::Hold, t0 + secs(4));
        assert_eq!(task.deadline(), None);
        let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
        assert_eq!(out.last(), Some(&Action::Spawn { frozen: true }));
        let out = task.handle(Event::Spawned { pid: 101 }, t0 + secs(30));
        assert_eq!(out, [Action::Report(Status::Start(101)), Action::Report(Status::Pause(101, Cause::Manual))]);
        task.handle(Event::Release, t0 + secs(40));
        assert_eq!(task.deadline(), Some(t0 + secs(50)));
    }

    #[test]
    fn down_stops_the_tree_and_starts_no_other_run() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        assert_eq!(task.handle(Event::Down, t0), [Action::Report(Status::Stop(100)), Action::Terminate]);
        assert!(!task.wants_up());
        assert_eq!(task.handle(Event::Tick, t0 + secs(5)), [Action::Kill]);
        let out = task.handle(Event::Exited { status: 9, tree_empty: true }, t0 + secs(5));
        assert_eq!(out, [Action::Report(Status::Exit(100, 9, Reason::Down))]);
        assert_eq!(task.state(), &State::Idle);
        assert_eq!(task.deadline(), None);
        assert!(!task.is_done());
        // Down again, or a stop of dmon, while down.
        assert_eq!(task.handle(Event::Down, t0 + secs(6)), []);
        assert_eq!(task.handle(Event::Stop, t0 + secs(7)), []);
        assert!(task.is_done());
    }

    #[test]
    fn down_of_a_frozen_tree_thaws_it_to_die() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        task.handle(Event::Hold, t0);
        assert_eq!(task.handle(Event::Down, t0), [Action::Report(Status::Stop(100)), Action::Terminate, Action::Thaw]);
    }

    #[test]
    fn up_starts_a_fresh_run_after_down() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        task.handle(Event::Down, t0);
        task.handle(Event::Exited { status: 15, tree_empty: true }, t0);
        assert_eq!(task.handle(Event::Up, t0 + secs(1)), [Action::Spawn { frozen: false }]);
        assert!(task.wants_up());
        task.handle(Event::Spawned { pid: 101 }, t0 + secs(1));
        assert_eq!(task.handle(Event::Up, t0 + secs(2)), []);
        // It restarts as usual again.
        let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
        assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
    }

    #[test]
    fn up_while_a_down_is_being_stopped_restarts_after_it() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        task.handle(Event::Down, t0);
        assert_eq!(task.handle(Event::Up, t0), []);
        let out = task.handle(Event::Exited { status: 15, tree_empty: true }, t0 + secs(20));
        assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
    }

    #[test]
    fn down_while_waiting_to_restart_cancels_the_restart() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0);
        task.handle(Event::Spawned { pid: 101 }, t0);
        task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0);
        assert!(matches!(task.state(), State::Waiting { .. }));
        assert_eq!(task.handle(Event::Down, t0), []);
        assert_eq!(task.state(), &State::Idle);
        // A timeout's stop in progress becomes a down: no restart after it.
        let mut p = policy();
        p.timeout = Some(secs(1));
        let mut timed = running(p, t0);
        timed.handle(Event::Tick, t0 + secs(1));
        timed.handle(Event::Down, t0 + secs(2));
        let out = timed.handle(Event::Exited { status: 15, tree_empty: true }, t0 + secs(2));
        assert_eq!(out, [Action::Report(Status::Exit(100, 15, Reason::Timeout))]);
        assert_eq!(timed.state(), &State::Idle);
    }

    #[test]
    fn once_runs_one_more_time_then_stays_down() {
        let t0 = Instant::now();
        let mut task = running(policy(), t0);
        task.handle(Event::Down, t0);
        task.handle(Event::Exited { status: 15, tree_empty: true }, t0);
        assert_eq!(task.handle(Event::Once, t0 + secs(1)), [Action::Spawn { frozen: false }]);
        task.handle(Event::Spawned { pid: 101 }, t0 + secs(1));
        assert!(!task.wants_up());
        let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
        assert_eq!(out, [Action::Report(Status::Exit(101, EXIT_1, Reason::Exit))]);
        assert_eq!(task.state(), &State::Idle);
        // `o` on a running task only says: no run after this one.
        let mut up = running(policy(), t0);
        assert_eq!(up.handle(Event::Once, t0), []);
        up.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
        assert_eq!(up.state(), &State::Idle);
    }
}
