//! denv: run a command in an environment built from scratch.
//!
//! The environment starts empty. The options are applied in the order given, each
//! on the result of the ones before: `-I` copies the whole inherited environment,
//! `-i NAME` one variable of it, `-E` sets or removes one variable, `-d DIR` reads
//! an envdir, `-f FILE` reads an environment.d-style file. Then the command is
//! executed in place of denv.
//!
//! Invoked as `envdir` (a link to denv) it takes `envdir DIR COMMAND...`, starting
//! from the inherited environment, like daemontools' envdir.
//!
//! Every failure before the command runs (bad option, unreadable directory or
//! file, command not found or not executable) exits with status 111, the
//! daemontools convention for "could not even start".

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

/// The exit status when the command cannot be prepared or executed.
pub const CANNOT_RUN: i32 = 111;

#[derive(Parser, Debug)]
#[command(
    name = "denv",
    version,
    about = "Run a command in an environment built from scratch.",
    override_usage = "denv [options] command [args...]\n       envdir DIR command [args...]",
    after_help = "The options apply in the order given. Exit status 111: the command could not be prepared or run."
)]
pub struct Args {
    /// Inherit every variable of denv's own environment
    #[arg(short = 'I', long = "inherit-env", action = ArgAction::Count)]
    pub inherit_env: u8,
    /// Inherit the variable NAME (when it is set)
    #[arg(short = 'i', long = "inherit", value_name = "NAME", action = ArgAction::Append)]
    pub inherit: Vec<OsString>,
    /// Set NAME to VALUE, or remove NAME when no =VALUE is given
    #[arg(short = 'E', long = "environ", value_name = "NAME[=VALUE]", action = ArgAction::Append)]
    pub environ: Vec<OsString>,
    /// Read variables from the envdir DIR (one per regular file)
    #[arg(short = 'd', long = "envdir", value_name = "DIR", action = ArgAction::Append)]
    pub envdir: Vec<PathBuf>,
    /// Read NAME=VALUE lines from FILE (# starts a comment line)
    #[arg(short = 'f', long = "file", value_name = "FILE", action = ArgAction::Append)]
    pub file: Vec<PathBuf>,
    /// The command and its arguments
    #[arg(value_name = "COMMAND", required = true, trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

/// One step of building the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    InheritAll,
    Inherit(OsString),
    Set(OsString),
    EnvDir(PathBuf),
    File(PathBuf),
}

/// An environment under construction: insertion order is kept, so the command
/// sees variables in a predictable order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(OsString, OsString)>,
    index: HashMap<OsString, usize>,
}

