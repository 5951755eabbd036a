//! "The process tree of one supervised command": start into it, signal all of it,
//! freeze, thaw, kill all of it, and tell when it is empty.
//!
//! A [`Tree`] is one of three backends, a variant of one enum dispatched by
//! `match`; [`open`] chooses it at start from the layout [`detect`] finds and
//! the `--tree` choice:
//! - [`cgroup2`]: a cgroup v2 leaf (pure v2, or the hybrid layout's `unified`
//!   tree): `cgroup.freeze`, `cgroup.kill`, and `cgroup.events` to learn, without
//!   polling, when the tree is frozen or empty;
//! - [`freezer`]: a cgroup v1 freezer leaf, where no cgroup2 is mounted. What
//!   the two cgroup backends share is a [`leaf::Leaf`], which each holds; each
//!   adds only what its version does its own way;
//! - [`signals`]: no cgroup; the command's process group, dmon as child subreaper,
//!   and a walk of the process table by parent pid. Works everywhere, for any user,
//!   but a process could in principle slip out between two walks.
//!
//! A cgroup tree whose files fail while dmon runs becomes a signal tree (see
//! [`Tree`]): a variant chosen by what happened, never by a directory's name.
//! The tree knows its `Role` (the command's or the log command's) from the
//! start, and keeps it through that change: only the command's tree claims the
//! orphans re-parented to dmon.
//!
//! Each tree owns its limits and peak leaves ([`resources::Enforcer`]): it adds
//! their descriptors to what the child joins, and gives the loop the OOM
//! notification, so the loop asks the tree alone.
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
//! machine's actions through [`Tree`]. None of a backend's work waits for the
//! kernel: what completes later is announced by [`Tree::event_fd`] or done in
//! steps at [`Tree::deadline`].

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

use cgroup2::V2;
use detect::{Backend, Choice, Host, Layout, TreeChoice};
use freezer::V1;
use leaf::Leaf;
use signals::{Orphans, SignalTree};

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

/// How many times a tree is read again while each reading finds a process the
/// last did not (a bound, in case a fork bomb outruns the readings).
const ROUNDS: usize = 64;

/// Signals a tree until a round finds no new member: `round` reads the members
/// again (a process forked after one reading is found by the next), signals
/// those not in the set it is given, and returns them.
pub fn until_no_new(mut round: impl FnMut(&BTreeSet<i32>) -> io::Result<Vec<i32>>) -> io::Result<()> {
    let mut signalled = BTreeSet::new();
    for _ in 0..ROUNDS {
        let fresh = round(&signalled)?;
        if fresh.is_empty() {
            break;
        }
        signalled.extend(fresh);
    }
    Ok(())
}

/// One supervised command's tree: its backend, its role, and its limits.
pub struct Tree {
    kind: Kind,
    role: Role,
    /// The limits and v1 peak leaves of the tree, where it has any. They stay
    /// when a cgroup tree falls back to signals: the v1 leaves are the run's.
    limits: Option<resources::Enforcer>,
}

/// A tree's backend: what was detected at start, or the signals a cgroup tree
/// fell back to.
enum Kind {
    Cgroup2(V2),
    Freezer(V1),
    Signals(SignalTree),
}

/// Which command a tree is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Cmd,
    Log,
}

impl Role {
    /// The tree's leaf in dmon's cgroups.
    const fn leaf(self) -> &'static str {
        match self {
            Role::Cmd => "cmd",
            Role::Log => "log",
        }
    }

    /// Only the command's tree claims the orphans re-parented to dmon.
    fn orphans(self) -> Orphans {
        match self {
            Role::Cmd => Orphans::Claim,
            Role::Log => Orphans::Leave,
        }
    }
}

/// The trees of the command and of the log command, and why their backend was chosen.
pub struct Trees {
    pub cmd: Tree,
    pub log: Option<Tree>,
    pub choice: Choice,
    /// dmon's own cgroup directory, when a cgroup backend is used.
    pub home: Option<PathBuf>,
}

/// Why a tree cannot take its next child: nothing was started.
#[derive(Debug)]
pub enum SetupError {
    /// The backend cannot be prepared (after a cgroup tree fell back to signals,
    /// where its files failed).
    Tree(io::Error),
    /// This run's limit leaves cannot be made.
    Limits(io::Error),
}

