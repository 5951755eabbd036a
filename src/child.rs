//! Starting one child: its command line, standard streams and environment, and
//! the set-up between fork and exec (cgroup, process group, terminal, limits,
//! user and groups). A failure says which step failed and the errno, so that
//! "cannot execute" means only what it says.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{OwnedFd, RawFd};

use nix::errno::Errno;

use crate::creds::Credentials;
use crate::limits::Limit;
use crate::spawn;
use crate::tree::ChildSetup;

/// What to start, prepared before the fork.
pub struct Child<'a> {
    pub argv: &'a [OsString],
    /// Standard input, output and error; None: dmon's own.
    pub stdio: [Option<OwnedFd>; 3],
    /// `-E`: set, or remove without a value; wins over the user's variables.
    pub environ: &'a [(String, Option<String>)],
    pub creds: Option<&'a Credentials>,
    pub setup: ChildSetup,
    /// The terminal whose foreground process group the child becomes.
    pub tty: Option<RawFd>,
    /// A session of its own instead of a process group in dmon's: no
    /// controlling terminal of dmon's, or `ctty`'s.
    pub session: bool,
    /// The terminal (dmon's copy of a pty slave) the child's new session takes
    /// as its controlling terminal.
    pub ctty: Option<RawFd>,
    /// The nice value to go back to: dmon's own before it raised its priority.
    pub nice: Option<i32>,
    pub limits: &'a [Limit],
}

/// Why a child did not start.
#[derive(Debug)]
pub enum StartError {
    /// Before the fork (a pipe could not be made).
    Prepare(io::Error),
    /// In the child, at this step before exec.
    Step(String, Step, io::Error),
    /// The exec itself: not found, not executable.
    Exec(String, io::Error),
}

impl StartError {
    /// The failure is the program's: a wrong name or a file that cannot run.
    pub fn is_exec(&self) -> bool {
        matches!(self, StartError::Exec(..))
    }

    /// The shell's convention: 127 for not found, 126 for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Exec(_, e) if e.kind() == io::ErrorKind::NotFound => 127,
            _ => 126,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Prepare(e) => write!(f, "cannot prepare the start: {}", crate::io_reason(e)),
            StartError::Step(program, step, e) => {
                write!(f, "cannot start '{program}': {step}: {}", crate::io_reason(e))
            }
            StartError::Exec(program, e) => write!(f, "cannot execute '{program}': {}", crate::io_reason(e)),
        }
    }
}

impl Child<'_> {
    /// Forks and execs; returns the child's pid once the exec succeeded.
    pub fn start(self) -> Result<i32, StartError> {
        // dmon speaks for the service to systemd; see crate::notify.
        let mut changes: Vec<(&OsStr, Option<&OsStr>)> = vec![(OsStr::new(crate::notify::SOCKET_VAR), None)];
        if let Some(creds) = self.creds {
            changes.extend(creds.env.iter().map(|(name, value)| (OsStr::new(name), Some(OsStr::new(value)))));
        }
        changes.extend(self.environ.iter().map(|(name, value)| (OsStr::new(name), value.as_deref().map(OsStr::new))));
        let program = self.argv[0].to_string_lossy().into_owned();
        let clean = self.creds.is_some_and(|creds| creds.clean_env);
        let exec = spawn::Exec::new(self.argv, &spawn::environment(clean, changes))
            .map_err(|_| StartError::Exec(program.clone(), io::Error::from(io::ErrorKind::InvalidInput)))?;
        let (setup, nice, limits, creds) = (self.setup, self.nice, self.limits, self.creds);
        let terminal = Terminal { tty: self.tty, session: self.session, ctty: self.ctty };
        let hook =
            |joined| child_hook(setup, joined, terminal, nice, limits, creds).map_err(|(step, e)| (step as u8, e));
        match spawn::spawn(&exec, &self.stdio, setup.cgroup_fd, hook) {
            Ok(pid) => Ok(pid),
            Err(spawn::Failure::Prepare(e)) => Err(StartError::Prepare(e)),
            Err(spawn::Failure::Exec(e)) => Err(StartError::Exec(program, e)),
            Err(spawn::Failure::Step(code, e)) => {
                let step = Step::ALL.into_iter().find(|s| *s as u8 == code).unwrap_or(Step::Streams);
                Err(StartError::Step(program, step, e))
            }
        }
    }
}

/// The steps of a child's set-up before exec, so that a failure names its step
/// rather than reading as "cannot execute".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    Streams = b's',
    Cgroup = b'c',
    ProcessGroup = b'p',
    Session = b'n',
    Terminal = b't',
    Limit = b'r',
    Credentials = b'u',
}

impl Step {
    const ALL: [Step; 7] = [
        Step::Streams,
        Step::Cgroup,
        Step::ProcessGroup,
        Step::Session,
        Step::Terminal,
        Step::Limit,
        Step::Credentials,
    ];
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Streams => "setting up its standard streams",
            Step::Cgroup => "joining its cgroup",
            Step::ProcessGroup => "making its process group",
            Step::Session => "making its session",
            Step::Terminal => "taking its terminal",
            Step::Limit => "applying a -r limit",
            Step::Credentials => "changing to its user and groups",
        })
    }
}

/// Runs in the child between fork and exec. Only raw system calls on prepared
/// data: no allocation, no locks, no logging. The order matters: join the cgroup
/// first (unless the child was born in it), while still privileged; then the
/// process group and the terminal; then limits and the change of ids. A failed
/// step is returned with its errno, which the parent reports.
///
/// The child inherits dmon's signal mask: every signal dmon reads from its
/// signalfd is blocked. That is what lets the child, still in the background,
/// make itself the terminal's foreground group (a background tcsetpgrp stops the
/// caller with SIGTTOU unless SIGTTOU is blocked), and what must be undone
/// afterwards, or TERM and Ctrl-C would never reach the command.
/// How the child stands to terminals: see [`Child::tty`], [`Child::session`]
/// and [`Child::ctty`].
#[derive(Clone, Copy)]
struct Terminal {
    tty: Option<RawFd>,
    session: bool,
    ctty: Option<RawFd>,
}

