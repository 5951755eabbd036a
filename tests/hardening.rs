//! What a command that dmon starts gets of dmon's: only descriptors 0, 1 and 2;
//! a pipe (and a terminal) made by dmon that it can open again by name when it
//! runs as another user; and never root's controlling terminal. Each test runs
//! the built binary as root, with real users (`nobody`, `www-data`), a real
//! nginx and a real terminal (tmux).

mod common;

use common::*;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Returns from the test with a printed reason unless it runs as root.
macro_rules! need_root {
    () => {
        if !is_root() {
            return common::skip("this test changes users and needs root");
        }
    };
}

/// A file only root may read, holding `text`.
fn secret(dir: &Dir, text: &str) -> String {
    let path = dir.path("secret");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

/// dmon started by a shell that first opens `file` as descriptor 7, without
/// close-on-exec, as `exec 7<FILE` in a script would.
fn dmon_with_fd7(file: &str, args: &[&str]) -> Command {
    let mut command = dmon();
    let mut shell = Command::new("sh");
    shell.args(["-c", "exec 7<\"$0\"; exec \"$@\"", file]).arg(command.get_program()).args(args);
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => shell.env(name, value),
            None => shell.env_remove(name),
        };
    }
    command = shell;
    command.stdin(Stdio::null());
    command
}

/// What a command prints about descriptor 7: its contents or "closed".
const READ_FD7: &str = "cat <&7 2>/dev/null || echo closed";

/// Descriptor 7 of dmon reaches neither the command nor the log command, in
/// -n mode, dropped to nobody or not.
#[test]
fn only_the_standard_streams_are_inherited_with_n() {
    need_root!();
    let dir = shared_dir("fd7-n");
    let file = secret(&dir, "root-only-text\n");
    let out = dir.s("out");
    fs::write(&out, "").unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o666)).unwrap();
    for users in [&[][..], &["-u", "nobody", "-U", "nobody"][..]] {
        fs::write(&out, "").unwrap();
        let log = format!("{{ {READ_FD7}; cat; }} | sed 's/^/log: /' >> {out}");
        let mut args = vec!["-n", "-1"];
        args.extend_from_slice(users);
        args.extend(["sh", "-c", READ_FD7, "--", "sh", "-c", &log]);
        let output = run(&mut dmon_with_fd7(&file, &args));
        assert!(output.status.success(), "{users:?}: {}", stderr_of(&output));
        let seen = read(Path::new(&out));
        assert!(!seen.contains("root-only-text"), "{users:?}: descriptor 7 was inherited: {seen}");
        assert_eq!(seen.lines().filter(|l| *l == "log: closed").count(), 2, "{users:?}: {seen}");
    }
}

/// The same in daemon mode: the detached dmon still has descriptor 7.
#[test]
fn only_the_standard_streams_are_inherited_in_daemon_mode() {
    need_root!();
    let dir = shared_dir("fd7-daemon");
    let file = secret(&dir, "root-only-text\n");
    let out = dir.s("out");
    fs::write(&out, "").unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o666)).unwrap();
    // The pid file in a directory only root can write: dmon refuses one that
    // the -u user could forge.
    let run_dir = Dir::new("fd7-daemon-run");
    fs::set_permissions(&run_dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    let pid_file = run_dir.s("dmon.pid");
    let log = format!("{{ {READ_FD7}; cat; }} | sed 's/^/log: /' >> {out}");
    let args = ["-p", &pid_file, "-1", "-u", "nobody", "-U", "nobody", "sh", "-c", READ_FD7, "--", "sh", "-c", &log];
    let output = run(&mut dmon_with_fd7(&file, &args));
    assert!(output.status.success(), "{}", stderr_of(&output));
    // With -1 the daemon may have ended, and removed its pid file, already.
    let _stopper = read(Path::new(&pid_file)).trim().parse().ok().map(Stopper::new);
    assert!(wait_until(Duration::from_secs(10), || read(Path::new(&out)).lines().count() >= 2));
    let seen = read(Path::new(&out));
    assert!(!seen.contains("root-only-text"), "descriptor 7 was inherited: {seen}");
    assert_eq!(seen.lines().filter(|l| *l == "log: closed").count(), 2, "{seen}");
}

