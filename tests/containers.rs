//! dmon as the first process of real OCI containers: crun (the runtime under
//! Podman and CRI-O) in the pure cgroup-v2 qemu guest (tests/common/vm.rs),
//! booted once for the whole file. `containers_in_a_pure_v2_guest` runs this
//! test binary there; each other test is one container, as Docker, Podman and
//! Kubernetes make them (docs/containers.md maps each case to their options):
//!
//! - a private cgroup namespace with a writable cgroupfs: the cgroup v2 backend
//!   in the container's own cgroup;
//! - a read-only cgroupfs (Docker's default): the signal fallback;
//! - runtime-set limits (`linux.resources`: pids and memory): still the cgroup
//!   backend, the limits visible inside;
//! - a seccomp profile that refuses `pidfd_open` and `pidfd_send_signal` (EPERM),
//!   with a read-only cgroupfs: signals by `kill()`.
//!
//! In each, dmon is started without `-n` (as PID 1 it must not detach), with
//! `-t` and `-L`, on a tree with a `setsid`'d grandchild that ignores TERM and a
//! member that leaves an orphan behind every few tenths of a second. Checked:
//! the backend; the command's output and dmon's notice reach crun's stdout and
//! stderr; `-t` ends the whole first run before the second starts; `-L` stops
//! every process (no progress, no CPU time) and `-l` resumes them; orphans are
//! reaped (no zombies pile up); `crun kill CT TERM` ends it all within
//! `--grace` (TERM reaches the grandchild, KILL ends it) and the container's
//! exit status is dmon's, 0 after a TERM.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::vm;
use common::*;
use serde_json::{Value, json};

#[test]
fn containers_in_a_pure_v2_guest() {
    if !Command::new("crun").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return skip("crun is not installed (apt-get install crun)");
    }
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let argv = [exe, "--test-threads=1", "--skip", "containers_in_a_pure_v2_guest"];
    let out = match vm::run(&argv, &[], Duration::from_secs(480)) {
        Err(why) => return skip(&why),
        Ok(out) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("in the guest:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the in-guest tests failed");
    assert!(stdout.contains("test result: ok. 4 passed"), "not every in-guest test ran");
}

/// The in-guest half returns at once on the host.
fn on_host() -> bool {
    if vm::in_guest() {
        return false;
    }
    eprintln!("runs in the qemu guest only (containers_in_a_pure_v2_guest)");
    true
}

const GRACE: u64 = 3;
/// How long the guest (5–10 times slower than the host) gets for a step.
const WAIT: Duration = Duration::from_secs(60);

/// The tree. Every process carries `DIR/tree.sh` or `DIR/orphan` in its command
/// line. First it lists processes of an earlier run still alive, then prints
/// what the runtime should collect and the cgroup limits it sees. Its members
/// count in files (progress that a pause stops); one of them leaves an orphan
/// behind every 0.3 s, which only PID 1 can reap; the `setsid`'d grandchild
/// notes the TERM it gets and goes on.
const TREE: &str = r#"dir=${0%/tree.sh}
for p in /proc/[0-9]*; do
    case $p in /proc/$$|/proc/$PPID) continue ;; esac
    case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in
        *"$dir/tree.sh"*|*"$dir/orphan"*) echo "${p#/proc/}" ;;
    esac
done > "$dir/survivors.tmp.$$"
mv "$dir/survivors.tmp.$$" "$dir/survivors.$$"
echo "tree output $$"
echo "limits pids.max=$(cat /sys/fs/cgroup/pids.max 2>/dev/null) memory.max=$(cat /sys/fs/cgroup/memory.max 2>/dev/null)"
count='n=0; while :; do n=$((n+1)); echo $n > "$0.count"; sleep 0.2; done'
sh -c "$count" "$dir/orphan-a" &
sh -c "$count" "$dir/orphan-b" &
sh -c 'while :; do ( sleep 0.05 & ); sleep 0.3; done' "$dir/orphan-spawner" &
( setsid sh -c 'trap "echo > $0.term" TERM; n=0; while :; do n=$((n+1)); echo $n > "$0.count"; sleep 0.2; done' "$dir/orphan-setsid" & )
while :; do sleep 0.2; done
"#;

