//! dmon under a real systemd (252, the host's own) as PID 1 of the qemu guest
//! (`guest.sh run --systemd`, pure cgroup v2): what each way of starting it
//! gives (docs/systemd.md). The guest is booted once for the whole file:
//! `in_a_systemd_guest` runs this test binary there, as the service
//! `dmon-guest.service`, and the other tests are the half that runs there.
//!
//! - `systemd-run --wait --pipe -p Delegate=yes dmon ...`: cgroup2 in the unit's cgroup;
//! - a `Delegate=yes` service with `-t` and `-L`: the whole tree, a `setsid`'d
//!   grandchild included, is frozen, thawed and killed, and nothing outlives dmon;
//! - a unit without `Delegate=`: the signal fallback, saying why;
//! - a user's `systemd-run --user --scope -p Delegate=yes dmon ...`: cgroup2,
//!   though systemd 252 puts no delegate xattr there, and the whole tree held;
//! - by hand, `DelegateSubgroup=`'s layout (systemd 254): the mark on the
//!   unit's cgroup, dmon one level below;
//! - by hand, a container without a cgroup namespace: `/run/systemd` hidden,
//!   the cgroupfs writable.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::vm;
use common::*;

/// Generous: everything in the guest runs 5–10 times slower (emulation).
const WAIT: Duration = Duration::from_secs(120);
const USER: &str = "dmonuser";

#[test]
fn in_a_systemd_guest() {
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let argv = [exe, "--test-threads=1", "--skip", "in_a_systemd_guest"];
    let out = match vm::run_systemd(&argv, &[], Duration::from_secs(900)) {
        Err(why) => return skip(&why),
        Ok(out) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("in the guest:\n{stdout}{}", stderr_of(&out));
    assert!(out.status.success(), "the in-guest tests failed");
    assert!(stdout.contains("test result: ok. 7 passed"), "not every in-guest test ran");
}

/// The in-guest half returns at once on the host.
fn on_host() -> bool {
    if vm::under_systemd() {
        return false;
    }
    eprintln!("runs in the qemu guest under systemd only (in_a_systemd_guest)");
    true
}

/// A test directory any user may write.
fn open_dir(name: &str) -> Dir {
    let dir = Dir::new(name);
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn output(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).stdin(Stdio::null()).output().unwrap()
}

/// `systemd-run --wait --pipe --quiet PROPS... -- dmon -n -1 -I STATUS ARGS...`.
fn run_in_unit(dir: &Dir, props: &[&str], args: &[&str]) -> Output {
    let status = dir.s("status");
    let mut argv = vec!["--wait", "--pipe", "--quiet"];
    argv.extend(props);
    argv.extend(["--", DMON, "-n", "-1", "-I", &status]);
    argv.extend(args);
    output("systemd-run", &argv)
}

/// The `tree` line of the status file.
fn tree_line(dir: &Dir) -> String {
    lines(&dir.path("status")).into_iter().find(|l| l.starts_with("tree ")).unwrap_or_default()
}

/// The status line `prefix...` number `nth`, waited for.
fn wait_line(dir: &Dir, prefix: &str, nth: usize) -> String {
    let mut found = None;
    let ok = wait_until(WAIT, || {
        found = lines(&dir.path("status")).iter().filter_map(|l| l.strip_prefix(prefix)).nth(nth - 1).map(String::from);
        found.is_some()
    });
    assert!(ok, "no line {nth} '{prefix}...'; status:\n{}", read(&dir.path("status")));
    found.unwrap()
}

/// Three busy processes: the leader, a child, and a `setsid`'d grandchild that
/// ignores TERM; all named by the test directory in their command line.
const TREE: &str = r#"dir=${0%/tree.sh}
( setsid sh -c 'trap "" TERM; while :; do :; done' "$dir/orphan" & )
sh -c 'while :; do :; done' "$dir/spin" &
while :; do :; done
"#;

fn members(dir: &Dir) -> Vec<i32> {
    let marks = [dir.s("tree.sh"), dir.s("orphan"), dir.s("spin")];
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        // Only the shells: dmon, and the runuser that started it, name the
        // directory too.
        let tree = marks.iter().any(|m| cmdline.contains(m.as_str())) && comm.trim() == "sh";
        if tree && state(pid).is_some_and(|s| s != 'Z') {
            found.push(pid);
        }
    }
    found
}

fn wait_members(dir: &Dir, n: usize) -> Vec<i32> {
    let mut found = Vec::new();
    let ok = wait_until(WAIT, || {
        found = members(dir);
        found.len() >= n
    });
    assert!(ok, "the tree has {} of {n} processes: {found:?}", found.len());
    found
}

fn ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn cgroup_of(pid: i32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("").to_string()
}

/// dmon's cgroup directory from the `tree cgroup2 DIR` line.
fn home(dir: &Dir) -> PathBuf {
    let line = wait_line(dir, "tree ", 1);
    let home =
        line.strip_prefix("cgroup2 ").unwrap_or_else(|| panic!("tree {line}; status:\n{}", read(&dir.path("status"))));
    PathBuf::from(home)
}

