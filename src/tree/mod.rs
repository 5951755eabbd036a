//! "The process tree of one supervised command": start into it, signal all of it,
//! freeze, thaw, kill all of it, and tell when it is empty.
//!
//! One enum over the backends, dispatched by `match`, chosen at start by
//! [`open`] from the layout [`detect`] finds and the `--tree` choice:
//! - [`cgroup2`]: a cgroup v2 leaf (pure v2, or the hybrid layout's `unified`
//!   tree): `cgroup.freeze`, `cgroup.kill`, and `cgroup.events` to learn, without
//!   polling, when the tree is frozen or empty;
//! - [`freezer`]: a cgroup v1 freezer leaf, where no cgroup2 is mounted;
//! - [`signals`]: no cgroup; the command's process group, dmon as child subreaper,
//!   and a walk of the process table by parent pid. Works everywhere, for any user,
//!   but a process could in principle slip out between two walks.
//!
//! In every backend the command is still put in a process group of its own (the
//! loop does that), so `-n`'s terminal and Ctrl-C work the same everywhere.
//!
//! The cgroup crate cgroups-rs is not used: it depends on zbus (a D-Bus stack of
//! about 90 crates) unconditionally, its `Cgroup::new` enables every controller in
//! the ancestors' `cgroup.subtree_control`, its freeze does not wait for the
//! kernel, and its kill is v2 only. What dmon needs is a handful of file writes,
//! done here. docs/tree.md says more.
//!
//! The loop never needs to know which backend it has: it asks for the data the
//! child needs between fork and exec ([`ChildSetup`]), and carries out the task
//! machine's actions through [`Tree`].

pub mod cgroup2;
pub mod detect;
pub mod files;
pub mod freezer;
pub mod home;
pub mod pidfd;
pub mod psi;
pub mod signals;

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::signal::Signal;

use crate::cli::TreeChoice;
use detect::{Backend, Choice, Host, Layout};

/// What a new child does between fork and exec for its tree. Prepared before the
/// fork: the child only makes raw system calls with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildSetup {
    /// An open `cgroup.procs` to write "0" into, joining the cgroup before exec.
    pub procs_fd: Option<RawFd>,
    /// Stop itself (SIGSTOP) before exec: the signal backend's "start frozen".
    pub stop_self: bool,
}

/// What a readable [`Tree::event_fd`] said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeEvents {
    pub populated: bool,
    pub frozen: bool,
}

pub enum Tree {
    Cgroup2(cgroup2::Cgroup2Tree),
    Freezer(freezer::FreezerTree),
    Signals(signals::SignalTree),
}

/// The trees of the command and of the log command, and why their backend was chosen.
pub struct Trees {
    pub cmd: Tree,
    pub log: Option<Tree>,
    pub choice: Choice,
    /// dmon's own cgroup directory, when a cgroup backend is used.
    pub home: Option<PathBuf>,
}

impl Trees {
    /// The status-file line naming the backend: `tree cgroup2 /sys/fs/cgroup/unified/dmon.42`.
    pub fn status_line(&self) -> String {
        match &self.home {
            Some(dir) => format!("tree {} {}", self.choice.backend.name(), dir.display()),
            None => format!("tree {}", self.choice.backend.name()),
        }
    }
}

/// Chooses the backend (see [`detect::choose`]) and makes the trees: for a cgroup
/// backend, dmon's own cgroup under `parent` (by default dmon's current cgroup)
/// with the leaves `supervisor`, `cmd` and, with a log command, `log`. When the
/// cgroups cannot be made and the choice was `auto`, falls back to signals and
/// says why. An error is a backend asked for by name that cannot be had.
pub fn open(choice: TreeChoice, parent: Option<&Path>, with_log: bool) -> Result<Trees, String> {
    let layout = Layout::detect_here();
    let chosen = detect::choose(&layout, choice, parent, &Host::here())?;
    let made = match &chosen.backend {
        Backend::Signals => return Ok(signal_trees(chosen, with_log)),
        Backend::Cgroup2 { parent: dir } => {
            make_cgroups(dir, layout.v2.as_ref().map(|(_, own)| own.clone()), with_log, true)
        }
        Backend::Freezer { parent: dir } => {
            make_cgroups(dir, layout.freezer.as_ref().map(|(_, own)| own.clone()), with_log, false)
        }
    };
    match made {
        Ok((cmd, log, home)) => Ok(Trees { cmd, log, choice: chosen, home: Some(home) }),
        Err(e) if choice == TreeChoice::Auto => {
            let why = format!(
                "{}; cannot make dmon's cgroups: {}; falling back to signals",
                chosen.why,
                crate::io_reason(&e)
            );
            Ok(signal_trees(Choice { backend: Backend::Signals, why }, with_log))
        }
        Err(e) => Err(format!("--tree {}: {}", chosen.backend.name(), crate::io_reason(&e))),
    }
}

