//! The clap definition of dmon's options: [`Args`], whose doc comments are
//! `--help`, the requirements clap checks ([`command`]), and the value parsers
//! that turn times, sizes, counts, loads, users and limits into values.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser};

use crate::creds::{SpecError, UserSpec};
use crate::limits::Limit;
use crate::marks::Marks;
use crate::psi::Source;
use crate::status::Format as StatusFormat;
use crate::tree::detect::TreeChoice;
use crate::units;

const EXAMPLES: &str = "\
Examples:
  A root-run service that drops to its own user, logging to a file:
    dmon -p /run/crond.pid -u log:wheel -e cron -f -- dlog /var/log/cron.log
  A long job in the foreground that must run until it succeeds:
    dmon -n -1 rsync -avz ~/ /backup/homedir
  A parallel build, paused as a whole while the load is above 3.5:
    dmon -n -1 -L 3.5 -l 1 make -j8

Pressure (--pressure) is read from PSI's some line for cpu (system-wide full is not
defined for CPU) and memory (a task waiting on reclaim: the first sign; full comes when
the machine is nearly stuck), and from the full line for io (one sequential reader keeps
some high on an idle machine; full means nothing could run for waiting on I/O).

Status lines (-I): cmd|log start PID, exit PID STATUS, stop PID, signal PID SIG,
timeout PID, pause PID, resume PID (a pause by pressure or by hand adds
reason=pressure or reason=manual).
Control (--control DIR): runit's sv drives dmon as it drives runsv; sv pause and
sv cont freeze and thaw the whole tree, held until cont whatever the load does:
    dmon --control /etc/dmon/sv/web -- nginx -g 'daemon off;'
    sv status /etc/dmon/sv/web; sv -w 30 down /etc/dmon/sv/web; sv up /etc/dmon/sv/web
Exit status: 0 after a clean stop by TERM or INT; with -1 or -m the command's last
status (its exit code, or 128+N when killed by signal N, so usually 143 after a TERM),
and 137 with -m when its last run was OOM-killed under --memory-max; 127 when the command
or the log command is not found at its first start, 126 when it cannot be executed;
2 for a bad option, value, user, file or directory, before anything starts; 1 when
supervision itself fails. Without -n the detaching parent exits 0 once the command runs.";

