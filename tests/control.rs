//! `--control DIR` driven from outside by runit's own `sv` (and by plain writes
//! to the FIFO), in every tree backend of this host: cgroup2 (hybrid, the
//! default), the v1 freezer, and signals as an unprivileged user. A tree of busy
//! loops with a setsid'd grandchild shows a stopped tree as no CPU progress.
//! Real runsv on a scratch directory is the reference for the files.

// Each dmon a test starts is ended and reaped by its Stopper.
#![allow(clippy::zombie_processes)]

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

const SV: &str = "/usr/bin/sv";
const RUNSV: &str = "/usr/bin/runsv";

fn have_runit() -> bool {
    if Path::new(SV).exists() && Path::new(RUNSV).exists() {
        return true;
    }
    skip("runit's sv and runsv are not installed (apt-get install runit)");
    false
}

fn sv(args: &[&str], dir: &Path) -> Output {
    Command::new(SV).args(args).arg(dir).env_remove("SVWAIT").output().expect("sv runs")
}

fn sv_out(args: &[&str], dir: &Path) -> String {
    String::from_utf8_lossy(&sv(args, dir).stdout).into_owned()
}

/// The leader writes its pid to `leader`, its setsid'd child to `grandchild`;
/// both spin.
fn tree_script(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "echo $$ > {d}/leader.new; mv {d}/leader.new {d}/leader; \
         setsid sh -c 'echo $$ > {d}/gc.new; mv {d}/gc.new {d}/gc; while :; do :; done' & \
         while :; do :; done"
    )
}

fn pid_in(path: &Path) -> Option<i32> {
    read(path).trim().parse().ok()
}

/// utime + stime of a process, in clock ticks.
fn cpu(pid: i32) -> u64 {
    let stat = read(Path::new(&format!("/proc/{pid}/stat")));
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, r)| r.split_whitespace().collect());
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// Whether every process in `pids` made no CPU progress over 400 ms.
fn all_stopped(pids: &[i32]) -> bool {
    let before: Vec<u64> = pids.iter().map(|p| cpu(*p)).collect();
    std::thread::sleep(Duration::from_millis(400));
    pids.iter().zip(before).all(|(p, b)| cpu(*p) == b && alive(*p))
}

/// Whether every process in `pids` stops making progress within 10 s: a freeze
/// is asked for when dmon writes its record, and completes a little later.
fn stop(pids: &[i32]) -> bool {
    wait_until(Duration::from_secs(10), || all_stopped(pids))
}

/// Whether every process in `pids` made CPU progress (within a few tries).
fn all_running(pids: &[i32]) -> bool {
    wait_until(Duration::from_secs(5), || {
        let before: Vec<u64> = pids.iter().map(|p| cpu(*p)).collect();
        std::thread::sleep(Duration::from_millis(300));
        pids.iter().zip(before).all(|(p, b)| cpu(*p) > b)
    })
}

/// The 20 bytes of `supervise/status`: (pid, paused, want, term, run state).
/// (255 as the run state while there is no status yet.)
fn status_of(supervise: &Path) -> (u32, bool, u8, bool, u8) {
    let Ok(bytes) = fs::read(supervise.join("status")) else { return (0, false, 0, false, 255) };
    let bytes: [u8; 20] = bytes.try_into().expect("20 bytes");
    let (_, pid, paused, want, term, run) = dmon::control::decode_status(&bytes);
    (pid, paused, want, term, run)
}

/// Seconds since the status's stamp, as sv counts them.
fn age(supervise: &Path) -> u64 {
    let bytes: [u8; 20] = fs::read(supervise.join("status")).unwrap().try_into().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    now.saturating_sub(dmon::control::decode_status(&bytes).0)
}

/// A dmon under `--control` on a fresh service directory, with `cat` as log command.
struct Service {
    // Dropped first: dmon ends before its directory goes.
    _stop: Option<Stopper>,
    child: Option<Child>,
    dir: Dir,
    svc: PathBuf,
}

