//! What a command starts with: no uid 0 from a set-user-ID root program once
//! `--cap` is given (`--allow-new-privs` brings it back), `/` as a daemon's
//! working directory, a umask of 022 for a dropped command (`--umask`), a clean
//! environment on request (`--clean-env`), and a start that stays quick with a
//! huge environment or as many `-E`. Each is checked from outside: real
//! set-user-ID files, real uid drops, what the command prints or leaves behind.

mod common;

use common::*;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Returns from the test with a printed reason unless it runs as root.
macro_rules! need_root {
    () => {
        if !is_root() {
            return common::skip("this test changes users and needs root");
        }
    };
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `dmon -n -m 0 ARGS`, waited for: the command runs once, its standard output
/// is dmon's.
fn once(args: &[&str]) -> Output {
    let output = run(dmon().args(["-n", "-m", "0"]).args(args));
    assert!(output.status.success(), "dmon {args:?}: {output:?}");
    output
}

/// Whether set-user-ID bits take effect on the file system holding `path`.
fn suid_allowed(path: &Path) -> bool {
    let out = Command::new("findmnt").args(["-n", "-o", "OPTIONS", "-T"]).arg(path).output();
    out.is_ok_and(|o| {
        o.status.success() && !String::from_utf8_lossy(&o.stdout).split(',').any(|o| o.trim() == "nosuid")
    })
}

/// A copy of id(1) owned by root with the set-user-ID bit, in a directory on a
/// file system that honours the bit (the temporary directory, else the build
/// tree). Run by nobody, it prints `euid=0(root)` exactly when the bit gave it
/// uid 0.
struct SetuidId {
    dir: PathBuf,
    program: PathBuf,
}

impl SetuidId {
    fn make() -> Option<SetuidId> {
        let name = format!("dmon-test-{}-setuid", std::process::id());
        let roots = [std::env::temp_dir(), PathBuf::from(env!("CARGO_TARGET_TMPDIR"))];
        let root = roots.into_iter().find(|root| suid_allowed(root))?;
        let dir = root.join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let program = dir.join("id");
        fs::copy("/usr/bin/id", &program).unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o4755)).unwrap();
        Some(SetuidId { dir, program })
    }

    /// What the copy prints when dmon runs it as nobody with `options`.
    fn run_as_nobody(&self, options: &[&str]) -> String {
        let mut args = vec!["-u", "nobody"];
        args.extend(options);
        args.push(self.program.to_str().unwrap());
        stdout_of(&once(&args))
    }
}

impl Drop for SetuidId {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn kept_capabilities_leave_a_setuid_root_program_without_uid_0() {
    need_root!();
    let Some(id) = SetuidId::make() else {
        return common::skip("no file system here honours set-user-ID bits (all nosuid)");
    };
    // The copy works: without --cap it is root's, as a set-user-ID program is.
    let plain = id.run_as_nobody(&[]);
    assert!(plain.contains("uid=65534") && plain.contains("euid=0(root)"), "without --cap: {plain}");
    // --cap narrows the bounding set, which keeps capabilities away, not uid 0:
    // only no_new_privs, which --cap now sets, keeps the bit from taking effect.
    let capped = id.run_as_nobody(&["--cap", "NET_BIND_SERVICE"]);
    assert!(capped.contains("uid=65534") && !capped.contains("euid="), "with --cap: {capped}");
    let allowed = id.run_as_nobody(&["--cap", "NET_BIND_SERVICE", "--allow-new-privs"]);
    assert!(allowed.contains("uid=65534") && allowed.contains("euid=0(root)"), "with --allow-new-privs: {allowed}");
}

#[test]
fn allow_new_privs_needs_cap_and_contradicts_no_new_privs() {
    let cases: [(&[&str], &str); 2] = [
        (&["--allow-new-privs", "true"], "dmon: --allow-new-privs needs --cap"),
        (
            &["--cap", "KILL", "--allow-new-privs", "--no-new-privs", "true"],
            "dmon: --allow-new-privs cannot be used with --no-new-privs",
        ),
    ];
    for (args, expected) in cases {
        let output = run(dmon().arg("-n").args(args));
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with(expected) && stderr.lines().count() == 1, "{args:?}: {stderr}");
    }
}

/// dmon started with umask 077, as from a careful root shell.
fn with_umask_077(args: &[&str]) -> Output {
    let mut command = dmon();
    command.args(["-n", "-m", "0"]).args(args);
    // SAFETY: umask is async-signal-safe and touches no memory.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        })
    };
    let output = run(&mut command);
    assert!(output.status.success(), "dmon {args:?}: {output:?}");
    output
}

