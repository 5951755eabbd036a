//! `--control DIR`: runit's supervise interface, so that runit's own `sv`
//! drives dmon unchanged (runsv(8), sv(8)).
//!
//! dmon keeps `DIR/supervise/` as runsv does, and `DIR/log/supervise/` for the
//! log command: the `control` FIFO (one letter a command), the `ok` FIFO (held
//! open for reading, so that `sv` can tell a supervisor is there), `lock`
//! (flock'ed for dmon's whole life), and the state in `status` (20 bytes, the
//! format daemontools' supervise began), `stat` (in words) and `pid`, each
//! written to `NAME.new` and renamed over the old one, so a reader sees either.
//!
//! The directory is made 0700; an existing one keeps its mode and group, which
//! is runit's way to let a group control a service. Every file in it is opened
//! by name through the directory's descriptor with O_NOFOLLOW and checked with
//! `fstat` after the open: a symbolic link is refused, never followed.
//!
//! `control` is opened read-write and non-blocking: dmon is then a writer
//! itself, so the FIFO never reports end-of-file (which would wake every poll)
//! when `sv` closes it, and a writer's `open` never waits.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag};

use crate::task::{Event, State, Task};

mod error;

pub use error::{ControlError, Op, OpenError};

/// runit's run states, byte 19 of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Down = 0,
    Run = 1,
    /// runsv's `./finish` is running: dmon has none, but sv knows the value.
    Finish = 2,
}

/// What `status`, `stat` and `pid` say of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The leader's pid, 0 while down.
    pub pid: u32,
    pub paused: bool,
    /// `u` or `d`.
    pub want_up: bool,
    /// dmon is ending (`x`, or TERM): `stat` says `want exit`.
    pub exiting: bool,
    /// TERM was sent to the run and it has not ended yet.
    pub term: bool,
    pub run: Run,
}

/// TAI64N of `time` (12 bytes): seconds since 1970 plus 2^62 + 10, as runit's
/// `tai_unix` counts them, then nanoseconds, both big-endian.
pub fn tai64n(time: SystemTime) -> [u8; 12] {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut out = [0; 12];
    out[..8].copy_from_slice(&((1u64 << 62) + 10 + since.as_secs()).to_be_bytes());
    out[8..].copy_from_slice(&since.subsec_nanos().to_be_bytes());
    out
}

/// The 20 bytes of `supervise/status`: the stamp of the last change of run
/// state, the pid little-endian, the paused flag, `u`/`d`, the TERM flag and the
/// run state.
pub fn encode_status(stamp: SystemTime, s: &Snapshot) -> [u8; 20] {
    let mut out = [0; 20];
    out[..12].copy_from_slice(&tai64n(stamp));
    out[12..16].copy_from_slice(&s.pid.to_le_bytes());
    out[16] = s.paused as u8;
    out[17] = if s.want_up { b'u' } else { b'd' };
    out[18] = s.term as u8;
    out[19] = s.run as u8;
    out
}

/// The fields of a 20-byte status: (unix seconds, pid, paused, want, term, run).
pub fn decode_status(bytes: &[u8; 20]) -> (u64, u32, bool, u8, bool, u8) {
    let tai = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let pid = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    (tai.saturating_sub((1 << 62) + 10), pid, bytes[16] != 0, bytes[17], bytes[18] != 0, bytes[19])
}

/// `supervise/stat`: the state in words, as runsv writes it (`run, paused`).
pub fn stat_text(s: &Snapshot) -> String {
    let mut text = String::from(match s.run {
        Run::Down => "down",
        Run::Run => "run",
        Run::Finish => "finish",
    });
    if s.paused {
        text.push_str(", paused");
    }
    if s.term {
        text.push_str(", got TERM");
    }
    if s.run != Run::Down {
        if s.exiting {
            text.push_str(", want exit");
        } else if !s.want_up {
            text.push_str(", want down");
        }
    }
    text.push('\n');
    text
}

/// `supervise/pid`: the pid and a newline, empty while down.
pub fn pid_text(pid: u32) -> String {
    if pid == 0 { String::new() } else { format!("{pid}\n") }
}

