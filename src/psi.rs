//! Pressure (PSI, Documentation/accounting/psi.rst) as a reason to pause: a
//! trigger on `/proc/pressure/{cpu,memory,io}` wakes dmon within one window of
//! the pressure rising above the high mark, and nothing wakes it while there is
//! none.
//!
//! - A trigger is the write of `<line> <stall µs> <window µs>` (with its NUL: the
//!   kernel drops the last byte written); `poll(POLLPRI)` then reports, at most
//!   once per window, that tasks stalled for longer than the threshold within
//!   the window. The poll itself re-arms it. Unprivileged users need a window
//!   that is a multiple of 2 s, so the window is 2 s for everyone.
//! - There is no "pressure dropped" event. After a trigger, `avg10` is read every
//!   [`CHECK`]; the source is low again once it has stayed below the low mark for
//!   [`CALM`]. A paused tree adds no pressure of its own, so this measures
//!   everybody else.
//! - A trigger just armed on a system-wide file reports a rise within its first
//!   two windows on an idle machine (see [`SETTLE`]): a report that early is
//!   decided, once [`SETTLE`] has passed, by the stall since arming.
//! - The marks are percentages of wall time during which tasks stalled:
//!   `--pressure 40` pauses when tasks stalled more than 0.8 s of a 2 s window.
//! - Which line each source watches is [`Source::line`].
//! - A [`PressureDir`] of a cgroup (`DMON_PRESSURE_DIR=DIR`, read by
//!   [`crate::cli`]) watches `DIR/cpu.pressure`, `DIR/memory.pressure` and
//!   `DIR/io.pressure` instead: a cgroup v2 directory has exactly these files,
//!   with the same format and triggers, so tests measure one cgroup's pressure.

use std::fs::File;
use std::io;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::marks::{Level, Marks};

/// The trigger's window.
pub const WINDOW: Duration = Duration::from_secs(2);
/// After a trigger, `avg10` is read this often.
pub const CHECK: Duration = Duration::from_secs(2);
/// How long `avg10` must stay below the low mark before the source is low.
pub const CALM: Duration = Duration::from_secs(6);
/// How long after a trigger is armed its reports are not taken as they are:
/// on the system-wide files (Linux 6.18, measured) a new trigger fires within
/// its first window and again at the second on an idle machine, with a
/// millisecond of stall against a threshold of 1.8 s; a cgroup's file does not.
pub const SETTLE: Duration = Duration::from_secs(5);

/// What is under pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cpu,
    Memory,
    Io,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Cpu, Source::Memory, Source::Io];

    /// As in `--pressure memory:40` and the file names.
    pub fn name(self) -> &'static str {
        match self {
            Source::Cpu => "cpu",
            Source::Memory => "memory",
            Source::Io => "io",
        }
    }

    pub fn from_name(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The line of the pressure file that is watched:
    /// - cpu: `some`. System-wide `full` is not defined for CPU (psi.rst: "CPU
    ///   full is undefined at the system level", it reads 0).
    /// - memory: `some`, any task waiting on reclaim, swap-in or thrashing: the
    ///   first sign. `full` comes only when the machine is nearly stuck, too late
    ///   to make room (the case of GNU parallel's `--memsuspend`).
    /// - io: `full`. A single sequential reader keeps `some` high on an
    ///   otherwise idle machine; `full`, all non-idle tasks waiting on I/O at
    ///   once, is when "actual CPU cycles are going to waste" (psi.rst).
    pub fn line(self) -> &'static str {
        match self {
            Source::Cpu | Source::Memory => "some",
            Source::Io => "full",
        }
    }
}

/// Where the pressure files are: the kernel's `/proc/pressure`, whose files are
/// named after their source, or a cgroup v2 directory (`DMON_PRESSURE_DIR`, for
/// tests), whose files are `<source>.pressure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PressureDir {
    pub path: PathBuf,
    pub cgroup: bool,
}

impl PressureDir {
    pub fn kernel() -> PressureDir {
        PressureDir { path: "/proc/pressure".into(), cgroup: false }
    }

    pub fn cgroup(path: PathBuf) -> PressureDir {
        PressureDir { path, cgroup: true }
    }

    /// The pressure file of `source`.
    pub fn file(&self, source: Source) -> PathBuf {
        if self.cgroup { self.path.join(format!("{}.pressure", source.name())) } else { self.path.join(source.name()) }
    }
}

/// The `avg10` of `line` (`some` or `full`) of a pressure file.
pub fn parse_avg10(text: &str, line: &str) -> Option<f64> {
    crate::keyed::pair(crate::keyed::line(text, line)?, "avg10")
}

/// The trigger text on `line` for a high mark in percent (NUL included).
pub fn trigger(line: &str, high: f64) -> String {
    let window = WINDOW.as_micros() as f64;
    // The kernel wants a threshold above 0 and below the window.
    let stall = (window * high / 100.0).clamp(1.0, window - 1.0) as u64;
    format!("{line} {stall} {}\0", WINDOW.as_micros())
}

/// The `total` (µs stalled since boot) of `line` of the pressure file at `path`.
fn read_total(path: &Path, line: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    crate::keyed::pair(crate::keyed::line(&text, line)?, "total")
}

