//! Fork and exec, with the child born in its cgroup.
//!
//! The child is created in its leaf by `clone3` with `CLONE_INTO_CGROUP`
//! (Linux 5.7, cgroup v2). A child that joined after the fork, by writing
//! `cgroup.procs`, would be migrated, and a migration takes the writer side of
//! the kernel's `cgroup_threadgroup_rwsem`, which waits for an RCU grace period:
//! measured, a restart after a finished run took 3 to 22 ms that way, against 3 to 4 ms
//! without a cgroup. Where clone3 is refused (an older kernel, a seccomp
//! filter, a v1 freezer leaf) the child is forked and joins by that write, in
//! the set-up hook.
//!
//! [`spawn`] returns once the exec has succeeded: the child reports a failed
//! step or exec on a close-on-exec pipe, which closes without a word at a
//! successful exec. So a command that cannot start is an error, with nothing left
//! running, and a pid always names a command that runs.
//!
//! Everything the child needs is prepared here before the fork: the child only
//! makes raw system calls (no allocation, no locks), as after any fork of a
//! process that may have threads.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

/// `struct clone_args` of clone3(2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A program and its environment, as execve takes them.
pub struct Exec {
    /// Where to look for the program: the name itself when it has a slash,
    /// else each directory of PATH joined to it.
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Exec {
    /// `argv[0]` is looked up in the PATH of `env` (the child's environment),
    /// as execvp does.
    pub fn new(argv: &[OsString], env: &[(OsString, OsString)]) -> io::Result<Exec> {
        let c = |s: &OsStr| CString::new(s.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
        let argv: Vec<CString> = argv.iter().map(|a| c(a)).collect::<io::Result<_>>()?;
        let name = argv.first().ok_or(io::ErrorKind::InvalidInput)?.as_bytes();
        let envp = env
            .iter()
            .map(|(k, v)| c(OsStr::from_bytes(&[k.as_bytes(), b"=", v.as_bytes()].concat())))
            .collect::<io::Result<_>>()?;
        let candidates = if name.contains(&b'/') {
            vec![CString::new(name).expect("checked")]
        } else {
            let path =
                env.iter().find(|(k, _)| k == "PATH").map_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"), |(_, v)| v);
            path.as_bytes()
                .split(|&b| b == b':')
                .map(|dir| {
                    let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
                    CString::new([dir, b"/", name].concat()).expect("no NUL in either part")
                })
                .collect()
        };
        Ok(Exec { candidates, argv, envp })
    }
}

/// Why a child did not start: before the fork, in the child's set-up (the
/// hook's code for the step), or at the exec.
#[derive(Debug)]
pub enum Failure {
    Prepare(io::Error),
    Step(u8, io::Error),
    Exec(io::Error),
}

/// Starts `exec` with `stdio` as its standard streams (None: dmon's own), in
/// the cgroup v2 directory `cgroup` when given and the kernel can, running
/// `hook(joined)` in the child first (`joined`: the child was born in the
/// cgroup). Returns the pid once the exec has succeeded; a failure is reported
/// by the child on a close-on-exec pipe, so that nothing is left running.
pub fn spawn(
    exec: &Exec,
    stdio: &[Option<OwnedFd>; 3],
    cgroup: Option<RawFd>,
    hook: impl FnOnce(bool) -> Result<(), (u8, Errno)>,
) -> Result<i32, Failure> {
    let flags = nix::fcntl::OFlag::O_CLOEXEC;
    let (report_r, report_w) = nix::unistd::pipe2(flags).map_err(|e| Failure::Prepare(e.into()))?;
    let ready = Ready::new(exec, stdio, report_w.as_raw_fd());
    let (pid, joined) = fork_into(cgroup).map_err(|e| Failure::Prepare(e.into()))?;
    if pid == 0 {
        ready.run(hook, joined);
    }
    drop(report_w);
    let mut msg = [0u8; 5];
    let n = loop {
        match nix::unistd::read(&report_r, &mut msg) {
            Err(Errno::EINTR) => continue,
            other => break other.unwrap_or(0),
        }
    };
    if n == 0 {
        return Ok(pid);
    }
    // The child failed and exits: reap it here, it is no run of the command.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    let errno = io::Error::from_raw_os_error(i32::from_ne_bytes(msg[1..5].try_into().expect("four bytes")));
    Err(if msg[0] == 0 { Failure::Exec(errno) } else { Failure::Step(msg[0], errno) })
}

/// What the child needs, as pointers and numbers built before the fork: the
/// child must not allocate.
struct Ready<'a> {
    candidates: &'a [CString],
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// For a file without a #! line, execvp's fallback: /bin/sh FILE ARGS.
    sh_argv: Vec<*const libc::c_char>,
    stdio: [RawFd; 3],
    report: RawFd,
}

impl Ready<'_> {
    fn new<'a>(exec: &'a Exec, stdio: &[Option<OwnedFd>; 3], report: RawFd) -> Ready<'a> {
        let mut argv: Vec<*const libc::c_char> = exec.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = exec.envp.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        let mut sh_argv: Vec<*const libc::c_char> = vec![c"/bin/sh".as_ptr(), std::ptr::null()];
        sh_argv.extend(argv[1..].iter().copied());
        let stdio = std::array::from_fn(|i| stdio[i].as_ref().map_or(-1, |fd| fd.as_raw_fd()));
        Ready { candidates: &exec.candidates, argv, envp, sh_argv, stdio, report }
    }

    /// Sends the failed step's code (0: the exec) and errno, and exits.
    fn fail(&self, code: u8, errno: Errno) -> ! {
        let mut msg = [0u8; 5];
        msg[0] = code;
        msg[1..].copy_from_slice(&(errno as i32).to_ne_bytes());
        // SAFETY: a write from a local buffer, then _exit: no unwinding, no
        // destructors, no atexit handlers of the parent's.
        unsafe {
            libc::write(self.report, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    }

    /// The child: standard streams, the hook, then exec, as execvp would.
    fn run(mut self, hook: impl FnOnce(bool) -> Result<(), (u8, Errno)>, joined: bool) -> ! {
        // Rust's runtime ignores SIGPIPE, and an ignored signal stays ignored
        // across exec: the command gets the default, as std's spawn gives it.
        // SAFETY: signal takes integers.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        for (target, &fd) in self.stdio.iter().enumerate() {
            let target = target as RawFd;
            // SAFETY: dup2 and fcntl take integers; `fd` is open in the child.
            let ok = match fd {
                -1 => true,
                fd if fd == target => (unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }) == 0,
                fd => (unsafe { libc::dup2(fd, target) }) == target,
            };
            if !ok {
                self.fail(b's', Errno::last());
            }
        }
        if let Err((code, errno)) = hook(joined) {
            self.fail(code, errno);
        }
        // Only 0, 1 and 2 go on to the command: whatever dmon inherited without
        // close-on-exec (`exec 7<file` in the caller's script) would reach it,
        // under another user too. The hook is done with the prepared descriptors
        // (cgroup.procs), so everything from 3 up is closed now except the
        // report pipe, which is close-on-exec and must outlive a failed exec.
        close_from(3, self.report);
        let (mut denied, mut last) = (false, Errno::ENOENT);
        for path in self.candidates {
            // SAFETY: NUL-terminated strings and NULL-terminated arrays built
            // before the fork; execve returns only on failure.
            unsafe { libc::execve(path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
            last = Errno::last();
            if last == Errno::ENOEXEC {
                self.sh_argv[1] = path.as_ptr();
                // SAFETY: as above.
                unsafe { libc::execve(c"/bin/sh".as_ptr(), self.sh_argv.as_ptr(), self.envp.as_ptr()) };
                last = Errno::last();
            }
            match last {
                Errno::EACCES => denied = true,
                Errno::ENOENT | Errno::ENOTDIR => {}
                _ => break,
            }
        }
        // As execvp: a file found but not executable says so, not "not found".
        self.fail(0, if denied && matches!(last, Errno::ENOENT | Errno::ENOTDIR) { Errno::EACCES } else { last })
    }
}

/// Closes every descriptor from `first` up except `keep`. close_range(2)
/// (Linux 5.9) does it in two calls whatever the descriptor limit; an older
/// kernel gets a close per number up to the limit.
fn close_from(first: RawFd, keep: RawFd) {
    let ranges = [(first, keep - 1), (keep + 1, RawFd::MAX)];
    for (low, high) in ranges.into_iter().filter(|(low, high)| low <= high) {
        // SAFETY: close_range takes integers; nothing in the child uses these
        // descriptors any more.
        let closed = unsafe { libc::syscall(libc::SYS_close_range, low as libc::c_uint, high as libc::c_uint, 0) };
        if closed == 0 {
            continue;
        }
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit fills the struct given; close takes an integer.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            let top = (limit.rlim_cur.min(1 << 20) as RawFd).min(high.saturating_add(1));
            for fd in low..top {
                libc::close(fd);
            }
        }
    }
}

