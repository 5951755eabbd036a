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
    let (tries, mut survivors, mut by_term, mut ready) = (40, Vec::new(), 0, 0);
    for i in 0..tries {
        let pid_file = dir.s(&format!("{i}.pid"));
        let child = dmon().args(["--backoff-max", "0", "-p", &pid_file, "true"]).spawn().unwrap();
        // Spread over the parent's wait: the daemon is ready a few ms after the fork.
        std::thread::sleep(Duration::from_micros(150 * (i % 40)));
        // Stopped, the parent cannot exit between the look and the TERM; one
        // that had exited already (its daemon ready) was not asked to stop.
        let parent = child.id() as i32;
        signal(parent, libc::SIGSTOP);
        common::wait_until(Duration::from_secs(5), || matches!(common::state(parent), Some('T' | 'Z') | None));
        let stopped = common::state(parent) == Some('T');
        if stopped {
            signal(parent, libc::SIGTERM);
            signal(parent, libc::SIGCONT);
        }
        let status = common::finish(child, Duration::from_secs(10));
        if !stopped {
            ready += 1;
            let daemon = common::read(Path::new(&pid_file)).trim().parse().unwrap_or(0);
            if daemon > 0 {
                signal(daemon, libc::SIGTERM);
            }
        }
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
         died of the TERM, {ready} had exited before it): {survivors:?}",
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

/// A shell that ignores TERM (`trap '' TERM`) hands the ignored disposition on
/// through exec. dmon gives TERM its default action back once it has blocked it
/// for its signalfd, but a TERM that came before, while dmon was still opening
/// its files and making its cgroups, was discarded by the kernel as ignored,
/// and dmon ran on for good.
#[test]
fn a_term_early_in_a_dmon_started_with_term_ignored_is_not_lost() {
    if !common::is_root() {
        return common::skip("the soak's dmons make cgroups, which needs root here");
    }
    let dir = Dir::new("soak-term-ignored");
    let (tries, mut late) = (30, Vec::new());
    for i in 0..tries {
        let pid_file = dir.s(&format!("{i}.pid"));
        let script = format!("trap '' TERM INT; exec {} -n --backoff-max 0 -p {pid_file} true", common::DMON);
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .env_remove("DMON_OPTIONS")
            .env_remove("DMON_LOG")
            .env_remove("NOTIFY_SOCKET")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // From the pid file on, which dmon makes early in its start-up, before
        // its cgroups: until dmon's own code runs (the shell, the loader) the
        // ignored TERM is the caller's to answer for, not dmon's.
        common::wait_until(Duration::from_secs(5), || Path::new(&pid_file).exists());
        std::thread::sleep(Duration::from_micros(100 * (i % 30)));
        signal(pid, libc::SIGTERM);
        let ended = common::wait_until(Duration::from_secs(5), || child.try_wait().unwrap().is_some());
        if !ended {
            late.push(i);
            kill_survivor(pid);
        }
        let _ = child.wait();
    }
    assert!(late.is_empty(), "{} of {tries} dmons started with TERM ignored outlived a TERM: {late:?}", late.len());
}
