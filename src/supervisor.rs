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
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cli::{LoadMarks, Options};
use crate::creds::Credentials;
use crate::limits::Limit;
use crate::status::{Record, StatusFile};
use crate::task::{Action, Event, Policy, State, Task};
use crate::tree::{ChildSetup, Tree};

/// The signals forwarded with `-s` / `-S` (ignored without).
pub const FORWARDED: [Signal; 6] =
    [Signal::SIGCONT, Signal::SIGALRM, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGHUP];

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
    /// Whether a failure to execute was already reported (reported once until a
    /// start succeeds again).
    exec_failure_reported: bool,
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
        Proc { name, argv, task: Task::new(policy), tree, creds, forward, exec_failure_reported: false }
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
    pub load: Option<LoadWatch>,
    /// `--pressure`: a PSI trigger instead of the load average.
    pub pressure: Option<crate::tree::psi::PressureWatch>,
    /// The exit status dmon reports: the command's last one in -1/-m modes.
    pub report_command_status: bool,
    pipe_read: Option<OwnedFd>,
    pipe_write: Option<OwnedFd>,
    /// Bytes in the pipe at the log command's last deadline (see `input_progress`).
    pipe_bytes: i32,
    shutting_down: bool,
    /// The service manager's notification socket (`NOTIFY_SOCKET`), if any.
    notify: Option<crate::notify::Notifier>,
}

/// Watches the load average for `-L`/`-l`.
pub struct LoadWatch {
    marks: LoadMarks,
    source: std::path::PathBuf,
    period: Duration,
    next: Instant,
}

impl LoadWatch {
    /// The kernel updates /proc/loadavg every 5 seconds (LOAD_FREQ in
    /// kernel/sched/loadavg.c); reading it more often re-reads the same value.
    /// `DMON_LOADAVG_FILE` names a file read instead, for tests, which is then
    /// read every 100 ms so that tests run quickly.
    pub fn new(marks: LoadMarks) -> LoadWatch {
        let (source, period) = match std::env::var_os("DMON_LOADAVG_FILE") {
            Some(path) => (path.into(), Duration::from_millis(100)),
            None => ("/proc/loadavg".into(), Duration::from_secs(5)),
        };
        LoadWatch { marks, source, period, next: Instant::now() }
    }

    /// Reads the 1-minute load average and says whether to pause or resume.
    fn check(&mut self, now: Instant) -> Option<Event> {
        self.next = now + self.period;
        let text = std::fs::read_to_string(&self.source).ok()?;
        let load: f64 = text.split_whitespace().next()?.parse().ok()?;
        if load > self.marks.high {
            Some(Event::Pause)
        } else if load < self.marks.low {
            Some(Event::Resume)
        } else {
            None
        }
    }
}

/// Builds the pipe between the command and the log command.
fn log_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

