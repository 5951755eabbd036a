//! Which cgroup layout this host has, and where dmon may put its cgroups.
//!
//! Everything here reads text and paths handed in by the caller, so the rules are
//! unit-tested against fixture directories that stand in for the kernel:
//! [`Layout::detect`] takes the contents of `/proc/self/mountinfo` and
//! `/proc/self/cgroup` and a filesystem root under which the mount points are
//! resolved; [`choose`] takes the layout, the `--tree` choice, an explicit parent
//! and whether systemd runs the host.
//!
//! Layouts (see Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/):
//! - pure v2: a cgroup2 mount at `/sys/fs/cgroup`;
//! - hybrid: `/sys/fs/cgroup` is a tmpfs of v1 hierarchies and cgroup2 sits at
//!   `/sys/fs/cgroup/unified`. The v2 tree has no controllers there, but
//!   `cgroup.freeze`, `cgroup.events` and `cgroup.kill` are core files that work
//!   without any, so v2 is preferred over the v1 freezer;
//! - v1 freezer only: no cgroup2 mount, a v1 hierarchy carrying `freezer`;
//! - none: neither, or nothing dmon may write.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::mounts::{Membership, Mount, parse_cgroups, parse_mountinfo, read_own};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// cgroup2 at `/sys/fs/cgroup`.
    PureV2,
    /// cgroup2 elsewhere (normally `/sys/fs/cgroup/unified`) beside v1 hierarchies.
    Hybrid,
    /// A v1 freezer hierarchy and no cgroup2.
    FreezerOnly,
    None,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::PureV2 => "pure cgroup v2",
            Kind::Hybrid => "hybrid (cgroup v2 beside v1)",
            Kind::FreezerOnly => "cgroup v1 freezer only",
            Kind::None => "no cgroups",
        }
    }
}

/// What the host offers, as paths under the filesystem root given to `detect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub kind: Kind,
    /// The cgroup2 mount point and dmon's own v2 cgroup directory.
    pub v2: Option<(PathBuf, PathBuf)>,
    /// The freezer mount point and dmon's own freezer cgroup directory.
    pub freezer: Option<(PathBuf, PathBuf)>,
}

/// Joins a cgroup path from `/proc/self/cgroup` to the mount that shows it: the
/// mount's root field is cut off the front (a bind mount or a cgroup namespace
/// shows only part of the hierarchy). None when the mount does not show it.
fn own_dir(fs_root: &Path, mount: &Mount, cgroup: &str) -> Option<PathBuf> {
    let rest = if mount.root == "/" {
        cgroup
    } else {
        let rest = cgroup.strip_prefix(mount.root.as_str())?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        rest
    };
    let mut dir = under(fs_root, &mount.mount_point);
    for part in rest.split('/').filter(|p| !p.is_empty()) {
        if part == ".." {
            return None;
        }
        dir.push(part);
    }
    Some(dir)
}

fn under(fs_root: &Path, absolute: &str) -> PathBuf {
    fs_root.join(absolute.trim_start_matches('/'))
}

impl Layout {
    /// The layout seen by this process.
    pub fn detect_here() -> Layout {
        let (mountinfo, cgroup) = read_own();
        Layout::detect(Path::new("/"), &mountinfo, &cgroup)
    }

    /// The layout described by `mountinfo` and `proc_cgroup`, with mount points
    /// resolved under `fs_root`.
    pub fn detect(fs_root: &Path, mountinfo: &str, proc_cgroup: &str) -> Layout {
        let mounts = parse_mountinfo(mountinfo);
        let cgroups = parse_cgroups(proc_cgroup);
        let v2_path = cgroups.iter().rev().find(|c| c.is_v2()).map(|c| c.path);
        let freezer_path = cgroups.iter().rev().find(|c| c.has("freezer")).map(|c| c.path);
        // The last mount of a point hides the earlier ones; prefer the one at
        // /sys/fs/cgroup, then any other that shows dmon's cgroup.
        let mut v2_mounts: Vec<&Mount> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
        v2_mounts.reverse();
        v2_mounts.sort_by_key(|m| m.mount_point != "/sys/fs/cgroup");
        let v2 = v2_path.and_then(|path| {
            v2_mounts.iter().find_map(|m| Some((under(fs_root, &m.mount_point), own_dir(fs_root, m, path)?, *m)))
        });
        let freezer = freezer_path.and_then(|path| {
            mounts
                .iter()
                .rev()
                .filter(|m| m.carries("freezer"))
                .find_map(|m| Some((under(fs_root, &m.mount_point), own_dir(fs_root, m, path)?)))
        });
        let kind = match (&v2, &freezer) {
            (Some((_, _, m)), _) if m.mount_point == "/sys/fs/cgroup" => Kind::PureV2,
            (Some(_), _) => Kind::Hybrid,
            (None, Some(_)) => Kind::FreezerOnly,
            (None, None) => Kind::None,
        };
        Layout { kind, v2: v2.map(|(mount, dir, _)| (mount, dir)), freezer }
    }
}

/// A v1 hierarchy with controllers: which ones, and dmon's own cgroup in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub controllers: Vec<String>,
    /// dmon's own cgroup in it.
    pub own: PathBuf,
    /// The hierarchy's mount point.
    pub mount: PathBuf,
}

