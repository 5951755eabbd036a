//! dmon's status stream (`-I` with `--status-format`) and its readiness
//! notifications (`NOTIFY_SOCKET`), run as the built binary with a real status
//! file and a real unix datagram socket standing in for systemd.

mod common;

use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

use common::{Dir, dmon, finish, lines, wait_until};
use dmon::clock::Civil;
use serde_json::Value;

/// Every line of a JSON Lines file, each parsed on its own.
fn records(path: &Path) -> Vec<Value> {
    lines(path).iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect()
}

/// The next datagram, or `None` after `limit`.
fn receive(socket: &UnixDatagram, limit: Duration) -> Option<String> {
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0u8; 1024];
    let n = socket.recv(&mut buffer).ok()?;
    Some(String::from_utf8(buffer[..n].to_vec()).unwrap())
}

/// Whether `time` is `YYYY-mm-ddTHH:MM:SS.ffffffZ`.
fn is_rfc3339_utc_micros(time: &str) -> bool {
    let b = time.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    b.len() == 27
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26)
        && b[26] == b'Z'
}

#[test]
fn json_status_has_every_field_of_the_schema() {
    let dir = Dir::new("json");
    let before = Civil::now().rfc3339();
    let out = dmon()
        .args(["-n", "-m", "1", "--backoff-max", "0.05", "-I", &dir.s("st"), "--status-format", "json"])
        .args(["sh", "-c", "exit 3", "--", "sh", "-c", "exec cat >/dev/null"])
        .output()
        .unwrap();
    let after = Civil::now().rfc3339();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let records = records(&dir.path("st"));

    let tree = &records[0];
    assert_eq!(tree["event"], "tree");
    let backend = tree["backend"].as_str().unwrap();
    assert!(["cgroup2", "freezer", "signals"].contains(&backend), "{tree}");
    assert_eq!(tree["cgroup"].is_string(), backend != "signals", "{tree}");
    assert!(!tree["reason"].as_str().unwrap().is_empty(), "{tree}");

    let mut times = Vec::new();
    for record in &records {
        let time = record["time"].as_str().unwrap();
        assert!(is_rfc3339_utc_micros(time), "{record}");
        assert!(before.as_str() <= time && time <= after.as_str(), "{time} not within {before}..{after}");
        times.push(time.to_string());
    }
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "times go backwards: {times:?}");

    let of = |process: &str, event: &str| -> Vec<&Value> {
        records.iter().filter(|r| r["process"] == process && r["event"] == event).collect()
    };
    let starts = of("cmd", "start");
    let exits = of("cmd", "exit");
    assert_eq!((starts.len(), exits.len()), (2, 2), "{records:?}");
    for (start, exit) in starts.iter().zip(&exits) {
        assert!(start["pid"].as_i64().unwrap() > 1);
        assert_eq!(start["pid"], exit["pid"]);
        assert_eq!(exit["status"], 3 << 8);
        assert_eq!(exit["code"], 3);
        assert!(exit.get("signal").is_none(), "{exit}");
        assert_eq!(exit["reason"], "exit");
        for key in ["wall_ms", "cpu_user_ms", "cpu_system_ms", "paused_ms"] {
            assert!(exit["usage"][key].is_u64(), "{key}: {exit}");
        }
    }
    // The log command is started first and stopped at the end.
    assert_eq!(of("log", "start").len(), 1, "{records:?}");
    assert_eq!(records[1]["process"], "log");
    assert!(!of("log", "exit").is_empty(), "{records:?}");
}

