//! Helpers for tests/tree.rs: the layouts, the test process tree, /proc
//! sampling, and a dmon that is always cleaned up after.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub const DMON: &str = env!("CARGO_BIN_EXE_dmon");
const UNIFIED: &str = "/sys/fs/cgroup/unified";
const NOBODY: u32 = 65534;
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The machine as it is: cgroup2 at /sys/fs/cgroup/unified beside v1.
    Hybrid,
    /// cgroup2 mounted at /sys/fs/cgroup in a private mount namespace.
    PureV2,
    /// The unified mount removed in a private mount namespace: v1 only.
    FreezerOnly,
    /// /sys/fs/cgroup removed in a private mount namespace.
    NoCgroups,
    /// dmon as user nobody, who may write no cgroup.
    Unprivileged,
    /// dmon as nobody inside a cgroup chown'ed to nobody.
    Delegated,
    /// dmon as PID 1 of a new pid namespace.
    Pid1,
    ForcedSignals,
    ForcedFreezer,
    /// `--tree signals` under a seccomp filter that refuses `pidfd_open` and
    /// `pidfd_send_signal` with EPERM, as older container profiles do.
    NoPidfdSignals,
    /// The machine as it is (cgroup2), under that filter.
    NoPidfdCgroup2,
    /// As user nobody (the signal fallback, chosen unasked), under that filter.
    NoPidfdUnprivileged,
}

impl Layout {
    pub fn expected_backend(self) -> &'static str {
        match self {
            Layout::Hybrid | Layout::PureV2 | Layout::Delegated | Layout::Pid1 | Layout::NoPidfdCgroup2 => "cgroup2",
            Layout::FreezerOnly | Layout::ForcedFreezer => "freezer",
            Layout::NoCgroups
            | Layout::Unprivileged
            | Layout::ForcedSignals
            | Layout::NoPidfdSignals
            | Layout::NoPidfdUnprivileged => "signals",
        }
    }

    /// Whether dmon runs under the filter that refuses pidfds.
    pub fn without_pidfds(self) -> bool {
        matches!(self, Layout::NoPidfdSignals | Layout::NoPidfdCgroup2 | Layout::NoPidfdUnprivileged)
    }

    /// The program and arguments that run dmon (`args` appended) in this layout.
    fn wrap(self, args: &[String], delegated: Option<&Path>) -> Vec<String> {
        let ns = |script: &str| -> Vec<String> {
            let mut v: Vec<String> =
                ["unshare", "--mount", "--propagation", "private", "sh", "-c"].iter().map(|s| s.to_string()).collect();
            v.push(format!("{script} && exec \"$@\""));
            v.push("sh".into());
            v
        };
        let setpriv: Vec<String> =
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"].iter().map(|s| s.to_string()).collect();
        let mut v: Vec<String> = match self {
            Layout::Hybrid
            | Layout::ForcedSignals
            | Layout::ForcedFreezer
            | Layout::NoPidfdSignals
            | Layout::NoPidfdCgroup2 => vec![],
            Layout::PureV2 => ns("umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup"),
            Layout::FreezerOnly => ns(&format!("umount -l {UNIFIED}")),
            Layout::NoCgroups => ns("umount -l /sys/fs/cgroup"),
            Layout::Unprivileged | Layout::NoPidfdUnprivileged => setpriv,
            Layout::Delegated => {
                let dir = delegated.expect("a delegated cgroup").display().to_string();
                let mut v: Vec<String> = vec!["sh".into(), "-c".into()];
                v.push(format!("echo $$ > {dir}/cgroup.procs && exec {} \"$@\"", setpriv.join(" ")));
                v.push("sh".into());
                v
            }
            Layout::Pid1 => ["unshare", "--pid", "--fork", "--mount-proc"].iter().map(|s| s.to_string()).collect(),
        };
        v.push(DMON.into());
        match self {
            Layout::ForcedSignals | Layout::NoPidfdSignals => v.extend(["--tree".into(), "signals".into()]),
            Layout::ForcedFreezer => v.extend(["--tree".into(), "freezer".into()]),
            _ => {}
        }
        v.extend(args.iter().cloned());
        v
    }

    /// A path dmon printed, as seen from the test's mount namespace.
    fn host_path(self, path: &str) -> PathBuf {
        match (self, path.strip_prefix("/sys/fs/cgroup/")) {
            (Layout::PureV2, Some(rest)) => Path::new(UNIFIED).join(rest),
            _ => PathBuf::from(path),
        }
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the tests one at a time; None (with a message) where they cannot run.
pub fn serial(layout: Layout) -> Option<MutexGuard<'static, ()>> {
    if !crate::common::is_root() {
        crate::common::skip("the tree tests need root (cgroups, namespaces, setpriv)");
        return None;
    }
    let needs_unified = !matches!(
        layout,
        Layout::NoCgroups
            | Layout::Unprivileged
            | Layout::ForcedSignals
            | Layout::NoPidfdSignals
            | Layout::NoPidfdUnprivileged
    );
    if needs_unified && !Path::new(UNIFIED).join("cgroup.procs").exists() && layout != Layout::PureV2 {
        crate::common::skip(&format!("this host has no hybrid cgroup layout ({UNIFIED})"));
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub use crate::common::wait_until;

/// The test tree. Every process carries `DIR/tree.sh` or `DIR/orphan` in its
/// command line. First it lists processes of an earlier run that are still alive.
const TREE: &str = r#"dir=${0%/tree.sh}
for p in /proc/[0-9]*; do
    case $p in /proc/$$|/proc/$PPID) continue ;; esac
    case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in
        *"$dir/tree.sh"*|*"$dir/orphan"*) echo "${p#/proc/}" ;;
    esac