/// What one letter on the control FIFO asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// A task event: `p` `c` `d` `u` `o`.
    Task(Event),
    /// A signal to the leader: `t` `h` `i` `a` `q` `1` `2` `k`.
    Signal(Signal),
    /// `x`: end dmon once the service is down.
    Exit,
}

/// runit's letters (runsv(8)); an unknown one is None and ignored.
pub fn command(letter: u8) -> Option<Command> {
    Some(match letter {
        b'p' => Command::Task(Event::Hold),
        b'c' => Command::Task(Event::Release),
        b'd' => Command::Task(Event::Down),
        b'u' => Command::Task(Event::Up),
        b'o' => Command::Task(Event::Once),
        b'x' => Command::Exit,
        b't' => Command::Signal(Signal::SIGTERM),
        b'h' => Command::Signal(Signal::SIGHUP),
        b'i' => Command::Signal(Signal::SIGINT),
        b'a' => Command::Signal(Signal::SIGALRM),
        b'q' => Command::Signal(Signal::SIGQUIT),
        b'1' => Command::Signal(Signal::SIGUSR1),
        b'2' => Command::Signal(Signal::SIGUSR2),
        b'k' => Command::Signal(Signal::SIGKILL),
        _ => return None,
    })
}

/// One `supervise/` directory, held open and locked.
pub struct Supervise {
    dir: OwnedFd,
    path: PathBuf,
    _lock: File,
    control: File,
    _ok: File,
    /// What was written last, and since when the run state is what it is.
    written: Option<Snapshot>,
    stamp: SystemTime,
    /// The leader of the run being stopped, once reaped before its tree is empty.
    last_pid: u32,
    /// The leader a `t` was sent to.
    term_to: Option<u32>,
}

const FIFOS: [&CStr; 2] = [c"control", c"ok"];

impl Supervise {
    /// Makes (or takes over) `service/supervise`; `service` is made when missing.
    pub fn open(service: &Path) -> Result<Supervise, ControlError> {
        let path = service.join("supervise");
        let at = |name: &CStr| path.join(name.to_str().unwrap_or("?"));
        if let Err(err) = std::fs::create_dir(service) {
            if err.kind() != io::ErrorKind::AlreadyExists {
                return Err(ControlError::Failed { op: Op::Make, path: service.to_path_buf(), err });
            }
        }
        let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let top = nix::fcntl::open(service, flags, Mode::empty())
            .map_err(|e| ControlError::Open { path: service.to_path_buf(), err: OpenError::Os(e.into()) })?;
        match nix::sys::stat::mkdirat(&top, c"supervise", Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(ControlError::Failed { op: Op::Make, path, err: e.into() }),
        }
        let dir = nix::fcntl::openat(&top, c"supervise", flags | OFlag::O_NOFOLLOW, Mode::empty()).map_err(|e| {
            let err = match e {
                Errno::ELOOP | Errno::ENOTDIR => OpenError::NotADirectory,
                e => OpenError::Os(e.into()),
            };
            ControlError::Open { path: path.clone(), err }
        })?;
        let meta = File::from(dir.try_clone().map_err(ControlError::Stat)?).metadata().map_err(ControlError::Stat)?;
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(ControlError::Owner { path, uid: meta.uid(), euid: me });
        }
        if meta.permissions().mode() & 0o002 != 0 {
            return Err(ControlError::OpenToAll { path });
        }

