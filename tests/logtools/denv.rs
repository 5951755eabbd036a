//! denv: the environment it starts from, sets and removes, envdirs,
//! environment.d files, and its exit codes.

use super::*;

fn denv(args: &[&str]) -> (i32, String, String) {
    let out = tool("denv").args(args).env("DENV_TEST_A", "a").env("DENV_TEST_B", "b").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn env_lines(out: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    lines
}

#[test]
fn denv_starts_from_an_empty_environment() {
    let (code, out, _) = denv(&["env"]);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn denv_inherits_all_or_some_and_sets_or_removes_in_order() {
    let (_, out, _) = denv(&["-i", "DENV_TEST_A", "-i", "DENV_NOT_SET", "-E", "X=1", "-E", "EMPTY=", "env"]);
    assert_eq!(env_lines(&out), ["DENV_TEST_A=a", "EMPTY=", "X=1"]);
    let (_, out, _) = denv(&["-I", "-E", "DENV_TEST_A", "env"]);
    assert!(out.contains("DENV_TEST_B=b\n") && !out.contains("DENV_TEST_A"), "{out}");
    // Later options act on the result of earlier ones.
    let (_, out, _) = denv(&["-E", "DENV_TEST_A=mine", "-I", "env"]);
    assert!(out.contains("DENV_TEST_A=a\n"), "{out}");
}

#[test]
fn denv_reads_an_envdir() {
    let dir = Dir::new("envdir");
    let d = dir.path("env");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("FIRST_LINE"), "value \t \nsecond line\n").unwrap();
    std::fs::write(d.join("NO_NEWLINE"), "plain").unwrap();
    std::fs::write(d.join("BLANK_FIRST"), "\nignored\n").unwrap();
    std::fs::write(d.join("DENV_TEST_A"), "").unwrap();
    std::fs::write(d.join(".hidden"), "x").unwrap();
    std::fs::write(dir.path("target"), "through a link").unwrap();
    std::os::unix::fs::symlink(dir.path("target"), d.join("LINKED")).unwrap();
    std::fs::create_dir(d.join("SUBDIR")).unwrap();
    let (code, out, err) = denv(&["-I", "-d", d.to_str().unwrap(), "env"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\nFIRST_LINE=value\n"), "{out}");
    assert!(out.contains("\nNO_NEWLINE=plain\n"), "{out}");
    assert!(out.contains("\nBLANK_FIRST=\n"), "{out}");
    assert!(!out.contains("DENV_TEST_A="), "an empty file removes: {out}");
    for absent in ["LINKED", "SUBDIR", "hidden"] {
        assert!(!out.contains(absent), "{absent}: {out}");
    }
    assert!(out.contains("DENV_TEST_B=b"));
}

#[test]
fn denv_envdir_errors_exit_111() {
    let dir = Dir::new("envdirerr");
    let (code, _, err) = denv(&["-d", dir.path("missing").to_str().unwrap(), "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("missing"), "{err}");
    let d = dir.path("bad");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("A=B"), "x").unwrap();
    let (code, _, err) = denv(&["-d", d.to_str().unwrap(), "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("A=B"), "{err}");
    let d = dir.path("unreadable");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("NUL"), "a\0b\n").unwrap();
    let (code, _, err) = denv(&["-d", d.to_str().unwrap(), "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("NUL"), "{err}");
}

#[test]
fn denv_reads_environment_d_files() {
    let dir = Dir::new("envfile");
    let file = dir.path("vars.conf");
    std::fs::write(&file, "# a comment\n\n  SPACED = no  \nGOOD=yes please\nDENV_TEST_A=\n\tINDENT=1\n").unwrap();
    let (code, out, err) = denv(&["-I", "-f", file.to_str().unwrap(), "env"]);
    // "SPACED " is not a variable name: the line is an error, named with its number.
    assert_eq!(code, 111, "{out}");
    assert!(err.contains("vars.conf:3"), "{err}");
    std::fs::write(&file, "# a comment\n\nGOOD=yes please\nDENV_TEST_A=\n\tINDENT=1\nEQ=a=b\n").unwrap();
    let (code, out, err) = denv(&["-I", "-f", file.to_str().unwrap(), "env"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("GOOD=yes please\n") && out.contains("INDENT=1\n") && out.contains("EQ=a=b\n"), "{out}");
    assert!(!out.contains("DENV_TEST_A"), "NAME= removes: {out}");
    std::fs::write(&file, "no equals sign\n").unwrap();
    let (code, _, err) = denv(&["-f", file.to_str().unwrap(), "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("vars.conf:1"), "{err}");
}

#[test]
fn denv_exit_codes() {
    assert_eq!(denv(&["sh", "-c", "exit 7"]).0, 7, "the command's own status");
    let (code, _, err) = denv(&["no-such-command-here"]);
    assert_eq!(code, 111);
    assert!(err.contains("no-such-command-here"), "{err}");
    let dir = Dir::new("noexec");
    let script = dir.path("script");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    assert_eq!(denv(&[script.to_str().unwrap()]).0, 111, "not executable");
    assert_eq!(denv(&[]).0, 111, "no command");
    let (code, _, err) = denv(&["-E", "=x", "true"]);
    assert_eq!(code, 111);
    assert!(err.contains("'=x'"), "{err}");
    // An unknown option is named as one, not run as the command.
    for bad in ["--bogus", "-x"] {
        let (code, _, err) = denv(&[bad, "true"]);
        assert_eq!(code, 111, "{bad}");
        assert!(err.contains(&format!("unexpected argument '{bad}'")), "{bad}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // The command's own options stay the command's; after -- a dash starts it.
    let (code, out, _) = denv(&["-I", "sh", "-c", "echo $DENV_TEST_A", "-i"]);
    assert_eq!((code, out.as_str()), (0, "a\n"));
    let (code, _, err) = denv(&["--", "-x"]);
    assert_eq!(code, 111);
    assert!(err.contains("cannot execute '-x'"), "{err}");
}

#[test]
fn denv_as_envdir() {
    let dir = Dir::new("asenvdir");
    let link = dir.path("envdir");
    std::os::unix::fs::symlink(bin("denv"), &link).unwrap();
    let d = dir.path("env");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("FROM_DIR"), "1\n").unwrap();
    std::fs::write(d.join("DENV_TEST_A"), "").unwrap();
    let out = Command::new(&link)
        .arg(&d)
        .args(["sh", "-c", "echo $FROM_DIR ${DENV_TEST_A-unset} $DENV_TEST_B"])
        .env("DENV_TEST_A", "a")
        .env("DENV_TEST_B", "b")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 unset b\n");
    let out = Command::new(&link).arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(111));
    let out = Command::new(&link).arg(dir.path("nope")).arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(111));
}
