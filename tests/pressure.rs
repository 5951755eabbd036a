//! `--pressure` on the real kernel: each test makes a cgroup v2 directory, runs a
//! pressure generator in it and points dmon at it with `DMON_PRESSURE_DIR`, so
//! the pressure dmon sees is the generator's alone, not the rest of the machine's.
//! The cgroup is removed and the generator killed when the test ends, pass or fail.
//! One test watches the kernel's own system-wide file, as users do.

mod common;

use common::{Dir, wait_until};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const DMON: &str = env!("CARGO_BIN_EXE_dmon");

fn unique(name: &str) -> String {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    format!("dmon-test-{}-{name}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed))
}

fn dmon() -> Command {
    let mut command = Command::new(DMON);
    command.env_remove("DMON_OPTIONS").env_remove("DMON_LOG").env_remove("DMON_PRESSURE_DIR").stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("dmon runs")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// The `avg10` of `line` (`some` or `full`) in a pressure file.
fn avg10(path: &Path, line: &str) -> f64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    let found = text.lines().find(|l| l.starts_with(line));
    found.and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("avg10=")?.parse().ok())).unwrap_or(0.0)
}

/// Where the cgroup v2 hierarchy is mounted, if it is, with PSI.
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    let root = mounts.lines().find_map(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        (fields.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
    })?;
    root.join("cpu.pressure").exists().then_some(root)
}

/// The directory of this process's own cgroup in the v1 hierarchy of `controller`.
fn own_v1(controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
        names.split(',').any(|n| n == controller).then(|| path.trim_start_matches('/').to_string())
    })?;
    let dir = Path::new("/sys/fs/cgroup").join(controller).join(rel);
    dir.join("cgroup.procs").exists().then_some(dir)
}

/// Why the pressure tests cannot run here, if they cannot: PSI missing from the
/// kernel, or no cgroup v2 to measure one generator's pressure in.
fn lacks_psi() -> Option<&'static str> {
    if !Path::new("/proc/pressure/cpu").exists() {
        return Some("this kernel has no /proc/pressure (PSI)");
    }
    if cgroup2_root().is_none() {
        return Some("no cgroup v2 hierarchy with pressure files is mounted");
    }
    if !common::is_root() {
        return Some("making test cgroups needs root");
    }
    None
}

/// A cgroup v2 directory (and, for memory, a v1 memory cgroup with a limit)
/// holding a pressure generator. Dropping it kills every process in it and
/// removes the directories.
struct Generator {
    v2: PathBuf,
    memory_v1: Option<PathBuf>,
    files: Vec<PathBuf>,
    /// The shell that entered the cgroups and became the generator.
    child: Option<Child>,
}

impl Generator {
    fn new(name: &str) -> Generator {
        let v2 = cgroup2_root().expect("checked by lacks_psi").join(unique(name));
        fs::create_dir(&v2).unwrap();
        Generator { v2, memory_v1: None, files: Vec::new(), child: None }
    }

    fn pressure(&self, source: &str) -> PathBuf {
        self.v2.join(format!("{source}.pressure"))
    }

    /// Limits the memory of the generator to `mib` MiB. On a hybrid host the v2
    /// hierarchy has no memory controller: then the v1 one limits it, while its
    /// pressure is still accounted in the v2 cgroup (the default hierarchy).
    fn limit_memory(&mut self, mib: u64) {
        let bytes = (mib << 20).to_string();
        if let Some(parent) = own_v1("memory") {
            let dir = parent.join(self.v2.file_name().unwrap());
            fs::create_dir(&dir).unwrap();
            self.memory_v1 = Some(dir.clone());
            fs::write(dir.join("memory.limit_in_bytes"), bytes).unwrap();
        } else {
            fs::write(self.v2.join("memory.max"), bytes).expect("a memory limit in the v1 or the v2 hierarchy");
        }
    }

    /// Starts `script` (sh) inside the cgroups.
    fn start(&mut self, script: &str) {
        let mut enter = format!("echo $$ > {}/cgroup.procs", self.v2.display());
        if let Some(v1) = &self.memory_v1 {
            enter += &format!(" && echo $$ > {}/cgroup.procs", v1.display());
        }
        self.child =
            Some(Command::new("sh").args(["-c", &format!("{enter} && exec sh -c '{script}'")]).spawn().unwrap());
    }