        let lock = open_at(&dir, c"lock", OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT, 0o600)
            .map_err(|err| ControlError::Open { path: at(c"lock"), err })?;
        check_regular(&lock, at(c"lock"))?;
        // flock, as runit's lock_exnb: held by the open file description for
        // as long as `lock` stays open.
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = Errno::last();
            if e == Errno::EWOULDBLOCK {
                return Err(ControlError::Locked { path: at(c"lock"), holder: lock_holder(&lock) });
            }
            return Err(ControlError::Failed { op: Op::Lock, path: at(c"lock"), err: e.into() });
        }

        for name in FIFOS {
            make_fifo(&dir, name, at(name))?;
        }
        let fifo = |name: &CStr, flags: OFlag| -> Result<File, ControlError> {
            let file = open_at(&dir, name, flags | OFlag::O_NONBLOCK, 0)
                .map_err(|err| ControlError::Open { path: at(name), err })?;
            let meta = file.metadata().map_err(ControlError::Stat)?;
            if !meta.file_type().is_fifo() || meta.uid() != me {
                return Err(ControlError::Replaced { path: at(name) });
            }
            Ok(file)
        };
        let control = fifo(c"control", OFlag::O_RDWR)?;
        let ok = fifo(c"ok", OFlag::O_RDONLY)?;
        for name in [c"status", c"stat", c"pid"] {
            refuse_link(&dir, name, at(name))?;
        }
        Ok(Supervise {
            dir,
            path,
            _lock: lock,
            control,
            _ok: ok,
            written: None,
            stamp: SystemTime::now(),
            last_pid: 0,
            term_to: None,
        })
    }

    /// The control FIFO, polled for POLLIN.
    pub fn control_fd(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }

    /// Every letter written since the last call, in order.
    pub fn read_letters(&mut self) -> Vec<u8> {
        let mut letters = Vec::new();
        let mut buffer = [0; 512];
        loop {
            match self.control.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => letters.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        letters
    }

    /// A `t` was sent to `pid`: the TERM flag is set until that run ends.
    pub fn term_sent(&mut self, pid: i32) {
        self.term_to = Some(pid as u32);
    }

    /// What `task` is now, in runsv's terms.
    fn snapshot(&mut self, task: &Task, exiting: bool) -> Snapshot {
        let (pid, run, term) = match task.state() {
            State::Running { pid, .. } | State::Draining { pid, .. } => (*pid as u32, Run::Run, false),
            // Being stopped: still up, with TERM sent, until the tree is empty.
            State::Stopping { leader, .. } => (leader.map_or(self.last_pid, |p| p as u32), Run::Run, true),
            State::Idle | State::Waiting { .. } | State::Done => (0, Run::Down, false),
        };
        self.last_pid = pid;
        if self.term_to.is_some_and(|to| to != pid) {
            self.term_to = None;
        }
        let term = term || (pid != 0 && self.term_to == Some(pid));
        let want_up = task.wants_up() && !exiting;
        Snapshot { pid, paused: task.frozen(), want_up, exiting, term, run }
    }

    /// Writes `status`, `stat` and `pid` if what they say has changed.
    pub fn publish(&mut self, task: &Task, exiting: bool) {
        let now = self.snapshot(task, exiting);
        if self.written == Some(now) {
            return;
        }
        let before = self.written;
        if before.is_none_or(|b| b.run != now.run || b.pid != now.pid) && before.is_some() {
            self.stamp = SystemTime::now();
        }
        let result = (|| {
            if before.is_none_or(|b| b.pid != now.pid) {
                self.replace(c"pid.new", c"pid", pid_text(now.pid).as_bytes())?;
            }
            self.replace(c"stat.new", c"stat", stat_text(&now).as_bytes())?;
            self.replace(c"status.new", c"status", &encode_status(self.stamp, &now))
        })();
        match result {
            Ok(()) => self.written = Some(now),
            Err(e) => tracing::warn!("cannot update '{}': {}", self.path.display(), crate::io_reason(&e)),
        }
    }

    /// Writes `new` whole and renames it over `name`: a reader sees one or the other.
    fn replace(&self, new: &CStr, name: &CStr, bytes: &[u8]) -> io::Result<()> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
        let mut file = open_at(&self.dir, new, flags, 0o644).map_err(io::Error::other)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::other(format!("{} is not a regular file", new.to_string_lossy())));
        }
        file.write_all(bytes)?;
        drop(file);
        nix::fcntl::renameat(&self.dir, new, &self.dir, name)?;
        Ok(())
    }
}

/// `supervise/` of the command, and of the log command in `DIR/log/`.
pub struct Control {
    pub cmd: Supervise,
    pub log: Option<Supervise>,
}

