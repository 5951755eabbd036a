//! The usage record of every run (`reason` and `usage` in the `exit` record, the
//! `cmd usage` text line), with the built dmon on real processes, in each backend
//! the host offers: cgroup v2 (the hybrid layout's unified tree), the v1 freezer
//! and signals, each forced with `--tree` as tests/tree/support.rs `Layout`
//! does for ForcedFreezer and ForcedSignals.
//!
//! The peak checks (every test named `..._peaks_...`) run twice: on the host,
//! where the peaks come from v1 memory and pids leaves, and in a pure-v2 guest
//! whose kernel has every controller (`in_a_pure_v2_guest`, tests/common/vm.rs).

mod common;

use common::{Dir, vm, wait_until};

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const DMON: &str = env!("CARGO_BIN_EXE_dmon");
const WAIT: Duration = Duration::from_secs(30);

/// The usage fields a layout may lack.
const OPTIONAL: [(&str, &str); 4] = [
    ("tasks_peak", "pids.peak"),
    ("memory_peak_bytes", "memory.peak"),
    ("io_read_bytes", "io.stat"),
    ("io_write_bytes", "io.stat"),
];

/// What a file of the test directory holds ("" when it is missing).
fn read(dir: &Dir, name: &str) -> String {
    common::read(&dir.path(name))
}

/// The backends, as `--tree` names them.
const BACKENDS: [&str; 3] = ["cgroup2", "freezer", "signals"];

/// Whether `backend` can run here; says why not through `common::skip`.
fn available(backend: &str) -> bool {
    if backend == "signals" {
        return true;
    }
    if !common::is_root() {
        common::skip("the cgroup backends need root");
        return false;
    }
    // A pure-v2 host (the guest) has no v1 freezer by design: nothing to skip.
    if backend == "freezer" && pure_v2() {
        return false;
    }
    let mount = match backend {
        "cgroup2" if pure_v2() => "/sys/fs/cgroup",
        "cgroup2" => "/sys/fs/cgroup/unified",
        _ => "/sys/fs/cgroup/freezer",
    };
    if !Path::new(mount).join("cgroup.procs").exists() {
        common::skip(&format!("this host has no {mount}"));
        return false;
    }
    true
}

/// dmon in the foreground with `--tree backend`, its status file in `dir`
/// (a new one: dmon appends).
fn dmon(dir: &Dir, backend: &str, format: &str, args: &[&str]) -> Command {
    let _ = fs::remove_file(dir.path("status"));
    let mut command = Command::new(DMON);
    command
        .env_remove("DMON_OPTIONS")
        .env_remove("DMON_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env("DMON_LOADAVG_FILE", dir.path("load"))
        .args(["-n", "--tree", backend, "--grace", "1", "--backoff-max", "0.1", "-I", &dir.s("status")])
        .args(["--status-format", format])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.path("dmon.err")).unwrap());
    command
}

