//! Limits on the command's tree (`--memory-max`, `--memory-high`, `--pids-max`,
//! `--cpu-quota`) and the OOM event, with the built dmon on real processes.
//!
//! Every test runs twice: on the host (the hybrid layout, where the limits go
//! into v1 memory, pids and cpu hierarchies beside the v2 leaf that freezes and
//! kills), and inside a pure-v2 guest whose kernel has every controller
//! (`in_a_pure_v2_guest` runs this very binary there, see tests/common/vm.rs).
//! The freeze, kill and detection checks at the end run in both places too.

mod common;

use common::{Dir, Stopper, vm, wait_until};

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// The system's Python itself, not a wrapper on the PATH (pyenv's shims are
/// shell scripts whose processes would count in the tree's CPU and tasks).
const PYTHON: &str = "/usr/bin/python3";

/// Runs this test binary in the pure-v2 guest, once for all its tests.
#[test]
fn in_a_pure_v2_guest() {
    let exe = std::env::current_exe().unwrap();
    let argv = [exe.to_str().unwrap(), "--test-threads=1", "--skip", "in_a_pure_v2_guest"];
    let out = match vm::run(&argv, &[], Duration::from_secs(900)) {
        Err(why) => return common::skip(&why),
        Ok(out) => out,
    };
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("in the guest:\n{report}");
    assert!(out.status.success(), "the limit tests failed in the pure-v2 guest:\n{report}");
    assert!(report.contains("test result: ok."), "{report}");
}

/// Whether `/sys/fs/cgroup` is a cgroup2 mount (pure v2), as in the guest.
fn pure_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Whether this place can hold limits (root, and a memory controller in v2 or
/// v1); says why not through `common::skip`.
fn can_limit() -> bool {
    if !common::is_root() {
        common::skip("limits need root here (no delegated cgroup)");
        return false;
    }
    let v2 = pure_v2() && common::read(Path::new("/sys/fs/cgroup/cgroup.subtree_control")).contains("memory");
    if !v2 && !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        common::skip("no memory controller in cgroup v2 or v1 here");
        return false;
    }
    true
}

/// dmon with a status file in `dir`, stderr to `dir/dmon.err`.
fn dmon(dir: &Dir, args: &[&str]) -> Command {
    let mut command = common::dmon();
    command
        .args(["-I", &dir.s("status"), "--grace", "1", "--backoff-max", "0.2"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.path("dmon.err")).unwrap());
    command
}

fn said(dir: &Dir) -> String {
    format!("status:\n{}\ndmon said:\n{}", common::read(&dir.path("status")), common::read(&dir.path("dmon.err")))
}

/// Waits for a line of the status file that starts with `prefix`; returns it.
fn wait_line(dir: &Dir, prefix: &str) -> String {
    let mut found = None;
    let ok = wait_until(WAIT, || {
        found = common::lines(&dir.path("status")).into_iter().find(|l| l.starts_with(prefix));
        found.is_some()
    });
    assert!(ok, "no line '{prefix}...'; {}", said(dir));
    found.unwrap()
}

/// The value of `key=` in a `cmd usage` line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Runs dmon in the foreground to its end; returns its exit code.
fn run_to_end(dir: &Dir, args: &[&str]) -> i32 {
    let child = dmon(dir, args).spawn().unwrap();
    let status = common::finish(child, WAIT);
    status.code().unwrap_or(-1)
}

/// dmon's own cgroups left anywhere (none may be).
fn leftovers(pid: i32) -> Vec<String> {
    let mut left = Vec::new();
    let name = format!("dmon.{pid}");
    let mut stack = vec![Path::new("/sys/fs/cgroup").to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.is_dir() || path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            if entry.file_name().to_string_lossy() == name {
                left.push(path.display().to_string());
            } else if stack.len() < 10_000 {
                stack.push(path);
            }
        }
    }
    left
}

/// Starts sleeping, then (first run only) a grandchild allocates 400 MiB.
const HOG: &str = r#"
[ -e first ] && exec sleep 300
touch first
sleep 300 & echo $! > sleeper
sh -c '/usr/bin/python3 -c "b = b\"x\" * (400 << 20)"; echo survived >> runs'
echo survived >> runs
wait
"#;