impl Supervisor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cmd: Proc,
        log: Option<Proc>,
        status: Option<StatusFile>,
        opts: &Options,
        tty: Option<RawFd>,
    ) -> io::Result<Supervisor> {
        let (pipe_read, pipe_write) = match log {
            Some(_) => {
                let (r, w) = log_pipe()?;
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
            load: opts.load.map(LoadWatch::new),
            pressure: None,
            report_command_status: opts.once || opts.max_respawns.is_some(),
            pipe_read,
            pipe_write,
            pipe_bytes: i32::MAX,
            shutting_down: false,
            notify: crate::notify::Notifier::from_env(),
        })
    }

    /// Runs until the command is done and the log command has drained the pipe.
    /// Returns dmon's exit code.
    pub fn run(mut self) -> io::Result<i32> {
        let mut mask = SigSet::empty();
        for signal in
            [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGTTOU, Signal::SIGTTIN, Signal::SIGPIPE]
                .into_iter()
                .chain(FORWARDED)
        {
            mask.add(signal);
        }
        mask.thread_block().map_err(io::Error::from)?;
        let signals =
            SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)?;
        // Orphaned grandchildren come back to dmon, to be found and reaped.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

        let now = Instant::now();
        if let Some(event) = self.load.as_mut().and_then(|l| l.check(now)) {
            self.feed_cmd(event, now);
        }
        if self.log.is_some() {
            self.feed_log(Event::Start, now);
        }
        self.feed_cmd(Event::Start, now);

        while !self.finished() {
            let deadline = self.deadline();
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    // Round up, so that we never wake just before the deadline.
                    let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let tree_fds: Vec<_> =
                [Some(&self.cmd), self.log.as_ref()].into_iter().flatten().filter_map(|p| p.tree.event_fd()).collect();
            fds.extend(tree_fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLPRI)));
            if let Some(watch) = self.pressure.as_ref() {
                fds.push(PollFd::new(watch.fd(), PollFlags::POLLPRI));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            let pressure_fired = self.pressure.is_some()
                && fds
                    .last()
                    .and_then(|fd| fd.revents())
                    .is_some_and(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR));
            drop(fds);
            drop(tree_fds);

            while let Ok(Some(info)) = signals.read_signal() {
                let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else { continue };
                self.on_signal(signal);
            }
            self.reap();
            self.check_trees();

            let now = Instant::now();
            if let Some(event) = self.load.as_mut().filter(|l| l.next <= now).and_then(|l| l.check(now)) {
                self.feed_cmd(event, now);
            }
            let pressure_event = match self.pressure.as_mut() {
                Some(watch) if pressure_fired => watch.on_trigger(now),
                Some(watch) if watch.deadline().is_some_and(|d| d <= now) => watch.on_deadline(now),
                _ => None,
            };
            if let Some(event) = pressure_event {
                self.feed_cmd(event, now);
            }
            if self.cmd.task.deadline().is_some_and(|d| d <= now) {
                self.feed_cmd(Event::Tick, now);
            }
            if self.log.as_ref().and_then(|l| l.task.deadline()).is_some_and(|d| d <= now) {
                let bytes = self.pipe_read.as_ref().map_or(0, |fd| bytes_in_pipe(fd.as_raw_fd()));
                if let Some(log) = self.log.as_mut() {
                    log.task.input_left = bytes > 0;
                    log.task.input_progress = bytes < self.pipe_bytes;
                }
                self.pipe_bytes = bytes;
                self.feed_log(Event::Tick, now);
            }
            self.maybe_drain(now);
        }
        if let Some(notify) = self.notify.as_mut() {
            notify.stopping();
        }
        self.restore_terminal();
        for proc in [Some(&mut self.cmd), self.log.as_mut()].into_iter().flatten() {
            if let Err(e) = proc.tree.remove() {
                tracing::warn!("cannot remove the {} tree: {}", proc.name, crate::io_reason(&e));
            }
        }
        Ok(match (self.report_command_status, self.cmd.task.last_status()) {
            (true, Some(status)) => crate::task::exit_code(status),
            _ => 0,
        })
    }

    fn finished(&self) -> bool {
        self.cmd.task.is_done() && self.log.as_ref().is_none_or(|l| l.task.is_done())
    }

    fn deadline(&self) -> Option<Instant> {
        let load = self.load.as_ref().filter(|_| !self.cmd.task.is_done()).map(|l| l.next);
        let pressure = self.pressure.as_ref().filter(|_| !self.cmd.task.is_done()).and_then(|p| p.deadline());
        [self.cmd.task.deadline(), self.log.as_ref().and_then(|l| l.task.deadline()), load, pressure]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGCHLD | Signal::SIGTTOU | Signal::SIGTTIN | Signal::SIGPIPE => {}
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
        self.feed_cmd(Event::Stop, now);
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
            self.pipe_bytes = self.pipe_read.as_ref().map_or(0, |fd| bytes_in_pipe(fd.as_raw_fd()));
            self.feed_log(Event::Drain, now);
        }
    }

    /// Reaps every child that has exited: the leaders, and orphans re-parented to
    /// dmon as subreaper.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let now = Instant::now();
            if self.cmd.task.pid() == Some(pid) {
                let interrupted = self.tty.is_some()
                    && libc::WIFSIGNALED(status)
                    && matches!(libc::WTERMSIG(status), libc::SIGINT | libc::SIGQUIT | libc::SIGHUP);
                if interrupted {
                    // Ctrl-C (or a hangup) on the terminal the command shares ends dmon too.
                    self.shutdown();
                }
                let tree_empty = self.cmd.tree.is_empty();
                self.feed_cmd(Event::Exited { status, tree_empty }, now);
            } else if self.log.as_ref().is_some_and(|l| l.task.pid() == Some(pid)) {
                let input_left = self.pipe_read.as_ref().is_some_and(|fd| bytes_in_pipe(fd.as_raw_fd()) > 0);
                let log = self.log.as_mut().expect("checked above");
                log.task.input_left = input_left;
                let tree_empty = log.tree.is_empty();
                self.feed_log(Event::Exited { status, tree_empty }, now);
            }
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
            self.feed_cmd(Event::TreeEmpty, now);
        }
        if let Some(log) = self.log.as_mut() {
            if matches!(log.task.state(), State::Stopping { leader: None, .. }) && log.tree.is_empty() {
                self.feed_log(Event::TreeEmpty, now);
            }
        }
    }

    fn feed_cmd(&mut self, event: Event, now: Instant) {
        let actions = self.cmd.task.handle(event, now);
        for action in actions {
            self.act(false, action, now);
        }
    }

    fn feed_log(&mut self, event: Event, now: Instant) {
        let Some(log) = self.log.as_mut() else { return };
        let actions = log.task.handle(event, now);
        for action in actions {
            self.act(true, action, now);
        }
    }

    fn act(&mut self, is_log: bool, action: Action, now: Instant) {
        let name = if is_log { "log" } else { "cmd" };
        tracing::debug!("{name}: {action}");
        let result = match action {
            Action::Report(status) => {
                if let Some(file) = self.status.as_mut() {
                    file.report(name, status);
                }
                Ok(())
            }
            Action::Spawn { frozen } => {
                let event = self.spawn(is_log, frozen);
                if is_log {
                    self.feed_log(event, now)
                } else {
                    self.feed_cmd(event, now)
                }
                self.update_foreign();
                self.notify_ready();
                Ok(())
            }
            Action::Terminate => self.proc(is_log).tree.terminate(),
            Action::Kill => self.proc(is_log).tree.kill(),
            Action::Freeze => self.proc(is_log).tree.freeze(),
            Action::Thaw => self.proc(is_log).tree.thaw(),
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
            if let Some(notify) = self.notify.as_mut() {
                notify.ready();
            }
        }
    }

    fn proc(&mut self, is_log: bool) -> &mut Proc {
        if is_log { self.log.as_mut().expect("log task without a log command") } else { &mut self.cmd }
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
    fn spawn(&mut self, is_log: bool, frozen: bool) -> Event {
        let foreground = if is_log { None } else { self.tty };
        let (stdin, stdout, stderr) = match self.stdio(is_log) {
            Ok(stdio) => stdio,
            Err(e) => {
                tracing::error!("cannot set up the standard streams: {}", crate::io_reason(&e));
                return Event::SpawnFailed { status: 1 << 8 };
            }
        };
        let environ = self.environ.clone();
        let limits = self.limits.clone();
        let proc = self.proc(is_log);
        let setup = match proc.tree.child_setup(frozen) {
            Ok(setup) => setup,
            Err(e) => {
                tracing::error!("{}: cannot prepare the tree: {}", proc.name, crate::io_reason(&e));
                return Event::SpawnFailed { status: 1 << 8 };
            }
        };
        let mut command = Command::new(&proc.argv[0]);
        command.args(&proc.argv[1..]).stdin(stdin).stdout(stdout).stderr(stderr);
        // dmon speaks for the service to systemd; see crate::notify.
        command.env_remove(crate::notify::SOCKET_VAR);
        if let Some(creds) = &proc.creds {
            for (name, value) in &creds.env {
                if !environ.iter().any(|(n, _)| n == name) {
                    command.env(name, value);
                }
            }
        }
        let creds = proc.creds.clone();
        // SAFETY: the hook makes only raw system calls on data prepared above.
        unsafe {
            command.pre_exec(move || child_hook(setup, foreground, &limits, creds.as_ref()));
        }
        match command.spawn() {
            Ok(child) => {
                let pid = child.id() as i32;
                proc.exec_failure_reported = false;
                proc.tree.started(pid);
                tracing::info!("{} started as pid {pid}", proc.name);
                Event::Spawned { pid }
            }
            Err(e) => {
                if !proc.exec_failure_reported {
                    tracing::error!("cannot execute '{}': {}", proc.argv[0].to_string_lossy(), crate::io_reason(&e));
                    proc.exec_failure_reported = true;
                }
                let code = if e.kind() == io::ErrorKind::NotFound { 127 } else { 126 };
                Event::SpawnFailed { status: code << 8 }
            }
        }
    }

    fn stdio(&self, is_log: bool) -> io::Result<(Stdio, Stdio, Stdio)> {
        let dup = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
        if is_log {
            let read = self.pipe_read.as_ref().expect("a log command has a pipe");
            return Ok((dup(read)?, Stdio::inherit(), Stdio::inherit()));
        }
        match &self.pipe_write {
            Some(write) => {
                let stderr = if self.stderr_redir { dup(write)? } else { Stdio::inherit() };
                Ok((Stdio::inherit(), dup(write)?, stderr))
            }
            None => Ok((Stdio::inherit(), Stdio::inherit(), Stdio::inherit())),
        }
    }

    /// Takes the terminal back for dmon's own process group.
    fn restore_terminal(&self) {
        if let Some(tty) = self.tty {
            // SAFETY: plain system calls; SIGTTOU is blocked, so tcsetpgrp from the
            // background does not stop dmon.
            unsafe { libc::tcsetpgrp(tty, libc::getpgrp()) };
        }
    }
}

