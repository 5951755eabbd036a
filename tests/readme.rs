//! The commands README.md gives, run as written (with the built binaries first on
//! the PATH in place of `cargo build`'s `./target/release/`).

mod common;

use common::is_root;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DMON: &str = env!("CARGO_BIN_EXE_dmon");

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

fn bin_dir() -> PathBuf {
    Path::new(DMON).parent().unwrap().to_path_buf()
}

/// Runs `line` with sh in `dir`, the built tools first on the PATH.
fn sh(dir: &Path, line: &str) -> Command {
    let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let mut command = Command::new("sh");
    command.args(["-c", line]).current_dir(dir).env("PATH", path).env_remove("DMON_OPTIONS").stdin(Stdio::null());
    command
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dmon-readme-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

#[test]
fn quick_start_runs_a_failing_command_three_times_into_dlog() {
    let line = commands("cargo build --release && ").pop().expect("the quick start command");
    let line = line.strip_prefix("cargo build --release && ").unwrap().replace("./target/release/", "");
    let dir = temp_dir("quick");
    let out: Output = sh(&dir, &line).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let runs: Vec<&str> = text.lines().filter(|l| l.contains(" run at ")).collect();
    assert_eq!(runs.len(), 3, "{text}");
    // dlog -t: `YYYY-mm-dd/HH:MM:SS ` in front of each line.
    assert!(runs.iter().all(|l| l.len() > 20 && &l[4..5] == "-" && &l[10..11] == "/"), "{text}");
    let _ = fs::remove_dir_all(dir);
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
    let dir = temp_dir("forms");

    // The service: a daemon, logging with timestamps, stopped with kill.
    let _ = fs::remove_file("/var/log/ticker.log");
    let out = sh(&dir, service).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(wait_until(Duration::from_secs(10), || fs::read_to_string("/var/log/ticker.log")
        .is_ok_and(|t| t.lines().count() >= 1)));
    let pid: i32 = fs::read_to_string("/run/ticker.pid").unwrap().trim().parse().unwrap();
    assert!(sh(&dir, "kill $(cat /run/ticker.pid)").status().unwrap().success());
    assert!(wait_until(Duration::from_secs(15), || !Path::new(&format!("/proc/{pid}")).exists()));
    assert!(!Path::new("/run/ticker.pid").exists());
    let _ = fs::remove_file("/var/log/ticker.log");

    // The job: runs once and succeeds.
    let out = sh(&dir, job).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(fs::metadata("/tmp/etc-backup.tar.gz").unwrap().len() > 0);
    let _ = fs::remove_file("/tmp/etc-backup.tar.gz");

    // The build, on a small Makefile; the load is read from a file here, since
    // the machine's real load (other tests) could pause it.
    fs::write(dir.join("Makefile"), "all: a b\na:\n\ttouch a\nb:\n\ttouch b\n").unwrap();
    fs::write(dir.join("loadavg"), "0.10 0.10 0.10 1/100 1\n").unwrap();
    let out = sh(&dir, build).env("DMON_LOADAVG_FILE", dir.join("loadavg")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("a").exists() && dir.join("b").exists());
    let _ = fs::remove_dir_all(dir);
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
    assert_eq!(commands("cargo test"), ["cargo test --locked"]);
    let apt = commands("apt-get install").pop().expect("the README's apt-get install line");
    let named: Vec<&str> = apt.split_whitespace().skip(2).filter(|w| !w.starts_with('-')).collect();
    assert_eq!(named, ci_packages(), "README's apt-get install line against .ci/run's");
}
