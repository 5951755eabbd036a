//! Starting one child: its command line, standard streams and environment, and
//! the set-up between fork and exec (cgroup, process group, terminal, limits,
//! user and groups). A failure says which step failed and the errno, so that
//! "cannot execute" means only what it says.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::creds::Credentials;
use crate::limits::Limit;
use crate::tree::ChildSetup;

/// What to start, prepared before the fork.
pub struct Child<'a> {
    pub argv: &'a [OsString],
    /// Standard input, output and error.
    pub stdio: (Stdio, Stdio, Stdio),
    /// `-E`: set, or remove without a value; wins over the user's variables.
    pub environ: &'a [(String, Option<String>)],
    pub creds: Option<&'a Credentials>,
    pub setup: ChildSetup,
    /// The terminal whose foreground process group the child becomes.
    pub tty: Option<RawFd>,
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
        let (stdin, stdout, stderr) = self.stdio;
        let mut command = Command::new(&self.argv[0]);
        command.args(&self.argv[1..]).stdin(stdin).stdout(stdout).stderr(stderr);
        // dmon speaks for the service to systemd; see crate::notify.
        command.env_remove(crate::notify::SOCKET_VAR);
        if let Some(creds) = self.creds {
            for (name, value) in &creds.env {
                command.env(name, value);
            }
        }
        for (name, value) in self.environ {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let steps = StepPipe::new().map_err(StartError::Prepare)?;
        let (setup, tty, nice, step_fd) = (self.setup, self.tty, self.nice, steps.write_fd());
        let limits = self.limits.to_vec();
        let creds = self.creds.cloned();
        // SAFETY: the hook makes only raw system calls on data prepared above.
        unsafe {
            command.pre_exec(move || child_hook(setup, tty, nice, &limits, creds.as_ref(), step_fd));
        }
        let result = command.spawn();
        let program = self.argv[0].to_string_lossy().into_owned();
        match (result, steps.failed_step()) {
            (Ok(child), _) => Ok(child.id() as i32),
            (Err(e), Some(step)) => Err(StartError::Step(program, step, e)),
            (Err(e), None) => Err(StartError::Exec(program, e)),
        }
    }
}

/// The steps of a child's set-up before exec, so that a failure names its step
/// rather than reading as "cannot execute".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    Cgroup = b'c',
    ProcessGroup = b'p',
    Limit = b'r',
    Credentials = b'u',
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Cgroup => "joining its cgroup",
            Step::ProcessGroup => "making its process group",
            Step::Limit => "applying a -r limit",
            Step::Credentials => "changing to its user and groups",
        })
    }
}

/// A pipe on which the child writes the step that failed before it returns the
/// error; std then reports the errno, and this names the step. Nothing written:
/// the exec itself failed.
struct StepPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl StepPipe {
    fn new() -> io::Result<StepPipe> {
        let flags = nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK;
        let (read, write) = nix::unistd::pipe2(flags).map_err(io::Error::from)?;
        Ok(StepPipe { read, write })
    }

    fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// After the spawn returned: the step the child named, if any.
    fn failed_step(self) -> Option<Step> {
        drop(self.write);
        let mut byte = [0u8; 1];
        match nix::unistd::read(&self.read, &mut byte) {
            Ok(1) => [Step::Cgroup, Step::ProcessGroup, Step::Limit, Step::Credentials]
                .into_iter()
                .find(|s| *s as u8 == byte[0]),
            _ => None,
        }
    }
}

/// Runs in the child between fork and exec. Only raw system calls on prepared
/// data: no allocation, no locks, no logging (std's `pre_exec` rules). The order
/// matters: join the cgroup first, while still privileged; then the process
/// group and the terminal; then limits and the change of ids, last the
/// self-stop that starts a paused command frozen. A failed step is written to
/// `step_fd` before its error is returned.
///
/// std has set SIGPIPE back to its default before the hook runs, but leaves the
/// signal mask as the child inherited it (std's `do_exec` on unix): every signal
/// dmon reads from its signalfd is blocked there. That is what lets the child,
/// still in the background, make itself the terminal's foreground group (a
/// background tcsetpgrp stops the caller with SIGTTOU unless SIGTTOU is blocked),
/// and what must be undone afterwards, or TERM and Ctrl-C would never reach the
/// command.
fn child_hook(
    setup: ChildSetup,
    tty: Option<RawFd>,
    nice: Option<i32>,
    limits: &[Limit],
    creds: Option<&Credentials>,
    step_fd: RawFd,
) -> io::Result<()> {
    let failed = |step: Step, e: io::Error| {
        // SAFETY: a one-byte write from a local into the step pipe, which stays
        // open until exec.
        unsafe { libc::write(step_fd, (&(step as u8) as *const u8).cast(), 1) };
        e
    };
    if let Some(fd) = setup.procs_fd {
        // SAFETY: a one-byte write from a static string into the tree's open
        // cgroup.procs descriptor.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } < 0 {
            return Err(failed(Step::Cgroup, io::Error::last_os_error()));
        }
    }
    let own = nix::unistd::Pid::from_raw(0);
    nix::unistd::setpgid(own, own).map_err(|e| failed(Step::ProcessGroup, e.into()))?;
    if let Some(tty) = tty {
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
        limit.apply().map_err(|e| failed(Step::Limit, e))?;
    }
    if let Some(creds) = creds {
        creds.apply().map_err(|e| failed(Step::Credentials, e))?;
    }
    if setup.stop_self {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    /// Starts `true` with `setup`, as the loop does, and returns the step the
    /// child named and the error.
    fn start(setup: ChildSetup, limits: Vec<Limit>) -> (Option<Step>, io::Error) {
        let steps = StepPipe::new().unwrap();
        let fd = steps.write_fd();
        let mut command = Command::new("true");
        // SAFETY: the hook makes only raw system calls.
        unsafe { command.pre_exec(move || child_hook(setup, None, None, &limits, None, fd)) };
        let error = command.spawn().expect_err("the set-up must fail");
        (steps.failed_step(), error)
    }

    #[test]
    fn a_failed_cgroup_join_is_named_as_such() {
        // A descriptor open for reading only: the write of "0" fails (EBADF).
        let procs = File::open("/dev/null").unwrap();
        let setup = ChildSetup { procs_fd: Some(procs.as_raw_fd()), stop_self: false };
        let (step, error) = start(setup, Vec::new());
        assert_eq!(step, Some(Step::Cgroup));
        assert_eq!(error.raw_os_error(), Some(libc::EBADF));
        assert_eq!(step.unwrap().to_string(), "joining its cgroup");
    }

    #[test]
    fn a_failed_limit_is_named_as_such() {
        // Above the kernel's nr_open: setrlimit refuses it even for root.
        let limit = Limit { resource: libc::RLIMIT_NOFILE, value: u64::MAX - 1 };
        let (step, _) = start(ChildSetup::default(), vec![limit]);
        assert_eq!(step, Some(Step::Limit));
    }

    #[test]
    fn an_exec_failure_names_no_step() {
        let steps = StepPipe::new().unwrap();
        let fd = steps.write_fd();
        let mut command = Command::new("/nonexistent/program");
        // SAFETY: the hook makes only raw system calls.
        unsafe { command.pre_exec(move || child_hook(ChildSetup::default(), None, None, &[], None, fd)) };
        assert!(command.spawn().is_err());
        assert_eq!(steps.failed_step(), None);
    }
}
