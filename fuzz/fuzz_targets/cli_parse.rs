//! dmon's option parser: the input is split at NUL bytes into arguments; the
//! part after the first 0xFF byte, if any, is DMON_OPTIONS. Any input gives
//! options, text to print, or a one-line error, never a panic.
#![no_main]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (args, env) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], Some(OsStr::from_bytes(&data[at + 1..]))),
        None => (data, None),
    };
    let mut args: Vec<OsString> = args.split(|&b| b == 0).map(|a| OsString::from_vec(a.to_vec())).collect();
    // -C reads a file: the lexer has its own target, and the parser must not
    // wander the file system.
    if args.first().is_some_and(|a| a.as_bytes().starts_with(b"-C") || a.as_bytes().starts_with(b"--config")) {
        args.remove(0);
    }
    if let Err(e) = dmon::cli::parse(&args, env) {
        assert!(!e.0.is_empty());
        assert!(!dmon::logging::one_line(&e.0).contains('\n'));
    }
});
