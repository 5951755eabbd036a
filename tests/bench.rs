//! A smoke check of the benchmark scripts, not the benchmark: every script
//! parses, the entry point refuses a bad option, and one small control case runs
//! the built dmon end to end and yields a figure. The suite itself
//! (`integration/bench.sh`, docs/benchmarks.md) takes minutes and measures; it is
//! run by hand, not by `cargo test`. No figure is judged here.

mod common;

use std::path::Path;
use std::process::Command;

fn integration() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/integration"))
}

#[test]
fn every_benchmark_script_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(integration()).unwrap().flatten() {
        let path = entry.path();
        let check = match path.extension().and_then(|e| e.to_str()) {
            Some("sh") => Command::new("sh").arg("-n").arg(&path).output().unwrap(),
            Some("py") => Command::new(common::python())
                .args(["-c", "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])"])
                .arg(&path)
                .output()
                .unwrap(),
            _ => continue,
        };
        assert!(check.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&check.stderr));
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} scripts found in {}", integration().display());
}

#[test]
fn the_suite_refuses_a_bad_option() {
    let out = Command::new(integration().join("bench.sh")).arg("--no-such-option").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: integration/bench.sh"));
}

#[test]
fn one_control_case_yields_a_figure() {
    if !common::is_root() {
        return common::skip("the control benchmark needs root (cgroups, real-time priority)");
    }
    let json = std::env::temp_dir().join(format!("dmon-bench-smoke.{}.json", std::process::id()));
    let out = Command::new(common::python())
        .arg(integration().join("bench-control.py"))
        .args(["--sizes", "10", "--kinds", "sleep", "--backends", "cgroup2", "--dmon", env!("CARGO_BIN_EXE_dmon")])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "bench-control.py: {}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let row = &rows[0];
    assert_eq!(row["backend"], "cgroup2", "{rows}");
    for figure in ["stop", "kill", "stop_floor", "kill_floor"] {
        assert!(row[figure].as_f64().is_some_and(|s| s > 0.0 && s < 10.0), "{figure} in {row}");
    }
}
