//! dmon's own cgroup: `PARENT/dmon.PID` with sibling leaves `supervisor` (dmon
//! itself), `cmd` and `log`, shared by the v2 and v1 freezer backends.
//!
//! Keeping dmon and its commands in sibling leaves follows the one-writer and
//! "no internal processes" rules of cgroup v2 (cgroup-v2.rst, and systemd's
//! CGROUP_DELEGATION): a controller can be enabled in `dmon.PID` later without
//! moving anyone.
//!
//! Life cycle: the directory is locked with `flock` for as long as dmon runs. At
//! start, every `dmon.*` directory under the same parent whose lock can be taken
//! belongs to a dmon that is gone (killed before it could clean up): its empty
//! cgroups are removed. At exit, dmon moves itself back to where it came from and
//! removes everything it made. A cgroup that still holds a process cannot be
//! removed (EBUSY) and is left, with a warning, for the next dmon.
//!
//! The lock closes a race between a starting dmon and one cleaning up: the
//! cleaner only removes what it could lock, and a starter that loses the race
//! (between its mkdir and its open, or its flock and the leaves) finds its
//! directory gone (ENOENT) and starts over.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::files;

/// The leaf dmon itself lives in.
pub const SUPERVISOR: &str = "supervisor";
/// The prefix of dmon's own cgroup directories.
pub const PREFIX: &str = "dmon.";

pub struct Home {
    dir: PathBuf,
    /// The directory, open and flock'ed while dmon runs.
    _lock: Flock<File>,
    /// The cgroup dmon was in before it moved into `supervisor`.
    origin: Option<PathBuf>,
    /// Whether dmon moved itself into `supervisor` (not in a v1 hierarchy that
    /// only holds limits, see [`Home::create_plain`]).
    joined: bool,
    /// Controllers dmon enabled in the parent's `cgroup.subtree_control` (see
    /// [`Home::enable_in_parent`]), to disable again before moving back.
    parent_enabled: std::sync::Mutex<Vec<String>>,
}

impl Home {
    /// Makes `parent/dmon.PID` (or `dmon.PID.N` when taken) with the
    /// `supervisor` leaf, moves dmon into it, and makes the `leaves`. `origin` is
    /// dmon's current cgroup, to move back to at exit.
    pub fn create(parent: &Path, origin: Option<PathBuf>, leaves: &[&str]) -> io::Result<Home> {
        Home::make(parent, origin, leaves, true)
    }

    /// Makes `parent/dmon.PID`, locked as [`Home::create`] does, without moving
    /// dmon: for a v1 hierarchy where only the command's limits live.
    pub fn create_plain(parent: &Path) -> io::Result<Home> {
        Home::make(parent, None, &[], false)
    }

