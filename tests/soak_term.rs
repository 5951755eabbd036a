//! TERM at random moments to a dmon that restarts `true` as fast as it can:
//! dmon must always end. The long soak is `integration/soak.py` (case d); these
//! are its bounded cousins for `cargo test`.
//!
//! A daemon's caller knows one pid, the detaching parent's, until that parent
//! exits once the daemon is ready. A TERM to it in between ended the parent by
//! TERM's default action, and the caller saw its dmon die, while the daemon,
//! re-parented to init, went on restarting its command for good.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Dir, alive, dmon, signal};

/// Live processes whose command line carries `tag` (a pid file's path: each
/// try has its own).
fn carrying(tag: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(argv) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if argv.split(|&b| b == 0).any(|arg| arg == tag.as_bytes()) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Kills a dmon that outlived its TERM and removes the cgroups it left.
fn kill_survivor(pid: i32) {
    let home = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|c| c.lines().find_map(|l| l.strip_prefix("0::").map(str::to_string)));
    signal(pid, libc::SIGKILL);
    common::wait_until(Duration::from_secs(5), || !alive(pid));
    let root = if Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        "/sys/fs/cgroup/unified"
    } else {
        "/sys/fs/cgroup"
    };
    if let Some(dir) = home.and_then(|h| Some(Path::new(root).join(h.trim_start_matches('/')).parent()?.to_path_buf()))
    {
        if dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("dmon.")) {
            for leaf in ["cmd", "supervisor"] {
                let leaf = dir.join(leaf);
                common::wait_until(Duration::from_secs(5), || {
                    std::fs::read_to_string(leaf.join("cgroup.events")).map_or(true, |e| e.contains("populated 0"))
                });
                let _ = std::fs::remove_dir(leaf);
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

#[test]
fn a_term_to_the_detaching_parent_ends_the_daemon() {
    if !common::is_root() {
        return common::skip("the soak's dmons make cgroups, which needs root here");
    }
    let dir = Dir::new("soak-term-parent");
    let (tries, mut survivors, mut by_term) = (40, Vec::new(), 0);
    for i in 0..tries {
        let pid_file = dir.s(&format!("{i}.pid"));
        let child = dmon().args(["--backoff-max", "0", "-p", &pid_file, "true"]).spawn().unwrap();
        // Spread over the parent's wait: the daemon is ready a few ms after the fork.
        std::thread::sleep(Duration::from_micros(150 * (i % 40)));
        signal(child.id() as i32, libc::SIGTERM);
        let status = common::finish(child, Duration::from_secs(10));
        by_term += usize::from(std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGTERM));
        let sent = Instant::now();
        if !common::wait_until(Duration::from_secs(5), || carrying(&pid_file).is_empty()) {
            let left = carrying(&pid_file);
            survivors.push((i, left.clone(), sent.elapsed()));
            left.into_iter().for_each(kill_survivor);
        }
    }
    assert!(
        survivors.is_empty(),
        "{} of {tries} daemons still ran 5 s after a TERM to their detaching parent ({by_term} parents \
         died of the TERM): {survivors:?}",
        survivors.len()
    );
}

#[test]
fn a_term_at_random_moments_ends_a_restarting_dmon() {
    if !common::is_root() {
        return common::skip("the soak's dmons make cgroups, which needs root here");
    }
    let dir = Dir::new("soak-term-foreground");
    let (tries, mut late) = (40, Vec::new());
    for i in 0..tries {
        let pid_file = dir.s(&format!("{i}.pid"));
        let child = dmon().args(["-n", "--backoff-max", "0", "-p", &pid_file, "true"]).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(500 * (i % 40)));
        signal(child.id() as i32, libc::SIGTERM);
        let pid = child.id() as i32;
        let mut child = Some(child);
        let ended = common::wait_until(Duration::from_secs(5), || {
            child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_some()) && carrying(&pid_file).is_empty()
        });
        if !ended {
            late.push((i, carrying(&pid_file)));
            carrying(&pid_file).into_iter().for_each(kill_survivor);
            kill_survivor(pid);
        }
        if let Some(mut c) = child.take() {
            let _ = c.wait();
        }
    }
    assert!(late.is_empty(), "{} of {tries} dmons still ran 5 s after a TERM: {late:?}", late.len());
}