impl Env {
    pub fn set(&mut self, name: &OsStr, value: &OsStr) {
        match self.index.get(name) {
            Some(&i) => self.vars[i].1 = value.to_owned(),
            None => {
                self.index.insert(name.to_owned(), self.vars.len());
                self.vars.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub fn remove(&mut self, name: &OsStr) {
        if let Some(i) = self.index.remove(name) {
            self.vars.remove(i);
            for slot in self.index.values_mut() {
                if *slot > i {
                    *slot -= 1;
                }
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.index.get(OsStr::new(name)).map(|&i| self.vars[i].1.as_os_str())
    }

    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && !name.contains(&b'=') && !name.contains(&0)
}

/// A name as environment.d files allow it: letters, digits and `_`, not starting
/// with a digit.
fn identifier(name: &[u8]) -> bool {
    name.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Why the environment cannot be built or the command found: exit 111.
#[derive(Debug)]
pub enum DenvError {
    /// A bad `-E` (its message from [`apply_assignment`]).
    Assignment(String),
    /// An envdir that cannot be listed.
    ReadDir {
        dir: PathBuf,
        err: io::Error,
    },
    /// A file of an envdir, or a `-f` file, that cannot be read.
    Read {
        path: PathBuf,
        err: io::Error,
    },
    /// What is wrong in a file (at a line of a `-f` file).
    Content {
        path: PathBuf,
        line: Option<usize>,
        fault: Fault,
    },
    EmptyCommand,
    NotFound(OsString),
}

/// What is wrong in an environment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    NoEquals,
    Name(String),
    Nul,
}

impl fmt::Display for DenvError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DenvError::Assignment(message) => f.write_str(message),
            DenvError::ReadDir { dir, err } => write!(f, "envdir {}: {err}", dir.display()),
            DenvError::Read { path, err } => write!(f, "{}: {err}", path.display()),
            DenvError::Content { path, line, fault } => {
                write!(f, "{}", path.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                }
                match fault {
                    Fault::NoEquals => write!(f, ": expected NAME=VALUE"),
                    Fault::Name(name) => write!(f, ": '{name}' is not a variable name"),
                    Fault::Nul => write!(f, ": the value contains a NUL byte"),
                }
            }
            DenvError::EmptyCommand => write!(f, "the command is empty"),
            DenvError::NotFound(program) => {
                write!(f, "cannot execute '{}': not found in PATH", program.to_string_lossy())
            }
        }
    }
}

impl std::error::Error for DenvError {}

/// Applies `-E NAME[=VALUE]`.
pub fn apply_assignment(env: &mut Env, item: &OsStr) -> Result<(), String> {
    let bytes = item.as_bytes();
    let (name, value) = match bytes.iter().position(|&b| b == b'=') {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    };
    if !valid_name(name) || value.is_some_and(|v| v.contains(&0)) {
        return Err(format!("-E/--environ: '{}' is not NAME or NAME=VALUE", item.to_string_lossy()));
    }
    match value {
        Some(v) => env.set(OsStr::from_bytes(name), OsStr::from_bytes(v)),
        None => env.remove(OsStr::from_bytes(name)),
    }
    Ok(())
}

/// Applies an envdir: each regular file (symbolic links are not followed, names
/// starting with `.` are skipped) sets the variable named after it to its first
/// line with trailing blanks (spaces, tabs, carriage returns) removed; an empty
/// file removes the variable. Files are taken in name order.
pub fn apply_envdir(env: &mut Env, dir: &Path) -> Result<(), DenvError> {
    let list = |err| DenvError::ReadDir { dir: dir.to_path_buf(), err };
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .map_err(list)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(list)?;
    names.sort();
    for name in names {
        if name.as_bytes().starts_with(b".") {
            continue;
        }
        let path = dir.join(&name);
        let read = |err| DenvError::Read { path: path.clone(), err };
        let fault = |fault| DenvError::Content { path: path.clone(), line: None, fault };
        let meta = std::fs::symlink_metadata(&path).map_err(read)?;
        if !meta.file_type().is_file() {
            continue;
        }
        if !valid_name(name.as_bytes()) {
            return Err(fault(Fault::Name(name.to_string_lossy().into_owned())));
        }
        // O_NOFOLLOW: the file may have been swapped for a link since the check.
        let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path).map_err(read)?;
        let mut line = Vec::new();
        if BufReader::new(file).read_until(b'\n', &mut line).map_err(read)? == 0 {
            env.remove(&name);
            continue;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        while line.last().is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r')) {
            line.pop();
        }
        if line.contains(&0) {
            return Err(fault(Fault::Nul));
        }
        env.set(&name, &OsString::from_vec(line));
    }
    Ok(())
}

/// Applies an environment.d-style file: `NAME=VALUE` lines, blanks around a line
/// removed, empty lines and lines starting with `#` skipped; `NAME=` with nothing
/// after it removes the variable (as DMon's denv did). No quoting, no expansion.
pub fn apply_file(env: &mut Env, path: &Path) -> Result<(), DenvError> {
    let text = std::fs::read(path).map_err(|err| DenvError::Read { path: path.to_path_buf(), err })?;
    for (number, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = raw.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let at = |fault| DenvError::Content { path: path.to_path_buf(), line: Some(number + 1), fault };
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Err(at(Fault::NoEquals));
        };
        let (name, value) = (&line[..eq], &line[eq + 1..]);
        if !identifier(name) {
            return Err(at(Fault::Name(String::from_utf8_lossy(name).into_owned())));
        }
        if value.contains(&0) {
            return Err(at(Fault::Nul));
        }
        if value.is_empty() {
            env.remove(OsStr::from_bytes(name));
        } else {
            env.set(OsStr::from_bytes(name), OsStr::from_bytes(value));
        }
    }
    Ok(())
}

/// Builds the environment from `steps`, with `inherited` as denv's own.
pub fn build(steps: &[Step], inherited: &[(OsString, OsString)]) -> Result<Env, DenvError> {
    let mut env = Env::default();
    for step in steps {
        match step {
            Step::InheritAll => inherited.iter().for_each(|(n, v)| env.set(n, v)),
            Step::Inherit(name) => {
                if let Some((n, v)) = inherited.iter().find(|(n, _)| n == name) {
                    env.set(n, v);
                }
            }
            Step::Set(item) => apply_assignment(&mut env, item).map_err(DenvError::Assignment)?,
            Step::EnvDir(dir) => apply_envdir(&mut env, dir)?,
            Step::File(path) => apply_file(&mut env, path)?,
        }
    }
    Ok(env)
}