/// One container of a case: its bundle, its id, and crun running it.
struct Container {
    dir: Dir,
    id: String,
    crun: Option<Child>,
}

/// How a case's bundle differs from crun's default one.
struct Case {
    name: &'static str,
    cgroupfs_writable: bool,
    limits: bool,
    refuse_pidfds: bool,
}

impl Container {
    fn start(case: &Case, dmon_args: &[&str]) -> Container {
        assert!(Command::new("crun").arg("--version").output().is_ok_and(|o| o.status.success()), "no crun");
        let dir = Dir::new(case.name);
        let id = format!("dmon-{}-{}", case.name, std::process::id());
        let bundle = dir.path("bundle");
        fs::create_dir_all(bundle.join("rootfs")).unwrap();
        fs::write(dir.path("tree.sh"), TREE).unwrap();
        fs::write(dir.path("load"), "0.1\n").unwrap();
        let made = Command::new("crun").args(["spec", "-b"]).arg(&bundle).output().unwrap();
        assert!(made.status.success(), "crun spec: {made:?}");
        let mut config: Value = serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
        shape(&mut config, case, &dir, dmon_args, &id);
        fs::write(bundle.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
        let out = fs::File::create(dir.path("crun.out")).unwrap();
        let err = fs::File::create(dir.path("crun.err")).unwrap();
        let crun = Command::new("crun")
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Container { dir, id, crun: Some(crun) }
    }

    fn read(&self, name: &str) -> String {
        read(&self.dir.path(name))
    }

    /// What to show when a check fails.
    fn said(&self) -> String {
        format!(
            "status:\n{}\ncrun's stdout:\n{}\ncrun's stderr:\n{}",
            self.read("status"),
            self.read("crun.out"),
            self.read("crun.err")
        )
    }

    /// The rest of the `nth` status line that starts with `prefix`.
    fn wait_line(&self, prefix: &str, nth: usize) -> String {
        let mut found = None;
        let ok = wait_until(WAIT, || {
            found = self.read("status").lines().filter_map(|l| l.strip_prefix(prefix)).nth(nth - 1).map(str::to_string);
            found.is_some()
        });
        assert!(ok, "no line {nth} '{prefix}...'; {}", self.said());
        found.unwrap()
    }

    /// Every live process of the tree, by pid and start time.
    fn members(&self) -> Vec<(i32, u64)> {
        let tags = [format!("{}/tree.sh", self.dir.0.display()), format!("{}/orphan", self.dir.0.display())];
        processes()
            .into_iter()
            .filter(|(_, cmdline)| cmdline.starts_with("sh ") && tags.iter().any(|t| cmdline.contains(t.as_str())))
            .filter_map(|(pid, _)| Some((pid, stat(pid).filter(|s| s.state != 'Z')?.start)))
            .collect()
    }

    /// The members seen in two reads 300 ms apart (not the short-lived ones),
    /// once there are at least `n`.
    fn wait_members(&self, n: usize) -> Vec<(i32, u64)> {
        let mut got = Vec::new();
        let ok = wait_until(WAIT, || {
            let first = self.members();
            std::thread::sleep(Duration::from_millis(300));
            got = first.into_iter().filter(|p| self.members().contains(p)).collect();
            got.len() >= n
        });
        assert!(ok, "{} of {n} processes appeared; {}", got.len(), self.said());
        got
    }

    /// dmon, as the guest sees it.
    fn dmon_pid(&self) -> i32 {
        let mut pid = None;
        let ok = wait_until(WAIT, || {
            pid = processes().into_iter().find(|(_, c)| c.starts_with(DMON) && c.contains(&self.dir.s("status")));
            pid.is_some()
        });
        assert!(ok, "no dmon; {}", self.said());
        pid.unwrap().0
    }

    /// The counters of the tree's members.
    fn counts(&self) -> Vec<String> {
        ["a", "b", "setsid"].iter().map(|m| self.read(&format!("orphan-{m}.count"))).collect()
    }

    /// `crun kill CT TERM`, then the container's exit status and how long it took.
    fn terminate(&mut self) -> (Option<i32>, Duration) {
        let start = Instant::now();
        let kill = Command::new("crun").args(["kill", &self.id, "TERM"]).output().unwrap();
        assert!(kill.status.success(), "crun kill: {kill:?}");
        let mut crun = self.crun.take().unwrap();
        let mut status = None;
        let ended = wait_until(WAIT, || {
            status = crun.try_wait().unwrap();
            status.is_some()
        });
        let took = start.elapsed();
        if !ended {
            let _ = crun.kill();
            let _ = crun.wait();
        }
        assert!(ended, "the container did not end after TERM; {}", self.said());
        (status.unwrap().code(), took)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("crun").args(["delete", "-f", &self.id]).stderr(Stdio::null()).status();
        if let Some(mut crun) = self.crun.take() {
            let _ = crun.kill();
            let _ = crun.wait();
        }
    }
}

/// Makes crun's default bundle one for the case: dmon as the process, the
/// host's programs and libraries bound read-only into an empty root, the test
/// directory read-write, a cgroup namespace, no network namespace.
fn shape(config: &mut Value, case: &Case, dir: &Dir, dmon_args: &[&str], id: &str) {
    let mut args: Vec<String> = vec![DMON.into(), "-I".into(), dir.s("status"), "--grace".into(), GRACE.to_string()];
    args.extend(dmon_args.iter().map(|s| s.to_string()));
    args.extend(["sh".into(), dir.s("tree.sh")]);
    let process = &mut config["process"];
    process["terminal"] = json!(false);
    process["args"] = json!(args);
    process["cwd"] = json!(dir.s(""));
    process["env"] = json!([
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        format!("DMON_LOADAVG_FILE={}", dir.s("load")),
    ]);
    config["root"] = json!({"path": dir.s("bundle/rootfs"), "readonly": false});
    let mounts = config["mounts"].as_array_mut().unwrap();
    for mount in mounts.iter_mut() {
        if mount["destination"] == "/sys/fs/cgroup" {
            let mode = if case.cgroupfs_writable { "rw" } else { "ro" };
            let options: Vec<Value> = mount["options"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| *o != "ro" && *o != "rw")
                .cloned()
                .chain([json!(mode)])
                .collect();
            mount["options"] = json!(options);
        }
    }
    let bind = |path: &str, mode: &str| json!({"destination": path, "type": "bind", "source": path, "options": ["rbind", mode]});
    for path in ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc"] {
        if Path::new(path).exists() {
            mounts.push(bind(path, "ro"));
        }
    }
    let bin = Path::new(DMON).parent().unwrap().to_str().unwrap().to_string();
    mounts.push(bind(&bin, "ro"));
    mounts.push(bind(dir.0.to_str().unwrap(), "rw"));
    let linux = &mut config["linux"];
    let mut namespaces: Vec<Value> =
        linux["namespaces"].as_array().unwrap().iter().filter(|n| n["type"] != "network").cloned().collect();
    if !namespaces.iter().any(|n| n["type"] == "cgroup") {
        namespaces.push(json!({"type": "cgroup"}));
    }
    linux["namespaces"] = json!(namespaces);
    linux["cgroupsPath"] = json!(format!("/{id}"));
    if case.limits {
        linux["resources"] = json!({"pids": {"limit": 64}, "memory": {"limit": 256u64 << 20}});
    }
    if case.refuse_pidfds {
        linux["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["pidfd_open", "pidfd_send_signal"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
        });
    }
}

