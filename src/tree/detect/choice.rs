//! The choice of backend: `--tree` and `--cgroup-parent` held against the
//! layout and the host, and the checks a place for dmon's cgroups must pass.

use std::path::{Path, PathBuf};

use super::host::{AskError, ForeignWriter, Host, UserUnit, delegated_at, foreign_writer, is_writable};
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

/// Why a place may not hold dmon's cgroups.
#[derive(Debug)]
pub enum Refusal {
    Missing {
        dir: PathBuf,
    },
    NotWritable {
        dir: PathBuf,
        euid: u32,
    },
    /// A root dmon, and another user can write there.
    Exposed(ForeignWriter),
    /// systemd manages the tree, and no delegate xattr marks `dir` or above.
    NotDelegated {
        dir: PathBuf,
    },
    /// `dir` belongs to a user's unit whose `Delegate` property is no.
    NoDelegate {
        dir: PathBuf,
        unit: UserUnit,
    },
    /// `dir` belongs to a user's unit whose manager could not be asked.
    Unconfirmed {
        dir: PathBuf,
        unit: UserUnit,
        err: AskError,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Refusal::Missing { dir } => write!(f, "{} does not exist", dir.display()),
            Refusal::NotWritable { dir, euid } => write!(f, "{} is not writable by uid {euid}", dir.display()),
            Refusal::Exposed(writer) => writer.fmt(f),
            Refusal::NotDelegated { dir } => write!(
                f,
                "{} belongs to systemd and was not delegated (no trusted.delegate or user.delegate on it or above); \
                 start dmon in a unit with Delegate=yes (systemd-run -p Delegate=yes)",
                dir.display()
            ),
            Refusal::NoDelegate { dir, unit } => write!(
                f,
                "{} belongs to {unit}, which has no Delegate=yes; start dmon with \
                 systemd-run --user --scope -p Delegate=yes",
                dir.display()
            ),
            Refusal::Unconfirmed { dir, unit, err } => write!(
                f,
                "{} belongs to {unit}, whose delegation cannot be confirmed (no delegate xattr; {err}); \
                 --tree cgroup2 states that it is",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Refusal::Exposed(writer) => Some(writer),
            Refusal::Unconfirmed { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// What a place for dmon's cgroups was accepted on beyond being writable.
#[derive(Debug)]
enum Accepted {
    /// Nothing more: named by the user, or no systemd.
    Writable,
    /// It carries a delegate xattr.
    Delegated,
    /// An ancestor carries a delegate xattr.
    DelegatedAt(PathBuf),
    /// A user's unit whose `Delegate` property is yes.
    UnitDelegated(UserUnit),
    /// A user's unit whose manager could not be asked, taken on the word of
    /// the named backend.
    OnTrust { unit: UserUnit, err: AskError },
}

/// The tail of a choice's reason (nothing for [`Accepted::Writable`]).
impl std::fmt::Display for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Accepted::Writable => Ok(()),
            Accepted::Delegated => f.write_str("delegated"),
            Accepted::DelegatedAt(at) => write!(f, "delegated at {}", at.display()),
            Accepted::UnitDelegated(unit) => write!(f, "delegated ({unit} has Delegate=yes)"),
            Accepted::OnTrust { unit, err } => write!(
                f,
                "cannot confirm that {unit} was delegated (no delegate xattr; {err}); \
                 taking the named backend as the statement that it was"
            ),
        }
    }
}

/// Why `place` may not hold dmon's cgroups (Err), or what it was accepted on
/// beyond being writable (Ok).
fn check(place: &Place, host: &Host) -> Result<Accepted, Refusal> {
    let dir = place.dir;
    if !dir.is_dir() {
        return Err(Refusal::Missing { dir: dir.to_path_buf() });
    }
    if !is_writable(dir) {
        return Err(Refusal::NotWritable { dir: dir.to_path_buf(), euid: nix::unistd::geteuid().as_raw() });
    }
    // The walks up the tree go by the real paths (a parent given as `a/../b`).
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (real_dir, top) = (real(dir), real(place.mount));
    if host.euid == 0 {
        if let Some(writer) = foreign_writer(&real_dir, &top) {
            return Err(Refusal::Exposed(writer));
        }
    }
    if place.explicit || !host.systemd {
        return Ok(Accepted::Writable);
    }
    if let Some(at) = delegated_at(&real_dir, &top) {
        return Ok(if at == real_dir { Accepted::Delegated } else { Accepted::DelegatedAt(at) });
    }
    let Some(unit) = UserUnit::of(dir) else { return Err(Refusal::NotDelegated { dir: dir.to_path_buf() }) };
    match (host.ask)(&unit) {
        Ok(true) => Ok(Accepted::UnitDelegated(unit)),
        Ok(false) => Err(Refusal::NoDelegate { dir: dir.to_path_buf(), unit }),
        Err(err) if place.named => {
            let trusted = Accepted::OnTrust { unit, err };
            tracing::warn!("{trusted}");
            Ok(trusted)
        }
        Err(err) => Err(Refusal::Unconfirmed { dir: dir.to_path_buf(), unit, err }),
    }
}

/// Why dmon may not make cgroups under `dir` of the hierarchy mounted at
/// `mount` on its own account (not named by the user, no backend named), or
/// None when it may: the rules of auto detection.
pub fn refusal(dir: &Path, mount: &Path) -> Option<Refusal> {
    let layout = Layout::detect_here();
    let place = Place { dir, mount, explicit: false, named: false };
    check(&place, &Host::here(&layout)).err()
}

/// Why a backend cannot be had.
#[derive(Debug)]
pub enum Unavailable {
    /// No `hierarchy` (`cgroup2`, `cgroup v1 freezer`) is mounted.
    NotMounted { hierarchy: &'static str },
    /// The parent given is not in the `hierarchy` mounted at `mount`.
    NotInHierarchy { dir: PathBuf, hierarchy: &'static str, mount: PathBuf },
    /// The place in `hierarchy` was refused.
    Refused { hierarchy: &'static str, refusal: Refusal },
    /// The parent given is in no hierarchy dmon can use.
    Outside { dir: PathBuf },
    /// Neither cgroup2 nor a v1 freezer is mounted.
    NoHierarchy,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Unavailable::NotMounted { hierarchy } => write!(f, "no {hierarchy} hierarchy is mounted"),
            Unavailable::NotInHierarchy { dir, hierarchy, mount } => {
                write!(f, "{} is not in the {hierarchy} hierarchy at {}", dir.display(), mount.display())
            }
            Unavailable::Refused { hierarchy, refusal } => write!(f, "{hierarchy}: {refusal}"),
            Unavailable::Outside { dir } => {
                write!(f, "{} is not a directory of a cgroup2 or v1 freezer hierarchy", dir.display())
            }
            Unavailable::NoHierarchy => f.write_str("no cgroup hierarchy is mounted"),
        }
    }
}

impl std::error::Error for Unavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Unavailable::Refused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
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
    // TreeError keeps the reason as text.
    let refused = |option| move |why: Unavailable| TreeError::Unavailable { option, why: why.to_string() };
    let named = choice != TreeChoice::Auto;
    // cgroup2 or the v1 freezer: its mount and dmon's cgroup there, its name in
    // messages, and its backend with the parent chosen.
    let pick = |found: &Option<(PathBuf, PathBuf)>, hierarchy: &'static str, backend: fn(PathBuf) -> Backend| {
        let Some((mount, own)) = found else { return Err(Unavailable::NotMounted { hierarchy }) };
        let (dir, explicit) = match parent {
            Some(p) => (p.to_path_buf(), true),
            None => (own.clone(), false),
        };
        if explicit && !in_hierarchy(&dir, mount) {
            return Err(Unavailable::NotInHierarchy { dir, hierarchy, mount: mount.clone() });
        }
        let accepted = check(&Place { dir: &dir, mount, explicit, named }, host)
            .map_err(|refusal| Unavailable::Refused { hierarchy, refusal })?;
        let note = match accepted {
            Accepted::Writable => String::new(),
            accepted => format!(", {accepted}"),
        };
        let place = if explicit { "the parent given" } else { "dmon's own cgroup" };
        let (kind, mount, shown) = (layout.kind.name(), mount.display(), dir.display());
        let why = format!("{kind} layout, {hierarchy} mounted at {mount}, {place} {shown} is writable{note}");
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
                Err(Unavailable::Outside { dir: parent.unwrap().to_path_buf() })
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
            Kind::None => Err(Unavailable::NoHierarchy),
        }
        .or_else(|why| Ok(Choice { backend: Backend::Signals, why: format!("{why}; falling back to signals") })),
    }
}