    /// Kills everything in the cgroup and waits until it is empty.
    fn stop(&mut self) {
        assert!(self.end(), "the generator in {} did not end", self.v2.display());
    }

    /// [`Generator::stop`] without the assertion, for `drop`: whether it ended.
    fn end(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let procs = self.v2.join("cgroup.procs");
        let _ = fs::write(self.v2.join("cgroup.kill"), "1");
        let empty = wait_until(Duration::from_secs(10), || {
            let pids = fs::read_to_string(&procs).unwrap_or_default();
            for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                // Where cgroup.kill is missing (before Linux 5.14).
                // SAFETY: kill takes integers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            pids.trim().is_empty()
        });
        let _ = child.kill();
        let _ = child.wait();
        empty
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.end();
        let _ = fs::remove_dir(&self.v2);
        if let Some(v1) = &self.memory_v1 {
            let _ = fs::remove_dir(v1);
        }
        for file in &self.files {
            let _ = fs::remove_file(file);
        }
    }
}

/// dmon in the foreground, stopped (TERM, then KILL) when dropped.
struct Dmon {
    child: Child,
    status: PathBuf,
}

impl Dmon {
    fn start(command: &mut Command, status: PathBuf) -> Dmon {
        let child = command.arg("-n").arg("-I").arg(&status).args(["sleep", "600"]).spawn().unwrap();
        let dmon = Dmon { child, status };
        assert!(wait_until(Duration::from_secs(10), || dmon.cmd_pid().is_some()), "no start: {:?}", dmon.lines());
        dmon
    }

    fn lines(&self) -> Vec<String> {
        lines(&self.status)
    }

    fn cmd_pid(&self) -> Option<String> {
        self.lines().iter().find_map(|l| l.strip_prefix("cmd start ").map(str::to_string))
    }

    /// The `pause` or `resume` lines of the command's run: DMon's line for the
    /// load, with `reason=pressure` after it for the pressure.
    fn count(&self, what: &str) -> usize {
        let line = format!("cmd {what} {}", self.cmd_pid().unwrap());
        let pressure = format!("{line} reason=pressure");
        self.lines().iter().filter(|l| **l == line || **l == pressure).count()
    }

    fn wait_for(&self, what: &str, n: usize, limit: Duration) -> bool {
        wait_until(limit, || self.count(what) >= n)
    }
}

