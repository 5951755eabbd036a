//! What one run of a command cost: wall and CPU time, time paused, and where the
//! layout gives them the peak number of tasks, the peak memory and the bytes of
//! block I/O. The `exit` record of the status stream carries it (docs/status.md).
//!
//! Sources:
//! - a cgroup v2 leaf: `cpu.stat` (`user_usec`, `system_usec`), a core file that
//!   exists without the cpu controller. It counts for the leaf's whole life, and
//!   dmon reuses the leaf for every run, so a run's CPU is the difference between
//!   a reading just before the start and one once the tree is empty: exact for
//!   every process that was in the leaf. `io.stat`, `pids.peak` and
//!   `memory.peak` only exist where the io, pids and memory controllers are
//!   enabled for the leaf; without them the fields are left out, never 0. Where
//!   the run is in a v1 memory or pids leaf (made fresh for each run, for its
//!   limits or, where v2 has no such controller, for its peaks alone), its
//!   `memory.max_usage_in_bytes` and `pids.peak` give the peaks;
//! - otherwise (signals, and the v1 freezer, whose leaf has no cpuacct
//!   controller): the rusage of what dmon reaped for the run, from `wait4`. The
//!   leader's includes every descendant it waited for, and orphans come back
//!   to dmon, a child subreaper, which reaps them too. Processes whose parent
//!   ignored SIGCHLD are reaped by the kernel without a trace, and an orphan
//!   reaped after the tree was found empty counts for the next run.
//!   `ru_inblock`/`ru_oublock` give the block I/O (512-byte units, as in
//!   `/proc/PID/io`); the rusage has no peak of the tree.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::keyed;

/// One run's usage. A field the layout cannot give is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// From the start to the moment the tree was empty, paused time included.
    pub wall: Duration,
    pub cpu_user: Duration,
    pub cpu_system: Duration,
    /// How long the tree was frozen (`-L`, `--pressure`) within the run.
    pub paused: Duration,
    pub tasks_peak: Option<u64>,
    pub memory_peak: Option<u64>,
    pub io_read: Option<u64>,
    pub io_write: Option<u64>,
}

/// The cumulative counters of a cgroup v2 leaf at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    user_usec: u64,
    system_usec: u64,
    /// `rbytes` and `wbytes` of `io.stat`, summed over the devices.
    io: Option<(u64, u64)>,
}

impl Counters {
    /// None where the leaf has no `cpu.stat` (not a cgroup v2 leaf, or gone).
    fn read(leaf: &Path) -> Option<Counters> {
        let cpu = std::fs::read_to_string(leaf.join("cpu.stat")).ok()?;
        let io = std::fs::read_to_string(leaf.join("io.stat")).ok().map(|text| io_bytes(&text));
        Some(Counters {
            user_usec: keyed::number(&cpu, "user_usec")?,
            system_usec: keyed::number(&cpu, "system_usec")?,
            io,
        })
    }
}

/// `rbytes` and `wbytes` of an `io.stat`, one line per device:
/// `8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0`.
fn io_bytes(text: &str) -> (u64, u64) {
    (keyed::sum(text, "rbytes"), keyed::sum(text, "wbytes"))
}

/// A peak file of the leaf (`pids.peak`, `memory.peak`), open for the run.
struct Peak {
    file: File,
    /// The value at the start when the file could not be reset for this run
    /// (only `memory.peak` can, since Linux 6.12, per open file): a peak above it
    /// is this run's; one that did not grow is some earlier run's, and unknown.
    before: Option<u64>,
}

impl Peak {
    fn open(leaf: &Path, name: &str) -> Option<Peak> {
        let path = leaf.join(name);
        match File::options().read(true).write(true).open(&path) {
            Ok(file) if (&file).write_all(b"reset\n").is_ok() => return Some(Peak { file, before: None }),
            // Without the controller: no such file (the common case, one system call).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            _ => {}
        }
        let mut file = File::open(&path).ok()?;
        let before = read_number(&mut file)?;
        Some(Peak { file, before: Some(before) })
    }

    fn read(&mut self) -> Option<u64> {
        let now = read_number(&mut self.file)?;
        match self.before {
            Some(before) if before > 0 && now <= before => None,
            _ => Some(now),
        }
    }
}

fn read_number(file: &mut File) -> Option<u64> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The peak files of a run, where its cgroups have them.
struct Peaks {
    tasks: Option<Peak>,
    memory: Option<Peak>,
}

/// Measures one run, from just before its start to its empty tree.
pub struct Meter {
    started: Instant,
    paused_since: Option<Instant>,
    paused: Duration,
    /// The v2 leaf's counters at the start.
    start: Option<Counters>,
    peaks: Peaks,
    /// What `wait4` gave for the processes reaped during the run.
    reaped: Rusage,
}

#[derive(Debug, Clone, Copy, Default)]
struct Rusage {
    user: Duration,
    system: Duration,
    blocks_in: u64,
    blocks_out: u64,
}