#[test]
fn a_dropped_command_gets_umask_022_unless_told() {
    need_root!();
    let umask = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["sh", "-c", "umask"]);
        stdout_of(&with_umask_077(&all)).trim().to_string()
    };
    assert_eq!(umask(&["-u", "nobody"]), "0022", "a command with a user of its own");
    assert_eq!(umask(&["-u", "nobody", "--umask", "027"]), "0027");
    assert_eq!(umask(&[]), "0077", "without -u: dmon's own");
    assert_eq!(umask(&["--umask", "0"]), "0000", "--umask applies without -u too");

    // The log command under -U: it writes its umask, the command waits for it.
    for (options, expected) in [(&[][..], "0022"), (&["--umask", "007"][..], "0007")] {
        let dir = shared_dir("log-umask");
        let file = dir.s("umask");
        let wait = format!("for i in $(seq 200); do [ -s {file} ] && exit 0; sleep 0.05; done; exit 1");
        let log = format!("umask > {file}.tmp && mv {file}.tmp {file}; exec cat");
        let mut args = vec!["-U", "nobody"];
        args.extend(options);
        args.extend(["sh", "-c", &wait, "--", "sh", "-c", &log]);
        with_umask_077(&args);
        assert_eq!(read(Path::new(&file)).trim(), expected, "log command with {options:?}");
    }
}

#[test]
fn bad_umasks_are_one_line_errors() {
    for (mode, why) in [("8", "is not an octal mode"), ("u=rwx", "is not an octal mode"), ("1022", "is above 0777")] {
        let output = run(dmon().args(["-n", "--umask", mode, "true"]));
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "--umask {mode}: {stderr}");
        let expected = format!("dmon: --umask: '{mode}' {why}");
        assert!(stderr.starts_with(&expected) && stderr.lines().count() == 1, "--umask {mode}: {stderr}");
    }
}

/// The variables a program started by `dmon ARGS` printed with env(1), dmon
/// started with exactly `env` (and the suite's tree choice).
fn environment_seen(env: &[(&str, &str)], args: &[&str]) -> HashMap<String, String> {
    let mut command = Command::new(DMON);
    command.env_clear().envs(env.iter().copied()).stdin(Stdio::null());
    if let Ok(tree) = std::env::var("DMON_TEST_TREE") {
        command.env("DMON_OPTIONS", format!("--tree {tree}"));
    }
    let output = run(command.args(["-n", "-m", "0"]).args(args));
    assert!(output.status.success(), "dmon {args:?}: {output:?}");
    stdout_of(&output)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| k != "DMON_OPTIONS")
        .collect()
}

const CLEAN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A root shell's environment, with a PATH that a service should not inherit.
const CALLER: [(&str, &str); 11] = [
    ("PATH", "/root/bin:.:/usr/bin:/bin"),
    ("HOME", "/root"),
    ("USER", "root"),
    ("LOGNAME", "root"),
    ("SHELL", "/bin/bash"),
    ("TERM", "xterm-256color"),
    ("LANG", "C.UTF-8"),
    ("LC_TIME", "C"),
    ("TZ", "UTC"),
    ("SSH_AUTH_SOCK", "/tmp/ssh-agent"),
    ("LD_PRELOAD", ""),
];

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_environment_passes_through_by_default() {
    let seen = environment_seen(&CALLER, &["-E", "EXTRA=1", "env"]);
    let mut expected = map(&CALLER);
    expected.insert("EXTRA".into(), "1".into());
    assert_eq!(seen, expected);
}

#[test]
fn clean_env_keeps_the_terminal_locale_zone_and_user_and_resets_path() {
    let seen = environment_seen(&CALLER, &["--clean-env", "-E", "EXTRA=1", "-E", "LANG", "env"]);
    let expected = map(&[
        ("PATH", CLEAN_PATH),
        ("HOME", "/root"),
        ("USER", "root"),
        ("LOGNAME", "root"),
        ("TERM", "xterm-256color"),
        ("LC_TIME", "C"),
        ("TZ", "UTC"),
        ("EXTRA", "1"),
    ]);
    assert_eq!(seen, expected, "without -u: dmon's own user's names");
    let seen = environment_seen(&CALLER, &["--clean-env", "-E", "PATH=/opt/bin:/usr/bin", "env"]);
    assert_eq!(seen.get("PATH").map(String::as_str), Some("/opt/bin:/usr/bin"), "-E wins over the default PATH");
}

