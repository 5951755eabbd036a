//! dmon's command line: the clap definition, the assembly of the argument list from
//! `DMON_OPTIONS`, a `-C` file and the real command line, and the validation that
//! turns strings into the values the supervisor runs with.
//!
//! Two stages, as the rest of the program expects: `parse` does no system calls
//! beyond reading the `-C` file and the environment; looking up users, opening
//! files and checking directories happens later, in `main`, still before anything
//! is started.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};

use crate::creds::UserSpec;
use crate::limits::Limit;
pub use crate::status::Format as StatusFormat;
use crate::units;

const EXAMPLES: &str = "\
Examples:
  A root-run service that drops to its own user, logging to a file:
    dmon -p /run/crond.pid -u log:wheel -e cron -f -- dlog /var/log/cron.log
  A long job in the foreground that must run until it succeeds:
    dmon -n -1 rsync -avz ~/ /backup/homedir
  A parallel build, paused as a whole while the load is above 3.5:
    dmon -n -1 -L 3.5 -l 1 make -j8

Status lines (-I): cmd|log start PID, exit PID STATUS, stop PID, signal PID SIG,
timeout PID, pause PID, resume PID.
Exit status: 0 after a clean stop; in -1/-m modes the command's last status
(128+N when killed by signal N); 2 for bad options or files, before anything starts;
1 when supervision itself fails.";

/// The options exactly as typed; `parse` validates them into [`Options`].
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
    /// Change to DIR before starting the commands
    #[arg(short = 'W', long = "work-dir", value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// After a successful (zero) exit, wait TIME before starting again
    #[arg(short = 'i', long, value_name = "TIME", allow_hyphen_values = true)]
    pub interval: Option<String>,
    /// Stop the whole command tree when a run lasts longer than TIME, then start again
    #[arg(short = 't', long, value_name = "TIME", allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Pause the whole command tree while the load average is above N
    #[arg(short = 'L', long = "load-high", value_name = "N", allow_hyphen_values = true)]
    pub load_high: Option<String>,
    /// Resume once the load average is below N (default: half of -L)
    #[arg(short = 'l', long = "load-low", value_name = "N", allow_hyphen_values = true)]
    pub load_low: Option<String>,
    /// Set NAME to VALUE, or remove NAME without =VALUE (repeatable)
    #[arg(short = 'E', long = "environ", value_name = "NAME[=VALUE]", action = ArgAction::Append)]
    pub environ: Vec<String>,
    /// Run the command as USER, with the listed groups
    #[arg(short = 'u', long = "cmd-user", value_name = "USER[:GROUP...]")]
    pub cmd_user: Option<String>,
    /// Run the log command as USER, with the listed groups
    #[arg(short = 'U', long = "log-user", value_name = "USER[:GROUP...]")]
    pub log_user: Option<String>,
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
    pub max_respawns: Option<String>,
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
    pub limit: Vec<String>,
    /// Keep this capability after dropping to -u/-U's user (repeatable), e.g. NET_BIND_SERVICE
    #[arg(long = "cap", value_name = "CAP", action = ArgAction::Append)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the command and the log command
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// How long a stopped tree gets between TERM and KILL
    #[arg(long = "grace", value_name = "TIME", default_value = "5", allow_hyphen_values = true)]
    pub grace: String,
    /// The longest wait between restarts of a command that keeps failing
    #[arg(long = "backoff-max", value_name = "TIME", default_value = "60", allow_hyphen_values = true)]
    pub backoff_max: String,
    /// How to control the command tree: a cgroup, or signals where none can be had
    #[arg(long = "tree", value_name = "BACKEND", value_enum, default_value_t = TreeChoice::Auto)]
    pub tree: TreeChoice,
    /// Make dmon's cgroups under DIR instead of under dmon's own cgroup
    #[arg(long = "cgroup-parent", value_name = "DIR")]
    pub cgroup_parent: Option<PathBuf>,
    /// Pause the whole command tree while CPU pressure is above HIGH percent, resume below LOW (default: half)
    #[arg(long = "pressure", value_name = "HIGH[:LOW]")]
    pub pressure: Option<String>,
    /// Log more about what dmon does (repeat for more; DMON_LOG=debug does the same)
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// The command, its arguments, and after a lone -- the log command and its arguments
    #[arg(trailing_var_arg = true, value_name = "COMMAND", value_parser = clap::value_parser!(OsString))]
    pub command: Vec<OsString>,
}

