//! Case 4: dmon killed with SIGKILL leaves its tree, and a new dmon starts
//! cleanly beside it.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::support::*;

/// Case 4: dmon killed with SIGKILL, in each backend. It cannot clean up, so its
/// command tree keeps running (in its cgroup, or re-parented to init with the
/// signal backend), and its cgroup stays. A new dmon with the same pid file and
/// cgroup parent starts cleanly, leaves the orphaned tree alone (it never kills
/// what it did not start) and removes the old cgroup once it is empty.
#[test]
fn dmon_killed_leaves_its_tree_and_a_new_dmon_starts_cleanly() {
    for backend in ["cgroup2", "freezer", "signals"] {
        if let Err(why) = backend_available(backend) {
            skip(&format!("dmon killed: --tree {backend}: {why}"));
            continue;
        }
        let dir = Dir::new(&format!("killed-{backend}"));
        let pid_file = dir.path("dmon.pid");
        let marker = format!("{}.{}", 2000 + std::process::id() % 1000, backend.len());
        let start = |status: &Path| {
            dmon()
                .args(["-n", "--tree", backend, "-p"])
                .arg(&pid_file)
                .arg("-I")
                .arg(status)
                .args(["sh", "-c", &format!("sleep {marker}1 & exec sleep {marker}2")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let first_status = dir.path("status1");
        let mut first = start(&first_status);
        let _first_stopper = Stopper::of(&first);
        assert!(wait_until(Duration::from_secs(10), || started(&first_status, "cmd").len() == 1));
        assert!(wait_until(Duration::from_secs(10), || with_marker(&marker).len() == 2));
        let orphans = with_marker(&marker);
        let old_home = home_of(&first_status);
        first.kill().unwrap();
        first.wait().unwrap();
        assert!(orphans.iter().all(|&p| alive(p)), "--tree {backend}: the tree died with dmon");

        let second_status = dir.path("status2");
        let second = start(&second_status);
        let _stopper = Stopper::of(&second);
        assert!(
            wait_until(Duration::from_secs(10), || started(&second_status, "cmd").len() == 1),
            "--tree {backend}: a new dmon did not start"
        );
        assert_eq!(read(&pid_file), format!("{}\n", second.id()), "--tree {backend}");
        assert!(orphans.iter().all(|&p| alive(p)), "--tree {backend}: the new dmon killed the old tree");
        if let Some(home) = &old_home {
            assert!(home.exists(), "--tree {backend}: the old cgroup was removed while it held processes");
        }
        for &p in &orphans {
            signal(p, libc::SIGKILL);
        }
        assert!(wait_until(Duration::from_secs(10), || orphans.iter().all(|&p| !alive(p))));
        signal(second.id() as i32, libc::SIGTERM);
        let out = finish_output(second, Duration::from_secs(30));
        assert!(out.status.success(), "--tree {backend}: {}", stderr_of(&out));
        let warned = stderr_of(&out);

        // The next dmon under the same parent removes the empty leftover.
        let third = run(dmon().args(["-n", "-1", "--tree", backend, "-p"]).arg(&pid_file).arg("true"));
        assert!(third.status.success(), "--tree {backend}: {}", stderr_of(&third));
        if let Some(home) = &old_home {
            assert!(!home.exists(), "--tree {backend}: the empty leftover {} was not removed", home.display());
        }
        assert!(!pid_file.exists());
        println!(
            "dmon killed: --tree {backend}: {} processes of the old tree kept running and were left alone; {}",
            orphans.len(),
            match (old_home.is_some(), warned.contains("cannot be removed")) {
                (false, _) => "no cgroup to leave behind",
                (true, true) => "the busy leftover was named in a warning, and the next dmon removed it once empty",
                (true, false) => "the next dmon removed the leftover once empty",
            }
        );
    }
}
