//! dlog: append lines to a file, durably; see docs/dlog.md.
fn main() {
    std::process::exit(dmon::logtools::dlog::main());
}
