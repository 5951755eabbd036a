//! The tree benchmark's measuring part (run by integration/bench-tree.sh, or
//! `cargo test --release --test tree -- --ignored --nocapture bench`): for each
//! backend and tree size, the time from the decision to a fully stopped tree,
//! to a fully killed tree, and the CPU time the tree used while paused; then,
//! on a new tree, how long `terminate` (TERM to every process, as at a timeout
//! or shutdown) keeps its caller, and the time until the tree is gone.
//!
//! "Fully stopped" is the kernel's word where it has one (`frozen 1` for v2,
//! FROZEN for the v1 freezer) and every process in state T for signals.
//! Sizes come from DMON_BENCH_SIZES (default "10 100 1000"), backends from
//! DMON_BENCH_BACKENDS (default "cgroup2 freezer signals").

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use dmon::cli::TreeChoice;
use dmon::tree::Tree;

use super::support::wait_until;

/// Processes whose command line carries `tag`, with their state and CPU ticks.
fn census(tag: &str) -> Vec<(i32, char, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if !String::from_utf8_lossy(&cmdline).contains(tag) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let state = fields[0].chars().next().unwrap_or('?');
        if state == 'Z' {
            continue;
        }
        let ticks = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        out.push((pid, state, ticks));
    }
    out
}

fn reap() {
    // SAFETY: waitpid with a valid pointer.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn fully_stopped(backend: &str, tag: &str, dir: Option<&std::path::Path>) -> bool {
    match (backend, dir) {
        ("cgroup2", Some(dir)) => {
            std::fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|t| t.contains("frozen 1"))
        }
        ("freezer", Some(dir)) => {
            std::fs::read_to_string(dir.join("freezer.state")).is_ok_and(|t| t.trim() == "FROZEN")
        }
        _ => census(tag).iter().all(|(_, state, _)| *state == 'T'),
    }
}

struct Row {
    backend: &'static str,
    size: usize,
    stop: Duration,
    kill: Duration,
    paused_ticks: u64,
    term_call: Duration,
    term_empty: Duration,
}

fn measure(choice: TreeChoice, size: usize) -> Option<Row> {
    let trees = match dmon::tree::open(choice, None, false, Default::default()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench: {choice:?}: {e}");
            return None;
        }
    };
    let backend = trees.choice.backend.name();
    let leaf = trees.home.as_ref().map(|h| h.join("cmd"));
    let mut tree = trees.cmd;
    let tag = format!("dmon-bench-{}-{backend}-{size}", std::process::id());
    grow(&mut tree, &tag, size, backend);

    let t0 = Instant::now();
    tree.freeze().unwrap();
    assert!(wait_until(Duration::from_secs(30), || fully_stopped(backend, &tag, leaf.as_deref())));
    let stop = t0.elapsed();
    let before: u64 = census(&tag).iter().map(|p| p.2).sum();
    std::thread::sleep(Duration::from_secs(2));
    let paused_ticks = census(&tag).iter().map(|p| p.2).sum::<u64>().saturating_sub(before);
    tree.thaw().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let t0 = Instant::now();
    tree.kill().unwrap();
    let kill = until_empty(&mut tree, t0, backend, size);

    // TERM ends every process of this tree (none traps it).
    let tag = format!("{tag}-term");
    grow(&mut tree, &tag, size, backend);
    let t0 = Instant::now();
    tree.terminate().unwrap();
    let term_call = t0.elapsed();
    let term_empty = until_empty(&mut tree, t0, backend, size);
    tree.remove().unwrap();
    Some(Row { backend, size, stop, kill, paused_ticks, term_call, term_empty })
}

/// Waits until the tree is empty, KILLing it again every second, as the loop
/// does; returns the time since `t0`.
fn until_empty(tree: &mut Tree, t0: Instant, backend: &str, size: usize) -> Duration {
    let mut last_kill = Instant::now();
    let emptied = wait_until(Duration::from_secs(60), || {
        reap();
        if let Some(at) = tree.deadline() {
            if at <= Instant::now() {
                tree.on_tick();
            }
        }
        if last_kill.elapsed() > Duration::from_secs(1) {
            let _ = tree.kill();
            last_kill = Instant::now();
        }
        tree.is_empty()
    });
    let took = t0.elapsed();
    assert!(emptied, "{backend}: the tree of {size} did not die");
    reap();
    took
}

/// Starts a tree of `size` busy processes tagged `tag` and waits until all run.
fn grow(tree: &mut Tree, tag: &str, size: usize, backend: &str) {
    let script = format!(
        "i=3; while [ $i -lt {size} ]; do ( while :; do :; done ) & i=$((i+1)); done; \
         ( setsid sh -c 'while :; do :; done' {tag} & ); ( setsid sh -c 'while :; do :; done' {tag} & ); \
         while :; do :; done"
    );
    let setup = tree.child_setup(false).unwrap();
    let mut command = Command::new("sh");
    command.args(["-c", &script, tag]);
    // SAFETY: raw system calls on data prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = setup.procs_fd {
                if libc::write(fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    // Reaped with every other process of the tree by `reap` (waitpid(-1)).
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().unwrap();
    tree.started(child.id() as i32);
    let grown = wait_until(Duration::from_secs(120), || census(tag).len() >= size);
    assert!(grown, "{backend}: the tree of {size} did not grow");
}

pub fn run() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let sizes: Vec<usize> = std::env::var("DMON_BENCH_SIZES")
        .unwrap_or_else(|_| "10 100 1000".into())
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    println!(
        "{:<9} {:>6} {:>10} {:>10} {:>14} {:>12} {:>12}",
        "backend", "procs", "stop ms", "kill ms", "paused ticks", "term call ms", "term end ms"
    );
    // DMON_BENCH_BACKENDS: a subset, e.g. "signals".
    let backends = std::env::var("DMON_BENCH_BACKENDS").unwrap_or_else(|_| "cgroup2 freezer signals".into());
    for (choice, name) in
        [(TreeChoice::Cgroup2, "cgroup2"), (TreeChoice::Freezer, "freezer"), (TreeChoice::Signals, "signals")]
    {
        if !backends.split_whitespace().any(|b| b == name) {
            continue;
        }
        for &size in &sizes {
            if let Some(r) = measure(choice, size) {
                println!(
                    "{:<9} {:>6} {:>10.2} {:>10.2} {:>14} {:>12.2} {:>12.2}",
                    r.backend,
                    r.size,
                    r.stop.as_secs_f64() * 1e3,
                    r.kill.as_secs_f64() * 1e3,
                    r.paused_ticks,
                    r.term_call.as_secs_f64() * 1e3,
                    r.term_empty.as_secs_f64() * 1e3
                );
            }
        }
    }
}