/// Bytes waiting in a pipe (FIONREAD).
fn bytes_in_pipe(fd: RawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } != 0 {
        return 0;
    }
    n
}

/// Runs in the child between fork and exec. Only raw system calls on prepared
/// data: no allocation, no locks, no logging (std's `pre_exec` rules). The order
/// matters: join the cgroup first, while still privileged; then the process
/// group and the terminal; then limits and the change of ids, last the
/// self-stop that starts a paused command frozen.
fn child_hook(setup: ChildSetup, tty: Option<RawFd>, limits: &[Limit], creds: Option<&Credentials>) -> io::Result<()> {
    let check = |r: libc::c_int| if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) };
    // SAFETY: plain system calls on values owned by the closure.
    unsafe {
        if let Some(fd) = setup.procs_fd {
            check(libc::write(fd, b"0".as_ptr().cast(), 1) as libc::c_int)?;
        }
        check(libc::setpgid(0, 0))?;
        if let Some(tty) = tty {
            // A background process calling tcsetpgrp gets SIGTTOU unless it is
            // blocked; std has just unblocked every signal for the child.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTTOU);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::tcsetpgrp(tty, libc::getpid());
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
        // The child inherits dmon's signal mask (every signal its signalfd reads
        // is blocked) and SIGPIPE ignored: clear both, or TERM and Ctrl-C would
        // never reach the command.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    for limit in limits {
        limit.apply()?;
    }
    if let Some(creds) = creds {
        creds.apply()?;
    }
    if setup.stop_self {
        // SAFETY: raise is async-signal-safe.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
    Ok(())
}

/// Whether `file` is a terminal.
pub fn is_tty(file: &File) -> bool {
    nix::unistd::isatty(file.as_fd()).unwrap_or(false)
}
