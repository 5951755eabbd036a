//! Options from outside the command line, as dmon and the log tools read them:
//! from an environment variable (`DMON_OPTIONS`, `DLOG_OPTIONS`, ...) and from a
//! `-C FILE` given first; and clap's errors cut to one line that names the option.
//!
//! A `-C` file holds words separated by blanks (spaces, tabs, newlines). A word may be
//! written in double quotes, where blanks and `#` are literal and backslash escapes
//! are decoded (`\n \t \r \a \b \f \v \e \0 \" \\ \xHH`). `#` outside quotes starts a
//! comment to the end of the line. Each option is its long name without dashes,
//! followed by its argument if it takes one:
//!
//! ```text
//! # a service
//! pid-file /run/crond.pid
//! cmd-user "log:wheel"
//! stderr-redir
//! ```
//!
//! The environment variable's words are split the same way and taken as typed.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command};

/// One word of a config file and where it started (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub line: usize,
    pub column: usize,
}

/// A syntax error with its position (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Splits config text into words. Bytes that are not UTF-8 are an error, since
/// option values end up as paths, names and numbers.
pub fn words(text: &[u8]) -> Result<Vec<Word>, SyntaxError> {
    let mut out = Vec::new();
    let mut lexer = Lexer { text, pos: 0, line: 1, column: 1 };
    loop {
        lexer.skip_blanks_and_comments();
        let (line, column) = (lexer.line, lexer.column);
        let Some(first) = lexer.peek() else { return Ok(out) };
        let bytes = if first == b'"' { lexer.quoted()? } else { lexer.bare() };
        let text = String::from_utf8(bytes).map_err(|_| SyntaxError {
            line,
            column,
            message: "word is not valid UTF-8".into(),
        })?;
        out.push(Word { text, line, column });
    }
}

/// How messages name an option: `-t/--timeout`, `--grace`.
pub fn flag(arg: &Arg) -> String {
    match (arg.get_short(), arg.get_long()) {
        (Some(short), Some(long)) => format!("-{short}/--{long}"),
        (None, Some(long)) => format!("--{long}"),
        (Some(short), None) => format!("-{short}"),
        (None, None) => arg.to_string(),
    }
}

/// The option a word names: `--timeout`, `-t`, or the way clap shows an option in
/// its errors (`--timeout <TIME>`).
pub fn option<'a>(command: &'a Command, word: &str) -> Option<&'a Arg> {
    let word = word.split(' ').next().unwrap_or_default();
    if let Some(long) = word.strip_prefix("--") {
        return command.get_arguments().find(|a| a.get_long() == Some(long));
    }
    let mut short = word.strip_prefix('-')?.chars();
    let (Some(short), None) = (short.next(), short.next()) else { return None };
    command.get_arguments().find(|a| a.get_short() == Some(short))
}

/// The arguments `command` parses after its name, in the order that gives DMon's
/// precedence (a later option wins): the words of the environment variable `var`
/// (its value `env`), then those of a `-C FILE` that starts `args` (for a command
/// with a `config` option), then the rest of `args`.
///
/// A word of the environment must be an option or an option's value: anything
/// else would be a positional, which the environment does not give. For dmon it
/// would start the command there and take the command line with it; for a
/// logger it would name the file root writes to (`DLOG_OPTIONS=/etc/passwd`).
pub fn arguments(
    command: &Command,
    var: &str,
    env: Option<&OsStr>,
    args: &[OsString],
) -> Result<Vec<OsString>, String> {
    let mut out: Vec<OsString> = Vec::new();
    if let Some(text) = env {
        let words = words(text.as_encoded_bytes()).map_err(|e| format!("{var}: column {}: {}", e.column, e.message))?;
        // What a positional names goes on the command line: dmon's command, a
        // logger's FILE, DIR or NAME.
        let place = match command.get_positionals().next() {
            Some(arg) if arg.is_trailing_var_arg_set() => "the command".to_string(),
            Some(arg) => arg.get_value_names().and_then(|n| n.first()).map_or("it".into(), |n| n.to_string()),
            None => "it".into(),
        };
        for word in words {
            let value = out.last().and_then(|prev| option(command, &prev.to_string_lossy()));
            if !word.text.starts_with('-') && !value.is_some_and(|a| a.get_action().takes_values()) {
                return Err(format!("{var}: '{}' is not an option ({place} goes on the command line)", word.text));
            }
            out.push(word.text.into());
        }
    }
    let mut rest = args;
    if let Some(config) = command.get_arguments().find(|a| a.get_id() == "config") {
        if let Some((path, taken)) = config_file(config, args)? {
            out.extend(config_words(command, config, &path)?);
            rest = &args[taken..];
        }
    }
    out.extend(rest.iter().cloned());
    Ok(out)
}

