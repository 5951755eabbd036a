//! What the test binaries share: the built dmon started the one way, fresh
//! directories, bounded waits, a guard that ends a dmon when a test does, the one
//! way to skip, and readings of /proc.

#![allow(dead_code)]

pub mod seccomp;
pub mod vm;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const DMON: &str = env!("CARGO_BIN_EXE_dmon");

/// A test that cannot run here says why and returns; where `CI` is set it fails
/// instead, since CI has every feature the tests use and a skip there would be a
/// regression hiding as a pass.
pub fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run under CI: {why}");
    }
    eprintln!("skipped: {why}");
}

/// The system's python3, never a shim under root's home: a shim costs CPU that
/// a run's usage record counts, and a dropped child cannot run it.
pub fn python() -> &'static str {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("the tests need python3 in /usr/bin or /usr/local/bin")
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A fresh directory every user may write to (dropped children write
/// results into it).
pub fn shared_dir(name: &str) -> Dir {
    let dir = Dir::new(name);
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    dir
}

/// A fresh directory, removed with what is in it when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("dmon-test-{}-{name}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn s(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

impl AsRef<Path> for Dir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// dmon with none of the caller's settings (`DMON_OPTIONS`, `DMON_LOG`, a
/// `NOTIFY_SOCKET` of the caller's service manager) and standard input on
/// /dev/null; `DMON_TEST_TREE` (if set) chooses the tree backend, so that the
/// suite can run once per backend.
pub fn dmon() -> Command {
    let mut command = Command::new(DMON);
    command.env_remove("DMON_OPTIONS").env_remove("DMON_LOG").env_remove("NOTIFY_SOCKET").stdin(Stdio::null());
    if let Ok(tree) = std::env::var("DMON_TEST_TREE") {
        command.env("DMON_OPTIONS", format!("--tree {tree}"));
    }
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("dmon runs")
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits until `condition` holds, for at most `limit`. It is asked again soon at
/// first and then every 20 ms, so that a quick condition costs no time and a slow
/// one little CPU.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    condition()
}

/// Waits for a child with a bound; kills it and fails if the bound passes.
pub fn finish(mut child: Child, limit: Duration) -> ExitStatus {
    let mut status = None;
    if !wait_until(limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    }) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("dmon did not finish within {limit:?}");
    }
    status.unwrap()
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

pub fn lines(path: &Path) -> Vec<String> {
    read(path).lines().map(str::to_string).collect()
}

/// The pids in `WHO start PID` lines of a status file.
pub fn started(status: &Path, who: &str) -> Vec<i32> {
    let prefix = format!("{who} start ");
    lines(status).iter().filter_map(|l| l.strip_prefix(&prefix).and_then(|p| p.parse().ok())).collect()
}

pub fn signal(pid: i32, signal: i32) {
    // SAFETY: kill takes integers and touches no memory.
    unsafe { libc::kill(pid, signal) };
}

/// What /proc/PID/stat says of a process: its name, its state letter (R, S, T,
/// Z, ...) and its start time (clock ticks after boot); None when it is gone.
fn proc_stat(pid: i32) -> Option<(String, char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    // Fields 3 (state) and 22 (starttime) of proc(5).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((head.split_once('(')?.1.to_string(), fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

/// The state letter of a process (R, S, T, Z, ...), None when it is gone.
pub fn state(pid: i32) -> Option<char> {
    proc_stat(pid).map(|(_, state, _)| state)
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

/// Ends a dmon when dropped, so that nothing a test started outlives it, also
/// when the test fails half-way: TERM (dmon stops its trees), KILL after 10 s,
/// then the exit is waited for (and reaped, when dmon is the test's child).
///
/// The process is known by its pid and start time, taken when the guard is
/// made: pids come round again (pid_max may be 32768, and a crash loop forks
/// thousands), and another test's dmon may have the pid by the time this test
/// ends. A process that is gone, or is not dmon (still the shell that will exec
/// it, or never dmon at all), is left alone.
pub struct Stopper {
    pid: i32,
    start: Option<u64>,
}

impl Stopper {
    pub fn new(pid: i32) -> Stopper {
        Stopper { pid, start: proc_stat(pid).map(|(_, _, start)| start) }
    }

    pub fn of(child: &Child) -> Stopper {
        Stopper::new(child.id() as i32)
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        let (pid, start) = (self.pid, self.start);
        let ours = |running: bool| {
            proc_stat(pid)
                .is_some_and(|(name, state, at)| Some(at) == start && name == "dmon" && (!running || state != 'Z'))
        };
        if !ours(false) {
            return;
        }
        if ours(true) {
            signal(pid, libc::SIGTERM);
            if !wait_until(Duration::from_secs(10), || !ours(true)) {
                signal(pid, libc::SIGKILL);
                wait_until(Duration::from_secs(10), || !ours(true));
            }
        }
        // The zombie of a dmon the test started itself.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
pub struct Tmpfs {
    pub dir: Dir,
}

impl Tmpfs {
    /// Err (with the reason) when mounting is not possible here.
    pub fn mount(name: &str, size: &str) -> Result<Tmpfs, String> {
        let dir = Dir::new(name);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=1777"), "tmpfs"])
            .arg(&dir.0)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("cannot mount a tmpfs: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a logger may still hold a file open on it.
        let _ = Command::new("umount").arg("-l").arg(&self.dir.0).status();
    }
}

/// Fills a file system: one file of zeros up to ENOSPC.
pub fn fill(path: &Path) {
    use std::io::Write;
    let mut file = fs::File::create(path).unwrap();
    let block = [0u8; 4096];
    while file.write(&block).is_ok_and(|n| n > 0) {}
    // A last partial page.
    while file.write(&block[..1]).is_ok_and(|n| n > 0) {}
}

/// Voluntary and involuntary context switches of a process so far.
pub fn context_switches(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.contains("ctxt_switches"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

/// `sh -c SCRIPT` in `dir` with the built tools first on the PATH, as a user
/// types dmon's examples, and none of the caller's dmon settings.
pub fn shell(dir: impl AsRef<Path>, script: &str) -> Command {
    let bin = Path::new(DMON).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut command = Command::new("sh");
    command.args(["-c", script]).current_dir(dir).env("PATH", path).stdin(Stdio::null());
    command.env_remove("DMON_OPTIONS").env_remove("DMON_LOG").env_remove("NOTIFY_SOCKET");
    command
}

/// A Python program that touches `mib` MiB, burns about half a second of CPU,
/// then writes the CPU time it measured for itself (user + system, in ms) to
/// the file named by its argument, renamed into place whole.
pub fn busy_python(mib: u32) -> String {
    format!(
        r#"
import os, sys, time
b = b"x" * ({mib} << 20)
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
t = os.times()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%f\n" % ((t.user + t.system) * 1000))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
"#
    )
}
