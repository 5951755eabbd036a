//! What pauses the command tree: the load average (`-L`/`-l`) and pressure
//! (`--pressure`, one watcher per source, see [`crate::psi`]). Each
//! watcher says whether its source is above its high mark, below its low mark
//! or between them; the [`Gate`] turns what they say into the task's `Pause` and
//! `Resume`: pause when the first source goes high, resume once every source is
//! low. A source between its marks keeps things as they are.
//!
//! The watchers are given the files they read ([`LoadFile`],
//! [`crate::psi::PressureDir`]): the kernel's, or the stand-ins that tests name
//! with `DMON_LOADAVG_FILE` and `DMON_PRESSURE_DIR` (read once, by [`crate::cli`]).

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::marks::{Level, Marks};
use crate::psi::PressureWatch;
use crate::task::{Cause, Event};

/// The file the load watcher reads, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFile {
    pub path: PathBuf,
    pub period: Duration,
}

impl LoadFile {
    /// The kernel updates /proc/loadavg every 5 seconds (LOAD_FREQ in
    /// kernel/sched/loadavg.c); reading it more often re-reads the same value.
    pub fn kernel() -> LoadFile {
        LoadFile { path: "/proc/loadavg".into(), period: Duration::from_secs(5) }
    }

    /// A file read instead, for tests (`DMON_LOADAVG_FILE`): every 100 ms, so
    /// that tests run quickly.
    pub fn stand_in(path: PathBuf) -> LoadFile {
        LoadFile { path, period: Duration::from_millis(100) }
    }
}

/// Watches the load average for `-L`/`-l`.
pub struct LoadWatch {
    marks: Marks,
    file: LoadFile,
    next: Instant,
}

impl LoadWatch {
    pub fn new(file: &LoadFile, marks: Marks) -> LoadWatch {
        LoadWatch { marks, file: file.clone(), next: Instant::now() }
    }

    /// Reads the 1-minute load average (nothing when it cannot be read).
    fn check(&mut self, now: Instant) -> Option<Level> {
        self.next = now + self.file.period;
        let text = std::fs::read_to_string(&self.file.path).ok()?;
        let load: f64 = text.split_whitespace().next()?.parse().ok()?;
        Some(self.marks.level(load))
    }
}

/// One source of "pause": the load average, read on a timer, or a pressure
/// trigger, polled and then read on a timer until calm.
pub enum Watcher {
    Load(LoadWatch),
    Pressure(PressureWatch),
}

impl Watcher {
    /// What a pause it asks for is reported as.
    fn cause(&self) -> Cause {
        match self {
            Watcher::Load(_) => Cause::Load,
            Watcher::Pressure(_) => Cause::Pressure,
        }
    }

    /// As in dmon's messages.
    pub fn name(&self) -> &'static str {
        match self {
            Watcher::Load(_) => "load",
            Watcher::Pressure(p) => p.source().name(),
        }
    }

    /// A descriptor to poll for POLLPRI, if the source has one.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Watcher::Load(_) => None,
            Watcher::Pressure(p) => p.fd(),
        }
    }

    /// When the watcher wants to read its source again.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Watcher::Load(l) => Some(l.next),
            Watcher::Pressure(p) => p.deadline(),
        }
    }

    /// The descriptor polled ready.
    fn on_ready(&mut self, ready: Ready, now: Instant) -> Option<Level> {
        match (self, ready) {
            (Watcher::Load(_), _) => None,
            (Watcher::Pressure(p), Ready::Fired) => p.on_trigger(now),
            (Watcher::Pressure(p), Ready::Gone) => Some(p.on_gone()),
        }
    }

    /// The deadline has come.
    fn on_deadline(&mut self, now: Instant) -> Option<Level> {
        match self {
            Watcher::Load(l) => l.check(now),
            Watcher::Pressure(p) => Some(p.on_deadline(now)),
        }
    }
}

/// How a watcher's descriptor polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// POLLPRI: the trigger fired.
    Fired,
    /// POLLERR: the file is gone.
    Gone,
}

/// Combines the sources' levels into `Pause` and `Resume`. Every source starts
/// low: a pressure source is until its trigger fires, and the load is read at
/// once.
#[derive(Debug, Default)]
pub struct Gate {
    levels: Vec<Level>,
    paused: bool,
}

impl Gate {
    pub fn new(sources: usize) -> Gate {
        Gate { levels: vec![Level::Low; sources], paused: false }
    }

    /// Source `i`, a `cause` of pauses, is at `level` now: the event for the
    /// task, if any.
    pub fn update(&mut self, i: usize, level: Level, cause: Cause) -> Option<Event> {
        self.levels[i] = level;
        if !self.paused && level == Level::High {
            self.paused = true;
            return Some(Event::Pause(cause));
        }
        if self.paused && self.levels.iter().all(|l| *l == Level::Low) {
            self.paused = false;
            return Some(Event::Resume);
        }
        None
    }
}

/// Every watcher and their gate.
#[derive(Default)]
pub struct Watch {
    watchers: Vec<Watcher>,
    gate: Gate,
}

impl Watch {
    pub fn new(watchers: Vec<Watcher>) -> Watch {
        let gate = Gate::new(watchers.len());
        Watch { watchers, gate }
    }

    /// The descriptors to poll, each with the number of its watcher.
    pub fn fds(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        self.watchers.iter().enumerate().filter_map(|(i, w)| Some((i, w.fd()?))).collect()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.watchers.iter().filter_map(Watcher::deadline).min()
    }

    /// The descriptors of the watchers in `ready` (by number) polled ready, and
    /// the watchers whose deadline has come read their source: what the task
    /// must do, in order.
    pub fn on_wake(&mut self, ready: &[(usize, Ready)], now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        for (i, watcher) in self.watchers.iter_mut().enumerate() {
            let how = ready.iter().find(|(n, _)| *n == i).map(|(_, how)| *how);
            let fired = how.and_then(|how| watcher.on_ready(how, now));
            let due = watcher.deadline().is_some_and(|d| d <= now);
            let read = if due { watcher.on_deadline(now) } else { None };
            for level in [fired, read].into_iter().flatten() {
                if self.gate.levels[i] != level {
                    tracing::debug!("{}: {level:?}", watcher.name());
                }
                events.extend(self.gate.update(i, level, watcher.cause()));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_names_the_source_that_rose() {
        let mut gate = Gate::new(2);
        assert_eq!(gate.update(1, Level::High, Cause::Pressure), Some(Event::Pause(Cause::Pressure)));
        assert_eq!(gate.update(0, Level::High, Cause::Load), None, "already paused");
    }

    #[test]
    fn the_first_high_pauses_and_all_low_resume() {
        use Level::*;
        let mut gate = Gate::new(3);
        assert_eq!(gate.update(0, Between, Cause::Load), None, "between keeps it running");
        assert_eq!(gate.update(1, High, Cause::Load), Some(Event::Pause(Cause::Load)));
        assert_eq!(gate.update(0, High, Cause::Load), None, "already paused");
        assert_eq!(gate.update(1, Low, Cause::Load), None, "another source is still high");
        assert_eq!(gate.update(0, Between, Cause::Load), None, "between keeps it paused");
        assert_eq!(gate.update(2, Low, Cause::Load), None);
        assert_eq!(gate.update(0, Low, Cause::Load), Some(Event::Resume));
        assert_eq!(gate.update(0, Low, Cause::Load), None, "already running");
        assert_eq!(gate.update(2, High, Cause::Load), Some(Event::Pause(Cause::Load)));
    }
}
