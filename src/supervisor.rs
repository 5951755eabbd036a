//! The event loop: one thread, one `poll` over a signalfd, the trees' event
//! descriptors and a single deadline. It turns kernel notifications into task
//! events, and carries out the tasks' actions with system calls; it decides
//! nothing itself ([`crate::task`] does). The follow-ups of an action (a start's
//! `Spawned`, dmon's shutdown) go to a queue that is worked off to its end. While
//! the command runs and no load watching is asked for, nothing wakes dmon up.
//!
//! Here is the loop and its queue; what it hears becomes events in `inputs`,
//! the actions are carried out in `actions`, a process is started in `start`,
//! and the poll set is built in `poll`.
//!
//! The pipe between the command and the log command belongs to dmon: both ends
//! stay open here for dmon's whole life, so either side can die and be restarted
//! without a byte in the pipe being lost. On shutdown the command's tree is
//! stopped first; then dmon closes its write end, the log command reads the pipe
//! to its end, and only after that (or the grace period) is it stopped.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cli::Options;
use crate::status::StatusFile;
use crate::task::Event;
use crate::watch::{Ready, Watch};

/// How long after a pause or resume its pages are unmapped again.
const RELEASE_AFTER: Duration = Duration::from_secs(1);

mod actions;
mod idle;
mod inputs;
mod poll;
mod proc;
mod relay;
mod signals;
mod start;

pub use proc::{Forward, Proc, Which};
pub use start::Usage;

pub use signals::FORWARDED;

/// A step of the loop's queue: an event for a task, or what dmon as a whole does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Feed(Which, Event),
    /// Stop the command, then let the log command drain the pipe.
    Shutdown,
    /// If the command is done for good, let the log command drain the pipe.
    Drain,
}

/// Everything the loop works with, prepared by `main`.
pub struct Supervisor {
    pub cmd: Proc,
    pub log: Option<Proc>,
    pub status: Option<StatusFile>,
    /// `-L`/`-l` and `--pressure`: what pauses the command tree.
    pub watch: Watch,
    /// The exit status dmon reports: the command's last one in -1/-m modes.
    pub report_command_status: bool,
    /// What the starts share: the pipe, the terminal, the environment.
    start: start::Starter,
    /// The last look at the log command's progress on the pipe.
    progress: crate::logpipe::Progress,
    /// Why dmon must end with an error, once everything is stopped: a first start
    /// that could not be executed (exit code and message).
    fatal: Option<(i32, String)>,
    shutting_down: bool,
    /// The steps still to take; see [`Supervisor::feed`].
    queue: VecDeque<Step>,
    /// Whether the queue is being worked off (a step's follow-ups wait their turn).
    stepping: bool,
    /// The service manager's notification socket (`NOTIFY_SOCKET`), if any.
    notify: Option<crate::notify::Notifier>,
    /// When to unmap what a pause or resume faulted in ([`Supervisor::release_after_control`]).
    release_at: Option<Instant>,
    /// `--control DIR`: runit's supervise directories.
    pub control: Option<crate::control::Control>,
}