    fn make(parent: &Path, origin: Option<PathBuf>, leaves: &[&str], joined: bool) -> io::Result<Home> {
        remove_leftovers(parent);
        let pid = std::process::id();
        let mut suffix = 0u32;
        for _attempt in 0..100 {
            let name = match suffix {
                0 => format!("{PREFIX}{pid}"),
                n => format!("{PREFIX}{pid}.{n}"),
            };
            let dir = parent.join(&name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    suffix += 1;
                    continue;
                }
                Err(e) => return Err(files::context(e, "mkdir", &dir, "")),
            }
            let lock = match open_dir(&dir) {
                Ok(lock) => lock,
                // A dmon cleaning up leftovers took it between mkdir and open.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(files::context(e, "open", &dir, "")),
            };
            let lock = Flock::lock(lock, FlockArg::LockExclusive)
                .map_err(|(_, e)| files::context(e.into(), "flock", &dir, ""))?;
            match populate(&dir, leaves, joined) {
                Ok(()) => return Ok(Home { dir, _lock: lock, origin, joined, parent_enabled: Default::default() }),
                // A dmon cleaning up leftovers took it between mkdir and flock.
                Err(e) if !dir.exists() => {
                    tracing::debug!("{} vanished while being set up ({e}); retrying", dir.display());
                    continue;
                }
                Err(e) => {
                    // Dropping it moves dmon back and removes what was made.
                    drop(Home { dir, _lock: lock, origin, joined, parent_enabled: Default::default() });
                    return Err(e);
                }
            }
        }
        Err(io::Error::other(format!("cannot make a cgroup of its own under {}", parent.display())))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn leaf(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Enables `controllers` in the parent's `cgroup.subtree_control`, so that
    /// `dmon.PID` is offered them: for a parent delegated to dmon (systemd's
    /// `Delegate=` enables controllers for the service's cgroup, not below it)
    /// whose only process was dmon, now in `supervisor` ("no internal
    /// processes" would refuse it otherwise). Undone when dmon moves back.
    pub fn enable_in_parent(&self, controllers: &[&str]) -> io::Result<()> {
        let Some(parent) = self.dir.parent() else { return Ok(()) };
        let enable: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
        files::write(&parent.join("cgroup.subtree_control"), &enable.join(" "))?;
        let mut done = self.parent_enabled.lock().unwrap_or_else(|e| e.into_inner());
        done.extend(controllers.iter().map(|c| c.to_string()));
        Ok(())
    }

    /// Disables what [`Home::enable_in_parent`] enabled: first in dmon's own
    /// subtree (the kernel refuses it in the parent while a child enables it).
    fn disable_in_parent(&self) {
        let done = self.parent_enabled.lock().unwrap_or_else(|e| e.into_inner());
        let (Some(parent), false) = (self.dir.parent(), done.is_empty()) else { return };
        let disable: Vec<String> = done.iter().map(|c| format!("-{c}")).collect();
        let _ = files::write(&self.dir.join("cgroup.subtree_control"), &disable.join(" "));
        if let Err(e) = files::write(&parent.join("cgroup.subtree_control"), &disable.join(" ")) {
            tracing::warn!("{}", crate::io_reason(&e));
        }
    }
}

fn populate(dir: &Path, leaves: &[&str], join: bool) -> io::Result<()> {
    if join {
        let supervisor = dir.join(SUPERVISOR);
        mkdir(&supervisor)?;
        files::write(&supervisor.join("cgroup.procs"), &std::process::id().to_string())?;
    }
    for leaf in leaves {
        mkdir(&dir.join(leaf))?;
    }
    Ok(())
}

fn mkdir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir(dir).map_err(|e| files::context(e, "mkdir", dir, ""))
}

impl Drop for Home {
    fn drop(&mut self) {
        self.disable_in_parent();
        let me = std::process::id().to_string();
        let parent = self.dir.parent().map(Path::to_path_buf);
        let moved = !self.joined
            || [self.origin.clone(), parent]
                .into_iter()
                .flatten()
                .any(|dir| files::write(&dir.join("cgroup.procs"), &me).is_ok());
        if !moved {
            tracing::warn!("cannot move dmon out of {}; it is left for the next dmon", self.dir.display());
            return;
        }
        if let Err(e) = files::remove_tree(&self.dir) {
            tracing::warn!("cannot remove {}: {}", self.dir.display(), crate::io_reason(&e));
        }
    }
}

fn open_dir(dir: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(dir)
}

/// Removes the empty cgroups of dmons that are gone: every `dmon.*` directory
/// under `parent` that nobody holds locked. Returns the directories removed.
pub fn remove_leftovers(parent: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else { return removed };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = entry.file_name().to_str().is_some_and(|n| n.starts_with(PREFIX));
        if !is_ours || !path.is_dir() {
            continue;
        }
        let Ok(lock) = open_dir(&path) else { continue };
        let Ok(_lock) = Flock::lock(lock, FlockArg::LockExclusiveNonblock) else {
            continue; // a live dmon
        };
        match files::remove_tree(&path) {
            Ok(()) => {
                tracing::info!("removed {}, left behind by a dmon that is gone", path.display());
                removed.push(path);
            }
            Err(e) => tracing::warn!(
                "{} was left behind by a dmon that is gone and cannot be removed: {}",
                path.display(),
                crate::io_reason(&e)
            ),
        }
    }
    removed
}