impl Drop for Dmon {
    fn drop(&mut self) {
        // SAFETY: kill takes integers.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let ended = wait_until(Duration::from_secs(15), || self.child.try_wait().ok().flatten().is_some());
        if !ended {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Several readers of files that together are larger than the memory limit:
/// each read evicts what the next one needs, and every allocation reclaims
/// first (the stalls memory pressure counts). Measured here: `some avg10` near
/// 25 % after 8 s with three readers of 32 MiB under a 64 MiB limit.
fn thrash_page_cache(generator: &mut Generator, dir: &Dir) {
    generator.limit_memory(64);
    let mut script = String::new();
    for n in 0..3 {
        let file = dir.path(&format!("data{n}"));
        let f = file.display();
        script +=
            &format!("dd if=/dev/zero of={f} bs=1M count=32 status=none; (while :; do cat {f} >/dev/null; done) & ");
        generator.files.push(file);
    }
    generator.start(&(script + "wait"));
}

/// Synchronous direct writes: the writer does nothing but wait on the disk,
/// the `full` line of io (measured here: near 30 % after 8 s, rising).
fn write_synchronously(generator: &mut Generator, dir: &Dir) {
    let file = dir.path("io");
    let script = format!(
        "while :; do dd if=/dev/zero of={} bs=64k count=200 oflag=direct,dsync status=none; done",
        file.display()
    );
    generator.files.push(file);
    generator.start(&script);
}

/// The common course of the source tests: pause while the generator runs, stay
/// paused while it goes on, resume once it stopped and the pressure decayed.
fn pauses_while_generated(source: &str, line: &str, generate: fn(&mut Generator, &Dir)) {
    if let Some(why) = lacks_psi() {
        return common::skip(why);
    }
    let dir = Dir::new(source);
    let mut generator = Generator::new(source);
    let marks = format!("{source}:10:8");
    let dmon = Dmon::start(dmon().env("DMON_PRESSURE_DIR", &generator.v2).args(["--pressure", &marks]), dir.path("st"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(dmon.count("pause"), 0, "paused with no pressure: {:?}", dmon.lines());

    generate(&mut generator, &dir);
    let paused = dmon.wait_for("pause", 1, Duration::from_secs(30));
    let seen = avg10(&generator.pressure(source), line);
    assert!(paused, "no pause under {source} pressure ({line} avg10 {seen}): {:?}", dmon.lines());
    // While the generator runs, avg10 stays above the low mark: no resume.
    std::thread::sleep(Duration::from_secs(4));
    let seen = avg10(&generator.pressure(source), line);
    assert_eq!(dmon.count("resume"), 0, "resumed under pressure ({line} avg10 {seen}): {:?}", dmon.lines());

    generator.stop();
    // avg10 decays below 8 % in some seconds, and must stay there 6 s.
    let resumed = dmon.wait_for("resume", 1, Duration::from_secs(60));
    let seen = avg10(&generator.pressure(source), line);
    assert!(resumed, "no resume once the {source} pressure ended ({line} avg10 {seen}): {:?}", dmon.lines());
}

#[test]
fn memory_pressure_pauses_the_tree_and_calm_resumes_it() {
    pauses_while_generated("memory", "some", thrash_page_cache);
}

#[test]
fn io_pressure_pauses_the_tree_and_calm_resumes_it() {
    pauses_while_generated("io", "full", write_synchronously);
}

/// `-L` and `--pressure` together: either one high pauses; the tree resumes only
/// once both are low.
#[test]
fn load_and_pressure_pause_together_and_resume_when_both_are_low() {
    if let Some(why) = lacks_psi() {
        return common::skip(why);
    }
    let dir = Dir::new("gate");
    let load = dir.path("loadavg");
    fs::write(&load, "0.10 0.10 0.10 1/100 1\n").unwrap();
    let mut generator = Generator::new("gate");
    let dmon = Dmon::start(
        dmon().env("DMON_LOADAVG_FILE", &load).env("DMON_PRESSURE_DIR", &generator.v2).args([
            "-L",
            "2",
            "-l",
            "1",
            "--pressure",
            "io:10:8",
        ]),
        dir.path("st"),
    );
    // High load alone pauses.
    fs::write(&load, "5.00 1.00 1.00 1/100 1\n").unwrap();
    assert!(dmon.wait_for("pause", 1, Duration::from_secs(10)), "no pause on load: {:?}", dmon.lines());

    // Pressure rises while the load is high (the trigger fires within a window
    // of it); then the load drops: still paused.
    thrash_page_cache(&mut generator, &dir);
    let memory = generator.pressure("memory");
    let rose = wait_until(Duration::from_secs(30), || avg10(&memory, "some") > 15.0);
    assert!(rose, "no memory pressure: {}", avg10(&memory, "some"));
    std::thread::sleep(Duration::from_secs(3));
    fs::write(&load, "0.50 1.00 1.00 1/100 1\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(dmon.count("resume"), 0, "resumed on low load under memory pressure: {:?}", dmon.lines());

    // Both low: resumed.
    generator.stop();
    let resumed = dmon.wait_for("resume", 1, Duration::from_secs(60));
    let seen = avg10(&memory, "some");
    assert!(resumed, "no resume with both low (memory some avg10 {seen}): {:?}", dmon.lines());
    assert_eq!(dmon.count("pause"), 1, "{:?}", dmon.lines());
}

/// The source names, and one source at most once; `-L` is allowed beside it.
#[test]
fn pressure_sources_on_the_command_line() {
    let cases: [(&[&str], &str); 4] = [
        (&["--pressure", "disk:40"], "--pressure: 'disk:40' has an unknown source 'disk' (expected cpu, memory or io)"),
        (&["--pressure", "memory:x"], "--pressure: 'memory:x' is not a percentage"),
        (&["--pressure", "io:40", "--pressure", "io:50:10"], "--pressure: io is given twice (at most once per source)"),
        (&["--pressure", "40", "--pressure", "cpu:50"], "--pressure: cpu is given twice (at most once per source)"),
    ];
    for (args, expected) in cases {
        let out = run(dmon().arg("-n").args(args).arg("true"));
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with(&format!("dmon: {expected}")) && err.lines().count() == 1, "{args:?}: {err:?}");
    }
    // A pressure file that cannot be opened is named.
    let dir = Dir::new("nopsi");
    let out = run(dmon().env("DMON_PRESSURE_DIR", &dir.0).args(["-n", "--pressure", "memory:40", "true"]));
    let expected = format!("dmon: --pressure: cannot watch {}: ", dir.path("memory.pressure").display());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).starts_with(&expected), "{}", stderr_of(&out));

    if let Some(why) = lacks_psi() {
        return common::skip(why);
    }
    let load = dir.path("loadavg");
    fs::write(&load, "0.10 0.10 0.10 1/100 1\n").unwrap();
    let out = run(dmon().env("DMON_LOADAVG_FILE", &load).args([
        "-n",
        "-1",
        "-L",
        "3",
        "--pressure",
        "cpu:90",
        "--pressure",
        "memory:90",
        "--pressure",
        "io:90",
        "true",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

/// A pressure file whose cgroup is removed reports POLLERR for ever: dmon says
/// so once and stops watching it, rather than spin on it with the tree paused.
#[test]
fn a_pressure_source_that_vanishes_is_dropped_with_a_warning() {
    if let Some(why) = lacks_psi() {
        return common::skip(why);
    }
    let dir = Dir::new("vanish");
    let generator = Generator::new("vanish");
    let err = fs::File::create(dir.path("err")).unwrap();
    let dmon = Dmon::start(
        dmon().env("DMON_PRESSURE_DIR", &generator.v2).args(["--pressure", "io:10"]).stderr(err),
        dir.path("st"),
    );
    fs::remove_dir(&generator.v2).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid = dmon.child.id() as i32;
    let before = common::context_switches(pid);
    std::thread::sleep(Duration::from_secs(2));
    let woke = common::context_switches(pid) - before;
    assert!(woke < 10, "dmon woke up {woke} times in 2 s on a vanished pressure file");
    assert_eq!(dmon.count("pause"), 0, "paused on a vanished pressure file: {:?}", dmon.lines());
    let text = fs::read_to_string(dir.path("err")).unwrap();
    let warning = format!("io pressure: {} is gone, no longer watched", generator.pressure("io").display());
    assert_eq!(text.matches(&warning).count(), 1, "{text:?}");
}

/// The `total` (µs stalled since boot) of the `some` line of /proc/pressure/cpu.
fn cpu_stalled() -> f64 {
    let text = fs::read_to_string("/proc/pressure/cpu").unwrap_or_default();
    let found = text.lines().find(|l| l.starts_with("some"));
    found.and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("total=")?.parse().ok())).unwrap_or(0.0)
}

/// On the system-wide file, a trigger just armed reports a rise within its
/// first windows while the machine is idle (Linux 6.18): dmon does not pause
/// for it. The machine's own stall is measured beside, since that is what the
/// file counts: a run where it was truly high says so instead of passing.
#[test]
fn a_new_trigger_on_an_idle_machine_pauses_nothing() {
    if !Path::new("/proc/pressure/cpu").exists() {
        return common::skip("this kernel has no /proc/pressure/cpu");
    }
    let dir = Dir::new("psi-idle");
    let started = std::time::Instant::now();
    let before = cpu_stalled();
    let dmon = Dmon::start(dmon().args(["--pressure", "cpu:90"]), dir.path("st"));
    std::thread::sleep(Duration::from_secs(7));
    let stalled = cpu_stalled() - before;
    let share = stalled / started.elapsed().as_micros() as f64;
    if share > 0.5 {
        return common::skip(&format!("the machine itself stalled {:.0}% of the time", share * 100.0));
    }
    assert_eq!(dmon.count("pause"), 0, "paused with {:.1}% stalled: {:?}", share * 100.0, dmon.lines());
}
