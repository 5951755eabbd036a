//! dslog and dsyslog: each line to a syslog socket the test listens on, long
//! lines in pieces, the console fallback, and waiting for a syslog daemon.

use std::os::unix::net::UnixDatagram;

use super::*;

/// A syslog socket bound in `dir`, as a daemon would listen on /dev/log.
fn syslog_socket(dir: &Dir) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.path("log.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    (socket, path)
}

fn receive(socket: &UnixDatagram) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 17];
    let n = socket.recv(&mut buf).expect("a syslog message");
    buf.truncate(n);
    buf
}

/// Splits `<PRI>Mmm dd HH:MM:SS rest` into (PRI, rest), checking the header.
fn parse_syslog(message: &[u8]) -> (u32, Vec<u8>) {
    let text = message;
    assert_eq!(text[0], b'<', "{:?}", String::from_utf8_lossy(message));
    let close = text.iter().position(|&b| b == b'>').unwrap();
    let pri = std::str::from_utf8(&text[1..close]).unwrap().parse().unwrap();
    let stamp = std::str::from_utf8(&text[close + 1..close + 16]).unwrap();
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    assert!(months.contains(&&stamp[..3]), "{stamp:?}");
    assert_eq!(&stamp[6..7], " ");
    assert_eq!(text[close + 16], b' ');
    (pri, text[close + 17..].to_vec())
}

#[test]
fn dslog_sends_each_line_to_the_syslog_socket() {
    let dir = Dir::new("dslog");
    let (socket, path) = syslog_socket(&dir);
    let (code, _, err) = run_with(
        tool("dslog").args(["-p", "INFO", "-f", "local3", "--socket"]).arg(&path).arg("myservice"),
        b"hello\n\ncaf\xe9\n",
    );
    assert_eq!((code, err.as_str()), (0, ""));
    let expected: [&[u8]; 3] = [b"myservice: hello", b"myservice: ", b"myservice: caf\xe9"];
    for text in expected {
        let (pri, rest) = parse_syslog(&receive(&socket));
        assert_eq!(pri, 19 * 8 + 6);
        assert_eq!(rest, text);
    }
}

#[test]
fn dsyslog_is_the_same_program_and_defaults_to_daemon_warning() {
    let dir = Dir::new("dsyslog");
    let (socket, path) = syslog_socket(&dir);
    let (code, _, _) = run_with(tool("dsyslog").args(["-e", "--socket"]).arg(&path).arg("svc"), b"\nx\n");
    assert_eq!(code, 0);
    let (pri, rest) = parse_syslog(&receive(&socket));
    assert_eq!((pri, rest.as_slice()), (3 * 8 + 4, &b"svc: x"[..]));
}

#[test]
fn dsyslog_version_names_dsyslog() {
    for name in ["dslog", "dsyslog"] {
        let out = tool(name).arg("--version").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text, format!("{name} {}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn dslog_takes_options_from_dslog_options() {
    let dir = Dir::new("dslogenv");
    let (socket, path) = syslog_socket(&dir);
    let options = format!("-p err -f LOG_MAIL --socket {}", path.display());
    let (code, _, _) = run_with(tool("dslog").env("DSLOG_OPTIONS", options).arg("n"), b"m\n");
    assert_eq!(code, 0);
    let (pri, _) = parse_syslog(&receive(&socket));
    assert_eq!(pri, 2 * 8 + 3);
}

#[test]
fn dslog_sends_a_long_line_in_consecutive_pieces() {
    let dir = Dir::new("dsloglong");
    let (socket, path) = syslog_socket(&dir);
    let long: Vec<u8> = (0..20_000).map(|i| b'a' + (i % 26) as u8).collect();
    let mut input = long.clone();
    input.push(b'\n');
    let (code, _, _) = run_with(tool("dslog").arg("--socket").arg(&path).arg("n"), &input);
    assert_eq!(code, 0);
    let mut joined = Vec::new();
    for size in [8192, 8192, 20_000 - 16_384] {
        let (_, rest) = parse_syslog(&receive(&socket));
        let text = rest.strip_prefix(b"n: ").unwrap();
        assert_eq!(text.len(), size);
        joined.extend_from_slice(text);
    }
    assert_eq!(joined, long);
}

#[test]
fn dslog_falls_back_to_the_console_with_c() {
    let dir = Dir::new("dslogcons");
    let console = dir.path("console");
    std::fs::write(&console, "").unwrap();
    let (code, _, _) = run_with(
        tool("dslog")
            .args(["-c", "--socket"])
            .arg(dir.path("nobody-listens"))
            .arg("--console-device")
            .arg(&console)
            .arg("svc"),
        b"lost?\n",
    );
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&console).unwrap(), "svc: lost?\r\n");
}

#[test]
fn dslog_waits_for_the_syslog_daemon_rather_than_dropping_lines() {
    let dir = Dir::new("dslogwait");
    let path = dir.path("log.sock");
    let (r, mut w) = pipe();
    let mut child = spawn_reading(tool("dslog").arg("--socket").arg(&path).arg("svc"), &r);
    drop(r);
    w.write_all(b"early\n").unwrap();
    drop(w);
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\n") {
        assert_eq!(stderr.read(&mut byte).unwrap(), 1);
        seen.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("retrying"), "{:?}", String::from_utf8_lossy(&seen));
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    let (_, rest) = parse_syslog(&receive(&socket));
    assert_eq!(rest, b"svc: early");
    assert!(child.wait().unwrap().success());
}

#[test]
fn dslog_rejects_unknown_names() {
    let (code, _, err) = run_with(tool("dslog").args(["-p", "loud", "x"]), b"");
    assert_eq!(code, 2);
    assert!(err.contains("--priority") && err.contains("'loud'"), "{err}");
    let (code, _, err) = run_with(tool("dslog").args(["-f", "local9", "x"]), b"");
    assert_eq!(code, 2);
    assert!(err.contains("--facility") && err.contains("'local9'"), "{err}");
}
