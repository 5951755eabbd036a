//! Limits on the trees (`--memory-max`, `--memory-high`, `--pids-max`,
//! `--cpu-quota`), the out-of-memory event, and the leaves that count the
//! peaks of every run. The command's limits bound the log command's tree too,
//! each tree in a leaf of its own with the same values: an OOM kill takes the
//! run of one of them and nothing else, and never dmon, whose `supervisor` leaf
//! has no limit.
//!
//! Where a controller comes from, for each one a limit needs:
//! - cgroup v2, when dmon's cgroup `dmon.PID` is offered it (its
//!   `cgroup.controllers` lists it, because the parent enabled it in its own
//!   `cgroup.subtree_control`): dmon enables it in `dmon.PID/cgroup.subtree_control`
//!   (its own subtree, holding no process itself) and writes the limit into the
//!   `cmd` and `log` leaves. A pure v2 host that does not offer it was not delegated the
//!   controller: that is an error naming it, never a silent run without the limit;
//! - else a cgroup v1 hierarchy of that controller (the hybrid layout, where the
//!   v2 tree has no controllers, and v1-only hosts): dmon makes `dmon.PID/cmd`
//!   (and `log`) under its own cgroup of that hierarchy, fresh for every run (so its peaks
//!   and OOM state are the run's), and the child joins it between fork and exec
//!   through a `cgroup.procs` opened before the fork, as it joins its v2 leaf;
//! - with signals, nothing can enforce a limit: dmon refuses to start.
//!
//! Without any limit the peaks are still wanted: where dmon's v2 cgroup is not
//! offered the memory or pids controller, a v1 hierarchy of it gives per-run
//! leaves as above, with nothing written into them (their
//! `memory.max_usage_in_bytes` and `pids.peak` start at 0 in a fresh leaf), as
//! long as dmon's own cgroup there is one it may write (detect::refusal); else
//! the peaks are left out and nothing is said.
//!
//! Files (Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/memory.rst,
//! pids.rst, scheduler/sched-bwc.rst): v2 `memory.max`, `memory.high`,
//! `pids.max`, `cpu.max` ("QUOTA PERIOD"), `memory.oom.group` (an OOM kill takes
//! the whole leaf), `memory.events` (`oom_kill`, announced by POLLPRI); v1
//! `memory.limit_in_bytes`, `pids.max`, `cpu.cfs_quota_us`/`cpu.cfs_period_us`,
//! and the OOM notification: an eventfd registered with `cgroup.event_control`
//! for `memory.oom_control`. v1 has no `memory.high` and no group kill: dmon
//! refuses the first and kills the rest of the run itself after an OOM.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::TreeError;
use super::detect::V1Hierarchy;
use super::files::{self, Access};
use super::home::Home;

