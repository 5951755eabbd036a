//! Root-run dmon dropping the command and, separately, the log command to another
//! user (`-u`, `-U`, `-g`, `-G`, `--cap`, `--no-new-privs`, `-r`), checked in
//! `/proc/PID/status` of the running children: real id changes on the real kernel.
//!
//! Every expectation comes from outside dmon: ids from `getent` and `id`, the
//! bounding set from this test's own process (which dmon inherits; root here may
//! lack some capabilities, so nothing assumes a full set). The tests need root and
//! say so when they are skipped.

mod common;

use common::*;

use std::collections::HashMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

const NET_BIND_SERVICE: u64 = 1 << 10;
/// The capability sets `Expect::caps` lists, in its order.
const CAP_SETS: [&str; 4] = ["CapPrm", "CapEff", "CapInh", "CapAmb"];

/// Only one test at a time binds port 80.
static PORT_80: Mutex<()> = Mutex::new(());

/// Returns from the test with a printed reason unless it runs as root.
macro_rules! need_root {
    () => {
        if !is_root() {
            return common::skip("this test changes users and needs root");
        }
    };
}

/// One dmon in the foreground with a status file; stopped with SIGTERM.
struct Run {
    dmon: Child,
    status: PathBuf,
    pids: Vec<i32>,
    _stopper: Stopper,
}

impl Run {
    fn start(dir: &Dir, args: &[String]) -> Run {
        let status = dir.path("status");
        let dmon = dmon()
            .args(["-n", "--grace", "2", "-I", status.to_str().unwrap(), "-W", dir.0.to_str().unwrap()])
            .args(args)
            .spawn()
            .expect("dmon starts");
        Run { _stopper: Stopper::of(&dmon), dmon, status, pids: Vec::new() }
    }

    /// The pid of the running `cmd` or `log` from its `start` status line, written
    /// once the exec has succeeded.
    fn pid(&mut self, who: &str) -> i32 {
        let prefix = format!("{who} start ");
        let mut found = None;
        let status = self.status.clone();
        let seen = wait_until(Duration::from_secs(10), || {
            found = fs::read_to_string(&status)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(&prefix).and_then(|p| p.parse::<i32>().ok()));
            found.is_some()
        });
        if !seen {
            let _ = self.dmon.kill();
            let output = std::mem::replace(&mut self.dmon, Command::new("true").spawn().unwrap());
            let output = output.wait_with_output().unwrap();
            panic!("no '{who} start' line; dmon said: {}", String::from_utf8_lossy(&output.stderr));
        }
        let pid = found.unwrap();
        self.pids.push(pid);
        pid
    }

    /// Stops dmon with SIGTERM: it exits 0 and leaves no child behind.
    fn stop(mut self) {
        // SAFETY: kill with a pid of our own child.
        unsafe { libc::kill(self.dmon.id() as i32, libc::SIGTERM) };
        let mut code = None;
        let exited = wait_until(Duration::from_secs(15), || {
            code = self.dmon.try_wait().unwrap();
            code.is_some()
        });
        assert!(exited, "dmon did not stop after SIGTERM");
        assert_eq!(code.unwrap().code(), Some(0), "dmon's exit status after SIGTERM");
        for pid in &self.pids {
            assert!(!alive(*pid), "pid {pid} outlived dmon");
        }
    }
}

/// The fields of `/proc/PID/status`.
struct ProcStatus(HashMap<String, String>);

