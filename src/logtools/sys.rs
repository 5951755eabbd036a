//! Thin, safe wrappers over the few system calls the tools make directly:
//! byte search (glibc's `memchr` is vectorised, `Iterator::position` is not),
//! `read(2)`, `tee(2)` and `poll(2)` on descriptors the program does not own, and
//! the signal descriptor that turns HUP, INT and TERM into readable events.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::signal::{self, SigSet};
use nix::sys::signalfd::{self, SfdFlags};

/// The first `byte` in `hay`.
pub fn memchr(byte: u8, hay: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe `hay`, which outlives the call.
    let found = unsafe { libc::memchr(hay.as_ptr().cast(), byte.into(), hay.len()) };
    (!found.is_null()).then(|| found as usize - hay.as_ptr() as usize)
}

/// The last `byte` in `hay`.
pub fn memrchr(byte: u8, hay: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe `hay`, which outlives the call.
    let found = unsafe { libc::memrchr(hay.as_ptr().cast(), byte.into(), hay.len()) };
    (!found.is_null()).then(|| found as usize - hay.as_ptr() as usize)
}

/// One `read(2)` into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Whether `fd` is an open descriptor of this process.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD has no side effects.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

/// Whether `fd` refers to a regular file (the only kind `fdatasync` is meant for;
/// a pipe or a terminal answers EINVAL).
pub fn is_regular_file(fd: RawFd) -> bool {
    file_type(fd) == Some(libc::S_IFREG)
}

/// Whether `fd` refers to a pipe or a FIFO (what `tee(2)` needs).
pub fn is_pipe(fd: RawFd) -> bool {
    file_type(fd) == Some(libc::S_IFIFO)
}

/// The `S_IFMT` bits of what `fd` refers to.
fn file_type(fd: RawFd) -> Option<libc::mode_t> {
    // SAFETY: `struct stat` is plain data, for which all zeroes is a value, and
    // fstat only writes into it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live, writable struct stat; a bad `fd` only fails.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_mode & libc::S_IFMT)
}

/// A new pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// `tee(2)` without blocking: copies up to `len` bytes from the start of the pipe
/// `from` into the pipe `to`, leaving them in `from`. 0 means `from` is empty and
/// has no writer.
pub fn tee(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: tee takes integers and touches no memory of ours.
    let n = unsafe { libc::tee(from, to, len, libc::SPLICE_F_NONBLOCK) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Whether the pipe `fd` has no writer any more (POLLHUP), even while it still
/// holds data.
pub fn hung_up(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, no waiting.
    (unsafe { libc::poll(&mut pfd, 1, 0) } == 1) && pfd.revents & libc::POLLHUP != 0
}

/// Grows the buffer of the pipe `fd` to `size` bytes when it is a pipe with a
/// smaller one. Errors (not a pipe, over the user's limit) are ignored: the pipe
/// then keeps its size, which only costs speed.
pub fn grow_pipe(fd: RawFd, size: usize) {
    // SAFETY: F_GETPIPE_SZ and F_SETPIPE_SZ take and return plain integers.
    unsafe {
        let current = libc::fcntl(fd, libc::F_GETPIPE_SZ);
        if current >= 0 && (current as usize) < size {
            libc::fcntl(fd, libc::F_SETPIPE_SZ, size as libc::c_int);
        }
    }
}

/// What `poll` saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready {
    pub signal: bool,
    pub input: bool,
}

/// Waits until `signal_fd` or `input` (when given) is readable, or `timeout` passes
/// (forever when `None`). EINTR counts as a wake-up with nothing ready.
pub fn poll(signal_fd: RawFd, input: Option<RawFd>, timeout: Option<Duration>) -> io::Result<Ready> {
    let mut fds = [
        libc::pollfd { fd: signal_fd, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: input.unwrap_or(-1), events: libc::POLLIN, revents: 0 },
    ];
    let ms = match timeout {
        None => -1,
        // Round up, so a deadline is never woken for 1 ms early and then spun on.
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: `fds` is a valid array of two pollfd; a negative fd is ignored.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(Ready::default()) } else { Err(e) };
    }
    let any = libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
    Ok(Ready { signal: fds[0].revents & any != 0, input: fds[1].revents & any != 0 })
}

/// The signals the loggers act on, as they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Hangup,
    Stop,
}

/// HUP, INT and TERM, blocked and delivered through a non-blocking signalfd, so
/// the loop learns of them in `poll` and no code runs in a signal handler.
pub struct SignalFd {
    fd: signalfd::SignalFd,
}

impl SignalFd {
    pub fn new() -> io::Result<SignalFd> {
        let mut set = SigSet::empty();
        for s in [signal::SIGHUP, signal::SIGINT, signal::SIGTERM] {
            set.add(s);
        }
        set.thread_block()?;
        let fd = signalfd::SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(SignalFd { fd })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next pending signal, if any (never blocks).
    pub fn next(&self) -> Option<Signal> {
        loop {
            let info = self.fd.read_signal().ok()??;
            match info.ssi_signo as libc::c_int {
                libc::SIGHUP => return Some(Signal::Hangup),
                libc::SIGINT | libc::SIGTERM => return Some(Signal::Stop),
                _ => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_search() {
        assert_eq!(memchr(b'\n', b"ab\ncd\n"), Some(2));
        assert_eq!(memrchr(b'\n', b"ab\ncd\n"), Some(5));
        assert_eq!(memchr(b'\n', b"abc"), None);
        assert_eq!(memrchr(b'\n', b""), None);
    }
}