/// The options as clap parses them; `parse` makes them [`super::Options`].
#[derive(Parser, Debug)]
#[command(
    name = "dmon",
    version,
    about = "Run a command, restart it when it dies, and pipe its output into a log command.",
    override_usage = "dmon [options] command [args...] [-- logcommand [args...]]",
    after_help = EXAMPLES,
    args_override_self = true,
    disable_help_subcommand = true
)]
pub struct Args {
    /// Read options from FILE (only as the first option); see dmon(8) for the format
    #[arg(short = 'C', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Append one status line per event to PATH (a file, a FIFO, a terminal, /dev/stdout)
    #[arg(short = 'I', long = "write-info", value_name = "PATH")]
    pub write_info: Option<PathBuf>,
    /// The format of -I's records: DMon's text lines, or JSON Lines
    #[arg(long = "status-format", value_name = "FORMAT", value_enum, default_value_t = StatusFormat::Text)]
    pub status_format: StatusFormat,
    /// Write dmon's pid to PATH, locked while dmon runs
    #[arg(short = 'p', long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Be controlled by runit's sv: keep DIR/supervise/ (DIR/log/supervise/ for the log command) as runsv does
    #[arg(long = "control", value_name = "DIR")]
    pub control: Option<PathBuf>,
    /// Change to DIR before starting the commands (default: / for a daemon, unchanged with -n)
    #[arg(short = 'W', long = "work-dir", value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// After a successful (zero) exit, wait TIME before starting again
    #[arg(short = 'i', long, value_name = "TIME", allow_hyphen_values = true, conflicts_with = "once")]
    #[arg(value_parser = units::parse_time)]
    pub interval: Option<Duration>,
    /// Stop the whole command tree when a run lasts longer than TIME, then start again
    #[arg(short = 't', long, value_name = "TIME", allow_hyphen_values = true)]
    #[arg(value_parser = time_above_zero)]
    pub timeout: Option<Duration>,
    /// Pause the whole command tree while the load average is above N
    #[arg(short = 'L', long = "load-high", value_name = "N", allow_hyphen_values = true)]
    #[arg(value_parser = load_above_zero)]
    pub load_high: Option<f64>,
    /// Resume once the load average is below N (default: half of -L)
    #[arg(short = 'l', long = "load-low", value_name = "N", allow_hyphen_values = true)]
    #[arg(value_parser = units::parse_load)]
    pub load_low: Option<f64>,
    /// Set NAME to VALUE, or remove NAME without =VALUE (repeatable)
    #[arg(short = 'E', long = "environ", value_name = "NAME[=VALUE]", action = ArgAction::Append)]
    #[arg(value_parser = parse_assignment)]
    pub environ: Vec<Assignment>,
    /// Run the command as USER, with the listed groups
    #[arg(short = 'u', long = "cmd-user", value_name = "USER[:GROUP...]")]
    #[arg(value_parser = parse_user)]
    pub cmd_user: Option<UserSpec>,
    /// Run the log command as USER, with the listed groups
    #[arg(short = 'U', long = "log-user", value_name = "USER[:GROUP...]")]
    #[arg(value_parser = parse_user)]
    pub log_user: Option<UserSpec>,
    /// Primary group of the command (with -u)
    #[arg(short = 'g', long = "cmd-group", value_name = "GROUP")]
    pub cmd_group: Option<String>,
    /// Primary group of the log command (with -U)
    #[arg(short = 'G', long = "log-group", value_name = "GROUP")]
    pub log_group: Option<String>,
    /// Stay in the foreground, sharing the terminal with the command
    #[arg(short = 'n', long = "no-daemon")]
    pub no_daemon: bool,
    /// Stop once the command exits with status 0
    #[arg(short = '1', long = "once")]
    pub once: bool,
    /// Start the command again at most N times, then exit with its last status
    #[arg(short = 'm', long = "max-respawns", value_name = "N", allow_hyphen_values = true)]
    #[arg(value_parser = units::parse_count)]
    pub max_respawns: Option<u64>,
    /// Send the command's standard error to the log command too
    #[arg(short = 'e', long = "stderr-redir")]
    pub stderr_redir: bool,
    /// Forward CONT, ALRM, QUIT, USR1, USR2 and HUP to the command
    #[arg(short = 's', long = "cmd-sigs")]
    pub cmd_sigs: bool,
    /// Forward CONT, ALRM, QUIT, USR1, USR2 and HUP to the log command
    #[arg(short = 'S', long = "log-sigs")]
    pub log_sigs: bool,
    /// Set a resource limit NAME=VALUE for both commands (repeatable; -r help lists them)
    #[arg(short = 'r', long = "limit", value_name = "NAME=VALUE", action = ArgAction::Append)]
    #[arg(value_parser = parse_limit)]
    pub limit: Vec<LimitOrHelp>,
    /// Keep this capability after dropping to -u/-U's user (repeatable), e.g. NET_BIND_SERVICE
    #[arg(long = "cap", value_name = "CAP", action = ArgAction::Append)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the command and the log command (--cap sets it too)
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// With --cap, leave no_new_privs off: a set-user-ID root program may then regain uid 0
    #[arg(long = "allow-new-privs", conflicts_with = "no_new_privs")]
    pub allow_new_privs: bool,
    /// The file mode creation mask of both commands, in octal (default 022 for -u's and -U's)
    #[arg(long = "umask", value_name = "MODE", value_parser = parse_umask)]
    pub umask: Option<u32>,
    /// Start both commands from a clean environment: TERM, LANG, LANGUAGE, LC_*, TZ, the user's
    /// USER, LOGNAME and HOME, a default PATH, and -E
    #[arg(long = "clean-env")]
    pub clean_env: bool,
    /// How long a stopped tree gets between TERM and KILL
    #[arg(long = "grace", value_name = "TIME", default_value = "5", allow_hyphen_values = true)]
    #[arg(value_parser = units::parse_time)]
    pub grace: Duration,
    /// The longest wait between restarts of a command that keeps failing
    #[arg(long = "backoff-max", value_name = "TIME", default_value = "60", allow_hyphen_values = true)]
    #[arg(value_parser = units::parse_time)]
    pub backoff_max: Duration,
    /// How to control the command tree: a cgroup, or signals where none can be had
    #[arg(long = "tree", value_name = "BACKEND", value_enum, default_value_t = TreeChoice::Auto)]
    pub tree: TreeChoice,
    /// Make dmon's cgroups under DIR instead of under dmon's own cgroup
    #[arg(long = "cgroup-parent", value_name = "DIR")]
    pub cgroup_parent: Option<PathBuf>,
    /// Pause the whole command tree while cpu (the default), memory or io pressure is above HIGH percent, resume
    /// once below LOW (default: half); once per source, also with -L
    #[arg(long = "pressure", value_name = "[cpu:|memory:|io:]HIGH[:LOW]", allow_hyphen_values = true)]
    #[arg(action = ArgAction::Append, value_parser = parse_pressure)]
    pub pressure: Vec<(Source, Marks)>,
    /// Kill the command's tree (and, apart, the log command's) when its memory use reaches SIZE (one OOM event
    /// ends the whole run)
    #[arg(long = "memory-max", value_name = "SIZE", allow_hyphen_values = true)]
    #[arg(value_parser = size_above_zero)]
    pub memory_max: Option<u64>,
    /// Throttle the command's tree (and, apart, the log command's) when its memory use is above SIZE (cgroup v2 only)
    #[arg(long = "memory-high", value_name = "SIZE", allow_hyphen_values = true)]
    #[arg(value_parser = size_above_zero)]
    pub memory_high: Option<u64>,
    /// Let the command's tree (and, apart, the log command's) have at most N processes and threads
    #[arg(long = "pids-max", value_name = "N", allow_hyphen_values = true)]
    #[arg(value_parser = count_above_zero)]
    pub pids_max: Option<u64>,
    /// Give the command's tree (and, apart, the log command's) at most PERCENT of one CPU (above 100% for more than
    /// one)
    #[arg(long = "cpu-quota", value_name = "PERCENT", allow_hyphen_values = true)]
    #[arg(value_parser = crate::tree::resources::parse_cpu_quota)]
    pub cpu_quota: Option<u64>,
    /// Log more about what dmon does (repeat for more; DMON_LOG=debug does the same)
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// The command, its arguments, and after a lone -- the log command and its arguments
    #[arg(trailing_var_arg = true, value_name = "COMMAND", value_parser = clap::value_parser!(OsString))]
    pub command: Vec<OsString>,
}

