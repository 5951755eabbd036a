//! The cgroup layout read from `/proc/self/mountinfo` and `/proc/self/cgroup`:
//! which hierarchies are mounted where, and dmon's own cgroup in each.

use std::path::{Path, PathBuf};

use crate::tree::mounts::{Mount, parse_cgroups, parse_mountinfo, read_own};

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
/// [`crate::tree::resources`] where the v2 tree lacks the controller.
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
