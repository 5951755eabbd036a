//! Detaching from the terminal, and telling the shell that started dmon whether
//! the daemon came up.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::Pid;

use crate::logging::one_line;

/// A step of [`detach`] that failed.
#[derive(Debug)]
pub enum DetachError {
    OpenNull(io::Error),
    /// A system call (`pipe`, `sigprocmask`, `fork`, `setsid`, `dup2`) and its error.
    Call(&'static str, nix::errno::Errno),
}

impl fmt::Display for DetachError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DetachError::OpenNull(e) => write!(f, "cannot open /dev/null: {e}"),
            DetachError::Call("fork", e) => write!(f, "cannot fork: {}", e.desc()),
            DetachError::Call("dup2", e) => {
                write!(f, "cannot put the standard streams on /dev/null: {}", e.desc())
            }
            DetachError::Call(call, e) => write!(f, "{call}: {}", e.desc()),
        }
    }
}

impl std::error::Error for DetachError {}

/// Forks; the child starts a new session with its standard streams on
/// /dev/null and goes on as the daemon. The parent waits, on a pipe, until the
/// daemon is [`ready`] (its pid file written, the command started) and exits 0,
/// or until it fails, and then prints the daemon's one-line message and exits
/// with its code, as `-n` would: nothing that fails after the fork is silent.
///
/// Until the parent exits, its pid is the only one the caller knows (the pid
/// file may not be written yet). A TERM or INT to it then is meant for dmon:
/// the parent passes it on to the daemon. Both are blocked before the fork, so
/// that neither can end the parent by its default action and leave the daemon
/// running, re-parented to init, after what looked like a successful stop; the
/// daemon keeps them blocked, pending, until its signalfd reads them.
pub fn detach() -> Result<(), DetachError> {
    let call = |name| move |e| DetachError::Call(name, e);
    let null = OpenOptions::new().read(true).write(true).open("/dev/null").map_err(DetachError::OpenNull)?;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(call("pipe"))?;
    let stop = stop_signals();
    stop.thread_block().map_err(call("sigprocmask"))?;
    // SAFETY: dmon has no other thread yet (the supervisor starts its helpers
    // later), so the child is a whole copy of the process and may go on running
    // any Rust code, allocation and locks included.
    match unsafe { nix::unistd::fork() }.map_err(call("fork"))? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(write);
            let (answer, passed_on) = wait_for_daemon(File::from(read), child, &stop);
            // Destructors do not run: the pid file belongs to the daemon.
            std::process::exit(match answer.split_once(' ') {
                _ if answer == "0" => 0,
                Some((code, message)) => {
                    eprintln!("dmon: {message}");
                    code.parse().unwrap_or(1)
                }
                // Stopped before it was ready, as asked: its own exit status.
                None if passed_on => match nix::sys::wait::waitpid(child, None) {
                    Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code,
                    Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => 128 + signal as i32,
                    _ => 1,
                },
                None => {
                    eprintln!("dmon: the daemon ended before it was ready (see the system log)");
                    1
                }
            });
        }
        nix::unistd::ForkResult::Child => {
            drop(read);
            nix::unistd::setsid().map_err(call("setsid"))?;
            let on_null = nix::unistd::dup2_stdin(&null)
                .and_then(|()| nix::unistd::dup2_stdout(&null))
                .and_then(|()| nix::unistd::dup2_stderr(&null));
            on_null.map_err(call("dup2"))?;
            crate::logging::to_system_log();
            READY.store(write.into_raw_fd(), Ordering::Relaxed);
            Ok(())
        }
    }
}

/// TERM and INT: what stops dmon.
fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// The daemon's pid, for [`pass_on`] in the waiting parent; 0 before the fork.
static DAEMON: AtomicI32 = AtomicI32::new(0);
/// Whether [`pass_on`] passed a signal on.
static PASSED_ON: AtomicBool = AtomicBool::new(false);