impl SetupError {
    /// What could not be prepared, for the message.
    pub fn what(&self) -> &'static str {
        match self {
            SetupError::Tree(_) => "the tree",
            SetupError::Limits(_) => "the limits",
        }
    }

    pub fn error(&self) -> &io::Error {
        match self {
            SetupError::Tree(e) | SetupError::Limits(e) => e,
        }
    }
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
    let Some(enforcers) = resources::open(limits, v2, &detect::v1_hierarchies_here(), leaves(with_log))? else {
        return Ok(trees);
    };
    // One enforcer per leaf, in the order of the trees.
    let mut trees = trees;
    let mut enforcers = enforcers.into_iter();
    trees.cmd.limits = enforcers.next();
    if let Some(log) = trees.log.as_mut() {
        log.limits = enforcers.next();
    }
    Ok(trees)
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
        Backend::Cgroup2 { parent } => {
            make_cgroups(parent, own(&layout.v2), with_log, |home, leaf| Ok(Kind::Cgroup2(V2::new(home, leaf)?)))
        }
        Backend::Freezer { parent } => {
            make_cgroups(parent, own(&layout.freezer), with_log, |home, leaf| Ok(Kind::Freezer(V1::new(home, leaf)?)))
        }
    };
    match made {
        Ok((cmd, log, home)) => {
            let dir = Some(home.dir().to_path_buf());
            Ok((Trees { cmd, log, choice: chosen, home: dir }, Some(home)))
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
    Trees { cmd: Tree::signals(Role::Cmd), log: with_log.then(|| Tree::signals(Role::Log)), choice, home: None }
}

/// The leaves of dmon's cgroup for the trees: the command's, and with a log
/// command the log command's.
fn leaves(with_log: bool) -> &'static [&'static str] {
    const BOTH: [&str; 2] = [Role::Cmd.leaf(), Role::Log.leaf()];
    if with_log { &BOTH } else { &BOTH[..1] }
}

/// Makes dmon's cgroup under `parent` and, with `make`, the command's tree in
/// its leaf and, `with_log`, the log command's.
fn make_cgroups(
    parent: &Path,
    origin: Option<PathBuf>,
    with_log: bool,
    make: impl Fn(Arc<home::Home>, &str) -> io::Result<Kind>,
) -> io::Result<(Tree, Option<Tree>, Arc<home::Home>)> {
    let home = Arc::new(home::Home::create(parent, origin, leaves(with_log))?);
    let tree = |role: Role| -> io::Result<Tree> { Ok(Tree::new(make(home.clone(), role.leaf())?, role)) };
    let cmd = tree(Role::Cmd)?;
    let log = with_log.then(|| tree(Role::Log)).transpose()?;
    Ok((cmd, log, home))
}

/// What a fallback to signals may do again on the signal tree.
impl Kind {
    /// The cgroup leaf, for a cgroup backend.
    fn leaf(&self) -> Option<&Leaf> {
        match self {
            Kind::Cgroup2(V2 { leaf, .. }) | Kind::Freezer(V1 { leaf, .. }) => Some(leaf),
            Kind::Signals(_) => None,
        }
    }

    fn child_setup(&mut self, frozen: bool) -> io::Result<ChildSetup> {
        match self {
            Kind::Cgroup2(t) => t.leaf.child_setup(frozen),
            Kind::Freezer(t) => t.child_setup(frozen),
            Kind::Signals(t) => Ok(t.child_setup(frozen)),
        }
    }

    fn signal(&mut self, signal: Signal) -> io::Result<()> {
        match self {
            Kind::Cgroup2(V2 { leaf, .. }) | Kind::Freezer(V1 { leaf, .. }) => {
                leaf.signal(signal);
                Ok(())
            }
            Kind::Signals(t) => t.signal(signal),
        }
    }

    /// `in_leaf` on a cgroup's leaf (both cgroup versions share these
    /// operations), or `in_signals` on a signal tree.
    fn either(
        &mut self,
        in_leaf: fn(&mut Leaf) -> io::Result<()>,
        in_signals: fn(&mut SignalTree) -> io::Result<()>,
    ) -> io::Result<()> {
        match self {
            Kind::Cgroup2(V2 { leaf, .. }) | Kind::Freezer(V1 { leaf, .. }) => in_leaf(leaf),
            Kind::Signals(t) => in_signals(t),
        }
    }