/// Finds `program` the way a shell would: as given when it contains a `/`, else
/// in the PATH of the new environment, or denv's own PATH when the new environment
/// has none (so `denv -d dir prog` finds what the caller would find).
pub fn resolve(program: &OsStr, env: &Env) -> Result<PathBuf, DenvError> {
    if program.is_empty() {
        return Err(DenvError::EmptyCommand);
    }
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let own = std::env::var_os("PATH");
    let path = env.get("PATH").map(OsStr::to_owned).or(own).unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = if dir.as_os_str().is_empty() { PathBuf::from(program) } else { dir.join(program) };
        let Ok(meta) = std::fs::metadata(&candidate) else { continue };
        if meta.is_file() && executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(DenvError::NotFound(program.to_owned()))
}

fn executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Replaces this process with `command` in `env`; returns only the error message.
pub fn exec(command: &[OsString], env: &Env) -> String {
    let program = match resolve(&command[0], env) {
        Ok(p) => p,
        Err(e) => return e.to_string(),
    };
    let error = std::process::Command::new(&program)
        .arg0(&command[0])
        .args(&command[1..])
        .env_clear()
        .envs(env.vars().iter().map(|(n, v)| (n, v)))
        .exec();
    format!("cannot execute '{}': {error}", program.display())
}

/// The steps in the order their options were given.
fn steps_in_order(matches: &clap::ArgMatches) -> Vec<Step> {
    let mut steps: Vec<(usize, Step)> = Vec::new();
    // A flag has a default value, with an index of its own: count only what the
    // command line gave.
    let given = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    if let Some(indices) = matches.indices_of("inherit_env").filter(|_| given("inherit_env")) {
        steps.extend(indices.map(|i| (i, Step::InheritAll)));
    }
    let mut valued = |id: &str, make: &dyn Fn(OsString) -> Step| {
        if !given(id) {
            return;
        }
        if let (Some(indices), Some(values)) = (matches.indices_of(id), matches.get_raw(id)) {
            steps.extend(indices.zip(values).map(|(i, v)| (i, make(v.to_owned()))));
        }
    };
    valued("inherit", &Step::Inherit);
    valued("environ", &Step::Set);
    valued("envdir", &|v| Step::EnvDir(v.into()));
    valued("file", &|v| Step::File(v.into()));
    steps.sort_by_key(|(i, _)| *i);
    steps.into_iter().map(|(_, s)| s).collect()
}

/// The `denv` program (and `envdir`, by the name it is invoked as).
pub fn main() -> i32 {
    let name = super::args::invoked_name("denv");
    let fail = |message: String| {
        eprintln!("{name}: {message}");
        CANNOT_RUN
    };
    let inherited: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let argv: Vec<OsString> = std::env::args_os().collect();
    let (steps, command) = if name == "envdir" {
        if argv.len() < 3 {
            return fail("usage: envdir DIR COMMAND [ARGS...]".into());
        }
        (vec![Step::InheritAll, Step::EnvDir(argv[1].clone().into())], argv[2..].to_vec())
    } else {
        let mut command = Args::command();
        let matches = match command.try_get_matches_from_mut(&argv) {
            Ok(m) => m,
            Err(e) => {
                use clap::error::ErrorKind::*;
                if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                    print!("{}", e.render());
                    return 0;
                }
                return fail(crate::conf::one_line(&e, &command));
            }
        };
        let steps = steps_in_order(&matches);
        let args = match Args::from_arg_matches(&matches) {
            Ok(a) => a,
            Err(e) => return fail(e.to_string()),
        };
        (steps, args.command)
    };
    match build(&steps, &inherited) {
        Ok(env) => fail(exec(&command, &env)),
        Err(e) => fail(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> OsString {
        s.into()
    }

    #[test]
    fn order_of_steps_matters() {
        let inherited = vec![(os("A"), os("1")), (os("B"), os("2"))];
        let env = build(&[Step::InheritAll, Step::Set(os("A")), Step::Set(os("C=3"))], &inherited).unwrap();
        assert_eq!(env.vars(), &[(os("B"), os("2")), (os("C"), os("3"))]);
        let env = build(&[Step::Set(os("A=x")), Step::Inherit(os("A")), Step::Inherit(os("Z"))], &inherited).unwrap();
        assert_eq!(env.vars(), &[(os("A"), os("1"))]);
        assert!(build(&[Step::Set(os("=x"))], &inherited).is_err());
    }
}