/// The waiting parent's handler of TERM and INT: the same signal to the daemon.
/// Only async-signal-safe calls: an atomic load, kill, and errno put back.
extern "C" fn pass_on(signal: libc::c_int) {
    // SAFETY: __errno_location points at this thread's errno; kill takes integers.
    unsafe {
        let errno = *libc::__errno_location();
        let daemon = DAEMON.load(Ordering::Relaxed);
        if daemon > 0 {
            libc::kill(daemon, signal);
            PASSED_ON.store(true, Ordering::Relaxed);
        }
        *libc::__errno_location() = errno;
    }
}

/// The parent's wait for the daemon's answer on `pipe`, passing on to it every
/// TERM and INT that comes meanwhile. Returns the answer (empty when the daemon
/// ended without one) and whether a signal was passed on.
///
/// A handler, not a signalfd: a signal read from a signalfd only after the
/// answer came would be dropped with the parent, blocked, while a handler runs
/// for every signal that comes until the parent's very exit, which is where a
/// TERM stops being the parent's to answer.
fn wait_for_daemon(mut pipe: File, daemon: Pid, stop: &SigSet) -> (String, bool) {
    DAEMON.store(daemon.as_raw(), Ordering::Relaxed);
    let action = SigAction::new(SigHandler::Handler(pass_on), SaFlags::SA_RESTART, SigSet::empty());
    for signal in stop.iter() {
        // SAFETY: the handler makes only async-signal-safe calls.
        let _ = unsafe { sigaction(signal, &action) };
    }
    // What came since the block is handled now, passed on.
    let _ = stop.thread_unblock();
    let mut answer = String::new();
    let _ = pipe.read_to_string(&mut answer);
    (answer, PASSED_ON.load(Ordering::Relaxed))
}

/// Blocks TERM and INT at once, before anything else, so that one that comes
/// before the supervisor reads them from its signalfd stays pending for it
/// instead of being lost:
/// - dmon may inherit TERM ignored (a shell's `trap '' TERM` carries over
///   exec), and the kernel discards an ignored signal that is not blocked; the
///   supervisor gives TERM its default action back only once it has blocked it;
/// - as PID 1, the kernel drops a signal sent to a pid namespace's init for
///   which it has the default action, so a `docker stop` or `crun kill` that
///   came early would be lost and the container would wait for its KILL.
///
/// A TERM during the start-up then stops dmon once it supervises, cleanly:
/// its cgroups and pid file go with it. Children start with an empty mask
/// (src/child.rs), so nothing else changes.
pub fn hold_stop_signals() {
    let _ = stop_signals().thread_block();
}

/// Whether dmon, asked to detach, must not: as PID 1 (a container's first
/// process) it is the pid namespace, which the kernel ends, killing every
/// process in it, once its PID 1 exits. A detaching parent would exit as soon as
/// the daemon was ready, and take it along. Says so once.
pub fn stay_as_init() -> bool {
    if std::process::id() != 1 {
        return false;
    }
    tracing::warn!("running as PID 1 (a container's first process): not detaching, as with -n");
    true
}

/// The daemon's end of the pipe to the waiting parent, -1 once answered.
static READY: AtomicI32 = AtomicI32::new(-1);

/// Sends the waiting parent (if any) `answer` and closes the pipe.
fn answer_parent(answer: &str) -> bool {
    let fd = READY.swap(-1, Ordering::Relaxed);
    if fd < 0 {
        return false;
    }
    // SAFETY: `detach` gave up the descriptor (into_raw_fd) to READY, and the
    // swap above took it out: nothing else owns or closes it.
    let mut pipe = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    pipe.write_all(answer.as_bytes()).is_ok()
}

/// The daemon is up: the parent exits 0.
pub fn ready() {
    answer_parent("0");
}

/// Reports a failure: to the waiting parent, which prints it and exits with
/// `code`, when the daemon is not ready yet; otherwise on stderr or, detached,
/// in the system log.
pub fn fail(code: u8, message: &str) {
    let message = one_line(message);
    if !answer_parent(&format!("{code} {message}")) {
        if crate::logging::detached() {
            tracing::error!("{message}");
        } else {
            eprintln!("dmon: {message}");
        }
    }
}
