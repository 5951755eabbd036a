//! Case 8: planted links, FIFOs and foreign files in the place of the pid and
//! status files are refused.

use std::fs;
use std::time::Duration;

use crate::common::*;
use crate::support::*;

/// Case 8: the pid file and the status file in a world-writable sticky directory
/// where someone else planted a symbolic link, a FIFO, a hard link or a file of
/// their own. dmon refuses each in one line naming the path and the reason,
/// starts nothing, and the file the plant points at is left untouched.
#[test]
fn hostile_paths_are_refused_and_nothing_is_clobbered() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = Dir::new("hostile");
    let shared = dir.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.path("victim");
    fs::write(&victim, "precious\n").unwrap();
    let marker = dir.path("started");
    let touch = ["sh", "-c", &format!("touch {}", marker.display())];
    let nobody = 65534;

    let plant = |name: &str, kind: &str| -> std::path::PathBuf {
        let path = shared.join(name);
        let _ = fs::remove_file(&path);
        match kind {
            "symlink" => std::os::unix::fs::symlink(&victim, &path).unwrap(),
            "dangling symlink" => std::os::unix::fs::symlink(dir.path("new-file"), &path).unwrap(),
            "hard link" => fs::hard_link(&victim, &path).unwrap(),
            "fifo" | "foreign fifo" => {
                let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
                // SAFETY: mkfifo with a valid C string.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
            }
            "foreign file" => fs::write(&path, "").unwrap(),
            _ => unreachable!(),
        }
        if kind.starts_with("foreign") {
            std::os::unix::fs::lchown(&path, Some(nobody), Some(nobody)).unwrap();
        }
        path
    };
    let cases = [
        ("-p", "symlink", "is a symbolic link, which dmon does not follow"),
        ("-p", "dangling symlink", "is a symbolic link, which dmon does not follow"),
        ("-p", "fifo", "is a FIFO, not a regular file"),
        ("-p", "hard link", "has 2 hard links"),
        ("-p", "foreign file", "belongs to uid 65534 in a directory others can write to"),
        ("-I", "symlink", "is a symbolic link, which dmon does not follow"),
        ("-I", "dangling symlink", "is a symbolic link, which dmon does not follow"),
        ("-I", "hard link", "has 2 hard links"),
        ("-I", "foreign file", "belongs to uid 65534 in a directory others can write to"),
        ("-I", "foreign fifo", "belongs to uid 65534 in a directory others can write to"),
    ];
    let victim_before = fs::metadata(&victim).unwrap();
    for (option, kind, expected) in cases {
        let path = plant("target", kind);
        let child = dmon()
            .args(["-n", "-1", option])
            .arg(&path)
            .args(touch)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _stopper = Stopper::of(&child);
        let status = finish_output(child, Duration::from_secs(30));
        let err = stderr_of(&status);
        let what = format!("{option} on a {kind}: {err:?}");
        assert_eq!(status.status.code(), Some(2), "{what}");
        let name = if option == "-p" { "-p/--pid-file" } else { "-I/--write-info" };
        assert!(err.starts_with(&format!("dmon: {name}: cannot open '{}': it ", path.display())), "{what}");
        assert!(err.contains(expected), "{what}");
        assert_eq!(err.lines().count(), 1, "{what}");
        assert!(!marker.exists(), "{what}: the command was started");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n", "{what}: the victim was written");
        assert!(!dir.path("new-file").exists(), "{what}: the link's target was created");
        let kept = fs::symlink_metadata(&path).unwrap();
        assert!(kind.contains("symlink") == kept.file_type().is_symlink(), "{what}: the plant was replaced");
    }
    let victim_after = fs::metadata(&victim).unwrap();
    assert_eq!((victim_after.mtime(), victim_after.mtime_nsec()), (victim_before.mtime(), victim_before.mtime_nsec()));

    // What dmon made or owns itself is used: a stale pid file of its user, a
    // FIFO of its own as the status file.
    let pid_file = shared.join("dmon.pid");
    fs::write(&pid_file, "999999\n").unwrap();
    let fifo = plant("status.fifo", "fifo");
    let out = run(dmon().args(["-n", "-1", "-p"]).arg(&pid_file).arg("-I").arg(&fifo).args(touch));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(marker.exists());
    assert!(!pid_file.exists(), "the pid file was not removed at exit");
    println!("hostile paths: {} plants refused, the victim untouched", cases.len());
}
