//! The signals dmon takes through its signalfd, and reaping its children.

use std::io;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals forwarded with `-s` / `-S` (ignored without).
pub const FORWARDED: [Signal; 6] =
    [Signal::SIGCONT, Signal::SIGALRM, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGHUP];

/// A child that has exited, if any: its pid, wait status and rusage.
pub fn reaped() -> Option<(i32, i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 with valid pointers.
    let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut rusage) };
    (pid > 0).then_some((pid, status, rusage))
}

/// A signalfd for the signals dmon handles, which are blocked for the thread
/// (and so, until the pre-exec hook unblocks them, for every child).
pub fn signal_fd() -> io::Result<SignalFd> {
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