/// Waits for dmon to end by itself; kills it if it does not.
fn finish(dir: &Dir, mut child: Child) {
    let ended = wait_until(WAIT, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(ended, "dmon did not end; it said:\n{}", read(dir, "dmon.err"));
}

fn records(dir: &Dir) -> Vec<Value> {
    read(dir, "status").lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect()
}

/// The `nth` (from 1) JSON record of `process` and `event`, waited for.
fn wait_record(dir: &Dir, process: &str, event: &str, nth: usize) -> Value {
    let mut found = None;
    let ok = wait_until(WAIT, || {
        found = records(dir).into_iter().filter(|r| r["process"] == process && r["event"] == event).nth(nth - 1);
        found.is_some()
    });
    assert!(ok, "no {process} {event} record {nth}:\n{}\ndmon said:\n{}", read(dir, "status"), read(dir, "dmon.err"));
    found.unwrap()
}

fn signal(pid: i64, signal: i32) {
    // SAFETY: kill with plain integers.
    unsafe { libc::kill(pid as i32, signal) };
}

fn ms(usage: &Value, key: &str) -> f64 {
    usage[key].as_u64().unwrap_or_else(|| panic!("no {key} in {usage}")) as f64
}

/// `measured` within 20 % of `expected`.
fn close(measured: f64, expected: f64) -> bool {
    (measured - expected).abs() <= expected * 0.2
}

/// Runs the busy command once and returns the CPU time (ms) it measured itself
/// and the status file's text.
fn busy_run(dir: &Dir, backend: &str, format: &str) -> f64 {
    let child =
        dmon(dir, backend, format, &["-1", common::python(), "-c", &common::busy_python(0), &dir.s("measured")])
            .spawn()
            .unwrap();
    finish(dir, child);
    let measured = read(dir, "measured");
    measured
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the command wrote {measured:?}; dmon said:\n{}", read(dir, "dmon.err")))
}

#[test]
fn json_records_the_cpu_a_busy_run_used() {
    for backend in BACKENDS.into_iter().filter(|b| available(b)) {
        let dir = Dir::new("json-cpu");
        let measured = busy_run(&dir, backend, "json");
        let tree = &records(&dir)[0];
        assert_eq!(tree["backend"], backend, "{tree}");
        let exit = wait_record(&dir, "cmd", "exit", 1);
        assert_eq!(exit["reason"], "exit", "{backend}: {exit}");
        let usage = &exit["usage"];
        let cpu = ms(usage, "cpu_user_ms") + ms(usage, "cpu_system_ms");
        assert!(close(cpu, measured), "{backend}: dmon says {cpu} ms of CPU, the command measured {measured} ms");
        assert!(ms(usage, "wall_ms") >= cpu * 0.8, "{backend}: {usage}");
        assert_eq!(ms(usage, "paused_ms"), 0.0, "{backend}: {usage}");
    }
}

#[test]
fn text_records_the_cpu_a_busy_run_used() {
    for backend in BACKENDS.into_iter().filter(|b| available(b)) {
        let dir = Dir::new("text-cpu");
        let measured = busy_run(&dir, backend, "text");
        let status = read(&dir, "status");
        let lines: Vec<&str> = status.lines().collect();
        let pid = lines[1].strip_prefix("cmd start ").unwrap_or_else(|| panic!("{status}"));
        assert_eq!(lines[2], format!("cmd exit {pid} 0"), "{backend}:\n{status}");
        // DMon's lines stay as they were; the usage line comes right after the exit.
        let usage = lines[3].strip_prefix(&format!("cmd usage {pid} ")).unwrap_or_else(|| panic!("{status}"));
        let field =
            |key: &str| -> Option<&str> { usage.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')) };
        assert_eq!(field("reason"), Some("exit"), "{usage}");
        let number = |key: &str| field(key).unwrap_or_else(|| panic!("no {key}: {usage}")).parse::<f64>().unwrap();
        let cpu = number("cpu_user_ms") + number("cpu_system_ms");
        assert!(close(cpu, measured), "{backend}: dmon says {cpu} ms of CPU, the command measured {measured} ms");
        for key in ["wall_ms", "paused_ms"] {
            number(key);
        }
        assert_eq!(lines.len(), 4, "{backend}:\n{status}");
    }
}

#[test]
fn the_reason_a_run_ended() {
    for backend in BACKENDS.into_iter().filter(|b| available(b)) {
        let dir = Dir::new("reasons");
        // It ended by itself.
        let child = dmon(&dir, backend, "json", &["-m", "0", "sh", "-c", "exit 3"]).spawn().unwrap();
        finish(&dir, child);
        let exit = wait_record(&dir, "cmd", "exit", 1);
        assert_eq!((&exit["code"], &exit["reason"]), (&3.into(), &"exit".into()), "{backend}: {exit}");

        // -t ran out: dmon stopped it.
        let child = dmon(&dir, backend, "json", &["-m", "0", "-t", "0.3", "sleep", "60"]).spawn().unwrap();
        finish(&dir, child);
        let exit = wait_record(&dir, "cmd", "exit", 1);
        assert_eq!(exit["reason"], "timeout", "{backend}: {exit}");
        assert!(close(ms(&exit["usage"], "wall_ms"), 300.0) || ms(&exit["usage"], "wall_ms") > 300.0, "{exit}");

        // A KILL from outside, then TERM to dmon: the next run is shut down.
        let child =
            dmon(&dir, backend, "json", &["sleep", "60", "--", "sh", "-c", "exec cat >/dev/null"]).spawn().unwrap();
        let first = wait_record(&dir, "cmd", "start", 1);
        signal(first["pid"].as_i64().unwrap(), libc::SIGKILL);
        wait_record(&dir, "cmd", "start", 2);
        signal(child.id().into(), libc::SIGTERM);
        finish(&dir, child);
        let killed = wait_record(&dir, "cmd", "exit", 1);
        assert_eq!((&killed["signal"], &killed["reason"]), (&9.into(), &"signal".into()), "{backend}: {killed}");
        let stopped = wait_record(&dir, "cmd", "exit", 2);
        assert_eq!(stopped["reason"], "shutdown", "{backend}: {stopped}");
        // The log command ended by itself at the end of its input.
        let log = wait_record(&dir, "log", "exit", 1);
        assert_eq!(log["reason"], "exit", "{backend}: {log}");
        assert!(log["usage"]["cpu_user_ms"].is_u64(), "{backend}: {log}");
    }
}

#[test]
fn paused_time_is_reported() {
    for backend in BACKENDS.into_iter().filter(|b| available(b)) {
        let dir = Dir::new("paused");
        fs::write(dir.path("load"), "0.1\n").unwrap();
        let wait_go = format!("while [ ! -e {} ]; do sleep 0.02; done", dir.s("go"));
        let child = dmon(&dir, backend, "json", &["-1", "-L", "2", "-l", "1", "sh", "-c", &wait_go]).spawn().unwrap();
        let start = wait_record(&dir, "cmd", "start", 1);
        // The leaf's files, looked at while it exists.
        let leaf = records(&dir)[0]["cgroup"].as_str().map(|home| Path::new(home).join("cmd"));
        let leaf_has: Vec<(&str, bool)> =
            OPTIONAL.iter().map(|(key, file)| (*key, leaf.as_ref().is_some_and(|l| l.join(file).exists()))).collect();
        fs::write(dir.path("load"), "5\n").unwrap();
        let paused = wait_record(&dir, "cmd", "pause", 1);
        std::thread::sleep(Duration::from_secs(1));
        fs::write(dir.path("load"), "0.1\n").unwrap();
        let resumed = wait_record(&dir, "cmd", "resume", 1);
        fs::write(dir.path("go"), "").unwrap();
        finish(&dir, child);
        let exit = wait_record(&dir, "cmd", "exit", 1);
        assert_eq!(exit["pid"], start["pid"]);
        let usage = &exit["usage"];

        let stamp = |r: &Value| {
            let t = r["time"].as_str().unwrap();
            // HH:MM:SS.ffffff of the same minute or the next.
            let (m, s): (f64, f64) = (t[14..16].parse().unwrap(), t[17..26].parse().unwrap());
            m * 60_000.0 + s * 1000.0
        };
        let expected = (stamp(&resumed) - stamp(&paused)).rem_euclid(3_600_000.0);
        let got = ms(usage, "paused_ms");
        assert!(close(got, expected), "{backend}: paused_ms {got}, paused for {expected} ms by the records: {usage}");
        assert!(ms(usage, "wall_ms") >= got, "{backend}: {usage}");

        // What the layout cannot give is absent, never 0.
        for (key, has) in leaf_has {
            let from_rusage = backend != "cgroup2" && key.starts_with("io_") && Path::new("/proc/self/io").exists();
            let from_v1 = backend != "signals" && v1_peak(key);
            assert_eq!(usage.get(key).is_some(), has || from_rusage || from_v1, "{backend}: {key} in {usage}");
        }
        if backend == "cgroup2" && !leaf.as_ref().unwrap().join("memory.peak").exists() && !v1_peak("memory_peak_bytes")
        {
            assert!(usage.get("memory_peak_bytes").is_none(), "{usage}");
        }
    }
}

/// A leader that leaves a busy process behind (double-forked, ignoring TERM):
/// its exit record waits for the tree to be empty (KILL after `--grace 1`), and
/// the usage is the whole tree's, the leftover's CPU and time included.
#[test]
fn the_record_of_a_run_with_leftovers_counts_the_whole_tree() {
    for backend in BACKENDS.into_iter().filter(|b| available(b)) {
        let dir = Dir::new("leftovers");
        let up = dir.s("up");
        let script = format!(
            "(setsid sh -c 'trap \"\" TERM; touch {up}; while :; do :; done' &); while [ ! -e {up} ]; do sleep 0.01; done"
        );
        let child = dmon(&dir, backend, "json", &["-m", "0", "sh", "-c", &script]).spawn().unwrap();
        finish(&dir, child);
        let exit = wait_record(&dir, "cmd", "exit", 1);
        assert_eq!(exit["reason"], "exit", "{backend}: {exit}");
        let usage = &exit["usage"];
        // The leftover spun for the grace second before its KILL, on a shared machine.
        assert!(ms(usage, "wall_ms") >= 1000.0, "{backend}: {usage}");
        let cpu = ms(usage, "cpu_user_ms") + ms(usage, "cpu_system_ms");
        assert!(cpu >= 200.0, "{backend}: the leftover's CPU is missing: {usage}");
    }
}

/// Runs this binary's peak checks in the pure-v2 guest, booted once for all.
#[test]
fn in_a_pure_v2_guest() {
    let exe = std::env::current_exe().unwrap();
    let argv = [exe.to_str().unwrap(), "--test-threads=1", "--skip", "in_a_pure_v2_guest", "_peaks_"];
    let out = match vm::run(&argv, &[], Duration::from_secs(600)) {
        Err(why) => return common::skip(&why),
        Ok(out) => out,
    };
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("in the guest:\n{report}");
    assert!(out.status.success(), "the peak tests failed in the pure-v2 guest:\n{report}");
    assert!(report.contains("test result: ok.") && !report.contains("running 0 tests"), "{report}");
}

/// Whether `/sys/fs/cgroup` is a cgroup2 mount (pure v2), as in the guest.
fn pure_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// dmon's own cgroup (that of this test process) in the v1 hierarchy of
/// `controller`, where one is mounted.
fn v1_own(controller: &str) -> Option<std::path::PathBuf> {
    let mount = Path::new("/sys/fs/cgroup").join(controller);
    let cgroup = common::read(Path::new("/proc/self/cgroup"));
    let own = cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, names, path) = (f.next()?, f.next()?, f.next()?);
        names.split(',').any(|n| n == controller).then(|| path.trim_start_matches('/').to_string())
    })?;
    mount.join("cgroup.procs").exists().then(|| mount.join(own))
}