impl V1Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The v1 hierarchies of this process: from `/proc/self/mountinfo` and
/// `/proc/self/cgroup` .
pub fn v1_hierarchies_here() -> Vec<V1Hierarchy> {
    let (mountinfo, cgroup) = read_own();
    v1_hierarchies(Path::new("/"), &mountinfo, &cgroup)
}

/// The cgroup v1 hierarchies that carry controllers (not the named ones such as
/// `name=systemd`), with dmon's own cgroup in each: for the limits of
/// [`super::resources`] where the v2 tree lacks the controller.
pub fn v1_hierarchies(fs_root: &Path, mountinfo: &str, proc_cgroup: &str) -> Vec<V1Hierarchy> {
    let mounts = parse_mountinfo(mountinfo);
    let mut out = Vec::new();
    for line in parse_cgroups(proc_cgroup).iter().filter(|c| c.id != "0") {
        let controllers: Vec<String> =
            line.controllers.iter().filter(|c| !c.starts_with("name=")).map(|c| c.to_string()).collect();
        if controllers.is_empty() {
            continue;
        }
        let carries = |m: &&Mount| controllers.iter().all(|c| m.carries(c));
        let found = mounts.iter().rev().filter(carries).find_map(|m| Some((m, own_dir(fs_root, m, line.path)?)));
        if let Some((m, own)) = found {
            let mount = under(fs_root, &m.mount_point);
            out.push(V1Hierarchy { controllers, own, mount });
        }
    }
    out
}

/// The backend dmon will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A cgroup v2 directory under which dmon makes its own.
    Cgroup2 {
        parent: PathBuf,
    },
    /// A v1 freezer directory under which dmon makes its own.
    Freezer {
        parent: PathBuf,
    },
    Signals,
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cgroup2 { .. } => "cgroup2",
            Backend::Freezer { .. } => "freezer",
            Backend::Signals => "signals",
        }
    }
}

/// The backend and the one-line reason for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub backend: Backend,
    pub why: String,
}

/// What [`choose`] needs to know about the host besides the layout.
#[derive(Debug, Clone)]
pub struct Host {
    /// systemd manages the cgroup tree: `/run/systemd/system` exists (as
    /// sd_booted(3) tests), or the tree shows systemd's layout (see
    /// [`Host::detect`]).
    pub systemd: bool,
    /// dmon's effective uid. A root dmon never nests its cgroups under one that
    /// another user can write (see [`foreign_writer`]).
    pub euid: u32,
    /// Asks a user's systemd whether one of its units was delegated
    /// (`Delegate=`), where no xattr says so (see [`UserUnit`]).
    pub ask: fn(&UserUnit) -> Result<bool, AskError>,
}

/// Why a user's systemd could not say whether a unit was delegated.
#[derive(Debug)]
pub enum AskError {
    NoManager,
    /// dmon runs as `euid`, the unit belongs to `uid`'s manager.
    NotTheUser {
        euid: u32,
        uid: u32,
    },
    Spawn(std::io::Error),
    Wait(std::io::Error),
    Timeout(std::time::Duration),
    /// systemctl's first line of complaint (or its answer) about `unit`.
    Said {
        unit: String,
        said: String,
    },
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            AskError::NoManager => write!(f, "no service manager to ask"),
            AskError::NotTheUser { euid, uid } => write!(f, "dmon runs as uid {euid}, not as the unit's user {uid}"),
            AskError::Spawn(e) => write!(f, "cannot run systemctl --user: {e}"),
            AskError::Wait(e) => write!(f, "systemctl --user: {e}"),
            AskError::Timeout(limit) => write!(f, "systemctl --user gave no answer within {} s", limit.as_secs()),
            AskError::Said { unit, said } => write!(f, "systemctl --user show -p Delegate {unit}: {said}"),
        }
    }
}

impl std::error::Error for AskError {}

impl Default for Host {
    /// A host without systemd, dmon not root, no service manager to ask.
    fn default() -> Host {
        Host { systemd: false, euid: 1000, ask: |_| Err(AskError::NoManager) }
    }
}

/// The top-level names systemd gives the root of the tree it manages.
const SYSTEMD_TOP: [&str; 3] = ["init.scope", "system.slice", "user.slice"];

/// Whether a cgroup path (from `/proc/PID/cgroup`) starts in one of systemd's
/// top-level units or slices.
fn systemd_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    SYSTEMD_TOP.contains(&first)
}

impl Host {
    pub fn here(layout: &Layout) -> Host {
        let proc1 = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
        let booted = Path::new("/run/systemd/system").is_dir();
        Host { euid: nix::unistd::geteuid().as_raw(), ask: systemctl_delegate, ..Host::detect(layout, &proc1, booted) }
    }

    /// `booted`: `/run/systemd/system` exists in dmon's mount namespace. Without
    /// it, systemd may still manage the tree: in a container that has no cgroup
    /// namespace, `/run` is the container's, but the cgroupfs is the host's. The
    /// host's systemd shows there as `init.scope`, `system.slice` or `user.slice`
    /// at the root of the mounted hierarchy, or at the start of the cgroup path
    /// of PID 1 (`proc1_cgroup`, `/proc/1/cgroup`) or of dmon itself. A cgroup
    /// namespace cuts those paths at its root, so a container's own tree, which
    /// is its to use, does not look like systemd's.
    pub fn detect(layout: &Layout, proc1_cgroup: &str, booted: bool) -> Host {
        let in_tree = |mount: &Path, own: &Path| {
            let at_root = SYSTEMD_TOP.iter().any(|name| mount.join(name).is_dir());
            let own = own.strip_prefix(mount).ok().and_then(Path::to_str).is_some_and(systemd_path);
            at_root || own
        };
        // The v2 line, or in systemd's legacy layout its own named v1 hierarchy.
        let systemd_line = |c: &Membership| c.controllers.is_empty() || c.controllers == ["name=systemd"];
        let proc1 = parse_cgroups(proc1_cgroup).iter().any(|c| systemd_line(c) && systemd_path(c.path));
        let tree = layout.v2.as_ref().is_some_and(|(mount, own)| in_tree(mount, own));
        Host { systemd: booted || proc1 || tree, ..Host::default() }
    }
}