/// Which mechanism controls the command tree (`--tree`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TreeChoice {
    /// cgroup v2 where writable, else the v1 freezer, else signals
    Auto,
    /// A cgroup v2 leaf: freeze, thaw and cgroup.kill
    Cgroup2,
    /// A cgroup v1 freezer leaf
    Freezer,
    /// Process group, subreaper and a walk of the process tree
    Signals,
}

/// Validated options, ready to run with.
#[derive(Debug, Clone)]
pub struct Options {
    pub command: Vec<OsString>,
    pub log_command: Option<Vec<OsString>>,
    pub status_file: Option<PathBuf>,
    pub status_format: StatusFormat,
    pub pid_file: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub load: Option<LoadMarks>,
    pub environ: Vec<(String, Option<String>)>,
    pub cmd_user: Option<UserSpec>,
    pub log_user: Option<UserSpec>,
    pub daemon: bool,
    pub once: bool,
    pub max_respawns: Option<u64>,
    pub stderr_redir: bool,
    pub cmd_sigs: bool,
    pub log_sigs: bool,
    pub limits: Vec<Limit>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub grace: Duration,
    pub backoff_max: Duration,
    pub tree: TreeChoice,
    pub cgroup_parent: Option<PathBuf>,
    pub pressure: Option<LoadMarks>,
    pub verbose: u8,
}

/// `-L` and `-l`: pause above `high`, resume below `low`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadMarks {
    pub high: f64,
    pub low: f64,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Options>),
    /// `--help`, `--version` or `-r help`: text for stdout, exit 0.
    Print(String),
}

/// A bad command line: one line for stderr, without the `dmon: ` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Parses dmon's arguments (without the program name), with `DMON_OPTIONS` taken
/// from `env_options`. Precedence, as in DMon: the environment, then the `-C` file,
/// then the command line; a later option wins.
pub fn parse(args: &[OsString], env_options: Option<&OsStr>) -> Result<Parsed, UsageError> {
    let mut argv: Vec<OsString> = vec!["dmon".into()];
    if let Some(text) = env_options {
        let words = crate::conf::words(text.as_encoded_bytes())
            .map_err(|e| usage(format!("DMON_OPTIONS: column {}: {}", e.column, e.message)))?;
        for word in &words {
            if !word.text.starts_with('-') && !argv.last().is_some_and(|prev| takes_value(prev)) {
                return Err(usage(format!(
                    "DMON_OPTIONS: '{}' is not an option (the command goes on the command line)",
                    word.text
                )));
            }
            argv.push(word.text.clone().into());
        }
    }
    let mut rest = args;
    if let Some((path, consumed)) = config_option(args)? {
        argv.extend(read_config(&path)?);
        rest = &args[consumed..];
    }
    argv.extend(rest.iter().cloned());

    let parsed = match Args::try_parse_from(&argv) {
        Ok(parsed) => parsed,
        Err(e) => {
            use clap::error::ErrorKind::*;
            return match e.kind() {
                DisplayHelp | DisplayVersion => Ok(Parsed::Print(e.render().to_string())),
                _ => Err(usage(one_line_of_clap_error(&e))),
            };
        }
    };
    if parsed.limit.iter().any(|l| l == "help") {
        return Ok(Parsed::Print(crate::limits::help()));
    }
    validate(parsed).map(|o| Parsed::Run(Box::new(o)))
}

/// clap's message in one line: its first line, the possible values or the
/// option meant where clap knows them, and where to look.
fn one_line_of_clap_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or("invalid arguments");
    let mut line = line.strip_prefix("error: ").unwrap_or(line).to_string();
    if let Some(ContextValue::Strings(values)) = e.get(ContextKind::ValidValue) {
        if !values.is_empty() {
            line.push_str(&format!(": possible values are {}", values.join(", ")));
        }
    }
    // clap's guess, when it starts as typed: `--tre` for `--tree`, but not
    // `--bogus` for `--log-user`.
    if let (Some(ContextValue::String(typed)), Some(ContextValue::String(meant))) =
        (e.get(ContextKind::InvalidArg), e.get(ContextKind::SuggestedArg))
    {
        if typed.len() > 4 && meant.get(..5) == typed.get(..5) {
            line.push_str(&format!("; did you mean '{meant}'?"));
        }
    }
    line + " (see dmon --help)"
}