/// Whether the peak behind a usage field comes from a v1 leaf on this host.
fn v1_peak(key: &str) -> bool {
    match key {
        "tasks_peak" => v1_own("pids").is_some(),
        "memory_peak_bytes" => v1_own("memory").is_some(),
        _ => false,
    }
}

/// Forks `argv[1] - 1` sleepers, then touches 50 MiB, then ends the sleepers:
/// a tree of that many processes at its peak, and 50 MiB more than python.
const TREE_OF_N: &str = r#"
import os, sys, time
kids = []
for i in range(int(sys.argv[1]) - 1):
    pid = os.fork()
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    kids.append(pid)
b = b"x" * (50 << 20)
for pid in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"#;

/// How many processes the tree of [`TREE_OF_N`] has at its peak.
const N: u64 = 6;

/// The `usage` of the first `cmd` exit of a run of the tree, without limits.
fn peaks_of_a_run(dir: &Dir, command: &mut Command) -> Value {
    let n = N.to_string();
    let status = command.args(["-1", "--status-format", "json", common::python(), "-c", TREE_OF_N, &n]).status();
    assert!(status.unwrap().success(), "{}", read(dir, "dmon.err"));
    let exit = wait_record(dir, "cmd", "exit", 1);
    assert_eq!(exit["reason"], "exit", "{exit}");
    exit["usage"].clone()
}