fn child_hook(
    setup: ChildSetup,
    joined: bool,
    terminal: Terminal,
    nice: Option<i32>,
    limits: &[Limit],
    creds: Option<&Credentials>,
) -> Result<(), (Step, Errno)> {
    let errno = |e: io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL));
    if let Some(fd) = setup.procs_fd.filter(|_| !joined) {
        // SAFETY: a one-byte write from a static string into the tree's open
        // cgroup.procs descriptor.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } < 0 {
            return Err((Step::Cgroup, Errno::last()));
        }
    }
    for fd in setup.limit_fds.into_iter().flatten() {
        // SAFETY: as above, into a v1 leaf's open cgroup.procs.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } < 0 {
            return Err((Step::Cgroup, Errno::last()));
        }
    }
    if terminal.session {
        // A new session has no controlling terminal: none of dmon's terminals
        // is the child's, so TIOCSTI on any of them is refused (EPERM) and no
        // keyboard signal of them reaches it. Its group's id is its pid, as
        // with setpgid below.
        nix::unistd::setsid().map_err(|e| (Step::Session, e))?;
        if let Some(ctty) = terminal.ctty {
            // SAFETY: TIOCSCTTY takes an integer; `ctty` is dmon's copy of the
            // pty slave, open in the child. The pty is dmon's own and no
            // session has it since the last run's leader exited.
            if unsafe { libc::ioctl(ctty, libc::TIOCSCTTY, 0) } != 0 {
                return Err((Step::Terminal, Errno::last()));
            }
        }
    } else {
        let own = nix::unistd::Pid::from_raw(0);
        nix::unistd::setpgid(own, own).map_err(|e| (Step::ProcessGroup, e))?;
    }
    if let Some(tty) = terminal.tty.filter(|_| !terminal.session) {
        // SAFETY: tcsetpgrp takes integers; `tty` is dmon's standard input, open
        // for dmon's whole life. SIGTTOU is still blocked, so it cannot stop us.
        unsafe { libc::tcsetpgrp(tty, libc::getpid()) };
    }
    // Cannot fail: the set is valid and SIG_SETMASK a known operation.
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    if let Some(nice) = nice {
        // dmon's raised priority is its own: the command gets dmon's original one
        // (a lower priority is always allowed).
        // SAFETY: setpriority takes integers only.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    }
    for limit in limits {
        limit.apply().map_err(|e| (Step::Limit, errno(e)))?;
    }
    if let Some(creds) = creds {
        creds.apply().map_err(|e| (Step::Credentials, errno(e)))?;
    }
    Ok(())
}

/// How many nice levels dmon raises its own priority when it may.
const PRIORITY_RAISE: i32 = 5;

/// Raises the priority of dmon's loop by [`PRIORITY_RAISE`] nice levels where
/// dmon may (root, or CAP_SYS_NICE), so that a tree of busy processes does not
/// keep it from the CPU while it stops that tree. On Linux the nice value is per
/// thread: this sets the loop's, and threads it starts later (the thaw writers)
/// inherit it; children get the original back before exec. Returns the original
/// nice value when it was raised.
pub fn raise_priority() -> Option<i32> {
    // SAFETY: getpriority and setpriority take integers; errno tells a nice
    // value of -1 from an error.
    unsafe {
        *libc::__errno_location() = 0;
        let before = libc::getpriority(libc::PRIO_PROCESS, 0);
        if before == -1 && *libc::__errno_location() != 0 {
            return None;
        }
        let raised = (before - PRIORITY_RAISE).max(-20);
        if raised == before || libc::setpriority(libc::PRIO_PROCESS, 0, raised) != 0 {
            return None;
        }
        tracing::debug!("priority raised from nice {before} to {raised}");
        Some(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// Starts `program` with `setup` and `limits`, as the loop does.
    fn start(program: &str, setup: ChildSetup, limits: &[Limit]) -> Result<i32, StartError> {
        let argv = [OsString::from(program)];
        let child = Child {
            argv: &argv,
            stdio: [None, None, None],
            environ: &[],
            creds: None,
            setup,
            tty: None,
            session: false,
            ctty: None,
            nice: None,
            limits,
        };
        child.start()
    }

    #[test]
    fn a_failed_cgroup_join_is_named_as_such() {
        // A descriptor open for reading only: the write of "0" fails (EBADF).
        let procs = File::open("/dev/null").unwrap();
        let setup = ChildSetup { procs_fd: Some(procs.as_raw_fd()), ..ChildSetup::default() };
        match start("true", setup, &[]) {
            Err(StartError::Step(_, step, e)) => {
                assert_eq!(step, Step::Cgroup);
                assert_eq!(e.raw_os_error(), Some(libc::EBADF));
                assert_eq!(step.to_string(), "joining its cgroup");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_limit_is_named_as_such() {
        // Above the kernel's nr_open: setrlimit refuses it even for root.
        let limit = Limit { resource: libc::RLIMIT_NOFILE, value: u64::MAX - 1 };
        assert!(matches!(start("true", ChildSetup::default(), &[limit]), Err(StartError::Step(_, Step::Limit, _))));
    }

    #[test]
    fn an_exec_failure_names_no_step() {
        match start("/nonexistent/program", ChildSetup::default(), &[]) {
            Err(e @ StartError::Exec(..)) => assert_eq!(e.exit_code(), 127),
            other => panic!("{other:?}"),
        }
    }
}
