//! The qemu guest of `integration/vm/guest.sh`: a real pure cgroup-v2 kernel with
//! the cpu, io, memory and pids controllers enabled, for the checks this host's
//! hybrid layout cannot give (`memory.max`, `pids.max`, `cpu.max`,
//! `memory.oom.group`, `memory.peak`, `memory.events`). The guest runs the host's
//! own files (read-only under a tmpfs overlay), so the built test binaries and
//! dmon run there as they are, as root, in the caller's working directory.
//!
//! A boot costs seconds and everything in the guest runs 5–10 times slower
//! (emulation, no KVM), so a test binary boots it once for all its guest checks by
//! running itself there. One host-side test does it and asserts the result, the
//! others are the in-guest half and return at once on the host:
//!
//! ```ignore
//! #[test]
//! fn in_a_pure_v2_guest() {
//!     let exe = std::env::current_exe().unwrap();
//!     let exe = exe.to_str().unwrap();
//!     let argv = [exe, "--test-threads=1", "--skip", "in_a_pure_v2_guest"];
//!     match vm::run(&argv, &[], Duration::from_secs(300)) {
//!         Err(why) => skip(&why),
//!         Ok(out) => assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout)),
//!     }
//! }
//!
//! #[test]
//! fn memory_max_kills_the_hog() {
//!     if !vm::in_guest() {
//!         return eprintln!("runs in the guest (in_a_pure_v2_guest)");
//!     }
//!     // ... /sys/fs/cgroup is pure v2 here, with every controller
//! }
//! ```
//!
//! `--test-threads=1` keeps the guest's two emulated CPUs for one test at a time,
//! and `--skip` keeps the guest from booting a guest of its own.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The script, beside the sources.
pub fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/vm/guest.sh")
}

/// Whether this process runs inside the guest (guest.sh sets `DMON_GUEST=1`).
pub fn in_guest() -> bool {
    std::env::var_os("DMON_GUEST").is_some()
}

/// Runs `argv` in the guest with `env` added to its environment (beside `PATH`,
/// `HOME=/root`, `DMON_GUEST=1` and `CI` if set), in this process's working
/// directory, the whole guest bounded by `timeout`. Boots the guest and sets it
/// up first if needed (`guest.sh setup`, which installs packages as root).
///
/// Err with guest.sh's reason when the guest cannot be had here (no qemu or
/// kernel, not root to install them, the guest did not boot): the caller skips.
/// Else the command's output and exit status; a guest that ran out of time gives
/// status 124 and guest.sh's line on stderr, a failure for the caller to report.
pub fn run(argv: &[&str], env: &[(&str, &str)], timeout: Duration) -> Result<Output, String> {
    let script = script();
    if !script.exists() {
        return Err(format!("{} is missing", script.display()));
    }
    let mut command = Command::new("bash");
    command.arg(&script).arg("run").arg("--timeout").arg(timeout.as_secs().max(1).to_string());
    for (name, value) in env {
        command.arg("--env").arg(format!("{name}={value}"));
    }
    command.arg("--").args(argv).stdin(Stdio::null());
    let output = command.output().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    // 125 with guest.sh's own last line: the guest could not be had (a command
    // of the guest ending 125 has no such line last).
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or("");
    if output.status.code() == Some(125) && last.starts_with("guest.sh: ") {
        return Err(format!("no qemu guest: {last}"));
    }
    Ok(output)
}

/// As [`run`], with the host's systemd as the guest's PID 1 (`guest.sh run
/// --systemd`): `argv` runs as its service `dmon-guest.service`, with
/// `DMON_GUEST_SYSTEMD=1` beside `DMON_GUEST=1`.
pub fn run_systemd(argv: &[&str], env: &[(&str, &str)], timeout: Duration) -> Result<Output, String> {
    let script = script();
    if !script.exists() {
        return Err(format!("{} is missing", script.display()));
    }
    let mut command = Command::new("bash");
    command.arg(&script).arg("run").arg("--systemd").arg("--timeout").arg(timeout.as_secs().max(1).to_string());
    for (name, value) in env {
        command.arg("--env").arg(format!("{name}={value}"));
    }
    command.arg("--").args(argv).stdin(Stdio::null());
    let output = command.output().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or("");
    if output.status.code() == Some(125) && last.starts_with("guest.sh: ") {
        return Err(format!("no qemu guest with systemd: {last}"));
    }
    Ok(output)
}

/// Whether this process runs inside the guest under systemd (`guest.sh run --systemd`).
pub fn under_systemd() -> bool {
    std::env::var_os("DMON_GUEST_SYSTEMD").is_some()
}