/// Where `dir`, or one of its ancestors up to the mount point `top`, was
/// delegated (systemd's `Delegate=`; systemd's CGROUP_DELEGATION document): the
/// directory that carries `trusted.delegate` or `user.delegate`. systemd marks
/// the unit's cgroup; with `DelegateSubgroup=` (systemd 254) the unit's main
/// process, dmon, runs one level below it, and a dmon started deeper in a
/// delegated subtree is below it too.
///
/// The walk ends below the root of another systemd: a user's manager
/// (`user@UID.service`) or a nested one (a cgroup holding `init.scope`) is
/// itself a delegated cgroup, but what it was delegated to is that manager,
/// which puts its own units below it; they are not dmon's.
pub fn delegated_at(dir: &Path, top: &Path) -> Option<PathBuf> {
    for d in dir.ancestors().take_while(|d| d.starts_with(top)) {
        let name = d.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let manager = (name.starts_with("user@") && name.ends_with(".service")) || d.join("init.scope").is_dir();
        if manager {
            return None;
        }
        if is_delegated(d) {
            return Some(d.to_path_buf());
        }
    }
    None
}

/// Whether the cgroup directory itself carries `trusted.delegate` or `user.delegate`.
pub fn is_delegated(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else { return false };
    ["trusted.delegate", "user.delegate"].iter().any(|name| {
        let name = CString::new(*name).expect("no NUL");
        // SAFETY: a size query (NULL buffer, size 0) with valid C strings.
        unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
    })
}

/// A unit of a user's systemd (below `user@UID.service`) that holds a cgroup.
/// systemd 252 writes no delegate xattr there (its `listxattr` is empty though
/// `systemctl --user show -p Delegate` says yes), so the delegation is the
/// unit's `Delegate` property, asked of that manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUnit {
    pub uid: u32,
    /// `run-r1234.scope`, `app.service`.
    pub name: String,
}

impl UserUnit {
    /// The unit of the user manager whose cgroup is `dir` or holds it: the
    /// first service or scope below `user@UID.service` (slices nest, units do
    /// not).
    pub fn of(dir: &Path) -> Option<UserUnit> {
        let parts: Vec<&str> = dir.iter().filter_map(|p| p.to_str()).collect();
        let at = parts.iter().position(|p| p.starts_with("user@") && p.ends_with(".service"))?;
        let uid = parts[at].strip_prefix("user@")?.strip_suffix(".service")?.parse().ok()?;
        let name = parts[at + 1..].iter().find(|p| !p.ends_with(".slice"))?;
        (name.ends_with(".service") || name.ends_with(".scope")).then(|| UserUnit { uid, name: name.to_string() })
    }
}

/// How long the user manager may take to answer.
const ASK_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `systemctl --user show -p Delegate --value UNIT`, as the unit's user only
/// (another user's manager is not dmon's to trust or ask), bounded by
/// [`ASK_LIMIT`].
fn systemctl_delegate(unit: &UserUnit) -> Result<bool, AskError> {
    use std::process::{Command, Stdio};
    let uid = nix::unistd::geteuid().as_raw();
    if uid != unit.uid {
        return Err(AskError::NotTheUser { euid: uid, uid: unit.uid });
    }
    let mut command = Command::new("systemctl");
    command.args(["--user", "show", "-p", "Delegate", "--value", "--", &unit.name]);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // systemctl finds the user manager's socket through XDG_RUNTIME_DIR, which
    // a dmon started by `runuser` or `su` may lack.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        command.env("XDG_RUNTIME_DIR", format!("/run/user/{uid}"));
    }
    let child = command.spawn().map_err(AskError::Spawn)?;
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(ASK_LIMIT) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(AskError::Wait(e)),
        Err(_) => {
            // Not reaped yet (its thread still waits), so the pid is still its.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            return Err(AskError::Timeout(ASK_LIMIT));
        }
    };
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match (out.status.success(), answer.as_str()) {
        (true, "yes") => Ok(true),
        (true, "no") => Ok(false),
        _ => {
            let said = String::from_utf8_lossy(&out.stderr);
            let said = said.lines().next().unwrap_or(&answer);
            Err(AskError::Said { unit: unit.name.clone(), said: said.to_string() })
        }
    }
}

/// Whether this process may create cgroups under `dir` and move processes into
/// them: the directory and its `cgroup.procs` are writable.
pub fn is_writable(dir: &Path) -> bool {
    use nix::unistd::{AccessFlags, access};
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
        && access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
}

/// The files of a cgroup through which a writer moves, freezes or kills what
/// is below it (v2 and v1).
const CONTROL_FILES: [&str; 7] = [
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.subtree_control",
    "cgroup.freeze",
    "cgroup.kill",
    "tasks",
    "freezer.state",
];

