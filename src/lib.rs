//! dmon: run a command, restart it when it dies, and pipe its output into a log
//! command that is restarted too, without losing output in between. Every
//! supervised command tree lives in its own cgroup when one can be had, so pausing,
//! timeouts and shutdown reach every process of the tree.
//!
//! The binaries are thin: `src/main.rs` for dmon, `src/bin/*` for the companion
//! tools. Everything they do lives here, so integration tests and fuzz targets can
//! reach the same code.

pub mod child;
pub mod cli;
pub mod clock;
pub mod conf;
pub mod control;
pub mod creds;
pub mod daemon;
pub mod keyed;
pub mod limits;
pub mod logging;
pub mod logpipe;
pub mod logtools;
pub mod marks;
pub mod notify;
pub mod pidfile;
pub mod planted;
pub mod psi;
pub mod spawn;
pub mod status;
pub mod supervisor;
pub mod task;
pub mod tree;
pub mod units;
pub mod usage;
pub mod watch;

/// An I/O error as a short reason, without Rust's "(os error N)" tail:
/// "No such file or directory".
pub fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// dmon's standard input, borrowed. Not `std::io::stdin()`, whose first call
/// allocates an 8 KiB read buffer that dmon, which never reads it, would keep
/// for its whole life.
pub fn standard_input() -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: descriptor 0 is open for dmon's whole life: it is never closed,
    // only replaced (by /dev/null when dmon detaches).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(0) }
}

/// The unit tests' one way to skip, as tests/common's `skip` for the
/// integration tests: a test that cannot run here says why and returns, and
/// fails instead where `CI` is set, since CI has every feature the tests use.
#[cfg(test)]
pub(crate) fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run under CI: {why}");
    }
    eprintln!("skipped: {why}");
}
