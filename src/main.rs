//! dmon's entry point: parse, validate and open everything, detach, supervise.
//! Every error before the supervision starts is one line on stderr and exit 2.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use dmon::cli::{self, Options, Parsed};
use dmon::creds::{Credentials, CredsError};
use dmon::daemon::{self, DetachError};
use dmon::limits::LimitError;
use dmon::pidfile::{PidFile, PidFileError};
use dmon::psi::PressureWatch;
use dmon::status::StatusFile;
use dmon::supervisor::{Forward, Proc, Supervisor, Usage};
use dmon::task::{Policy, Terminal};
use dmon::watch::{LoadWatch, Watch, Watcher};

/// Bad options or files: nothing was started.
const EXIT_USAGE: u8 = 2;
/// Supervision itself failed.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    daemon::hold_stop_signals();
    // One malloc arena: dmon's threads are short helpers (a thaw), and an arena
    // of their own would stay, with its touched pages, for dmon's whole life.
    // SAFETY: mallopt changes allocator settings, which is safe before any other
    // thread exists to allocate meanwhile.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1)
    };
    let options = match parse() {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("dmon: {}", dmon::logging::one_line(&e.to_string()));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    dmon::logging::init(options.verbose);
    let (code, message) = match run(*options) {
        Ok(code) => return ExitCode::from(code.clamp(0, 255) as u8),
        Err(Failure::Usage(message)) => (EXIT_USAGE, message),
        Err(Failure::Runtime(message)) => (EXIT_FAILURE, message),
        Err(Failure::Fatal(code, message)) => (code.clamp(1, 255) as u8, message),
    };
    // Detached and not yet ready, this reaches the shell that started dmon.
    daemon::fail(code, &message);
    ExitCode::from(code)
}

/// The command line and `DMON_OPTIONS`, parsed in a frame of its own: one
/// inlined into `main` would stay on the stack, with every other start-up
/// local, for as long as dmon supervises (docs/benchmarks.md, "Memory per
/// service").
#[inline(never)]
fn parse() -> Result<Parsed, cli::UsageError> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    cli::parse(&args, std::env::var_os("DMON_OPTIONS").as_deref())
}

enum Failure {
    Usage(String),
    Runtime(String),
    /// A command that could not be executed at its first start (126, 127).
    Fatal(i32, String),
}

impl Failure {
    /// The same failure, its message said of `option`.
    fn of(self, option: &str) -> Failure {
        match self {
            Failure::Usage(m) => Failure::Usage(format!("{option}: {m}")),
            Failure::Runtime(m) => Failure::Runtime(format!("{option}: {m}")),
            Failure::Fatal(code, m) => Failure::Fatal(code, format!("{option}: {m}")),
        }
    }
}

/// `result.of("--cap")?`: the error as its failure, said of an option.
trait Of<T> {
    fn of(self, option: &str) -> Result<T, Failure>;
}

impl<T, E: Into<Failure>> Of<T> for Result<T, E> {
    fn of(self, option: &str) -> Result<T, Failure> {
        self.map_err(|e| e.into().of(option))
    }
}

/// A user, a group or a capability that cannot be had: nothing was started.
impl From<CredsError> for Failure {
    fn from(e: CredsError) -> Failure {
        Failure::Usage(e.to_string())
    }
}

/// A pid file that cannot be had, or is another dmon's.
impl From<PidFileError> for Failure {
    fn from(e: PidFileError) -> Failure {
        Failure::Usage(e.to_string())
    }
}

/// A limit above what dmon may set.
impl From<LimitError> for Failure {
    fn from(e: LimitError) -> Failure {
        Failure::Usage(e.to_string())
    }
}

/// The trees cannot be had as asked (`--tree`, `--cgroup-parent`, a limit).
impl From<dmon::tree::TreeError> for Failure {
    fn from(e: dmon::tree::TreeError) -> Failure {
        Failure::Usage(e.to_string())
    }
}

/// Detaching failed: a failure of dmon itself, not of what it was given.
impl From<DetachError> for Failure {
    fn from(e: DetachError) -> Failure {
        Failure::Runtime(e.to_string())
    }
}