#[test]
fn json_status_reports_a_killing_signal_and_forwarded_signals() {
    let dir = Dir::new("json-signal");
    let st = dir.path("st");
    let child = dmon()
        .args(["-n", "-s", "--backoff-max", "0.05", "-I", &dir.s("st"), "--status-format", "json"])
        .args(["sh", "-c", &format!("trap '' USR1; touch {}; exec sleep 600", dir.s("ready"))])
        .spawn()
        .unwrap();
    let started = |n: usize| {
        wait_until(Duration::from_secs(10), || records(&st).iter().filter(|r| r["event"] == "start").count() >= n)
    };
    assert!(started(1));
    // The USR1 must come after the trap, or it kills the shell.
    assert!(wait_until(Duration::from_secs(10), || dir.path("ready").exists()));
    let pid = records(&st).iter().find(|r| r["event"] == "start").unwrap()["pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    assert!(wait_until(Duration::from_secs(10), || records(&st).iter().any(|r| r["event"] == "signal")));
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(started(2));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(finish(child, Duration::from_secs(20)).success());

    let records = records(&st);
    let signal = records.iter().find(|r| r["event"] == "signal").unwrap();
    assert_eq!(
        (&signal["process"], signal["pid"].as_i64(), &signal["signal"]),
        (&"cmd".into(), Some(pid.into()), &libc::SIGUSR1.into())
    );
    let killed = records.iter().find(|r| r["event"] == "exit" && r["pid"] == pid).unwrap();
    assert_eq!(killed["status"], libc::SIGKILL);
    assert_eq!(killed["signal"], libc::SIGKILL);
    assert!(killed.get("code").is_none(), "{killed}");
    assert!(records.iter().any(|r| r["event"] == "stop"), "{records:?}");
}

#[test]
fn text_stays_the_default_and_matches_dmon() {
    let dir = Dir::new("text");
    let out = dmon().args(["-n", "-m", "0", "-I", &dir.s("st"), "sh", "-c", "exit 3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let lines = lines(&dir.path("st"));
    assert!(lines[0].starts_with("tree "), "{lines:?}");
    let pid = lines[1].strip_prefix("cmd start ").expect("a start line");
    assert_eq!(lines[2], format!("cmd exit {pid} 768"));
    // dmon's one addition to a run: its usage, right after DMon's exit line.
    let usage = lines[3].strip_prefix(&format!("cmd usage {pid} ")).unwrap_or_else(|| panic!("{lines:?}"));
    let keys: Vec<&str> = usage.split(' ').map(|kv| kv.split_once('=').expect("key=value").0).collect();
    assert_eq!(keys[..5], ["reason", "wall_ms", "cpu_user_ms", "cpu_system_ms", "paused_ms"], "{usage}");
    assert!(usage.starts_with("reason=exit "), "{usage}");
    assert_eq!(lines.len(), 4, "{lines:?}");
}

#[test]
fn status_format_from_a_config_file_and_bad_values() {
    let dir = Dir::new("config");
    fs::write(dir.path("conf"), format!("write-info {}\nstatus-format json\nno-daemon\n", dir.s("st"))).unwrap();
    let out = dmon().args(["-C", &dir.s("conf"), "-m", "0", "true"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = records(&dir.path("st"));
    assert_eq!(records.iter().map(|r| r["event"].as_str().unwrap()).collect::<Vec<_>>(), ["tree", "start", "exit"]);

    let out = dmon().args(["-n", "--status-format", "xml", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("dmon: ") && stderr.contains("xml") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn notify_socket_gets_ready_after_both_started_and_stopping_on_term() {
    let dir = Dir::new("notify");
    let socket = UnixDatagram::bind(dir.path("notify")).unwrap();
    let child = dmon()
        .env("NOTIFY_SOCKET", dir.path("notify"))
        .args(["-n", "-I", &dir.s("st")])
        .args(["sh", "-c", "echo \"[$NOTIFY_SOCKET]\" > \"$0\"; exec sleep 600", &dir.s("seen")])
        .args(["--", "sh", "-c", "exec cat >/dev/null"])
        .spawn()
        .unwrap();
    let ready = receive(&socket, Duration::from_secs(10)).expect("READY=1 within 10 s");
    assert_eq!(ready, format!("READY=1\nMAINPID={}\n", child.id()));
    // By then dmon has recorded both starts (it writes each before going on).
    let status = lines(&dir.path("st"));
    for who in ["cmd", "log"] {
        assert!(status.iter().any(|l| l.starts_with(&format!("{who} start "))), "{who} not started: {status:?}");
    }
    // The command does not see the socket: dmon speaks for the service.
    assert!(wait_until(Duration::from_secs(10), || fs::read_to_string(dir.path("seen")).is_ok_and(|s| s == "[]\n")));

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(receive(&socket, Duration::from_secs(10)).as_deref(), Some("STOPPING=1\n"));
    assert!(finish(child, Duration::from_secs(20)).success());
    socket.set_nonblocking(true).unwrap();
    assert!(socket.recv(&mut [0u8; 64]).is_err(), "more than one READY or STOPPING");
}

#[test]
fn notify_abstract_socket_and_a_detached_dmon_names_its_main_pid() {
    let dir = Dir::new("notify-abstract");
    let name = format!("dmon-test-notify-{}", std::process::id());
    let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let out =
        dmon().env("NOTIFY_SOCKET", format!("@{name}")).args(["-p", &dir.s("pid"), "sleep", "600"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ready = receive(&socket, Duration::from_secs(10)).expect("READY=1 within 10 s");
    let pid: i32 = fs::read_to_string(dir.path("pid")).unwrap().trim().parse().unwrap();
    assert_eq!(ready, format!("READY=1\nMAINPID={pid}\n"));
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(receive(&socket, Duration::from_secs(10)).as_deref(), Some("STOPPING=1\n"));
    assert!(wait_until(Duration::from_secs(20), || !dir.path("pid").exists()), "dmon did not stop");
}

#[test]
fn notify_no_ready_when_the_command_cannot_start() {
    let dir = Dir::new("notify-fail");
    let socket = UnixDatagram::bind(dir.path("notify")).unwrap();
    let out = dmon()
        .env("NOTIFY_SOCKET", dir.path("notify"))
        .args(["-n", "-m", "0", "/nonexistent/command"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    // dmon has exited: everything it sent is in the socket's queue.
    assert_eq!(receive(&socket, Duration::from_millis(100)).as_deref(), Some("STOPPING=1\n"));
    assert_eq!(receive(&socket, Duration::from_millis(100)), None);
}
