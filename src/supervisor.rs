//! The event loop: one thread, one `poll` over a signalfd, the trees' event
//! descriptors and a single deadline. It turns kernel notifications into task
//! events and carries out the tasks' actions with system calls. While the command
//! runs and no load watching is asked for, nothing wakes dmon up.
//!
//! The pipe between the command and the log command belongs to dmon: both ends
//! stay open here for dmon's whole life, so either side can die and be restarted
//! without a byte in the pipe being lost. On shutdown the command's tree is
//! stopped first; then dmon closes its write end, the log command reads the pipe
//! to its end, and only after that (or the grace period) is it stopped.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cli::Options;
use crate::creds::Credentials;
use crate::limits::Limit;
use crate::status::{Record, StatusFile};
use crate::task::{Action, Event, Policy, State, Status, Task};
use crate::tree::Tree;
use crate::usage::Meter;
use crate::watch::{Ready, Watch};

/// How long after a pause or resume its pages are unmapped again.
const RELEASE_AFTER: Duration = Duration::from_secs(1);

mod idle;
mod relay;

/// The signals forwarded with `-s` / `-S` (ignored without).
pub const FORWARDED: [Signal; 6] =
    [Signal::SIGCONT, Signal::SIGALRM, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGHUP];

/// What woke [`Supervisor::wait`]: the watchers that fired, and the trees whose
/// out-of-memory descriptor is readable.
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

/// One supervised process: the command or the log command.
pub struct Proc {
    /// `cmd` or `log`, as in the status lines.
    pub name: &'static str,
    pub argv: Vec<OsString>,
    pub task: Task,
    pub tree: Tree,
    pub creds: Option<Credentials>,
    /// `-s` / `-S`.
    pub forward: bool,
    /// The usage of the current (or last) run.
    meter: Meter,
    /// Whether a failure to execute was already reported (reported once until a
    /// start succeeds again).
    exec_failure_reported: bool,
    /// Whether a start ever succeeded: a first start that cannot execute is a
    /// mistake on the command line (a typo), not something to retry.
    ever_started: bool,
    /// `--memory-max` and the other limits of the command's tree.
    pub limits: Option<crate::tree::resources::Enforcer>,
    /// The kernel killed a process of the current run for want of memory.
    out_of_memory: bool,
    /// The pty that stands in for dmon's terminal when the process runs as
    /// another user ([`relay`]).
    pty: Option<relay::Pty>,
}

impl Proc {
    pub fn new(
        name: &'static str,
        argv: Vec<OsString>,
        policy: Policy,
        tree: Tree,
        creds: Option<Credentials>,
        forward: bool,
    ) -> Proc {
        Proc {
            name,
            argv,
            task: Task::new(policy),
            tree,
            creds,
            forward,
            meter: Meter::start(None, &[], false, Instant::now()),
            exec_failure_reported: false,
            ever_started: false,
            limits: None,
            out_of_memory: false,
            pty: None,
        }
    }
}

