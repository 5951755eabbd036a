//! The files dmon and its log tools open and read, against planted links, files
//! that others can write, FIFOs and devices in the place of files, and the
//! standard streams named as paths. Each test drives the built binaries; where
//! the attacker is another user, it acts as nobody (setpriv).

mod common;

#[path = "logtools/support.rs"]
#[allow(dead_code, unused_imports)]
mod support;

#[path = "logtools/files.rs"]
mod logtools_files;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

pub const NOBODY: u32 = 65534;

/// `setpriv` to nobody:nogroup with no supplementary groups, running `program`.
pub fn as_nobody(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]).arg(program);
    c
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn chown_nobody(path: &Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
}

pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Runs `command` with a bound, failing the test if it hangs.
fn bounded(command: &mut Command) -> std::process::Output {
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let killer = std::thread::spawn(move || {
        if !wait_until(Duration::from_secs(20), || flag.load(std::sync::atomic::Ordering::Relaxed)) {
            signal(pid, libc::SIGKILL);
        }
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    killer.join().unwrap();
    out
}

fn root_only(test: &str) -> bool {
    if !is_root() {
        skip(&format!("{test} needs root (it plays another user with setpriv)"));
        return false;
    }
    true
}

// ---- -I with the standard streams and trusted links ----

/// dmon -n -1 -I PATH true, with stdout and stderr as given; returns the exit code
/// and dmon's stderr when that is not the stream under test.
fn status_run(path: &str, stdout: Stdio, stderr: Stdio) -> std::process::ExitStatus {
    let mut c = dmon();
    c.args(["-n", "-1", "-I", path, "true"]).stdout(stdout).stderr(stderr);
    let child = c.spawn().unwrap();
    finish(child, Duration::from_secs(30))
}

fn has_records(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("cmd start ")) && text.lines().any(|l| l.starts_with("cmd exit "))
}

/// `-I /dev/stdout` and `-I /dev/stderr` write the records to that stream, be it
/// a file, a pipe, a FIFO, a socket or a terminal.
#[test]
fn status_to_every_kind_of_standard_stream() {
    let dir = Dir::new("streams");
    for (path, fd) in [("/dev/stdout", 1), ("/dev/stderr", 2), ("/dev/fd/2", 2), ("/proc/self/fd/1", 1)] {
        // A regular file.
        let file = dir.path("out");
        let _ = fs::remove_file(&file);
        let f = fs::File::create(&file).unwrap();
        let (out, err) = if fd == 1 { (Stdio::from(f), Stdio::null()) } else { (Stdio::null(), Stdio::from(f)) };
        let status = status_run(path, out, err);
        assert!(status.success(), "{path} to a file: {status:?}: {}", read(&file));
        assert!(has_records(&read(&file)), "{path} to a file: {:?}", read(&file));

        // A pipe.
        let (mut r, w) = support::pipe();
        let (out, err) = if fd == 1 { (Stdio::from(w), Stdio::null()) } else { (Stdio::null(), Stdio::from(w)) };
        let status = status_run(path, out, err);
        let mut text = String::new();
        r.read_to_string(&mut text).unwrap();
        assert!(status.success() && has_records(&text), "{path} to a pipe: {status:?}: {text:?}");

        // A FIFO, with a reader waiting.
        let fifo = dir.path("fifo");
        let _ = fs::remove_file(&fifo);
        mkfifo(&fifo);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read_to_string(fifo).unwrap())
        };
        let w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let (out, err) = if fd == 1 { (Stdio::from(w), Stdio::null()) } else { (Stdio::null(), Stdio::from(w)) };
        let status = status_run(path, out, err);
        let text = reader.join().unwrap();
        assert!(status.success() && has_records(&text), "{path} to a FIFO: {status:?}: {text:?}");

        // A socket, as a service manager gives its services.
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let theirs = std::os::fd::OwnedFd::from(theirs);
        let (out, err) =
            if fd == 1 { (Stdio::from(theirs), Stdio::null()) } else { (Stdio::null(), Stdio::from(theirs)) };
        let status = status_run(path, out, err);
        let mut text = String::new();
        ours.read_to_string(&mut text).unwrap();
        assert!(status.success() && has_records(&text), "{path} to a socket: {status:?}: {text:?}");
    }
}

