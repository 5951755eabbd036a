//! How a task is restarted and stopped: the `-1`, `-m`, `-i`, `-t` policy of one
//! task, and the fixed pace of its backoff and of KILL.

use std::time::Duration;

/// After a run this long, a failure counts as the first again (no backoff).
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);
/// A zero exit after a run this long is a job that did its work: the next run
/// starts at once. Shorter successful runs (`true` in a loop) back off like
/// failures, so nothing spins.
pub const FINISHED_RUN: Duration = Duration::from_secs(1);
/// The second quick failure in a row waits this long; each further one doubles it.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// While the tree will not die after KILL (it is still being walked, or the kernel
/// is slow), KILL is sent again this often.
pub const KILL_REPEAT: Duration = Duration::from_secs(1);

/// How a task is restarted.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `-1`: done after a zero exit.
    pub once: bool,
    /// `-m`: at most this many respawns.
    pub max_respawns: Option<u64>,
    /// `-i`: wait this long after a zero exit.
    pub interval: Option<Duration>,
    /// `-t`: stop runs that last longer (paused time does not count).
    pub timeout: Option<Duration>,
    /// Between TERM and KILL.
    pub grace: Duration,
    /// The longest backoff between quick failures.
    pub backoff_max: Duration,
    /// `-n` in the foreground: the command shares dmon's terminal.
    pub terminal: Option<Terminal>,
}

/// How the command shares dmon's terminal (`-n`, dmon in the foreground).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    /// `-s`: HUP is forwarded to the command, so its death by HUP may be the
    /// user's HUP rather than the terminal's hangup.
    pub hup_to_cmd: bool,
    /// HUP is forwarded to the command or the log command (`-s`/`-S`): a HUP to
    /// dmon is theirs, not the terminal's hangup that ends dmon.
    pub hup_forwarded: bool,
}

impl Policy {
    /// The log command's policy: restarted for as long as dmon runs.
    pub fn forever(grace: Duration, backoff_max: Duration) -> Policy {
        Policy { once: false, max_respawns: None, interval: None, timeout: None, grace, backoff_max, terminal: None }
    }
}
