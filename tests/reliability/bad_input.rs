//! Case 9: bad input. Every case must give one short line on stderr that starts
//! with `dmon: ` and names what was wrong, exit 2, never a panic, and start
//! nothing. One test per kind of input; each checks all its cases and then names
//! every one that failed.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::process::Command;

use crate::common::*;
use crate::support::panicked;

/// The kernel's limit for one argument is 128 KiB (MAX_ARG_STRLEN).
const LONG: usize = 120_000;

/// Bad input given to dmon, each case checked in turn; [`Cases::done`] fails the
/// test with every case that went wrong.
struct Cases {
    dir: Dir,
    checked: usize,
    failures: Vec<String>,
}

impl Cases {
    fn new(name: &str) -> Cases {
        Cases { dir: Dir::new(name), checked: 0, failures: Vec::new() }
    }

    /// The command dmon must never start: it would leave a marker.
    fn touch(&self) -> [String; 3] {
        ["sh".into(), "-c".into(), format!("touch {}", self.dir.s("started"))]
    }

    /// `dmon -n ARGS COMMAND`, with text arguments.
    fn args(&mut self, args: &[&str], expected: &str) {
        self.os_args(args.iter().map(OsString::from).collect(), expected);
    }

    /// `dmon -n ARGS COMMAND`.
    fn os_args(&mut self, args: Vec<OsString>, expected: &str) {
        let what = format!(
            "{:?}",
            args.iter().map(|a| a.to_string_lossy().chars().take(40).collect()).collect::<Vec<String>>()
        );
        let touch = self.touch();
        self.check(&what, dmon().arg("-n").args(args).args(touch), expected);
    }

    /// `dmon -C FILE -n COMMAND`, with FILE holding `text`.
    fn config(&mut self, what: &str, text: &[u8], expected: &str) {
        let conf = self.dir.path("dmon.conf");
        fs::write(&conf, text).unwrap();
        let touch = self.touch();
        self.check(what, dmon().arg("-C").arg(&conf).arg("-n").args(touch), expected);
    }

    fn check(&mut self, what: &str, command: &mut Command, expected: &str) {
        let out = run(command.current_dir(&self.dir.0));
        let err = stderr_of(&out);
        self.checked += 1;
        let problem = if panicked(&out) {
            "dmon panicked".to_string()
        } else if out.status.code() != Some(2) {
            format!("exit status {:?}", out.status.code())
        } else if !err.starts_with("dmon: ") || !err.contains(expected) {
            format!("expected {expected:?}")
        } else if err.matches('\n').count() != 1 {
            "not exactly one line".to_string()
        } else if err.len() > 400 {
            format!("{} bytes is not a clear line", err.len())
        } else if self.dir.path("started").exists() {
            "started the command".to_string()
        } else {
            return;
        };
        let shown: String = err.chars().take(300).collect();
        self.failures.push(format!("{what}: {shown:?}: {problem}"));
    }

    fn done(self, kind: &str) {
        let (failed, checked) = (self.failures.len(), self.checked);
        assert!(failed == 0, "{failed} of {checked} cases failed:\n{}", self.failures.join("\n"));
        println!("bad input: {kind}: {checked} cases, each one line and exit 2");
    }
}

#[test]
fn bad_times_get_one_clear_line_and_exit_2() {
    let mut cases = Cases::new("bad-times");
    let huge = "9".repeat(400);
    for name in ["-i/--interval", "-t/--timeout", "--grace", "--backoff-max"] {
        let flag = name.split('/').next_back().unwrap();
        for value in [
            "", "x", "-1", "NaN", "nan", "inf", "-inf", "1e3", "0x10", "1.5.5", "5q", " 5", "+5", "5 ", "1,5",
            "\u{661}",
        ] {
            cases.args(&[flag, value], &format!("{name}: '{value}' is not a time"));
        }
        for value in ["99999999999999999999", "1000000000000000", "10000000w", "1000000000d", &huge] {
            cases.args(&[flag, value], &format!("{name}: "));
        }
    }
    cases.args(&["-t", "0"], "-t/--timeout: '0' is too short");
    cases.args(&["-t", "0.0000000000000000000001"], "-t/--timeout: ");
    cases.done("times");
}

