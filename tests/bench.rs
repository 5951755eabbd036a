//! The benchmark suite runs: `integration/bench.sh --quick` on the built
//! binaries writes a report with every case, every tool and both plots. No
//! figure is judged; times on a shared machine are not a test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The tests/tree.rs binary built beside this one (cargo builds every test
/// target before running any), whose ignored `bench_backends` measures case 2.
fn tree_test_binary() -> Option<PathBuf> {
    let deps = std::env::current_exe().ok()?.parent()?.to_path_buf();
    std::fs::read_dir(deps)
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("tree-").is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn quick_suite_reports_every_case() {
    // SAFETY: geteuid cannot fail.
    if !common::is_root() {
        return common::skip("the benchmark suite needs root (cgroups, Debian packages)");
    }
    let tree = tree_test_binary().expect("the tests/tree.rs binary beside this test");
    let bin = Path::new(env!("CARGO_BIN_EXE_dmon")).parent().unwrap();
    let out = std::env::temp_dir().join(format!("dmon-bench-test.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/integration/bench.sh"))
        .args(["--quick", "--out"])
        .arg(&out)
        .env("BENCH_BIN", bin)
        .env("BENCH_TREE_EXE", &tree)
        .status()
        .unwrap();
    assert!(status.success(), "bench.sh --quick: {status}");

    let report = std::fs::read_to_string(out.join("benchmarks.md")).unwrap();
    for needle in [
        "## Machine",
        "load average at the start",
        "## 1. Pause",
        "## 2. Freeze and kill time",
        "## 3. Survivors",
        "## 4. Supervisor cost while idle",
        "## 5. Restart latency and crash loop",
        "## 6. Log throughput",
        "## 7. Stop and kill by the dmon binary",
        "| cgroup2 | 10 busy |",
        "| freezer | 10 busy |",
        "| signals | 10 busy |",
        "| dmon --tree cgroup2 |",
        "| dmon --tree freezer |",
        "| dmon --tree signals |",
        "| loadwatch |",
        "| cpulimit |",
        "| one pid (DMon 0.6) |",
        "| 10 |",
        "| 100 |",
        "| dmon -L 1000 |",
        "| dmon --pressure 90 |",
        "| s6-supervise |",
        "| runsv |",
        "| supervise |",
        "| multilog (daemontools) |",
        "| svlogd (runit) |",
        "| s6-log (s6) |",
        "| dlog |",
        "| dlog -b |",
        "| drlog |",
        "| drlog -b |",
        "img/pause-timeline.png",
        "img/freeze-time.png",
    ] {
        assert!(report.contains(needle), "the report lacks {needle:?}:\n{report}");
    }
    // A case whose tool failed shows "—" for its figure; the table rows above
    // exist either way, so check that the main tables carry numbers.
    for row in report
        .lines()
        .filter(|l| l.starts_with("| dmon --tree") || l.starts_with("| 10 |") || l.contains(" | 10 busy |"))
    {
        assert!(!row.contains('—'), "a figure is missing: {row}");
    }
    assert!(is_png(&out.join("img/pause-timeline.png")));
    assert!(is_png(&out.join("img/freeze-time.png")));
    let _ = std::fs::remove_dir_all(&out);
}
