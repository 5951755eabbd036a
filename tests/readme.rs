//! The commands README.md gives, run as written (with the built binaries first on
//! the PATH in place of `cargo build`'s `./target/release/`).

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;

fn readme() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The indented command lines of README.md that start with `prefix`.
fn commands(prefix: &str) -> Vec<String> {
    readme()
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| l.starts_with(prefix))
        .map(String::from)
        .collect()
}

#[test]
fn quick_start_runs_a_failing_command_three_times_into_dlog() {
    let line = commands("cargo build --release && ").pop().expect("the quick start command");
    let line = line.strip_prefix("cargo build --release && ").unwrap().replace("./target/release/", "");
    let dir = Dir::new("readme-quick");
    let out: Output = shell(&dir, &line).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let runs: Vec<&str> = text.lines().filter(|l| l.contains(" run at ")).collect();
    assert_eq!(runs.len(), 3, "{text}");
    // dlog -t: `YYYY-mm-dd/HH:MM:SS ` in front of each line.
    assert!(runs.iter().all(|l| l.len() > 20 && &l[4..5] == "-" && &l[10..11] == "/"), "{text}");
}

#[test]
fn everyday_forms_run_as_written() {
    if !is_root() {
        return common::skip("the service example writes /run and /var/log and drops to nobody, which needs root");
    }
    let forms = commands("dmon -");
    let service = forms.iter().find(|l| l.starts_with("dmon -p /run/ticker.pid")).expect("the service example");
    let job = forms.iter().find(|l| l.starts_with("dmon -n -1 tar")).expect("the job example");
    let build = forms.iter().find(|l| l.contains("-t 2h make -j8")).expect("the build example");
    let dir = Dir::new("readme-forms");

    // The service: a daemon, logging with timestamps, stopped with kill.
    let _ = fs::remove_file("/var/log/ticker.log");
    let out = shell(&dir, service).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(wait_until(Duration::from_secs(10), || fs::read_to_string("/var/log/ticker.log")
        .is_ok_and(|t| t.lines().count() >= 1)));
    let pid: i32 = fs::read_to_string("/run/ticker.pid").unwrap().trim().parse().unwrap();
    let _stopper = Stopper::new(pid);
    assert!(shell(&dir, "kill $(cat /run/ticker.pid)").status().unwrap().success());
    assert!(wait_until(Duration::from_secs(15), || !Path::new(&format!("/proc/{pid}")).exists()));
    assert!(!Path::new("/run/ticker.pid").exists());
    let _ = fs::remove_file("/var/log/ticker.log");

    // The job: runs once and succeeds.
    let out = shell(&dir, job).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(fs::metadata("/tmp/etc-backup.tar.gz").unwrap().len() > 0);
    let _ = fs::remove_file("/tmp/etc-backup.tar.gz");

    // The build, on a small Makefile; the load is read from a file here, since
    // the machine's real load (other tests) could pause it.
    fs::write(dir.path("Makefile"), "all: a b\na:\n\ttouch a\nb:\n\ttouch b\n").unwrap();
    fs::write(dir.path("loadavg"), "0.10 0.10 0.10 1/100 1\n").unwrap();
    let out = shell(&dir, build).env("DMON_LOADAVG_FILE", dir.path("loadavg")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path("a").exists() && dir.path("b").exists());
}

/// The Debian packages `.ci/run` installs for the tests: `tool:package` pairs.
fn ci_packages() -> Vec<String> {
    let ci = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run")).unwrap();
    let list = ci.split_once("for tool in ").and_then(|(_, rest)| rest.split_once("; do")).expect("the tool list").0;
    let mut packages: Vec<String> =
        list.split_whitespace().filter_map(|w| w.split_once(':')).map(|(_, p)| p.to_string()).collect();
    packages.dedup();
    packages
}

#[test]
fn install_and_test_commands_are_locked_and_name_what_the_tests_need() {
    assert_eq!(commands("cargo install"), ["cargo install --locked --path ."]);
    assert_eq!(commands("cargo test"), ["cargo test --locked --no-fail-fast"]);
    let apt = commands("apt-get install").pop().expect("the README's apt-get install line");
    let named: Vec<&str> = apt.split_whitespace().skip(2).filter(|w| !w.starts_with('-')).collect();
    assert_eq!(named, ci_packages(), "README's apt-get install line against .ci/run's");
}
