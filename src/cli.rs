//! dmon's command line: the words from `DMON_OPTIONS`, a `-C` file and the real
//! command line ([`crate::conf::arguments`]) parsed by the clap definition
//! ([`Args`], in `cli/args.rs`, whose value parsers turn times, counts and loads
//! into values and whose declared conflicts and requirements clap checks), then
//! the few checks clap cannot make, and the assembly of [`Options`].
//!
//! Two stages, as the rest of the program expects: `parse` does no system calls
//! beyond reading the `-C` file and the environment; looking up users, opening
//! files and checking directories happens later, in `main`, still before anything
//! is started.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use clap::FromArgMatches;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::conf;
use crate::creds::UserSpec;
use crate::limits::Limit;
use crate::marks::Marks;
use crate::psi::{PressureDir, Source};
use crate::tree::resources::Resources;
use crate::watch::LoadFile;

mod args;

pub use crate::status::Format as StatusFormat;
pub use crate::tree::detect::TreeChoice;
use args::NEEDS;
pub use args::{Args, Assignment, LimitOrHelp, command};

/// Validated options, ready to run with.
#[derive(Debug, Clone)]
pub struct Options {
    pub command: Vec<OsString>,
    pub log_command: Option<Vec<OsString>>,
    pub status_file: Option<PathBuf>,
    pub status_format: StatusFormat,
    pub pid_file: Option<PathBuf>,
    /// `--control DIR`.
    pub control: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub load: Option<Marks>,
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
    /// `--allow-new-privs`: `--cap` without no_new_privs.
    pub allow_new_privs: bool,
    pub umask: Option<u32>,
    pub clean_env: bool,
    pub grace: Duration,
    pub backoff_max: Duration,
    pub tree: TreeChoice,
    pub cgroup_parent: Option<PathBuf>,
    /// `--pressure`: at most one per source.
    pub pressure: Vec<(Source, Marks)>,
    /// What `-L` reads: `/proc/loadavg`, or for tests `DMON_LOADAVG_FILE`.
    pub load_file: LoadFile,
    /// Where `--pressure` watches: `/proc/pressure`, or for tests the cgroup
    /// directory `DMON_PRESSURE_DIR`.
    pub pressure_dir: PressureDir,
    /// `--memory-max`, `--memory-high`, `--pids-max`, `--cpu-quota`.
    pub resources: Resources,
    pub verbose: u8,
}

impl Options {
    /// The options that apply to both commands alike, for [`crate::creds::Credentials`].
    pub fn shared(&self, keep: Option<crate::creds::KeptCaps>) -> crate::creds::Shared {
        crate::creds::Shared {
            keep,
            no_new_privs: self.no_new_privs,
            allow_new_privs: self.allow_new_privs,
            umask: self.umask,
            clean_env: self.clean_env,
        }
    }

    /// A daemon without `-W` runs its commands in `/`, as daemon(3) does, so
    /// that a service holds no directory busy (an unmount of the shell's
    /// directory would fail) and reads no file by a name relative to wherever it
    /// was started. Before the change, what dmon itself opens later or executes
    /// by a relative path (`./server`, `--cgroup-parent sub`) is made absolute
    /// against the directory it was started in, so that it means what it meant
    /// when typed. The commands' arguments are theirs and are left as they are.
    pub fn work_in_root_as_a_daemon(&mut self) -> std::io::Result<()> {
        if !self.daemon || self.work_dir.is_some() {
            return Ok(());
        }
        let relative_program = |argv: &mut Vec<OsString>| -> std::io::Result<()> {
            let program = std::path::Path::new(&argv[0]);
            if program.is_relative() && program.as_os_str().as_encoded_bytes().contains(&b'/') {
                argv[0] = std::path::absolute(program)?.into_os_string();
            }
            Ok(())
        };
        relative_program(&mut self.command)?;
        if let Some(log) = self.log_command.as_mut() {
            relative_program(log)?;
        }
        if let Some(dir) = self.cgroup_parent.as_mut() {
            *dir = std::path::absolute(&*dir)?;
        }
        self.work_dir = Some(PathBuf::from("/"));
        Ok(())
    }
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
    let mut cli = command();
    let words = conf::arguments(&cli, "DMON_OPTIONS", env_options, args).map_err(UsageError)?;
    let parsed = cli
        .try_get_matches_from_mut(std::iter::once(OsString::from("dmon")).chain(words))
        .and_then(|matches| Args::from_arg_matches(&matches));
    match parsed {
        Ok(parsed) => finish(parsed, &cli),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            Ok(Parsed::Print(e.render().to_string()))
        }
        Err(e) => Err(usage(needs(&e, &cli).unwrap_or_else(|| conf::one_line(&e, &cli)))),
    }
}