done > "$dir/survivors.tmp.$$"
mv "$dir/survivors.tmp.$$" "$dir/survivors.$$"
spin() { while :; do :; done; }
spin &
spin &
( spin & spin ) &
( setsid sh -c 'trap "" TERM; while :; do :; done' "$dir/orphan" & )
( setsid sh -c 'trap "" TERM; while :; do :; done' "$dir/orphan" & )
while [ ! -e "$dir/exit-now" ]; do :; done
rm -f "$dir/exit-now"
exit 0
"#;

/// Reads a line typed on the terminal, then becomes the tree.
const INTERACTIVE: &str = r#"dir=${0%/interactive.sh}
read -r line
echo "$line" > "$dir/typed.tmp"
mv "$dir/typed.tmp" "$dir/typed"
exec sh "$dir/tree.sh"
"#;

/// A process: pid and start time (so a recycled pid is not mistaken for it).
pub type Proc = (i32, u64);

pub struct TestDir {
    pub dir: PathBuf,
    pub layout: Layout,
    delegated: Option<PathBuf>,
}

impl TestDir {
    pub fn new(layout: Layout, name: &str) -> TestDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("dmon-tree-{}-{name}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let delegated = (layout == Layout::Delegated).then(|| {
            let cg = Path::new(UNIFIED).join(format!("dmon-test-delegated-{}-{n}", std::process::id()));
            fs::create_dir(&cg).unwrap();
            std::os::unix::fs::chown(&cg, Some(NOBODY), Some(NOBODY)).unwrap();
            for file in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
                std::os::unix::fs::chown(cg.join(file), Some(NOBODY), Some(NOBODY)).unwrap();
            }
            cg
        });
        let t = TestDir { dir, layout, delegated };
        t.write("tree.sh", TREE);
        t.write("interactive.sh", INTERACTIVE);
        t.write("load", "0.1\n");
        t
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.path(&format!(".{name}.tmp"));
        fs::write(&tmp, text).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o666)).unwrap();
        fs::rename(&tmp, self.path(name)).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Waits for a file that its writer renames into place whole.
    pub fn wait_file(&self, name: &str) -> String {
        assert!(wait_until(WAIT, || self.path(name).exists()), "{:?}: {name} never appeared", self.layout);
        self.read(name)
    }

    fn dmon_args(&self, extra: &[&str], script: &str, log: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec!["-n".into(), "-I".into(), self.path("status").display().to_string()];
        args.extend(["--grace".into(), "1".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["sh".into(), self.path(script).display().to_string()]);
        if !log.is_empty() {
            args.push("--".into());
            args.extend(log.iter().map(|s| s.to_string()));
        }
        args
    }

    /// Starts dmon (in the foreground, `-n`) on the tree.
    pub fn start(&self, extra: &[&str]) -> Dmon<'_> {
        self.start_with_log(extra, &[])
    }

    /// Starts dmon on the tree with the log command `log` (none when empty).
    pub fn start_with_log(&self, extra: &[&str], log: &[&str]) -> Dmon<'_> {
        let _ = fs::remove_file(self.path("status"));
        let argv = self.layout.wrap(&self.dmon_args(extra, "tree.sh", log), self.delegated.as_deref());
        let err = fs::File::create(self.path("dmon.err")).unwrap();
        let mut command = Command::new(&argv[0]);
        if self.layout.without_pidfds() {
            crate::common::seccomp::refuse_pidfds(&mut command);
        }
        let child = command
            .args(&argv[1..])
            .env("DMON_LOADAVG_FILE", self.path("load"))
            .env_remove("DMON_OPTIONS")
            .env("DMON_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let dmon = Dmon { t: self, child: Some(child) };
        let backend = dmon.wait_line("tree ", 1);
        assert!(
            backend.starts_with(self.layout.expected_backend()),
            "{:?}: backend {backend}; dmon said:\n{}",
            self.layout,
            self.read("dmon.err")
        );
        dmon
    }

    /// Every live process of the tree(s) started from this directory.
    pub fn members(&self) -> Vec<Proc> {
        let tags = [format!("{}/tree.sh", self.dir.display()), format!("{}/orphan", self.dir.display())];
        let mut out = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else { continue };
            let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if argv.first() != Some(&&b"sh"[..]) {
                continue;
            }
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if !tags.iter().any(|t| text.contains(t.as_str())) {
                continue;
            }
            if let Some((start, _)) = stat(pid) {
                out.push((pid, start));
            }
        }
        out
    }

    pub fn wait_members(&self, n: usize) -> Vec<Proc> {
        let mut got = Vec::new();
        // Only processes seen in two reads 300 ms apart: the script's short-lived
        // subshells are not members to watch.
        let ok = wait_until(WAIT, || {
            let first = self.members();
            std::thread::sleep(Duration::from_millis(300));
            let second = self.members();
            got = first.into_iter().filter(|p| second.contains(p)).collect();
            got.len() >= n
        });
        assert!(
            ok,
            "{:?}: {} of {n} processes appeared: {got:?}; dmon said:\n{}",
            self.layout,
            got.len(),
            self.read("dmon.err")
        );
        got
    }

    /// Waits until every process of `procs` has used more CPU time than now.
    pub fn wait_all_gain_cpu(&self, procs: &[Proc]) {
        let before: Vec<u64> = procs.iter().map(|p| cpu(*p).expect("alive")).collect();
        let mut lagging = Vec::new();
        let ok = wait_until(WAIT, || {
            lagging = procs
                .iter()
                .zip(&before)
                .filter(|(p, b)| cpu(**p).is_none_or(|now| now <= **b))
                .map(|(p, _)| p.0)
                .collect();
            lagging.is_empty()
        });
        let detail: Vec<String> = lagging.iter().map(|pid| describe(*pid)).collect();
        assert!(
            ok,
            "{:?}: gained no CPU time:\n{}\ndmon said:\n{}",
            self.layout,
            detail.join("\n"),
            self.read("dmon.err")
        );
    }

    /// Asserts that no process of `procs` uses any CPU time during `window`.
    pub fn assert_no_cpu_gained(&self, procs: &[Proc], window: Duration) {
        let before: Vec<Option<u64>> = procs.iter().map(|p| cpu(*p)).collect();
        std::thread::sleep(window);
        let after: Vec<Option<u64>> = procs.iter().map(|p| cpu(*p)).collect();
        for ((p, b), a) in procs.iter().zip(&before).zip(&after) {
            assert!(b.is_some() && a.is_some(), "{:?}: process {} ended while paused", self.layout, p.0);
            assert_eq!(b, a, "{:?}: process {} ran while paused (CPU ticks {b:?} -> {a:?})", self.layout, p.0);
        }
    }

    pub fn assert_gone(&self, procs: &[Proc]) {
        let alive: Vec<i32> = procs.iter().filter(|p| cpu(**p).is_some()).map(|p| p.0).collect();
        assert!(alive.is_empty(), "{:?}: still alive: {alive:?}", self.layout);
    }

    pub fn assert_no_members(&self) {
        let left = self.members();
        assert!(left.is_empty(), "{:?}: left behind: {left:?}", self.layout);
    }

    pub fn wait_no_members(&self) {
        assert!(wait_until(WAIT, || self.members().is_empty()), "{:?}: the tree did not end", self.layout);
    }

    /// Starts dmon in a tmux session on the interactive script.
    pub fn tmux_start(&self) -> Tmux<'_> {
        let argv = self.layout.wrap(&self.dmon_args(&[], "interactive.sh", &[]), self.delegated.as_deref());
        let quoted: Vec<String> = argv.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
        let line = format!(
            "DMON_LOADAVG_FILE={} {} 2>{}; echo $? > {}",
            self.path("load").display(),
            quoted.join(" "),
            self.path("dmon.err").display(),
            self.path("exited").display()
        );
        let name = format!("dmon-tree-{}-{}", std::process::id(), self.dir.file_name().unwrap().to_string_lossy());
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "100", "-y", "20", &line])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux did not start");
        Tmux { t: self, name }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        kill_members(self);
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(cg) = &self.delegated {
            let _ = fs::write(cg.join("cgroup.kill"), "1");
            wait_until(Duration::from_secs(5), || remove_cgroup(cg));
        }
    }
}