impl Supervisor {
    pub fn new(
        cmd: Proc,
        log: Option<Proc>,
        status: Option<StatusFile>,
        opts: &Options,
        tty: Option<RawFd>,
        usage: Usage,
    ) -> io::Result<Supervisor> {
        let (pipe_read, pipe_write) = match log {
            Some(_) => {
                let (r, w) = crate::logpipe::pipe()?;
                crate::logpipe::share(&r, cmd.ids(), log.as_ref().and_then(Proc::ids)).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot give the log pipe to the command's users: {e}"))
                })?;
                (Some(r), Some(w))
            }
            None => (None, None),
        };
        let start = start::Starter {
            limits: opts.limits.clone(),
            environ: opts.environ.clone(),
            stderr_redir: opts.stderr_redir,
            tty,
            pipe_read,
            pipe_write,
            usage: usage == start::Usage::Measured,
            child_nice: None,
            raw_input: None,
            typing: false,
        };
        Ok(Supervisor {
            cmd,
            log,
            status,
            watch: Watch::default(),
            report_command_status: opts.once || opts.max_respawns.is_some(),
            start,
            progress: Default::default(),
            fatal: None,
            shutting_down: false,
            queue: VecDeque::new(),
            stepping: false,
            notify: crate::notify::Notifier::from_env(),
            release_at: None,
            control: None,
        })
    }

    /// Runs until the command is done and the log command has drained the pipe.
    /// Returns dmon's exit code, or the message and code of a fatal error (a
    /// command that could not be executed at its first start).
    pub fn run(mut self) -> Result<i32, (i32, String)> {
        self.supervise().map_err(|e| (1, format!("supervision failed: {}", crate::io_reason(&e))))?;
        if let Some(fatal) = self.fatal.take() {
            return Err(fatal);
        }
        Ok(match (self.report_command_status, self.cmd.task.last_status()) {
            (true, Some(status)) => crate::task::exit_code(status),
            _ => 0,
        })
    }

    fn supervise(&mut self) -> io::Result<()> {
        let signals = signals::signal_fd()?;
        // Orphaned grandchildren come back to dmon, to be found and reaped; the
        // signal fallback finds a setsid'd orphan only so.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!("cannot become the child subreaper: {}; orphans of the command go to init", e.desc());
        }
        self.start.child_nice = crate::child::raise_priority();
        self.first_starts();
        // What parsing, resolving and the first starts mapped and allocated is
        // done with by now: hand its pages back before waiting, perhaps for months.
        let released = idle::release_start_up_pages();
        tracing::debug!("unmapped {released} KiB of start-up pages");
        while !self.finished() {
            self.publish_control();
            let (cmd, log, typing) = (&self.cmd, self.log.as_ref(), self.start.typing);
            let poll::Wake { fired: triggered, oom, relay, control } =
                poll::wait(&signals, self.deadline(), cmd, log, &self.watch, typing, self.control.as_ref())?;
            let log_pty = self.log.as_mut().and_then(|l| l.pty.as_mut());
            if !relay::copy(self.cmd.pty.as_mut(), log_pty, relay) {
                self.start.typing = false;
            }
            for which in oom {
                self.check_memory(which);
            }
            while let Ok(Some(info)) = signals.read_signal() {
                let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else { continue };
                self.on_signal(signal);
            }
            for which in control {
                self.on_control(which);
            }
            let watched = self.watch.deadline().is_some_and(|at| at <= Instant::now());
            self.after_wake(&triggered);
            // A watch's last look (the settling look of a pressure trigger, the
            // end of a calm) ran code the idle wait does not: unmapped again too.
            if watched && self.watch.deadline().is_none() && self.release_at.is_none() {
                self.release_at = Some(Instant::now() + RELEASE_AFTER);
            }
            self.release_after_control();
        }
        self.publish_control();
        self.finish();
        Ok(())
    }

    fn first_starts(&mut self) {
        let now = Instant::now();
        // The load is read before the first start: above -L, the command starts frozen.
        for event in self.watch.on_wake(&[], now) {
            self.feed(Which::Cmd, event, now);
        }
        if self.log.is_some() {
            self.feed(Which::Log, Event::Start, now);
        }
        if self.fatal.is_none() {
            self.feed(Which::Cmd, Event::Start, now);
        }
    }

    /// After a wake-up: reap, let the trees take their next steps, then feed
    /// the tasks the events that are due.
    fn after_wake(&mut self, triggered: &[(usize, Ready)]) {
        self.reap();
        let now = Instant::now();
        for proc in [Some(&mut self.cmd), self.log.as_mut()].into_iter().flatten() {
            if proc.tree.deadline().is_some_and(|d| d <= now) {
                proc.tree.on_tick();
            }
        }
        self.check_trees();
        let now = Instant::now();
        for event in self.watch.on_wake(triggered, now) {
            self.feed(Which::Cmd, event, now);
        }
        if self.cmd.task.deadline().is_some_and(|d| d <= now) {
            self.feed(Which::Cmd, Event::Tick, now);
        }
        if self.log.as_ref().and_then(|l| l.task.deadline()).is_some_and(|d| d <= now) {
            self.observe_log_input(now);
            self.feed(Which::Log, Event::Tick, now);
        }
        self.maybe_drain(now);
    }

    /// Everything is stopped: give the terminal back and remove the trees.
    fn finish(&mut self) {
        if let Some(notify) = self.notify.as_mut() {
            notify.stopping();
        }
        // The last output of a child on a pty, before the terminal is given back.
        for proc in [Some(&mut self.cmd), self.log.as_mut()].into_iter().flatten() {
            if let Some(pty) = proc.pty.as_mut() {
                pty.drain();
            }
        }
        self.restore_terminal();
        for proc in [Some(&mut self.cmd), self.log.as_mut()].into_iter().flatten() {
            if let Err(e) = proc.tree.remove() {
                tracing::warn!("cannot remove the {} tree: {}", proc.name, crate::io_reason(&e));
            }
        }
    }

    fn finished(&self) -> bool {
        self.cmd.task.is_done() && self.log.as_ref().is_none_or(|l| l.task.is_done())
    }

    /// A while after a pause or resume, or a watch's last look, once no freezer
    /// write is running: the code they ran (a thaw's thread, the freeze and
    /// signal paths, the look) is unmapped again, as after the start-up
    /// ([`idle`]), so that a dmon that paused once is as small when idle as one
    /// that never did.
    fn release_after_control(&mut self) {
        let now = Instant::now();
        if self.release_at.is_none_or(|at| at > now) {
            return;
        }
        let writing = [Some(&mut self.cmd), self.log.as_mut()].into_iter().flatten().any(|p| p.tree.writing());
        if writing {
            self.release_at = Some(now + RELEASE_AFTER);
            return;
        }
        self.release_at = None;
        let released = idle::release_start_up_pages();
        tracing::debug!("unmapped {released} KiB of pages a pause, a resume or a watch's look used");
    }

    fn deadline(&self) -> Option<Instant> {
        let watch = self.watch.deadline().filter(|_| !self.cmd.task.is_done());
        let trees = [Some(&self.cmd), self.log.as_ref()].into_iter().flatten().filter_map(|p| p.tree.deadline());
        [self.cmd.task.deadline(), self.log.as_ref().and_then(|l| l.task.deadline()), watch, self.release_at]
            .into_iter()
            .flatten()
            .chain(trees)
            .min()
    }

    fn shutdown(&mut self) {
        self.queue.push_back(Step::Shutdown);
        self.work_off(Instant::now());
    }

    /// Once the command is done for good, closes dmon's write end of the pipe and
    /// lets the log command read to the end.
    fn maybe_drain(&mut self, now: Instant) {
        if !self.cmd.task.is_done() {
            return;
        }
        if let Some(notify) = self.notify.as_mut() {
            notify.stopping();
        }
        if self.start.pipe_write.take().is_some() || (self.shutting_down && self.log.is_none()) {
            self.progress.restart();
            self.observe_log_input(now);
            self.feed(Which::Log, Event::Drain, now);
        }
    }

    /// Hands `event` to the task of `which`, carries out its actions, and
    /// works off the queue of what follows.
    fn feed(&mut self, which: Which, event: Event, now: Instant) {
        self.queue.push_back(Step::Feed(which, event));
        self.work_off(now);
    }

    /// Takes the queue's steps until none is left. A step taken while another
    /// is (an action's follow-up) waits its turn, so that every batch of
    /// actions is carried out whole before the next event.
    fn work_off(&mut self, now: Instant) {
        if self.stepping {
            return;
        }
        self.stepping = true;
        while let Some(step) = self.queue.pop_front() {
            match step {
                Step::Feed(which, event) => self.step(which, event, now),
                Step::Shutdown => {
                    if !self.shutting_down {
                        tracing::info!("stopping");
                        self.shutting_down = true;
                        if let Some(notify) = self.notify.as_mut() {
                            notify.stopping();
                        }
                        self.queue.push_back(Step::Feed(Which::Cmd, Event::Stop));
                        self.queue.push_back(Step::Drain);
                    }
                }
                Step::Drain => self.maybe_drain(now),
            }
        }
        self.stepping = false;
    }

    fn step(&mut self, which: Which, event: Event, now: Instant) {
        let task = match which {
            Which::Cmd => &mut self.cmd.task,
            Which::Log => match self.log.as_mut() {
                Some(log) => &mut log.task,
                None => return,
            },
        };
        for action in task.handle(event, now) {
            self.act(which, action, now);
        }
        if let Event::Spawned { .. } | Event::SpawnFailed { .. } = event {
            self.update_foreign();
            self.notify_ready();
        }
    }

    fn proc(&mut self, which: Which) -> &mut Proc {
        match which {
            Which::Cmd => &mut self.cmd,
            Which::Log => self.log.as_mut().expect("log task without a log command"),
        }
    }

    /// Takes the terminal back for dmon's own process group.
    fn restore_terminal(&self) {
        if let Some(raw) = self.start.raw_input.as_ref() {
            raw.leave();
        }
        // The terminal is dmon's standard input. SIGTTOU is blocked, so
        // tcsetpgrp from the background does not stop dmon.
        if self.start.tty.is_some() {
            let _ = nix::unistd::tcsetpgrp(crate::standard_input(), nix::unistd::getpgrp());
        }
    }
}