/// How messages name the option with `id`: `-l/--load-low`.
fn named(cli: &clap::Command, id: &str) -> String {
    cli.get_arguments().find(|a| a.get_id() == id).map_or_else(|| id.to_string(), conf::flag)
}

/// clap's error for an option of [`NEEDS`] given alone, as `-l/--load-low needs -L/--load-high`.
fn needs(e: &clap::Error, cli: &clap::Command) -> Option<String> {
    let (ErrorKind::MissingRequiredArgument, Some(ContextValue::Strings(missing))) =
        (e.kind(), e.get(ContextKind::InvalidArg))
    else {
        return None;
    };
    let is_missing = |id: &str| missing.iter().any(|shown| conf::option(cli, shown).is_some_and(|a| a.get_id() == id));
    let &(id, needed) = NEEDS.iter().find(|(_, needed)| is_missing(needed))?;
    Some(format!("{} needs {}", named(cli, id), named(cli, needed)))
}

/// What clap cannot check, and the assembly of [`Options`].
fn finish(a: Args, cli: &clap::Command) -> Result<Parsed, UsageError> {
    let Some(limits) = a.limit.into_iter().collect::<Option<Vec<Limit>>>() else {
        return Ok(Parsed::Print(crate::limits::help()));
    };
    let named = |id| named(cli, id);
    if a.config.is_some() {
        return Err(usage(format!("{} must be the first option", named("config"))));
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

    // -l without -L, and -g or -G without its user, clap has refused ([`NEEDS`]).
    let load = a.load_high.map(|high| Marks { high, low: a.load_low.unwrap_or(high / 2.0) });
    if let Some(Marks { high, low }) = load.filter(|marks| marks.low > marks.high) {
        let (l, h) = (named("load_low"), named("load_high"));
        return Err(usage(format!("{l}: '{low}' is above {h} '{high}' (expected at most the high mark)")));
    }
    // An empty -g is refused here, not by a value parser: clap checks values before
    // requirements, and `-g ''` alone is missing its -u first.
    let with_group = |spec: Option<UserSpec>, group: Option<String>, user_id, group_id| match group.as_deref() {
        Some("") => Err(usage(format!("{}: {} '' is not a group name", named(user_id), named(group_id)))),
        _ => Ok(spec.map(|spec| UserSpec { primary_group: group, ..spec })),
    };
    for (n, (source, _)) in a.pressure.iter().enumerate() {
        if a.pressure[..n].iter().any(|(earlier, _)| earlier == source) {
            let name = source.name();
            return Err(usage(format!("{}: {name} is given twice (at most once per source)", named("pressure"))));
        }
    }
    let cmd_user = with_group(a.cmd_user, a.cmd_group, "cmd_user", "cmd_group")?;
    let log_user = with_group(a.log_user, a.log_group, "log_user", "log_group")?;

    Ok(Parsed::Run(Box::new(Options {
        command,
        log_command,
        status_file: a.write_info,
        status_format: a.status_format,
        pid_file: a.pid_file,
        control: a.control,
        work_dir: a.work_dir,
        interval: a.interval,
        timeout: a.timeout,
        load,
        environ: a.environ,
        cmd_user,
        log_user,
        daemon: !a.no_daemon,
        once: a.once,
        max_respawns: a.max_respawns,
        stderr_redir: a.stderr_redir,
        cmd_sigs: a.cmd_sigs,
        log_sigs: a.log_sigs,
        limits,
        caps: a.cap,
        no_new_privs: a.no_new_privs,
        allow_new_privs: a.allow_new_privs,
        umask: a.umask,
        clean_env: a.clean_env,
        grace: a.grace,
        backoff_max: a.backoff_max,
        tree: a.tree,
        cgroup_parent: a.cgroup_parent,
        pressure: a.pressure,
        load_file: std::env::var_os("DMON_LOADAVG_FILE")
            .map_or_else(LoadFile::kernel, |f| LoadFile::stand_in(f.into())),
        pressure_dir: std::env::var_os("DMON_PRESSURE_DIR")
            .map_or_else(PressureDir::kernel, |dir| PressureDir::cgroup(dir.into())),
        resources: Resources {
            memory_max: a.memory_max,
            memory_high: a.memory_high,
            pids_max: a.pids_max,
            cpu_quota_us: a.cpu_quota,
        },
        verbose: a.verbose,
    })))
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
        assert_eq!(o.load, Some(Marks { high: 3.0, low: 1.5 }));
    }

    #[test]
    fn values_arrive_parsed() {
        let o = run(&["-i", "1.5m", "-m", "3", "--grace", "0.5", "-E", "A=b=c", "-E", "B", "--pressure", "40", "x"])
            .unwrap();
        assert_eq!(
            (o.interval, o.max_respawns, o.grace),
            (Some(Duration::from_secs(90)), Some(3), Duration::from_millis(500))
        );
        assert_eq!(o.backoff_max, Duration::from_secs(60));
        assert_eq!(o.environ, [("A".to_string(), Some("b=c".to_string())), ("B".to_string(), None)]);
        assert_eq!(o.pressure, [(Source::Cpu, Marks { high: 40.0, low: 20.0 })]);
        let o = run(&["--pressure", "memory:10", "--pressure", "io:30:5", "-L", "2", "x"]).unwrap();
        let marks = |high, low| Marks { high, low };
        assert_eq!(o.pressure, [(Source::Memory, marks(10.0, 5.0)), (Source::Io, marks(30.0, 5.0))]);
        assert_eq!(o.load, Some(marks(2.0, 1.0)));
        let o = run(&["-u", "a:b:c", "-g", "d", "x"]).unwrap();
        assert_eq!(
            o.cmd_user,
            Some(UserSpec { user: "a".into(), groups: vec!["b".into(), "c".into()], primary_group: Some("d".into()) })
        );
        assert!(
            matches!(parse(&["-r".into(), "help".into()], None), Ok(Parsed::Print(text)) if text.contains("rttime"))
        );
    }

    #[test]
    fn umask_modes_are_octal() {
        assert_eq!(run(&["--umask", "027", "x"]).unwrap().umask, Some(0o27));
        assert_eq!(run(&["--umask", "0", "x"]).unwrap().umask, Some(0));
        assert_eq!(run(&["--umask", "0777", "x"]).unwrap().umask, Some(0o777));
        assert_eq!(run(&["x"]).unwrap().umask, None);
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
            (&["-t", "-1", "x"], "-t/--timeout: '-1' is not a time (a time cannot be negative)"),
            (&["--pressure", "-5", "x"], "--pressure: '-5' has a percentage below zero"),
            (&["--pressure", "disk:5", "x"], "--pressure: 'disk:5' has an unknown source 'disk'"),
            (&["--pressure", "io:5", "--pressure", "io:6", "x"], "--pressure: io is given twice"),
            (&["--pressure", "io:-5", "x"], "--pressure: 'io:-5' has a percentage below zero"),
            (&["-l", "1", "x"], "-l/--load-low needs -L/--load-high"),
            (&["-g", "x", "y"], "-g/--cmd-group needs -u/--cmd-user"),
            (&["-u", "x", "-g", "", "y"], "-u/--cmd-user: -g/--cmd-group '' is not a group name"),
            (&["-1", "-i", "5", "x"], "-1/--once cannot be used with -i/--interval"),
            (&["-i", "5", "-1", "x"], "-i/--interval cannot be used with -1/--once"),
            (&["-r", "bogus=1", "x"], "-r/--limit: unknown limit 'bogus'"),
            (&["-n"], "no command given"),
            (&["x", "--"], "no log command after '--'"),
            (&["-m", "x", "y"], "-m/--max-respawns: 'x' is not a whole number"),
            (&["-E", "=x", "y"], "-E/--environ: '=x' is not NAME or NAME=VALUE"),
            (&["-n", "-C", "f", "x"], "-C/--config must be the first option"),
            (&["--umask", "8", "x"], "--umask: '8' is not an octal mode"),
            (&["--umask", "+22", "x"], "--umask: '+22' is not an octal mode"),
            (&["--umask", "", "x"], "--umask: '' is not an octal mode"),
            (&["--umask", "1000", "x"], "--umask: '1000' is above 0777"),
            (&["--umask", "0000000000000000000000001777", "x"], "--umask: '0000000000000000000000001777' is above"),
            (&["--allow-new-privs", "x"], "--allow-new-privs needs --cap"),
            (&["--cap", "KILL", "--allow-new-privs", "--no-new-privs", "x"], "--allow-new-privs cannot be used with"),
        ];
        for (words, expected) in cases {
            let message = run(words).unwrap_err().0;
            assert!(message.starts_with(expected), "{words:?}: got {message:?}");
            assert!(!message.contains('\n'), "{words:?}: more than one line");
        }
    }
}