/// A command dropped to nobody opens its output again by name (/dev/stdout,
/// /dev/stderr, /proc/self/fd/1), and the log command its input (/dev/stdin):
/// the pipe dmon made is theirs. An inherited file is left as it was.
#[test]
fn a_dropped_command_reopens_the_pipe_dmon_made() {
    need_root!();
    let dir = shared_dir("reopen");
    let out = dir.s("out");
    let cmd = "echo one > /dev/stdout && echo two > /dev/stderr && echo three > /proc/self/fd/1";
    // Each log command writes a fresh file of its own user's.
    let log = format!("rm -f {out}; cat /dev/stdin > {out}");
    let output = run(dmon()
        .args(["-n", "-m", "0", "-u", "nobody", "-e", "-U", "nobody", "sh", "-c", cmd, "--", "sh"])
        .args(["-c", &log]));
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(read(Path::new(&out)), "one\ntwo\nthree\n", "{}", stderr_of(&output));
    // Only the user the command runs as: the log command stays root. Without
    // -e the command's stderr is the test's own, which stays as it was.
    let cmd =
        "echo one > /dev/stdout && echo three > /proc/self/fd/1 && exec 3>&2 2>/dev/null && ! echo 2 > /proc/self/fd/3";
    let output = run(dmon().args(["-n", "-m", "0", "-u", "nobody", "sh", "-c", cmd, "--", "sh", "-c", &log]));
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(read(Path::new(&out)), "one\nthree\n", "{}", stderr_of(&output));
    // Two users: both ends open for each.
    let output =
        run(dmon().args(["-n", "-m", "0", "-u", "nobody", "-U", "www-data", "sh", "-c", cmd, "--", "sh", "-c", &log]));
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(read(Path::new(&out)), "one\nthree\n", "{}", stderr_of(&output));
}

/// Without a log command the command's output is dmon's own, inherited: it
/// stays root's, and the dropped command cannot open it again.
#[test]
fn an_inherited_file_is_not_widened() {
    need_root!();
    let dir = shared_dir("inherited");
    let path = dir.path("root-output");
    let file = fs::File::create(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let cmd = "echo direct; echo reopened > /dev/stdout || echo refused";
    let output =
        run(dmon().args(["-n", "-m", "0", "-u", "nobody", "sh", "-c", cmd]).stdout(file).stderr(Stdio::null()));
    assert!(output.status.success());
    assert_eq!(read(&path), "direct\nrefused\n");
    let meta = fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
}

/// A free TCP port on the loopback address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One plain HTTP/1.0 request to 127.0.0.1:`port`; the status line.
fn get(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_string)
}

/// The real uid of a process, from /proc.
fn uid_of(pid: i32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
}

/// The children of a process, from /proc.
fn children(pid: i32) -> Vec<i32> {
    let tasks = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    tasks.split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

/// nginx as www-data under dmon, its access log on /dev/stdout into dlog: it
/// answers, its master and workers are www-data's, and the access line is
/// logged. With -n and as a daemon.
fn nginx(daemon: bool) {
    if !is_root() {
        return common::skip("this test changes users and needs root");
    }
    if !Path::new("/usr/sbin/nginx").exists() {
        return common::skip("nginx is not installed (Debian package nginx-light)");
    }
    let dir = Dir::new(if daemon { "nginx-daemon" } else { "nginx-n" });
    let www = dir.path("www");
    fs::create_dir(&www).unwrap();
    fs::write(www.join("index.html"), "hello\n").unwrap();
    let state = dir.path("state");
    fs::create_dir(&state).unwrap();
    let _ = Command::new("chown").arg("www-data:www-data").arg(&state).status();
    let port = free_port();
    let conf = dir.path("nginx.conf");
    fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 4;\npid {state}/nginx.pid;\nerror_log stderr;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log /dev/stdout;\n  client_body_temp_path {state}/body;\n\
             proxy_temp_path {state}/proxy;\n  fastcgi_temp_path {state}/fastcgi;\n\
             uwsgi_temp_path {state}/uwsgi;\n  scgi_temp_path {state}/scgi;\n\
             server {{ listen 127.0.0.1:{port}; root {www}; }}\n}}\n",
            state = state.display(),
            www = www.display(),
        ),
    )
    .unwrap();
    let status = dir.path("status");
    let logfile = dir.path("access.log");
    let dlog = Path::new(DMON).with_file_name("dlog");
    let mut args: Vec<String> = Vec::new();
    if daemon {
        args.extend(["-p".into(), dir.s("dmon.pid")]);
    } else {
        args.push("-n".into());
    }
    args.extend(["-I".into(), status.to_str().unwrap().into(), "-u".into(), "www-data".into(), "-e".into()]);
    args.extend(["/usr/sbin/nginx", "-e", "stderr", "-p"].map(String::from));
    args.extend([state.to_str().unwrap().into(), "-c".into(), conf.to_str().unwrap().into(), "--".into()]);
    args.extend([dlog.to_str().unwrap().to_string(), logfile.to_str().unwrap().to_string()]);
    let (mut foreground, dmon_pid) = if daemon {
        let output = run(dmon().args(&args));
        assert!(output.status.success(), "{}", stderr_of(&output));
        (None, read(&dir.path("dmon.pid")).trim().parse::<i32>().unwrap())
    } else {
        let child = dmon().args(&args).stderr(Stdio::null()).spawn().unwrap();
        let pid = child.id() as i32;
        (Some(child), pid)
    };
    let _stopper = Stopper::new(dmon_pid);
    let mut answer = None;
    let answered = wait_until(Duration::from_secs(20), || {
        answer = get(port);
        answer.is_some()
    });
    let starts = started(&status, "cmd");
    assert!(answered, "nginx did not answer; starts {starts:?}; access log: {}", read(&logfile));
    assert!(answer.as_deref().unwrap_or("").contains(" 200 "), "{answer:?}");
    assert_eq!(starts.len(), 1, "nginx was restarted: {}", read(&status));
    let master = starts[0];
    let mut workers = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        workers = children(master);
        workers.len() == 4
    }));
    let www_data: u32 = String::from_utf8(Command::new("id").args(["-u", "www-data"]).output().unwrap().stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for pid in std::iter::once(master).chain(workers.iter().copied()) {
        assert_eq!(uid_of(pid), Some(www_data), "nginx process {pid} is not www-data's");
    }
    assert!(
        wait_until(Duration::from_secs(10), || read(&logfile).contains("\"GET /index.html HTTP/1.0\" 200")),
        "the access line was not logged: {:?}",
        read(&logfile)
    );
    signal(dmon_pid, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(20), || !alive(dmon_pid)), "dmon did not stop");
    if let Some(child) = foreground.as_mut() {
        let _ = child.wait();
    }
    for pid in std::iter::once(master).chain(workers) {
        assert!(!alive(pid), "nginx process {pid} was left running");
    }
}