/// What is checked and opened before dmon detaches, so that a mistake is an
/// error on the caller's terminal and nothing was started.
struct Prepared {
    cmd_creds: Option<Credentials>,
    log_creds: Option<Credentials>,
    pid_file: Option<PidFile>,
    status: Option<StatusFile>,
    watchers: Vec<Watcher>,
    control: Option<dmon::control::Control>,
}

fn prepare(opts: &Options) -> Result<Prepared, Failure> {
    let usage = Failure::Usage;
    let keep_caps = dmon::creds::KeptCaps::parse(&opts.caps).of("--cap")?;
    let shared = opts.shared(keep_caps);
    let resolve =
        |name: &str, spec: &Option<dmon::creds::UserSpec>| Credentials::for_command(spec.as_ref(), &shared).of(name);
    let cmd_creds = resolve("-u/--cmd-user", &opts.cmd_user)?;
    let log_creds = resolve("-U/--log-user", &opts.log_user)?;
    if let Some(dir) = &opts.work_dir {
        if !dir.is_dir() {
            return Err(usage(format!("-W/--work-dir: '{}' is not a directory", dir.display())));
        }
    }
    if let Some(dir) = &opts.cgroup_parent {
        if !dir.is_dir() {
            return Err(usage(format!("--cgroup-parent: '{}' is not a directory", dir.display())));
        }
    }
    let users: Vec<(&str, &dmon::creds::Ids)> = [("-u/--cmd-user", &cmd_creds), ("-U/--log-user", &log_creds)]
        .into_iter()
        .filter_map(|(option, creds)| Some((option, creds.as_ref()?.ids.as_ref()?)))
        .collect();
    let pid_file = opts.pid_file.as_deref().map(|path| PidFile::lock(path, &users)).transpose()?;
    let status = match &opts.status_file {
        Some(path) => Some(StatusFile::open(path, opts.status_format).map_err(|e| {
            usage(format!("-I/--write-info: cannot open '{}': {}", path.display(), dmon::io_reason(&e)))
        })?),
        None => None,
    };

    // -L's watcher reads the load before the first start; each pressure
    // watcher arms its trigger here, so that a missing file is a usage error.
    let load = |marks| Watcher::Load(LoadWatch::new(&opts.load_file, marks));
    let mut watchers: Vec<Watcher> = opts.load.map(load).into_iter().collect();
    for &(source, marks) in &opts.pressure {
        let watch = PressureWatch::open(&opts.pressure_dir, source, marks).map_err(|e| {
            let file = opts.pressure_dir.file(source);
            usage(format!("--pressure: cannot watch {}: {}", file.display(), dmon::io_reason(&e)))
        })?;
        watchers.push(Watcher::Pressure(watch));
    }

    for limit in &opts.limits {
        limit.check().of("-r/--limit")?;
    }
    // Before detaching: a directory another supervisor holds is an error here.
    let control = match &opts.control {
        Some(dir) => Some(
            dmon::control::Control::open(dir, opts.log_command.is_some())
                .map_err(|e| usage(format!("--control: {e}")))?,
        ),
        None => None,
    };
    Ok(Prepared { cmd_creds, log_creds, pid_file, status, watchers, control })
}

fn run(opts: Options) -> Result<i32, Failure> {
    let (supervisor, pid_file) = start(opts)?;
    let code = (*supervisor).run().map_err(|(code, message)| match code {
        1 => Failure::Runtime(message),
        code => Failure::Fatal(code, message),
    })?;
    if let Some(pid_file) = pid_file {
        pid_file.remove();
    }
    Ok(code)
}