    fn freeze(&mut self) -> io::Result<()> {
        self.either(Leaf::freeze, |t| t.signal(Signal::SIGSTOP))
    }

    fn thaw(&mut self) -> io::Result<()> {
        self.either(Leaf::thaw, |t| t.signal(Signal::SIGCONT))
    }

    fn terminate(&mut self) -> io::Result<()> {
        self.either(Leaf::terminate, SignalTree::terminate)
    }

    fn kill(&mut self) -> io::Result<()> {
        match self {
            Kind::Cgroup2(t) => t.kill(),
            Kind::Freezer(t) => t.kill(),
            Kind::Signals(t) => t.signal(Signal::SIGKILL),
        }
    }

    fn on_tick(&mut self) -> io::Result<()> {
        match self {
            Kind::Cgroup2(t) => {
                t.on_tick();
                Ok(())
            }
            Kind::Freezer(t) => t.on_tick(),
            Kind::Signals(_) => Ok(()),
        }
    }
}

impl Tree {
    fn new(kind: Kind, role: Role) -> Tree {
        Tree { kind, role, limits: None }
    }

    fn signals(role: Role) -> Tree {
        Tree::new(Kind::Signals(SignalTree::new(role.orphans())), role)
    }

    /// A cgroup tree whose files fail (the cgroup was removed, or write access
    /// to it was taken away while dmon runs) becomes a signal tree of the same
    /// role: the processes it still lists are adopted, and the walk finds them
    /// and their descendants from then on, so the no-survivor guarantee holds as
    /// far as signals can hold it. Says so once. Returns whether the tree changed.
    fn fall_back(&mut self, e: &io::Error) -> bool {
        let Some(dir) = self.kind.leaf().map(|leaf| leaf.dir().to_path_buf()) else { return false };
        let mut signals = SignalTree::new(self.role.orphans());
        files::with_pidfds(&dir, &files::pids(&dir), |pid, fd| signals.adopt(pid, fd));
        tracing::warn!("{}: {}; controlling this tree with signals from now on", dir.display(), crate::io_reason(e));
        self.kind = Kind::Signals(signals);
        true
    }

    /// Runs `op` on the backend, and once more on the signal tree when it
    /// failed with a cgroup failure that made this tree fall back to signals.
    fn with_fallback<T>(&mut self, op: impl Fn(&mut Kind) -> io::Result<T>) -> io::Result<T> {
        match op(&mut self.kind) {
            Err(e) if self.fall_back(&e) => op(&mut self.kind),
            other => other,
        }
    }

    /// What the next child needs between fork and exec, this run's limit
    /// leaves included. `frozen`: the child must start paused.
    pub fn child_setup(&mut self, frozen: bool) -> Result<ChildSetup, SetupError> {
        let mut setup = self.with_fallback(|t| t.child_setup(frozen)).map_err(SetupError::Tree)?;
        if let Some(limits) = self.limits.as_mut() {
            let fds = limits.prepare_run().map_err(SetupError::Limits)?;
            fds.into_iter().zip(&mut setup.limit_fds).for_each(|(fd, slot)| *slot = Some(fd));
        }
        Ok(setup)
    }

    /// The child `pid` was started into the tree (and has joined its limit leaves).
    pub fn started(&mut self, pid: i32) {
        if let Some(limits) = self.limits.as_mut() {
            limits.started();
        }
        match &mut self.kind {
            Kind::Cgroup2(V2 { leaf, .. }) | Kind::Freezer(V1 { leaf, .. }) => leaf.started(),
            Kind::Signals(t) => t.started(pid),
        }
    }

    /// TERM and CONT to every process of the tree, once it is stopped: a cgroup
    /// is frozen (one write), TERM and CONT sent, and thawed, so that every
    /// process acts on its TERM at once; with signals all are stopped first.
    /// The tree ends running (thawed) in every backend.
    pub fn terminate(&mut self) -> io::Result<()> {
        self.with_fallback(Kind::terminate)
    }

