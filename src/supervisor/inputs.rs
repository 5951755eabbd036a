//! What the loop hears, turned into task events: dmon's signals, runit's
//! control letters, reaped children, the trees' and the limits' notifications,
//! and the log command's progress on the pipe. Nothing is decided here: the
//! tasks decide ([`crate::task`]), and [`super::actions`] carries out what
//! they return.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::{Forward, Supervisor, Which, relay, signals};
use crate::status::Record;
use crate::task::{Event, State};

impl Supervisor {
    /// Tells the log task whether the pipe still holds data and whether the log
    /// command made progress since the last look (see [`crate::logpipe`]).
    pub(super) fn observe_log_input(&mut self, now: Instant) {
        let Some(log) = self.log.as_ref() else { return };
        let (left, progress) = self.progress.look(self.start.pipe_read.as_ref(), log.task.pid());
        self.feed(Which::Log, Event::Input { left, progress }, now);
    }

    pub(super) fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGCHLD | Signal::SIGTTOU | Signal::SIGTTIN | Signal::SIGPIPE => {}
            // The real terminal's window changed: so does the command's pty,
            // and the kernel tells the command (a child on dmon's own terminal
            // hears of it from the terminal itself).
            Signal::SIGWINCH => {
                if let (Some(pty), Some(tty)) = (self.cmd.pty.as_ref(), relay::terminal_of_dmon()) {
                    pty.resize(tty);
                }
            }
            Signal::SIGTERM | Signal::SIGINT => self.shutdown(),
            forwarded => {
                if forwarded == Signal::SIGHUP {
                    // Perhaps the terminal dmon shares hung up (the task decides);
                    // then nothing forwards HUP.
                    self.feed(Which::Cmd, Event::Hangup, Instant::now());
                }
                for proc in [Some(&mut self.cmd), self.log.as_mut()].into_iter().flatten() {
                    if let (Forward::Signals, Some(pid)) = (proc.forward, proc.task.pid()) {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), forwarded);
                        if let Some(status) = self.status.as_mut() {
                            status.record(Record::Signal { process: proc.name, pid, signal: forwarded as i32 });
                        }
                    }
                }
            }
        }
    }

    /// Carries out the letters on the control FIFO of `which`, in order: task
    /// events, a signal to the leader (as `-s` forwards it), or the end of dmon.
    pub(super) fn on_control(&mut self, which: Which) {
        use crate::control::Command;
        let Some(control) = self.control.as_mut() else { return };
        let supervise = if which == Which::Cmd { Some(&mut control.cmd) } else { control.log.as_mut() };
        let Some(letters) = supervise.map(|s| s.read_letters()) else { return };
        for letter in letters {
            let Some(command) = crate::control::command(letter) else { continue };
            let name = which.name();
            tracing::info!("{name}: control {}", letter as char);
            if let Some(status) = self.status.as_mut() {
                status.record(Record::Control { process: name, command: letter as char });
            }
            let now = Instant::now();
            match command {
                Command::Task(event) => self.feed(which, event, now),
                Command::Exit if which == Which::Cmd => self.shutdown(),
                Command::Exit => {}
                Command::Signal(signal) => self.signal_leader(which, signal),
            }
            self.publish_control();
        }
    }

    /// Sends `signal` to the leader of `which`, if it runs, and records it.
    pub(super) fn signal_leader(&mut self, which: Which, signal: Signal) {
        let proc = self.proc(which);
        let (name, Some(pid)) = (proc.name, proc.task.pid()) else { return };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        if let Some(status) = self.status.as_mut() {
            status.record(Record::Signal { process: name, pid, signal: signal as i32 });
        }
        if let (Signal::SIGTERM, Some(control)) = (signal, self.control.as_mut()) {
            let supervise = if which == Which::Cmd { Some(&mut control.cmd) } else { control.log.as_mut() };
            if let Some(supervise) = supervise {
                supervise.term_sent(pid);
            }
        }
    }

    /// Reaps every child that has exited: the leaders, and orphans re-parented to
    /// dmon as subreaper. Their rusage goes to their run's meter; an orphan's to
    /// the command's, the tree that claims orphans.
    pub(super) fn reap(&mut self) {
        while let Some((pid, status, rusage)) = signals::reaped() {
            let now = Instant::now();
            match self.log.as_mut() {
                Some(log) if log.task.pid() == Some(pid) => log.meter.reaped(&rusage),
                _ => self.cmd.meter.reaped(&rusage),
            }
            if self.cmd.task.pid() == Some(pid) {
                // An OOM kill is said before the exit it caused.
                self.check_memory(Which::Cmd);
                let tree_empty = self.cmd.tree.is_empty();
                self.feed(Which::Cmd, Event::Exited { status, tree_empty }, now);
            } else if self.log.as_ref().is_some_and(|l| l.task.pid() == Some(pid)) {
                self.check_memory(Which::Log);
                self.observe_log_input(now);
                self.progress.forget_process();
                let log = self.log.as_mut().expect("checked above");
                let tree_empty = log.tree.is_empty();
                self.feed(Which::Log, Event::Exited { status, tree_empty }, now);
            }
        }
    }

    /// Tells the task of `which` if the kernel killed a process of its run for
    /// want of memory.
    pub(super) fn check_memory(&mut self, which: Which) {
        let Some(proc) = (match which {
            Which::Cmd => Some(&mut self.cmd),
            Which::Log => self.log.as_mut(),
        }) else {
            return;
        };
        if proc.tree.oom_killed() {
            self.feed(which, Event::OutOfMemory, Instant::now());
        }
    }

    /// Tells tasks that wait for an empty tree when theirs is.
    pub(super) fn check_trees(&mut self) {
        let now = Instant::now();
        // A cgroup v2 tree keeps its event fd readable until it is read again.
        self.cmd.tree.acknowledge();
        if let Some(log) = self.log.as_mut() {
            log.tree.acknowledge();
        }
        if matches!(self.cmd.task.state(), State::Stopping { leader: None, .. }) && self.cmd.tree.is_empty() {
            self.feed(Which::Cmd, Event::TreeEmpty, now);
        }
        if let Some(log) = self.log.as_mut() {
            if matches!(log.task.state(), State::Stopping { leader: None, .. }) && log.tree.is_empty() {
                self.feed(Which::Log, Event::TreeEmpty, now);
            }
        }
    }
}