/// Whether tasks stalled for `stalled` µs of `elapsed` is above the high mark
/// (in percent): what decides a trigger that fired within [`SETTLE`] of being
/// armed. Pure, for tests.
pub fn settled_high(stalled: f64, elapsed: Duration, high: f64) -> bool {
    stalled >= elapsed.as_micros() as f64 * high / 100.0
}

/// What one reading of `avg10` after a trigger says: low once it has stayed
/// below the low mark for [`CALM`], else between (with when the calm started;
/// above the high mark it is high again). Pure, for tests.
pub fn calm_check(avg10: f64, marks: Marks, calm_since: Option<Instant>, now: Instant) -> (Level, Option<Instant>) {
    if avg10 >= marks.low {
        let level = if avg10 > marks.high { Level::High } else { Level::Between };
        return (level, None);
    }
    let since = calm_since.unwrap_or(now);
    let level = if now.duration_since(since) >= CALM { Level::Low } else { Level::Between };
    (level, Some(since))
}

/// One pressure source with its trigger armed.
pub struct PressureWatch {
    file: File,
    source: Source,
    path: PathBuf,
    marks: Marks,
    calm_since: Option<Instant>,
    /// When to read `avg10` next: only between a trigger and the calm.
    next_check: Option<Instant>,
    /// The trigger reported POLLERR: its file is gone (a removed cgroup under
    /// `DMON_PRESSURE_DIR`), and it would report POLLERR on every poll.
    gone: bool,
    /// When the trigger was armed and the line's `total` (µs stalled) then,
    /// until [`SETTLE`] has passed.
    armed: Option<(Instant, f64)>,
}

impl PressureWatch {
    /// Opens the pressure file of `source` in `dir` and arms the trigger.
    pub fn open(dir: &PressureDir, source: Source, marks: Marks) -> io::Result<PressureWatch> {
        PressureWatch::open_at(&dir.file(source), source, marks)
    }