/// The period of `--cpu-quota`, in microseconds (systemd's, and the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// What the command's tree may use. Empty: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    pub pids_max: Option<u64>,
    /// Microseconds of CPU time per [`CPU_PERIOD_US`].
    pub cpu_quota_us: Option<u64>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    /// The controllers the limits need, each with the option that needs it.
    fn needs(&self) -> Vec<(&'static str, &'static str)> {
        let mut needs = Vec::new();
        if self.memory_max.is_some() {
            needs.push(("memory", "--memory-max"));
        } else if self.memory_high.is_some() {
            needs.push(("memory", "--memory-high"));
        }
        if self.pids_max.is_some() {
            needs.push(("pids", "--pids-max"));
        }
        if self.cpu_quota_us.is_some() {
            needs.push(("cpu", "--cpu-quota"));
        }
        needs
    }

    /// The options given, for a message: "--memory-max and --pids-max".
    pub fn options(&self) -> String {
        let mut names: Vec<&str> = self.needs().iter().map(|(_, option)| *option).collect();
        if self.memory_max.is_some() && self.memory_high.is_some() {
            names.insert(1, "--memory-high");
        }
        names.join(" and ")
    }

    /// The v2 files of the command's leaf and their values.
    fn v2_files(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(v) = self.memory_max {
            out.push(("memory.max", v.to_string()));
        }
        if let Some(v) = self.memory_high {
            out.push(("memory.high", v.to_string()));
        }
        if self.memory_max.is_some() || self.memory_high.is_some() {
            out.push(("memory.oom.group", "1".into()));
        }
        if let Some(v) = self.pids_max {
            out.push(("pids.max", v.to_string()));
        }
        if let Some(q) = self.cpu_quota_us {
            out.push(("cpu.max", format!("{q} {CPU_PERIOD_US}")));
        }
        out
    }

    /// The v1 files of `controller`'s leaf and their values, in order.
    fn v1_files(&self, controller: &str) -> Vec<(&'static str, String)> {
        match controller {
            "memory" => self.memory_max.map(|v| ("memory.limit_in_bytes", v.to_string())).into_iter().collect(),
            "pids" => self.pids_max.map(|v| ("pids.max", v.to_string())).into_iter().collect(),
            "cpu" => match self.cpu_quota_us {
                Some(q) => vec![("cpu.cfs_period_us", CPU_PERIOD_US.to_string()), ("cpu.cfs_quota_us", q.to_string())],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// The controllers dmon enables in its own v2 subtree wherever it can, limits
/// or not: they only count (the peaks and the bytes of the usage record) until
/// a limit is written. cpu is left out: its weights would share the CPU
/// between the command, the log command and dmon by leaf rather than by thread.
const ACCOUNTING: [&str; 3] = ["memory", "pids", "io"];

/// Enables `ACCOUNTING`'s controllers for the leaves of `home` (dmon's v2
/// cgroup), in its `cgroup.subtree_control`. Those the parent has but does not
/// pass on (a container's cgroup, a delegated service's) are first enabled in
/// the parent, when it is dmon's to write: not the root (the kernel exempts it
/// from "no internal processes", so a success there would not prove dmon
/// alone), and under `--cgroup-parent` only when delegated. There the kernel
/// refuses (EBUSY) while the parent holds any process but dmon's, which sits in
/// its `supervisor` leaf by now. A refusal only costs the peaks.
pub fn enable_accounting(home: &Home, explicit_parent: bool) {
    let offered = controllers(home.dir());
    if let Some(parent) = home.dir().parent() {
        let has = controllers(parent);
        let wanted: Vec<&str> =
            ACCOUNTING.into_iter().filter(|c| !offered.iter().any(|o| o == c) && has.iter().any(|h| h == c)).collect();
        let root = !parent.join("cgroup.events").exists();
        let ours = !root && (!explicit_parent || super::detect::is_delegated(parent));
        if !wanted.is_empty() && ours {
            if let Err(e) = home.enable_in_parent(&wanted) {
                tracing::debug!("no accounting controllers from {}: {}", parent.display(), crate::io_reason(&e));
            }
        }
    }
    let enable: Vec<String> =
        controllers(home.dir()).iter().filter(|c| ACCOUNTING.contains(&c.as_str())).map(|c| format!("+{c}")).collect();
    if enable.is_empty() {
        return;
    }
    if let Err(e) = files::write(&home.dir().join("cgroup.subtree_control"), &enable.join(" ")) {
        tracing::debug!("no accounting controllers: {}", crate::io_reason(&e));
    }
}

/// Parses `--cpu-quota`: a percentage of one CPU, `25%` or `25`, above 100 for
/// more than one CPU (`250%`), with at most one decimal; into microseconds per
/// [`CPU_PERIOD_US`]. The kernel's smallest quota is 1 ms, 1 %.
pub fn parse_cpu_quota(text: &str) -> Result<u64, String> {
    let number = text.strip_suffix('%').unwrap_or(text);
    let bad = || format!("'{text}' is not a percentage of a CPU (expected a number such as 25% or 150%)");
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(if number.starts_with('-') { format!("'{text}' is negative") } else { bad() });
    }
    let percent: f64 = number.parse().map_err(|_| bad())?;
    if !(1.0..=100_000.0).contains(&percent) {
        return Err(format!("'{text}' is out of range (from 1% to 100000%)"));
    }
    Ok((percent * (CPU_PERIOD_US as f64) / 100.0).round() as u64)
}

/// Where the trees' cgroup v2 leaves live, for [`open`].
pub struct V2Place<'a> {
    /// dmon's cgroup (`.../dmon.PID`).
    pub home: &'a Home,
    /// Whether the host is pure v2 (no v1 hierarchy to fall back on).
    pub pure: bool,
}

/// The kernel refuses a v1 quota that is a larger share of a CPU than the
/// quota of a cgroup above: `e` with the nearest such cgroup named.
fn above_v1_quota(e: io::Error, leaf: &Path, quota_us: u64) -> io::Error {
    let share = |dir: &Path| -> Option<f64> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok()?.trim().parse::<f64>().ok();
        Some(read("cpu.cfs_quota_us")? / read("cpu.cfs_period_us")?)
    };
    let ours = quota_us as f64 / CPU_PERIOD_US as f64;
    // Up to the hierarchy's root, whose files are the last that exist.
    let mut above = leaf.ancestors().skip(1).map_while(|dir| Some((dir, share(dir)?)));
    match above.find(|&(_, theirs)| theirs > 0.0 && theirs < ours) {
        Some((dir, theirs)) => {
            let percent = (theirs * 1000.0).round() / 10.0;
            io::Error::new(e.kind(), format!("{e} (above the quota of {}: {percent}% of a CPU)", dir.display()))
        }
        None => e,
    }
}