#[test]
fn an_oom_in_a_grandchild_ends_the_whole_run_and_the_next_starts() {
    if !can_limit() {
        return;
    }
    let dir = Dir::new("oom");
    // As a daemon, with a log command that must outlive the OOM; -W . for the
    // script's relative files (a daemon runs its commands in / otherwise).
    let pid_file = dir.s("pid");
    let args = ["-W", ".", "-p", &pid_file, "--memory-max", "64m", "sh", "-c", HOG, "--", "sh", "-c", "exec cat"];
    let out = dmon(&dir, &args).output().unwrap();
    assert!(out.status.success(), "{}", said(&dir));
    let pid: i32 = common::read(&dir.path("pid")).trim().parse().unwrap();
    let _stop = Stopper::new(pid);
    let oom = wait_line(&dir, "cmd oom ");
    let exit = wait_line(&dir, "cmd exit ");
    let run = oom.strip_prefix("cmd oom ").unwrap();
    assert_eq!(exit, format!("cmd exit {run} 9"), "the leader is killed with the run; {}", said(&dir));
    let usage = wait_line(&dir, &format!("cmd usage {run} "));
    assert!(usage.contains(" reason=oom "), "{usage}");
    assert!(field(&usage, "memory_peak_bytes").is_some_and(|p| p >= 60 << 20), "{usage}");
    // The OOM line comes before the exit it caused.
    let lines = common::lines(&dir.path("status"));
    let at = |l: &str| lines.iter().position(|x| *x == l).unwrap();
    assert!(at(&oom) < at(&exit), "{}", said(&dir));
    // The next run starts; nothing of the first is left; dmon and the logger live on.
    assert!(wait_until(WAIT, || common::started(&dir.path("status"), "cmd").len() == 2), "{}", said(&dir));
    let sleeper: i32 = common::read(&dir.path("sleeper")).trim().parse().unwrap();
    assert!(wait_until(WAIT, || !common::alive(sleeper)), "the first run's sleeper {sleeper} survived the OOM");
    assert!(!dir.path("runs").exists(), "a process of the run outlived the OOM kill");
    assert!(common::alive(pid), "{}", said(&dir));
    assert_eq!(common::started(&dir.path("status"), "log").len(), 1, "{}", said(&dir));
    assert!(!common::read(&dir.path("status")).contains("log exit"), "{}", said(&dir));
    common::signal(pid, libc::SIGTERM);
    assert!(wait_until(WAIT, || !common::alive(pid)), "{}", said(&dir));
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// The log command's first run allocates 400 MiB before it reads anything; the
/// runs after it copy the pipe into `out`.
const LOG_HOG: &str = r#"
[ -e logfirst ] || { touch logfirst; /usr/bin/python3 -c 'b = b"x" * (400 << 20)'; echo survived >> runs; }
exec cat >> out
"#;

#[test]
fn the_log_command_is_held_at_the_commands_memory_max_and_restarted_after_an_oom() {
    if !can_limit() {
        return;
    }
    let dir = Dir::new("log-oom");
    let cmd = "echo one; while [ ! -e go ]; do sleep 0.05; done; echo two; exec sleep 300";
    let pid_file = dir.s("pid");
    let out =
        dmon(&dir, &["-W", ".", "-p", &pid_file, "--memory-max", "32m", "sh", "-c", cmd, "--", "sh", "-c", LOG_HOG])
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", said(&dir));
    let pid: i32 = common::read(&dir.path("pid")).trim().parse().unwrap();
    let _stop = Stopper::new(pid);
    let oom = wait_line(&dir, "log oom ");
    let run = oom.strip_prefix("log oom ").unwrap();
    let usage = wait_line(&dir, &format!("log usage {run} "));
    assert!(usage.contains(" reason=oom "), "{usage}");
    assert!(field(&usage, "memory_peak_bytes").is_some_and(|p| p <= 33 << 20), "held at 32 MiB: {usage}");
    // The log command starts again and reads what the pipe kept: no line is lost.
    assert!(wait_until(WAIT, || common::started(&dir.path("status"), "log").len() == 2), "{}", said(&dir));
    fs::write(dir.path("go"), "").unwrap();
    assert!(
        wait_until(WAIT, || common::read(&dir.path("out")) == "one\ntwo\n"),
        "out: {:?}; {}",
        common::read(&dir.path("out")),
        said(&dir)
    );
    assert!(!dir.path("runs").exists(), "a process of the log command's run outlived its OOM kill");
    // The command's run goes on: the log command's OOM is its own.
    assert_eq!(common::started(&dir.path("status"), "cmd").len(), 1, "{}", said(&dir));
    assert!(!common::read(&dir.path("status")).contains("cmd oom"), "{}", said(&dir));
    common::signal(pid, libc::SIGTERM);
    assert!(wait_until(WAIT, || !common::alive(pid)), "{}", said(&dir));
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn an_oom_with_no_respawn_left_ends_dmon_with_137() {
    if !can_limit() {
        return;
    }
    let dir = Dir::new("oom-137");
    let hog = r#"/usr/bin/python3 -c 'b = b"x" * (400 << 20)'"#;
    let code = run_to_end(&dir, &["-n", "-m", "0", "--memory-max", "48m", "sh", "-c", hog]);
    assert_eq!(code, 137, "{}", said(&dir));
    let lines = common::lines(&dir.path("status"));
    assert!(lines.iter().any(|l| l.starts_with("cmd oom ")), "{}", said(&dir));
}

/// Forks sleepers until a fork fails 50 times in all, then writes how many
/// it has, ends them and exits 0.
const FORKER: &str = r#"
import os, sys, time
kids = []
for i in range(50):
    try:
        pid = os.fork()
    except OSError:
        continue
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(len(kids)))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
for pid in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"#;

#[test]
fn a_fork_loop_is_held_at_the_pids_max() {
    if !can_limit() {
        return;
    }
    let dir = Dir::new("pids");
    let code = run_to_end(&dir, &["-n", "-1", "--pids-max", "8", PYTHON, "-c", FORKER, &dir.s("forked")]);
    assert_eq!(code, 0, "{}", said(&dir));
    // Eight tasks: python and seven children.
    assert_eq!(common::read(&dir.path("forked")), "7", "{}", said(&dir));
    let usage = wait_line(&dir, "cmd usage ");
    assert_eq!(field(&usage, "tasks_peak"), Some(8), "{usage}");
}

#[test]
fn a_busy_loop_is_held_at_the_cpu_quota() {
    if !can_limit() {
        return;
    }
    let dir = Dir::new("cpu");
    let busy = "timeout 2 sh -c 'while :; do :; done'; exit 0";
    let code = run_to_end(&dir, &["-n", "-1", "--cpu-quota", "25%", "sh", "-c", busy]);
    assert_eq!(code, 0, "{}", said(&dir));
    let usage = wait_line(&dir, "cmd usage ");
    let cpu = field(&usage, "cpu_user_ms").unwrap() + field(&usage, "cpu_system_ms").unwrap();
    let wall = field(&usage, "wall_ms").unwrap();
    let share = cpu as f64 / wall as f64;
    // A quarter of a CPU; without the quota the loop takes a whole one.
    assert!((0.15..=0.35).contains(&share), "{cpu} ms of CPU in {wall} ms: {share:.2} of a CPU; {usage}");
}

/// Allocates 96 MiB in steps, then prints the `high` count of its cgroup's
/// memory.events.
const OVER_HIGH: &str = r#"
import sys
chunks = [b"x" * (4 << 20) for i in range(24)]
own = open("/proc/self/cgroup").read().split("::")[1].strip()
events = dict(l.split() for l in open("/sys/fs/cgroup" + own + "/memory.events"))
print(events["high"])
"#;

#[test]
fn memory_high_throttles_in_v2_and_is_refused_in_v1() {
    if !can_limit() {
        return;
    }
    let dir = Dir::new("memory-high");
    if !pure_v2() {
        let out = dmon(&dir, &["-n", "-1", "--memory-high", "32m", "touch", "started"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", said(&dir));
        let err = common::read(&dir.path("dmon.err"));
        assert!(err.contains("--memory-high") && err.contains("memory.high"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!dir.path("started").exists());
        return;
    }
    let out = dmon(&dir, &["-n", "-1", "--memory-high", "32m", PYTHON, "-c", OVER_HIGH])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&dir));
    let high: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(high > 0, "96 MiB under --memory-high 32m never went over high");
}

#[test]
fn every_limit_with_signals_is_refused() {
    for limit in [["--memory-max", "64m"], ["--memory-high", "64m"], ["--pids-max", "8"], ["--cpu-quota", "50%"]] {
        let dir = Dir::new("signals");
        let out = dmon(&dir, &["-n", "--tree", "signals", limit[0], limit[1], "touch", "started"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{limit:?}: {}", said(&dir));
        let err = common::read(&dir.path("dmon.err"));
        assert!(err.contains(limit[0]) && err.contains("signals"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!dir.path("started").exists(), "{limit:?}: the command ran without its limit");
    }
}

#[test]
fn a_limit_under_an_undelegated_v2_parent_is_refused() {
    if !common::is_root() {
        common::skip("making a cgroup without controllers needs root");
        return;
    }
    // In the guest, a cgroup whose parent passes on no controller.
    let parent = pure_v2().then(|| Path::new("/sys/fs/cgroup").join(format!("undelegated-{}", std::process::id())));
    if let Some(parent) = &parent {
        fs::create_dir_all(parent.join("inner")).unwrap();
    }
    let refused = |limits: &[&str]| -> String {
        let dir = Dir::new("undelegated");
        let mut command = match &parent {
            Some(parent) => dmon(&dir, &["-n", "--cgroup-parent", &parent.join("inner").display().to_string()]),
            None => {
                // The hybrid host's v2 tree seen as pure v2: it has no controllers.
                let mut c = Command::new("unshare");
                let inner = "umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"";
                c.args(["--mount", "--propagation", "private", "sh", "-c", inner, "sh", common::DMON, "-n"]);
                c.args(["-I", &dir.s("status")]).current_dir(&dir).env_remove("DMON_OPTIONS").stdin(Stdio::null());
                c.stdout(Stdio::null()).stderr(fs::File::create(dir.path("dmon.err")).unwrap());
                c
            }
        };
        let out = command.args(limits).args(["touch", "started"]).output().unwrap();
        let err = common::read(&dir.path("dmon.err"));
        assert_eq!(out.status.code(), Some(2), "{limits:?}: {}", said(&dir));
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!dir.path("started").exists(), "{limits:?}: the command ran without its limit");
        err
    };
    for (limit, controller) in
        [("--memory-max", "memory"), ("--memory-high", "memory"), ("--pids-max", "pids"), ("--cpu-quota", "cpu")]
    {
        let err = refused(&[limit, if limit == "--cpu-quota" { "50%" } else { "64" }]);
        let expected = format!("{limit}: the {controller} controller is not delegated to ");
        assert!(err.contains(&expected) && err.contains(&format!("Delegate={controller})")), "{err}");
    }
    // Every missing controller is named, with the way to delegate them.
    let err = refused(&["--memory-max", "64m", "--pids-max", "8"]);
    assert!(err.contains("memory and pids controllers are not delegated"), "{err}");
    assert!(err.contains("Delegate=memory pids"), "{err}");
    if let Some(parent) = parent {
        fs::remove_dir(parent.join("inner")).unwrap();
        fs::remove_dir(parent).unwrap();
    }
}

#[test]
fn the_usage_record_has_the_memory_and_tasks_peaks() {
    if !can_limit() {
        return;
    }
    let dir = Dir::new("peaks");
    let mut args = vec!["-n", "-1", "--status-format", "json"];
    if !pure_v2() {
        // The v1 leaves that hold limits count the peaks too.
        args.extend(["--memory-max", "1g", "--pids-max", "100"]);
    }
    let measured = dir.s("measured");
    let costly = common::busy_python(64);
    args.extend([PYTHON, "-c", &costly, &measured]);
    assert_eq!(run_to_end(&dir, &args), 0, "{}", said(&dir));
    let exit = common::lines(&dir.path("status"))
        .into_iter()
        .find(|l| l.contains("\"event\":\"exit\""))
        .unwrap_or_else(|| panic!("{}", said(&dir)));
    let value = |key: &str| -> u64 {
        let at = exit.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key}: {exit}"));
        exit[at + key.len() + 3..].split([',', '}']).next().unwrap().parse().unwrap()
    };
    assert!(value("memory_peak_bytes") >= 64 << 20, "{exit}");
    assert!(value("tasks_peak") >= 1, "{exit}");
    let cpu = (value("cpu_user_ms") + value("cpu_system_ms")) as f64;
    let own: f64 = common::read(&dir.path("measured")).trim().parse().unwrap();
    assert!((cpu - own).abs() <= own * 0.2, "dmon says {cpu} ms, the command measured {own} ms: {exit}");
}

/// A tree of three busy processes, one of them `setsid`'d, whose pids it
/// writes to `pids`.
const BUSY_TREE: &str = r#"
for i in 1 2; do sh -c 'while :; do :; done' & echo $! >> pids.tmp; done
setsid sh -c 'while :; do :; done' & echo $! >> pids.tmp
mv pids.tmp pids
wait
"#;

fn tree_pids(dir: &Dir) -> Vec<i32> {
    assert!(wait_until(WAIT, || dir.path("pids").exists()), "{}", said(dir));
    common::lines(&dir.path("pids")).iter().map(|l| l.parse().unwrap()).collect()
}

/// CPU ticks (utime + stime) of `pid`.
fn ticks(pid: i32) -> u64 {
    let stat = common::read(Path::new(&format!("/proc/{pid}/stat")));
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn detection_finds_the_cgroup2_tree_of_this_layout() {
    if !common::is_root() {
        common::skip("the cgroup backends need root");
        return;
    }
    let dir = Dir::new("detect");
    assert_eq!(run_to_end(&dir, &["-n", "-1", "sh", "-c", "cat /proc/self/cgroup > cgroup"]), 0, "{}", said(&dir));
    let tree = wait_line(&dir, "tree ");
    let mount = if pure_v2() { "/sys/fs/cgroup/" } else { "/sys/fs/cgroup/unified/" };
    assert!(tree.starts_with(&format!("tree cgroup2 {mount}")) && tree.contains("/dmon."), "{tree}");
    let own = common::read(&dir.path("cgroup"));
    assert!(own.lines().any(|l| l.starts_with("0::/") && l.contains("/dmon.") && l.ends_with("/cmd")), "{own}");
}

#[test]
fn a_pause_stops_and_a_timeout_kills_the_whole_busy_tree() {
    if !common::is_root() {
        common::skip("the cgroup backends need root");
        return;
    }
    let dir = Dir::new("pause-timeout");
    fs::write(dir.path("load"), "0.00 0.00 0.00 1/100 1\n").unwrap();
    let mut command = dmon(&dir, &["-n", "-L", "50", "-t", "30", "sh", "-c", BUSY_TREE]);
    let mut child = command.env("DMON_LOADAVG_FILE", dir.path("load")).spawn().unwrap();
    let stop = Stopper::of(&child);
    let pids = tree_pids(&dir);
    // A load above -L pauses every process, the setsid'd one too.
    fs::write(dir.path("load.tmp"), "99.00 99.00 99.00 1/100 1\n").unwrap();
    fs::rename(dir.path("load.tmp"), dir.path("load")).unwrap();
    wait_line(&dir, "cmd pause ");
    let still = |pids: &[i32]| -> bool {
        let before: Vec<u64> = pids.iter().map(|p| ticks(*p)).collect();
        std::thread::sleep(Duration::from_millis(500));
        pids.iter().zip(before).all(|(p, b)| ticks(*p) == b)
    };
    assert!(wait_until(WAIT, || still(&pids)), "a paused process kept running; {}", said(&dir));
    drop(stop); // TERM to dmon, and its zombie reaped
    let _ = child.try_wait();
    // A timeout kills all of them.
    let dir2 = Dir::new("timeout");
    let child = dmon(&dir2, &["-n", "-m", "0", "-t", "3", "sh", "-c", BUSY_TREE]).spawn().unwrap();
    let _stop = Stopper::of(&child);
    let pids = tree_pids(&dir2);
    common::finish(child, WAIT);
    let line = wait_line(&dir2, "cmd usage ");
    assert!(line.contains("reason=timeout"), "{line}");
    for pid in pids {
        assert!(!common::alive(pid), "{pid} outlived the timeout; {}", said(&dir2));
    }
}

#[test]
fn limits_hold_in_the_v1_only_layout_beside_the_freezer() {
    if pure_v2() || !can_limit() {
        return; // the guest has no v1 hierarchy; the host runs this one
    }
    let dir = Dir::new("v1-only");
    // The host without its cgroup2 mount: the freezer backend, limits in v1 leaves.
    let inner = "umount -l /sys/fs/cgroup/unified && exec \"$@\"";
    let hog = "sleep 300 & echo $! > sleeper; /usr/bin/python3 -c 'b = b\"x\" * (400 << 20)'; echo survived >> runs";
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", inner, "sh", common::DMON])
        .args(["-n", "-m", "0", "-I", &dir.s("status"), "--memory-max", "64m", "--pids-max", "20", "sh", "-c", hog])
        .current_dir(&dir)
        .env_remove("DMON_OPTIONS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.path("dmon.err")).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", said(&dir));
    assert!(wait_line(&dir, "tree ").starts_with("tree freezer "), "{}", said(&dir));
    wait_line(&dir, "cmd oom ");
    let usage = wait_line(&dir, "cmd usage ");
    assert!(usage.contains(" reason=oom "), "{usage}");
    assert!(field(&usage, "memory_peak_bytes").is_some_and(|p| p >= 60 << 20), "{usage}");
    assert!(field(&usage, "tasks_peak").is_some_and(|t| t >= 3), "{usage}");
    let sleeper: i32 = common::read(&dir.path("sleeper")).trim().parse().unwrap();
    assert!(!common::alive(sleeper), "v1 kills one process; dmon must kill the rest, and {sleeper} lives");
    assert!(!dir.path("runs").exists(), "a process of the run outlived the OOM kill");
}

/// dmon with `args`, started by a shell that first moves itself into `cgroup`
/// (a v2 or v1 directory); stderr to `dir/dmon.err`.
fn dmon_started_in(cgroup: &Path, dir: &Dir, args: &[&str]) -> std::process::Output {
    let join = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", cgroup.display());
    Command::new("sh")
        .args(["-c", &join, "sh", common::DMON, "-I", &dir.s("status")])
        .args(args)
        .current_dir(dir)
        .env_remove("DMON_OPTIONS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.path("dmon.err")).unwrap())
        .output()
        .unwrap()
}

#[test]
fn a_delegated_cgroup_of_dmon_alone_gets_the_controllers_enabled() {
    if !pure_v2() || !can_limit() {
        return; // only pure v2 has controllers to pass on; the guest runs this one
    }
    let dir = Dir::new("delegated");
    // As systemd's Delegate=yes leaves a service: its cgroup is offered the
    // controllers, passes none on, and dmon is its only process.
    let service = Path::new("/sys/fs/cgroup").join(format!("service-{}", std::process::id()));
    fs::create_dir(&service).unwrap();
    let out = dmon_started_in(&service, &dir, &["-n", "-1", "--pids-max", "8", PYTHON, "-c", FORKER, &dir.s("forked")]);
    let control = common::read(&service.join("cgroup.subtree_control"));
    let left: Vec<_> = fs::read_dir(&service).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
    let _ = fs::remove_dir(&service);
    assert!(out.status.success(), "{}", said(&dir));
    assert_eq!(common::read(&dir.path("forked")), "7", "{}", said(&dir));
    // Undone before dmon moved back, and nothing of dmon's left.
    assert_eq!(control.trim(), "", "dmon left controllers enabled in the service's cgroup");
    assert!(left.is_empty(), "left in the service's cgroup: {left:?}");
}

#[test]
fn limits_come_from_dmon_options_and_config_files_too() {
    if !can_limit() {
        return;
    }
    let dir = Dir::new("conf");
    fs::write(dir.path("dmon.conf"), "# limits\nmemory-max 1g\n").unwrap();
    // -C comes first of all.
    let mut command = common::dmon();
    command
        .env("DMON_OPTIONS", "--pids-max 5")
        .args(["-C", &dir.s("dmon.conf"), "-n", "-1", "-I", &dir.s("status")])
        .args([PYTHON, "-c", FORKER, &dir.s("forked")])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.path("dmon.err")).unwrap());
    let status = common::finish(command.spawn().unwrap(), WAIT);
    assert!(status.success(), "{}", said(&dir));
    assert_eq!(common::read(&dir.path("forked")), "4", "--pids-max from DMON_OPTIONS; {}", said(&dir));
    let usage = wait_line(&dir, "cmd usage ");
    assert!(field(&usage, "memory_peak_bytes").is_some(), "--memory-max from the file: {usage}");
}

#[test]
fn a_v1_cpu_quota_above_the_parents_is_refused_naming_the_parent() {
    if pure_v2() || !can_limit() {
        return; // v2 takes a quota above the parent's; the host's v1 cpu does not
    }
    let parent = Path::new("/sys/fs/cgroup/cpu").join(format!("quota-{}", std::process::id()));
    fs::create_dir(&parent).unwrap();
    fs::write(parent.join("cpu.cfs_quota_us"), "50000").unwrap();
    let dir = Dir::new("v1-quota");
    // dmon started in a v1 cpu cgroup that has half a CPU.
    let out = dmon_started_in(&parent, &dir, &["-n", "--cpu-quota", "150%", "touch", "started"]);
    let err = common::read(&dir.path("dmon.err"));
    let _ = fs::remove_dir(&parent);
    assert_eq!(out.status.code(), Some(2), "{}", said(&dir));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dir.path("started").exists(), "the command ran without its limit");
    let expected = format!("above the quota of {}: 50% of a CPU", parent.display());
    assert!(err.contains("--cpu-quota") && err.contains(&expected), "{err}");
}