#[test]
fn clean_env_gives_a_dropped_command_and_log_command_their_users_names() {
    need_root!();
    let home = {
        let out = Command::new("getent").args(["passwd", "nobody"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().split(':').nth(5).unwrap().to_string()
    };
    let expected = map(&[
        ("PATH", CLEAN_PATH),
        ("HOME", &home),
        ("USER", "nobody"),
        ("LOGNAME", "nobody"),
        ("TERM", "xterm-256color"),
        ("LANG", "C.UTF-8"),
        ("LC_TIME", "C"),
        ("TZ", "UTC"),
    ]);
    assert_eq!(environment_seen(&CALLER, &["--clean-env", "-u", "nobody", "env"]), expected, "the command");
    // The log command prints to dmon's standard output too, restarted while the
    // command sleeps; every copy is the same.
    let seen = environment_seen(&CALLER, &["--clean-env", "-U", "nobody", "sleep", "0.5", "--", "env"]);
    assert_eq!(seen, expected, "the log command");
}

/// Reads a file until it has a line, within `limit`.
fn wait_for_line(path: &Path, prefix: &str, limit: Duration) -> bool {
    wait_until(limit, || read(path).lines().any(|l| l.starts_with(prefix)))
}

/// Scripts `cmd.sh` and `log.sh` in `at` that write `/bin/pwd -P` to
/// `cmd-pwd` and `log-pwd` in `dir`, then go on running.
fn pwd_scripts(at: &Path, dir: &Dir) -> (String, String) {
    for who in ["cmd", "log"] {
        let keep = if who == "cmd" { "exec sleep 100" } else { "exec cat" };
        let out = dir.s(&format!("{who}-pwd"));
        let script = format!("#!/bin/sh\n/bin/pwd -P > {out}.tmp && mv {out}.tmp {out}\n{keep}\n");
        let path = at.join(format!("{who}.sh"));
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    (dir.s("cmd-pwd"), dir.s("log-pwd"))
}

/// A daemon started in `dir` with relative paths everywhere: its pid file and
/// status file, its command and its log command (`./cmd.sh`, `./log.sh`, made in
/// `scripts`). Returns what the commands saw as their directory; checks that the
/// pid file goes on the stop.
fn daemon_in(dir: &Dir, scripts: &Path, options: &[&str]) -> (String, String) {
    let (cmd_pwd, log_pwd) = pwd_scripts(scripts, dir);
    let status = dmon()
        .current_dir(&dir.0)
        .args(["-p", "dmon.pid", "-I", "status"])
        .args(options)
        .args(["./cmd.sh", "--", "./log.sh"])
        .status()
        .unwrap();
    assert!(status.success(), "the daemon came up");
    let pid: i32 = read(&dir.path("dmon.pid")).trim().parse().expect("the pid file has the daemon's pid");
    let stopper = Stopper::new(pid);
    let seen = |file: &str| {
        assert!(wait_until(Duration::from_secs(10), || !read(Path::new(file)).is_empty()), "{file} written");
        read(Path::new(file)).trim().to_string()
    };
    let seen = (seen(&cmd_pwd), seen(&log_pwd));
    assert!(wait_for_line(&dir.path("status"), "cmd start", Duration::from_secs(10)), "the status file is in DIR");
    signal(pid, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(20), || !alive(pid)), "the daemon stops on TERM");
    drop(stopper);
    assert!(!dir.path("dmon.pid").exists(), "the pid file, named relative to DIR, is removed");
    seen
}

#[test]
fn a_daemon_runs_its_commands_in_the_root_directory() {
    let dir = shared_dir("daemon-root");
    assert_eq!(daemon_in(&dir, &dir.0, &[]), ("/".to_string(), "/".to_string()));

    // -W still chooses, relative to where dmon started; relative programs then
    // are relative to it, as before.
    let dir = shared_dir("daemon-w");
    let sub = dir.path("sub");
    fs::create_dir(&sub).unwrap();
    let (cmd, log) = daemon_in(&dir, &sub, &["-W", "sub"]);
    let sub = fs::canonicalize(&sub).unwrap().to_str().unwrap().to_string();
    assert_eq!((cmd, log), (sub.clone(), sub));
}

#[test]
fn in_the_foreground_the_commands_keep_dmons_directory() {
    let dir = Dir::new("foreground-dir");
    let output = run(dmon().current_dir(&dir.0).args(["-n", "-m", "0", "/bin/pwd", "-P"]));
    let expected = fs::canonicalize(&dir.0).unwrap();
    assert_eq!(stdout_of(&output).trim(), expected.to_str().unwrap());
}

/// A stack limit that lets execve take an environment of megabytes: the
/// kernel allows a quarter of it for arguments and environment together.
fn big_stack(command: &mut Command) {
    // SAFETY: setrlimit is async-signal-safe and reads a local struct.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 256 << 20, rlim_max: 256 << 20 };
            libc::setrlimit(libc::RLIMIT_STACK, &limit);
            Ok(())
        })
    };
}