impl Control {
    pub fn open(dir: &Path, with_log: bool) -> Result<Control, ControlError> {
        let cmd = Supervise::open(dir)?;
        let log = with_log.then(|| Supervise::open(&dir.join("log"))).transpose()?;
        Ok(Control { cmd, log })
    }
}

fn open_at(dir: &OwnedFd, name: &CStr, flags: OFlag, mode: u32) -> Result<File, OpenError> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let fd = nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(mode)).map_err(OpenError::of)?;
    Ok(File::from(fd))
}

fn check_regular(file: &File, path: PathBuf) -> Result<(), ControlError> {
    match file.metadata() {
        Ok(meta) if meta.is_file() && meta.nlink() == 1 => Ok(()),
        Ok(_) => Err(ControlError::NotOwnFile { path }),
        Err(err) => Err(ControlError::Failed { op: Op::LookAt, path, err }),
    }
}

/// What is at `name`, not following a link.
fn kind_at(dir: &OwnedFd, name: &CStr) -> Result<Option<(SFlag, u32)>, Errno> {
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some((SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT), st.st_uid))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn refuse_link(dir: &OwnedFd, name: &CStr, path: PathBuf) -> Result<(), ControlError> {
    match kind_at(dir, name) {
        Ok(Some((kind, _))) if kind == SFlag::S_IFLNK => Err(ControlError::Link { path }),
        Ok(Some((kind, _))) if kind != SFlag::S_IFREG => Err(ControlError::NotRegular { path }),
        Ok(_) => Ok(()),
        Err(e) => Err(ControlError::Failed { op: Op::LookAt, path, err: e.into() }),
    }
}

/// A FIFO at `name`, fresh: one a dead supervisor left (dmon holds the lock now)
/// is replaced, so no earlier writer still holds it; anything else there is
/// refused, never used as half a FIFO.
fn make_fifo(dir: &OwnedFd, name: &CStr, path: PathBuf) -> Result<(), ControlError> {
    let me = nix::unistd::geteuid().as_raw();
    let failed = |op, e: Errno, path| ControlError::Failed { op, path, err: e.into() };
    match kind_at(dir, name) {
        Ok(None) => {}
        Ok(Some((kind, uid))) if kind == SFlag::S_IFIFO && uid == me => {
            let unlink = nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
            unlink.map_err(|e| failed(Op::ReplaceStaleFifo, e, path.clone()))?;
        }
        Ok(Some((kind, _))) if kind == SFlag::S_IFLNK => return Err(ControlError::Link { path }),
        Ok(Some((kind, uid))) if kind == SFlag::S_IFIFO => return Err(ControlError::ForeignFifo { path, uid }),
        Ok(Some(_)) => return Err(ControlError::NotFifo { path }),
        Err(e) => return Err(failed(Op::LookAt, e, path)),
    }
    nix::unistd::mkfifoat(dir, name, Mode::from_bits_truncate(0o600)).map_err(|e| failed(Op::MakeFifo, e, path))
}

