//! The layouts, the choice of backend and the host's facts, against fixture
//! directories standing in for the kernel's cgroup files.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

    assert_eq!(Layout::detect(root, "26 25 0:24 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", "0::/\n").kind, Kind::None);
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
    let outside = choose(&layout, TreeChoice::Auto, Some(&fx.0.join("elsewhere")), &systemd).unwrap_err().to_string();
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
        return crate::skip("the delegation case: this filesystem takes no user xattrs");
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
        crate::skip("a delegation case: this filesystem takes no user xattrs");
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
    std::fs::write(deleg.join("cgroup.procs"), "").unwrap();
    let chown = |path: &Path| nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(65534)), None);
    if chown(&deleg).is_err() || chown(&deleg.join("cgroup.procs")).is_err() {
        return crate::skip("cannot chown (not root)");
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

#[test]
fn a_refusal_names_the_option_the_hierarchy_and_the_place() {
    let fx = Fixture::new(&["sys/fs/cgroup/unified/jobs", "sys/fs/cgroup/freezer/jobs", "elsewhere"]);
    let layout = Layout::detect(&fx.0, HYBRID, HYBRID_CGROUP);
    let host = Host::default();
    let err = |layout: &Layout, choice, parent: Option<&Path>, host: &Host| {
        choose(layout, choice, parent, host).unwrap_err().to_string()
    };
    let (unified, freezer) = (fx.0.join("sys/fs/cgroup/unified"), fx.0.join("sys/fs/cgroup/freezer"));
    assert_eq!(
        err(&layout, TreeChoice::Cgroup2, None, &host),
        format!("--tree cgroup2: cgroup2: {} does not exist", unified.join("jobs/web").display())
    );
    let elsewhere = fx.0.join("elsewhere");
    assert_eq!(
        err(&layout, TreeChoice::Freezer, Some(&elsewhere), &host),
        format!(
            "--tree freezer: {} is not in the cgroup v1 freezer hierarchy at {}",
            elsewhere.display(),
            freezer.display()
        )
    );
    assert_eq!(
        err(&layout, TreeChoice::Auto, Some(&elsewhere), &host),
        format!("--cgroup-parent: {} is not a directory of a cgroup2 or v1 freezer hierarchy", elsewhere.display())
    );
    let pure = Layout::detect(&fx.0, PURE, "0::/unified/jobs\n");
    assert_eq!(
        err(&pure, TreeChoice::Freezer, None, &host),
        "--tree freezer: no cgroup v1 freezer hierarchy is mounted"
    );
    let none = Layout::detect(&fx.0, "", "");
    let got = choose(&none, TreeChoice::Auto, None, &host).unwrap();
    assert_eq!(got.why, "no cgroup hierarchy is mounted; falling back to signals");
    let systemd = Host { systemd: true, ..Host::default() };
    assert_eq!(
        err(&pure, TreeChoice::Cgroup2, None, &systemd),
        format!(
            "--tree cgroup2: cgroup2: {} belongs to systemd and was not delegated (no trusted.delegate or \
             user.delegate on it or above); start dmon in a unit with Delegate=yes (systemd-run -p Delegate=yes)",
            fx.0.join("sys/fs/cgroup/unified/jobs").display()
        )
    );
}

#[test]
fn a_users_unit_is_named_with_its_manager_in_the_reason() {
    let path = "user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope";
    let fx = Fixture::new(&[&format!("sys/fs/cgroup/{path}")]);
    let layout = Layout::detect(&fx.0, PURE, &format!("0::/{path}\n"));
    let (dir, mount) = (fx.0.join("sys/fs/cgroup").join(path), fx.0.join("sys/fs/cgroup"));
    let host = |ask: fn(&UserUnit) -> Result<bool, AskError>| Host { systemd: true, euid: 1000, ask };
    let got = choose(&layout, TreeChoice::Auto, None, &host(|_| Ok(true))).unwrap();
    assert_eq!(
        got.why,
        format!(
            "pure cgroup v2 layout, cgroup2 mounted at {}, dmon's own cgroup {} is writable, delegated \
             (run-r1.scope of the systemd of uid 1000 has Delegate=yes)",
            mount.display(),
            dir.display()
        )
    );
    let no = choose(&layout, TreeChoice::Cgroup2, None, &host(|_| Ok(false))).unwrap_err().to_string();
    assert_eq!(
        no,
        format!(
            "--tree cgroup2: cgroup2: {} belongs to run-r1.scope of the systemd of uid 1000, which has no \
             Delegate=yes; start dmon with systemd-run --user --scope -p Delegate=yes",
            dir.display()
        )
    );
    let unknown = host(|_| Err(AskError::Said { unit: "run-r1.scope".into(), said: "no bus".into() }));
    let got = choose(&layout, TreeChoice::Cgroup2, None, &unknown).unwrap();
    assert!(
        got.why.ends_with(
            "is writable, cannot confirm that run-r1.scope of the systemd of uid 1000 was delegated (no delegate \
             xattr; systemctl --user show -p Delegate run-r1.scope: no bus); taking the named backend as the \
             statement that it was"
        ),
        "{}",
        got.why
    );
    let err = choose(&layout, TreeChoice::Auto, None, &unknown).unwrap();
    assert_eq!(
        err.why,
        format!(
            "cgroup2: {} belongs to run-r1.scope of the systemd of uid 1000, whose delegation cannot be confirmed \
             (no delegate xattr; systemctl --user show -p Delegate run-r1.scope: no bus); --tree cgroup2 states \
             that it is; falling back to signals",
            dir.display()
        )
    );
}
