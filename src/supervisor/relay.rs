//! A terminal of its own for a child that runs as another user.
//!
//! A child in dmon's session has dmon's controlling terminal, and with
//! `dev.tty.legacy_tiocsti = 1` any process may push bytes into the input of its
//! controlling terminal with `ioctl(TIOCSTI)`: a command dropped to `nobody` in
//! `dmon -n` typed a line that root's shell ran once dmon had exited. So a child
//! that runs as another user always starts a session of its own, and has no
//! controlling terminal there unless dmon gives it one. Where it would have used
//! dmon's terminal (one of dmon's standard streams is a terminal), it gets a
//! pseudo-terminal that dmon made instead, as sudo's `use_pty` does: the pty is
//! its controlling terminal, and dmon copies its output to the real terminal and,
//! while dmon is the terminal's foreground job, what is typed to it. A TIOCSTI
//! then reaches the pty, which only the command reads.
//!
//! While it relays input dmon puts the real terminal in raw mode (input side
//! only: no echo, no line editing, no signals from the keyboard), so that
//! Ctrl-C, Ctrl-Z and the rest reach the pty's line discipline as bytes and
//! become signals there, for the command's foreground group. A window-size
//! change (SIGWINCH, sent to dmon as the foreground job) is copied to the pty,
//! whose kernel side sends SIGWINCH on to the command.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

/// How much is read from either side at a time.
const CHUNK: usize = 4096;

/// At most this many chunks of output are copied per wake-up, so that a
/// command that writes without a pause cannot keep dmon's loop from the rest.
const CHUNKS_PER_WAKE: usize = 16;

/// One pseudo-terminal: dmon keeps both sides open for its whole life (a
/// master whose every slave is closed polls as hung up, again and again), so
/// each run of the child gets the same terminal, as it would get dmon's.
pub struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    /// Where the child's output goes: dmon's standard stream that is a terminal.
    out: RawFd,
    /// Typed bytes that the pty did not take yet.
    pending: Vec<u8>,
}