impl ProcStatus {
    fn of(pid: &str) -> ProcStatus {
        let text = fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is running");
        ProcStatus(
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    fn numbers(&self, key: &str) -> Vec<u32> {
        let mut numbers: Vec<u32> = self.0[key].split_whitespace().map(|n| n.parse().unwrap()).collect();
        if key == "Groups" {
            numbers.sort_unstable();
        }
        numbers
    }

    fn caps(&self, key: &str) -> u64 {
        u64::from_str_radix(&self.0[key], 16).unwrap()
    }
}

/// What `/proc/PID/status` of a child must show.
#[derive(Debug, Clone)]
struct Expect {
    uid: u32,
    gid: u32,
    /// Exactly these supplementary groups, in any order.
    groups: Vec<u32>,
    /// CapPrm, CapEff, CapInh and CapAmb.
    caps: [u64; 4],
    bounding: u64,
    no_new_privs: bool,
}

impl Expect {
    /// A drop to `user` (a name from the passwd database), no capabilities left.
    fn user(user: &str, gid: u32, groups: Vec<u32>) -> Expect {
        let uid = getent("passwd", user)[2].parse().unwrap();
        Expect { uid, gid, groups, caps: [0; 4], bounding: own_caps("CapBnd"), no_new_privs: false }
    }

    /// The same, keeping the capabilities of `mask` in every set (`--cap`, which
    /// sets no_new_privs too).
    fn keeping(self, mask: u64) -> Expect {
        Expect { caps: [mask; 4], bounding: mask, no_new_privs: true, ..self }
    }

    /// dmon's own ids and capabilities, as the tests run it: a command that keeps
    /// them is executed the way this test was.
    fn unchanged() -> Expect {
        let own = ProcStatus::of("self");
        Expect {
            uid: own.numbers("Uid")[0],
            gid: own.numbers("Gid")[0],
            groups: own.numbers("Groups"),
            caps: CAP_SETS.map(|key| own.caps(key)),
            bounding: own.caps("CapBnd"),
            no_new_privs: false,
        }
    }

    fn check(&self, pid: i32, context: &str) {
        let status = ProcStatus::of(&pid.to_string());
        let context = format!("{context} (pid {pid})");
        assert_eq!(status.numbers("Uid"), [self.uid; 4], "{context}: Uid (real, effective, saved, fs)");
        assert_eq!(status.numbers("Gid"), [self.gid; 4], "{context}: Gid (real, effective, saved, fs)");
        let mut groups = self.groups.clone();
        groups.sort_unstable();
        assert_eq!(status.numbers("Groups"), groups, "{context}: Groups");
        if self.uid != 0 && !self.groups.contains(&0) {
            assert!(!status.numbers("Groups").contains(&0), "{context}: root's group was kept");
        }
        for (key, expected) in CAP_SETS.into_iter().zip(self.caps) {
            assert_eq!(status.caps(key), expected, "{context}: {key} is {:#x}", status.caps(key));
        }
        assert_eq!(status.caps("CapBnd"), self.bounding, "{context}: CapBnd is {:#x}", status.caps("CapBnd"));
        assert_eq!(status.0["NoNewPrivs"], if self.no_new_privs { "1" } else { "0" }, "{context}: NoNewPrivs");
    }
}

fn own_caps(key: &str) -> u64 {
    ProcStatus::of("self").caps(key)
}

/// One entry of a database through getent, split at the colons.
fn getent(database: &str, key: &str) -> Vec<String> {
    let output = Command::new("getent").args([database, key]).output().expect("getent runs");
    assert!(output.status.success(), "getent {database} {key}: not found (the test needs it)");
    String::from_utf8(output.stdout).unwrap().trim().split(':').map(str::to_string).collect()
}

fn gid_of(group: &str) -> u32 {
    getent("group", group)[2].parse().unwrap()
}

/// The groups the system gives `user` (`id -G`).
fn id_groups(user: &str) -> Vec<u32> {
    let output = Command::new("id").args(["-G", user]).output().expect("id runs");
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect()
}

fn environ(pid: i32) -> HashMap<String, String> {
    let bytes = fs::read(format!("/proc/{pid}/environ")).unwrap();
    bytes
        .split(|b| *b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok()?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Which of dmon's two children a scenario drops.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Cmd,
    Log,
}

const BOTH: [Who; 2] = [Who::Cmd, Who::Log];

impl Who {
    fn name(self) -> &'static str {
        if self == Who::Cmd { "cmd" } else { "log" }
    }

    /// `-u SPEC [-g GROUP]` or `-U SPEC [-G GROUP]`.
    fn user(self, spec: &str, group: Option<&str>) -> Vec<String> {
        let (u, g) = if self == Who::Cmd { ("-u", "-g") } else { ("-U", "-G") };
        let mut args = vec![u.to_string(), spec.to_string()];
        if let Some(group) = group {
            args.extend([g.to_string(), group.to_string()]);
        }
        args
    }

    /// dmon's arguments with `program` as this child; the other one sleeps.
    fn args(self, options: Vec<String>, program: &[&str]) -> Vec<String> {
        let mut args = options;
        let program = program.iter().map(|s| s.to_string());
        match self {
            Who::Cmd => args.extend(program),
            Who::Log => {
                args.extend(["sleep", "60", "--"].map(str::to_string));
                args.extend(program);
            }
        }
        args
    }
}

/// Runs `sleep 60` as `who` with `options`, checks it against `expect`, checks
/// that the other child kept dmon's ids (`--no-new-privs` applies to both), and
/// stops dmon. Returns the child's environment.
fn scenario(who: Who, options: Vec<String>, expect: &Expect) -> HashMap<String, String> {
    let dir = shared_dir(who.name());
    let context = format!("{} with {options:?}", who.name());
    let other = Expect { no_new_privs: options.iter().any(|o| o == "--no-new-privs"), ..Expect::unchanged() };
    let mut run = Run::start(&dir, &who.args(options, &["sleep", "60"]));
    let pid = run.pid(who.name());
    expect.check(pid, &context);
    let env = environ(pid);
    if who == Who::Log {
        let cmd = run.pid("cmd");
        other.check(cmd, &format!("the command beside {context}"));
    }
    run.stop();
    env
}

#[test]
fn drops_to_nobody_with_its_own_groups_and_environment() {
    need_root!();
    let nobody = getent("passwd", "nobody");
    let expect = Expect::user("nobody", nobody[3].parse().unwrap(), id_groups("nobody"));
    for who in BOTH {
        let env = scenario(who, who.user("nobody", None), &expect);
        assert_eq!(env.get("USER").map(String::as_str), Some("nobody"), "{who:?}");
        assert_eq!(env.get("LOGNAME").map(String::as_str), Some("nobody"), "{who:?}");
        assert_eq!(env.get("HOME"), Some(&nobody[5]), "{who:?}");
    }
}

#[test]
fn listed_groups_are_exactly_the_groups_and_the_first_is_primary() {
    need_root!();
    let (nogroup, users) = (gid_of("nogroup"), gid_of("users"));
    for who in BOTH {
        scenario(who, who.user("nobody:nogroup:users", None), &Expect::user("nobody", nogroup, vec![nogroup, users]));
        scenario(who, who.user("nobody:users:nogroup", None), &Expect::user("nobody", users, vec![users, nogroup]));
        // With -g, the primary group is -g's and the list stays exactly as given.
        scenario(who, who.user("nobody:nogroup", Some("users")), &Expect::user("nobody", users, vec![nogroup]));
    }
}

#[test]
fn the_2010_group_option_sets_the_primary_group() {
    need_root!();
    let (nogroup, users) = (gid_of("nogroup"), gid_of("users"));
    let nobody = std::ffi::CString::new("nobody").unwrap();
    let groups_with = |gid: u32| -> Vec<u32> {
        nix::unistd::getgrouplist(&nobody, nix::unistd::Gid::from_raw(gid))
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect()
    };
    for who in BOTH {
        scenario(who, who.user("nobody", Some("nogroup")), &Expect::user("nobody", nogroup, groups_with(nogroup)));
        scenario(who, who.user("nobody", Some("users")), &Expect::user("nobody", users, groups_with(users)));
    }
}

#[test]
fn numeric_ids_need_no_passwd_entry() {
    need_root!();
    let missing = Command::new("getent").args(["passwd", "4321"]).output().unwrap();
    assert!(!missing.status.success(), "uid 4321 has a passwd entry here; the test needs one without");
    let expect = Expect {
        uid: 4321,
        gid: 4321,
        groups: vec![4321],
        caps: [0; 4],
        bounding: own_caps("CapBnd"),
        no_new_privs: false,
    };
    for who in BOTH {
        let env = scenario(who, who.user("4321:4321", None), &expect);
        assert_eq!(env.get("USER").map(String::as_str), Some("4321"), "{who:?}");
        assert_eq!(env.get("HOME").map(String::as_str), Some("/"), "{who:?}: never root's home");
    }
}

#[test]
fn environ_option_overrides_the_users_environment() {
    need_root!();
    for who in BOTH {
        let nobody = getent("passwd", "nobody");
        let mut options = who.user("nobody", None);
        options.extend(["-E", "HOME=/srv/elsewhere", "-E", "LOGNAME"].map(str::to_string));
        let env = scenario(who, options, &Expect::user("nobody", nobody[3].parse().unwrap(), id_groups("nobody")));
        assert_eq!(env.get("HOME").map(String::as_str), Some("/srv/elsewhere"), "{who:?}");
        assert_eq!(env.get("LOGNAME"), None, "{who:?}: -E LOGNAME removes it");
        assert_eq!(env.get("USER").map(String::as_str), Some("nobody"), "{who:?}");
    }
}

/// A Python probe run as the dropped child: tries to bind 127.0.0.1:80 and to get
/// root back, writes what happened to `result`, then sleeps to be inspected.
const PROBE: &str = r#"
import errno, os, socket, sys, time
lines = []
def attempt(name, action):
    try:
        action()
        lines.append(name + " ok")
    except OSError as e:
        lines.append(name + " " + errno.errorcode[e.errno])
def bind():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 80))
    s.close()