/// Pause on load, then resume, then the timeout: every member of the tree
/// stops gaining CPU time while paused and gains it again after; the timeout
/// leaves none of them, and the next run starts.
fn pause_resume_timeout(dir: &Dir, home: &Path) {
    let first = wait_members(dir, 3);
    let leaf = home.strip_prefix("/sys/fs/cgroup").unwrap().join("cmd");
    for pid in &first {
        assert_eq!(Path::new(&cgroup_of(*pid)), Path::new("/").join(&leaf), "{pid} is outside the command's leaf");
    }
    fs::write(dir.path("load"), "9\n").unwrap();
    wait_line(dir, "cmd pause ", 1);
    let events = home.join("cmd/cgroup.events");
    assert!(wait_until(WAIT, || read(&events).contains("frozen 1")), "{}", read(&events));
    let before: Vec<u64> = first.iter().map(|p| ticks(*p)).collect();
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<u64> = first.iter().map(|p| ticks(*p)).collect();
    assert_eq!(before, after, "a process of the paused tree ran: {first:?}");
    fs::write(dir.path("load"), "0.1\n").unwrap();
    wait_line(dir, "cmd resume ", 1);
    let gained = wait_until(WAIT, || first.iter().zip(&after).all(|(p, t)| ticks(*p) > *t));
    assert!(gained, "not every process of the tree runs again after resume");
    wait_line(dir, "cmd timeout ", 1);
    wait_line(dir, "cmd start ", 2);
    let gone = wait_until(WAIT, || first.iter().all(|p| !alive(*p)));
    assert!(gone, "a process of the timed-out run is alive: {:?}", members(dir));
}