/// KILL (and CONT) to every process of the tree still alive, and thaw any cgroup
/// of dmon's that is left, so that nothing of a failed test lingers.
fn kill_members(t: &TestDir) {
    for _ in 0..50 {
        let left = t.members();
        if left.is_empty() {
            return;
        }
        for (pid, _) in left {
            // SAFETY: kill with plain integers.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGCONT);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn remove_cgroup(dir: &Path) -> bool {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    fs::remove_dir(dir).is_ok() || !dir.exists()
}

/// A process's stat line and command line, for failure messages.
fn describe(pid: i32) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    format!("{} | {} | wchan {wchan}", stat.trim(), String::from_utf8_lossy(&cmdline).replace('\0', " "))
}

/// Start time and CPU time (utime + stime, in ticks) of a live, non-zombie process.
fn stat(pid: i32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // After the command: state is field 3, utime 14, stime 15, starttime 22.
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    let num = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
    Some((num(22)?, num(14)? + num(15)?))
}

/// The nice value of `pid` (field 19 of `/proc/PID/stat`).
pub fn nice(pid: i32) -> Option<i64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 2..].split(' ').nth(19 - 3)?.parse().ok()
}

/// The state letter of `pid` in `/proc/PID/stat` (`R`, `S`, `T`, `Z`...), None once it is gone.
pub fn state(pid: i32) -> Option<char> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 2..].chars().next()
}

