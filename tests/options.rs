//! dmon's options from every source (the command line, `DMON_OPTIONS`, `-C`
//! config files): precedence, and the one-line error and exit 2 that bad input
//! gets before anything starts. Run as the built binary.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::*;

#[test]
fn options_of_the_command_are_not_dmons() {
    let out = run(dmon().args(["-n", "-1", "sh", "-c", "echo \"$0 $1\"", "-n", "-1"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "-n -1\n");
    assert!(out.status.success());
}

#[test]
fn config_file_and_dmon_options_precedence() {
    let dir = Dir::new("config");
    let st = dir.s("st");
    let conf = dir.path("dmon.conf");
    fs::write(&conf, format!("# respawn twice\nmax-respawns 2\nwrite-info \"{st}\"\nno-daemon\nbackoff-max 0.01\n"))
        .unwrap();
    let count = |out: &Output| {
        assert!(out.status.code() == Some(1), "{}", stderr_of(out));
        let n = started(Path::new(&st), "cmd").len();
        fs::remove_file(&st).unwrap();
        n
    };
    // The file alone.
    let out = run(dmon().args(["-C", conf.to_str().unwrap(), "false"]));
    assert_eq!(count(&out), 3);
    // DMON_OPTIONS comes first, so the file overrides it.
    let out = run(dmon().env("DMON_OPTIONS", "-m 5").args(["-C", conf.to_str().unwrap(), "false"]));
    assert_eq!(count(&out), 3);
    // The command line overrides both.
    let out = run(dmon().env("DMON_OPTIONS", "-m 5").args(["-C", conf.to_str().unwrap(), "-m", "0", "false"]));
    assert_eq!(count(&out), 1);
    // DMON_OPTIONS alone.
    let out = run(dmon().env("DMON_OPTIONS", "-n -m 1 --backoff-max 0.01").args(["-I", &st, "false"]));
    assert_eq!(count(&out), 2);
}

#[test]
fn config_file_errors_name_file_line_and_column() {
    let dir = Dir::new("conferr");
    let cases = [
        ("no-daemon\n  bogus-option 3\n", ":2:3: unknown option 'bogus-option'"),
        ("pid-file \"/tmp/x\n", ":1:10: unterminated quoted string"),
        ("environ \"A=\\q\"\n", ":1:12: unknown escape \\q"),
        ("no-daemon pid-file", ":1:11: option 'pid-file' needs a value"),
    ];
    for (text, expected) in cases {
        let conf = dir.path("c.conf");
        fs::write(&conf, text).unwrap();
        let out = run(dmon().args(["-C", conf.to_str().unwrap(), "true"]));
        assert_eq!(out.status.code(), Some(2));
        let err = stderr_of(&out);
        assert_eq!(err, format!("dmon: {}{expected}\n", conf.display()), "for {text:?}");
    }
    let out = run(dmon().args(["-C", "/nonexistent/dmon.conf", "true"]));
    assert_eq!(stderr_of(&out), "dmon: -C/--config: cannot read '/nonexistent/dmon.conf': No such file or directory\n");
}

#[test]
fn bad_inputs_get_one_line_and_exit_2_before_anything_starts() {
    let dir = Dir::new("bad");
    let marker = dir.s("started");
    let cmd = format!("touch {marker}");
    let ro = dir.path("ro");
    fs::create_dir(&ro).unwrap();
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec!["-L".into(), "abc".into()], "-L/--load-high: 'abc' is not a number".into()),
        (
            vec!["-L".into(), "2".into(), "-l".into(), "3".into()],
            "-l/--load-low: '3' is above -L/--load-high '2'".into(),
        ),
        (vec!["-t".into(), "-5".into()], "-t/--timeout: '-5' is not a time".into()),
        (vec!["-i".into(), "10".into(), "-1".into()], "-i/--interval cannot be used with -1/--once".into()),
        (vec!["-r".into(), "bogus=1".into()], "-r/--limit: unknown limit 'bogus'".into()),
        (vec!["-m".into(), "many".into()], "-m/--max-respawns: 'many' is not a whole number".into()),
        (vec!["-u".into(), "no-such-user-xyz".into()], "-u/--cmd-user: unknown user 'no-such-user-xyz'".into()),
        (vec!["-W".into(), "/nonexistent/dir".into()], "-W/--work-dir: '/nonexistent/dir' is not a directory".into()),
        (
            vec!["-p".into(), "/nonexistent/dir/x.pid".into()],
            "-p/--pid-file: cannot open '/nonexistent/dir/x.pid': No such file or directory".into(),
        ),
        (
            vec!["-I".into(), "/nonexistent/dir/status".into()],
            "-I/--write-info: cannot open '/nonexistent/dir/status': No such file or directory".into(),
        ),
        (vec!["--bogus".into()], "unexpected argument '--bogus' found (see dmon --help)".into()),
        (vec!["--tre".into(), "auto".into()], "unexpected argument '--tre' found; did you mean '--tree'?".into()),
        (
            vec!["--tree".into(), "foo".into()],
            "invalid value 'foo' for '--tree <BACKEND>': possible values are auto, cgroup2, freezer, signals".into(),
        ),
        (vec!["-L".into(), "-5".into()], "-L/--load-high: '-5' must be above zero".into()),
        (vec!["-L".into(), "3".into(), "-l".into(), "-1".into()], "-l/--load-low: '-1' is below zero".into()),
        (vec!["--pressure".into(), "0".into()], "--pressure: '0' has HIGH outside 0..100".into()),
        (vec!["--pressure".into(), "40:60".into()], "--pressure: '40:60' has LOW above HIGH".into()),
        (vec!["--pressure".into(), "x".into()], "--pressure: 'x' is not a percentage".into()),
        (
            vec!["--pressure".into(), "40".into(), "-L".into(), "3".into(), "--pressure".into(), "disk:40".into()],
            "--pressure: 'disk:40' has an unknown source 'disk' (expected cpu, memory or io)".into(),
        ),
        (
            vec!["--pressure".into(), "memory".into()],
            "--pressure: 'memory' names a source but no mark (expected memory:HIGH[:LOW]".into(),
        ),
        (
            vec!["--cgroup-parent".into(), "/nonexistent/cg".into()],
            "--cgroup-parent: '/nonexistent/cg' is not a directory".into(),
        ),
        (vec!["--memory-max".into(), "0".into()], "--memory-max: '0' is too small".into()),
        (vec!["--memory-high".into(), "lots".into()], "--memory-high: 'lots' is not a size".into()),
        (vec!["--pids-max".into(), "-3".into()], "--pids-max: '-3' is negative".into()),
        (vec!["--cpu-quota".into(), "0%".into()], "--cpu-quota: '0%' is out of range".into()),
        (vec!["--cpu-quota".into(), "half".into()], "--cpu-quota: 'half' is not a percentage of a CPU".into()),
    ];
    for (args, expected) in cases {
        let out = run(dmon().arg("-n").args(&args).args(["sh", "-c", &cmd]));
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with(&format!("dmon: {expected}")), "{args:?}: got {err:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(!Path::new(&marker).exists(), "{args:?} started the command");
    }
    let out = run(dmon().arg("-n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).starts_with("dmon: no command given"));
}

#[test]
fn limit_help_lists_the_names() {
    let out = run(dmon().args(["-r", "help"]));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["vmem", "core", "cpu", "data", "fsize", "locks", "mlock", "msgq", "nice", "files", "nproc", "rss"] {
        assert!(text.contains(name), "{name} missing from -r help");
    }
    for name in ["rtprio", "rttime", "sigpending", "stack"] {
        assert!(text.contains(name), "{name} missing from -r help");
    }
}

/// A negative value is the bad value of its option, not an option of its own,
/// and the message says what is wrong with it.
#[test]
fn negative_values_are_named_with_their_option() {
    let cases: [(&[&str], &str); 4] = [
        (&["-t", "-5"], "-t/--timeout: '-5' is not a time (a time cannot be negative)"),
        (&["-i", "-1m"], "-i/--interval: '-1m' is not a time (a time cannot be negative)"),
        (
            &["--pressure", "-5"],
            "--pressure: '-5' has a percentage below zero (expected [cpu:|memory:|io:]HIGH[:LOW], percentages such as 40:10)",
        ),
        (&["--pressure", "40:-5"], "--pressure: '40:-5' has a percentage below zero"),
    ];
    for (args, expected) in cases {
        let out = run(dmon().arg("-n").args(args).arg("true"));
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with(&format!("dmon: {expected}")) && err.lines().count() == 1, "{args:?}: {err:?}");
    }
}

/// Conflicts and requirements are checked by clap, which names both options in
/// the order given, wherever they came from.
#[test]
fn conflicts_and_requirements_name_both_options() {
    let dir = Dir::new("conflicts");
    let conf = dir.path("dmon.conf");
    fs::write(&conf, "once\n").unwrap();
    let cases: [(Option<&str>, &[&str], &str); 7] = [
        (None, &["-i", "5", "-1"], "-i/--interval cannot be used with -1/--once\n"),
        (None, &["-1", "-i", "5"], "-1/--once cannot be used with -i/--interval\n"),
        (Some("-1"), &["-i", "5"], "-1/--once cannot be used with -i/--interval\n"),
        (
            None,
            &["-L", "3", "--pressure", "40", "--pressure", "cpu:50"],
            "--pressure: cpu is given twice (at most once per source)\n",
        ),
        (None, &["-l", "1"], "-l/--load-low needs -L/--load-high\n"),
        (None, &["-G", "adm"], "-G/--log-group needs -U/--log-user\n"),
        (None, &["-u", "root", "-g", ""], "-u/--cmd-user: -g/--cmd-group '' is not a group name\n"),
    ];
    for (env, args, expected) in cases {
        let mut command = dmon();
        if let Some(env) = env {
            command.env("DMON_OPTIONS", env);
        }
        let out = run(command.arg("-n").args(args).arg("true"));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr_of(&out), format!("dmon: {expected}"), "{env:?} {args:?}");
    }
    let out = run(dmon().arg("-C").arg(&conf).args(["-n", "-i", "5", "true"]));
    assert_eq!(stderr_of(&out), "dmon: -1/--once cannot be used with -i/--interval\n");
    // -L and --pressure go together: the tree pauses while either is high.
    if Path::new("/proc/pressure/cpu").exists() {
        fs::write(dir.path("loadavg"), "0.10 0.10 0.10 1/100 1\n").unwrap();
        let out = run(dmon().env("DMON_LOADAVG_FILE", dir.path("loadavg")).args([
            "-n",
            "-1",
            "-L",
            "3",
            "--pressure",
            "90",
            "true",
        ]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    }
}