attempt("bind", bind)
attempt("setuid", lambda: os.setuid(0))
attempt("setresuid", lambda: os.setresuid(0, 0, 0))
attempt("setgid", lambda: os.setgid(0))
attempt("setgroups", lambda: os.setgroups([0]))
lines.append("uid %d %d" % (os.getuid(), os.geteuid()))
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")
os.rename(tmp, sys.argv[1])
time.sleep(60)
"#;

/// Runs the probe as `who` with `options`; returns its results and checks the
/// child's status against `expect`.
fn probe(who: Who, options: Vec<String>, expect: &Expect) -> Vec<String> {
    let dir = shared_dir("probe");
    fs::write(dir.path("probe.py"), PROBE).unwrap();
    let result = dir.s("result");
    let context = format!("{} with {options:?}", who.name());
    let mut run = Run::start(&dir, &who.args(options, &[common::python(), &dir.s("probe.py"), &result]));
    let pid = run.pid(who.name());
    assert!(wait_until(Duration::from_secs(10), || Path::new(&result).exists()), "{context}: the probe wrote nothing");
    expect.check(pid, &context);
    let lines = fs::read_to_string(&result).unwrap().lines().map(str::to_string).collect();
    run.stop();
    lines
}

fn port_80_is_privileged() -> bool {
    let start = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap_or_default();
    start.trim().parse::<u32>().is_ok_and(|s| s > 80)
}