impl Service {
    /// Starts `dmon [pre...] --control DIR/svc -I DIR/info ARGS... sh -c TREE -- cat`;
    /// `wrap` runs dmon under another program (setpriv); `daemon` leaves out `-n`.
    fn start(name: &str, wrap: &[&str], pre: &[&str], daemon: bool, shared: bool) -> Service {
        let dir = if shared { shared_dir(name) } else { Dir::new(name) };
        let svc = dir.path("svc");
        let mut command = if wrap.is_empty() {
            dmon()
        } else {
            let mut c = Command::new(wrap[0]);
            c.args(&wrap[1..]).arg(DMON).env_remove("DMON_OPTIONS").stdin(Stdio::null());
            c
        };
        if !daemon {
            command.arg("-n");
        } else {
            command.args(["-p", &dir.s("dmon.pid")]);
        }
        command.args(pre).args(["--control", &dir.s("svc"), "-I", &dir.s("info"), "--status-format", "json"]);
        command.args(["--grace", "2", "sh", "-c", &tree_script(&dir.0), "--", "cat"]);
        let mut child = command.stdout(Stdio::null()).spawn().unwrap();
        let (child, stop) = if daemon {
            let status = finish(child, Duration::from_secs(20));
            assert!(status.success(), "the daemon did not start: {status}");
            let pid = pid_in(&dir.path("dmon.pid")).expect("pid file");
            (None, Some(Stopper::new(pid)))
        } else {
            assert!(
                wait_until(Duration::from_secs(10), || child.try_wait().unwrap().is_none() && dir.path("gc").exists())
            );
            let stop = Stopper::of(&child);
            (Some(child), Some(stop))
        };
        let service = Service { dir, svc, child, _stop: stop };
        assert!(wait_until(Duration::from_secs(10), || service.pids().len() == 2), "the tree did not start");
        service
    }

    fn pids(&self) -> Vec<i32> {
        [pid_in(&self.dir.path("leader")), pid_in(&self.dir.path("gc"))].into_iter().flatten().collect()
    }

    fn supervise(&self) -> PathBuf {
        self.svc.join("supervise")
    }

    fn info(&self) -> Vec<String> {
        lines(&self.dir.path("info"))
    }

    fn sv(&self, args: &[&str]) -> Output {
        sv(args, &self.svc)
    }
}

