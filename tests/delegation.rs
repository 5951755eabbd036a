//! Whose cgroup dmon may nest its own under, run as the built binary against this
//! host's cgroup2 tree (`/sys/fs/cgroup/unified`): a root dmon never nests its
//! tree under a cgroup that another user can write, neither when it is named
//! with `--cgroup-parent` nor when dmon is started inside one; an unprivileged
//! dmon in a subtree delegated to its own user keeps cgroup v2 (docs/tree.md,
//! docs/systemd.md). The cases systemd makes are in tests/systemd.rs.
//!
//! Root only (cgroups, chown, setpriv); skipped with a message otherwise.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

const UNIFIED: &str = "/sys/fs/cgroup/unified";
const NOBODY: u32 = 65534;

/// A cgroup under the v2 tree that this test made, removed when dropped (with
/// the empty cgroups below it).
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str) -> Option<Cgroup> {
        if !is_root() || !Path::new(UNIFIED).join("cgroup.procs").exists() {
            skip(&format!("needs root and cgroup2 at {UNIFIED}"));
            return None;
        }
        let dir = Path::new(UNIFIED).join(format!("dmon-test-{name}-{}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        Some(Cgroup(dir))
    }

    /// Gives the cgroup to user nobody, as a delegation does: the directory and
    /// the files that move processes (cgroup-v2.rst, "Delegation").
    fn give_to_nobody(&self) {
        std::os::unix::fs::chown(&self.0, Some(NOBODY), Some(NOBODY)).unwrap();
        for file in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
            std::os::unix::fs::chown(self.0.join(file), Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }

    fn child(&self, name: &str) -> PathBuf {
        let dir = self.0.join(name);
        fs::create_dir(&dir).unwrap();
        dir
    }

    /// The directories below it (dmon's, if it made any).
    fn below(&self) -> Vec<String> {
        let mut found = Vec::new();
        for entry in walkdir(&self.0) {
            found.push(entry.strip_prefix(&self.0).unwrap().display().to_string());
        }
        found
    }
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.push(entry.path());
            out.extend(walkdir(&entry.path()));
        }
    }
    out
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let mut dirs = walkdir(&self.0);
        dirs.reverse();
        for dir in dirs {
            let _ = fs::remove_dir(dir);
        }
        let _ = fs::remove_dir(&self.0);
    }
}

/// A test directory that user nobody may write too.
fn open_dir(name: &str) -> Dir {
    let dir = Dir::new(name);
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// A root shell moves itself into `cgroup` and becomes `prefix` (a privilege
/// drop, or nothing) running dmon with `args`, its status file in `dir`; the
/// command prints its own cgroup. (Moving a process takes write access to the
/// common ancestor's `cgroup.procs`, here the root's, so root moves it.)
fn dmon_started_in(prefix: &[&str], cgroup: &Path, dir: &Dir, args: &[&str]) -> Output {
    let join = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", cgroup.display());
    Command::new("sh")
        .args(["-c", &join, "sh"])
        .args(prefix)
        .args([DMON, "-n", "-1", "-I", &dir.s("status")])
        .args(args)
        .args(["sh", "-c", "cat /proc/self/cgroup"])
        .current_dir(&dir.0)
        .env_remove("DMON_OPTIONS")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The `tree` line of the status file.
fn tree_line(dir: &Dir) -> String {
    lines(&dir.path("status")).into_iter().find(|l| l.starts_with("tree ")).unwrap_or_default()
}

#[test]
fn a_root_dmon_refuses_a_cgroup_parent_that_another_user_can_write() {
    let Some(cg) = Cgroup::new("foreign-parent") else { return };
    cg.give_to_nobody();
    let inner = cg.child("inner");
    for (parent, extra) in [(&cg.0, None), (&cg.0, Some("cgroup2")), (&inner, None)] {
        let mut command = dmon();
        command.args(["-n", "-1", "--cgroup-parent", parent.to_str().unwrap()]);
        if let Some(tree) = extra {
            command.args(["--tree", tree]);
        }
        let out = run(command.arg("true"));
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{parent:?} {extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let said = format!("{} can be written by uid {NOBODY} (the directory)", cg.0.display());
        assert!(err.contains(&said), "{parent:?}: {err}");
    }
    assert_eq!(cg.below(), ["inner"], "dmon made cgroups under a cgroup nobody can write");
}

#[test]
fn a_root_dmon_started_in_a_cgroup_another_user_can_write_falls_back_and_says_why() {
    let Some(cg) = Cgroup::new("foreign-own") else { return };
    cg.give_to_nobody();
    let dir = open_dir("foreign-own");
    let out = dmon_started_in(&[], &cg.0, &dir, &[]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(tree_line(&dir), "tree signals", "{err}");
    assert!(err.contains(&format!("{} can be written by uid {NOBODY}", cg.0.display())), "{err}");
    assert!(err.contains("falling back to signals"), "{err}");
    // Neither a v2 nor a v1 freezer cgroup: the command ran where dmon was.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("dmon."), "{stdout}");
    assert!(cg.below().is_empty(), "{:?}", cg.below());
}

#[test]
fn an_unprivileged_dmon_in_a_subtree_delegated_to_its_user_keeps_cgroup2() {
    let Some(cg) = Cgroup::new("delegated-user") else { return };
    cg.give_to_nobody();
    let dir = open_dir("delegated-user");
    let drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];
    let out = dmon_started_in(&drop, &cg.0, &dir, &[]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    let line = tree_line(&dir);
    let home = line.strip_prefix("tree cgroup2 ").unwrap_or_else(|| panic!("{line}: {err}"));
    assert!(home.starts_with(&format!("{}/dmon.", cg.0.display())), "{line}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rel = Path::new(home).strip_prefix(UNIFIED).unwrap().display().to_string();
    assert!(stdout.lines().any(|l| l == format!("0::/{rel}/cmd")), "{stdout}");
    assert!(cg.below().is_empty(), "dmon left {:?}", cg.below());
}

#[test]
fn a_root_dmon_in_a_cgroup_only_root_can_write_keeps_cgroup2() {
    let Some(cg) = Cgroup::new("root-own") else { return };
    let dir = open_dir("root-own");
    let out = dmon_started_in(&[], &cg.0, &dir, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(tree_line(&dir).starts_with(&format!("tree cgroup2 {}/dmon.", cg.0.display())), "{}", stderr_of(&out));
}
