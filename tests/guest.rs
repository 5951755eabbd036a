//! The qemu guest of integration/vm/guest.sh, proved: it boots a pure cgroup-v2
//! kernel with the controllers enabled, its command's exit status, stdout and
//! stderr come through exactly, and the host's built dmon runs there. The guest is
//! booted once for the whole file: `in_a_pure_v2_guest` runs this test binary in it
//! (tests/common/vm.rs), and the other tests are the half that runs there.

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::vm;
use common::*;

/// The lines the in-guest half writes straight to its stdout, past the test
/// harness's capture, for the host half to find exactly.
const LINES: usize = 100_000;
const BEGIN: &str = "--- numbered lines begin ---";
const END: &str = "--- numbered lines end ---";
const STDERR_LINE: &str = "a line for stderr, from the guest";
/// A variable passed with spaces and quotes.
const VALUE: &str = "two  spaces, 'single' and \"double\" quotes, a $dollar";

/// What the guest's stdout must hold between BEGIN and END.
fn numbered() -> String {
    (1..=LINES).map(|n| format!("line {n}\n")).collect()
}

#[test]
fn in_a_pure_v2_guest() {
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    // The binary runs under a shell that turns its success into 7, so that the
    // check is of an exact exit status coming out, not of zero or not zero.
    let argv = ["sh", "-c", "\"$@\" && exit 7", "sh", exe, "--test-threads=1", "--skip", "in_a_pure_v2_guest"];
    let out = match vm::run(&argv, &[("DMON_GUEST_CHECK", VALUE)], Duration::from_secs(300)) {
        Err(why) => return skip(&why),
        Ok(out) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The harness's report, without the numbered lines.
    let report: String = stdout.lines().filter(|l| !l.starts_with("line ")).map(|l| format!("{l}\n")).collect();
    println!("in the guest:\n{report}{stderr}");
    assert_eq!(out.status.code(), Some(7), "the in-guest tests failed or their status was lost");
    assert!(report.contains("test result: ok. 3 passed"), "not every in-guest test ran");
    let begin = stdout.find(BEGIN).expect("the numbered lines' start") + BEGIN.len() + 1;
    let end = stdout.find(END).expect("the numbered lines' end");
    assert!(stdout[begin..end] == numbered(), "the numbered lines did not come through exactly");
    assert!(stderr.lines().any(|l| l == STDERR_LINE), "the guest's stderr line did not come through");
}

/// The in-guest half returns at once on the host.
fn on_host() -> bool {
    if vm::in_guest() {
        return false;
    }
    eprintln!("runs in the qemu guest only (in_a_pure_v2_guest)");
    true
}

#[test]
fn cgroup_is_pure_v2_with_controllers() {
    if on_host() {
        return;
    }
    let fs = nix::sys::statfs::statfs("/sys/fs/cgroup").unwrap();
    assert_eq!(fs.filesystem_type(), nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    let mount = mounts.lines().find(|l| l.split(' ').nth(1) == Some("/sys/fs/cgroup")).unwrap();
    assert!(mount.starts_with("cgroup2 /sys/fs/cgroup cgroup2 ") && mount.contains("nsdelegate"), "{mount}");
    let control = fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control").unwrap();
    let control: Vec<&str> = control.split_whitespace().collect();
    for controller in ["cpu", "io", "memory", "pids"] {
        assert!(control.contains(&controller), "{controller} not in {control:?}");
    }
}

#[test]
fn output_environment_and_directory_come_through() {
    if on_host() {
        return;
    }
    assert_eq!(std::env::var("DMON_GUEST_CHECK").as_deref(), Ok(VALUE));
    assert_eq!(std::env::var("HOME").as_deref(), Ok("/root"));
    assert_eq!(std::env::current_dir().unwrap(), std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(is_root());
    // Straight to the file descriptors, past the harness's capture of print!.
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{BEGIN}\n{}{END}\n", numbered()).unwrap();
    stdout.flush().unwrap();
    writeln!(std::io::stderr(), "{STDERR_LINE}").unwrap();
}

#[test]
fn the_hosts_dmon_runs_in_a_cgroup_of_its_own() {
    if on_host() {
        return;
    }
    let out = Command::new(DMON)
        .args(["-n", "-1", "--tree", "cgroup2", "sh", "-c", "cat /proc/self/cgroup"])
        .env_remove("DMON_OPTIONS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr_of(&out));
    assert!(text.lines().any(|l| l.starts_with("0::/") && l.contains("/dmon.") && l.contains("/cmd")), "{text}");
}