#[test]
fn nginx_as_www_data_logs_to_dev_stdout_with_n() {
    nginx(false)
}

#[test]
fn nginx_as_www_data_logs_to_dev_stdout_as_a_daemon() {
    nginx(true)
}

/// `dev.tty.legacy_tiocsti` set to 1 for the test, put back when dropped.
struct LegacyTiocsti(Option<String>);

const TIOCSTI_SYSCTL: &str = "/proc/sys/dev/tty/legacy_tiocsti";

impl LegacyTiocsti {
    fn enable() -> Result<LegacyTiocsti, String> {
        let before = fs::read_to_string(TIOCSTI_SYSCTL)
            .map_err(|e| format!("the kernel has no dev.tty.legacy_tiocsti ({e}): TIOCSTI cannot be tested"))?;
        if before.trim() == "1" {
            return Ok(LegacyTiocsti(None));
        }
        fs::write(TIOCSTI_SYSCTL, "1").map_err(|e| format!("cannot set dev.tty.legacy_tiocsti: {e}"))?;
        Ok(LegacyTiocsti(Some(before)))
    }
}

impl Drop for LegacyTiocsti {
    fn drop(&mut self) {
        if let Some(before) = &self.0 {
            let _ = fs::write(TIOCSTI_SYSCTL, before.trim());
        }
    }
}

/// A root shell (bash) in a tmux session of its own, killed when dropped.
struct Tmux(String);

impl Tmux {
    fn start(name: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            skip("tmux is not installed");
            return None;
        }
        let session = format!("dmon-{name}-{}", std::process::id());
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session, "-x", "80", "-y", "20", "bash", "--norc", "--noprofile", "-i"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux did not start");
        Some(Tmux(session))
    }

    fn keys(&self, keys: &[&str]) {
        Command::new("tmux").args(["send-keys", "-t", &self.0]).args(keys).status().unwrap();
    }

    fn line(&self, text: &str) {
        self.keys(&["-l", text]);
        self.keys(&["Enter"]);
    }

    /// Runs `line` in the shell and waits until it has.
    fn run(&self, dir: &Dir, line: &str) {
        let marker = dir.path("ran");
        let _ = fs::remove_file(&marker);
        self.line(&format!("{line}; touch {}", marker.display()));
        assert!(wait_until(Duration::from_secs(20), || marker.exists()), "the shell did not run: {line}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).stderr(Stdio::null()).status();
    }
}