/// Starts `command` (dmon in the foreground with a status file in `dir`),
/// waits at most `limit` for the command's start, checks what it got, then sends
/// TERM: dmon must end within a few seconds with status 0.
fn starts_and_stops(mut command: Command, dir: &Dir, limit: Duration, check: impl FnOnce(i32)) {
    let started = Instant::now();
    let child = command.spawn().unwrap();
    let _stopper = Stopper::of(&child);
    let status = dir.path("status");
    assert!(
        wait_for_line(&status, "cmd start", limit),
        "the command did not start within {limit:?} ({:?} so far)",
        started.elapsed()
    );
    let took = started.elapsed();
    let pid = started_pid(&status);
    check(pid);
    signal(child.id() as i32, libc::SIGTERM);
    let exit = finish(child, Duration::from_secs(20));
    assert_eq!(exit.code(), Some(0), "dmon after TERM");
    eprintln!("started in {took:?}");
}

fn started_pid(status: &Path) -> i32 {
    *started(status, "cmd").first().expect("a cmd start line")
}

/// The number of variables of a running process.
fn environ_count(pid: i32) -> usize {
    fs::read(format!("/proc/{pid}/environ")).unwrap().split(|b| *b == 0).filter(|e| !e.is_empty()).count()
}

#[test]
fn two_hundred_thousand_variables_start_at_once_and_term_ends_dmon() {
    let dir = Dir::new("big-environ");
    let mut command = dmon();
    command.args(["-n", "-I", &dir.s("status"), "sleep", "1000"]);
    command.envs((0..200_000).map(|i| (format!("V{i}"), "x")));
    big_stack(&mut command);
    starts_and_stops(command, &dir, Duration::from_secs(60), |pid| {
        assert!(environ_count(pid) >= 200_000, "the command got every variable");
    });
}

#[test]
fn two_hundred_thousand_environ_options_start_at_once_and_term_ends_dmon() {
    // Each -E once searched the whole environment built so far: 20 000 of them
    // took 2 s in a release build before the command started, 40 000 took 15 s,
    // and TERM waited for the start. Now 200 000 take 9 s in a debug build.
    let dir = Dir::new("many-e");
    let mut command = dmon();
    command.args(["-n", "-I", &dir.s("status")]);
    for i in 0..200_000 {
        command.args(["-E", &format!("E{i}=y")]);
    }
    command.args(["-E", "E7", "sleep", "1000"]);
    big_stack(&mut command);
    starts_and_stops(command, &dir, Duration::from_secs(90), |pid| {
        let env = fs::read(format!("/proc/{pid}/environ")).unwrap();
        let env = String::from_utf8_lossy(&env);
        let names: Vec<&str> = env.split('\0').filter_map(|e| e.split_once('=')).map(|(k, _)| k).collect();
        let set: Vec<&&str> = names.iter().filter(|k| k.starts_with('E') && k[1..].parse::<u32>().is_ok()).collect();
        assert_eq!(set.len(), 199_999, "every -E but the removed one");
        assert!(!names.contains(&"E7"), "-E E7 removed it");
        // In the order given.
        assert_eq!((*set[0], *set[7], *set[199_998]), ("E0", "E8", "E199999"));
    });
}

#[test]
fn a_daemons_relative_cgroup_parent_is_taken_before_the_change_to_root() {
    need_root!();
    let unified = Path::new("/sys/fs/cgroup/unified");
    let root = if unified.join("cgroup.procs").exists() { unified } else { Path::new("/sys/fs/cgroup") };
    if !root.join("cgroup.procs").exists() {
        return common::skip("no cgroup v2 hierarchy here");
    }
    let name = format!("dmon-startup-{}", std::process::id());
    fs::create_dir(root.join(&name)).unwrap();
    let dir = Dir::new("cgroup-parent");
    let status = dmon()
        .current_dir(root)
        .args(["-p", &dir.s("pid"), "-I", &dir.s("status"), "--tree", "cgroup2", "--cgroup-parent", &name])
        .args(["sleep", "100"])
        .status()
        .unwrap();
    let pid: Option<i32> = read(&dir.path("pid")).trim().parse().ok();
    let stopper = pid.map(Stopper::new);
    let seen = status.success() && wait_for_line(&dir.path("status"), "cmd start", Duration::from_secs(10));
    let cgroup = if seen {
        read(Path::new(&format!("/proc/{}/cgroup", started_pid(&dir.path("status")))))
    } else {
        String::new()
    };
    drop(stopper);
    // dmon removes its own cgroups on the stop; then the parent is empty.
    let _ = wait_until(Duration::from_secs(10), || fs::remove_dir(root.join(&name)).is_ok());
    assert!(seen, "the daemon came up and started its command: {}", read(&dir.path("status")));
    let own = cgroup.lines().find(|l| l.starts_with("0::")).unwrap_or_default().to_string();
    assert!(own.starts_with(&format!("0::/{name}/dmon.")), "the command's cgroup: {cgroup}");
}