/// `sv pause` stops every process of the tree, `sv cont` lets them run again;
/// the status says so.
fn pause_and_cont(service: &Service) {
    let pids = service.pids();
    assert!(all_running(&pids), "the tree does not run");
    assert!(service.sv(&["pause"]).status.success());
    assert!(wait_until(Duration::from_secs(5), || status_of(&service.supervise()).1));
    assert!(stop(&pids), "sv pause left part of the tree running: {pids:?}");
    let leader = pids[0] as u32;
    assert_eq!(status_of(&service.supervise()), (leader, true, b'u', false, 1));
    assert_eq!(read(&service.supervise().join("stat")), "run, paused\n");
    assert_eq!(read(&service.supervise().join("pid")), format!("{leader}\n"));
    let status = sv_out(&["status"], &service.svc);
    let head = format!("run: {}: (pid {leader}) ", service.svc.display());
    assert!(status.starts_with(&head) && status.contains("s, paused; run: log: (pid "), "{status}");
    assert!(service.sv(&["cont"]).status.success());
    assert!(all_running(&pids), "sv cont did not thaw the whole tree");
    assert_eq!(status_of(&service.supervise()), (leader, false, b'u', false, 1));
    let info = service.info();
    assert!(info.iter().any(|l| l.contains(r#""event":"control","process":"cmd","command":"p""#)), "{info:?}");
    let pause = format!(r#""event":"pause","process":"cmd","pid":{leader},"reason":"manual"}}"#);
    assert!(info.iter().any(|l| l.ends_with(&pause)), "{info:?}");
}

#[test]
fn pause_and_cont_reach_the_whole_tree_cgroup2_daemon() {
    if !have_runit() || !is_root() {
        return skip("needs root and runit");
    }
    let service = Service::start("cg2", &[], &[], true, false);
    assert!(read(&service.dir.path("info")).contains(r#""backend":"cgroup2""#));
    pause_and_cont(&service);
    // sv exit: dmon ends once the service is down, the log command drained.
    let pid = pid_in(&service.dir.path("dmon.pid")).unwrap();
    assert!(service.sv(&["exit"]).status.success());
    assert!(wait_until(Duration::from_secs(10), || !alive(pid)), "sv exit did not end dmon");
    assert!(service.pids().iter().all(|p| !alive(*p)));
    let status = sv_out(&["status"], &service.svc);
    assert_eq!(status, format!("fail: {}: runsv not running\n", service.svc.display()));
}

#[test]
fn pause_and_cont_reach_the_whole_tree_freezer() {
    if !have_runit() || !is_root() {
        return skip("needs root and runit");
    }
    if !Path::new("/sys/fs/cgroup/freezer/cgroup.procs").exists() {
        return skip("no v1 freezer hierarchy here");
    }
    let service = Service::start("v1", &[], &["--tree", "freezer"], false, false);
    assert!(read(&service.dir.path("info")).contains(r#""backend":"freezer""#));
    pause_and_cont(&service);
}

#[test]
fn pause_and_cont_reach_the_whole_tree_signals_unprivileged() {
    if !have_runit() || !is_root() {
        return skip("needs root (setpriv) and runit");
    }
    let nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];
    let service = Service::start("sig", &nobody, &[], false, true);
    assert!(read(&service.dir.path("info")).contains(r#""backend":"signals""#));
    let meta = fs::metadata(service.supervise()).unwrap();
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (65534, 0o700));
    pause_and_cont(&service);
    // Stopped by signals: state T, every process.
    assert!(service.sv(&["pause"]).status.success());
    assert!(wait_until(Duration::from_secs(5), || service.pids().iter().all(|p| state(*p) == Some('T'))));
    assert!(service.sv(&["cont"]).status.success());
}

#[test]
fn a_manual_pause_holds_while_the_load_is_low() {
    if !have_runit() {
        return;
    }
    let dir = Dir::new("load");
    let load = dir.path("loadavg");
    fs::write(&load, "0.10 0.10 0.10 1/100 1\n").unwrap();
    let svc = dir.path("svc");
    let child = dmon()
        .env("DMON_LOADAVG_FILE", &load)
        .args(["-n", "-L", "2", "-l", "1", "--control", &dir.s("svc"), "-I", &dir.s("info")])
        .args(["sh", "-c", &tree_script(&dir.0)])
        .spawn()
        .unwrap();
    let _stop = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || dir.path("gc").exists() && dir.path("leader").exists()));
    let pids: Vec<i32> = ["leader", "gc"].iter().filter_map(|n| pid_in(&dir.path(n))).collect();
    let leader = pids[0];
    fs::write(svc.join("supervise/control"), "p").unwrap();
    assert!(wait_until(Duration::from_secs(5), || lines(&dir.path("info"))
        .contains(&format!("cmd pause {leader} reason=manual"))));
    assert!(stop(&pids));
    // The load rises and falls (read every 100 ms here): the tree stays stopped.
    fs::write(&load, "5.00 1.00 1.00 1/100 1\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    fs::write(&load, "0.10 0.10 0.10 1/100 1\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(all_stopped(&pids), "the low load thawed a manual pause");
    assert!(!read(&dir.path("info")).contains("resume"));
    // Paused by the load, then by hand: the load's fall does not thaw it either.
    fs::write(svc.join("supervise/control"), "c").unwrap();
    assert!(all_running(&pids));
    fs::write(&load, "5.00 1.00 1.00 1/100 1\n").unwrap();
    assert!(wait_until(Duration::from_secs(5), || lines(&dir.path("info")).contains(&format!("cmd pause {leader}"))));
    fs::write(svc.join("supervise/control"), "p").unwrap();
    fs::write(&load, "0.10 0.10 0.10 1/100 1\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(all_stopped(&pids), "the low load thawed a tree also paused by hand");
    fs::write(svc.join("supervise/control"), "c").unwrap();
    assert!(all_running(&pids));
    let info = lines(&dir.path("info"));
    let ours: Vec<&String> = info.iter().filter(|l| l.contains("pause") || l.contains("resume")).collect();
    let want = [
        format!("cmd pause {leader} reason=manual"),
        format!("cmd resume {leader} reason=manual"),
        format!("cmd pause {leader}"),
        format!("cmd resume {leader} reason=manual"),
    ];
    assert_eq!(ours, want.iter().collect::<Vec<_>>());
}

#[test]
fn down_then_up_starts_a_fresh_tree_and_status_says_so() {
    if !have_runit() {
        return;
    }
    let service = Service::start("down", &[], &[], false, false);
    let old = service.pids();
    let sup = service.supervise();
    let shown = service.svc.display().to_string();
    let log_pid = status_of(&service.svc.join("log/supervise")).0;
    let out = service.sv(&["-w", "10", "down"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let ok = |s: u64| format!("ok: down: {shown}: {s}s, normally up\n");
    assert!(said == ok(0) || said == ok(1), "{said}");
    assert!(old.iter().all(|p| !alive(*p)), "sv down left part of the tree: {old:?}");
    assert_eq!(status_of(&sup), (0, false, b'd', false, 0));
    assert_eq!((read(&sup.join("stat")), read(&sup.join("pid"))), ("down\n".into(), String::new()));
    // Byte for byte, as sv prints runsv's, the log line included.
    let status = sv_out(&["status"], &service.svc);
    let (a, b) = (age(&sup), age(&service.svc.join("log/supervise")));
    assert_eq!(status, format!("down: {shown}: {a}s, normally up; run: log: (pid {log_pid}) {b}s\n"));
    std::thread::sleep(Duration::from_millis(1200));
    assert!(service.pids() == old, "a run started while down");
    fs::remove_file(service.dir.path("gc")).unwrap();
    let out = service.sv(&["-w", "10", "up"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(wait_until(Duration::from_secs(10), || service.dir.path("gc").exists()));
    let new = service.pids();
    assert!(new.iter().all(|p| !old.contains(p)) && all_running(&new), "{old:?} -> {new:?}");
    assert_eq!(status_of(&sup), (new[0] as u32, false, b'u', false, 1));
    let status = sv_out(&["status"], &service.svc);
    let a = age(&sup);
    assert!(
        status.starts_with(&format!("run: {shown}: (pid {}) {a}s; run: log: (pid {log_pid}) ", new[0])),
        "{status}"
    );
    // sv once: the run goes on, but none follows it.
    assert!(service.sv(&["once"]).status.success());
    assert!(wait_until(Duration::from_secs(5), || status_of(&sup).2 == b'd'));
    assert_eq!(read(&sup.join("stat")), "run, want down\n");
    common::signal(new[0], libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(10), || status_of(&sup) == (0, false, b'd', false, 0)));
    let info = service.info();
    assert!(info.iter().any(|l| l.contains(r#""event":"exit""#) && l.contains(r#""reason":"down""#)), "{info:?}");
}

#[test]
fn sv_w_down_times_out_on_a_tree_that_ignores_term() {
    if !have_runit() {
        return;
    }
    let dir = Dir::new("stubborn");
    let child = dmon()
        .args([
            "-n",
            "--grace",
            "30",
            "--control",
            &dir.s("svc"),
            "sh",
            "-c",
            "trap '' TERM; while :; do sleep 0.1; done",
        ])
        .spawn()
        .unwrap();
    let _stop = Stopper::of(&child);
    let svc = dir.path("svc");
    assert!(wait_until(Duration::from_secs(10), || status_of(&svc.join("supervise")).4 == 1));
    let out = sv(&["-w", "1", "down"], &svc);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("timeout: run: ") && stdout.contains(", want down, got TERM"), "{stdout}");
    assert_eq!(read(&svc.join("supervise/stat")), "run, got TERM, want down\n");
    // sv kill ends it.
    assert!(sv(&["kill"], &svc).status.success());
    assert!(wait_until(Duration::from_secs(10), || status_of(&svc.join("supervise")).4 == 0));
}

#[test]
fn signal_letters_reach_the_leader() {
    if !have_runit() {
        return;
    }
    let dir = Dir::new("sig");
    let got = dir.s("got");
    let script = format!(
        "for s in HUP INT ALRM QUIT USR1 USR2 TERM; do trap \"echo $s >> {got}\" $s; done; \
         echo $$ > {got}.pid; while :; do sleep 0.05; done"
    );
    let child = dmon().args(["-n", "--control", &dir.s("svc"), "sh", "-c", &script]).spawn().unwrap();
    let _stop = Stopper::of(&child);
    let svc = dir.path("svc");
    assert!(wait_until(Duration::from_secs(10), || Path::new(&format!("{got}.pid")).exists()));
    for (command, name) in [
        ("hup", "HUP"),
        ("interrupt", "INT"),
        ("alarm", "ALRM"),
        ("quit", "QUIT"),
        ("1", "USR1"),
        ("2", "USR2"),
        ("term", "TERM"),
    ] {
        assert!(sv(&[command], &svc).status.success());
        assert!(wait_until(Duration::from_secs(5), || read(Path::new(&got)).contains(name)), "{command}");
    }
    // t set the TERM flag; the leader ignored it and runs on.
    assert!(wait_until(Duration::from_secs(5), || status_of(&svc.join("supervise")).3));
    assert_eq!(read(&svc.join("supervise/stat")), "run, got TERM\n");
    // An unknown letter is ignored.
    fs::write(svc.join("supervise/control"), "Z?\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(&svc.join("supervise/stat")), "run, got TERM\n");
}

#[test]
fn a_burst_loses_no_letter_and_a_silent_writer_blocks_nothing() {
    if !have_runit() {
        return;
    }
    let service = Service::start("burst", &[], &[], false, false);
    let control = service.supervise().join("control");
    // Opened for writing and never written: nothing waits for it.
    let _silent = fs::OpenOptions::new().write(true).open(&control).unwrap();
    let letters = "pc".repeat(150);
    fs::write(&control, &letters).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        service.info().iter().filter(|l| l.contains(r#""event":"control""#)).count() == 300
    }));
    assert!(all_running(&service.pids()));
    let out = service.sv(&["-w", "5", "pause"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stop(&service.pids()));
    // dmon's own writer end keeps the FIFO from ending: no spinning.
    let dmon_pid = service.child.as_ref().unwrap().id() as i32;
    let before = cpu(dmon_pid);
    std::thread::sleep(Duration::from_millis(500));
    assert!(cpu(dmon_pid) <= before + 1, "dmon spins");
}

#[test]
fn a_directory_another_supervisor_holds_is_exit_2() {
    if !have_runit() {
        return;
    }
    let service = Service::start("lock", &[], &[], false, false);
    let first = service.child.as_ref().unwrap().id();
    let out = run(dmon().args(["-n", "--control", service.svc.to_str().unwrap(), "true"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("locked by another supervisor") && err.contains(&format!("(pid {first})")), "{err}");
    // A real runsv's lock too.
    let dir = Dir::new("runsv-lock");
    fs::write(dir.path("run"), "#!/bin/sh\nexec sleep 1000\n").unwrap();
    fs::set_permissions(dir.path("run"), fs::Permissions::from_mode(0o755)).unwrap();
    let mut runsv = Command::new(RUNSV).arg(&dir.0).spawn().unwrap();
    assert!(wait_until(Duration::from_secs(5), || dir.path("supervise/ok").exists()));
    let out = run(dmon().args(["-n", "--control", &dir.s(""), "true"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains(&format!("(pid {})", runsv.id())), "{}", stderr_of(&out));
    let _ = sv(&["exit"], &dir.0);
    if !wait_until(Duration::from_secs(5), || runsv.try_wait().unwrap().is_some()) {
        let _ = runsv.kill();
        let _ = runsv.wait();
    }
}

#[test]
fn planted_links_and_files_are_refused() {
    let dir = Dir::new("planted");
    let target = dir.path("target");
    fs::write(&target, "precious\n").unwrap();
    for (name, plant) in [("control", "link"), ("status", "link"), ("control", "file"), ("ok", "file")] {
        let svc = dir.path(&format!("svc-{name}-{plant}"));
        fs::create_dir_all(svc.join("supervise")).unwrap();
        fs::set_permissions(svc.join("supervise"), fs::Permissions::from_mode(0o700)).unwrap();
        let at = svc.join("supervise").join(name);
        match plant {
            "link" => std::os::unix::fs::symlink(&target, &at).unwrap(),
            _ => fs::write(&at, "").unwrap(),
        }
        let out = run(dmon().args(["-n", "--control", svc.to_str().unwrap(), "true"]));
        assert_eq!(out.status.code(), Some(2), "{name} {plant}");
        let err = stderr_of(&out);
        let why = if plant == "link" { "symbolic link" } else { "not a FIFO" };
        assert!(err.contains(why) && err.contains(name), "{name} {plant}: {err}");
        assert_eq!(read(&target), "precious\n");
        assert!(!fs::symlink_metadata(&at).unwrap().file_type().is_fifo());
    }
    // supervise itself as a link elsewhere: refused, not followed.
    let svc = dir.path("svc-dir-link");
    fs::create_dir_all(&svc).unwrap();
    fs::create_dir_all(dir.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(dir.path("elsewhere"), svc.join("supervise")).unwrap();
    let out = run(dmon().args(["-n", "--control", svc.to_str().unwrap(), "true"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(fs::read_dir(dir.path("elsewhere")).unwrap().next().is_none());
    // A stale FIFO a dead supervisor left is replaced and works.
    let svc = dir.path("svc-stale");
    fs::create_dir_all(svc.join("supervise")).unwrap();
    fs::set_permissions(svc.join("supervise"), fs::Permissions::from_mode(0o700)).unwrap();
    nix::unistd::mkfifo(&svc.join("supervise/control"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // An earlier writer still holds the stale one: what it writes reaches nobody.
    let stale = fs::OpenOptions::new().read(true).write(true).open(svc.join("supervise/control")).unwrap();
    let before = stale.metadata().unwrap().ino();
    let child = dmon().args(["-n", "--control", svc.to_str().unwrap(), "sleep", "100"]).spawn().unwrap();
    let _stop = Stopper::of(&child);
    assert!(wait_until(Duration::from_secs(10), || status_of(&svc.join("supervise")).4 == 1));
    assert_ne!(fs::metadata(svc.join("supervise/control")).unwrap().ino(), before);
    (&stale).write_all(b"d").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status_of(&svc.join("supervise")).4, 1);
    assert!(sv(&["-w", "5", "down"], &svc).status.success());
}

/// The files in `supervise/`: (name, type and mode).
fn listing(dir: &Path) -> Vec<(String, u32)> {
    let mut names: Vec<(String, u32)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().mode()))
        .collect();
    names.sort();
    names
}

#[test]
fn supervise_holds_what_runsv_writes() {
    if !have_runit() {
        return;
    }
    let reference = Dir::new("runsv");
    fs::create_dir_all(reference.path("log")).unwrap();
    for (path, body) in [("run", "exec sleep 1000"), ("log/run", "exec cat")] {
        fs::write(reference.path(path), format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(reference.path(path), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut runsv = Command::new(RUNSV).arg(&reference.0).spawn().unwrap();
    let service = Service::start("same", &[], &[], false, false);
    let (theirs, ours) = (reference.path("supervise"), service.supervise());
    assert!(wait_until(Duration::from_secs(5), || status_of(&theirs).4 == 1));
    // Running, paused, down: the same state bytes, stat and pid text.
    let check = |step: &str| {
        let (t, o) = (status_of(&theirs), status_of(&ours));
        assert_eq!((t.1, t.2, t.3, t.4), (o.1, o.2, o.3, o.4), "{step}");
        for (pid, dir) in [(t.0, &theirs), (o.0, &ours)] {
            assert_eq!(read(&dir.join("pid")), if pid == 0 { String::new() } else { format!("{pid}\n") }, "{step}");
        }
        assert_eq!(read(&theirs.join("stat")), read(&ours.join("stat")), "{step}");
        assert_eq!(listing(&theirs), listing(&ours), "{step}");
        assert_eq!(listing(&reference.path("log/supervise")), listing(&service.svc.join("log/supervise")), "{step}");
    };
    check("run");
    for dir in [&reference.0, &service.svc] {
        assert!(sv(&["-w", "5", "pause"], dir).status.success());
    }
    check("paused");
    for dir in [&reference.0, &service.svc] {
        assert!(sv(&["-w", "5", "cont"], dir).status.success());
        assert!(sv(&["-w", "10", "down"], dir).status.success());
    }
    check("down");
    let _ = sv(&["exit"], &reference.0);
    if !wait_until(Duration::from_secs(5), || runsv.try_wait().unwrap().is_some()) {
        let _ = runsv.kill();
        let _ = runsv.wait();
    }
}

/// The same in the pure cgroup-v2 qemu guest (tests/common/vm.rs), whose root
/// is the host's, so runit's sv is there too.
#[test]
fn pause_and_cont_in_a_pure_v2_guest() {
    if !have_runit() || common::vm::in_guest() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let argv = [exe.to_str().unwrap(), "--exact", "pause_and_cont_in_the_guest", "--test-threads=1"];
    let out = match common::vm::run(&argv, &[], Duration::from_secs(300)) {
        Err(why) => return skip(&why),
        Ok(out) => out,
    };
    let report = String::from_utf8_lossy(&out.stdout);
    println!("in the guest:\n{report}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "the in-guest test failed");
    assert!(report.contains("test result: ok. 1 passed"), "the in-guest test did not run");
}

/// The in-guest half of [`pause_and_cont_in_a_pure_v2_guest`]; returns at once on the host.
#[test]
fn pause_and_cont_in_the_guest() {
    if !common::vm::in_guest() {
        return;
    }
    let service = Service::start("guest", &[], &[], false, false);
    let info = read(&service.dir.path("info"));
    assert!(info.contains(r#""backend":"cgroup2""#), "{info}");
    pause_and_cont(&service);
    let out = service.sv(&["-w", "20", "down"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(service.pids().iter().all(|p| !alive(*p)));
}