/// `-C FILE`, `-CFILE`, `--config FILE` or `--config=FILE` as the first argument:
/// the file, and how many arguments named it.
fn config_file(config: &Arg, args: &[OsString]) -> Result<Option<(PathBuf, usize)>, String> {
    let Some(first) = args.first() else { return Ok(None) };
    let bytes = first.as_encoded_bytes();
    let short = config.get_short().map(|c| format!("-{c}"));
    let long = config.get_long().map(|l| format!("--{l}"));
    if [&short, &long].into_iter().flatten().any(|name| name.as_bytes() == bytes) {
        let value = config.get_value_names().and_then(|names| names.first()).map_or("FILE", |n| n.as_str());
        let path = args.get(1).ok_or_else(|| format!("{} needs a {value}", flag(config)))?;
        return Ok(Some((path.into(), 2)));
    }
    for prefix in [long.map(|l| l + "="), short].into_iter().flatten() {
        if let Some(rest) = bytes.strip_prefix(prefix.as_bytes()) {
            // SAFETY: splitting after an ASCII prefix keeps the encoding valid.
            let path = unsafe { OsStr::from_encoded_bytes_unchecked(rest) };
            return Ok(Some((path.into(), 1)));
        }
    }
    Ok(None)
}

/// The largest `-C` file read: far more than any set of options needs, and a
/// bound on what a mistaken path (a log, a device) can cost.
pub const CONFIG_LIMIT: u64 = 1 << 20;

/// Reads a `-C` file and turns it into command-line words (`--name value`).
/// The file's options set the environment, the user and the capabilities of
/// the commands dmon runs, often as root, so it is read only when nobody but
/// root or dmon's user can have written it ([`crate::planted::read_trusted`]).
fn config_words(command: &Command, config: &Arg, path: &std::path::Path) -> Result<Vec<OsString>, String> {
    let shown = path.display();
    let text = crate::planted::read_trusted(path, CONFIG_LIMIT)
        .map_err(|why| format!("{}: cannot read '{shown}': {why}", flag(config)))?;
    let words = words(&text).map_err(|e| format!("{shown}:{}:{}: {}", e.line, e.column, e.message))?;
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let name = word.text.trim_start_matches('-');
        let arg = command.get_arguments().find(|a| a.get_long() == Some(name) && a.get_id() != config.get_id());
        let Some(arg) = arg else {
            return Err(format!("{shown}:{}:{}: unknown option '{}'", word.line, word.column, word.text));
        };
        out.push(format!("--{name}").into());
        if arg.get_action().takes_values() {
            let Some(value) = words.next() else {
                return Err(format!("{shown}:{}:{}: option '{name}' needs a value", word.line, word.column));
            };
            out.push(value.text.into());
        }
    }
    Ok(out)
}

/// clap's error in one line. A bad value reads `-t/--timeout: 'x' is not a time
/// (...)` with the value parser's words, a conflict `-i/--interval cannot be used
/// with -1/--once`; clap's other messages keep their first line, with the missing
/// options, the possible values or the option meant where clap knows them, and a
/// pointer to `PROGRAM --help`.
pub fn one_line(e: &clap::Error, command: &Command) -> String {
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(text)) => Some(text.as_str()),
        _ => None,
    };
    let name = |shown: &str| option(command, shown).map_or_else(|| shown.to_string(), flag);
    match (e.kind(), text(ContextKind::InvalidArg)) {
        (ErrorKind::ValueValidation, Some(arg)) => {
            if let Some(why) = std::error::Error::source(e) {
                return format!("{}: {why}", name(arg));
            }
        }
        (ErrorKind::ArgumentConflict, Some(arg)) => {
            if let Some(other) = text(ContextKind::PriorArg) {
                return format!("{} cannot be used with {}", name(arg), name(other));
            }
        }
        _ => {}
    }
    let rendered = e.render().to_string();
    let line = rendered.lines().next().unwrap_or("invalid arguments");
    let mut line = line.strip_prefix("error: ").unwrap_or(line).to_string();
    match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::Strings(missing)) if e.kind() == ErrorKind::MissingRequiredArgument => {
            line = format!("{} {}", line, missing.join(", "));
        }
        _ => {}
    }
    if let Some(ContextValue::Strings(values)) = e.get(ContextKind::ValidValue) {
        if !values.is_empty() {
            line.push_str(&format!(": possible values are {}", values.join(", ")));
        }
    }
    // clap's guess, when it starts as typed: `--tre` for `--tree`, but not
    // `--bogus` for `--log-user`.
    if let (Some(typed), Some(meant)) = (text(ContextKind::InvalidArg), text(ContextKind::SuggestedArg)) {
        if typed.len() > 4 && meant.get(..5) == typed.get(..5) {
            line.push_str(&format!("; did you mean '{meant}'?"));
        }
    }
    let program = command.get_display_name().unwrap_or(command.get_name());
    format!("{line} (see {program} --help)")
}