/// Everything the loop works with, prepared by `main`.
pub struct Supervisor {
    pub cmd: Proc,
    pub log: Option<Proc>,
    pub status: Option<StatusFile>,
    pub limits: Vec<Limit>,
    pub environ: Vec<(String, Option<String>)>,
    pub stderr_redir: bool,
    /// The terminal shared with the command in `-n` mode (standard input).
    pub tty: Option<RawFd>,
    /// `-L`/`-l` and `--pressure`: what pauses the command tree.
    pub watch: Watch,
    /// The exit status dmon reports: the command's last one in -1/-m modes.
    pub report_command_status: bool,
    pipe_read: Option<OwnedFd>,
    pipe_write: Option<OwnedFd>,
    /// The last look at the log command's progress on the pipe.
    progress: crate::logpipe::Progress,
    /// Why dmon must end with an error, once everything is stopped: a first start
    /// that could not be executed (exit code and message).
    fatal: Option<(i32, String)>,
    shutting_down: bool,
    /// The service manager's notification socket (`NOTIFY_SOCKET`), if any.
    notify: Option<crate::notify::Notifier>,
    /// Whether runs are measured for the usage record: always, except where
    /// `DMON_USAGE=0` turns it off to measure what the record costs
    /// (integration/bench.py, case `record`).
    usage: bool,
    /// dmon's nice value before it raised its own priority (see
    /// [`crate::child::raise_priority`]): what every child is given back before exec.
    child_nice: Option<i32>,
    /// When to unmap what a pause or resume faulted in ([`Supervisor::release_after_control`]).
    release_at: Option<Instant>,
    /// The real terminal in raw mode while what is typed goes to the
    /// command's pty ([`relay`]), and whether the terminal still gives input.
    raw_input: Option<relay::RawInput>,
    typing: bool,
    /// `--control DIR`: runit's supervise directories.
    pub control: Option<crate::control::Control>,
}

/// What a wake-up found: the watchers that fired, whether the out-of-memory
/// notification came, and the relay's descriptors that are ready.
struct Wake {
    fired: Vec<(usize, Ready)>,
    /// The trees whose OOM descriptor woke.
    oom: Vec<Which>,
    relay: RelayReady,
    /// The processes whose control FIFO holds letters.
    control: Vec<Which>,
}

/// Which relay descriptors the last poll found ready.
#[derive(Default)]
struct RelayReady {
    cmd_out: bool,
    log_out: bool,
    typed: bool,
    cmd_in: bool,
}