/// The peaks of a run: exactly N tasks, and 50 MiB plus what python itself
/// takes (some MiB), within a wide margin.
fn assert_peaks(usage: &Value, case: &str) {
    assert_eq!(usage["tasks_peak"].as_u64(), Some(N), "{case}: tasks_peak of a tree of {N}: {usage}");
    let memory = usage["memory_peak_bytes"].as_u64().unwrap_or_else(|| panic!("{case}: no memory_peak_bytes: {usage}"));
    let mib = memory as f64 / (1 << 20) as f64;
    assert!((50.0..=100.0).contains(&mib), "{case}: {mib:.1} MiB for a run that touched 50 MiB: {usage}");
}

/// dmon's own cgroups of `pid` under `dir` (none may be left).
fn left_under(dir: &Path, pid: u32) -> Vec<String> {
    let name = format!("dmon.{pid}");
    let entries = fs::read_dir(dir).into_iter().flatten().flatten();
    entries
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
        .map(|e| e.path().display().to_string())
        .collect()
}

/// Without any limit, each cgroup backend gives both peaks: from the leaf's
/// `memory.peak` and `pids.peak` in pure v2, from v1 memory and pids leaves
/// made for each run in the hybrid and v1 layouts. Signals cannot.
#[test]
fn a_run_without_limits_has_its_peaks_in_each_cgroup_backend() {
    for backend in BACKENDS.into_iter().filter(|b| available(b)) {
        let dir = Dir::new("no-limit-peaks");
        let mut command = dmon(&dir, backend, "json", &[]);
        let usage = peaks_of_a_run(&dir, &mut command);
        if backend == "signals" {
            assert!(usage.get("tasks_peak").is_none() && usage.get("memory_peak_bytes").is_none(), "{usage}");
            continue;
        }
        assert_peaks(&usage, backend);
        let tree = &records(&dir)[0];
        let pid = tree["cgroup"].as_str().and_then(|c| c.rsplit_once("/dmon.")).map(|(_, p)| p.to_string());
        let pid: u32 = pid.and_then(|p| p.split('.').next()?.parse().ok()).unwrap_or_else(|| panic!("{tree}"));
        for controller in ["memory", "pids"] {
            if let Some(own) = v1_own(controller) {
                assert_eq!(left_under(&own, pid), Vec::<String>::new(), "{backend}: left in v1 {controller}");
            }
        }
    }
}