/// A tree's v1 leaf in one hierarchy, made afresh for every run.
struct V1Leaf {
    /// `dmon.PID` in that hierarchy, locked while dmon runs, shared by the
    /// trees' leaves.
    home: Arc<Home>,
    controllers: Vec<String>,
    /// This run's directory (`cmd` or `log`) and its `cgroup.procs`, open
    /// until the child has joined it.
    run: Option<(PathBuf, Option<File>)>,
}

/// How an out-of-memory kill is learnt of.
enum Oom {
    /// `memory.events` of the v2 leaf, and its `oom_kill` count so far.
    V2 { events: File, path: PathBuf, kills: u64 },
    /// An eventfd registered for this run's v1 `memory.oom_control`.
    V1 { eventfd: Option<OwnedFd> },
}

/// The limits and peak leaves of one tree, in place.
pub struct Enforcer {
    resources: Resources,
    /// The leaf's name (`cmd`, `log`) in each v1 hierarchy.
    name: &'static str,
    v1: Vec<V1Leaf>,
    oom: Option<Oom>,
    /// The v1 leaves were made for the first run by [`open`] (so a value the
    /// kernel refuses is an error at start) and not used yet.
    fresh: bool,
}

/// Puts `resources` on the trees named `leaves` (`cmd`, and `log` with a log
/// command): in v2 where dmon's cgroup is offered the controller, else in v1
/// hierarchies, and makes v1 leaves for the peaks of each run where v2 cannot
/// count them. One [`Enforcer`] per leaf, in order, or none at all where there
/// is neither a limit nor a v1 leaf to keep. An error is one line naming what
/// cannot be had; nothing was started yet.
pub fn open(
    resources: Resources,
    v2: Option<V2Place>,
    v1: &[V1Hierarchy],
    leaves: &[&'static str],
) -> Result<Option<Vec<Enforcer>>, TreeError> {
    let (offered, refused) = match &v2 {
        Some(place) => offer(place, &resources),
        None => (Vec::new(), None),
    };
    let mut in_v2 = Vec::new();
    let mut in_v1: Vec<&V1Hierarchy> = Vec::new();
    let mut lacking = Vec::new();
    for (controller, option) in resources.needs() {
        if offered.iter().any(|c| c == controller) {
            in_v2.push(controller);
        } else if let Some(h) = v1.iter().find(|h| h.has(controller)) {
            if controller == "memory" && resources.memory_high.is_some() {
                return Err(TreeError::NoMemoryHigh);
            }
            if !in_v1.contains(&h) {
                in_v1.push(h);
            }
        } else {
            lacking.push((controller, option));
        }
    }
    if !lacking.is_empty() {
        return Err(TreeError::Missing(missing(&lacking, v2.as_ref(), &offered, refused.as_deref())));
    }
    let failed = |err| TreeError::Limits { options: resources.options(), err };
    let mut homes: Vec<(&V1Hierarchy, Arc<Home>)> = Vec::new();
    for h in in_v1 {
        homes.push((h, Arc::new(Home::create_plain(&h.own).map_err(failed)?)));
    }
    // The peaks v2 cannot count, from v1 leaves that hold no limit; not where
    // `DMON_USAGE=0` leaves out the usage record (to measure what it costs).
    let counting = std::env::var_os("DMON_USAGE").is_none_or(|v| v != "0");
    for controller in PEAKS.iter().filter(|c| counting && !offered.iter().any(|o| o == *c)) {
        let Some(h) = v1.iter().find(|h| h.has(controller)) else { continue };
        if homes.iter().any(|(made, _)| *made == h) {
            continue;
        }
        if let Some(no) = super::detect::refusal(&h.own, &h.mount) {
            tracing::debug!("no v1 {controller} leaves for the peaks: {no}");
            continue;
        }
        match Home::create_plain(&h.own) {
            Ok(home) => homes.push((h, Arc::new(home))),
            Err(e) => tracing::debug!("no v1 {controller} leaves for the peaks: {}", crate::io_reason(&e)),
        }
    }
    if resources.is_empty() && homes.is_empty() {
        return Ok(None);
    }
    let mut enforcers = Vec::new();
    for name in leaves {
        let mut enforcer = Enforcer { resources, name, v1: Vec::new(), oom: None, fresh: false };
        if let Some(place) = v2.as_ref().filter(|_| !in_v2.is_empty()) {
            enforcer.open_v2(place, &in_v2).map_err(failed)?;
        }
        for (h, home) in &homes {
            if h.has("memory") && resources.memory_max.is_some() {
                enforcer.oom = Some(Oom::V1 { eventfd: None });
            }
            enforcer.v1.push(V1Leaf { home: home.clone(), controllers: h.controllers.clone(), run: None });
        }
        enforcer.prepare_run().map_err(failed)?;
        enforcer.fresh = true;
        enforcers.push(enforcer);
    }
    Ok(Some(enforcers))
}

/// The controllers whose v1 leaves give the peaks of the usage record.
const PEAKS: [&str; 2] = ["memory", "pids"];

impl Enforcer {
    /// Enables `controllers` in dmon's own subtree and writes the limits into
    /// the tree's leaf.
    fn open_v2(&mut self, place: &V2Place, controllers: &[&str]) -> io::Result<()> {
        let enable: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
        files::write(&place.home.dir().join("cgroup.subtree_control"), &enable.join(" "))?;
        let leaf = place.home.leaf(self.name);
        for (name, value) in self.resources.v2_files() {
            if controllers.contains(&name.split('.').next().unwrap_or("")) {
                files::write(&leaf.join(name), &value)?;
            }
        }
        if controllers.contains(&"memory") {
            let path = leaf.join("memory.events");
            let events = files::open(&path, Access::Read)?;
            let kills = crate::keyed::number(&files::read_fd(&events)?, "oom_kill").unwrap_or(0);
            self.oom = Some(Oom::V2 { events, path, kills });
        }
        Ok(())
    }

    /// Before a start: a fresh v1 leaf per hierarchy, with the limits written
    /// and the OOM notification armed. Returns the `cgroup.procs` descriptors
    /// the child writes "0" into.
    pub fn prepare_run(&mut self) -> io::Result<Vec<RawFd>> {
        if std::mem::take(&mut self.fresh) {
            return Ok(self.v1.iter().filter_map(|v1| Some(v1.run.as_ref()?.1.as_ref()?.as_raw_fd())).collect());
        }
        let mut fds = Vec::new();
        for v1 in &mut self.v1 {
            // The last run's leaf: empty now that its tree is.
            v1.run = None;
            let dir = v1.home.leaf(self.name);
            let limited = v1.controllers.iter().any(|c| !self.resources.v1_files(c).is_empty());
            match make_v1_leaf(&dir, &v1.controllers, &self.resources, &mut self.oom) {
                Ok(procs) => {
                    fds.push(procs.as_raw_fd());
                    v1.run = Some((dir, Some(procs)));
                }
                Err(e) if limited => return Err(e),
                // A leaf that only counts: the run starts without its peaks.
                Err(e) => tracing::debug!("no peaks from {}: {}", dir.display(), crate::io_reason(&e)),
            }
        }
        Ok(fds)
    }

    /// The child has joined this run's leaves: their `cgroup.procs` are closed,
    /// so that a run holds the same descriptors from start to end.
    pub fn started(&mut self) {
        for v1 in &mut self.v1 {
            if let Some((_, procs)) = v1.run.as_mut() {
                *procs = None;
            }
        }
    }

    /// The directories whose peak files (`memory.max_usage_in_bytes`,
    /// `pids.peak`) describe this run, beside the v2 leaf.
    pub fn run_dirs(&self) -> Vec<&Path> {
        self.v1.iter().filter_map(|v1| v1.run.as_ref().map(|(dir, _)| dir.as_path())).collect()
    }

    /// The descriptor to poll for an OOM kill, and the events to poll it for.
    pub fn oom_fd(&self) -> Option<(BorrowedFd<'_>, bool)> {
        match self.oom.as_ref()? {
            Oom::V2 { events, .. } => Some((events.as_fd(), true)),
            Oom::V1 { eventfd } => eventfd.as_ref().map(|fd| (fd.as_fd(), false)),
        }
    }

    /// After the OOM descriptor woke the loop: whether the kernel killed a
    /// process of the run for lack of memory since the last look.
    pub fn oom_killed(&mut self) -> bool {
        match self.oom.as_mut() {
            Some(Oom::V2 { events, path, kills }) => {
                let now = match files::read_fd(events) {
                    Ok(text) => crate::keyed::number(&text, "oom_kill").unwrap_or(*kills),
                    Err(e) => {
                        tracing::warn!("cannot read {}: {}", path.display(), crate::io_reason(&e));
                        return false;
                    }
                };
                std::mem::replace(kills, now) < now
            }
            Some(Oom::V1 { eventfd: Some(fd) }) => {
                let mut count = [0u8; 8];
                nix::unistd::read(fd, &mut count).is_ok_and(|n| n == 8 && u64::from_ne_bytes(count) > 0)
            }
            _ => false,
        }
    }
}

/// Makes the v1 leaf `dir` afresh with the limits of `controllers` written and
/// the OOM notification armed; returns its `cgroup.procs`.
fn make_v1_leaf(dir: &Path, controllers: &[String], resources: &Resources, oom: &mut Option<Oom>) -> io::Result<File> {
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| files::context(e, "rmdir", dir, ""))?;
    }
    std::fs::create_dir(dir).map_err(|e| files::context(e, "mkdir", dir, ""))?;
    for controller in controllers {
        for (name, value) in resources.v1_files(controller) {
            files::write(&dir.join(name), &value).map_err(|e| match resources.cpu_quota_us {
                Some(quota) if name == "cpu.cfs_quota_us" && e.kind() == io::ErrorKind::InvalidInput => {
                    above_v1_quota(e, dir, quota)
                }
                _ => e,
            })?;
        }
    }
    if controllers.iter().any(|c| c == "memory") {
        if let Some(Oom::V1 { eventfd }) = oom.as_mut() {
            *eventfd = Some(arm_v1_oom(dir)?);
        }
    }
    files::open(&dir.join("cgroup.procs"), Access::Write)
}

