//! Case 2: a command tree stopped by `-t` hundreds of times, in each backend,
//! leaves nothing behind.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::*;

/// The descriptors dmon held most often over a burst of samples: the steady
/// set of a run, without the ones a spawn holds for a moment. (Not the fewest:
/// a listing taken while dmon opens and closes descriptors can miss some that
/// were open throughout. A leaked descriptor is in every listing.)
fn steady_fds(pid: i32) -> std::collections::BTreeMap<i32, String> {
    let mut seen: Vec<(std::collections::BTreeMap<i32, String>, usize)> = Vec::new();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(2));
        let listing = fds(pid);
        if listing.is_empty() {
            continue;
        }
        match seen.iter_mut().find(|(set, _)| *set == listing) {
            Some((_, count)) => *count += 1,
            None => seen.push((listing, 1)),
        }
    }
    seen.into_iter()
        .max_by_key(|(set, count)| (*count, std::cmp::Reverse(set.len())))
        .map(|(set, _)| set)
        .unwrap_or_default()
}

/// The cgroup directories below `dir`.
fn subdirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into()).collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Case 2: a command tree (a leader and a background child) stopped by `-t`
/// hundreds of times (1,000 with DMON_SOAK=1) in each backend: dmon's steady
/// descriptors and its cgroup directories do not grow, no process of any run is
/// left, and dmon's cgroup is gone at exit.
#[test]
fn repeated_timeouts_leave_nothing_behind() {
    let runs = if soak() { 1_000 } else { 300 };
    for backend in ["cgroup2", "freezer", "signals"] {
        if let Err(why) = backend_available(backend) {
            skip(&format!("timeouts: --tree {backend}: {why}"));
            continue;
        }
        let dir = Dir::new(&format!("timeouts-{backend}"));
        let status = dir.path("status");
        let marker = format!("{}.{}", 1000 + std::process::id() % 1000, runs);
        let script = format!("sleep {marker}1 & exec sleep {marker}2");
        let child = dmon()
            .args(["-n", "--tree", backend, "-m", &runs.to_string(), "-t", "0.02", "--grace", "1"])
            .args(["--backoff-max", "0.001", "-I"])
            .arg(&status)
            .args(["sh", "-c", &script])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let _stopper = Stopper::new(pid);
        let start = Instant::now();
        assert!(wait_until(Duration::from_secs(30), || started(&status, "cmd").len() >= 20));
        let home = home_of(&status);
        let early_fds = steady_fds(pid);
        let early_dirs = home.as_deref().map(subdirs);
        assert!(wait_until(Duration::from_secs(300), || started(&status, "cmd").len() >= runs - 10));
        let late_fds = steady_fds(pid);
        let late_dirs = home.as_deref().map(subdirs);
        let code = finish(child, Duration::from_secs(120));
        let elapsed = start.elapsed();
        assert_eq!(code.code(), Some(128 + libc::SIGTERM), "--tree {backend}");
        let timeouts = lines(&status).iter().filter(|l| l.starts_with("cmd timeout ")).count();
        assert_eq!(timeouts, runs + 1, "--tree {backend}");
        // One fewer is no leak: the leaf's directory, kept for clone3, is closed
        // for good once the leaf was first killed (tree/leaf.rs, `killed`).
        assert!(
            late_fds.len() <= early_fds.len(),
            "--tree {backend}: dmon's descriptors grew:\n{early_fds:?}\n{late_fds:?}"
        );
        assert_eq!(early_dirs, late_dirs, "--tree {backend}: cgroup directories changed");
        let left = with_marker(&marker);
        assert!(left.is_empty(), "--tree {backend}: processes left over: {left:?}");
        if let Some(home) = &home {
            assert!(!home.exists(), "--tree {backend}: {} is left over", home.display());
        }
        println!(
            "timeouts: --tree {backend}: {} runs stopped by -t in {:.1} s; {} steady fds before and after; no process or cgroup left",
            runs + 1,
            elapsed.as_secs_f64(),
            late_fds.len()
        );
    }
}
