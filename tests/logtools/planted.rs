//! dlog and drlog against planted files: links to a file of value and files of
//! another user in a world-writable directory, at start and on reopening.

use super::*;

/// A file of value, and a check that it is exactly as it was.
struct Victim(std::path::PathBuf);

impl Victim {
    const TEXT: &'static str = "precious\n";

    fn new(dir: &Dir) -> Victim {
        let path = dir.path("victim");
        std::fs::write(&path, Self::TEXT).unwrap();
        Victim(path)
    }

    fn assert_untouched(&self) {
        assert_eq!(std::fs::read_to_string(&self.0).unwrap(), Self::TEXT, "the victim was written to");
    }
}

/// Runs `cmd` on one line of input; asserts it fails at start with one line
/// naming `path` and saying `why`.
fn assert_refused(cmd: &mut Command, path: &std::path::Path, why: &str) {
    let (code, _, err) = run_with(cmd, b"written?\n");
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(path.to_str().unwrap()) && err.contains(why), "{err}");
}

/// A directory anyone may write to, as /tmp is.
fn world_writable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
}

fn chown_nobody(path: &std::path::Path) {
    std::os::unix::fs::lchown(path, Some(65534), Some(65534)).expect("chown needs root");
}

#[test]
fn dlog_refuses_a_planted_file() {
    let dir = Dir::new("plant");
    world_writable(&dir.0);
    let victim = Victim::new(&dir);
    let file = dir.path("out.log");
    std::os::unix::fs::symlink(&victim.0, &file).unwrap();
    assert_refused(tool("dlog").arg(&file), &file, "symbolic link");
    std::fs::remove_file(&file).unwrap();
    // A dangling link: its target is not created.
    std::os::unix::fs::symlink(dir.path("created?"), &file).unwrap();
    assert_refused(tool("dlog").arg(&file), &file, "symbolic link");
    assert!(!dir.path("created?").exists());
    std::fs::remove_file(&file).unwrap();
    std::fs::hard_link(&victim.0, &file).unwrap();
    assert_refused(tool("dlog").arg(&file), &file, "2 hard links");
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "theirs\n").unwrap();
    chown_nobody(&file);
    assert_refused(tool("dlog").arg(&file), &file, "belongs to uid 65534");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "theirs\n");
    victim.assert_untouched();
}

/// On HUP dlog opens FILE again: a link planted there meanwhile is refused and
/// the open retried (the input waits), until the link is gone.
#[test]
fn dlog_reopen_never_writes_through_a_link() {
    let dir = Dir::new("plantreopen");
    let victim = Victim::new(&dir);
    let file = dir.path("out.log");
    let errors = dir.path("stderr");
    let (r, mut w) = pipe();
    let mut child = tool("dlog")
        .arg(&file)
        .stdin(std::os::fd::OwnedFd::from(r))
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .unwrap();
    w.write_all(b"first\n").unwrap();
    wait_for("the first line", || count_lines(&file) == 1);
    std::fs::rename(&file, dir.path("out.log.1")).unwrap();
    std::os::unix::fs::symlink(&victim.0, &file).unwrap();
    signal(&child, libc::SIGHUP);
    w.write_all(b"second\n").unwrap();
    let said = || std::fs::read_to_string(&errors).unwrap();
    wait_for("a message, or a write through the link", || {
        said().contains('\n') || std::fs::read_to_string(&victim.0).unwrap() != Victim::TEXT
    });
    victim.assert_untouched();
    let said = said();
    assert!(said.contains(file.to_str().unwrap()) && said.contains("symbolic link"), "{said}");
    victim.assert_untouched();
    std::fs::remove_file(&file).unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "second\n");
    victim.assert_untouched();
}

#[test]
fn drlog_refuses_planted_current_and_timestamp() {
    for name in ["current", ".timestamp"] {
        let dir = Dir::new("drplant");
        world_writable(&dir.0);
        let victim = Victim::new(&dir);
        let logs = dir.path("logs");
        std::fs::create_dir(&logs).unwrap();
        world_writable(&logs);
        let planted = logs.join(name);
        std::os::unix::fs::symlink(&victim.0, &planted).unwrap();
        assert_refused(tool("drlog").arg(&logs), &planted, "symbolic link");
        std::fs::remove_file(&planted).unwrap();
        std::fs::hard_link(&victim.0, &planted).unwrap();
        assert_refused(tool("drlog").arg(&logs), &planted, "2 hard links");
        std::fs::remove_file(&planted).unwrap();
        std::fs::write(&planted, "1\n").unwrap();
        chown_nobody(&planted);
        assert_refused(tool("drlog").arg(&logs), &planted, "belongs to uid 65534");
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "1\n");
        victim.assert_untouched();
    }
}

/// `.timestamp` is replaced through a new file and a rename, so a link planted
/// there while drlog runs is replaced, never written through.
#[test]
fn drlog_replaces_the_timestamp_file_rather_than_writing_through_it() {
    let dir = Dir::new("drstamp");
    let victim = Victim::new(&dir);
    let logs = dir.path("logs");
    std::fs::create_dir(&logs).unwrap();
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("drlog").args(["-s", "10", "-m", "0"]).arg(&logs), &r);
    drop(r);
    w.write_all(b"first line\n").unwrap();
    wait_for("the first line", || count_lines(&logs.join("current")) == 1);
    std::fs::remove_file(logs.join(".timestamp")).unwrap();
    std::os::unix::fs::symlink(&victim.0, logs.join(".timestamp")).unwrap();
    // Over 10 bytes: a rotation, which writes .timestamp.
    w.write_all(b"second line\n").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    victim.assert_untouched();
    let stamp = std::fs::symlink_metadata(logs.join(".timestamp")).unwrap();
    assert!(stamp.file_type().is_file(), "{stamp:?}");
    assert_eq!(rotated(&logs).len(), 1);
}

/// The start of a line left in the pipe keeps it readable; dlog looks at it again
/// for a moment, then takes it into memory and waits for input without waking.
#[test]
fn dlog_waits_for_a_newline_without_spinning() {
    let dir = Dir::new("nospin");
    let file = dir.path("out.log");
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("dlog").arg(&file), &r);
    drop(r);
    w.write_all(b"no newline yet").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    let before = common::context_switches(child.id() as i32);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after = common::context_switches(child.id() as i32);
    assert!(after - before <= 2, "dlog woke up {} times in 1 s", after - before);
    w.write_all(b", now\n").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "no newline yet, now\n");
}