/// Everything up to the supervision: checked, opened, detached, the pid file
/// written. Not inlined into [`run`], so that its locals leave the stack
/// before the loop starts.
#[inline(never)]
fn start(mut opts: Options) -> Result<(Box<Supervisor>, Option<PidFile>), Failure> {
    let usage = Failure::Usage;
    let Prepared { cmd_creds, log_creds, mut pid_file, mut status, watchers, control } = prepare(&opts)?;
    // As PID 1 dmon runs as with -n: it stays, and keeps its directory.
    if opts.daemon && daemon::stay_as_init() {
        opts.daemon = false;
    }
    opts.work_in_root_as_a_daemon().map_err(|e| usage(format!("cannot read the working directory: {e}")))?;
    // Whether dmon is the terminal's foreground job (not `dmon -n cmd &`): only
    // then is the command made the terminal's foreground group.
    let stdin = dmon::standard_input();
    let foreground = !opts.daemon
        && nix::unistd::isatty(stdin).unwrap_or(false)
        && nix::unistd::tcgetpgrp(stdin).is_ok_and(|group| group == nix::unistd::getpgrp());

    if opts.daemon {
        daemon::detach()?;
    }
    // Written by the daemon itself before anything is started, so a pid file that
    // cannot be written leaves nothing running.
    if let Some(pid_file) = pid_file.as_mut() {
        pid_file
            .write(std::process::id())
            .map_err(|e| usage(format!("-p/--pid-file: cannot write: {}", dmon::io_reason(&e))))?;
    }
    if let Some(dir) = &opts.work_dir {
        std::env::set_current_dir(dir).map_err(|e| {
            Failure::Runtime(format!("-W/--work-dir: cannot change to '{}': {}", dir.display(), dmon::io_reason(&e)))
        })?;
    }

    let tty = foreground.then(|| dmon::standard_input().as_raw_fd());

    let policy = Policy {
        once: opts.once,
        max_respawns: opts.max_respawns,
        interval: opts.interval,
        timeout: opts.timeout,
        grace: opts.grace,
        backoff_max: opts.backoff_max,
        terminal: tty.map(|_| Terminal {
            hup_to_cmd: opts.cmd_sigs,
            hup_forwarded: opts.cmd_sigs || (opts.log_sigs && opts.log_command.is_some()),
        }),
    };
    let forward = |on: bool| if on { Forward::Signals } else { Forward::Nothing };
    let trees = open_trees(&opts, status.as_mut())?;
    let cmd = Proc::new("cmd", opts.command.clone(), policy, trees.cmd, cmd_creds, forward(opts.cmd_sigs));
    let log = opts.log_command.clone().zip(trees.log).map(|(argv, tree)| {
        let policy = Policy::forever(opts.grace, opts.backoff_max);
        Proc::new("log", argv, policy, tree, log_creds, forward(opts.log_sigs))
    });
    // `DMON_USAGE=0` leaves runs unmeasured, to measure what the usage record costs.
    let usage = match std::env::var_os("DMON_USAGE") {
        Some(v) if v == "0" => Usage::Unmeasured,
        _ => Usage::Measured,
    };
    let mut supervisor =
        Supervisor::new(cmd, log, status, &opts, tty, usage).map_err(|e| Failure::Runtime(dmon::io_reason(&e)))?;
    supervisor.watch = Watch::new(watchers);
    supervisor.control = control;
    Ok((Box::new(supervisor), pid_file))
}

/// The command's and the log command's trees; says how they are controlled
/// (a warning when it is with signals only, unasked) and records it.
fn open_trees(opts: &Options, status: Option<&mut StatusFile>) -> Result<dmon::tree::Trees, Failure> {
    let with_log = opts.log_command.is_some();
    let trees = dmon::tree::open(opts.tree, opts.cgroup_parent.as_deref(), with_log, opts.resources)?;
    if trees.home.is_none() && opts.tree == dmon::cli::TreeChoice::Auto {
        // The weaker control is the user's to know about, not only with -v.
        tracing::warn!("no writable cgroup, controlling the tree with signals: {}", trees.choice.why);
    } else {
        tracing::info!("tree: {}: {}", trees.choice.backend.name(), trees.choice.why);
    }
    let (signals, refused) = dmon::tree::pidfd::method();
    if let Some(errno) = refused {
        // Never a silent no-op: each signal is then a kill() of a pid whose start
        // time was checked just before (src/tree/pidfd.rs).
        tracing::warn!(
            "pidfd_open or pidfd_send_signal refused ({}): signalling with kill(), each pid's start time checked just before",
            errno.desc()
        );
    }
    if let Some(status) = status {
        status.record(dmon::status::Record::Tree {
            backend: trees.choice.backend.name(),
            cgroup: trees.home.as_deref(),
            signals: signals.name(),
            reason: &trees.choice.why,
        });
    }
    Ok(trees)
}