/// The same on a terminal: script(1) gives dmon one as its standard streams.
#[test]
fn status_to_a_terminal() {
    for path in ["/dev/stdout", "/dev/stderr"] {
        let line = format!("{DMON} -n -1 -I {path} true; echo rc=$?");
        let out = bounded(Command::new("script").args(["-qec", &line, "/dev/null"]).env_remove("DMON_OPTIONS"));
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        assert!(has_records(&text) && text.contains("rc=0"), "{path} on a terminal: {text:?}");
    }
}

/// A link to a stream that someone else could have made is still refused: in a
/// directory that nobody owns, or in a sticky world-writable one.
#[test]
fn planted_links_to_streams_are_refused() {
    if !root_only("planted_links_to_streams_are_refused") {
        return;
    }
    let dir = Dir::new("stream-links");
    let theirs = dir.path("theirs");
    fs::create_dir(&theirs).unwrap();
    chown_nobody(&theirs);
    let shared = dir.path("shared");
    fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    for (holder, target) in [(&theirs, "/dev/stderr"), (&shared, "/dev/stdout"), (&theirs, "/dev/null")] {
        let link = holder.join("status");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).unwrap();
        let out = run(dmon().args(["-n", "-1", "-I"]).arg(&link).arg("true"));
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", link.display());
        assert!(err.contains("is a symbolic link, which dmon does not follow"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // One that only root could have made is followed: here, in a directory of
    // root's that nobody else can write to, below directories of the same kind
    // (not /tmp, which everyone can write to).
    let mine = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("links-{}", std::process::id()));
    let _ = fs::remove_dir_all(&mine);
    fs::create_dir_all(&mine).unwrap();
    chmod(&mine, 0o755);
    let target = mine.join("status.txt");
    std::os::unix::fs::symlink(&target, mine.join("status")).unwrap();
    let out = run(dmon().args(["-n", "-1", "-I"]).arg(mine.join("status")).arg("true"));
    let text = read(&target);
    let _ = fs::remove_dir_all(&mine);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(has_records(&text), "{text:?}");
}

// ---- -p: every component, the service's user, the lock ----

/// A symbolic link in the middle of the pid file's path, in a directory another
/// user owns, is not followed.
#[test]
fn pid_file_path_is_not_followed_through_a_planted_directory_link() {
    if !root_only("pid_file_path_is_not_followed_through_a_planted_directory_link") {
        return;
    }
    let dir = Dir::new("pid-middle");
    let theirs = dir.path("theirs");
    fs::create_dir(&theirs).unwrap();
    chown_nobody(&theirs);
    let elsewhere = dir.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, theirs.join("run")).unwrap();
    let out = run(dmon().args(["-n", "-1", "-p"]).arg(theirs.join("run/x.pid")).arg("true"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("symbolic link") && err.contains("does not follow"), "{err}");
    assert!(!elsewhere.join("x.pid").exists(), "the pid file was written through the link");
    // /var/run is a link of root's on this system: followed.
    if fs::symlink_metadata("/var/run").is_ok_and(|m| m.file_type().is_symlink()) {
        let path = format!("/var/run/dmon-test-{}.pid", std::process::id());
        let out = run(dmon().args(["-n", "-1", "-p", &path, "true"]));
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
}

/// A pid file in a directory the service's user can write is refused: that user
/// could put another pid in it, and `kill $(cat pidfile)` would kill a stranger.
#[test]
fn pid_file_directory_writable_by_the_service_user_is_refused() {
    if !root_only("pid_file_directory_writable_by_the_service_user_is_refused") {
        return;
    }
    let dir = Dir::new("pid-service");
    let theirs = dir.path("theirs");
    fs::create_dir(&theirs).unwrap();
    chown_nobody(&theirs);
    let pid = theirs.join("x.pid");
    let out = run(dmon().args(["-n", "-1", "-u", "nobody", "-p"]).arg(&pid).arg("true"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("'{}'", theirs.display())) && err.contains("uid 65534"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!pid.exists());
    // Without -u the same directory is taken (the file is root's own).
    let out = run(dmon().args(["-n", "-1", "-p"]).arg(&pid).arg("true"));
    assert!(out.status.success(), "{}", stderr_of(&out));
    // A group-writable directory of the service's group, too.
    let group = dir.path("group");
    fs::create_dir(&group).unwrap();
    std::os::unix::fs::lchown(&group, Some(0), Some(NOBODY)).unwrap();
    chmod(&group, 0o775);
    let out = run(dmon().args(["-n", "-1", "-u", "nobody:nogroup", "-p"]).arg(group.join("x.pid")).arg("true"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

/// Another user who can read the pid file takes a shared lock on it after an
/// unclean exit: the next dmon still starts, and that user cannot hold the lock
/// dmon holds.
#[test]
fn another_users_lock_on_the_pid_file_does_not_stop_dmon() {
    if !root_only("another_users_lock_on_the_pid_file_does_not_stop_dmon") {
        return;
    }
    let dir = Dir::new("pid-lock");
    let pid = dir.path("x.pid");
    // An unclean exit: dmon killed, its pid file left behind.
    // The command is killed by hand: a killed dmon leaves its tree running.
    let sleeper = dir.path("sleeper");
    let script = format!("echo $$ > {}; exec sleep 100", sleeper.display());
    let child = dmon().args(["-n", "-p"]).arg(&pid).args(["sh", "-c", &script]).spawn().unwrap();
    let stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(20), || read(&pid).trim() == child.id().to_string()
        && !read(&sleeper).is_empty()));
    signal(child.id() as i32, libc::SIGKILL);
    finish(child, Duration::from_secs(20));
    drop(stopper);
    let sleeper_file = sleeper;
    let sleeper: i32 = read(&sleeper_file).trim().parse().unwrap();
    fs::remove_file(sleeper_file).unwrap();
    signal(sleeper, libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(10), || !alive(sleeper)), "the sleeper {sleeper} outlived KILL");
    assert!(pid.exists());
    let mut holder = as_nobody("flock").args(["-s"]).arg(&pid).args(["sleep", "100"]).spawn().unwrap();
    assert!(wait_until(Duration::from_secs(20), || fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .any(|l| l.contains(&format!(":{} ", fs::metadata(&pid).unwrap().ino())))));
    let out = run(dmon().args(["-n", "-1", "-p"]).arg(&pid).arg("true"));
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(out.status.success(), "{}", stderr_of(&out));

    // While dmon runs, nobody cannot take a lock that stops the next one either.
    let child = dmon().args(["-n", "-p"]).arg(&pid).args(["sleep", "100"]).spawn().unwrap();
    let _stopper = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(20), || read(&pid).trim() == child.id().to_string()));
    for entry in fs::read_dir(dir.path(".")).unwrap() {
        let path = entry.unwrap().path();
        let out = as_nobody("flock").args(["-n", "-s"]).arg(&path).arg("true").output().unwrap();
        if path != pid {
            assert!(!out.status.success(), "nobody could lock {}", path.display());
        }
    }
    let second = run(dmon().args(["-n", "-1", "-p"]).arg(&pid).arg("true"));
    assert_eq!(second.status.code(), Some(2), "{}", stderr_of(&second));
    assert!(stderr_of(&second).contains(&format!("locked by a running dmon (pid {})", child.id())));
    signal(child.id() as i32, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(30)).success());
    assert!(!pid.exists() && !dir.path("x.pid.lock").exists(), "the pid file or its lock was left");
}