#[test]
fn a_kept_capability_lets_nobody_bind_port_80_and_nothing_more() {
    need_root!();
    let _port = PORT_80.lock().unwrap_or_else(|e| e.into_inner());
    let nogroup = gid_of("nogroup");
    let kept = Expect::user("nobody", nogroup, id_groups("nobody")).keeping(NET_BIND_SERVICE);
    // Capability names as in capabilities(7), with or without CAP_, in any case.
    for (who, name) in [(Who::Cmd, "NET_BIND_SERVICE"), (Who::Log, "cap_net_bind_service")] {
        let mut options = who.user("nobody", None);
        options.extend(["--cap".to_string(), name.to_string()]);
        let lines = probe(who, options, &kept);
        assert_eq!(
            lines,
            ["bind ok", "setuid EPERM", "setresuid EPERM", "setgid EPERM", "setgroups EPERM", "uid 65534 65534"]
                .map(|l| l.replace("65534", &kept.uid.to_string())),
            "{who:?} --cap {name}"
        );
    }
}

#[test]
fn a_dropped_child_cannot_bind_port_80_or_regain_root() {
    need_root!();
    let _port = PORT_80.lock().unwrap_or_else(|e| e.into_inner());
    let expect = Expect::user("nobody", gid_of("nogroup"), id_groups("nobody"));
    let bind = if port_80_is_privileged() {
        "bind EACCES"
    } else {
        eprintln!("note: ip_unprivileged_port_start <= 80 here, so anyone may bind port 80");
        "bind ok"
    };
    for who in BOTH {
        let lines = probe(who, who.user("nobody", None), &expect);
        let uid = format!("uid {0} {0}", expect.uid);
        assert_eq!(
            lines,
            [bind, "setuid EPERM", "setresuid EPERM", "setgid EPERM", "setgroups EPERM", &uid],
            "{who:?}"
        );
    }
}

#[test]
fn kept_capabilities_also_narrow_a_command_that_stays_root() {
    need_root!();
    // --cap applies to both commands: the one that keeps root ids keeps only the
    // listed capabilities too.
    let dir = shared_dir("root-cap");
    let mut options = Who::Log.user("nobody", None);
    options.extend(["--cap", "NET_BIND_SERVICE"].map(str::to_string));
    let mut run = Run::start(&dir, &Who::Log.args(options, &["sleep", "60"]));
    let cmd = run.pid("cmd");
    Expect::unchanged().keeping(NET_BIND_SERVICE).check(cmd, "root command with --cap");
    run.stop();
}

#[test]
fn no_new_privs_for_both_commands_with_or_without_a_user() {
    need_root!();
    let dir = shared_dir("nnp-root");
    let mut run = Run::start(&dir, &Who::Log.args(vec!["--no-new-privs".into()], &["sleep", "60"]));
    let (cmd, log) = (run.pid("cmd"), run.pid("log"));
    let expect = Expect { no_new_privs: true, ..Expect::unchanged() };
    expect.check(cmd, "cmd with --no-new-privs and no -u");
    expect.check(log, "log with --no-new-privs and no -U");
    run.stop();

    let nobody = Expect { no_new_privs: true, ..Expect::user("nobody", gid_of("nogroup"), id_groups("nobody")) };
    for who in BOTH {
        let mut options = who.user("nobody", None);
        options.push("--no-new-privs".into());
        scenario(who, options, &nobody);
    }
}