/// clone3 into `cgroup`, or fork. Returns the pid (0 in the child) and whether
/// the child was born in the cgroup.
fn fork_into(cgroup: Option<RawFd>) -> Result<(i32, bool), Errno> {
    if let Some(dir) = cgroup {
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: dir as u64,
            ..CloneArgs::default()
        };
        // SAFETY: clone3 without CLONE_VM is a fork: the child gets a copy of
        // this process and returns here with 0. The struct is valid and its size
        // is the one given.
        let pid = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>()) };
        match Errno::result(pid) {
            Ok(pid) => return Ok((pid as i32, true)),
            // Too old a kernel, a filter that refuses clone3, or not a v2 cgroup
            // (a v1 freezer leaf): fork, and the child joins by itself.
            Err(Errno::ENOSYS | Errno::EPERM | Errno::EINVAL | Errno::EBADF | Errno::EOPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    // SAFETY: the child only makes raw system calls until it execs or exits.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok((0, false)),
        nix::unistd::ForkResult::Parent { child } => Ok((child.as_raw(), false)),
    }
}

/// What `--clean-env` keeps of dmon's environment: the terminal, the locale and
/// the time zone, which a service needs to print what its user reads, and the
/// names of the user (replaced by `-u`'s; see [`crate::creds::Credentials`]).
fn kept_when_clean(name: &[u8]) -> bool {
    const KEPT: [&[u8]; 7] = [b"TERM", b"LANG", b"LANGUAGE", b"TZ", b"USER", b"LOGNAME", b"HOME"];
    KEPT.contains(&name) || name.starts_with(b"LC_")
}