#[test]
fn delegate_yes_in_systemd_run_gives_cgroup2_in_the_units_cgroup() {
    if on_host() {
        return;
    }
    let dir = open_dir("run-delegate");
    let out = run_in_unit(&dir, &["-p", "Delegate=yes"], &["sh", "-c", "cat /proc/self/cgroup"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cgroup = stdout.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("");
    assert!(
        cgroup.starts_with("/system.slice/run-") && cgroup.contains(".service/dmon.") && cgroup.ends_with("/cmd"),
        "{stdout}"
    );
    let line = tree_line(&dir);
    assert!(line.starts_with("tree cgroup2 /sys/fs/cgroup/system.slice/run-"), "{line}");
}

#[test]
fn a_delegated_service_freezes_and_kills_the_whole_tree() {
    if on_host() {
        return;
    }
    let dir = open_dir("service");
    fs::write(dir.path("tree.sh"), TREE).unwrap();
    fs::write(dir.path("load"), "0.1\n").unwrap();
    let unit = format!("dmon-test-{}.service", std::process::id());
    let load = format!("DMON_LOADAVG_FILE={}", dir.s("load"));
    let status = dir.s("status");
    // KillMode=process: systemd stops dmon only, so what is left is dmon's doing.
    let props = ["--unit", &unit, "-p", "Delegate=yes", "-p", "KillMode=process", "--setenv", &load];
    let mut argv = props.to_vec();
    argv.extend(["--", DMON, "-n", "-I", &status, "-L", "5", "-l", "1", "-t", "40", "--grace", "1"]);
    let tree = dir.s("tree.sh");
    argv.extend(["sh", &tree]);
    let out = output("systemd-run", &argv);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let home = home(&dir);
    assert!(home.starts_with(format!("/sys/fs/cgroup/system.slice/{unit}")), "{}", home.display());
    pause_resume_timeout(&dir, &home);
    let second = wait_members(&dir, 3);
    let out = output("systemctl", &["stop", &unit]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(wait_until(WAIT, || second.iter().all(|p| !alive(*p))), "survived the stop: {:?}", members(&dir));
    assert!(!home.exists(), "dmon left {}", home.display());
}

#[test]
fn a_unit_without_delegate_gets_the_fallback_and_is_told_why() {
    if on_host() {
        return;
    }
    let dir = open_dir("undelegated");
    let out = run_in_unit(&dir, &[], &["true"]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(tree_line(&dir), "tree signals", "{err}");
    assert!(err.contains("belongs to systemd and was not delegated") && err.contains("-p Delegate=yes"), "{err}");
}

#[test]
fn the_layout_of_delegate_subgroup_made_by_hand_gives_cgroup2() {
    if on_host() {
        return;
    }
    // DelegateSubgroup=supervisor (systemd 254) as Debian 12's systemd cannot:
    // the unit's cgroup is delegated and marked, its main process one level below.
    let dir = open_dir("subgroup");
    // (dash's `echo $$ >` into that cgroup.procs failed there with "I/O error";
    // the write as dmon makes it, the pid without a newline, is taken.)
    let script = format!(
        "cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup) && mkdir $cg/supervisor && \
         {PY} -c 'import os, sys; open(sys.argv[1], \"w\").write(str(os.getppid()))' $cg/supervisor/cgroup.procs && \
         exec {DMON} -n -1 -v -I {} sh -c 'cat /proc/self/cgroup'",
        dir.s("status"),
        PY = python(),
    );
    let argv = ["--wait", "--pipe", "--quiet", "-p", "Delegate=yes", "--", "sh", "-c", &script];
    let out = output("systemd-run", &argv);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.contains(".service/supervisor/dmon.") && l.ends_with("/cmd")), "{stdout}{err}");
    assert!(err.contains("delegated at /sys/fs/cgroup/system.slice/run-"), "{err}");
}

#[test]
fn a_container_without_a_cgroup_namespace_sees_the_hosts_systemd() {
    if on_host() {
        return;
    }
    // /run is the container's (no /run/systemd/system), the cgroupfs the host's
    // and writable; dmon runs in this service's cgroup, which is not delegated.
    let dir = open_dir("container");
    let inner = format!("mount -t tmpfs tmpfs /run && exec {DMON} -n -1 -I {} true", dir.s("status"));
    let out = output("unshare", &["--mount", "--propagation", "private", "sh", "-c", &inner]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(tree_line(&dir), "tree signals", "{err}");
    assert!(err.contains("belongs to systemd"), "{err}");
}

/// The guest's test user, made once (the guest's /etc is the overlay's), and
/// its systemd started: its uid.
fn user_manager() -> u32 {
    if output("id", &["-u", USER]).stdout.is_empty() {
        let out = output("useradd", &["--create-home", "--shell", "/bin/sh", USER]);
        assert!(out.status.success(), "useradd: {}", stderr_of(&out));
    }
    let uid: u32 = String::from_utf8_lossy(&output("id", &["-u", USER]).stdout).trim().parse().unwrap();
    let out = output("systemctl", &["start", &format!("user@{uid}.service")]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    uid
}

/// `runuser -u USER -- env XDG_RUNTIME_DIR=... ENV... systemd-run --user --scope PROPS -- dmon ARGS`.
fn user_scope(uid: u32, env: &[String], props: &[&str], args: &[&str]) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", USER, "--", "env", &format!("XDG_RUNTIME_DIR=/run/user/{uid}")]).args(env);
    command.args(["systemd-run", "--user", "--scope", "--quiet"]).args(props).arg("--").arg(DMON).args(args);
    command.stdin(Stdio::null());
    command
}

#[test]
fn a_users_scope_with_delegate_yes_gets_cgroup2_and_holds_the_whole_tree() {
    if on_host() {
        return;
    }
    let uid = user_manager();
    let dir = open_dir("user-scope");
    fs::write(dir.path("tree.sh"), TREE).unwrap();
    fs::write(dir.path("load"), "0.1\n").unwrap();
    fs::set_permissions(dir.path("load"), fs::Permissions::from_mode(0o666)).unwrap();
    let env = [format!("DMON_LOADAVG_FILE={}", dir.s("load"))];
    let status = dir.s("status");
    let args = ["-n", "-v", "-I", &status, "-L", "5", "-l", "1", "-t", "40", "--grace", "1", "sh", &dir.s("tree.sh")];
    let child = user_scope(uid, &env, &["-p", "Delegate=yes"], &args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.path("dmon.err")).unwrap())
        .spawn()
        .unwrap();
    let home = home(&dir);
    // runuser waits for its child, which systemd-run made dmon: dmon.PID.
    let name = home.file_name().unwrap().to_str().unwrap();
    let stopper = Stopper::new(name.trim_start_matches("dmon.").parse().unwrap());
    let manager = format!("/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/");
    assert!(home.starts_with(&manager), "{}", home.display());
    // What systemd 252 writes on the scope's cgroup: no delegate xattr (dmon
    // asked the manager instead).
    let unit = home.parent().unwrap();
    let names = xattrs(unit);
    eprintln!("xattrs of {}: {names:?}", unit.display());
    let err = read(&dir.path("dmon.err"));
    assert!(names.iter().any(|n| n.ends_with(".delegate")) || err.contains("has Delegate=yes"), "{err}");
    pause_resume_timeout(&dir, &home);
    let second = wait_members(&dir, 3);
    drop(stopper); // TERM to dmon, and waits for it
    finish(child, WAIT);
    assert!(wait_until(WAIT, || second.iter().all(|p| !alive(*p))), "survived dmon: {:?}", members(&dir));
    assert!(!home.exists(), "dmon left {}", home.display());
}

#[test]
fn a_users_scope_without_delegate_gets_the_fallback_and_is_told_why() {
    if on_host() {
        return;
    }
    let uid = user_manager();
    let dir = open_dir("user-undelegated");
    let out = user_scope(uid, &[], &[], &["-n", "-1", "-I", &dir.s("status"), "true"]).output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(tree_line(&dir), "tree signals", "{err}");
    assert!(err.contains("which has no Delegate=yes") && err.contains("-p Delegate=yes"), "{err}");
}

/// The names of the extended attributes of `path`.
fn xattrs(path: &Path) -> Vec<String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: a valid C string and a buffer of the size given.
    let n = unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf[..n as usize].split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into()).collect()
}
