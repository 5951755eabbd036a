//! The guard every test that starts a dmon holds (tests/common's `Stopper`).

use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// Dropped, a Stopper ends its dmon with TERM, so that dmon stops its tree too,
/// and reaps it; it leaves alone a process that is not dmon.
#[test]
#[allow(clippy::zombie_processes, reason = "the Stopper reaps dmon; that is what is tested")]
fn a_stopper_ends_its_dmon_and_the_tree_and_nothing_else() {
    let dir = Dir::new("stopper");
    let status = dir.path("status");
    let child = dmon().args(["-n", "-I"]).arg(&status).args(["sleep", "600"]).spawn().unwrap();
    let pid = child.id() as i32;
    let stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || !started(&status, "cmd").is_empty()));
    let cmd = started(&status, "cmd")[0];
    drop(stopper);
    assert_eq!(state(pid), None, "dmon was not ended and reaped");
    assert!(!alive(cmd), "the command outlived dmon");
    assert!(lines(&status).contains(&format!("cmd stop {cmd}")), "dmon was not stopped with TERM");

    let mut sleep = Command::new("sleep").arg("600").spawn().unwrap();
    drop(Stopper::of(&sleep));
    let left_alone = alive(sleep.id() as i32);
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert!(left_alone, "a process that is not dmon was ended");
}