/// `--clean-env`'s PATH, whatever dmon's was: the system's directories only, so
/// that a PATH with `.` or a user's directory in a root shell does not choose
/// the program a service runs.
pub const CLEAN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment a child gets: dmon's (with `clean`, only what
/// [`kept_when_clean`] names, and [`CLEAN_PATH`]), with `changes` applied in
/// order (`None` removes the variable). A changed variable goes to the end, in
/// the order of its last change; the others stay where they were.
///
/// Linear in the size of the environment and the number of changes: a
/// variable is looked up in a hash of the changes, never searched for, so that
/// a service started with 200 000 variables or as many `-E` starts at once
/// (one search of the environment per change took minutes there).
pub fn environment<'a>(
    clean: bool,
    changes: impl IntoIterator<Item = (&'a OsStr, Option<&'a OsStr>)>,
) -> Vec<(OsString, OsString)> {
    let base = clean.then_some((OsStr::new("PATH"), Some(OsStr::new(CLEAN_PATH))));
    // For each changed name, its last change and when it came.
    let mut last: HashMap<&OsStr, (usize, Option<&OsStr>)> = HashMap::new();
    for (at, (name, value)) in base.into_iter().chain(changes).enumerate() {
        last.insert(name, (at, value));
    }
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(name, _)| !last.contains_key(name.as_os_str()))
        .filter(|(name, _)| !clean || kept_when_clean(name.as_bytes()))
        .collect();
    let mut set: Vec<(usize, &OsStr, &OsStr)> =
        last.into_iter().filter_map(|(name, (at, value))| value.map(|value| (at, name, value))).collect();
    set.sort_unstable_by_key(|&(at, _, _)| at);
    env.extend(set.into_iter().map(|(_, name, value)| (name.to_owned(), value.to_owned())));
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn run(
        argv: &[&str],
        cgroup: Option<RawFd>,
        hook: impl FnOnce(bool) -> Result<(), (u8, Errno)>,
    ) -> Result<i32, Failure> {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let exec = Exec::new(&argv, &environment(false, [])).unwrap();
        spawn(&exec, &[None, None, None], cgroup, hook)
    }

    fn wait(pid: i32) -> i32 {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap() {
            nix::sys::wait::WaitStatus::Exited(_, code) => code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runs_what_execvp_would() {
        assert_eq!(wait(run(&["true"], None, |_| Ok(())).unwrap()), 0);
        assert_eq!(wait(run(&["sh", "-c", "exit 7"], None, |_| Ok(())).unwrap()), 7);
        let dir = std::env::temp_dir().join(format!("dmon-spawn-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // No #! line: run by /bin/sh, as execvp does.
        let script = dir.join("script");
        std::fs::write(&script, "exit 5\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(wait(run(&[script.to_str().unwrap()], None, |_| Ok(())).unwrap()), 5);
        let plain = dir.join("plain");
        std::fs::write(&plain, "exit 5\n").unwrap();
        let denied = run(&[plain.to_str().unwrap()], None, |_| Ok(()));
        assert!(matches!(denied, Err(Failure::Exec(ref e)) if e.raw_os_error() == Some(libc::EACCES)), "{denied:?}");
        let _ = std::fs::remove_dir_all(&dir);
        let missing = run(&["dmon-no-such-program"], None, |_| Ok(()));
        assert!(matches!(missing, Err(Failure::Exec(ref e)) if e.kind() == io::ErrorKind::NotFound), "{missing:?}");
    }

    #[test]
    fn a_failed_step_is_named_by_its_code() {
        let failed = run(&["true"], None, |_| Err((b'x', Errno::EPERM)));
        assert!(
            matches!(failed, Err(Failure::Step(b'x', ref e)) if e.raw_os_error() == Some(libc::EPERM)),
            "{failed:?}"
        );
    }

    #[test]
    fn the_child_is_born_in_its_cgroup() {
        let root = std::path::Path::new("/sys/fs/cgroup/unified");
        let root = if root.join("cgroup.procs").exists() { root } else { std::path::Path::new("/sys/fs/cgroup") };
        let dir = root.join(format!("dmon-spawn-unit-{}", std::process::id()));
        if !nix::unistd::geteuid().is_root()
            || !root.join("cgroup.procs").exists()
            || std::fs::create_dir(&dir).is_err()
        {
            return crate::skip("needs root and a cgroup v2 hierarchy");
        }
        let fd = std::fs::File::open(&dir).unwrap();
        // A child forked instead of born in the cgroup fails its start.
        let pid =
            run(
                &["sleep", "0.2"],
                Some(fd.as_raw_fd()),
                |joined| if joined { Ok(()) } else { Err((b'j', Errno::EINVAL)) },
            )
            .unwrap();
        let seen = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        wait(pid);
        let _ = std::fs::remove_dir(&dir);
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(seen.lines().any(|l| l.starts_with("0::") && l.ends_with(name)), "{seen}");
    }
}
