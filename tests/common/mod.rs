//! What the test binaries share: the one way to skip, and readings of /proc.

#![allow(dead_code)]

/// A test that cannot run here says why and returns; where `CI` is set it fails
/// instead, since CI has every feature the tests use and a skip there would be a
/// regression hiding as a pass.
pub fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run under CI: {why}");
    }
    eprintln!("skipped: {why}");
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
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
