//! Helpers for the reliability tests (and tests/edges.rs) beyond tests/common:
//! reading a live process's descriptors, memory and children from /proc, and
//! waiting for output with a bound.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::Duration;

// What tests/edges.rs, which shares this file, takes from tests/common through
// it (the reliability tests name tests/common themselves).
#[allow(unused_imports)]
pub use crate::common::{
    DMON, Dir, Stopper, Tmpfs, alive, dmon as dmon_cmd, finish, lines, read, run, signal, started, state, stderr_of,
    wait_until,
};

pub const DLOG: &str = env!("CARGO_BIN_EXE_dlog");
pub const DRLOG: &str = env!("CARGO_BIN_EXE_drlog");

/// Whether the long (soak) forms run: `DMON_SOAK=1`.
pub fn soak() -> bool {
    std::env::var_os("DMON_SOAK").is_some_and(|v| v != "0" && !v.is_empty())
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
    if !crate::common::is_root() {
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

/// Whether a process is blocked writing into a full pipe.
pub fn blocked_on_pipe(pid: i32) -> bool {
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    state(pid) == Some('S') && wchan.contains("pipe_write")
}