#[test]
fn bad_counts_loads_and_limits_get_one_clear_line_and_exit_2() {
    let mut cases = Cases::new("bad-numbers");
    let huge = "9".repeat(400);
    for value in ["", "x", "-1", "NaN", "1.5", "1e3", "18446744073709551616"] {
        cases.args(&["-m", value], &format!("-m/--max-respawns: '{value}' is not a whole number"));
    }
    cases.args(&["-m", &huge], "-m/--max-respawns: '999");
    for value in ["", "x", "-1", "NaN", "inf", "1e999", "3,5", &huge] {
        cases.args(&["-L", value], "-L/--load-high: ");
        cases.args(&["-L", "4", "-l", value], "-l/--load-low: ");
    }
    cases.args(&["-L", "0"], "-L/--load-high: '0' must be above zero");
    cases.args(&["-L", "2", "-l", "3"], "-l/--load-low: '3' is above -L/--load-high '2'");
    cases.args(&["-L", "2", "-l", "999999999999999"], "-l/--load-low: '999999999999999' is above");
    cases.args(&["-l", "1"], "-l/--load-low needs -L/--load-high");
    for value in [
        "",
        "x",
        "=",
        "files=",
        "files=-1",
        "files=NaN",
        "files=1.5",
        "files=99999999999999999999",
        "vmem=18446744073709551615k",
        "vmem=-1k",
        "core=1e9",
        "cpu=1e9",
        "cpu=10000000w",
        "cpu=-5",
        "rttime=1s",
        "bogus=1",
        "files=1=2",
    ] {
        cases.args(&["-r", value], "-r/--limit: ");
    }
    cases.done("counts, loads and limits");
}

#[test]
fn bad_environment_users_and_trees_get_one_clear_line_and_exit_2() {
    let mut cases = Cases::new("bad-names");
    for value in ["", "=x", "="] {
        cases.args(&["-E", value], "-E/--environ: ");
    }
    for value in ["", ":", "root:", ":root", "root::x", "no-such-user-xyz"] {
        cases.args(&["-u", value], "-u/--cmd-user: ");
        cases.args(&["-U", value], "-U/--log-user: ");
    }
    cases.args(&["-g", "root"], "-g/--cmd-group needs -u/--cmd-user");
    cases.args(&["-G", ""], "-G/--log-group needs -U/--log-user");
    cases.args(&["-u", "root", "-g", ""], "-u/--cmd-user: ");
    cases.args(&["-u", "root", "-g", "no-such-group-xyz"], "-u/--cmd-user: ");
    for value in ["", "bogus", "CAP_BOGUS", "cap_", "99"] {
        cases.args(&["--cap", value], "--cap: ");
    }
    for value in ["", "bogus", "CGROUP2"] {
        cases.args(&["--tree", value], "--tree");
    }
    cases.done("environment, users, capabilities and trees");
}

#[test]
fn bad_paths_and_options_get_one_clear_line_and_exit_2() {
    let mut cases = Cases::new("bad-paths");
    cases.args(&["-C", "/dev/null"], "-C/--config must be the first option");
    cases.args(&["-I", ""], "a value is required for '--write-info <PATH>'");
    cases.args(&["-I", "/"], "-I/--write-info: cannot open '/'");
    cases.args(&["-p", ""], "a value is required for '--pid-file <PATH>'");
    cases.args(&["-p", "/"], "-p/--pid-file: ");
    cases.args(&["-W", ""], "a value is required for '--work-dir <DIR>'");
    cases.args(&["-W", "/etc/passwd"], "-W/--work-dir: '/etc/passwd' is not a directory");
    cases.args(&["--bogus"], "unexpected argument '--bogus'");
    cases.args(&["-n", "-C", "/dev/null"], "-C/--config must be the first option");
    cases.done("paths and options");
}