// ---- -C: who may have written the options ----

fn config_run(path: &Path, as_nobody_user: bool) -> std::process::Output {
    let mut c = if as_nobody_user { as_nobody(DMON) } else { Command::new(DMON) };
    c.env_remove("DMON_OPTIONS").arg("-C").arg(path).args(["-n", "-1", "true"]);
    bounded(&mut c)
}

/// A `-C` file that someone else could have written is refused in one line that
/// names it, its owner and its mode; so are a FIFO, a device and a huge file.
#[test]
fn config_files_others_could_write_are_refused() {
    if !root_only("config_files_others_could_write_are_refused") {
        return;
    }
    let dir = Dir::new("config");
    chmod(&dir.0, 0o755);
    let conf = dir.path("ok.conf");
    fs::write(&conf, "once\n").unwrap();
    let out = config_run(&conf, false);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // nobody may read root's file.
    let out = config_run(&conf, true);
    assert!(out.status.success(), "{}", stderr_of(&out));

    let refused = |path: &Path, as_user: bool, expected: &[&str]| {
        let out = config_run(path, as_user);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", path.display());
        assert!(err.starts_with("dmon: -C/--config: "), "{err}");
        for e in expected {
            assert!(err.contains(e), "{}: {err:?} lacks {e:?}", path.display());
        }
        assert_eq!(err.lines().count(), 1, "{err}");
    };
    let anyone = dir.path("anyone.conf");
    fs::write(&anyone, "once\n").unwrap();
    chmod(&anyone, 0o666);
    refused(&anyone, false, &[&anyone.display().to_string(), "uid 0", "mode 0666"]);
    let group = dir.path("group.conf");
    fs::write(&group, "once\n").unwrap();
    chmod(&group, 0o664);
    refused(&group, false, &["mode 0664"]);
    let theirs = dir.path("theirs.conf");
    fs::write(&theirs, "once\n").unwrap();
    chown_nobody(&theirs);
    refused(&theirs, false, &[&theirs.display().to_string(), "uid 65534", "mode 0644"]);
    // ... but nobody's own file is nobody's to use.
    let out = config_run(&theirs, true);
    assert!(out.status.success(), "{}", stderr_of(&out));

    // A directory others can write to, sticky or not, for a file not root's.
    let open = dir.path("open");
    fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    let inside = open.join("c.conf");
    fs::write(&inside, "once\n").unwrap();
    refused(&inside, false, &[&format!("'{}'", open.display()), "mode 0777"]);
    chmod(&open, 0o1777);
    let out = config_run(&inside, false);
    assert!(out.status.success(), "root's file in a sticky directory: {}", stderr_of(&out));
    chown_nobody(&inside);
    refused(&inside, false, &["uid 65534"]);

    // Not regular files: none may block or fill memory.
    let fifo = dir.path("fifo.conf");
    mkfifo(&fifo);
    refused(&fifo, false, &["FIFO"]);
    refused(Path::new("/dev/zero"), false, &["/dev/zero", "not a regular file"]);
    let big = dir.path("big.conf");
    fs::write(&big, vec![b'#'; 2 << 20]).unwrap();
    refused(&big, false, &["larger than 1 MiB"]);
    // A planted link to a good file is no way around it.
    let link = open.join("link.conf");
    std::os::unix::fs::symlink(&conf, &link).unwrap();
    refused(&link, false, &["symbolic link"]);
}

/// A directory that may be searched but not read (a home of mode 0711) is
/// walked through: a walk needs only search permission, as the kernel's own.
#[test]
fn paths_through_a_directory_that_cannot_be_read() {
    if !root_only("paths_through_a_directory_that_cannot_be_read") {
        return;
    }
    let dir = Dir::new("search-only");
    let home = dir.path("home");
    fs::create_dir(&home).unwrap();
    chmod(&home, 0o711);
    let sub = home.join("sub");
    fs::create_dir(&sub).unwrap();
    chown_nobody(&sub);
    let status = sub.join("status");
    let out = bounded(as_nobody(DMON).env_remove("DMON_OPTIONS").args(["-n", "-1", "-I"]).arg(&status).arg("true"));
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(has_records(&read(&status)), "{:?}", read(&status));
    let log = sub.join("log");
    let mut dlog = as_nobody(support::bin("dlog"));
    dlog.env_remove("DLOG_OPTIONS").arg(&log).stdin(Stdio::null());
    let out = bounded(&mut dlog);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(log.exists());
}