impl Supervisor {
    pub fn new(
        cmd: Proc,
        log: Option<Proc>,
        status: Option<StatusFile>,
        opts: &Options,
        tty: Option<RawFd>,
    ) -> io::Result<Supervisor> {
        let (pipe_read, pipe_write) = match log {
            Some(_) => {
                let (r, w) = crate::logpipe::pipe()?;
                crate::logpipe::share(&r, ids_of(Some(&cmd)), ids_of(log.as_ref())).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot give the log pipe to the command's users: {e}"))
                })?;
                (Some(r), Some(w))
            }
            None => (None, None),
        };
        Ok(Supervisor {
            cmd,
            log,
            status,
            limits: opts.limits.clone(),
            environ: opts.environ.clone(),
            stderr_redir: opts.stderr_redir,
            tty,
            watch: Watch::default(),
            report_command_status: opts.once || opts.max_respawns.is_some(),
            pipe_read,
            pipe_write,
            progress: Default::default(),
            fatal: None,
            shutting_down: false,
            notify: crate::notify::Notifier::from_env(),
            child_nice: None,
            release_at: None,
            raw_input: None,
            typing: false,
            control: None,
            usage: std::env::var_os("DMON_USAGE").is_none_or(|v| v != "0"),
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
        let signals = signal_fd()?;
        // Orphaned grandchildren come back to dmon, to be found and reaped; the
        // signal fallback finds a setsid'd orphan only so.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!("cannot become the child subreaper: {}; orphans of the command go to init", e.desc());
        }
        self.child_nice = crate::child::raise_priority();
        self.first_starts();
        let released = idle::release_start_up_pages();
        tracing::debug!("unmapped {released} KiB of start-up pages");
        // What parsing, resolving and the first starts allocated is freed by now:
        // hand its pages back to the kernel before waiting, perhaps for months.
        // SAFETY: malloc_trim has no preconditions.
        #[cfg(target_env = "gnu")]
        unsafe {
            libc::malloc_trim(0)
        };
        while !self.finished() {
            self.publish_control();
            let Wake { fired: triggered, oom, relay, control } = self.wait(&signals)?;
            self.relay(relay);
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
            self.after_wake(&triggered);
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
        if self.fatal.is_some() {
            self.shutdown();
        }
    }

    /// Waits for a signal, a tree's event, a watcher's trigger or the next
    /// deadline. Returns which watchers fired, whose OOM descriptor woke and
    /// which relay descriptors are ready; signals and trees are looked at after
    /// every wake-up.
    fn wait(&self, signals: &SignalFd) -> io::Result<Wake> {
        let timeout = match self.deadline() {
            None => PollTimeout::NONE,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                // Round up, so that we never wake just before the deadline.
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        // The poll slots: the signalfd, the trees' event descriptors, then the
        // watchers' triggers.
        let tree_fds: Vec<_> =
            [Some(&self.cmd), self.log.as_ref()].into_iter().flatten().filter_map(|p| p.tree.event_fd()).collect();
        let watch_fds = self.watch.fds();
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        fds.extend(tree_fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLPRI)));
        let watch_slots = fds.len()..fds.len() + watch_fds.len();
        fds.extend(watch_fds.iter().map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLPRI)));
        // Last, the out-of-memory notifications of the trees' limits.
        let oom: Vec<_> = [(Which::Cmd, Some(&self.cmd)), (Which::Log, self.log.as_ref())]
            .into_iter()
            .filter_map(|(which, p)| Some((which, p?.limits.as_ref()?.oom_fd()?)))
            .collect();
        let oom_slots = fds.len()..fds.len() + oom.len();
        for (_, (fd, pri)) in &oom {
            fds.push(PollFd::new(*fd, if *pri { PollFlags::POLLPRI } else { PollFlags::POLLIN }));
        }
        // Then the ptys of children that run as another user, and the real
        // terminal while what is typed goes to the command's pty.
        let cmd_pty = self.cmd.pty.as_ref();
        let log_pty = self.log.as_ref().and_then(|l| l.pty.as_ref());
        let mut relay_slots = [None; 3];
        if let Some(pty) = cmd_pty {
            let events = if pty.pending() { PollFlags::POLLIN | PollFlags::POLLOUT } else { PollFlags::POLLIN };
            fds.push(PollFd::new(pty.master(), events));
            relay_slots[0] = Some(fds.len() - 1);
        }
        if let Some(pty) = log_pty {
            fds.push(PollFd::new(pty.master(), PollFlags::POLLIN));
            relay_slots[1] = Some(fds.len() - 1);
        }
        if self.typing && cmd_pty.is_some_and(|p| !p.pending()) {
            // SAFETY: dmon's standard input, open for its whole life.
            let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            relay_slots[2] = Some(fds.len() - 1);
        }
        // And the control FIFOs of --control.
        let control: Vec<_> = self
            .control
            .iter()
            .flat_map(|c| [Some((Which::Cmd, &c.cmd)), c.log.as_ref().map(|l| (Which::Log, l))])
            .flatten()
            .collect();
        let control_slots = fds.len()..fds.len() + control.len();
        fds.extend(control.iter().map(|(_, c)| PollFd::new(c.control_fd(), PollFlags::POLLIN)));
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready = |fd: &PollFd| match fd.revents() {
            Some(r) if r.contains(PollFlags::POLLERR) => Some(Ready::Gone),
            Some(r) if r.contains(PollFlags::POLLPRI) => Some(Ready::Fired),
            _ => None,
        };
        let oom_woke = oom
            .iter()
            .zip(&fds[oom_slots])
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|((which, _), _)| *which)
            .collect();
        let fired = watch_fds.iter().zip(&fds[watch_slots]).filter_map(|((i, _), fd)| Some((*i, ready(fd)?))).collect();
        let has = |i: usize, flags: PollFlags| {
            relay_slots[i].and_then(|slot| fds[slot].revents()).is_some_and(|r| r.intersects(flags))
        };
        let gone = PollFlags::POLLHUP | PollFlags::POLLERR;
        let relay = RelayReady {
            cmd_out: has(0, PollFlags::POLLIN | gone),
            log_out: has(1, PollFlags::POLLIN | gone),
            cmd_in: has(0, PollFlags::POLLOUT),
            typed: has(2, PollFlags::POLLIN | gone),
        };
        let control = control
            .iter()
            .zip(&fds[control_slots])
            .filter(|(_, fd)| fd.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
            .map(|((which, _), _)| *which)
            .collect();
        Ok(Wake { fired, oom: oom_woke, relay, control })
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

    /// Copies between the ptys and the real terminal what the last poll
    /// found ready ([`relay`]).
    fn relay(&mut self, ready: RelayReady) {
        if ready.cmd_out {
            if let Some(pty) = self.cmd.pty.as_mut() {
                pty.copy_out();
            }
        }
        if ready.log_out {
            if let Some(pty) = self.log.as_mut().and_then(|l| l.pty.as_mut()) {
                pty.copy_out();
            }
        }
        if let Some(pty) = self.cmd.pty.as_mut() {
            if ready.cmd_in {
                pty.flush_in();
            }
            if ready.typed && !pty.copy_in(0) {
                self.typing = false;
            }
        }
    }

    /// Everything is stopped: say what was left unlogged, give the terminal
    /// back and remove the trees.
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
        let unlogged = self.pipe_read.as_ref().map_or(0, crate::logpipe::bytes_in);
        if unlogged > 0 {
            tracing::warn!(
                "{unlogged} bytes of the command's output were left unlogged: the log command made no progress \
                 for {} s",
                self.log.as_ref().map_or(0.0, |l| l.task.grace().as_secs_f64())
            );
        }
        for proc in [Some(&mut self.cmd), self.log.as_mut()].into_iter().flatten() {
            if let Err(e) = proc.tree.remove() {
                tracing::warn!("cannot remove the {} tree: {}", proc.name, crate::io_reason(&e));
            }
        }
    }

    /// Tells the log task whether the pipe still holds data and whether the log
    /// command made progress since the last look (see [`crate::logpipe`]).
    fn observe_log_input(&mut self, now: Instant) {
        let Some(log) = self.log.as_ref() else { return };
        let (left, progress) = self.progress.look(self.pipe_read.as_ref(), log.task.pid());
        self.feed(Which::Log, Event::Input { left, progress }, now);
    }

    fn finished(&self) -> bool {
        self.cmd.task.is_done() && self.log.as_ref().is_none_or(|l| l.task.is_done())
    }

    /// A while after a pause or resume, once no freezer write is running: the
    /// code they ran (a thaw's thread, the freeze and signal paths) is unmapped
    /// again, as after the start-up ([`idle`]), so that a dmon that paused once
    /// is as small when idle as one that never did.
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
        tracing::debug!("unmapped {released} KiB of pages the pause or resume used");
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

    fn on_signal(&mut self, signal: Signal) {
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
            // The terminal dmon shares in -n mode hung up: end, as a foreground
            // program does, unless HUP is to be forwarded.
            Signal::SIGHUP
                if self.tty.is_some() && !self.cmd.forward && !self.log.as_ref().is_some_and(|l| l.forward) =>
            {
                self.shutdown()
            }
            forwarded => {
                for proc in [Some(&mut self.cmd), self.log.as_mut()].into_iter().flatten() {
                    if let (true, Some(pid)) = (proc.forward, proc.task.pid()) {
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
    fn on_control(&mut self, which: Which) {
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
    fn signal_leader(&mut self, which: Which, signal: Signal) {
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

    /// Brings `supervise/status`, `stat` and `pid` up to date.
    fn publish_control(&mut self) {
        let Some(control) = self.control.as_mut() else { return };
        control.cmd.publish(&self.cmd.task, self.shutting_down);
        if let (Some(supervise), Some(log)) = (control.log.as_mut(), self.log.as_ref()) {
            supervise.publish(&log.task, self.shutting_down);
        }
    }

    fn shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        tracing::info!("stopping");
        self.shutting_down = true;
        if let Some(notify) = self.notify.as_mut() {
            notify.stopping();
        }
        let now = Instant::now();
        self.feed(Which::Cmd, Event::Stop, now);
        self.maybe_drain(now);
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
        if self.pipe_write.take().is_some() || (self.shutting_down && self.log.is_none()) {
            self.progress.restart();
            self.observe_log_input(now);
            self.feed(Which::Log, Event::Drain, now);
        }
    }

    /// Reaps every child that has exited: the leaders, and orphans re-parented to
    /// dmon as subreaper. Their rusage goes to their run's meter; an orphan's to
    /// the command's, the tree that claims orphans.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: an all-zero rusage is a valid value of the plain C struct.
            let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: wait4 with valid pointers.
            let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut rusage) };
            if pid <= 0 {
                return;
            }
            let now = Instant::now();
            match self.log.as_mut() {
                Some(log) if log.task.pid() == Some(pid) => log.meter.reaped(&rusage),
                _ => self.cmd.meter.reaped(&rusage),
            }
            if self.cmd.task.pid() == Some(pid) {
                // An OOM kill is said before the exit it caused.
                self.check_memory(Which::Cmd);
                // A death by HUP is the terminal's hangup only while HUP is not
                // forwarded; with -s it may be the user's HUP to the command.
                let hangup = !self.cmd.forward;
                let interrupted = self.tty.is_some()
                    && libc::WIFSIGNALED(status)
                    && match libc::WTERMSIG(status) {
                        libc::SIGINT | libc::SIGQUIT => true,
                        libc::SIGHUP => hangup,
                        _ => false,
                    };
                if interrupted {
                    // Ctrl-C (or a hangup) on the terminal the command shares ends dmon too.
                    self.shutdown();
                }
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

    /// Whether the kernel killed a process of the run of `which` for want of
    /// memory: if so, says so, and ends the rest of the run (v1 kills one
    /// process; v2's `memory.oom.group` already took the whole leaf).
    fn check_memory(&mut self, which: Which) {
        let Some(proc) = (match which {
            Which::Cmd => Some(&mut self.cmd),
            Which::Log => self.log.as_mut(),
        }) else {
            return;
        };
        if !proc.limits.as_mut().is_some_and(|l| l.oom_killed()) || proc.out_of_memory {
            return;
        }
        proc.out_of_memory = true;
        let (name, pid) = (proc.name, proc.task.pid().unwrap_or(0));
        tracing::warn!("{name}: out of memory (--memory-max): the kernel killed a process of the run; ending it");
        if let Err(e) = proc.tree.kill() {
            tracing::warn!("{name}: kill after the OOM failed: {}", crate::io_reason(&e));
        }
        if let Some(status) = self.status.as_mut() {
            status.record(Record::Oom { process: name, pid });
        }
    }

    /// Tells tasks that wait for an empty tree when theirs is.
    fn check_trees(&mut self) {
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

    /// Hands `event` to the task of `which` and carries out its actions.
    fn feed(&mut self, which: Which, event: Event, now: Instant) {
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
    }

    fn act(&mut self, which: Which, action: Action, now: Instant) {
        let name = which.name();
        tracing::debug!("{name}: {action}");
        let result = match action {
            Action::Report(mut status) => {
                let measured = self.usage;
                let proc = self.proc(which);
                if let Status::Exit(pid, wait_status, _) = status {
                    if std::mem::take(&mut proc.out_of_memory) {
                        status = Status::Exit(pid, wait_status, crate::task::Reason::Oom);
                    }
                }
                // The exit of a run comes once its tree is empty: what it used is complete.
                let usage = (measured && matches!(status, Status::Exit(..)))
                    .then(|| proc.meter.finish(proc.tree.dir(), Instant::now()));
                if let Some(file) = self.status.as_mut() {
                    file.report(name, status, usage.as_ref());
                }
                Ok(())
            }
            Action::Spawn { frozen } => {
                let event = self.spawn(which, frozen);
                self.feed(which, event, now);
                self.update_foreign();
                self.notify_ready();
                Ok(())
            }
            Action::Terminate => self.proc(which).tree.terminate(),
            Action::Kill => self.proc(which).tree.kill(),
            Action::Freeze => {
                self.release_at = Some(now + RELEASE_AFTER);
                let proc = self.proc(which);
                proc.meter.pause(Instant::now());
                proc.tree.freeze()
            }
            Action::Thaw => {
                self.release_at = Some(now + RELEASE_AFTER);
                let proc = self.proc(which);
                proc.meter.resume(Instant::now());
                proc.tree.thaw()
            }
        };
        if let Err(e) = result {
            tracing::warn!("{name}: {action} failed: {}", crate::io_reason(&e));
        }
    }

    /// Tells the service manager that dmon is ready (`READY=1`) once the command
    /// and the log command have both started.
    fn notify_ready(&mut self) {
        let started = |p: &Proc| p.task.pid().is_some();
        if !self.shutting_down && started(&self.cmd) && self.log.as_ref().is_none_or(started) {
            crate::daemon::ready();
            if let Some(notify) = self.notify.as_mut() {
                notify.ready();
            }
        }
    }

    fn proc(&mut self, which: Which) -> &mut Proc {
        match which {
            Which::Cmd => &mut self.cmd,
            Which::Log => self.log.as_mut().expect("log task without a log command"),
        }
    }

    /// Keeps the command's tree from claiming the log command's processes.
    fn update_foreign(&mut self) {
        let foreign: Vec<i32> = self.log.as_ref().and_then(|l| l.task.pid()).into_iter().collect();
        self.cmd.tree.set_foreign(&foreign);
        let foreign: Vec<i32> = self.cmd.task.pid().into_iter().collect();
        if let Some(log) = self.log.as_mut() {
            log.tree.set_foreign(&foreign);
        }
    }

    /// Starts the command or the log command into its tree.
    fn spawn(&mut self, which: Which, frozen: bool) -> Event {
        let foreground = if which == Which::Log { None } else { self.tty };
        let mut stdio = match self.stdio(which) {
            Ok(stdio) => stdio,
            Err(e) => {
                tracing::error!("cannot set up the standard streams: {}", crate::io_reason(&e));
                return Event::SpawnFailed { status: 1 << 8, retry: true };
            }
        };
        let (session, ctty) = match self.terminal_for(which, &mut stdio) {
            Ok(terminal) => terminal,
            Err(e) => {
                tracing::error!("{}: cannot make its terminal: {}", which.name(), crate::io_reason(&e));
                return Event::SpawnFailed { status: 1 << 8, retry: true };
            }
        };
        let (environ, limits, nice) = (self.environ.clone(), self.limits.clone(), self.child_nice);
        let measured = self.usage;
        let proc = self.proc(which);
        let setup = match proc.tree.child_setup(frozen) {
            Ok(setup) => setup,
            Err(e) => {
                tracing::error!("{}: cannot prepare the tree: {}", proc.name, crate::io_reason(&e));
                return Event::SpawnFailed { status: 1 << 8, retry: true };
            }
        };
        let mut setup = setup;
        if let Some(limits) = proc.limits.as_mut() {
            match limits.prepare_run() {
                Ok(fds) => fds.into_iter().zip(&mut setup.limit_fds).for_each(|(fd, slot)| *slot = Some(fd)),
                Err(e) => {
                    tracing::error!("{}: cannot prepare the limits: {}", proc.name, crate::io_reason(&e));
                    return Event::SpawnFailed { status: 1 << 8, retry: true };
                }
            }
        }
        // The last run's peak files are closed first, so that the new run's
        // take the same descriptor numbers: dmon's descriptors stay the same.
        proc.meter = Meter::start(None, &[], false, Instant::now());
        // Before the start: the leaf's counters are read while it is empty.
        let peaks = proc.limits.as_ref().filter(|_| measured).map(|l| l.run_dirs()).unwrap_or_default();
        let leaf = proc.tree.dir().filter(|_| measured);
        let meter = Meter::start(leaf, &peaks, frozen, Instant::now());
        let child = crate::child::Child {
            argv: &proc.argv,
            stdio,
            environ: &environ,
            creds: proc.creds.as_ref(),
            setup,
            tty: foreground,
            session,
            ctty,
            nice,
            limits: &limits,
        };
        match child.start() {
            Ok(pid) => {
                if let Some(limits) = proc.limits.as_mut() {
                    limits.started();
                }
                proc.meter = meter;
                proc.exec_failure_reported = false;
                proc.ever_started = true;
                proc.tree.started(pid);
                tracing::info!("{} started as pid {pid}", proc.name);
                Event::Spawned { pid }
            }
            Err(e) => {
                let code = e.exit_code();
                if e.is_exec() && !proc.ever_started {
                    // A typo on the command line: say so and end, rather than
                    // retry for ever something that never ran.
                    self.fatal.get_or_insert((code, e.to_string()));
                    return Event::SpawnFailed { status: code << 8, retry: false };
                }
                if !proc.exec_failure_reported {
                    tracing::error!("{}: {e}", proc.name);
                    proc.exec_failure_reported = true;
                }
                Event::SpawnFailed { status: code << 8, retry: true }
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
    fn terminal_for(&mut self, which: Which, stdio: &mut [Option<OwnedFd>; 3]) -> io::Result<(bool, Option<RawFd>)> {
        let own = nix::unistd::geteuid().as_raw();
        let ids = ids_of(Some(self.proc(which))).filter(|ids| ids.uid != own).map(|ids| (ids.uid, ids.gid));
        let Some(owner) = ids else { return Ok((false, None)) };
        let on_terminal: Vec<usize> =
            (0..3).filter(|&i| stdio[i].is_none() && relay::is_terminal(i as RawFd)).collect();
        let Some(like) = relay::terminal_of_dmon().filter(|_| !on_terminal.is_empty()) else {
            return Ok((true, None));
        };
        let typed = which == Which::Cmd && self.tty.is_some() && on_terminal.contains(&0);
        let proc = self.proc(which);
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

    /// Takes the terminal back for dmon's own process group.
    fn restore_terminal(&self) {
        if let Some(raw) = self.raw_input.as_ref() {
            raw.leave();
        }
        // The terminal is dmon's standard input. SIGTTOU is blocked, so
        // tcsetpgrp from the background does not stop dmon.
        if self.tty.is_some() {
            let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp());
        }
    }
}

/// The ids a process is changed to, if any.
fn ids_of(proc: Option<&Proc>) -> Option<&crate::creds::Ids> {
    proc.and_then(|p| p.creds.as_ref()).and_then(|c| c.ids.as_ref())
}

/// A signalfd for the signals dmon handles, which are blocked for the thread
/// (and so, until the pre-exec hook unblocks them, for every child).
fn signal_fd() -> io::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGTTOU,
        Signal::SIGTTIN,
        Signal::SIGPIPE,
        Signal::SIGWINCH,
    ]
    .into_iter()
    .chain(FORWARDED)
    {
        mask.add(signal);
    }
    mask.thread_block().map_err(io::Error::from)?;
    // A signal ignored by whoever started dmon (`nohup`, `trap '' TERM`) is
    // dropped before the signalfd could read it, and an ignored signal stays
    // ignored across exec, into the command. Blocked now, they can be given
    // their default action without a window. SIGPIPE stays as Rust set it.
    for signal in mask.iter().filter(|s| *s != Signal::SIGPIPE) {
        // SAFETY: SIG_DFL installs no handler; the signal is blocked.
        let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
    }
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)
}
