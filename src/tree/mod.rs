//! "The process tree of one supervised command": start into it, signal all of it,
//! freeze, thaw, kill all of it, and tell when it is empty.
//!
//! Each backend implements [`Control`]; [`open`] chooses one at start from the
//! layout [`detect`] finds and the `--tree` choice:
//! - [`cgroup2`]: a cgroup v2 leaf (pure v2, or the hybrid layout's `unified`
//!   tree): `cgroup.freeze`, `cgroup.kill`, and `cgroup.events` to learn, without
//!   polling, when the tree is frozen or empty;
//! - [`freezer`]: a cgroup v1 freezer leaf, where no cgroup2 is mounted (what
//!   the two cgroup backends share is in [`leaf`]);
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
pub mod leaf;
pub mod mounts;
pub mod pidfd;
pub mod resources;
pub mod signals;

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;

use detect::{Backend, Choice, Host, Layout, TreeChoice};
use signals::Orphans;

/// What a new child does between fork and exec for its tree. Prepared before the
/// fork: the child only makes raw system calls with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildSetup {
    /// An open `cgroup.procs` to write "0" into, joining the cgroup before exec.
    pub procs_fd: Option<RawFd>,
    /// The cgroup v2 directory to start the child in (clone3), which makes
    /// the write to `procs_fd` needless.
    pub cgroup_fd: Option<RawFd>,
    /// The `cgroup.procs` of the run's v1 leaves (limits and peaks), to
    /// write "0" into as well (see [`resources`]).
    pub limit_fds: [Option<RawFd>; 3],
}

/// What a readable [`Tree::event_fd`] said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeEvents {
    pub populated: bool,
    pub frozen: bool,
}