/// Whether a command-line word is an option that takes a value in its next word.
fn takes_value(word: &OsStr) -> bool {
    let Some(word) = word.to_str() else { return false };
    let command = Args::command();
    let found = if let Some(long) = word.strip_prefix("--") {
        command.get_arguments().find(|a| a.get_long() == Some(long))
    } else if let Some(short) = word.strip_prefix('-').filter(|s| s.chars().count() == 1) {
        let short = short.chars().next();
        command.get_arguments().find(|a| a.get_short() == short)
    } else {
        None
    };
    found.is_some_and(|a| a.get_action().takes_values())
}

/// Finds `-C FILE`, `-CFILE`, `--config FILE` or `--config=FILE` at the front.
fn config_option(args: &[OsString]) -> Result<Option<(PathBuf, usize)>, UsageError> {
    let Some(first) = args.first() else { return Ok(None) };
    let bytes = first.as_encoded_bytes();
    let value_of = |i: usize| args.get(i).cloned().ok_or_else(|| usage("-C/--config needs a FILE"));
    if bytes == b"-C" || bytes == b"--config" {
        return Ok(Some((value_of(1)?.into(), 2)));
    }
    for prefix in [&b"--config="[..], &b"-C"[..]] {
        if let Some(rest) = bytes.strip_prefix(prefix) {
            // SAFETY: splitting after an ASCII prefix keeps the encoding valid.
            let path = unsafe { OsStr::from_encoded_bytes_unchecked(rest) };
            return Ok(Some((path.into(), 1)));
        }
    }
    Ok(None)
}

/// Reads a `-C` file and turns it into command-line words (`--name value`).
fn read_config(path: &PathBuf) -> Result<Vec<OsString>, UsageError> {
    let shown = path.display();
    let text = std::fs::read(path)
        .map_err(|e| usage(format!("-C/--config: cannot read '{shown}': {}", crate::io_reason(&e))))?;
    let words =
        crate::conf::words(&text).map_err(|e| usage(format!("{shown}:{}:{}: {}", e.line, e.column, e.message)))?;
    let command = Args::command();
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let name = word.text.trim_start_matches('-');
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(name) && !matches!(a.get_id().as_str(), "config" | "command"));
        let Some(arg) = arg else {
            return Err(usage(format!("{shown}:{}:{}: unknown option '{}'", word.line, word.column, word.text)));
        };
        out.push(format!("--{name}").into());
        if arg.get_action().takes_values() {
            let Some(value) = words.next() else {
                return Err(usage(format!("{shown}:{}:{}: option '{name}' needs a value", word.line, word.column)));
            };
            out.push(value.text.into());
        }
    }
    Ok(out)
}

/// `--pressure HIGH[:LOW]`: percentages of stalled time, 0 < LOW <= HIGH < 100.
fn parse_pressure(text: &str) -> Result<LoadMarks, UsageError> {
    let bad = |why: &str| usage(format!("--pressure: '{text}' {why} (expected HIGH[:LOW], percentages such as 40:10)"));
    let (high, low) = match text.split_once(':') {
        Some((high, low)) => (high, Some(low)),
        None => (text, None),
    };
    let high = units::parse_load(high).map_err(|_| bad("is not a percentage"))?;
    let low = low.map(units::parse_load).transpose().map_err(|_| bad("is not a percentage"))?.unwrap_or(high / 2.0);
    if !(high > 0.0 && high < 100.0) {
        return Err(bad("has HIGH outside 0..100"));
    }
    if low > high {
        return Err(bad("has LOW above HIGH"));
    }
    Ok(LoadMarks { high, low })
}

