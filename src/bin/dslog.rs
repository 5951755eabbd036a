//! dslog (also installed as dsyslog): send lines to the system log; see docs/dslog.md.
fn main() {
    std::process::exit(dmon::logtools::dslog::main());
}