/// What a backend does for one tree. None of it waits for the kernel: work
/// that completes later is announced by [`Control::event_fd`] or done in steps
/// at [`Control::deadline`].
pub trait Control {
    /// The tree's cgroup, for a cgroup backend.
    fn cgroup(&self) -> Option<&Path> {
        None
    }
    /// What the next child needs between fork and exec. `frozen`: the child
    /// must start paused.
    fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup>;
    /// The child `pid` was started into the tree.
    fn started(&mut self, pid: i32);
    /// Sends `signal` to every process of the tree.
    fn signal(&mut self, signal: Signal) -> io::Result<()>;
    /// Pauses every process of the tree.
    fn freeze(&mut self) -> io::Result<()>;
    fn thaw(&mut self) -> io::Result<()>;
    /// TERM and CONT to every process of the tree, once it is stopped; the tree
    /// ends running.
    fn terminate(&mut self) -> io::Result<()>;
    /// KILL to every process of the tree.
    fn kill(&mut self) -> io::Result<()>;
    /// Whether no process is left but those dmon may not signal.
    fn is_empty(&mut self) -> bool;
    /// A descriptor that becomes readable (POLLPRI) when the tree's state changes.
    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Reads the state after a wake-up of the event descriptor.
    fn acknowledge(&mut self) -> Option<TreeEvents> {
        None
    }
    /// When [`Control::on_tick`] is due, if ever.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Whether a write to the tree's freezer is still running on its thread.
    fn writing(&mut self) -> bool {
        false
    }
    fn on_tick(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Pids the tree must never claim as its own (the other tree's leader).
    fn set_foreign(&mut self, _pids: &[i32]) {}
    /// Releases what the tree holds (cgroup directories); the tree must be empty.
    fn remove(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How many times a tree is read again while each reading finds a process the
/// last did not (a bound, in case a fork bomb outruns the readings).
const ROUNDS: usize = 64;

/// Signals a tree until a round finds no new member: `round` reads the members
/// again (a process forked after one reading is found by the next), signals
/// those not in the set it is given, and returns them. Returns how many were
/// signalled.
pub fn until_no_new(mut round: impl FnMut(&BTreeSet<i32>) -> io::Result<Vec<i32>>) -> io::Result<usize> {
    let mut signalled = BTreeSet::new();
    for _ in 0..ROUNDS {
        let fresh = round(&signalled)?;
        if fresh.is_empty() {
            break;
        }
        signalled.extend(fresh);
    }
    Ok(signalled.len())
}

/// One supervised command's tree, in whichever backend was chosen.
pub struct Tree(Box<dyn Control>);

/// The trees of the command and of the log command, and why their backend was chosen.
pub struct Trees {
    pub cmd: Tree,
    pub log: Option<Tree>,
    pub choice: Choice,
    /// dmon's own cgroup directory, when a cgroup backend is used.
    pub home: Option<PathBuf>,
    /// The limits and v1 peak leaves of the command's tree, where it has any.
    pub limits: Option<resources::Enforcer>,
    /// The same for the log command's tree.
    pub log_limits: Option<resources::Enforcer>,
}

/// Why the trees cannot be had as asked: nothing was started.
#[derive(Debug)]
pub enum TreeError {
    /// `--tree NAME` or `--cgroup-parent` (`option`) cannot be had, and `why`.
    Unavailable { option: &'static str, why: String },
    /// dmon's cgroups for the named `backend` cannot be made.
    Make { backend: &'static str, err: io::Error },
    /// Limits (their `options`) on a tree controlled with signals, and `why` it is.
    NeedsCgroup { options: String, why: String },
    /// `--memory-high` where the memory controller is v1's.
    NoMemoryHigh,
    /// Controllers no hierarchy offers: which, with what would offer them.
    Missing(String),
    /// The limits (`options`) cannot be put on the tree; a cgroup file's
    /// failure keeps its [`files::FileError`] inside `err`.
    Limits { options: String, err: io::Error },
}

impl std::fmt::Display for TreeError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            TreeError::Unavailable { option, why } => write!(f, "{option}: {why}"),
            TreeError::Make { backend, err } => write!(f, "--tree {backend}: {}", crate::io_reason(err)),
            TreeError::NeedsCgroup { options, why } => {
                write!(f, "{options}: a limit needs a cgroup, and the tree is controlled with signals ({why})")
            }
            TreeError::NoMemoryHigh => write!(
                f,
                "--memory-high: the memory controller here is cgroup v1, which has no memory.high (use --memory-max)"
            ),
            TreeError::Missing(message) => f.write_str(message),
            TreeError::Limits { options, err } => write!(f, "{options}: {}", crate::io_reason(err)),
        }
    }
}

impl std::error::Error for TreeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TreeError::Make { err, .. } | TreeError::Limits { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// Chooses the backend (see [`detect::choose`]) and makes the trees: for a cgroup
/// backend, dmon's own cgroup under `parent` (by default dmon's current cgroup)
/// with the leaves `supervisor`, `cmd` and, with a log command, `log`. When the
/// cgroups cannot be made and the choice was `auto`, falls back to signals and
/// says why. An error is a backend asked for by name that cannot be had, or a
/// limit that cannot be put on the command's tree.
pub fn open(
    choice: TreeChoice,
    parent: Option<&Path>,
    with_log: bool,
    limits: resources::Resources,
) -> Result<Trees, TreeError> {
    let layout = Layout::detect_here();
    let chosen = detect::choose(&layout, choice, parent, &Host::here(&layout))?;
    let (trees, home) = open_backend(&layout, chosen, choice, with_log)?;
    if let (Backend::Cgroup2 { .. }, Some(home)) = (&trees.choice.backend, home.as_deref()) {
        resources::enable_accounting(home, parent.is_some());
    }
    if !limits.is_empty() && trees.home.is_none() {
        return Err(TreeError::NeedsCgroup { options: limits.options(), why: trees.choice.why });
    }
    if trees.home.is_none() {
        return Ok(trees);
    }
    let v2 = match (&trees.choice.backend, home.as_deref()) {
        (Backend::Cgroup2 { .. }, Some(home)) => {
            Some(resources::V2Place { home, pure: layout.kind == detect::Kind::PureV2 })
        }
        _ => None,
    };
    let Some(mut enforcers) = resources::open(limits, v2, &detect::v1_hierarchies_here(), leaves(with_log))? else {
        return Ok(trees);
    };
    let log_limits = if with_log { enforcers.pop() } else { None };
    Ok(Trees { limits: enforcers.pop(), log_limits, ..trees })
}

fn open_backend(
    layout: &Layout,
    chosen: Choice,
    choice: TreeChoice,
    with_log: bool,
) -> Result<(Trees, Option<Arc<home::Home>>), TreeError> {
    // dmon's own cgroup in the hierarchy (where it moves back to at the end).
    let own = |place: &Option<(PathBuf, PathBuf)>| place.as_ref().map(|(_, own)| own.clone());
    let made = match &chosen.backend {
        Backend::Signals => return Ok((signal_trees(chosen, with_log), None)),
        Backend::Cgroup2 { parent } => make_cgroups(parent, own(&layout.v2), leaves(with_log), CgroupVersion::V2),
        Backend::Freezer { parent } => {
            make_cgroups(parent, own(&layout.freezer), leaves(with_log), CgroupVersion::V1Freezer)
        }
    };
    match made {
        Ok((cmd, log, home)) => {
            let dir = Some(home.dir().to_path_buf());
            Ok((Trees { cmd, log, choice: chosen, home: dir, limits: None, log_limits: None }, Some(home)))
        }
        Err(e) if choice == TreeChoice::Auto => {
            let why = format!(
                "{}; cannot make dmon's cgroups: {}; falling back to signals",
                chosen.why,
                crate::io_reason(&e)
            );
            Ok((signal_trees(Choice { backend: Backend::Signals, why }, with_log), None))
        }
        Err(err) => Err(TreeError::Make { backend: chosen.backend.name(), err }),
    }
}

fn signal_trees(choice: Choice, with_log: bool) -> Trees {
    Trees {
        cmd: Tree(Box::new(signals::SignalTree::new(Orphans::Claim))),
        log: with_log.then(|| Tree(Box::new(signals::SignalTree::new(Orphans::Leave)))),
        choice,
        home: None,
        limits: None,
        log_limits: None,
    }
}

/// The leaves of dmon's cgroup for the trees: the command's, and with a log
/// command the log command's.
fn leaves(with_log: bool) -> &'static [&'static str] {
    if with_log { &["cmd", "log"] } else { &["cmd"] }
}

/// The cgroup version of a backend's trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CgroupVersion {
    V2,
    V1Freezer,
}

/// Makes dmon's cgroup under `parent` and a tree in each of `leaves` (the
/// command's first, then the log command's if named).
fn make_cgroups(
    parent: &Path,
    origin: Option<PathBuf>,
    leaves: &[&str],
    version: CgroupVersion,
) -> io::Result<(Tree, Option<Tree>, Arc<home::Home>)> {
    let home = Arc::new(home::Home::create(parent, origin, leaves)?);
    let make = |leaf: &str| -> io::Result<Tree> {
        Ok(Tree(match version {
            CgroupVersion::V2 => Box::new(cgroup2::new(home.clone(), leaf)?),
            CgroupVersion::V1Freezer => Box::new(freezer::new(home.clone(), leaf)?),
        }))
    };
    let cmd = make(leaves[0])?;
    let log = leaves.get(1).map(|leaf| make(leaf)).transpose()?;
    Ok((cmd, log, home))
}

impl Tree {
    /// A cgroup tree whose files fail (the cgroup was removed, or write access
    /// to it was taken away while dmon runs) becomes a signal tree: the processes
    /// it still lists are adopted, and the walk finds them and their descendants
    /// from then on, so the no-survivor guarantee holds as far as signals can
    /// hold it. Says so once. Returns whether the tree changed.
    fn fall_back(&mut self, e: &io::Error) -> bool {
        let Some(dir) = self.0.cgroup().map(Path::to_path_buf) else { return false };
        // Only the command's tree claims orphans re-parented to dmon.
        let orphans = if dir.file_name().is_some_and(|leaf| leaf == "cmd") { Orphans::Claim } else { Orphans::Leave };
        let mut signals = signals::SignalTree::new(orphans);
        files::with_pidfds(&dir, &files::pids(&dir), |pid, fd| signals.adopt(pid, fd));
        tracing::warn!("{}: {}; controlling this tree with signals from now on", dir.display(), crate::io_reason(e));
        self.0 = Box::new(signals);
        true
    }

    /// Runs `op` on the backend, and once more on the signal tree when it
    /// failed with a cgroup failure that made this tree fall back to signals.
    fn with_fallback(&mut self, op: impl Fn(&mut dyn Control) -> io::Result<()>) -> io::Result<()> {
        match op(self.0.as_mut()) {
            Err(e) if self.fall_back(&e) => op(self.0.as_mut()),
            other => other,
        }
    }

    /// What the next child needs between fork and exec. `frozen`: the child must
    /// start paused.
    pub fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup> {
        match self.0.child_setup(frozen) {
            Err(e) if self.fall_back(&e) => self.0.child_setup(frozen),
            other => other,
        }
    }

    /// The child `pid` was started into the tree.
    pub fn started(&mut self, pid: i32) {
        self.0.started(pid)
    }

    /// TERM and CONT to every process of the tree, once it is stopped: a cgroup
    /// is frozen (one write), TERM and CONT sent, and thawed, so that every
    /// process acts on its TERM at once; with signals all are stopped first.
    /// The tree ends running (thawed) in every backend.
    pub fn terminate(&mut self) -> io::Result<()> {
        self.with_fallback(|t| t.terminate())
    }

    /// Sends `signal` to every process of the tree.
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        self.with_fallback(|t| t.signal(signal))
    }

    /// Pauses every process of the tree. Returns at once; a cgroup tree is
    /// frozen when the kernel says so (asynchronously).
    pub fn freeze(&mut self) -> io::Result<()> {
        self.with_fallback(|t| t.freeze())
    }

    pub fn thaw(&mut self) -> io::Result<()> {
        self.with_fallback(|t| t.thaw())
    }

    /// KILL to every process of the tree.
    pub fn kill(&mut self) -> io::Result<()> {
        self.with_fallback(|t| t.kill())
    }

    /// Whether no process of the tree is left (zombies not counted: the caller
    /// reaps its children before asking).
    pub fn is_empty(&mut self) -> bool {
        self.0.is_empty()
    }

    /// A descriptor that becomes readable (POLLPRI) when the tree's state changes.
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        self.0.event_fd()
    }