/// As a container's first process or a delegated service sees it: dmon's own
/// cgroup is offered the memory and pids controllers but passes none on, and
/// dmon is its only process. dmon moves into its `supervisor` leaf, enables
/// them, and undoes that at exit.
#[test]
fn a_run_without_limits_has_its_peaks_in_a_delegated_cgroup_and_a_container() {
    if !pure_v2() || !common::is_root() {
        return; // only pure v2 has controllers to pass on; the guest runs this one
    }
    // A cgroup namespace rooted at the service, with cgroup2 mounted again in
    // it: what a container's first process sees.
    let in_namespace = "umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"";
    for container in [false, true] {
        let case = if container { "container" } else { "delegated service" };
        let service = Path::new("/sys/fs/cgroup").join(format!("peaks-service-{}", std::process::id()));
        fs::create_dir(&service).unwrap();
        assert_eq!(common::read(&service.join("cgroup.subtree_control")).trim(), "", "{case}");
        let dir = Dir::new("delegated-peaks");
        let join = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", service.display());
        let command = dmon(&dir, "cgroup2", "json", &[]);
        let dmon_argv: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut shell = Command::new("sh");
        shell.args(["-c", &join, "sh"]);
        if container {
            shell.args(["unshare", "--cgroup", "--mount", "--propagation", "private", "sh", "-c", in_namespace, "sh"]);
        }
        shell.args(&dmon_argv).env_remove("DMON_OPTIONS").stdin(Stdio::null()).stdout(Stdio::null());
        shell.stderr(fs::File::create(dir.path("dmon.err")).unwrap());
        let usage = peaks_of_a_run(&dir, &mut shell);
        let control = common::read(&service.join("cgroup.subtree_control"));
        let left: Vec<_> = fs::read_dir(&service).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
        let _ = fs::remove_dir(&service);
        assert_peaks(&usage, case);
        assert_eq!(control.trim(), "", "{case}: dmon left controllers enabled in its own cgroup");
        assert!(left.is_empty(), "{case}: left in its own cgroup: {left:?}");
    }
}
