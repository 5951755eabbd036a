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

mod events;
mod policy;

pub use events::{Action, Cause, Event, Failure, Reason, Status};
pub use policy::{BACKOFF_START, FINISHED_RUN, HEALTHY_RUN, KILL_REPEAT, Policy, Terminal};

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
                self.exit_report = Some(Status::Exit(pid, status, reason(None, status)));
                if tree_empty {
                    self.report_exit(out);
                    self.next_run(now, now - started, out);
                } else {
                    self.stop_tree(None, started, Why::Exited, now, out);
                }
            }
            (State::Stopping { leader: Some(pid), started, why, kill_at }, Some(status)) => {
                self.last_status = Some(status);
                self.exit_report = Some(Status::Exit(pid, status, reason(Some(why), status)));
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

/// Why the run whose leader ended with the wait status `status` ended, given
/// why dmon was stopping its tree at that moment (None: it was not).
fn reason(stopping: Option<Why>, status: i32) -> Reason {
    match stopping {
        Some(Why::Timeout) => Reason::Timeout,
        Some(Why::Shutdown) => Reason::Shutdown,
        Some(Why::Down) => Reason::Down,
        Some(Why::Exited) | None if libc::WIFSIGNALED(status) => Reason::Signal,
        Some(Why::Exited) | None => Reason::Exit,
    }
}

/// dmon's exit code for a wait status: the exit code, or 128+N for signal N.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFSIGNALED(status) { 128 + libc::WTERMSIG(status) } else { libc::WEXITSTATUS(status) }
}

#[cfg(test)]
mod tests;
