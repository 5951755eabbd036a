//! Helpers for the reliability tests: temporary directories, running dmon, reading
//! a live process's descriptors, memory and children from /proc, and waiting for
//! conditions with generous bounds.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const DMON: &str = env!("CARGO_BIN_EXE_dmon");
pub const DLOG: &str = env!("CARGO_BIN_EXE_dlog");
pub const DRLOG: &str = env!("CARGO_BIN_EXE_drlog");

/// Whether the long (soak) forms run: `DMON_SOAK=1`.
pub fn soak() -> bool {
    std::env::var_os("DMON_SOAK").is_some_and(|v| v != "0" && !v.is_empty())
}

/// A fresh directory, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("dmon-rel-{}-{name}-{n}", std::process::id()));
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

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
pub struct Tmpfs {
    pub dir: Dir,
}

impl Tmpfs {
    /// None (with the reason) when mounting is not possible here.
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
        let _ = Command::new("umount").arg(&self.dir.0).status();
    }
}

/// dmon with a clean environment and standard input on /dev/null.
pub fn dmon_cmd() -> Command {
    let mut command = Command::new(DMON);
    command.env_remove("DMON_OPTIONS").env_remove("DMON_LOG").stdin(Stdio::null());
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("dmon runs")
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits until `condition` holds, for at most `limit`.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    condition()
}

/// Waits for a child with a bound; kills it and fails if the bound passes.
pub fn finish(mut child: Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dmon did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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
    // SAFETY: kill with plain integers.
    unsafe { libc::kill(pid, signal) };
}

/// The state letter of a process (R, S, T, Z, ...), None when it is gone.
pub fn state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

/// The parent pid of a process.
pub fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Every process whose parent is `pid`, with its state.
pub fn children(pid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if ppid(child) == Some(pid) {
            if let Some(s) = state(child) {
                out.push((child, s));
            }
        }
    }
    out
}

/// Processes whose command line contains `marker`.
pub fn with_marker(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // Not dmon itself, whose arguments hold the command's script.
        let is_dmon = text.split(' ').next().is_some_and(|argv0| argv0.ends_with("dmon"));
        if text.contains(marker) && !is_dmon && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// A process's open descriptors: number to what it points at.
pub fn fds(pid: i32) -> BTreeMap<i32, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else { return out };
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else { continue };
        if let Ok(target) = fs::read_link(entry.path()) {
            out.insert(fd, target.display().to_string());
        }
    }
    out
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Whether stderr shows a Rust panic or the exit status is 101 (a panic's).
pub fn panicked(output: &Output) -> bool {
    output.status.code() == Some(101) || stderr_of(output).contains("panicked")
}

/// The cgroup directory dmon named in its `tree BACKEND DIR` status line.
pub fn home_of(status: &Path) -> Option<PathBuf> {
    lines(status).iter().find_map(|l| {
        let rest = l.strip_prefix("tree ")?;
        let (_, dir) = rest.split_once(' ')?;
        Some(PathBuf::from(dir))
    })
}

/// Whether the cgroup backends can be used here (root and a writable hierarchy).
pub fn backend_available(backend: &str) -> Result<(), String> {
    let mount = match backend {
        "cgroup2" => "cgroup2",
        "freezer" => "freezer",
        _ => return Ok(()),
    };
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let found = mounts.lines().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        fields.len() > 3
            && match mount {
                "cgroup2" => fields[2] == "cgroup2",
                _ => fields[2] == "cgroup" && fields[3].split(',').any(|o| o == "freezer"),
            }
    });
    if !found {
        return Err(format!("no {mount} hierarchy is mounted"));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    Ok(())
}

/// Waits for a spawned child's exit and output with a bound; kills it and fails
/// if the bound passes (a hang).
pub fn finish_output(child: Child, limit: Duration) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            panic!("the process did not finish within {limit:?}");
        }
    }
}

/// Stops a spawned dmon when a test fails half-way, so that nothing it started
/// outlives the test: TERM (dmon stops its trees), then KILL after a while.
pub struct Stopper(pub i32);

impl Drop for Stopper {
    fn drop(&mut self) {
        if std::thread::panicking() && alive(self.0) {
            signal(self.0, libc::SIGTERM);
            if !wait_until(Duration::from_secs(10), || !alive(self.0)) {
                signal(self.0, libc::SIGKILL);
            }
        }
    }
}
