//! The choice of backend: `--tree` and `--cgroup-parent` held against the
//! layout and the host, and the checks a place for dmon's cgroups must pass.

use std::path::{Path, PathBuf};

use super::host::{Host, UserUnit, delegated_at, foreign_writer, is_writable};
use super::layout::{Kind, Layout};
use crate::tree::TreeError;

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
pub fn choose(layout: &Layout, choice: TreeChoice, parent: Option<&Path>, host: &Host) -> Result<Choice, TreeError> {
    let refused = |option| move |why| TreeError::Unavailable { option, why };
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