fn cpu((pid, start): Proc) -> Option<u64> {
    stat(pid).filter(|(s, _)| *s == start).map(|(_, cpu)| cpu)
}

pub struct Dmon<'a> {
    t: &'a TestDir,
    child: Option<Child>,
}

impl Dmon<'_> {
    /// Waits for the `nth` status line starting with `prefix`; returns the rest of it.
    pub fn wait_line(&self, prefix: &str, nth: usize) -> String {
        let mut found = None;
        let ok = wait_until(WAIT, || {
            found =
                self.t.read("status").lines().filter_map(|l| l.strip_prefix(prefix)).nth(nth - 1).map(str::to_string);
            found.is_some()
        });
        assert!(
            ok,
            "{:?}: no line {nth} '{prefix}...'; status:\n{}\ndmon said:\n{}",
            self.t.layout,
            self.t.read("status"),
            self.t.read("dmon.err")
        );
        found.unwrap()
    }

    /// A pid from a status line (`cmd start 42` gives "42").
    pub fn pid(line: &str) -> i32 {
        line.split_whitespace().next().and_then(|w| w.parse().ok()).expect("a pid")
    }

    /// dmon's pid as seen from here.
    pub fn dmon_pid(&self) -> Option<i32> {
        let child = self.child.as_ref()?;
        let pid = child.id() as i32;
        if self.t.layout != Layout::Pid1 {
            return Some(pid);
        }
        let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// dmon's own cgroup directory, from the status file.
    pub fn home(&self) -> Option<PathBuf> {
        let status = self.t.read("status");
        let line = status.lines().find_map(|l| l.strip_prefix("tree "))?;
        let path = line.split_whitespace().nth(1)?;
        Some(self.t.layout.host_path(path))
    }

    pub fn terminate_and_wait(&mut self) {
        let pid = self.dmon_pid().expect("dmon runs");
        // SAFETY: kill with plain integers.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut child = self.child.take().unwrap();
        let ok = wait_until(WAIT, || child.try_wait().unwrap().is_some());
        if !ok {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(ok, "{:?}: dmon did not exit after TERM; it said:\n{}", self.t.layout, self.t.read("dmon.err"));
    }

    /// Waits (at most `limit`) for dmon to exit by itself; whether it did.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let Some(child) = self.child.as_mut() else { return true };
        let ok = wait_until(limit, || child.try_wait().unwrap().is_some());
        if ok {
            self.child = None;
        }
        ok
    }

    /// Waits until the kernel says the command's cgroup is frozen (a freeze
    /// returns before it completes); nothing to wait for with signals.
    /// Waits until the tree is stopped: the kernel's word for a cgroup, every
    /// member in state T with signals (the `pause` record is written when dmon
    /// decides, before the stop).
    pub fn wait_frozen(&self) {
        if self.home().is_none() {
            let stopped = || self.t.members().iter().all(|(pid, _)| matches!(state(*pid), Some('T') | None));
            assert!(wait_until(WAIT, stopped), "{:?}: the tree was never stopped", self.t.layout);
            return;
        }
        assert!(wait_until(WAIT, || self.is_frozen()), "{:?}: the cgroup never read frozen", self.t.layout);
    }

    /// Whether the kernel says the command's cgroup is frozen.
    pub fn is_frozen(&self) -> bool {
        let Some(home) = self.home() else { return false };
        fs::read_to_string(home.join("cmd/cgroup.events")).is_ok_and(|t| t.lines().any(|l| l == "frozen 1"))
            || fs::read_to_string(home.join("cmd/freezer.state")).is_ok_and(|t| t.trim() == "FROZEN")
    }

    pub fn kill_hard(&mut self) {
        let pid = self.dmon_pid().expect("dmon runs");
        // SAFETY: kill with plain integers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let mut child = self.child.take().unwrap();
        let _ = child.wait();
    }

    pub fn assert_cgroups_removed(&self) {
        assert_cgroups_removed_for(&self.t.read("status"), self.t.layout);
    }
}