fn duration(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.clamp(0, 999_999) * 1000) as u32)
}

/// How a run starts: its paused time counts from the start when frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begins {
    Running,
    Frozen,
}

impl Meter {
    /// Begins a run about to start in the cgroup `leaf` (None: no cgroup).
    /// `limits`: the run's v1 memory and pids leaves (and any other of its
    /// limits), fresh for the run, whose peaks count where the v2 leaf has none.
    pub fn start(leaf: Option<&Path>, limits: &[&Path], begins: Begins, now: Instant) -> Meter {
        let peak = |names: [&str; 2]| {
            let dirs = leaf.into_iter().chain(limits.iter().copied());
            dirs.flat_map(|d| names.map(|n| (d, n))).find_map(|(d, n)| Peak::open(d, n))
        };
        let peaks = Peaks {
            tasks: peak(["pids.peak", "pids.peak"]),
            memory: peak(["memory.peak", "memory.max_usage_in_bytes"]),
        };
        Meter {
            started: now,
            paused_since: (begins == Begins::Frozen).then_some(now),
            paused: Duration::ZERO,
            start: leaf.and_then(Counters::read),
            peaks,
            reaped: Rusage::default(),
        }
    }

    /// The tree was frozen.
    pub fn pause(&mut self, now: Instant) {
        self.paused_since.get_or_insert(now);
    }

    /// The tree was thawed.
    pub fn resume(&mut self, now: Instant) {
        if let Some(since) = self.paused_since.take() {
            self.paused += now.saturating_duration_since(since);
        }
    }

    /// A process of the run was reaped with this rusage.
    pub fn reaped(&mut self, ru: &libc::rusage) {
        let r = &mut self.reaped;
        r.user += duration(ru.ru_utime);
        r.system += duration(ru.ru_stime);
        r.blocks_in += ru.ru_inblock.max(0) as u64;
        r.blocks_out += ru.ru_oublock.max(0) as u64;
    }

    /// The run's tree is empty: what it used. `leaf` as for [`Meter::start`].
    pub fn finish(&mut self, leaf: Option<&Path>, now: Instant) -> Usage {
        self.resume(now);
        let mut usage =
            Usage { wall: now.saturating_duration_since(self.started), paused: self.paused, ..Usage::default() };
        let end = leaf.and_then(Counters::read);
        usage.tasks_peak = self.peaks.tasks.as_mut().and_then(Peak::read);
        usage.memory_peak = self.peaks.memory.as_mut().and_then(Peak::read);
        match (self.start, end) {
            (Some(start), Some(end)) => {
                usage.cpu_user = Duration::from_micros(end.user_usec.saturating_sub(start.user_usec));
                usage.cpu_system = Duration::from_micros(end.system_usec.saturating_sub(start.system_usec));
                if let (Some((r0, w0)), Some((r1, w1))) = (start.io, end.io) {
                    (usage.io_read, usage.io_write) = (Some(r1.saturating_sub(r0)), Some(w1.saturating_sub(w0)));
                }
            }
            // No cgroup, or it failed during the run (the tree fell back to signals).
            _ => {
                let r = self.reaped;
                (usage.cpu_user, usage.cpu_system) = (r.user, r.system);
                if task_io_accounting() {
                    (usage.io_read, usage.io_write) = (Some(r.blocks_in * 512), Some(r.blocks_out * 512));
                }
            }
        }
        usage
    }
}

/// Whether the kernel counts block I/O per task (CONFIG_TASK_IO_ACCOUNTING);
/// without it the rusage's block counts are always 0, so they are left out.
fn task_io_accounting() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| Path::new("/proc/self/io").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_come_from_cpu_stat_and_io_stat() {
        let dir = std::env::temp_dir().join(format!("dmon-usage-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Counters::read(&dir), None);
        std::fs::write(dir.join("cpu.stat"), "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnice_usec 0\n")
            .unwrap();
        assert_eq!(Counters::read(&dir), Some(Counters { user_usec: 2000, system_usec: 1000, io: None }));
        std::fs::write(dir.join("io.stat"), "8:0 rbytes=4096 wbytes=512 rios=1 wios=1\n8:16 rbytes=1 wbytes=2\n")
            .unwrap();
        assert_eq!(Counters::read(&dir).unwrap().io, Some((4097, 514)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paused_time_is_the_sum_of_the_frozen_spans() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut meter = Meter::start(None, &[], Begins::Frozen, t0);
        meter.resume(t0 + s(2));
        meter.pause(t0 + s(5));
        meter.pause(t0 + s(6));
        meter.resume(t0 + s(8));
        meter.resume(t0 + s(9));
        meter.pause(t0 + s(10));
        let usage = meter.finish(None, t0 + s(11));
        assert_eq!((usage.wall, usage.paused), (s(11), s(6)));
        assert_eq!((usage.tasks_peak, usage.memory_peak), (None, None));
    }
}
