//! Argument handling shared by the tools: options taken from an environment
//! variable (`DLOG_OPTIONS` and the like) go in front of the command line, as
//! dmon's `DMON_OPTIONS` do ([`crate::conf::arguments`]), so the command line wins
//! where an option is given twice; clap's errors are one line, as dmon's.

use std::ffi::OsString;

use clap::Parser;

use super::format::FormatArgs;

/// The program's name as invoked (the last component of `argv[0]`).
pub fn invoked_name(fallback: &str) -> String {
    std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| fallback.to_string())
}

/// A log tool's `main`: its name as invoked (`tool` when `argv[0]` has none),
/// which its messages start with, its options from `env_var` and the command
/// line ([`parse`]; exit status 2 for bad ones), then `run`.
pub fn main<T: Parser>(tool: &str, env_var: &str, run: fn(T) -> i32) -> i32 {
    let name = invoked_name(tool);
    super::pump::set_program(&name);
    run(parse::<T>(&name, env_var, 2))
}

/// Parses the command line, with the words of `env_var` (when set) in front.
/// Prints help or version and exits 0 when asked; prints one line naming the bad
/// option and value and exits with `usage_status` on an error. `--version` names
/// the program as invoked (`dsyslog` is `dslog` under another name).
pub fn parse<T: Parser>(program: &str, env_var: &str, usage_status: i32) -> T {
    let mut command = T::command().display_name(program);
    let fail = |message: &str| -> ! {
        eprintln!("{program}: {}", crate::logging::one_line(message));
        std::process::exit(usage_status);
    };
    let mut argv = std::env::args_os();
    let name = argv.next().unwrap_or_else(|| program.into());
    let rest: Vec<OsString> = argv.collect();
    let words = crate::conf::arguments(&command, env_var, std::env::var_os(env_var).as_deref(), &rest)
        .unwrap_or_else(|e| fail(&e));
    let parsed = command
        .try_get_matches_from_mut(std::iter::once(name).chain(words))
        .and_then(|matches| T::from_arg_matches(&matches));
    match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                print!("{}", e.render());
                std::process::exit(0);
            }
            fail(&crate::conf::one_line(&e, &command))
        }
    }
}

/// The input options of dlog, drlog and dslog, flattened into each.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// Read from descriptor FD instead of standard input
    #[arg(short = 'i', long = "input-fd", value_name = "FD", default_value = "0", value_parser = parse_fd)]
    pub fd: i32,
    /// Store a line longer than SIZE bytes as pieces of SIZE bytes, each piece after the first starting with "+ "
    #[arg(long = "max-line", value_name = "SIZE", default_value = "1m", value_parser = parse_max_line)]
    pub max_line: usize,
}

/// The options dlog and drlog share, flattened into both: the input, syncing
/// and the line format.
#[derive(clap::Args, Debug, Clone)]
pub struct FileArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Buffered: do not sync to disk after each batch (the log is still synced before it is closed)
    #[arg(short = 'b', long)]
    pub buffered: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// clap value parser for `-i FD`.
pub fn parse_fd(text: &str) -> Result<i32, String> {
    let n = crate::units::parse_count(text)?;
    i32::try_from(n).map_err(|_| format!("'{text}' is not a file descriptor number"))
}

/// clap value parser for `--max-line SIZE`: at least one byte.
pub fn parse_max_line(text: &str) -> Result<usize, String> {
    match crate::units::parse_size(text)? {
        0 => Err(format!("'{text}' is too small (at least 1 byte)")),
        n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}