/// The cgroup named on the status file's `tree` line no longer exists.
pub fn assert_cgroups_removed_for(status: &str, layout: Layout) {
    let Some(line) = status.lines().find_map(|l| l.strip_prefix("tree ")) else { panic!("no tree line") };
    if let Some(path) = line.split_whitespace().nth(1) {
        let dir = layout.host_path(path);
        assert!(!dir.exists(), "{layout:?}: {} was left behind", dir.display());
    }
}

impl Drop for Dmon<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.dmon_pid() {
            // SAFETY: kill with plain integers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_members(self.t);
        if let Some(home) = self.home() {
            let _ = fs::write(home.join("cmd/freezer.state"), "THAWED");
            let _ = fs::write(home.join("cmd/cgroup.kill"), "1");
            wait_until(Duration::from_secs(5), || remove_cgroup(&home));
        }
    }
}

pub struct Tmux<'a> {
    t: &'a TestDir,
    name: String,
}

impl Tmux<'_> {
    pub fn type_line(&self, text: &str) {
        // The command may not read yet; the terminal keeps what is typed.
        assert!(wait_until(WAIT, || self.t.read("status").contains("cmd start ")), "dmon did not start");
        Command::new("tmux").args(["send-keys", "-t", &self.name, "-l", text]).status().unwrap();
        Command::new("tmux").args(["send-keys", "-t", &self.name, "Enter"]).status().unwrap();
    }

    pub fn ctrl_c(&self) {
        Command::new("tmux").args(["send-keys", "-t", &self.name, "C-c"]).status().unwrap();
    }

    pub fn wait_dmon_exit(&self) -> bool {
        wait_until(WAIT, || self.t.path("exited").exists())
    }
}

impl Drop for Tmux<'_> {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).stderr(Stdio::null()).status();
        // dmon does not end on the terminal's hangup: end the one this test started.
        let mine = self.t.dir.display().to_string();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else { continue };
            let text = String::from_utf8_lossy(&cmdline);
            if text.starts_with(DMON) && text.contains(&mine) {
                // SAFETY: kill with plain integers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        kill_members(self.t);
    }
}