impl Pty {
    /// A pty with the terminal `like`'s settings and window size, its slave
    /// given to `owner` (uid, gid) so that the child can open it again by name,
    /// as a login's terminal belongs to the user.
    pub fn open(like: RawFd, owner: Option<(u32, u32)>) -> io::Result<Pty> {
        // SAFETY: `like` is one of dmon's standard streams, open for its life.
        let like_fd = unsafe { BorrowedFd::borrow_raw(like) };
        let settings = termios::tcgetattr(like_fd).ok();
        let size = window_size(like);
        let pty = nix::pty::openpty(size.as_ref(), settings.as_ref()).map_err(io::Error::from)?;
        for fd in [&pty.master, &pty.slave] {
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
        }
        let flags =
            nix::fcntl::OFlag::from_bits_truncate(nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_GETFL)?);
        nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFL(flags | nix::fcntl::OFlag::O_NONBLOCK))?;
        if let Some((uid, gid)) = owner {
            nix::unistd::fchown(&pty.slave, Some(uid.into()), Some(gid.into()))?;
        }
        Ok(Pty { master: pty.master, slave: pty.slave, out: like, pending: Vec::new() })
    }

    pub fn slave(&self) -> &OwnedFd {
        &self.slave
    }

    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// Whether typed bytes wait for the pty (then poll it for writing, and
    /// read no more from the terminal).
    pub fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Copies what the child wrote to the real terminal. A write to the
    /// terminal may wait for it (as the child's own write would have); an
    /// error there drops the output, as a hung-up terminal does.
    pub fn copy_out(&mut self) {
        let mut buf = [0u8; CHUNK];
        for _ in 0..CHUNKS_PER_WAKE {
            match nix::unistd::read(&self.master, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => write_all(self.out, &buf[..n]),
            }
        }
    }

    /// Everything the child wrote, for the last time (dmon ends).
    pub fn drain(&mut self) {
        let mut buf = [0u8; CHUNK];
        while let Ok(n @ 1..) = nix::unistd::read(&self.master, &mut buf) {
            write_all(self.out, &buf[..n]);
        }
    }

    /// Reads what was typed on `tty` and hands it to the pty. Returns false at
    /// the terminal's end (hung up), when there is nothing more to relay.
    pub fn copy_in(&mut self, tty: RawFd) -> bool {
        let mut buf = [0u8; CHUNK];
        // SAFETY: `tty` is dmon's standard input, open for its life.
        let tty = unsafe { BorrowedFd::borrow_raw(tty) };
        match nix::unistd::read(tty, &mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                self.suspend_on(&buf[..n]);
                self.pending.extend_from_slice(&buf[..n]);
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => return false,
        }
        self.flush_in();
        true
    }

    /// Ctrl-Z for a command that leads its own session: the kernel discards a
    /// stop signal of default action sent to an orphaned process group (POSIX;
    /// `get_signal` in kernel/signal.c), and the command's group is one, its
    /// parent dmon being in another session. So when the pty would send
    /// SIGTSTP (its ISIG on, its VSUSP character typed) to a foreground group
    /// that does not catch it, dmon stops that group with SIGSTOP, which is
    /// never discarded; a group that catches SIGTSTP gets it from the pty.
    fn suspend_on(&self, typed: &[u8]) {
        let Ok(settings) = termios::tcgetattr(&self.master) else { return };
        let suspend = settings.control_chars[SpecialCharacterIndices::VSUSP as usize];
        if !settings.local_flags.contains(LocalFlags::ISIG) || suspend == 0 || !typed.contains(&suspend) {
            return;
        }
        let Ok(group) = nix::unistd::tcgetpgrp(&self.master) else { return };
        let status = std::fs::read_to_string(format!("/proc/{group}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (libc::SIGTSTP - 1)) != 0);
        if !caught {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGSTOP);
        }
    }

    /// Writes what the pty takes of the typed bytes; the rest waits.
    pub fn flush_in(&mut self) {
        while !self.pending.is_empty() {
            match nix::unistd::write(&self.master, &self.pending) {
                Ok(n) => drop(self.pending.drain(..n)),
                Err(_) => return,
            }
        }
    }

    /// The real terminal's window size, now, for the pty.
    pub fn resize(&self, like: RawFd) {
        if let Some(size) = window_size(like) {
            // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        }
    }
}

/// The real terminal in raw mode for input, and how to put it back.
pub struct RawInput {
    tty: RawFd,
    saved: Termios,
}

impl RawInput {
    /// Turns off echo, line editing and the keyboard's signals on `tty`; output
    /// processing stays, so that dmon's own messages still end their lines.
    pub fn enter(tty: RawFd) -> io::Result<RawInput> {
        // SAFETY: dmon's standard input, open for its life.
        let fd = unsafe { BorrowedFd::borrow_raw(tty) };
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        raw.input_flags &= !(InputFlags::IGNBRK
            | InputFlags::BRKINT
            | InputFlags::PARMRK
            | InputFlags::ISTRIP
            | InputFlags::INLCR
            | InputFlags::IGNCR
            | InputFlags::ICRNL
            | InputFlags::IXON);
        raw.local_flags &=
            !(LocalFlags::ECHO | LocalFlags::ECHONL | LocalFlags::ICANON | LocalFlags::ISIG | LocalFlags::IEXTEN);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(fd, SetArg::TCSADRAIN, &raw)?;
        Ok(RawInput { tty, saved })
    }

    /// The settings from before, as the shell had them.
    pub fn leave(&self) {
        // SAFETY: as in `enter`.
        let fd = unsafe { BorrowedFd::borrow_raw(self.tty) };
        let _ = termios::tcsetattr(fd, SetArg::TCSADRAIN, &self.saved);
    }
}

/// Also when the loop ends with an error, before `finish`: the shell gets its
/// terminal back as it was.
impl Drop for RawInput {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Which of dmon's standard streams is a terminal, for the child's output:
/// standard output first, then error, then input.
pub fn terminal_of_dmon() -> Option<RawFd> {
    // SAFETY: isatty takes an integer.
    [1, 2, 0].into_iter().find(|&fd| unsafe { libc::isatty(fd) } == 1)
}

/// Whether dmon's descriptor `fd` is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty takes an integer.
    unsafe { libc::isatty(fd) == 1 }
}

fn window_size(fd: RawFd) -> Option<nix::pty::Winsize> {
    let mut size = nix::pty::Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into a valid pointer.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0).then_some(size)
}

fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: a write from a live slice.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        match n {
            n if n > 0 => data = &data[n as usize..],
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            _ => return,
        }
    }
}

/// Which relay descriptors the last poll found ready.
#[derive(Default)]
pub struct RelayReady {
    pub cmd_out: bool,
    pub log_out: bool,
    pub typed: bool,
    pub cmd_in: bool,
}

/// Copies between the ptys and the real terminal what the last poll found
/// ready. Returns false once the real terminal gives no more input.
pub fn copy(mut cmd: Option<&mut Pty>, log: Option<&mut Pty>, ready: RelayReady) -> bool {
    if let (true, Some(pty)) = (ready.cmd_out, cmd.as_deref_mut()) {
        pty.copy_out();
    }
    if let (true, Some(pty)) = (ready.log_out, log) {
        pty.copy_out();
    }
    let Some(pty) = cmd else { return true };
    if ready.cmd_in {
        pty.flush_in();
    }
    !ready.typed || pty.copy_in(0)
}
