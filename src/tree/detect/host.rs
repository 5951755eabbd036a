//! What the host says about a cgroup besides the layout: whether systemd
//! manages the tree, where it delegated a subtree (its xattrs, or a user
//! manager's `Delegate` property), and who else may write there.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::layout::Layout;
use crate::tree::mounts::{Membership, parse_cgroups};

/// What [`super::choose`] needs to know about the host besides the layout.
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

impl Default for Host {
    /// A host without systemd, dmon not root, no service manager to ask.
    fn default() -> Host {
        Host { systemd: false, euid: 1000, ask: |_| Err(AskError::NoManager) }
    }
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

/// The unit and its manager, as messages name them.
impl std::fmt::Display for UserUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} of the systemd of uid {}", self.name, self.uid)
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

/// A user other than root who can write a cgroup directory or one of the
/// files through which a writer moves, freezes or kills what is below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignWriter {
    /// The cgroup directory.
    pub dir: PathBuf,
    /// Who can write it.
    pub who: Writer,
    /// What they can write: `dir` itself, or one of its control files.
    pub file: PathBuf,
}

/// Who, besides root, can write a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Its owner, not root.
    Uid(u32),
    /// Its group, not root's.
    Group(u32),
    /// Every user.
    Everyone,
}

impl std::fmt::Display for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Writer::Uid(uid) => write!(f, "uid {uid}"),
            Writer::Group(gid) => write!(f, "group {gid}"),
            Writer::Everyone => f.write_str("every user"),
        }
    }
}

impl std::fmt::Display for ForeignWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let file = match self.file == self.dir {
            true => "the directory",
            false => self.file.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        };
        write!(
            f,
            "{} can be written by {} ({file}), who could move or freeze a root dmon; \
             a root dmon nests its cgroups only where no other user can write",
            self.dir.display(),
            self.who
        )
    }
}

impl std::error::Error for ForeignWriter {}

/// The first of `dir` and its ancestors up to the mount point `top` that a user
/// other than root can write, with who and through which file. cgroup v2 lets
/// whoever can write `cgroup.procs` of the common ancestor of two cgroups move
/// any process between them, whatever its owner (cgroup-v2.rst, "Delegation
/// Containment"), and `cgroup.freeze` of an ancestor freezes everything below:
/// such a user could take a root dmon out of its cgroup, or freeze it, and
/// escape its shutdown.
pub fn foreign_writer(dir: &Path, top: &Path) -> Option<ForeignWriter> {
    use std::os::unix::fs::MetadataExt;
    let who = |meta: &std::fs::Metadata| {
        let mode = meta.mode();
        if mode & 0o200 != 0 && meta.uid() != 0 {
            Some(Writer::Uid(meta.uid()))
        } else if mode & 0o020 != 0 && meta.gid() != 0 {
            Some(Writer::Group(meta.gid()))
        } else if mode & 0o002 != 0 {
            Some(Writer::Everyone)
        } else {
            None
        }
    };
    for d in dir.ancestors().take_while(|d| d.starts_with(top)) {
        let files = std::iter::once(d.to_path_buf()).chain(CONTROL_FILES.iter().map(|f| d.join(f)));
        for file in files {
            let Ok(meta) = std::fs::symlink_metadata(&file) else { continue };
            if let Some(who) = who(&meta) {
                return Some(ForeignWriter { dir: d.to_path_buf(), who, file });
            }
        }
    }
    None
}
