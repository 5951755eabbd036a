//! Argument handling shared by the tools: options taken from an environment
//! variable (`DLOG_OPTIONS` and the like, split with the `-C` file rules of
//! [`crate::conf`]) go in front of the command line, as in DMon, so the command line
//! wins where an option is given twice; clap's errors are cut to one line.

use std::ffi::OsString;

use clap::Parser;

/// The program's name as invoked (the last component of `argv[0]`).
pub fn invoked_name(fallback: &str) -> String {
    std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| fallback.to_string())
}

/// Parses the command line, with the words of `env_var` (when set) in front.
/// Prints help or version and exits 0 when asked; prints one line naming the bad
/// option and value and exits with `usage_status` on an error. `--version` names
/// the program as invoked (`dsyslog` is `dslog` under another name).
pub fn parse<T: Parser>(program: &str, env_var: Option<&str>, usage_status: i32) -> T {
    let mut argv: Vec<OsString> = std::env::args_os().take(1).collect();
    if let Some(text) = env_var.and_then(std::env::var_os) {
        match crate::conf::words(text.as_encoded_bytes()) {
            Ok(words) => argv.extend(words.into_iter().map(|w| OsString::from(w.text))),
            Err(e) => {
                let var = env_var.unwrap_or_default();
                eprintln!("{program}: {var}: column {}: {}", e.column, e.message);
                std::process::exit(usage_status);
            }
        }
    }
    argv.extend(std::env::args_os().skip(1));
    let command = T::command().display_name(program);
    match command.try_get_matches_from(argv).and_then(|m| T::from_arg_matches(&m)) {
        Ok(parsed) => parsed,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                print!("{}", e.render());
                std::process::exit(0);
            }
            eprintln!("{program}: {}", first_line(&e));
            std::process::exit(usage_status);
        }
    }
}

fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or("invalid arguments");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// clap value parser for `-i FD`.
pub fn parse_fd(text: &str) -> Result<i32, String> {
    let n = crate::units::parse_count(text)?;
    i32::try_from(n).map_err(|_| format!("'{text}' is not a file descriptor number"))
}

/// clap value parser for a TIME.
pub fn parse_time(text: &str) -> Result<std::time::Duration, String> {
    crate::units::parse_time(text)
}

/// clap value parser for a SIZE.
pub fn parse_size(text: &str) -> Result<u64, String> {
    crate::units::parse_size(text)
}

/// clap value parser for a count.
pub fn parse_count(text: &str) -> Result<u64, String> {
    crate::units::parse_count(text)
}
