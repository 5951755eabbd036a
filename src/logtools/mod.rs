//! The companion tools: dlog, drlog, dslog (also dsyslog) and denv.
//!
//! The three loggers share one line pump ([`pump`]): it reads what one `read(2)`
//! returns, hands the complete lines of it to a sink as one batch, and keeps the
//! unfinished tail for the next read. A sink stores a whole batch before the pump
//! reads again, so "taken from the input" and "stored" never drift apart by more
//! than one read, and a TERM leaves everything not yet read in the pipe for the
//! next reader. denv shares nothing with them but the argument conventions.

pub mod args;
pub mod clock;
pub mod denv;
pub mod dlog;
pub mod drlog;
pub mod dslog;
pub mod format;
pub mod pump;
pub mod sys;