/// Registers an eventfd for the OOM notification of the v1 memory leaf `dir`
/// (cgroup-v1/memory.rst, "Memory thresholds" and "OOM Control").
fn arm_v1_oom(dir: &Path) -> io::Result<OwnedFd> {
    let control = files::open(&dir.join("memory.oom_control"), Access::Read)?;
    // SAFETY: eventfd takes integers and returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by nothing else.
    let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let line = format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd());
    files::write(&dir.join("cgroup.event_control"), &line)?;
    // The registration holds its own reference to the control file.
    Ok(eventfd)
}

/// The controllers dmon's v2 cgroup is offered, after enabling in the parent
/// those the parent has but does not pass on (for a parent that is dmon's,
/// delegated to it, and holds no other process); and why that failed, if it did.
fn offer(place: &V2Place, resources: &Resources) -> (Vec<String>, Option<String>) {
    let offered = controllers(place.home.dir());
    let parent = place.home.dir().parent().map(controllers).unwrap_or_default();
    let wanted: Vec<&str> = resources
        .needs()
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !offered.iter().any(|o| o == c) && parent.iter().any(|p| p == c))
        .collect();
    if wanted.is_empty() {
        return (offered, None);
    }
    match place.home.enable_in_parent(&wanted) {
        Ok(()) => (controllers(place.home.dir()), None),
        Err(e) => (offered, Some(crate::io_reason(&e))),
    }
}

