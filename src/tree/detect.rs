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

use crate::cli::TreeChoice;

/// One line of `/proc/self/mountinfo`, the fields dmon needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path inside the filesystem that is mounted (field 4).
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    pub super_options: String,
}

/// Parses mountinfo (proc(5)): `ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS...] - TYPE SOURCE SUPER`.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                root: unescape(left.get(3)?),
                mount_point: unescape(left.get(4)?),
                fs_type: right.first()?.to_string(),
                super_options: right.get(2).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = bytes[i + 1..i + 4].iter().fold(0u32, |acc, b| acc * 8 + (b - b'0') as u32);
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// dmon's own cgroups from `/proc/self/cgroup`: the v2 path (`0::/path`) and the
/// v1 freezer path (`N:...freezer...:/path`).
pub fn parse_proc_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let mut v2 = None;
    let mut freezer = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "freezer") {
            freezer = Some(path.to_string());
        }
    }
    (v2, freezer)
}

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
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Layout::detect(Path::new("/"), &mountinfo, &cgroup)
    }

    /// The layout described by `mountinfo` and `proc_cgroup`, with mount points
    /// resolved under `fs_root`.
    pub fn detect(fs_root: &Path, mountinfo: &str, proc_cgroup: &str) -> Layout {
        let mounts = parse_mountinfo(mountinfo);
        let (v2_path, freezer_path) = parse_proc_cgroup(proc_cgroup);
        // The last mount of a point hides the earlier ones; prefer the one at
        // /sys/fs/cgroup, then any other that shows dmon's cgroup.
        let mut v2_mounts: Vec<&Mount> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
        v2_mounts.reverse();
        v2_mounts.sort_by_key(|m| m.mount_point != "/sys/fs/cgroup");
        let v2 = v2_path.as_deref().and_then(|path| {
            v2_mounts.iter().find_map(|m| Some((under(fs_root, &m.mount_point), own_dir(fs_root, m, path)?, *m)))
        });
        let freezer = freezer_path.as_deref().and_then(|path| {
            mounts
                .iter()
                .rev()
                .filter(|m| m.fs_type == "cgroup" && m.super_options.split(',').any(|o| o == "freezer"))
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
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// systemd runs the host (`/run/systemd/system` exists, as sd_booted(3) tests).
    pub systemd: bool,
}

impl Host {
    pub fn here() -> Host {
        Host { systemd: Path::new("/run/systemd/system").is_dir() }
    }
}

/// Whether a cgroup directory was delegated (systemd's `Delegate=`; see
/// systemd's CGROUP_DELEGATION document): it carries `trusted.delegate` or
/// `user.delegate`.
pub fn is_delegated(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else { return false };
    ["trusted.delegate", "user.delegate"].iter().any(|name| {
        let name = CString::new(*name).expect("no NUL");
        // SAFETY: a size query (NULL buffer, size 0) with valid C strings.
        unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
    })
}

/// Whether this process may create cgroups under `dir` and move processes into
/// them: the directory and its `cgroup.procs` are writable.
pub fn is_writable(dir: &Path) -> bool {
    use nix::unistd::{AccessFlags, access};
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
        && access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
}

/// Why `parent` may not hold dmon's cgroups, or None when it may. `explicit`:
/// the user named it, so systemd's ownership is the user's call.
pub fn refusal(parent: &Path, explicit: bool, host: &Host) -> Option<String> {
    if !parent.is_dir() {
        return Some(format!("{} does not exist", parent.display()));
    }
    if !is_writable(parent) {
        // SAFETY: geteuid cannot fail.
        let uid = unsafe { libc::geteuid() };
        return Some(format!("{} is not writable by uid {uid}", parent.display()));
    }
    if !explicit && host.systemd && !is_delegated(parent) {
        return Some(format!(
            "{} belongs to systemd and was not delegated (no trusted.delegate or user.delegate)",
            parent.display()
        ));
    }
    None
}

/// Picks the backend: `--tree` first; with `auto`, cgroup2 wherever it is
/// mounted, else the v1 freezer, else signals, each only where dmon may write.
/// A backend asked for by name that cannot be had is an error.
pub fn choose(layout: &Layout, choice: TreeChoice, parent: Option<&Path>, host: &Host) -> Result<Choice, String> {
    let v2 = || -> Result<Choice, String> {
        let Some((mount, own)) = &layout.v2 else { return Err("no cgroup2 hierarchy is mounted".into()) };
        let (dir, explicit) = match parent {
            Some(p) => (p.to_path_buf(), true),
            None => (own.clone(), false),
        };
        if let Some(no) = refusal(&dir, explicit, host) {
            return Err(format!("cgroup v2: {no}"));
        }
        let place = if explicit { "the parent given" } else { "dmon's own cgroup" };
        Ok(Choice {
            why: format!(
                "{} layout, cgroup2 mounted at {}, {place} {} is writable",
                layout.kind.name(),
                mount.display(),
                dir.display()
            ),
            backend: Backend::Cgroup2 { parent: dir },
        })
    };
    let freezer = || -> Result<Choice, String> {
        let Some((mount, own)) = &layout.freezer else {
            return Err("no cgroup v1 freezer hierarchy is mounted".into());
        };
        let (dir, explicit) = match parent {
            Some(p) => (p.to_path_buf(), true),
            None => (own.clone(), false),
        };
        if let Some(no) = refusal(&dir, explicit, host) {
            return Err(format!("freezer: {no}"));
        }
        Ok(Choice {
            why: format!(
                "{} layout, v1 freezer mounted at {}, {} is writable",
                layout.kind.name(),
                mount.display(),
                dir.display()
            ),
            backend: Backend::Freezer { parent: dir },
        })
    };
    match choice {
        TreeChoice::Signals => Ok(Choice { backend: Backend::Signals, why: "asked for with --tree signals".into() }),
        TreeChoice::Cgroup2 => v2().map_err(|e| format!("--tree cgroup2: {e}")),
        TreeChoice::Freezer => freezer().map_err(|e| format!("--tree freezer: {e}")),
        TreeChoice::Auto => match layout.kind {
            Kind::PureV2 | Kind::Hybrid => v2().or_else(|e| {
                // cgroup2 is mounted but refused: the freezer is no better a
                // place for a systemd host, but may be for a plain one.
                freezer().or(Err(e))
            }),
            Kind::FreezerOnly => freezer(),
            Kind::None => Err("no cgroup hierarchy is mounted".into()),
        }
        .or_else(|why| Ok(Choice { backend: Backend::Signals, why: format!("{why}; falling back to signals") })),
    }
}
