//! Case 7: a storm of signals is forwarded without a crash or a hang.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::*;

/// Case 7: 10,000 HUP, USR1 and USR2 sent to dmon with `-s` as fast as one thread
/// can: dmon neither dies nor hangs, forwards them to the command (coalesced, as
/// the kernel coalesces pending signals), still forwards each one afterwards,
/// keeps its descriptors, and stops cleanly.
#[test]
fn signal_storm_is_forwarded_without_crash_or_hang() {
    let dir = Dir::new("storm");
    let status = dir.path("status");
    let got = dir.path("got");
    let ready = dir.path("ready");
    let script = format!(
        "for s in HUP USR1 USR2; do trap \"echo $s >> {got}\" $s; done; touch {ready}; while :; do sleep 0.01; done",
        got = got.display(),
        ready = ready.display()
    );
    let child = dmon().args(["-n", "-s", "-I"]).arg(&status).args(["sh", "-c", &script]).spawn().unwrap();
    let dmon = child.id() as i32;
    let _stopper = Stopper::new(dmon);
    assert!(wait_until(Duration::from_secs(10), || ready.exists()));
    let cmd = started(&status, "cmd")[0];
    let fds_before = fds(dmon);

    let signals = [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];
    let start = Instant::now();
    for i in 0..10_000 {
        signal(dmon, signals[i % 3]);
    }
    let storm = start.elapsed();
    for name in ["HUP", "USR1", "USR2"] {
        assert!(
            wait_until(Duration::from_secs(30), || read(&got).lines().any(|l| l == name)),
            "the command never got {name}"
        );
    }
    assert!(alive(dmon) && alive(cmd), "dmon or the command died in the storm");
    let received = read(&got).lines().count();
    let forwarded = lines(&status).iter().filter(|l| l.starts_with(&format!("cmd signal {cmd} "))).count();

    // Afterwards each signal is still forwarded.
    fs::write(&got, "").unwrap();
    for (signo, name) in signals.iter().zip(["HUP", "USR1", "USR2"]) {
        signal(dmon, *signo);
        assert!(
            wait_until(Duration::from_secs(30), || read(&got).lines().any(|l| l == name)),
            "{name} is no longer forwarded after the storm"
        );
    }
    assert_eq!(fds(dmon), fds_before, "dmon's descriptors changed in the storm");
    signal(dmon, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(30)).success());
    assert!(!alive(cmd));
    for line in lines(&status) {
        let words: Vec<&str> = line.split(' ').collect();
        let whole = match words.as_slice() {
            ["tree", ..] => true,
            ["cmd", "signal", pid, signo] => pid.parse::<i32>().is_ok() && signo.parse::<i32>().is_ok(),
            ["cmd", "start" | "stop", pid] => pid.parse::<i32>().is_ok(),
            ["cmd", "exit", pid, code] => pid.parse::<i32>().is_ok() && code.parse::<i32>().is_ok(),
            ["cmd", "usage", pid, reason, ..] => pid.parse::<i32>().is_ok() && reason.starts_with("reason="),
            _ => false,
        };
        assert!(whole, "status line {line:?} is not whole");
    }
    println!(
        "signal storm: 10000 signals sent in {:.0} ms; dmon forwarded {forwarded}, the command ran its traps {received} times",
        storm.as_secs_f64() * 1000.0
    );
}