fn validate(a: Args) -> Result<Options, UsageError> {
    if a.config.is_some() {
        return Err(usage("-C/--config must be the first option"));
    }
    let mut command = a.command;
    if command.is_empty() {
        return Err(usage("no command given (usage: dmon [options] command [args...] [-- logcommand [args...]])"));
    }
    let log_command = match command.iter().position(|w| w == "--") {
        Some(at) => {
            let log: Vec<OsString> = command.split_off(at + 1);
            command.pop();
            if log.is_empty() {
                return Err(usage("no log command after '--'"));
            }
            Some(log)
        }
        None => None,
    };
    if command.is_empty() {
        return Err(usage("no command given before '--'"));
    }

    let time = |name: &str, value: &Option<String>| -> Result<Option<Duration>, UsageError> {
        value.as_deref().map(units::parse_time).transpose().map_err(|e| usage(format!("{name}: {e}")))
    };
    let interval = time("-i/--interval", &a.interval)?;
    let timeout = time("-t/--timeout", &a.timeout)?;
    if timeout == Some(Duration::ZERO) {
        return Err(usage("-t/--timeout: '0' is too short (expected a time above zero)"));
    }
    if interval.is_some() && a.once {
        return Err(usage("-i/--interval cannot be used with -1/--once"));
    }
    let grace = units::parse_time(&a.grace).map_err(|e| usage(format!("--grace: {e}")))?;
    let backoff_max = units::parse_time(&a.backoff_max).map_err(|e| usage(format!("--backoff-max: {e}")))?;

    let load = match (&a.load_high, &a.load_low) {
        (None, None) => None,
        (None, Some(_)) => return Err(usage("-l/--load-low needs -L/--load-high")),
        (Some(high), low) => {
            let high_value = match units::parse_load(high) {
                Ok(value) if value > 0.0 => value,
                Err(e) if !units::is_negative(high) => return Err(usage(format!("-L/--load-high: {e}"))),
                _ => return Err(usage(format!("-L/--load-high: '{high}' must be above zero"))),
            };
            let low_value = match low {
                Some(low) => units::parse_load(low).map_err(|e| usage(format!("-l/--load-low: {e}")))?,
                None => high_value / 2.0,
            };
            if low_value > high_value {
                return Err(usage(format!(
                    "-l/--load-low: '{}' is above -L/--load-high '{high}' (expected a value at most -L's)",
                    low.as_deref().unwrap_or_default()
                )));
            }
            Some(LoadMarks { high: high_value, low: low_value })
        }
    };

    let pressure = a.pressure.as_deref().map(parse_pressure).transpose()?;
    if pressure.is_some() && load.is_some() {
        return Err(usage("--pressure cannot be used with -L/--load-high (choose one signal to pause on)"));
    }

    let max_respawns = a
        .max_respawns
        .as_deref()
        .map(units::parse_count)
        .transpose()
        .map_err(|e| usage(format!("-m/--max-respawns: {e}")))?;

    let mut environ = Vec::new();
    for item in &a.environ {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (item.as_str(), None),
        };
        if name.is_empty() || name.contains('\0') || value.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(usage(format!("-E/--environ: '{item}' is not NAME or NAME=VALUE")));
        }
        environ.push((name.to_string(), value));
    }

    let user = |name: &str, spec: &Option<String>, group: &Option<String>, group_name: &str| match (spec, group) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(usage(format!("{group_name} needs {name}"))),
        (Some(spec), group) => {
            UserSpec::parse(spec, group.as_deref()).map(Some).map_err(|e| usage(format!("{name}: {e}")))
        }
    };
    let cmd_user = user("-u/--cmd-user", &a.cmd_user, &a.cmd_group, "-g/--cmd-group")?;
    let log_user = user("-U/--log-user", &a.log_user, &a.log_group, "-G/--log-group")?;

    let limits = a
        .limit
        .iter()
        .map(|l| Limit::parse(l).map_err(|e| usage(format!("-r/--limit: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Options {
        command,
        log_command,
        status_file: a.write_info,
        status_format: a.status_format,
        pid_file: a.pid_file,
        work_dir: a.work_dir,
        interval,
        timeout,
        load,
        environ,
        cmd_user,
        log_user,
        daemon: !a.no_daemon,
        once: a.once,
        max_respawns,
        stderr_redir: a.stderr_redir,
        cmd_sigs: a.cmd_sigs,
        log_sigs: a.log_sigs,
        limits,
        caps: a.cap,
        no_new_privs: a.no_new_privs,
        grace,
        backoff_max,
        tree: a.tree,
        cgroup_parent: a.cgroup_parent,
        pressure,
        verbose: a.verbose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(words: &[&str]) -> Result<Options, UsageError> {
        let args: Vec<OsString> = words.iter().map(OsString::from).collect();
        match parse(&args, None)? {
            Parsed::Run(o) => Ok(*o),
            Parsed::Print(text) => panic!("printed {text}"),
        }
    }

    #[test]
    fn a_missing_value_lists_no_empty_possible_values() {
        let e = run(&["-t"]).err().unwrap().to_string();
        assert_eq!(e, "a value is required for '--timeout <TIME>' but none was supplied (see dmon --help)");
        let e = run(&["--tree"]).err().unwrap().to_string();
        assert!(e.ends_with("possible values are auto, cgroup2, freezer, signals (see dmon --help)"), "{e}");
    }

    #[test]
    fn options_stop_at_the_command() {
        let o = run(&["-n", "ls", "-l", "--", "dlog", "-t", "x"]).unwrap();
        assert!(!o.daemon);
        assert_eq!(o.command, ["ls", "-l"]);
        assert_eq!(o.log_command.unwrap(), ["dlog", "-t", "x"]);
    }

    #[test]
    fn the_2010_spellings() {
        let o =
            run(&["-e", "-u", "mediatomb", "-g", "mediatomb", "-U", "log", "-G", "log", "mediatomb", "--", "rotlog"])
                .unwrap();
        assert_eq!(o.cmd_user.unwrap().primary_group.as_deref(), Some("mediatomb"));
        assert_eq!(o.log_user.unwrap().user, "log");
    }

    #[test]
    fn load_low_defaults_to_half() {
        let o = run(&["-L", "3", "x"]).unwrap();
        assert_eq!(o.load, Some(LoadMarks { high: 3.0, low: 1.5 }));
    }

    #[test]
    fn later_options_win() {
        let o = run(&["-t", "5", "-t", "7", "x"]).unwrap();
        assert_eq!(o.timeout, Some(Duration::from_secs(7)));
        let args: Vec<OsString> = ["-t", "9", "x"].iter().map(OsString::from).collect();
        let Parsed::Run(o) = parse(&args, Some(OsStr::new("-t 3 -n"))).unwrap() else { panic!() };
        assert_eq!(o.timeout, Some(Duration::from_secs(9)));
        assert!(!o.daemon);
    }

    #[test]
    fn bad_inputs() {
        let cases: &[(&[&str], &str)] = &[
            (&["-L", "abc", "x"], "-L/--load-high: 'abc' is not a number"),
            (&["-L", "-5", "x"], "-L/--load-high: '-5' must be above zero"),
            (&["--tree", "foo", "x"], "invalid value 'foo' for '--tree <BACKEND>': possible values are auto, cgroup2,"),
            (&["--bogus", "x"], "unexpected argument '--bogus' found (see dmon --help)"),
            (&["-L", "2", "-l", "3", "x"], "-l/--load-low: '3' is above -L/--load-high '2'"),
            (&["-t", "-1", "x"], "-t/--timeout: '-1' is not a time"),
            (&["-i", "5", "-1", "x"], "-i/--interval cannot be used with -1/--once"),
            (&["-r", "bogus=1", "x"], "-r/--limit: unknown limit 'bogus'"),
            (&["-n"], "no command given"),
            (&["x", "--"], "no log command after '--'"),
            (&["-m", "x", "y"], "-m/--max-respawns: 'x' is not a whole number"),
            (&["-E", "=x", "y"], "-E/--environ: '=x' is not NAME or NAME=VALUE"),
            (&["-n", "-C", "f", "x"], "-C/--config must be the first option"),
        ];
        for (words, expected) in cases {
            let message = run(words).unwrap_err().0;
            assert!(message.starts_with(expected), "{words:?}: got {message:?}");
            assert!(!message.contains('\n'), "{words:?}: more than one line");
        }
    }
}