#[test]
fn limits_reach_both_dropped_commands() {
    need_root!();
    let expect = Expect::user("nobody", gid_of("nogroup"), id_groups("nobody"));
    for who in BOTH {
        let dir = shared_dir("limits");
        let seen = dir.s("seen");
        let script = format!("ulimit -Sn > {seen}.tmp; ulimit -Hn >> {seen}.tmp; mv {seen}.tmp {seen}; exec sleep 60");
        let mut options = who.user("nobody", None);
        options.extend(["-r", "files=64"].map(str::to_string));
        let mut run = Run::start(&dir, &who.args(options, &["sh", "-c", &script]));
        let pid = run.pid(who.name());
        assert!(wait_until(Duration::from_secs(10), || Path::new(&seen).exists()), "{who:?}: no limits seen");
        assert_eq!(fs::read_to_string(&seen).unwrap(), "64\n64\n", "{who:?}: soft and hard limit the child sees");
        let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
        assert_eq!(files.split_whitespace().collect::<Vec<_>>()[3..5], ["64", "64"], "{who:?}: {files}");
        expect.check(pid, &format!("{who:?} with -r files=64"));
        run.stop();
    }
}

#[path = "privileges/refusals.rs"]
mod refusals;

#[test]
fn a_dropped_child_inherits_no_capability_from_dmon() {
    need_root!();
    // dmon itself starts with NET_BIND_SERVICE inheritable and ambient, as it
    // might under a service manager; a command that keeps root's ids keeps them,
    // a dropped one keeps nothing.
    let dir = shared_dir("inherited");
    let status = dir.s("status");
    let mut args = vec!["--inh-caps", "+net_bind_service", "--ambient-caps", "+net_bind_service", DMON];
    args.extend(["-n", "--grace", "2", "-I", &status, "-u", "nobody", "sleep", "60", "--", "sleep", "60"]);
    let dmon = Command::new("setpriv").args(&args).stdin(Stdio::null()).spawn().expect("setpriv runs");
    let mut run = Run { _stopper: Stopper::of(&dmon), dmon, status: status.into(), pids: Vec::new() };
    let (cmd, log) = (run.pid("cmd"), run.pid("log"));
    Expect::user("nobody", gid_of("nogroup"), id_groups("nobody")).check(cmd, "dropped command");
    let root = Expect::unchanged();
    let inherited = Expect { caps: [root.caps[0], root.caps[1], NET_BIND_SERVICE, NET_BIND_SERVICE], ..root };
    inherited.check(log, "log command that stays root");
    run.stop();
}

#[test]
fn dropped_commands_land_in_their_cgroup_with_every_backend() {
    need_root!();
    // The tree is joined before the change of ids, so a dropped command is in its
    // cgroup all the same.
    let expect = Expect::user("nobody", gid_of("nogroup"), id_groups("nobody"));
    for backend in ["cgroup2", "freezer", "signals"] {
        let dir = shared_dir(backend);
        let mut options = vec!["--tree".to_string(), backend.to_string()];
        options.extend(Who::Cmd.user("nobody", None));
        options.extend(Who::Log.user("nobody", None));
        let mut run = Run::start(&dir, &Who::Log.args(options, &["sleep", "60"]));
        let started = || fs::read_to_string(dir.path("status")).unwrap_or_default().contains("cmd start");
        wait_until(Duration::from_secs(10), || started() || !matches!(run.dmon.try_wait(), Ok(None)));
        if let Some(code) = run.dmon.try_wait().unwrap() {
            assert_ne!(backend, "signals", "the signals backend is always there");
            eprintln!("note: --tree {backend} is not available here (dmon exited with {code})");
            continue;
        }
        let path = fs::read_to_string(dir.path("status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("tree {backend}")).map(|p| p.trim().to_string()))
            .unwrap_or_else(|| panic!("no 'tree {backend}' status line"));
        for who in BOTH {
            let pid = run.pid(who.name());
            expect.check(pid, &format!("{who:?} with --tree {backend}"));
            if backend != "signals" {
                let procs = fs::read_to_string(Path::new(&path).join(who.name()).join("cgroup.procs")).unwrap();
                assert!(procs.lines().any(|l| l == pid.to_string()), "{who:?} {pid} is not in {path}: {procs}");
            }
        }
        run.stop();
    }
}