/// Every process of the guest: pid and command line (NULs as spaces).
fn processes() -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else { continue };
        out.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
    }
    out
}

struct Stat {
    state: char,
    ppid: i32,
    /// utime + stime, in clock ticks.
    cpu: u64,
    start: u64,
}

/// Fields 3, 4, 14, 15 and 22 of `/proc/PID/stat`.
fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let num = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: num(4)? as i32,
        cpu: num(14)? + num(15)?,
        start: num(22)?,
    })
}

/// The CPU time of a process that is still the one seen.
fn cpu((pid, start): (i32, u64)) -> Option<u64> {
    stat(pid).filter(|s| s.start == start && s.state != 'Z').map(|s| s.cpu)
}

/// The zombies whose parent is `pid`.
fn zombies_of(pid: i32) -> Vec<i32> {
    let zombie = |p: i32| stat(p).is_some_and(|s| s.state == 'Z' && s.ppid == pid);
    processes().into_iter().map(|(p, _)| p).filter(|p| zombie(*p)).collect()
}

/// The whole check of one case (see the file's comment).
fn run_case(case: Case, backend: &str) {
    if on_host() {
        return;
    }
    // -t leaves time for the second run's checks before it ends that run too.
    let mut ct = Container::start(&case, &["-t", "12", "-L", "5", "-l", "1"]);
    let tree = ct.wait_line("tree ", 1);
    let cgroup = backend == "cgroup2";
    if cgroup {
        // The container's own cgroup, seen from inside as the root of its namespace.
        let ok = tree.starts_with("cgroup2 /sys/fs/cgroup/dmon.") && tree.split_whitespace().count() == 2;
        assert!(ok, "backend {tree:?}, not {backend:?}; {}", ct.said());
    } else {
        assert_eq!(tree, backend, "{}", ct.said());
    }
    let dmon = ct.dmon_pid();
    let host_cgroup = PathBuf::from(format!("/sys/fs/cgroup/{}", ct.id));

    // -t: the first run's whole tree ends before the second run starts.
    let run1 = ct.wait_line("cmd start ", 1);
    let first = ct.wait_members(5);
    ct.wait_line(&format!("cmd timeout {run1}"), 1);
    let run2 = ct.wait_line("cmd start ", 2);
    let survivors = wait_file(&ct, &format!("survivors.{run2}"));
    assert_eq!(survivors.trim(), "", "processes of the timed-out run were alive when the next one started");
    let left: Vec<_> = first.iter().filter(|p| cpu(**p).is_some()).collect();
    assert!(left.is_empty(), "the timed-out run left {left:?}; {}", ct.said());

    // -L: every process stops (no progress, no CPU time); -l: they run again.
    let second = ct.wait_members(5);
    fs::write(ct.dir.path("load"), "9\n").unwrap();
    ct.wait_line(&format!("cmd pause {run2}"), 1);
    let stopped = |p: &(i32, u64)| stat(p.0).is_some_and(|s| matches!(s.state, 'T' | 'S' | 'D'));
    // A frozen cgroup's tasks show S (or D); stopped ones T.
    let frozen = || !cgroup || read(&host_cgroup.join(tree_dir(&tree)).join("cmd/cgroup.events")).contains("frozen 1");
    let all_stopped =
        || frozen() && second.iter().all(|p| stopped(p) && (cgroup || stat(p.0).is_some_and(|s| s.state == 'T')));
    assert!(wait_until(WAIT, all_stopped), "the tree did not stop; {}", ct.said());
    let (counts, ticks): (Vec<String>, Vec<Option<u64>>) = (ct.counts(), second.iter().map(|p| cpu(*p)).collect());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ct.counts(), counts, "members made progress while paused");
    assert_eq!(second.iter().map(|p| cpu(*p)).collect::<Vec<_>>(), ticks, "members used CPU while paused");
    fs::write(ct.dir.path("load"), "0.2\n").unwrap();
    ct.wait_line(&format!("cmd resume {run2}"), 1);
    assert!(wait_until(WAIT, || ct.counts().iter().zip(&counts).all(|(a, b)| a != b)), "no progress after resume");

    // Orphans are reaped: over three seconds of them, one every 0.3 s, the
    // zombies under dmon fall back to (about) none, and none stays throughout
    // (a KILL at a timeout makes several at once, and the guest may keep dmon
    // from running for a moment).
    let samples: Vec<Vec<i32>> = (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(300));
            zombies_of(dmon)
        })
        .collect();
    let fewest = samples.iter().map(Vec::len).min().unwrap();
    let stayed: Vec<&i32> = samples[0].iter().filter(|z| samples.iter().all(|s| s.contains(z))).collect();
    if fewest > 2 || !stayed.is_empty() {
        let wchan = read(Path::new(&format!("/proc/{dmon}/wchan")));
        panic!("zombies under dmon: {samples:?} (dmon's wchan {wchan}); {}", ct.said());
    }

    // The output reached the runtime, with dmon's one notice and the limits.
    let out = ct.read("crun.out");
    assert!(out.contains(&format!("tree output {run2}")), "{}", ct.said());
    let err = ct.read("crun.err");
    assert_eq!(err.lines().filter(|l| l.contains("PID 1")).count(), 1, "{}", ct.said());
    if case.limits {
        assert!(out.contains("limits pids.max=64 memory.max=268435456"), "{}", ct.said());
        assert_eq!(read(&host_cgroup.join("pids.max")).trim(), "64");
    }

    // crun kill TERM: the whole tree ends within --grace (the setsid'd
    // grandchild got its TERM and needed the KILL), and the container exits
    // with dmon's status after a shutdown: 0.
    // A run in full swing (the second may have timed out meanwhile, and a run
    // being stopped gets no second TERM): its start (or pause, or resume) is
    // the status file's last record, before and after its setsid'd grandchild was seen counting (so
    // with its TERM trap set). A TERM at a timeout left a file: only this
    // TERM's counts.
    let last_start = || {
        let status = ct.read("status");
        let last = status.lines().last()?.to_string();
        let going = ["cmd start ", "cmd pause ", "cmd resume "];
        going.iter().find_map(|p| last.strip_prefix(p)).map(str::to_string)
    };
    let in_full_swing = || {
        let Some(run) = last_start() else { return false };
        let _ = fs::remove_file(ct.dir.path("orphan-setsid.count"));
        wait_until(Duration::from_secs(10), || ct.dir.path("orphan-setsid.count").exists()) && last_start() == Some(run)
    };
    assert!(wait_until(WAIT, in_full_swing), "no run in full swing; {}", ct.said());
    let _ = fs::remove_file(ct.dir.path("orphan-setsid.term"));
    let (status, took) = ct.terminate();
    assert_eq!(status, Some(0), "{}", ct.said());
    // The grace, and the guest's slowness on both sides of it.
    assert!(took < Duration::from_secs(GRACE + 20), "took {took:?}");
    assert!(ct.dir.path("orphan-setsid.term").exists(), "the setsid'd grandchild never got TERM; {}", ct.said());
    // The last run's exit is recorded once its whole tree is gone: dmon ended
    // it, not the kernel's end of the namespace.
    let last = *started(&ct.dir.path("status"), "cmd").last().unwrap();
    let status = ct.read("status");
    assert!(status.lines().any(|l| l.starts_with(&format!("cmd exit {last} "))), "{}", ct.said());
    assert!(!host_cgroup.exists() || common::wait_until(WAIT, || !host_cgroup.exists()), "crun left its cgroup");
}

