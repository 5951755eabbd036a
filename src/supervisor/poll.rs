//! The one `poll` dmon waits in: its slots (the signalfd, the trees' event
//! descriptors, the watchers' triggers, the out-of-memory notifications, the
//! ptys and the real terminal), and what a wake-up found ready.

use std::io;
use std::os::fd::AsFd;
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::SignalFd;

use crate::watch::{Ready, Watch};

use super::proc::{Proc, Which};
use super::relay::RelayReady;

/// What a wake-up found: the watchers that fired, whether the out-of-memory
/// notification came, and the relay's descriptors that are ready.
pub struct Wake {
    pub fired: Vec<(usize, Ready)>,
    /// The trees whose OOM descriptor woke.
    pub oom: Vec<Which>,
    pub relay: RelayReady,
    /// The processes whose control FIFO (`--control`) holds letters.
    pub control: Vec<Which>,
}

/// Waits for a signal, a tree's event, a watcher's trigger or `deadline`.
/// `typing`: what is typed on the real terminal goes to the command's pty.
pub fn wait(
    signals: &SignalFd,
    deadline: Option<Instant>,
    cmd: &Proc,
    log: Option<&Proc>,
    watch: &Watch,
    typing: bool,
    control: Option<&crate::control::Control>,
) -> io::Result<Wake> {
    let timeout = match deadline {
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
    let tree_fds: Vec<_> = [Some(cmd), log].into_iter().flatten().filter_map(|p| p.tree.event_fd()).collect();
    let watch_fds = watch.fds();
    let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
    fds.extend(tree_fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLPRI)));
    let watch_slots = fds.len()..fds.len() + watch_fds.len();
    fds.extend(watch_fds.iter().map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLPRI)));
    // Last, the out-of-memory notifications of the trees' limits.
    let oom: Vec<_> = [(Which::Cmd, Some(cmd)), (Which::Log, log)]
        .into_iter()
        .filter_map(|(which, p)| Some((which, p?.tree.oom_fd()?)))
        .collect();
    let oom_slots = fds.len()..fds.len() + oom.len();
    for (_, (fd, pri)) in &oom {
        fds.push(PollFd::new(*fd, if *pri { PollFlags::POLLPRI } else { PollFlags::POLLIN }));
    }
    // Then the ptys of children that run as another user, and the real
    // terminal while what is typed goes to the command's pty.
    let cmd_pty = cmd.pty.as_ref();
    let log_pty = log.and_then(|l| l.pty.as_ref());
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
    if typing && cmd_pty.is_some_and(|p| !p.pending()) {
        fds.push(PollFd::new(crate::standard_input(), PollFlags::POLLIN));
        relay_slots[2] = Some(fds.len() - 1);
    }
    // And the control FIFOs of --control.
    let control: Vec<_> = control
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