    /// Reads the tree's state after a wake-up of [`Tree::event_fd`] (None for
    /// backends without one). Must be called after every wake-up: cgroup v2 keeps
    /// signalling POLLPRI until `cgroup.events` is read again.
    pub fn acknowledge(&mut self) -> Option<TreeEvents> {
        self.0.acknowledge()
    }

    /// When the loop must call [`Tree::on_tick`] next, if ever: work the tree
    /// does in steps (a v1 freezer's kill cycle) without keeping the loop.
    pub fn deadline(&self) -> Option<Instant> {
        self.0.deadline()
    }

    /// Whether a write to the tree's freezer is still running on its thread.
    pub fn writing(&mut self) -> bool {
        self.0.writing()
    }

    /// The deadline of [`Tree::deadline`] has come: the next step. A cgroup
    /// failure on the way is the v1 kill cycle's: the signal tree kills.
    pub fn on_tick(&mut self) {
        let result = match self.0.on_tick() {
            Err(e) if self.fall_back(&e) => self.0.kill(),
            other => other,
        };
        if let Err(e) = result {
            tracing::warn!("{}", crate::io_reason(&e));
        }
    }

    /// Pids the tree must never claim as its own (the other tree's leader).
    pub fn set_foreign(&mut self, pids: &[i32]) {
        self.0.set_foreign(pids)
    }

    /// Releases what the tree holds (cgroup directories); the tree must be empty.
    pub fn remove(&mut self) -> io::Result<()> {
        self.0.remove()
    }

    /// The tree's cgroup directory (a v2 or v1 freezer leaf); None with signals.
    pub fn dir(&self) -> Option<&Path> {
        self.0.cgroup()
    }
}