struct Lexer<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    column: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        if byte == b'\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(byte)
    }

    fn error(&self, line: usize, column: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError { line, column, message: message.into() }
    }

    fn skip_blanks_and_comments(&mut self) {
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' => {
                    self.bump();
                }
                b'#' => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.bump();
                    }
                }
                _ => return,
            }
        }
    }

    fn bare(&mut self) -> Vec<u8> {
        let mut word = Vec::new();
        while let Some(byte) = self.peek() {
            if matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b'#' | b'"') {
                break;
            }
            word.push(byte);
            self.bump();
        }
        word
    }

    fn quoted(&mut self) -> Result<Vec<u8>, SyntaxError> {
        let (line, column) = (self.line, self.column);
        self.bump(); // the opening quote
        let mut word = Vec::new();
        loop {
            let (escape_line, escape_column) = (self.line, self.column);
            match self.bump() {
                None => return Err(self.error(line, column, "unterminated quoted string")),
                Some(b'"') => return Ok(word),
                Some(b'\\') => {
                    let decoded = match self.bump() {
                        None => return Err(self.error(line, column, "unterminated quoted string")),
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(b'r') => b'\r',
                        Some(b'a') => 0x07,
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0c,
                        Some(b'v') => 0x0b,
                        Some(b'e') => 0x1b,
                        Some(b'0') => 0,
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'x') => {
                            let digits = [self.bump(), self.bump()];
                            let hex = |d: Option<u8>| d.and_then(|b| (b as char).to_digit(16));
                            match (hex(digits[0]), hex(digits[1])) {
                                (Some(high), Some(low)) => (high * 16 + low) as u8,
                                _ => {
                                    return Err(self.error(
                                        escape_line,
                                        escape_column,
                                        "\\x must be followed by two hexadecimal digits",
                                    ));
                                }
                            }
                        }
                        Some(other) => {
                            let shown = if other.is_ascii_graphic() {
                                format!("\\{}", other as char)
                            } else {
                                format!("\\ followed by byte 0x{other:02x}")
                            };
                            return Err(self.error(escape_line, escape_column, format!("unknown escape {shown}")));
                        }
                    };
                    word.push(decoded);
                }
                Some(byte) => word.push(byte),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<String> {
        words(input.as_bytes()).unwrap().into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn splits_words_and_skips_comments() {
        assert_eq!(
            texts("pid-file /run/x.pid # the pid\n  no-daemon\n#only\n"),
            ["pid-file", "/run/x.pid", "no-daemon"]
        );
        assert_eq!(texts(""), Vec::<String>::new());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(texts(r#"environ "A=b c # d" x"#), ["environ", "A=b c # d", "x"]);
        assert_eq!(texts(r#""\n\t\"\\\x41\e""#), ["\n\t\"\\A\x1b"]);
        assert_eq!(texts(r#""""#), [""]);
    }

    #[test]
    fn positions() {
        let w = words(b"a\n  bb \"c\"").unwrap();
        assert_eq!((w[1].line, w[1].column), (2, 3));
        assert_eq!((w[2].line, w[2].column), (2, 6));
    }

    #[test]
    fn arguments_come_from_the_environment_then_the_file_then_the_command_line() {
        use clap::CommandFactory;
        let path = std::env::temp_dir().join(format!("dmon-conf-test-{}", std::process::id()));
        std::fs::write(&path, "timeout 3\nno-daemon\n").unwrap();
        let dmon = crate::cli::command();
        let os = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        let env = Some(OsStr::new("-t 1"));
        let file = path.to_str().unwrap();
        let expected = os(&["-t", "1", "--timeout", "3", "--no-daemon", "-t", "9", "x"]);
        for front in [
            os(&["-C", file]),
            os(&["--config", file]),
            os(&[&format!("-C{file}")]),
            os(&[&format!("--config={file}")]),
        ] {
            let args = [front, os(&["-t", "9", "x"])].concat();
            assert_eq!(arguments(&dmon, "DMON_OPTIONS", env, &args).unwrap(), expected);
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(arguments(&dmon, "DMON_OPTIONS", None, &os(&["-C"])).unwrap_err(), "-C/--config needs a FILE");
        // A word that is no option would start dmon's command, or name dlog's FILE.
        let e = arguments(&dmon, "DMON_OPTIONS", Some(OsStr::new("-n -t 5 sleep")), &[]).unwrap_err();
        assert_eq!(e, "DMON_OPTIONS: 'sleep' is not an option (the command goes on the command line)");
        let dlog = crate::logtools::dlog::Args::command();
        assert_eq!(arguments(&dlog, "DLOG_OPTIONS", Some(OsStr::new("-p \"a b\"")), &[]).unwrap(), os(&["-p", "a b"]));
        let e = arguments(&dlog, "DLOG_OPTIONS", Some(OsStr::new("-e /etc/passwd")), &[]).unwrap_err();
        assert_eq!(e, "DLOG_OPTIONS: '/etc/passwd' is not an option (FILE goes on the command line)");
    }

    #[test]
    fn errors_name_their_place() {
        let e = words(b"x\n  \"abc").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("unterminated"));
        let e = words(b"\"a\\q\"").unwrap_err();
        assert_eq!((e.line, e.column, e.message.as_str()), (1, 3, "unknown escape \\q"));
        assert!(words(b"\"\\xZ1\"").unwrap_err().message.contains("hexadecimal"));
        assert!(words(b"\xff\xfe").unwrap_err().message.contains("UTF-8"));
    }
}