/// A command dropped to nobody pushes a line into its terminal's input with
/// TIOCSTI, byte by byte: the line never reaches root's shell, which would
/// run it once dmon exits.
#[test]
fn a_dropped_command_cannot_type_into_roots_shell() {
    need_root!();
    let _sysctl = match LegacyTiocsti::enable() {
        Ok(sysctl) => sysctl,
        Err(why) => return skip(&why),
    };
    let Some(shell) = Tmux::start("tiocsti") else { return };
    let dir = Dir::new("tiocsti");
    let pwned = dir.path("pwned");
    let helper = dir.path("inject.py");
    fs::write(
        &helper,
        format!(
            "import fcntl, termios\nfor b in b'id > {}\\n':\n    for fd in (0, 1, 2):\n        try:\n            \
             fcntl.ioctl(fd, termios.TIOCSTI, bytes([b]))\n            break\n        except OSError:\n            \
             pass\n",
            pwned.display()
        ),
    )
    .unwrap();
    let done = dir.path("done");
    let inject = format!("{} {}", python(), helper.display());
    // The command, then the log command, whose output is the terminal.
    for args in [format!("-u nobody {inject}"), format!("-U nobody true -- {inject}")] {
        let _ = fs::remove_file(&done);
        shell.line(&format!("{DMON} -n -m 0 {args}; echo $? > {}", done.display()));
        assert!(wait_until(Duration::from_secs(20), || !read(&done).is_empty()), "dmon {args} did not end");
        // Anything typed ahead would be read by now, before this line.
        shell.run(&dir, "true");
        assert!(!pwned.exists(), "root's shell ran the line that dmon {args} typed: {}", read(&pwned));
    }
}

/// What the interactive helper writes: its terminal, a typed line, the window
/// size after a SIGWINCH.
const INTERACTIVE: &str = r#"
import os, signal, struct, sys, fcntl, termios
out = sys.argv[1]
def put(name, text):
    with open(out + "." + name + ".tmp", "w") as f:
        f.write(text)
    os.rename(out + "." + name + ".tmp", out + "." + name)
def size(*_):
    rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
    put("size", "%d %d\n" % (rows, cols))
signal.signal(signal.SIGWINCH, size)
put("tty", "%s %d %d\n" % (os.ttyname(0), os.tcgetpgrp(0) == os.getpgrp(), os.getpid()))
put("typed", sys.stdin.readline())
while True:
    signal.pause()
"#;

/// `-n -u nobody` on a terminal: the command has a terminal of its own, not
/// the shell's, is its foreground job, reads a typed line, hears of a window
/// change, and Ctrl-C ends dmon; the shell's terminal is as it was after.
#[test]
fn a_dropped_interactive_command_gets_a_terminal_of_its_own() {
    need_root!();
    let Some(shell) = Tmux::start("pty") else { return };
    let dir = shared_dir("pty");
    let helper = dir.path("interactive.py");
    fs::write(&helper, INTERACTIVE).unwrap();
    let out = dir.s("out");
    let (shell_tty, stty_before, done) = (dir.path("shell-tty"), dir.path("stty-before"), dir.path("done"));
    shell.run(&dir, &format!("tty > {}; stty -g > {}", shell_tty.display(), stty_before.display()));
    shell.line(&format!("{DMON} -n -u nobody {} {} {out}; echo $? > {}", python(), helper.display(), done.display()));
    let seen = |name: &str| read(Path::new(&format!("{out}.{name}")));
    assert!(wait_until(Duration::from_secs(20), || !seen("tty").is_empty()), "the command did not start");
    let fields: Vec<String> = seen("tty").split_whitespace().map(str::to_string).collect();
    let (tty, foreground, pid) = (&fields[0], fields[1] == "1", fields[2].parse::<i32>().unwrap());
    assert_ne!(tty, read(&shell_tty).trim(), "the command has the shell's terminal");
    assert!(foreground, "the command is not its terminal's foreground job");
    let owner = fs::metadata(tty).unwrap().uid();
    assert_eq!(owner, 65534, "{tty} is not nobody's");
    shell.line("hello there");
    assert!(wait_until(Duration::from_secs(10), || seen("typed") == "hello there\n"), "{:?}", seen("typed"));
    Command::new("tmux").args(["resize-window", "-t", &shell.0, "-x", "100", "-y", "30"]).status().unwrap();
    assert!(wait_until(Duration::from_secs(10), || seen("size") == "30 100\n"), "window size: {:?}", seen("size"));
    // Ctrl-Z stops the command, as on dmon's own terminal; CONT goes on.
    shell.keys(&["C-z"]);
    assert!(wait_until(Duration::from_secs(10), || state(pid) == Some('T')), "Ctrl-Z: {:?}", state(pid));
    signal(pid, libc::SIGCONT);
    assert!(wait_until(Duration::from_secs(10), || state(pid) == Some('S')), "CONT: {:?}", state(pid));
    shell.keys(&["C-c"]);
    assert!(wait_until(Duration::from_secs(20), || !read(&done).is_empty()), "dmon did not end on Ctrl-C");
    assert!(!alive(pid), "the command outlived dmon");
    let stty_after = dir.path("stty-after");
    shell.run(&dir, &format!("stty -g > {}", stty_after.display()));
    assert_eq!(read(&stty_after), read(&stty_before), "the shell's terminal settings changed");
}