/// An `-E` item: NAME and VALUE, or NAME alone to remove it.
pub type Assignment = (String, Option<String>);

/// An `-r` item: a limit, or `None` for `-r help`.
pub type LimitOrHelp = Option<Limit>;

/// Options that need another, by id: declared to clap by [`command`], and both
/// named in the error (clap's own names only the missing one).
pub(super) const NEEDS: [(&str, &str); 4] =
    [("load_low", "load_high"), ("cmd_group", "cmd_user"), ("log_group", "log_user"), ("allow_new_privs", "cap")];

/// dmon's clap command: [`Args`] with the requirements of [`NEEDS`].
pub fn command() -> clap::Command {
    NEEDS.iter().fold(Args::command(), |cli, &(id, needed)| cli.mut_arg(id, |a| a.requires(needed)))
}

/// `-t`: a time above zero.
fn time_above_zero(text: &str) -> Result<Duration, String> {
    match units::parse_time(text)? {
        Duration::ZERO => Err(format!("'{text}' is too short (expected a time above zero)")),
        time => Ok(time),
    }
}

/// `--memory-max`, `--memory-high`: a size above zero.
fn size_above_zero(text: &str) -> Result<u64, String> {
    match units::parse_size(text)? {
        0 => Err(format!("'{text}' is too small (expected a size above zero)")),
        size => Ok(size),
    }
}