    pub fn open_at(path: &Path, source: Source, marks: Marks) -> io::Result<PressureWatch> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| crate::tree::files::context(e, "open", path, ""))?;
        let text = trigger(source.line(), marks.high);
        // The pressure files are not seekable (pwrite and pread fail with
        // ESPIPE): a plain write sets the trigger.
        (&file)
            .write(text.as_bytes())
            .map_err(|e| crate::tree::files::context(e, "write", path, text.trim_end_matches('\0')))?;
        Ok(PressureWatch {
            file,
            source,
            path: path.to_path_buf(),
            marks,
            calm_since: None,
            next_check: None,
            gone: false,
            armed: Some((Instant::now(), read_total(path, source.line()).unwrap_or(0.0))),
        })
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// Becomes readable (POLLPRI) when the pressure crossed the high mark;
    /// nothing once the file is gone.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        (!self.gone).then(|| self.file.as_fd())
    }

    /// The trigger polled POLLERR: the file is gone. Says so once and stops
    /// watching: the source is low from now on, so that it holds nothing paused.
    pub fn on_gone(&mut self) -> Level {
        if !self.gone {
            tracing::warn!("{} pressure: {} is gone, no longer watched", self.source.name(), self.path.display());
        }
        self.gone = true;
        self.next_check = None;
        Level::Low
    }

    /// The trigger fired (the fd polled POLLPRI): high, and watched until calm.
    /// Within [`SETTLE`] of arming, nothing yet: the stall since arming decides
    /// once it has passed (see [`settled_high`]).
    pub fn on_trigger(&mut self, now: Instant) -> Option<Level> {
        match self.armed {
            Some((at, _)) if now < at + SETTLE => {
                self.next_check = Some(at + SETTLE);
                None
            }
            _ => {
                self.armed = None;
                self.calm_since = None;
                self.next_check = Some(now + CHECK);
                Some(Level::High)
            }
        }
    }

    /// When [`PressureWatch::on_deadline`] wants to be called: only after a
    /// trigger, until the calm.
    pub fn deadline(&self) -> Option<Instant> {
        self.next_check
    }

    /// Reads `avg10`; low once it stayed below the low mark for [`CALM`].
    pub fn on_deadline(&mut self, now: Instant) -> Level {
        if let Some((at, before)) = self.armed.take() {
            let stalled = read_total(&self.path, self.source.line()).unwrap_or(before) - before;
            if !settled_high(stalled, now.duration_since(at), self.marks.high) {
                self.next_check = None;
                return Level::Low;
            }
            self.calm_since = None;
            self.next_check = Some(now + CHECK);
            return Level::High;
        }
        let mut buf = [0u8; 256];
        // The trigger's descriptor cannot be re-read from the start: read a
        // fresh one. Only after a trigger, every CHECK.
        let n = File::open(&self.path).and_then(|mut f| f.read(&mut buf)).unwrap_or(0);
        let avg10 = parse_avg10(&String::from_utf8_lossy(&buf[..n]), self.source.line()).unwrap_or(0.0);
        let (level, since) = calm_check(avg10, self.marks, self.calm_since, now);
        self.calm_since = since;
        self.next_check = (level != Level::Low).then_some(now + CHECK);
        level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKS: Marks = Marks { high: 20.0, low: 10.0 };

    #[test]
    fn parses_the_watched_line() {
        let text =
            "some avg10=12.50 avg60=3.00 avg300=0.10 total=12345\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_avg10(text, "some"), Some(12.5));
        assert_eq!(parse_avg10(text, "full"), Some(1.0));
        assert_eq!(parse_avg10("full avg10=1.00\n", "some"), None);
    }

    #[test]
    fn each_source_has_its_line_and_file() {
        let lines: Vec<_> = Source::ALL.iter().map(|s| (s.name(), s.line())).collect();
        assert_eq!(lines, [("cpu", "some"), ("memory", "some"), ("io", "full")]);
        assert_eq!(Source::from_name("memory"), Some(Source::Memory));
        assert_eq!(Source::from_name("disk"), None);
        assert_eq!(PressureDir::kernel().file(Source::Io), Path::new("/proc/pressure/io"));
        assert_eq!(PressureDir::cgroup("/c".into()).file(Source::Io), Path::new("/c/io.pressure"));
    }

    #[test]
    fn trigger_is_a_share_of_the_window() {
        assert_eq!(trigger("some", 40.0), "some 800000 2000000\0");
        assert_eq!(trigger("full", 0.0), "full 1 2000000\0");
        assert_eq!(trigger("some", 100.0), "some 1999999 2000000\0");
    }

    #[test]
    fn a_trigger_just_after_arming_counts_only_with_the_stall_to_match() {
        let five = Duration::from_secs(5);
        // Linux's spurious report: a millisecond stalled.
        assert!(!settled_high(1_000.0, five, 90.0));
        assert!(settled_high(4_600_000.0, five, 90.0));
        assert!(!settled_high(4_400_000.0, five, 90.0));
    }

    #[test]
    fn low_only_after_a_calm_period() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        assert_eq!(calm_check(30.0, MARKS, None, t0), (Level::High, None));
        assert_eq!(calm_check(15.0, MARKS, None, t0), (Level::Between, None));
        let (level, since) = calm_check(5.0, MARKS, None, s(2));
        assert_eq!((level, since), (Level::Between, Some(s(2))));
        // Pressure back up: the calm starts over.
        assert_eq!(calm_check(11.0, MARKS, since, s(4)), (Level::Between, None));
        let (_, since) = calm_check(5.0, MARKS, None, s(6));
        assert_eq!(calm_check(5.0, MARKS, since, s(10)).0, Level::Between);
        assert_eq!(calm_check(5.0, MARKS, since, s(12)).0, Level::Low);
    }

    #[test]
    fn watcher_is_high_on_a_trigger_and_low_when_calm() {
        let path = Path::new("/proc/pressure/cpu");
        if !path.exists() {
            return crate::skip(&format!("this kernel has no {}", path.display()));
        }
        let mut watch = PressureWatch::open_at(path, Source::Cpu, Marks { high: 100.0, low: 101.0 }).unwrap();
        let t0 = Instant::now();
        assert_eq!(watch.deadline(), None, "no wake-up while there is no pressure");
        // A report just after arming waits for SETTLE, and a stall below the
        // mark since then (none can reach 100%) makes it nothing.
        assert_eq!(watch.on_trigger(t0), None);
        let settle = watch.deadline().expect("a look once SETTLE has passed");
        assert!(settle > t0 && settle <= t0 + SETTLE);
        assert_eq!(watch.on_deadline(settle), Level::Low);
        assert_eq!(watch.deadline(), None);
        let t0 = t0 + SETTLE;
        assert_eq!(watch.on_trigger(t0), Some(Level::High));
        assert_eq!(watch.deadline(), Some(t0 + CHECK));
        // With a low mark above any possible avg10, calm is immediate but must last CALM.
        assert_eq!(watch.on_deadline(t0 + CHECK), Level::Between);
        assert_eq!(watch.on_deadline(t0 + CHECK + CALM), Level::Low);
        assert_eq!(watch.deadline(), None);
    }

    /// The real kernel: threads that keep more tasks runnable than there are
    /// CPUs make the trigger fire within a couple of windows.
    #[test]
    fn the_kernel_trigger_fires_under_cpu_pressure() {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        if !Path::new("/proc/pressure/cpu").exists() {
            return crate::skip("this kernel has no /proc/pressure/cpu");
        }
        let path = Path::new("/proc/pressure/cpu");
        let watch = PressureWatch::open_at(path, Source::Cpu, Marks { high: 5.0, low: 1.0 }).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let spinners: Vec<_> = (0..cpus * 3)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let mut fds = [PollFd::new(watch.fd().unwrap(), PollFlags::POLLPRI)];
        let fired = poll(&mut fds, PollTimeout::try_from(10_000).unwrap()).unwrap_or(0) > 0;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in spinners {
            let _ = s.join();
        }
        assert!(fired, "no PSI event within 10 s of pressure");
        assert!(fds[0].revents().unwrap().contains(PollFlags::POLLPRI));
    }
}
