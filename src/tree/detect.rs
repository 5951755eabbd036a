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

/// The cgroup v1 hierarchies that carry controllers (not the named ones such as
/// `name=systemd`), with dmon's own cgroup in each: for the limits of
/// [`super::resources`] where the v2 tree lacks the controller.
pub fn v1_hierarchies(fs_root: &Path, mountinfo: &str, proc_cgroup: &str) -> Vec<super::resources::V1Hierarchy> {
    let mounts = parse_mountinfo(mountinfo);
    let mut out = Vec::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(list), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let controllers: Vec<String> =
            list.split(',').filter(|c| !c.is_empty() && !c.starts_with("name=")).map(str::to_string).collect();
        if id == "0" || controllers.is_empty() {
            continue;
        }
        let carries = |m: &&Mount| {
            m.fs_type == "cgroup" && controllers.iter().all(|c| m.super_options.split(',').any(|o| o == c))
        };
        if let Some(own) = mounts.iter().rev().filter(carries).find_map(|m| own_dir(fs_root, m, path)) {
            out.push(super::resources::V1Hierarchy { controllers, own });
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

/// Whether `dir` lies in the hierarchy mounted at `mount` (links resolved).
fn in_hierarchy(dir: &Path, mount: &Path) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    real(dir).starts_with(real(mount))
}

/// Why `parent` may not hold dmon's cgroups, or None when it may. `explicit`:
/// the user named it, so systemd's ownership is the user's call.
pub fn refusal(parent: &Path, explicit: bool, host: &Host) -> Option<String> {
    if !parent.is_dir() {
        return Some(format!("{} does not exist", parent.display()));
    }
    if !is_writable(parent) {
        let uid = nix::unistd::geteuid();
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
        if explicit && !in_hierarchy(&dir, mount) {
            return Err(format!("{} is not in the cgroup2 hierarchy at {}", dir.display(), mount.display()));
        }
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
        if explicit && !in_hierarchy(&dir, mount) {
            return Err(format!("{} is not in the v1 freezer hierarchy at {}", dir.display(), mount.display()));
        }
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
            .map_err(|e| format!("--cgroup-parent: {e}"))
        }
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
    fn parses_mountinfo_with_optional_fields_and_escapes() {
        let mounts =
            parse_mountinfo("27 26 0:25 / /sys/fs/cgroup/uni\\040fied rw shared:9 master:2 - cgroup2 none rw\n");
        assert_eq!(
            mounts,
            [Mount {
                root: "/".into(),
                mount_point: "/sys/fs/cgroup/uni fied".into(),
                fs_type: "cgroup2".into(),
                super_options: "rw".into(),
            }]
        );
        assert!(parse_mountinfo("garbage\n").is_empty());
    }

    #[test]
    fn parses_proc_self_cgroup() {
        assert_eq!(parse_proc_cgroup(HYBRID_CGROUP), (Some("/jobs/web".into()), Some("/jobs".into())));
        assert_eq!(parse_proc_cgroup("0::/\n"), (Some("/".into()), None));
        assert_eq!(parse_proc_cgroup("7:cpuset,freezer:/a\n"), (None, Some("/a".into())));
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
        let host = Host { systemd: false };
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
        let err = choose(&layout, TreeChoice::Cgroup2, None, &host).unwrap_err();
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
        let systemd = Host { systemd: true };
        let got = choose(&layout, TreeChoice::Auto, None, &systemd).unwrap();
        assert_eq!(got.backend, Backend::Signals);
        assert!(got.why.contains("not delegated"), "{}", got.why);
        assert!(choose(&layout, TreeChoice::Cgroup2, None, &systemd).is_err());
        // An explicit parent is the user's call.
        let parent = fx.0.join("sys/fs/cgroup/elsewhere");
        let got = choose(&layout, TreeChoice::Auto, Some(&parent), &systemd).unwrap();
        assert_eq!(got.backend, Backend::Cgroup2 { parent });
        // A parent outside every hierarchy is an error, not signals.
        let outside = choose(&layout, TreeChoice::Auto, Some(&fx.0.join("elsewhere")), &systemd).unwrap_err();
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
}