/// The first of `dir` and its ancestors up to the mount point `top` that a user
/// other than root can write, with who and through which file. cgroup v2 lets
/// whoever can write `cgroup.procs` of the common ancestor of two cgroups move
/// any process between them, whatever its owner (cgroup-v2.rst, "Delegation
/// Containment"), and `cgroup.freeze` of an ancestor freezes everything below:
/// such a user could take a root dmon out of its cgroup, or freeze it, and
/// escape its shutdown.
pub fn foreign_writer(dir: &Path, top: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let who = |meta: &std::fs::Metadata| {
        let mode = meta.mode();
        if mode & 0o200 != 0 && meta.uid() != 0 {
            Some(format!("uid {}", meta.uid()))
        } else if mode & 0o020 != 0 && meta.gid() != 0 {
            Some(format!("group {}", meta.gid()))
        } else if mode & 0o002 != 0 {
            Some("every user".to_string())
        } else {
            None
        }
    };
    for d in dir.ancestors().take_while(|d| d.starts_with(top)) {
        let files = std::iter::once(d.to_path_buf()).chain(CONTROL_FILES.iter().map(|f| d.join(f)));
        for file in files {
            let Ok(meta) = std::fs::symlink_metadata(&file) else { continue };
            if let Some(who) = who(&meta) {
                return Some(format!(
                    "{} can be written by {who} ({}), who could move or freeze a root dmon; \
                     a root dmon nests its cgroups only where no other user can write",
                    d.display(),
                    if file == d { "the directory" } else { file.file_name().and_then(|n| n.to_str()).unwrap_or("?") }
                ));
            }
        }
    }
    None
}

/// Whether `dir` lies in the hierarchy mounted at `mount` (links resolved).
fn in_hierarchy(dir: &Path, mount: &Path) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    real(dir).starts_with(real(mount))
}

/// How a place for dmon's cgroups was checked.
struct Place<'a> {
    dir: &'a Path,
    /// The mount point of its hierarchy.
    mount: &'a Path,
    /// The user named it (`--cgroup-parent`): systemd's ownership is the user's call.
    explicit: bool,
    /// The backend was named (`--tree cgroup2|freezer`): where the delegation of
    /// a user's unit cannot be confirmed, the user's word for it.
    named: bool,
}

/// Why `place` may not hold dmon's cgroups (Err), or what it was accepted on
/// beyond being writable (Ok, empty when nothing more).
fn check(place: &Place, host: &Host) -> Result<String, String> {
    let dir = place.dir;
    if !dir.is_dir() {
        return Err(format!("{} does not exist", dir.display()));
    }
    if !is_writable(dir) {
        return Err(format!("{} is not writable by uid {}", dir.display(), nix::unistd::geteuid()));
    }
    // The walks up the tree go by the real paths (a parent given as `a/../b`).
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (real_dir, top) = (real(dir), real(place.mount));
    if host.euid == 0 {
        if let Some(why) = foreign_writer(&real_dir, &top) {
            return Err(why);
        }
    }
    if place.explicit || !host.systemd {
        return Ok(String::new());
    }
    if let Some(at) = delegated_at(&real_dir, &top) {
        return Ok(if at == real_dir { ", delegated".to_string() } else { format!(", delegated at {}", at.display()) });
    }
    let Some(unit) = UserUnit::of(dir) else {
        return Err(format!(
            "{} belongs to systemd and was not delegated (no trusted.delegate or user.delegate on it or above); \
             start dmon in a unit with Delegate=yes (systemd-run -p Delegate=yes)",
            dir.display()
        ));
    };
    let manager = format!("the systemd of uid {}", unit.uid);
    match (host.ask)(&unit) {
        Ok(true) => Ok(format!(", delegated ({} of {manager} has Delegate=yes)", unit.name)),
        Ok(false) => Err(format!(
            "{} belongs to {} of {manager}, which has no Delegate=yes; start dmon with \
             systemd-run --user --scope -p Delegate=yes",
            dir.display(),
            unit.name
        )),
        Err(e) if place.named => {
            let warning = format!(
                "cannot confirm that {} of {manager} was delegated (no delegate xattr; {e}); \
                 taking the named backend as the statement that it was",
                unit.name
            );
            tracing::warn!("{warning}");
            Ok(format!(", {warning}"))
        }
        Err(e) => Err(format!(
            "{} belongs to {} of {manager}, whose delegation cannot be confirmed (no delegate xattr; {e}); \
             --tree cgroup2 states that it is",
            dir.display(),
            unit.name
        )),
    }
}

/// Why dmon may not make cgroups under `dir` of the hierarchy mounted at
/// `mount` on its own account (not named by the user, no backend named), or
/// None when it may: the rules of auto detection.
pub fn refusal(dir: &Path, mount: &Path) -> Option<String> {
    let layout = Layout::detect_here();
    let place = Place { dir, mount, explicit: false, named: false };
    check(&place, &Host::here(&layout)).err()
}

/// Which mechanism controls the command tree (`--tree`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TreeChoice {
    /// cgroup v2 where writable, else the v1 freezer, else signals
    Auto,
    /// A cgroup v2 leaf: freeze, thaw and cgroup.kill
    Cgroup2,
    /// A cgroup v1 freezer leaf
    Freezer,
    /// Process group, subreaper and a walk of the process tree
    Signals,
}

