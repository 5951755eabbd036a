//! Case 6: a full disk under the status file, the pid file and the loggers'
//! output.

use std::fs;
use std::time::Duration;

use crate::common::*;
use crate::support::*;

/// Case 6, status and pid files: on a full disk dmon keeps running, says once
/// that status lines are dropped, keeps every line already written whole, and
/// goes on when space is back; a pid file that cannot be written is reported and
/// not left behind, in the foreground and in daemon mode.
#[test]
fn full_disk_for_status_and_pid_files() {
    let disk = match Tmpfs::mount("full-status", "64k") {
        Ok(disk) => disk,
        Err(why) => return skip(&format!("disk full: {why}")),
    };
    let status = disk.path("status");
    let pid_file = disk.path("dmon.pid");
    let log = Dir::new("full-status-log");
    let stderr = fs::File::create(log.path("stderr")).unwrap();
    let child = dmon()
        .args(["-n", "-s", "-p"])
        .arg(&pid_file)
        .arg("-I")
        .arg(&status)
        .args([
            "sh",
            "-c",
            &format!("trap '' USR1; touch {}; while :; do sleep 0.05; done", log.path("ready").display()),
        ])
        .stderr(stderr)
        .spawn()
        .unwrap();
    let dmon_pid = child.id() as i32;
    let _stopper = Stopper::new(dmon_pid);
    assert!(wait_until(Duration::from_secs(10), || !started(&status, "cmd").is_empty()));
    // USR1 is forwarded: only once the command ignores it.
    assert!(wait_until(Duration::from_secs(10), || log.path("ready").exists()));
    let cmd = started(&status, "cmd")[0];
    fill(&disk.path("filler"));
    // Status lines until the last page of the status file is full too.
    assert!(
        wait_until(Duration::from_secs(60), || {
            signal(dmon_pid, libc::SIGUSR1);
            std::thread::sleep(Duration::from_millis(1));
            read(&log.path("stderr")).contains("No space left on device")
        }),
        "no report of the full disk"
    );
    // More lines while it is full.
    for _ in 0..100 {
        signal(dmon_pid, libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(alive(dmon_pid) && alive(cmd));
    assert_eq!(read(&pid_file), format!("{dmon_pid}\n"), "the pid file changed on the full disk");
    let written = lines(&status).len();
    fs::remove_file(disk.path("filler")).unwrap();
    signal(dmon_pid, libc::SIGUSR1);
    assert!(
        wait_until(Duration::from_secs(30), || {
            signal(dmon_pid, libc::SIGUSR1);
            lines(&status).len() > written + 1
        }),
        "status lines did not resume"
    );
    signal(dmon_pid, libc::SIGTERM);
    assert!(finish(child, Duration::from_secs(30)).success());
    let text = read(&status);
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let whole = match words.as_slice() {
            ["tree", ..] => true,
            ["cmd", "signal", pid, "10"] => *pid == cmd.to_string(),
            ["cmd", "start" | "stop", pid] => *pid == cmd.to_string(),
            ["cmd", "exit", pid, _] => *pid == cmd.to_string(),
            ["cmd", "usage", pid, reason, ..] => *pid == cmd.to_string() && reason.starts_with("reason="),
            _ => false,
        };
        assert!(whole, "status line {line:?} is not whole");
    }
    let err = read(&log.path("stderr"));
    assert_eq!(err.matches("cannot write to the status file").count(), 1, "{err}");
    println!(
        "disk full: status file: {} lines kept whole, {} after recovery; one warning",
        written,
        text.lines().count()
    );

    // A pid file that cannot be written: reported, not left behind.
    fill(&disk.path("filler"));
    for daemon in [false, true] {
        let path = disk.path(&format!("new-{daemon}.pid"));
        let mut command = dmon();
        if !daemon {
            command.arg("-n");
        }
        let out = run(command.arg("-p").arg(&path).args(["sleep", "600"]));
        let err = stderr_of(&out);
        assert!(!out.status.success(), "daemon {daemon}: {err}");
        assert!(!panicked(&out), "{err}");
        assert_eq!(err, "dmon: -p/--pid-file: cannot write: No space left on device\n", "daemon {daemon}");
        assert!(!path.exists(), "daemon {daemon}: an empty pid file was left behind");
    }
    let _ = fs::remove_file(disk.path("filler"));
}

/// Case 6, log output: dlog and drlog on a full disk report it, retry, and lose
/// nothing: the command blocks on the full pipe, and once space is back every
/// line arrives whole and in order.
#[test]
fn full_disk_for_dlog_and_drlog_output() {
    for tool in ["dlog", "drlog"] {
        let disk = match Tmpfs::mount(&format!("full-{tool}"), "4m") {
            Ok(disk) => disk,
            Err(why) => return skip(&format!("disk full: {why}")),
        };
        let dir = Dir::new(&format!("full-{tool}-st"));
        let status = dir.path("status");
        // More than the 1 MiB pipe dlog and drlog ask for.
        let total = 300_000;
        let writer = format!("i=0; while [ $i -lt {total} ]; do i=$((i+1)); echo $i; done");
        let (logger, output) = match tool {
            "dlog" => (vec![DLOG.to_string(), disk.dir.s("out")], disk.path("out")),
            _ => (vec![DRLOG.to_string(), "-s".into(), "1m".into(), disk.dir.s("logs")], disk.path("logs/current")),
        };
        fs::create_dir(disk.path("logs")).unwrap();
        let stderr = fs::File::create(dir.path("stderr")).unwrap();
        let child = dmon()
            .args(["-n", "-1", "--grace", "5", "-I"])
            .arg(&status)
            .args(["sh", "-c", &writer, "--"])
            .args(&logger)
            .stderr(stderr)
            .spawn()
            .unwrap();
        let _stopper = Stopper::of(&child);
        assert!(wait_until(Duration::from_secs(10), || read(&output).lines().count() > 100));
        assert!(wait_until(Duration::from_secs(10), || !started(&status, "cmd").is_empty()));
        let cmd = started(&status, "cmd")[0];
        fill(&disk.path("filler"));
        assert!(
            wait_until(Duration::from_secs(30), || read(&dir.path("stderr")).contains("No space left on device")),
            "{tool} did not report the full disk"
        );
        assert!(
            wait_until(Duration::from_secs(30), || blocked_on_pipe(cmd)),
            "{tool}: the command is not blocked on the pipe"
        );
        let during = read(&output).lines().count();
        fs::remove_file(disk.path("filler")).unwrap();
        let code = finish(child, Duration::from_secs(120));
        let err = read(&dir.path("stderr"));
        assert_eq!(code.code(), Some(0), "{tool}: {err}");
        let mut got = String::new();
        if tool == "drlog" {
            let mut names: Vec<_> = fs::read_dir(disk.path("logs"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .collect();
            names.sort();
            for name in names.iter().filter(|n| n.starts_with("log-")).chain(names.iter().filter(|n| *n == "current")) {
                got.push_str(&read(&disk.path("logs").join(name)));
            }
        } else {
            got = read(&output);
        }
        let expected: String = (1..=total).map(|i| format!("{i}\n")).collect();
        assert!(got == expected, "{tool}: {} lines arrived of {total}", got.lines().count());
        println!(
            "disk full: {tool}: {total} lines, {during} written when the disk was full, all arrived after; {tool} said: {:?}",
            err.lines().find(|l| l.contains("No space")).unwrap_or("")
        );
    }
}