fn signal_trees(choice: Choice, with_log: bool) -> Trees {
    Trees {
        cmd: Tree::Signals(signals::SignalTree::new(true)),
        log: with_log.then(|| Tree::Signals(signals::SignalTree::new(false))),
        choice,
        home: None,
    }
}

fn make_cgroups(
    parent: &Path,
    origin: Option<PathBuf>,
    with_log: bool,
    v2: bool,
) -> io::Result<(Tree, Option<Tree>, PathBuf)> {
    let leaves: &[&str] = if with_log { &["cmd", "log"] } else { &["cmd"] };
    let home = Arc::new(home::Home::create(parent, origin, leaves)?);
    let dir = home.dir().to_path_buf();
    let make = |leaf: &str| -> io::Result<Tree> {
        Ok(if v2 {
            Tree::Cgroup2(cgroup2::Cgroup2Tree::new(home.clone(), leaf)?)
        } else {
            Tree::Freezer(freezer::FreezerTree::new(home.clone(), leaf)?)
        })
    };
    let cmd = make("cmd")?;
    let log = if with_log { Some(make("log")?) } else { None };
    Ok((cmd, log, dir))
}

impl Tree {
    /// A short name for diagnostics and the status file.
    pub fn backend(&self) -> &'static str {
        match self {
            Tree::Cgroup2(_) => "cgroup2",
            Tree::Freezer(_) => "freezer",
            Tree::Signals(_) => "signals",
        }
    }

    /// A cgroup tree whose files fail (the cgroup was removed, or write access
    /// to it was taken away while dmon runs) becomes a signal tree: the processes
    /// it still lists are adopted, and the walk finds them and their descendants
    /// from then on, so the no-survivor guarantee holds as far as signals can
    /// hold it. Says so once. Returns whether the tree changed.
    fn fall_back(&mut self, e: &io::Error) -> bool {
        let dir = match self {
            Tree::Cgroup2(t) => t.dir().to_path_buf(),
            Tree::Freezer(t) => t.dir().to_path_buf(),
            Tree::Signals(_) => return false,
        };
        // Only the command's tree claims orphans re-parented to dmon.
        let mut signals = signals::SignalTree::new(dir.file_name().is_some_and(|leaf| leaf == "cmd"));
        files::with_pidfds(&dir, &files::pids(&dir), |pid, fd| signals.adopt(pid, fd));
        tracing::warn!("{}: {}; controlling this tree with signals from now on", dir.display(), crate::io_reason(e));
        *self = Tree::Signals(signals);
        true
    }

    /// Runs `op` on the signal tree when `result` is a cgroup failure that made
    /// this tree fall back to signals.
    fn or_signals(
        &mut self,
        result: io::Result<()>,
        op: impl FnOnce(&mut signals::SignalTree) -> io::Result<()>,
    ) -> io::Result<()> {
        match result {
            Err(e) if self.fall_back(&e) => match self {
                Tree::Signals(t) => op(t),
                _ => Err(e),
            },
            other => other,
        }
    }

    /// What the next child needs between fork and exec. `frozen`: the child must
    /// start paused.
    pub fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup> {
        let result = match self {
            Tree::Cgroup2(t) => t.child_setup(frozen),
            Tree::Freezer(t) => t.child_setup(frozen),
            Tree::Signals(t) => return Ok(t.child_setup(frozen)),
        };
        match result {
            Err(e) if self.fall_back(&e) => self.child_setup(frozen),
            other => other,
        }
    }

    /// The child `pid` was started into the tree.
    pub fn started(&mut self, pid: i32) {
        match self {
            Tree::Cgroup2(t) => t.started(pid),
            Tree::Freezer(t) => t.started(pid),
            Tree::Signals(t) => t.started(pid),
        }
    }

    /// TERM and CONT to every process of the tree, once it is stopped: a cgroup
    /// is frozen (one write), TERM and CONT sent, and thawed, so that every
    /// process acts on its TERM at once; with signals all are stopped first.
    /// The tree ends running (thawed) in every backend.
    pub fn terminate(&mut self) -> io::Result<()> {
        let result = match self {
            Tree::Cgroup2(t) => t.terminate(),
            Tree::Freezer(t) => t.terminate(),
            Tree::Signals(t) => return t.terminate(),
        };
        self.or_signals(result, |t| t.terminate())
    }

    /// Sends `signal` to every process of the tree.
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        let result = match self {
            Tree::Cgroup2(t) => t.signal(signal),
            Tree::Freezer(t) => t.signal(signal),
            Tree::Signals(t) => t.signal(signal),
        };
        self.or_signals(result, |t| t.signal(signal))
    }

    /// Pauses every process of the tree. Returns at once; a cgroup tree is
    /// frozen when the kernel says so (asynchronously).
    pub fn freeze(&mut self) -> io::Result<()> {
        let result = match self {
            Tree::Cgroup2(t) => t.freeze(),
            Tree::Freezer(t) => t.freeze(),
            Tree::Signals(t) => t.signal(Signal::SIGSTOP),
        };
        self.or_signals(result, |t| t.signal(Signal::SIGSTOP))
    }

    pub fn thaw(&mut self) -> io::Result<()> {
        let result = match self {
            Tree::Cgroup2(t) => t.thaw(),
            Tree::Freezer(t) => t.thaw(),
            Tree::Signals(t) => t.signal(Signal::SIGCONT),
        };
        self.or_signals(result, |t| t.signal(Signal::SIGCONT))
    }

    /// KILL to every process of the tree.
    pub fn kill(&mut self) -> io::Result<()> {
        let result = match self {
            Tree::Cgroup2(t) => t.kill(),
            Tree::Freezer(t) => t.kill(),
            Tree::Signals(t) => t.signal(Signal::SIGKILL),
        };
        self.or_signals(result, |t| t.signal(Signal::SIGKILL))
    }

    /// Whether no process of the tree is left (zombies not counted: the caller
    /// reaps its children before asking).
    pub fn is_empty(&mut self) -> bool {
        match self {
            Tree::Cgroup2(t) => t.is_empty(),
            Tree::Freezer(t) => t.is_empty(),
            Tree::Signals(t) => t.is_empty(),
        }
    }

    /// A descriptor that becomes readable (POLLPRI) when the tree's state changes.
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Tree::Cgroup2(t) => t.event_fd(),
            Tree::Freezer(_) | Tree::Signals(_) => None,
        }
    }

    /// Reads the tree's state after a wake-up of [`Tree::event_fd`] (None for
    /// backends without one). Must be called after every wake-up: cgroup v2 keeps
    /// signalling POLLPRI until `cgroup.events` is read again.
    pub fn acknowledge(&mut self) -> Option<TreeEvents> {
        match self {
            Tree::Cgroup2(t) => Some(t.events()),
            Tree::Freezer(_) | Tree::Signals(_) => None,
        }
    }

    /// When the loop must call [`Tree::on_tick`] next, if ever: work the tree
    /// does in steps (a v1 freezer's kill cycle) without keeping the loop.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        match self {
            Tree::Cgroup2(t) => t.deadline(),
            Tree::Freezer(t) => t.deadline(),
            Tree::Signals(_) => None,
        }
    }

    /// The deadline of [`Tree::deadline`] has come: the next step.
    pub fn on_tick(&mut self) {
        let result = match self {
            Tree::Cgroup2(t) => {
                t.on_tick();
                Ok(())
            }
            Tree::Freezer(t) => t.on_tick(),
            Tree::Signals(_) => Ok(()),
        };
        if let Err(e) = self.or_signals(result, |t| t.signal(Signal::SIGKILL)) {
            tracing::warn!("{}", crate::io_reason(&e));
        }
    }

    /// Pids the tree must never claim as its own (the other tree's leader).
    pub fn set_foreign(&mut self, pids: &[i32]) {
        match self {
            Tree::Signals(t) => t.foreign = pids.to_vec(),
            Tree::Cgroup2(_) | Tree::Freezer(_) => {}
        }
    }

    /// Releases what the tree holds (cgroup directories); the tree must be empty.
    pub fn remove(&mut self) -> io::Result<()> {
        match self {
            Tree::Cgroup2(t) => t.remove(),
            Tree::Freezer(t) => t.remove(),
            Tree::Signals(_) => Ok(()),
        }
    }

    /// The tree's cgroup directory (a v2 or v1 freezer leaf); None with signals.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Tree::Cgroup2(t) => Some(t.dir()),
            Tree::Freezer(t) => Some(t.dir()),
            Tree::Signals(_) => None,
        }
    }
}
