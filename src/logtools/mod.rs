//! The companion tools: dlog, drlog, dslog (also dsyslog) and denv.
//!
//! The three loggers share one line pump ([`pump`]): it looks at the input, hands
//! the complete lines to a sink as one batch, and takes them from the input only
//! once the sink has stored them. From a pipe that is exact (`tee(2)`, then a read
//! of just those bytes), so a logger killed even with SIGKILL leaves what it had
//! not stored in the pipe for the next one, and a TERM leaves everything after the
//! batch in hand. denv shares nothing with them but the argument conventions.

pub mod args;
pub mod denv;
pub mod dlog;
pub mod drlog;
pub mod dslog;
pub mod format;
pub mod pump;
pub mod sys;
