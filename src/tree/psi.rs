//! CPU pressure (PSI, Documentation/accounting/psi.rst) as the load signal: a
//! trigger on `/proc/pressure/cpu` wakes dmon within one window of the pressure
//! rising above the high mark, and nothing wakes it while there is none.
//!
//! - A trigger is the write of `some <stall µs> <window µs>` (with its NUL: the
//!   kernel drops the last byte written); `poll(POLLPRI)` then reports, at most
//!   once per window, that tasks stalled for longer than the threshold within
//!   the window. The poll itself re-arms it. Unprivileged users need a window
//!   that is a multiple of 2 s, so the window is 2 s for everyone.
//! - There is no "pressure dropped" event. While the tree is paused, `avg10` is
//!   read every [`CHECK`]; dmon resumes once it has stayed below the low mark
//!   for [`CALM`]. A paused tree adds no pressure of its own, so this measures
//!   everybody else.
//! - The marks are percentages of wall time during which some task waited for
//!   a CPU: `--pressure 40` pauses when tasks stalled more than 0.8 s of a 2 s
//!   window.

use std::fs::File;
use std::io;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::task::Event;

/// The trigger's window.
pub const WINDOW: Duration = Duration::from_secs(2);
/// While paused, `avg10` is read this often.
pub const CHECK: Duration = Duration::from_secs(2);
/// How long `avg10` must stay below the low mark before the tree is resumed.
pub const CALM: Duration = Duration::from_secs(6);

/// Pause above `high` percent of stalled time, resume below `low`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureMarks {
    pub high: f64,
    pub low: f64,
}

/// The `avg10` of the `some` line of a pressure file.
pub fn parse_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace().find_map(|field| field.strip_prefix("avg10=")?.parse().ok())
}

/// The trigger text for a high mark in percent (NUL included).
pub fn trigger(high: f64) -> String {
    let window = WINDOW.as_micros() as f64;
    // The kernel wants a threshold above 0 and below the window.
    let stall = (window * high / 100.0).clamp(1.0, window - 1.0) as u64;
    format!("some {stall} {}\0", WINDOW.as_micros())
}

/// What the watcher decides from one reading while paused: resume, or keep
/// waiting (with when the calm started). Pure, for tests.
pub fn calm_check(avg10: f64, low: f64, calm_since: Option<Instant>, now: Instant) -> (bool, Option<Instant>) {
    if avg10 >= low {
        return (false, None);
    }
    let since = calm_since.unwrap_or(now);
    (now.duration_since(since) >= CALM, Some(since))
}

pub struct PressureWatch {
    file: File,
    path: std::path::PathBuf,
    marks: PressureMarks,
    paused: bool,
    calm_since: Option<Instant>,
    next_check: Option<Instant>,
}

impl PressureWatch {
    /// Opens `/proc/pressure/cpu` and arms the trigger.
    pub fn open(marks: PressureMarks) -> io::Result<PressureWatch> {
        PressureWatch::open_at(Path::new("/proc/pressure/cpu"), marks)
    }