/// Picks the backend: `--tree` first; with `auto`, cgroup2 wherever it is
/// mounted, else the v1 freezer, else signals, each only where dmon may write.
/// A backend asked for by name that cannot be had is an error.
pub fn choose(
    layout: &Layout,
    choice: TreeChoice,
    parent: Option<&Path>,
    host: &Host,
) -> Result<Choice, super::TreeError> {
    let refused = |option| move |why| super::TreeError::Unavailable { option, why };
    let named = choice != TreeChoice::Auto;
    // cgroup2 or the v1 freezer: its mount and dmon's cgroup there, its name in
    // messages, and its backend with the parent chosen.
    let pick = |found: &Option<(PathBuf, PathBuf)>, name: &str, backend: fn(PathBuf) -> Backend| {
        let Some((mount, own)) = found else { return Err(format!("no {name} hierarchy is mounted")) };
        let (dir, explicit) = match parent {
            Some(p) => (p.to_path_buf(), true),
            None => (own.clone(), false),
        };
        if explicit && !in_hierarchy(&dir, mount) {
            return Err(format!("{} is not in the {name} hierarchy at {}", dir.display(), mount.display()));
        }
        let note = check(&Place { dir: &dir, mount, explicit, named }, host).map_err(|no| format!("{name}: {no}"))?;
        let place = if explicit { "the parent given" } else { "dmon's own cgroup" };
        let (kind, mount, shown) = (layout.kind.name(), mount.display(), dir.display());
        let why = format!("{kind} layout, {name} mounted at {mount}, {place} {shown} is writable{note}");
        Ok(Choice { why, backend: backend(dir) })
    };
    let v2 = || pick(&layout.v2, "cgroup2", |parent| Backend::Cgroup2 { parent });
    let freezer = || pick(&layout.freezer, "cgroup v1 freezer", |parent| Backend::Freezer { parent });
    match choice {
        TreeChoice::Signals => Ok(Choice { backend: Backend::Signals, why: "asked for with --tree signals".into() }),
        TreeChoice::Cgroup2 => v2().map_err(refused("--tree cgroup2")),
        TreeChoice::Freezer => freezer().map_err(refused("--tree freezer")),
        // A parent named by the user picks its hierarchy, and is never silently
        // replaced by signals.
        TreeChoice::Auto if parent.is_some() => {
            let under =
                |mount: Option<&(PathBuf, PathBuf)>| mount.is_some_and(|(m, _)| in_hierarchy(parent.unwrap(), m));
            if under(layout.v2.as_ref()) {
                v2()
            } else if under(layout.freezer.as_ref()) {
                freezer()
            } else {
                Err(format!("{} is not a directory of a cgroup2 or v1 freezer hierarchy", parent.unwrap().display()))
            }
            .map_err(refused("--cgroup-parent"))
        }
        TreeChoice::Auto => match layout.kind {
            Kind::PureV2 | Kind::Hybrid => v2().or_else(|e| {
                // cgroup2 is mounted but refused: the freezer is no better a
                // place for a systemd host, but may be for a plain one. Not for
                // a root dmon whose v2 cgroup another user can write: that user
                // can freeze dmon there (cgroup.freeze) whatever it uses, and
                // the fallback's message is what tells the operator.
                let exposed = |(mount, own): &(PathBuf, PathBuf)| foreign_writer(own, mount).is_some();
                if host.euid == 0 && layout.v2.as_ref().is_some_and(exposed) {
                    return Err(e);
                }
                freezer().or(Err(e))
            }),
            Kind::FreezerOnly => freezer(),
            Kind::None => Err("no cgroup hierarchy is mounted".into()),
        }
        .or_else(|why| Ok(Choice { backend: Backend::Signals, why: format!("{why}; falling back to signals") })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's kind: v1 hierarchies on a tmpfs, cgroup2 at `unified`.
    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
28 26 0:26 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
29 26 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
";
    const HYBRID_CGROUP: &str = "6:freezer:/jobs\n1:cpu:/\n0::/jobs/web\n";
    const PURE: &str = "26 25 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
    const FREEZER: &str = "28 26 0:26 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n";

    #[test]
    fn v1_hierarchies_carry_controllers_and_dmons_cgroup_in_each() {
        let mountinfo = format!("{HYBRID}30 26 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n");
        let cgroup = "9:name=systemd:/\n6:freezer:/jobs\n1:cpu:/\n0::/jobs/web\n";
        let found = v1_hierarchies(Path::new("/"), &mountinfo, cgroup);
        let names: Vec<(Vec<String>, PathBuf)> = found.into_iter().map(|h| (h.controllers, h.own)).collect();
        assert_eq!(
            names,
            [
                (vec!["freezer".to_string()], PathBuf::from("/sys/fs/cgroup/freezer/jobs")),
                (vec!["cpu".to_string()], PathBuf::from("/sys/fs/cgroup/cpu")),
            ]
        );
        assert!(v1_hierarchies(Path::new("/"), PURE, "0::/\n").is_empty());
    }

    /// A fixture directory standing in for the kernel's cgroup files.
    struct Fixture(PathBuf);

    impl Fixture {
        fn new(dirs: &[&str]) -> Fixture {
            let root = std::env::temp_dir().join(format!("dmon-detect-{}-{}", std::process::id(), unique()));
            for dir in dirs {
                let dir = root.join(dir);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("cgroup.procs"), "").unwrap();
            }
            Fixture(root)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn unique() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn detects_each_layout() {
        let root = Path::new("/fx");
        let hybrid = Layout::detect(root, HYBRID, HYBRID_CGROUP);
        assert_eq!(hybrid.kind, Kind::Hybrid);
        assert_eq!(
            hybrid.v2,
            Some((PathBuf::from("/fx/sys/fs/cgroup/unified"), PathBuf::from("/fx/sys/fs/cgroup/unified/jobs/web")))
        );
        assert_eq!(
            hybrid.freezer,
            Some((PathBuf::from("/fx/sys/fs/cgroup/freezer"), PathBuf::from("/fx/sys/fs/cgroup/freezer/jobs")))
        );

        let pure = Layout::detect(root, PURE, "0::/user.slice/x.scope\n");
        assert_eq!(pure.kind, Kind::PureV2);
        assert_eq!(pure.v2.unwrap().1, PathBuf::from("/fx/sys/fs/cgroup/user.slice/x.scope"));

        let freezer = Layout::detect(root, FREEZER, "6:freezer:/\n");
        assert_eq!(freezer.kind, Kind::FreezerOnly);
        assert_eq!(freezer.freezer.unwrap().1, PathBuf::from("/fx/sys/fs/cgroup/freezer"));

        assert_eq!(
            Layout::detect(root, "26 25 0:24 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", "0::/\n").kind,
            Kind::None
        );
        // A cgroup2 mount that does not show dmon's cgroup (a bind of another subtree).
        let other = "26 25 0:24 /other /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(Layout::detect(root, other, "0::/mine\n").kind, Kind::None);
        // A cgroup namespace: the mount's root is cut off dmon's path.
        let bound = "26 25 0:24 /ns /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(Layout::detect(root, bound, "0::/ns/job\n").v2.unwrap().1, PathBuf::from("/fx/sys/fs/cgroup/job"));
    }

    #[test]
    fn prefers_cgroup2_in_the_hybrid_layout_and_falls_back_in_order() {
        let fx = Fixture::new(&["sys/fs/cgroup/unified/jobs/web", "sys/fs/cgroup/freezer/jobs"]);
        let layout = Layout::detect(&fx.0, HYBRID, HYBRID_CGROUP);
        let host = Host::default();
        let got = choose(&layout, TreeChoice::Auto, None, &host).unwrap();
        assert_eq!(got.backend, Backend::Cgroup2 { parent: fx.0.join("sys/fs/cgroup/unified/jobs/web") });
        assert!(got.why.contains("hybrid"), "{}", got.why);
        let got = choose(&layout, TreeChoice::Freezer, None, &host).unwrap();
        assert_eq!(got.backend, Backend::Freezer { parent: fx.0.join("sys/fs/cgroup/freezer/jobs") });
        assert_eq!(choose(&layout, TreeChoice::Signals, None, &host).unwrap().backend, Backend::Signals);

        // Without the v2 directory, auto takes the freezer.
        std::fs::remove_file(fx.0.join("sys/fs/cgroup/unified/jobs/web/cgroup.procs")).unwrap();
        std::fs::remove_dir(fx.0.join("sys/fs/cgroup/unified/jobs/web")).unwrap();
        let got = choose(&layout, TreeChoice::Auto, None, &host).unwrap();
        assert_eq!(got.backend.name(), "freezer");
        // Asked for by name, a missing backend is an error.
        let err = choose(&layout, TreeChoice::Cgroup2, None, &host).unwrap_err().to_string();
        assert!(err.starts_with("--tree cgroup2:") && err.contains("does not exist"), "{err}");
        // Nothing usable at all: signals, and the reason.
        let none = Layout::detect(&fx.0, "", "");
        let got = choose(&none, TreeChoice::Auto, None, &host).unwrap();
        assert_eq!(got.backend, Backend::Signals);
        assert!(got.why.contains("falling back to signals"), "{}", got.why);
    }

    #[test]
    fn never_writes_into_a_cgroup_systemd_owns_unless_delegated_or_named() {
        let fx = Fixture::new(&["sys/fs/cgroup/user.slice/x.service", "sys/fs/cgroup/elsewhere", "elsewhere"]);
        let layout = Layout::detect(&fx.0, PURE, "0::/user.slice/x.service\n");
        let systemd = Host { systemd: true, ..Host::default() };
        let got = choose(&layout, TreeChoice::Auto, None, &systemd).unwrap();
        assert_eq!(got.backend, Backend::Signals);
        assert!(got.why.contains("not delegated"), "{}", got.why);
        assert!(choose(&layout, TreeChoice::Cgroup2, None, &systemd).is_err());
        // An explicit parent is the user's call.
        let parent = fx.0.join("sys/fs/cgroup/elsewhere");
        let got = choose(&layout, TreeChoice::Auto, Some(&parent), &systemd).unwrap();
        assert_eq!(got.backend, Backend::Cgroup2 { parent });
        // A parent outside every hierarchy is an error, not signals.
        let outside =
            choose(&layout, TreeChoice::Auto, Some(&fx.0.join("elsewhere")), &systemd).unwrap_err().to_string();
        assert!(outside.contains("is not a directory of a cgroup2"), "{outside}");
        assert!(choose(&layout, TreeChoice::Cgroup2, Some(&fx.0.join("elsewhere")), &systemd).is_err());
        // Without systemd, dmon's own cgroup is fine.
        assert_eq!(choose(&layout, TreeChoice::Auto, None, &Host::default()).unwrap().backend.name(), "cgroup2");

        // A delegated cgroup carries user.delegate (or trusted.delegate).
        let own = fx.0.join("sys/fs/cgroup/user.slice/x.service");
        let path = CString::new(own.as_os_str().as_bytes()).unwrap();
        let name = CString::new("user.delegate").unwrap();
        // SAFETY: valid C strings and a one-byte value.
        let set = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0) };
        if set != 0 {
            eprintln!("skipping the delegation case: this filesystem takes no user xattrs");
            return;
        }
        assert!(is_delegated(&own));
        assert_eq!(choose(&layout, TreeChoice::Auto, None, &systemd).unwrap().backend.name(), "cgroup2");
    }

    /// Sets `user.delegate` on `dir`; false where the filesystem takes no user xattrs.
    fn mark_delegated(dir: &Path) -> bool {
        let path = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let name = CString::new("user.delegate").unwrap();
        // SAFETY: valid C strings and a one-byte value.
        let set = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0) };
        if set != 0 {
            eprintln!("skipping a delegation case: this filesystem takes no user xattrs");
        }
        set == 0
    }

    #[test]
    fn a_delegate_mark_on_an_ancestor_delegates_what_is_below() {
        // systemd 254's DelegateSubgroup=: the unit's cgroup is marked, dmon runs
        // in a subgroup of it; deeper still, a dmon started by another in the tree.
        let unit = "sys/fs/cgroup/system.slice/x.service";
        let fx = Fixture::new(&[
            &format!("{unit}/supervisor"),
            &format!("{unit}/supervisor/deeper"),
            "sys/fs/cgroup/system.slice/y.service",
        ]);
        let systemd = Host { systemd: true, ..Host::default() };
        let layout = Layout::detect(&fx.0, PURE, "0::/system.slice/x.service/supervisor\n");
        assert_eq!(choose(&layout, TreeChoice::Auto, None, &systemd).unwrap().backend, Backend::Signals);
        if !mark_delegated(&fx.0.join(unit)) {
            return;
        }
        let got = choose(&layout, TreeChoice::Auto, None, &systemd).unwrap();
        assert_eq!(got.backend.name(), "cgroup2", "{}", got.why);
        assert!(got.why.contains(&format!("delegated at {}", fx.0.join(unit).display())), "{}", got.why);
        let deeper = Layout::detect(&fx.0, PURE, "0::/system.slice/x.service/supervisor/deeper\n");
        assert_eq!(choose(&deeper, TreeChoice::Auto, None, &systemd).unwrap().backend.name(), "cgroup2");
        // A sibling unit is not below the mark; the walk stops at the mount.
        let sibling = Layout::detect(&fx.0, PURE, "0::/system.slice/y.service\n");
        assert_eq!(choose(&sibling, TreeChoice::Auto, None, &systemd).unwrap().backend, Backend::Signals);
        assert_eq!(delegated_at(&fx.0.join("sys/fs/cgroup/system.slice"), &fx.0.join("sys/fs/cgroup")), None);
    }

    #[test]
    fn systemd_is_recognised_from_the_cgroup_tree_without_run_systemd() {
        // A container without a cgroup namespace: /run is its own, the tree the host's.
        let fx = Fixture::new(&["sys/fs/cgroup/init.scope", "sys/fs/cgroup/system.slice/docker-1.scope"]);
        let layout = Layout::detect(&fx.0, PURE, "0::/system.slice/docker-1.scope\n");
        assert!(Host::detect(&layout, "0::/system.slice/docker-1.scope\n", false).systemd);
        std::fs::remove_file(fx.0.join("sys/fs/cgroup/init.scope/cgroup.procs")).unwrap();
        std::fs::remove_dir(fx.0.join("sys/fs/cgroup/init.scope")).unwrap();
        // Still seen in dmon's own path and in PID 1's.
        assert!(Host::detect(&layout, "0::/\n", false).systemd);
        let root = Layout::detect(&fx.0, PURE, "0::/\n");
        assert!(Host::detect(&root, "0::/init.scope\n", false).systemd);
        assert!(Host::detect(&root, "0::/\n", true).systemd);
        // Only the root's system.slice is left; without it, no systemd.
        assert!(Host::detect(&root, "0::/\n", false).systemd);
        std::fs::remove_dir_all(fx.0.join("sys/fs/cgroup/system.slice")).unwrap();
        assert!(!Host::detect(&root, "0::/\n", false).systemd);
        // systemd's legacy layout shows in its named v1 hierarchy; another
        // controller's path says nothing.
        assert!(Host::detect(&root, "1:name=systemd:/init.scope\n", false).systemd);
        assert!(!Host::detect(&root, "4:memory:/system.slice\n", false).systemd);
        // A cgroup namespace cuts the host's names off: a container's own tree.
        let ns = "26 25 0:24 /system.slice/docker-1.scope /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let inside = Layout::detect(&fx.0, ns, "0::/system.slice/docker-1.scope/job\n");
        assert!(!Host::detect(&inside, "0::/\n", false).systemd);
        // The hybrid layout of a host without systemd, as here.
        let hybrid = Layout::detect(&fx.0, HYBRID, HYBRID_CGROUP);
        assert!(!Host::detect(&hybrid, "9:name=systemd:/\n0::/\n", false).systemd);
    }

    #[test]
    fn finds_the_unit_of_a_users_systemd() {
        let of = |p: &str| UserUnit::of(Path::new(p));
        let base = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";
        assert_eq!(
            of(&format!("{base}/app.slice/run-r12.scope")),
            Some(UserUnit { uid: 1000, name: "run-r12.scope".into() })
        );
        assert_eq!(of(&format!("{base}/a.slice/b.slice/x.service/sub")).unwrap().name, "x.service");
        assert_eq!(of(&format!("{base}/app.slice")), None);
        assert_eq!(of("/sys/fs/cgroup/system.slice/x.service"), None);
        assert_eq!(of("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope"), None);
    }

    #[test]
    fn a_users_unit_is_delegated_by_its_delegate_property() {
        let path = "user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope";
        let fx = Fixture::new(&[&format!("sys/fs/cgroup/{path}")]);
        let layout = Layout::detect(&fx.0, PURE, &format!("0::/{path}\n"));
        // The system manager marks the user manager's cgroup: a delegation to
        // that manager, not to its units.
        let manager = fx.0.join("sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service");
        if mark_delegated(&manager) {
            assert_eq!(delegated_at(&fx.0.join("sys/fs/cgroup").join(path), &fx.0), None);
        }
        let host = |ask: fn(&UserUnit) -> Result<bool, AskError>| Host { systemd: true, euid: 1000, ask };
        let yes = host(|u| if u.name == "run-r1.scope" && u.uid == 1000 { Ok(true) } else { Err(AskError::NoManager) });
        let got = choose(&layout, TreeChoice::Auto, None, &yes).unwrap();
        assert_eq!(got.backend.name(), "cgroup2");
        assert!(got.why.contains("run-r1.scope of the systemd of uid 1000 has Delegate=yes"), "{}", got.why);

        let no = host(|_| Ok(false));
        let got = choose(&layout, TreeChoice::Auto, None, &no).unwrap();
        assert_eq!(got.backend, Backend::Signals);
        assert!(got.why.contains("no Delegate=yes") && got.why.contains("-p Delegate=yes"), "{}", got.why);
        let err = choose(&layout, TreeChoice::Cgroup2, None, &no).unwrap_err().to_string();
        assert!(err.contains("no Delegate=yes"), "{err}");

        // The manager cannot be asked: auto falls back and says what would do;
        // --tree cgroup2 is the user's statement, with what was not confirmed.
        let unknown = host(|_| Err(AskError::Said { unit: "run-r1.scope".into(), said: "no bus".into() }));
        let got = choose(&layout, TreeChoice::Auto, None, &unknown).unwrap();
        assert_eq!(got.backend, Backend::Signals);
        assert!(got.why.contains("cannot be confirmed") && got.why.contains("no bus"), "{}", got.why);
        assert!(got.why.contains("--tree cgroup2"), "{}", got.why);
        let got = choose(&layout, TreeChoice::Cgroup2, None, &unknown).unwrap();
        assert_eq!(got.backend.name(), "cgroup2");
        assert!(got.why.contains("cannot confirm that run-r1.scope") && got.why.contains("no bus"), "{}", got.why);
    }

    #[test]
    fn a_root_dmon_never_nests_under_a_cgroup_another_user_can_write() {
        let fx = Fixture::new(&["sys/fs/cgroup/unified/deleg/inner", "sys/fs/cgroup/freezer"]);
        let deleg = fx.0.join("sys/fs/cgroup/unified/deleg");
        let chown = |path: &Path| nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(65534)), None);
        if chown(&deleg).is_err() || chown(&deleg.join("cgroup.procs")).is_err() {
            eprintln!("skipping: cannot chown (not root)");
            return;
        }
        let root = Host { euid: 0, ..Host::default() };
        let cgroup = "6:freezer:/\n0::/deleg/inner\n";
        let layout = Layout::detect(&fx.0, HYBRID, cgroup);
        let err = choose(&layout, TreeChoice::Auto, Some(&deleg), &root).unwrap_err().to_string();
        assert!(err.starts_with("--cgroup-parent: cgroup2: "), "{err}");
        assert!(err.contains(&format!("{} can be written by uid 65534 (the directory)", deleg.display())), "{err}");
        assert!(choose(&layout, TreeChoice::Cgroup2, Some(&deleg), &root).is_err());
        // Below it, as dmon's own cgroup: signals, not the freezer, and why.
        let got = choose(&layout, TreeChoice::Auto, None, &root).unwrap();
        assert_eq!(got.backend, Backend::Signals);
        assert!(got.why.contains("can be written by uid 65534") && got.why.contains("falling back"), "{}", got.why);
        // Through a file only, or a group, too.
        nix::unistd::chown(&deleg, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        let err = choose(&layout, TreeChoice::Auto, Some(&deleg.join("inner")), &root).unwrap_err().to_string();
        assert!(err.contains("written by uid 65534 (cgroup.procs)"), "{err}");
        nix::unistd::chown(&deleg.join("cgroup.procs"), Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&deleg, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = choose(&layout, TreeChoice::Auto, Some(&deleg), &root).unwrap_err().to_string();
        assert!(err.contains("written by every user (the directory)"), "{err}");
        std::fs::set_permissions(&deleg, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(choose(&layout, TreeChoice::Auto, Some(&deleg), &root).unwrap().backend.name(), "cgroup2");
        // The same tree for a dmon of that user (the delegated unprivileged case).
        chown(&deleg).unwrap();
        let user = Host { euid: 65534, ..Host::default() };
        let got = choose(&layout, TreeChoice::Auto, Some(&deleg), &user);
        assert!(got.is_ok() || got.unwrap_err().to_string().contains("not writable by uid 65534"));
    }
}