/// Huge values, values with line breaks and control characters, and values that
/// are not UTF-8: the message stays short and on one line.
#[test]
fn huge_broken_and_binary_values_get_one_clear_line_and_exit_2() {
    let mut cases = Cases::new("bad-values");
    let long_arg = "a".repeat(LONG);
    cases.args(&["-t", &long_arg], "-t/--timeout: ");
    cases.args(&["-r", &long_arg], "-r/--limit: ");
    cases.args(&["-u", &long_arg], "-u/--cmd-user: ");
    cases.args(&["-p", &format!("/{long_arg}")], "-p/--pid-file: ");
    cases.args(&["-t", "5\nx"], "-t/--timeout: ");
    cases.args(&["-r", "files=1\r\n2"], "-r/--limit: ");
    cases.args(&["-u", "a\nb"], "-u/--cmd-user: ");
    cases.os_args(vec!["-t".into(), OsString::from_vec(vec![b'5', 0xff])], "invalid UTF-8");
    cases.os_args(vec!["-I".into(), OsString::from_vec(b"/no\xff/x".to_vec())], "-I/--write-info");
    cases.done("huge, broken and binary values");
}

#[test]
fn bad_config_files_get_one_clear_line_and_exit_2() {
    let mut cases = Cases::new("bad-config");
    for (value, expected) in [
        ("", "-C/--config: cannot read ''"),
        ("/nonexistent/dmon.conf", "-C/--config: cannot read '/nonexistent/dmon.conf': No such file"),
        ("/", "-C/--config: cannot read '/': Is a directory"),
    ] {
        let touch = cases.touch();
        cases.check(&format!("-C {value:?}"), dmon().args(["-C", value, "-n"]).args(touch), expected);
    }
    // Just under the 1 MiB that a -C file may hold, with the option's name.
    let huge = "a".repeat((1 << 20) - 100);
    let files: [(&str, &[u8], &str); 13] = [
        ("unterminated quote", b"pid-file \"/tmp/x\n", ":1:10: unterminated quoted string"),
        ("quote at the end", b"no-daemon \"", ":1:11: unterminated quoted string"),
        ("backslash at the end", b"environ \"A=\\", ":1:9: unterminated quoted string"),
        ("unknown escape", b"environ \"A=\\q\"", ":1:12: unknown escape \\q"),
        ("short hex escape", b"environ \"A=\\x4\"", ":1:12: \\x must be followed by two hexadecimal digits"),
        ("bad hex escape", b"environ \"A=\\xZZ\"", ":1:12: \\x must be followed by two hexadecimal digits"),
        ("escape of a control byte", b"environ \"A=\\\x01\"", ":1:12: unknown escape"),
        ("unknown option", b"no-daemon\n  bogus-option 3\n", ":2:3: unknown option 'bogus-option'"),
        ("config inside config", b"config /etc/x", ":1:1: unknown option 'config'"),
        ("missing value", b"no-daemon pid-file", ":1:11: option 'pid-file' needs a value"),
        ("bad value", b"timeout \"5\\n6\"", "-t/--timeout: "),
        ("binary junk", b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\x00\x00", ": word is not valid UTF-8"),
        ("NUL in a word", b"environ \"A=\\0\"", "-E/--environ: "),
    ];
    for (what, text, expected) in files {
        cases.config(what, text, expected);
    }
    cases.config("1 MB word", huge.as_bytes(), ":1:1: unknown option 'aaaa");
    cases.config("1 MB quoted", format!("environ \"{huge}").as_bytes(), ":1:9: unterminated quoted string");
    cases.config("1 MB value", format!("timeout {huge}").as_bytes(), "-t/--timeout: ");
    let mut junk = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..100_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        junk.push(seed as u8);
    }
    cases.config("100 kB of random bytes", &junk, ": ");
    cases.done("config files");
}

/// `DMON_OPTIONS` gets the same words as the command line.
#[test]
fn bad_dmon_options_get_one_clear_line_and_exit_2() {
    let mut cases = Cases::new("bad-env");
    let junk = OsString::from_vec(b"-t \xff\xfe\x01".to_vec());
    for (text, expected) in [
        (OsString::from("-t x"), "-t/--timeout: 'x' is not a time"),
        ("-t \"5".into(), "DMON_OPTIONS: column 4: unterminated quoted string"),
        ("-n sleep".into(), "DMON_OPTIONS: 'sleep' is not an option"),
        ("--bogus".into(), "unexpected argument '--bogus'"),
        (junk, "DMON_OPTIONS: "),
    ] {
        let touch = cases.touch();
        let what = format!("DMON_OPTIONS={text:?}");
        cases.check(&what, dmon().env("DMON_OPTIONS", text).arg("-n").args(touch), expected);
    }
    cases.done("DMON_OPTIONS");
}