/// `--pids-max`: a count above zero.
fn count_above_zero(text: &str) -> Result<u64, String> {
    match units::parse_count(text) {
        Ok(0) => Err(format!("'{text}' is too small (expected 1 or more)")),
        Err(_) if units::is_negative(text) => Err(format!("'{text}' is negative (expected 1 or more)")),
        other => other,
    }
}

/// `-L`: a load above zero.
fn load_above_zero(text: &str) -> Result<f64, String> {
    match units::parse_load(text) {
        Ok(load) if load > 0.0 => Ok(load),
        Err(e) if !units::is_negative(text) => Err(e),
        _ => Err(format!("'{text}' must be above zero")),
    }
}

/// `-E NAME[=VALUE]`.
fn parse_assignment(item: &str) -> Result<Assignment, String> {
    let (name, value) = item.split_once('=').map_or((item, None), |(name, value)| (name, Some(value)));
    if name.is_empty() || item.contains('\0') {
        return Err(format!("'{item}' is not NAME or NAME=VALUE"));
    }
    Ok((name.to_string(), value.map(str::to_string)))
}

/// `--umask MODE`: an octal mode of at most 0777, as umask(1) takes it.
fn parse_umask(text: &str) -> Result<u32, String> {
    let octal = !text.is_empty() && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(text, 8) {
        Ok(mode) if octal && mode <= 0o777 => Ok(mode),
        _ if octal => Err(format!("'{text}' is above 0777 (expected an octal mode such as 022 or 077)")),
        _ => Err(format!("'{text}' is not an octal mode (expected digits 0-7, such as 022 or 077)")),
    }
}

/// `-u`, `-U`: `USER[:GROUP...]`; `-g` and `-G` are added by [`super::parse`].
fn parse_user(spec: &str) -> Result<UserSpec, SpecError> {
    UserSpec::parse(spec, None)
}

/// `-r NAME=VALUE`, or `-r help`.
fn parse_limit(text: &str) -> Result<LimitOrHelp, String> {
    if text == "help" { Ok(None) } else { Limit::parse(text).map(Some) }
}

/// `--pressure [SOURCE:]HIGH[:LOW]`: a source (cpu without one) and percentages
/// of stalled time, 0 <= LOW <= HIGH, 0 < HIGH < 100.
fn parse_pressure(text: &str) -> Result<(Source, Marks), String> {
    let bad = |why: &str| format!("'{text}' {why} (expected [cpu:|memory:|io:]HIGH[:LOW], percentages such as 40:10)");
    let percent = |part: &str| {
        let why = if units::is_negative(part) { "has a percentage below zero" } else { "is not a percentage" };
        units::parse_load(part).map_err(|_| bad(why))
    };
    if Source::from_name(text).is_some() {
        return Err(format!("'{text}' names a source but no mark (expected {text}:HIGH[:LOW], such as {text}:40:10)"));
    }
    // A word of letters first is a source; a number first is cpu's HIGH.
    let (source, marks) = match text.split_once(':') {
        Some((name, rest)) if name.chars().all(|c| c.is_ascii_alphabetic()) && !name.is_empty() => {
            let known = Source::from_name(name);
            let source =
                known.ok_or_else(|| bad(&format!("has an unknown source '{name}' (expected cpu, memory or io)")))?;
            (source, rest)
        }
        _ => (Source::Cpu, text),
    };
    let (high, low) = marks.split_once(':').map_or((marks, None), |(high, low)| (high, Some(low)));
    let high = percent(high)?;
    let low = low.map(percent).transpose()?.unwrap_or(high / 2.0);
    if !(high > 0.0 && high < 100.0) {
        return Err(bad("has HIGH outside 0..100"));
    }
    if low > high {
        return Err(bad("has LOW above HIGH"));
    }
    Ok((source, Marks { high, low }))
}