    /// Sends `signal` to every process of the tree. A process of a cgroup that
    /// may not be signalled is reported once, not an error: the cgroup works,
    /// and its kill ends that process too.
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        self.with_fallback(|t| t.signal(signal))
    }

    /// Pauses every process of the tree. Returns at once; a cgroup tree is
    /// frozen when the kernel says so (asynchronously).
    pub fn freeze(&mut self) -> io::Result<()> {
        self.with_fallback(Kind::freeze)
    }

    /// Resumes every process of the tree; a cgroup's thaw is written from a
    /// thread, without waiting for it.
    pub fn thaw(&mut self) -> io::Result<()> {
        self.with_fallback(Kind::thaw)
    }

    /// KILL to every process of the tree.
    pub fn kill(&mut self) -> io::Result<()> {
        self.with_fallback(Kind::kill)
    }

    /// Whether no process of the tree is left but those dmon may not signal
    /// (zombies not counted: the caller reaps its children before asking).
    pub fn is_empty(&mut self) -> bool {
        match &mut self.kind {
            Kind::Cgroup2(t) => t.is_empty(),
            Kind::Freezer(t) => t.is_empty(),
            Kind::Signals(t) => t.is_empty(),
        }
    }

    /// A descriptor that becomes readable (POLLPRI) when the tree's state
    /// changes: a v2 leaf's `cgroup.events`.
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.kind {
            Kind::Cgroup2(t) => Some(t.event_fd()),
            Kind::Freezer(_) | Kind::Signals(_) => None,
        }
    }

    /// Reads the tree's state after a wake-up of [`Tree::event_fd`] (None for
    /// backends without one). Must be called after every wake-up: cgroup v2 keeps
    /// signalling POLLPRI until `cgroup.events` is read again.
    pub fn acknowledge(&mut self) -> Option<TreeEvents> {
        match &mut self.kind {
            Kind::Cgroup2(t) => Some(t.events()),
            Kind::Freezer(_) | Kind::Signals(_) => None,
        }
    }

    /// When the loop must call [`Tree::on_tick`] next, if ever: work the tree
    /// does in steps (a v1 freezer's kill cycle) without keeping the loop.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.kind {
            Kind::Cgroup2(t) => t.leaf.freeze_check(),
            Kind::Freezer(t) => t.deadline(),
            Kind::Signals(_) => None,
        }
    }

    /// Whether a write to the tree's freezer is still running on its thread.
    pub fn writing(&mut self) -> bool {
        match &mut self.kind {
            Kind::Cgroup2(V2 { leaf, .. }) | Kind::Freezer(V1 { leaf, .. }) => leaf.busy(),
            Kind::Signals(_) => false,
        }
    }

    /// The deadline of [`Tree::deadline`] has come: the next step. A cgroup
    /// failure on the way is the v1 kill cycle's: the signal tree kills.
    pub fn on_tick(&mut self) {
        let result = match self.kind.on_tick() {
            Err(e) if self.fall_back(&e) => self.kind.kill(),
            other => other,
        };
        if let Err(e) = result {
            tracing::warn!("{}", crate::io_reason(&e));
        }
    }

    /// Pids the tree must never claim as its own (the other tree's leader).
    /// Only a signal tree claims processes by anything but its cgroup.
    pub fn set_foreign(&mut self, pids: &[i32]) {
        if let Kind::Signals(t) = &mut self.kind {
            t.set_foreign(pids);
        }
    }

    /// Releases what the tree holds (cgroup directories); the tree must be empty.
    pub fn remove(&mut self) -> io::Result<()> {
        match &mut self.kind {
            Kind::Cgroup2(V2 { leaf, .. }) | Kind::Freezer(V1 { leaf, .. }) => leaf.remove(),
            Kind::Signals(_) => Ok(()),
        }
    }

    /// The tree's cgroup directory (a v2 or v1 freezer leaf); None with signals.
    pub fn dir(&self) -> Option<&Path> {
        self.kind.leaf().map(Leaf::dir)
    }

    /// The directories of this run's v1 leaves, whose peak files describe the
    /// run beside [`Tree::dir`].
    pub fn peak_dirs(&self) -> Vec<&Path> {
        self.limits.as_ref().map(|l| l.run_dirs()).unwrap_or_default()
    }

    /// The descriptor to poll for an OOM kill of the tree's run, and whether
    /// for POLLPRI (else POLLIN).
    pub fn oom_fd(&self) -> Option<(BorrowedFd<'_>, bool)> {
        self.limits.as_ref()?.oom_fd()
    }

    /// After [`Tree::oom_fd`] woke the loop: whether the kernel killed a process
    /// of the run for lack of memory since the last look.
    pub fn oom_killed(&mut self) -> bool {
        self.limits.as_mut().is_some_and(|l| l.oom_killed())
    }
}