/// The controllers a v2 cgroup is offered (its `cgroup.controllers`).
fn controllers(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    text.split_whitespace().map(str::to_string).collect()
}

/// The message for controllers (with the options that need them) that neither
/// hierarchy offers. `refused`: why enabling them in the parent failed.
fn missing(lacking: &[(&str, &str)], v2: Option<&V2Place>, offered: &[String], refused: Option<&str>) -> String {
    let options: Vec<&str> = lacking.iter().map(|(_, o)| *o).collect();
    let names: Vec<&str> = lacking.iter().map(|(c, _)| *c).collect();
    let delegate = names.join(" ");
    let names = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => delegate.clone(),
    };
    let options = options.join(", ");
    let (what, is) = if lacking.len() == 1 { ("controller", "is") } else { ("controllers", "are") };
    match v2 {
        Some(place) if place.pure => {
            let home = place.home.dir();
            let parent = home.parent().unwrap_or(home);
            if let Some(why) = refused {
                return format!(
                    "{options}: cannot enable the {names} {what} in {}/cgroup.subtree_control: {why} (dmon must be \
                     the only process of the cgroup it enables controllers in)",
                    parent.display()
                );
            }
            let has = if offered.is_empty() { "none".to_string() } else { offered.join(" ") };
            format!(
                "{options}: the {names} {what} {is} not delegated to {} (it is offered: {has}); enable them in \
                 its parent's cgroup.subtree_control, or run dmon in a delegated cgroup (systemd: Delegate=yes, \
                 or Delegate={delegate})",
                parent.display()
            )
        }
        _ => format!("{options}: no cgroup hierarchy here has the {names} {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota_is_a_percentage_of_one_cpu() {
        assert_eq!(parse_cpu_quota("25%"), Ok(25_000));
        assert_eq!(parse_cpu_quota("25"), Ok(25_000));
        assert_eq!(parse_cpu_quota("250%"), Ok(250_000));
        assert_eq!(parse_cpu_quota("12.5%"), Ok(12_500));
        assert!(parse_cpu_quota("0.5%").unwrap_err().contains("out of range"));
        assert!(parse_cpu_quota("-5%").unwrap_err().contains("negative"));
        assert!(parse_cpu_quota("lots").unwrap_err().contains("not a percentage"));
        assert!(parse_cpu_quota("%").is_err());
    }

    #[test]
    fn limits_map_to_the_files_of_each_version() {
        let r =
            Resources { memory_max: Some(64 << 20), memory_high: None, pids_max: Some(8), cpu_quota_us: Some(25_000) };
        let v2: Vec<(&str, String)> = r.v2_files();
        assert!(v2.contains(&("memory.max", "67108864".into())));
        assert!(v2.contains(&("memory.oom.group", "1".into())));
        assert!(v2.contains(&("cpu.max", "25000 100000".into())));
        assert_eq!(r.v1_files("pids"), [("pids.max", "8".to_string())]);
        assert_eq!(r.v1_files("cpu")[1], ("cpu.cfs_quota_us", "25000".to_string()));
        assert_eq!(r.options(), "--memory-max and --pids-max and --cpu-quota");
    }
}