/// `cgroup2 /sys/fs/cgroup/dmon.7` gives `dmon.7`.
fn tree_dir(tree: &str) -> String {
    tree.split_whitespace().nth(1).and_then(|p| p.strip_prefix("/sys/fs/cgroup/")).unwrap_or("").to_string()
}

fn wait_file(ct: &Container, name: &str) -> String {
    assert!(wait_until(WAIT, || ct.dir.path(name).exists()), "{name} never appeared; {}", ct.said());
    ct.read(name)
}

#[test]
fn a_private_cgroup_namespace_with_a_writable_cgroupfs() {
    run_case(Case { name: "rw", cgroupfs_writable: true, limits: false, refuse_pidfds: false }, "cgroup2")
}

#[test]
fn a_read_only_cgroupfs() {
    run_case(Case { name: "ro", cgroupfs_writable: false, limits: false, refuse_pidfds: false }, "signals")
}

#[test]
fn limits_set_by_the_runtime() {
    run_case(Case { name: "limits", cgroupfs_writable: true, limits: true, refuse_pidfds: false }, "cgroup2")
}

#[test]
fn a_seccomp_profile_that_refuses_pidfds() {
    run_case(
        Case { name: "seccomp", cgroupfs_writable: false, limits: false, refuse_pidfds: true },
        "signals signals=kill",
    )
}