    pub fn open_at(path: &Path, marks: PressureMarks) -> io::Result<PressureWatch> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| super::files::context(e, "open", path, ""))?;
        let text = trigger(marks.high);
        // The pressure files are not seekable (pwrite and pread fail with
        // ESPIPE): a plain write sets the trigger.
        (&file)
            .write(text.as_bytes())
            .map_err(|e| super::files::context(e, "write", path, text.trim_end_matches('\0')))?;
        Ok(PressureWatch { file, path: path.to_path_buf(), marks, paused: false, calm_since: None, next_check: None })
    }

    /// Becomes readable (POLLPRI) when the pressure crossed the high mark.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The trigger fired (the fd polled POLLPRI).
    pub fn on_trigger(&mut self, now: Instant) -> Option<Event> {
        self.calm_since = None;
        if self.paused {
            return None;
        }
        self.paused = true;
        self.next_check = Some(now + CHECK);
        Some(Event::Pause)
    }

    /// When [`PressureWatch::on_deadline`] wants to be called: only while paused.
    pub fn deadline(&self) -> Option<Instant> {
        self.next_check
    }

    /// Reads `avg10` while paused; resumes once it stayed low for [`CALM`].
    pub fn on_deadline(&mut self, now: Instant) -> Option<Event> {
        if !self.paused {
            self.next_check = None;
            return None;
        }
        let mut buf = [0u8; 256];
        // The trigger's descriptor cannot be re-read from the start: read a
        // fresh one. Only while paused, every CHECK.
        let n = File::open(&self.path).and_then(|mut f| f.read(&mut buf)).unwrap_or(0);
        let avg10 = parse_avg10(&String::from_utf8_lossy(&buf[..n])).unwrap_or(0.0);
        let (resume, since) = calm_check(avg10, self.marks.low, self.calm_since, now);
        self.calm_since = since;
        if resume {
            self.paused = false;
            self.calm_since = None;
            self.next_check = None;
            return Some(Event::Resume);
        }
        self.next_check = Some(now + CHECK);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_some_line() {
        let text =
            "some avg10=12.50 avg60=3.00 avg300=0.10 total=12345\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_avg10(text), Some(12.5));
        assert_eq!(parse_avg10("full avg10=1.00\n"), None);
    }

    #[test]
    fn trigger_is_a_share_of_the_window() {
        assert_eq!(trigger(40.0), "some 800000 2000000\0");
        assert_eq!(trigger(0.0), "some 1 2000000\0");
        assert_eq!(trigger(100.0), "some 1999999 2000000\0");
    }

    #[test]
    fn resumes_only_after_a_calm_period() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        assert_eq!(calm_check(30.0, 10.0, None, t0), (false, None));
        let (resume, since) = calm_check(5.0, 10.0, None, s(2));
        assert_eq!((resume, since), (false, Some(s(2))));
        // Pressure back up: the calm starts over.
        assert_eq!(calm_check(11.0, 10.0, since, s(4)), (false, None));
        let (_, since) = calm_check(5.0, 10.0, None, s(6));
        assert!(!calm_check(5.0, 10.0, since, s(10)).0);
        assert!(calm_check(5.0, 10.0, since, s(12)).0);
    }

    #[test]
    fn watcher_pauses_on_a_trigger_and_resumes_when_calm() {
        let path = Path::new("/proc/pressure/cpu");
        if !path.exists() {
            eprintln!("skipped: this kernel has no {}", path.display());
            return;
        }
        let mut watch = PressureWatch::open_at(path, PressureMarks { high: 50.0, low: 101.0 }).unwrap();
        let t0 = Instant::now();
        assert_eq!(watch.deadline(), None, "no wake-up while there is no pressure");
        assert_eq!(watch.on_trigger(t0), Some(Event::Pause));
        assert_eq!(watch.on_trigger(t0), None, "already paused");
        assert_eq!(watch.deadline(), Some(t0 + CHECK));
        // With a low mark above any possible avg10, calm is immediate but must last CALM.
        assert_eq!(watch.on_deadline(t0 + CHECK), None);
        assert_eq!(watch.on_deadline(t0 + CHECK + CALM), Some(Event::Resume));
        assert_eq!(watch.deadline(), None);
    }

    /// The real kernel: threads that keep more tasks runnable than there are
    /// CPUs make the trigger fire within a couple of windows.
    #[test]
    fn the_kernel_trigger_fires_under_cpu_pressure() {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        if !Path::new("/proc/pressure/cpu").exists() {
            eprintln!("skipped: this kernel has no /proc/pressure/cpu");
            return;
        }
        let watch = PressureWatch::open(PressureMarks { high: 5.0, low: 1.0 }).unwrap();
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
        let mut fds = [PollFd::new(watch.fd(), PollFlags::POLLPRI)];
        let fired = poll(&mut fds, PollTimeout::try_from(10_000).unwrap()).unwrap_or(0) > 0;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in spinners {
            let _ = s.join();
        }
        assert!(fired, "no PSI event within 10 s of pressure");
        assert!(fds[0].revents().unwrap().contains(PollFlags::POLLPRI));
    }
}