/// The pid holding a flock on `file`, from /proc/locks (matched by device and inode).
fn lock_holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let want = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        let (pid, id) = (fields.get(at + 3)?, fields.get(at + 4)?);
        (*id == want).then(|| pid.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn snap() -> Snapshot {
        Snapshot { pid: 19162, paused: false, want_up: true, exiting: false, term: false, run: Run::Run }
    }

    #[test]
    fn status_is_runits_twenty_bytes() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let bytes = encode_status(at, &Snapshot { paused: true, term: true, ..snap() });
        assert_eq!(&bytes[..8], &(0x4000_0000_0000_000a_u64 + 1_700_000_000).to_be_bytes());
        assert_eq!(&bytes[8..12], &[0, 0, 0, 5]);
        assert_eq!(&bytes[12..16], &[0xda, 0x4a, 0, 0]);
        assert_eq!(&bytes[16..], &[1, b'u', 1, 1]);
        assert_eq!(decode_status(&bytes), (1_700_000_000, 19162, true, b'u', true, 1));
        let down = Snapshot { pid: 0, want_up: false, run: Run::Down, ..snap() };
        assert_eq!(&encode_status(at, &down)[12..], &[0, 0, 0, 0, 0, b'd', 0, 0]);
    }

    #[test]
    fn stat_says_the_state_as_runsv() {
        assert_eq!(stat_text(&snap()), "run\n");
        assert_eq!(
            stat_text(&Snapshot { paused: true, term: true, want_up: false, ..snap() }),
            "run, paused, got TERM, want down\n"
        );
        assert_eq!(stat_text(&Snapshot { exiting: true, want_up: false, ..snap() }), "run, want exit\n");
        assert_eq!(stat_text(&Snapshot { pid: 0, run: Run::Down, want_up: false, ..snap() }), "down\n");
        assert_eq!(pid_text(0), "");
        assert_eq!(pid_text(42), "42\n");
    }

    /// A fresh service directory, removed at the end.
    struct Service(PathBuf);

    impl Service {
        fn new(name: &str) -> Service {
            let dir = std::env::temp_dir().join(format!("dmon-control-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("supervise")).unwrap();
            Service(dir)
        }

        fn at(&self, name: &str) -> PathBuf {
            self.0.join("supervise").join(name)
        }

        fn refusal(&self) -> String {
            Supervise::open(&self.0).err().expect("refused").to_string()
        }
    }

    impl Drop for Service {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_refusal_names_the_file_and_what_is_wrong_with_it() {
        let link = |s: &Service, name: &str| std::os::unix::fs::symlink("/etc/passwd", s.at(name)).unwrap();
        let lock = Service::new("lock");
        link(&lock, "lock");
        let said = format!(
            "cannot open '{}': it is a symbolic link, which dmon does not follow (remove it)",
            lock.at("lock").display()
        );
        assert_eq!(lock.refusal(), said);

        let ok = Service::new("ok");
        std::fs::create_dir(ok.at("ok")).unwrap();
        assert_eq!(ok.refusal(), format!("'{}' exists and is not a FIFO (remove it)", ok.at("ok").display()));

        let status = Service::new("status");
        link(&status, "status");
        let said =
            format!("'{}' is a symbolic link, which dmon does not follow (remove it)", status.at("status").display());
        assert_eq!(status.refusal(), said);

        let pid = Service::new("pid");
        std::fs::create_dir(pid.at("pid")).unwrap();
        assert_eq!(pid.refusal(), format!("'{}' is not a regular file", pid.at("pid").display()));

        let open = Service::new("open");
        std::fs::set_permissions(open.at(""), std::fs::Permissions::from_mode(0o777)).unwrap();
        let said = format!(
            "'{}' can be written by anyone; make it 0700 (or 0770 for a group)",
            open.0.join("supervise").display()
        );
        assert_eq!(open.refusal(), said);

        let moved = Service::new("moved");
        std::fs::remove_dir(moved.at("")).unwrap();
        std::os::unix::fs::symlink("/tmp", moved.0.join("supervise")).unwrap();
        let said =
            format!("cannot open '{}': not a directory (a link is not followed)", moved.0.join("supervise").display());
        assert_eq!(moved.refusal(), said);
    }

    #[test]
    fn a_held_lock_names_its_holder() {
        let service = Service::new("held");
        let _first = Supervise::open(&service.0).unwrap();
        let said =
            format!("'{}' is locked by another supervisor (pid {})", service.at("lock").display(), std::process::id());
        assert_eq!(service.refusal(), said);
    }

    #[test]
    fn letters_are_runits() {
        assert_eq!(command(b'p'), Some(Command::Task(Event::Hold)));
        assert_eq!(command(b'c'), Some(Command::Task(Event::Release)));
        assert_eq!(command(b'd'), Some(Command::Task(Event::Down)));
        assert_eq!(command(b'u'), Some(Command::Task(Event::Up)));
        assert_eq!(command(b'o'), Some(Command::Task(Event::Once)));
        assert_eq!(command(b'x'), Some(Command::Exit));
        assert_eq!(command(b'k'), Some(Command::Signal(Signal::SIGKILL)));
        assert_eq!(command(b'2'), Some(Command::Signal(Signal::SIGUSR2)));
        assert_eq!(command(b'Z'), None);
        assert_eq!(command(b'\n'), None);
    }
}
